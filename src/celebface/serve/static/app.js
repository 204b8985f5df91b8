// celebface web page: recognise faces in a photo or the camera, and manage the people.
// Plain JavaScript, no build step. Talks to the API under /v1 (see /docs).
"use strict";

const $ = (sel) => document.querySelector(sel);
const KEY_STORE = "celebface-api-key";
const CAMERA_INTERVAL_MS = 250; // at most ~4 frames a second go to the server
const CAMERA_SIDE = 640; // camera frames are sent at most this wide
const MAX_UPLOAD = 8 * 1024 * 1024; // bigger photos are re-encoded smaller before sending

const state = { key: localStorage.getItem(KEY_STORE) || "", faces: [], scale: 1, camera: null };

// ------------------------------------------------------------------ the API
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.key) headers.set("X-API-Key", state.key);
  const res = await fetch(path, { ...options, headers });
  if (res.status === 401) {
    $("#keybar").hidden = false;
    $("#key").focus();
    throw new Error("this server needs an API key: enter it above");
  }
  if (!res.ok) {
    let detail = res.statusText;
    try {
      const body = await res.json();
      showJSON(body);
      detail = body.detail || detail;
    } catch (e) { /* not JSON */ }
    throw new Error(`${detail} (${res.status})`);
  }
  return res;
}

async function apiJSON(path, options = {}) {
  const body = await (await api(path, options)).json();
  showJSON(body);
  return body;
}

// the last JSON response, in the collapsible panel under the page
function showJSON(body) {
  $("#json-body").textContent = JSON.stringify(body, null, 2);
  $("#json").hidden = false;
}

function say(el, text, error = false) {
  el.textContent = text;
  el.classList.toggle("error", error);
}

function showStatus(s) {
  if (!s) return;
  const thr = s.threshold == null ? "no threshold yet"
    : `threshold ${s.threshold.toFixed(3)} (${s.match}, ${s.calibrated ? "calibrated" : "default: run celebface calibrate"})`;
  $("#footer").textContent = `${s.identities} people · ${s.embeddings} photos · ${thr}`;
}

// ------------------------------------------------------------------ drawing
function label(face) {
  const who = face.label || face.identity || "unknown";
  const sim = face.similarity == null ? "" : ` ${face.similarity.toFixed(3)}`;
  return who + sim;
}

function drawFaces(ctx, faces, scale) {
  const w = ctx.canvas.width;
  const h = ctx.canvas.height;
  const line = Math.max(2, Math.round(w / 320));
  const size = Math.max(14, Math.round(w / 38));
  ctx.font = `600 ${size}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  const labels = [];
  for (const f of faces) {
    const [x1, y1, x2, y2] = f.box.map((v) => v * scale);
    const known = f.identity && f.identity !== "unknown";
    const color = known ? "#16a34a" : "#ea580c";
    ctx.lineWidth = line;
    ctx.strokeStyle = color;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    if (f.landmarks) {
      ctx.fillStyle = "#fde047";
      for (const [x, y] of f.landmarks) ctx.fillRect(x * scale - line, y * scale - line, 2 * line, 2 * line);
    }
    const text = label(f);
    const tw = Math.min(ctx.measureText(text).width + 2 * line + 8, w);
    const th = size + 8;
    // above the box, else under it, else inside its top edge: always on the canvas
    let ty = y1 - th;
    if (ty < 0) ty = y2 + th <= h ? y2 : Math.max(0, Math.min(y1, h - th));
    const tx = Math.max(0, Math.min(x1 - line / 2, w - tw));
    ctx.fillStyle = color;
    ctx.fillRect(tx, ty, tw, th);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, tx + line + 2, ty + 4, tw - line - 4);
    labels.push({ text, x: tx, y: ty, w: tw, h: th });
  }
  ctx.canvas.dataset.labels = JSON.stringify(labels); // where the names are (tests read it)
}

function listFaces(faces) {
  const ul = $("#results");
  ul.replaceChildren();
  for (const f of faces) {
    const li = document.createElement("li");
    const who = f.identity || "unknown";
    li.dataset.identity = who;
    if (who === "unknown") li.classList.add("unknown");
    const name = document.createElement("div");
    name.className = "who";
    name.textContent = f.label || who;
    const why = document.createElement("div");
    why.className = "why";
    const parts = [];
    if (f.similarity != null) parts.push(`similarity ${f.similarity.toFixed(3)}`);
    const runner = (f.predictions || []).find((p) => p.name === f.runner_up);
    if (f.runner_up) parts.push(`${who === "unknown" ? "closest" : "next"}: ${runner ? runner.label : f.runner_up}`);
    if (f.gender) parts.push(`${f.gender} (${Math.round(100 * f.gender_probability)}%)`);
    if (f.age != null) parts.push(`age about ${Math.round(f.age)}`);
    if (f.pose) parts.push(`head turned ${Math.round(f.pose.yaw)}°, tilted ${Math.round(f.pose.pitch)}°`);
    why.textContent = parts.join(" · ") || "no gallery to compare with";
    li.append(name, why);
    ul.append(li);
  }
}

// ------------------------------------------------------------------ a photo
function loadImage(file) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("this file is not a picture the browser can show"));
    img.src = URL.createObjectURL(file);
  });
}

function canvasBlob(canvas, quality = 0.9) {
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
}

function clearPhoto() {
  const canvas = $("#canvas");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  $("#stage").hidden = true;
  $("#results").replaceChildren();
}

async function recognizePhoto(file) {
  stopCamera(false);
  const status = $("#status");
  say(status, `Looking for faces in ${file.name}…`);
  clearPhoto();
  try {
    const img = await loadImage(file).catch(() => {
      throw new Error("not a picture the browser can show");
    });
    const canvas = $("#canvas");
    // drawn at 720-1600 px on the long side: small photos are enlarged so names stay legible
    const long = Math.max(img.naturalWidth, img.naturalHeight);
    const fit = Math.min(1600 / long, Math.max(1, 720 / long));
    canvas.width = Math.round(img.naturalWidth * fit);
    canvas.height = Math.round(img.naturalHeight * fit);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    $("#stage").hidden = false;
    const form = new FormData();
    form.append("file", file.size > MAX_UPLOAD ? await canvasBlob(canvas) : file, file.name);
    const t0 = performance.now();
    const result = await apiJSON("/v1/recognize?prediction_count=3&face_plugins=age,gender,pose", { method: "POST", body: form });
    const ms = Math.round(performance.now() - t0);
    drawFaces(ctx, result.faces, canvas.width / result.width);
    listFaces(result.faces);
    showStatus(result);
    const n = result.faces.length;
    say(status, n ? `${n} face${n > 1 ? "s" : ""} found in ${file.name} in ${ms} ms`
      : `No face found in ${file.name}`);
  } catch (err) {
    clearPhoto();
    const text = err.message.startsWith(file.name) ? err.message : `${file.name}: ${err.message}`;
    say(status, text, true);
  }
}

// ------------------------------------------------------------------ the camera
async function startCamera() {
  const status = $("#status");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    say(status, "This browser cannot use a camera here (it needs https or localhost).", true);
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
    });
    const video = $("#video");
    video.srcObject = stream;
    await video.play();
    state.camera = { stream, busy: false, last: 0 };
    state.faces = [];
    $("#camera").textContent = "Stop camera";
    $("#camera").classList.add("on");
    $("#stage").hidden = false;
    say(status, "Camera on: names are drawn live");
    requestAnimationFrame(cameraFrame);
  } catch (err) {
    say(status, `Camera not available: ${err.message}`, true);
  }
}

function stopCamera(tell = true) {
  if (!state.camera) return;
  state.camera.stream.getTracks().forEach((t) => t.stop());
  state.camera = null;
  $("#camera").textContent = "Use camera";
  $("#camera").classList.remove("on");
  if (tell) say($("#status"), "Camera off");
}

function cameraFrame(now) {
  const cam = state.camera;
  if (!cam) return;
  const video = $("#video");
  const canvas = $("#canvas");
  if (video.videoWidth) {
    if (canvas.width !== video.videoWidth) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
    }
    const ctx = canvas.getContext("2d");
    ctx.drawImage(video, 0, 0);
    drawFaces(ctx, state.faces, state.scale);
    if (!cam.busy && now - cam.last >= CAMERA_INTERVAL_MS) sendFrame(cam, video, now);
  }
  requestAnimationFrame(cameraFrame);
}

async function sendFrame(cam, video, now) {
  cam.busy = true;
  cam.last = now;
  try {
    const fit = Math.min(1, CAMERA_SIDE / video.videoWidth);
    const frame = document.createElement("canvas");
    frame.width = Math.round(video.videoWidth * fit);
    frame.height = Math.round(video.videoHeight * fit);
    frame.getContext("2d").drawImage(video, 0, 0, frame.width, frame.height);
    const body = await canvasBlob(frame, 0.8);
    const result = await apiJSON("/v1/recognize", { method: "POST", body });
    if (state.camera !== cam) return;
    state.faces = result.faces;
    state.scale = video.videoWidth / result.width;
    listFaces(result.faces);
    showStatus(result);
  } catch (err) {
    say($("#status"), err.message, true);
  } finally {
    cam.busy = false;
  }
}

// ------------------------------------------------------------------ people
async function loadPeople() {
  const status = $("#people-status");
  try {
    const data = await apiJSON("/v1/people?size=500");
    showStatus(data);
    const ul = $("#people");
    ul.replaceChildren(...data.people.map(personCard));
    if (!data.people.length) say(status, "Nobody is enrolled yet: add a person above.");
    else if (!status.classList.contains("keep")) say(status, "");
  } catch (err) {
    say(status, err.message, true);
  }
}

function personCard(p) {
  const li = document.createElement("li");
  li.className = "person";
  li.dataset.name = p.name;
  const thumb = document.createElement("div");
  thumb.className = "thumb";
  thumb.textContent = p.label.slice(0, 1).toUpperCase();
  thumb.style.background = `hsl(${[...p.name].reduce((h, c) => h + c.charCodeAt(0), 0) % 360} 35% 60%)`;
  loadThumb(p.name, thumb);
  const info = document.createElement("div");
  info.className = "info";
  info.innerHTML = '<div class="name"></div><div class="count"></div>';
  info.querySelector(".name").textContent = p.label;
  info.querySelector(".name").title = p.name;
  const count = document.createElement("button");
  count.type = "button";
  count.className = "link";
  count.textContent = `${p.photos} photo${p.photos === 1 ? "" : "s"}`;
  count.title = `show the photos of ${p.label}`;
  count.addEventListener("click", () => togglePhotos(li, p.name));
  info.querySelector(".count").replaceChildren(count);
  const actions = document.createElement("div");
  actions.className = "actions";
  const add = document.createElement("label");
  add.className = "file secondary";
  add.innerHTML = '<input type="file" accept="image/*" multiple><span>Add photos</span>';
  add.querySelector("input").addEventListener("change", (e) => enrol(p.name, e.target.files));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "danger";
  remove.textContent = "Remove";
  remove.addEventListener("click", () => removePerson(p.name));
  const rename = document.createElement("button");
  rename.type = "button";
  rename.className = "secondary";
  rename.textContent = "Rename";
  rename.addEventListener("click", () => renamePerson(p.name));
  actions.append(add, rename, remove);
  const panel = document.createElement("ul");
  panel.className = "photos";
  panel.hidden = true;
  li.append(thumb, info, actions, panel);
  return li;
}

// ------------------------------------------------------------------ one person's photos
const PHOTO_PAGE = 24;

async function togglePhotos(li, name, open = null) {
  const panel = li.querySelector(".photos");
  panel.hidden = open === null ? !panel.hidden : !open;
  if (!panel.hidden) await loadPhotos(panel, name, 0);
}

async function loadPhotos(panel, name, page) {
  const status = $("#people-status");
  try {
    const url = `/v1/people/${encodeURIComponent(name)}/photos?page=${page}&size=${PHOTO_PAGE}`;
    const data = await apiJSON(url);
    if (page === 0) panel.replaceChildren();
    panel.querySelector(".more")?.remove();
    for (const ph of data.photos) panel.append(photoCard(name, ph, data.label));
    if (data.page + 1 < data.pages) {
      const more = document.createElement("li");
      more.className = "more";
      const b = document.createElement("button");
      b.type = "button";
      b.className = "secondary";
      b.textContent = `More (${data.total - (data.page + 1) * data.size} left)`;
      b.addEventListener("click", () => loadPhotos(panel, name, data.page + 1));
      more.append(b);
      panel.append(more);
    }
  } catch (err) {
    say(status, err.message, true);
  }
}

function photoCard(name, ph, label) {
  const li = document.createElement("li");
  li.className = "photo";
  li.dataset.id = ph.id;
  const img = document.createElement("img");
  img.alt = ph.source;
  img.className = "thumb";
  api(ph.thumbnail).then((r) => r.blob()).then((b) => { img.src = URL.createObjectURL(b); })
    .catch(() => { img.classList.add("missing"); });
  const caption = document.createElement("span");
  caption.className = "source";
  caption.textContent = ph.source;
  caption.title = `photo ${ph.id}`;
  const del = document.createElement("button");
  del.type = "button";
  del.className = "danger small";
  del.textContent = "Delete";
  del.title = `delete ${ph.source}`;
  del.addEventListener("click", () => removePhoto(name, ph, label));
  li.append(img, caption, del);
  return li;
}

async function removePhoto(name, ph, label) {
  if (!confirm(`Delete the photo ${ph.source} of ${label}?`)) return;
  const status = $("#people-status");
  try {
    const url = `/v1/people/${encodeURIComponent(name)}/photos/${encodeURIComponent(ph.id)}`;
    const r = await apiJSON(url, { method: "DELETE" });
    say(status, r.photos ? `Deleted ${ph.source} (${r.photos} photo${r.photos === 1 ? "" : "s"} of ${label} left)`
      : `Deleted ${ph.source}, the last photo of ${label}`);
    await reloadPeople(r.photos ? name : null);
  } catch (err) {
    say(status, err.message, true);
  }
}

async function renamePerson(name) {
  const status = $("#people-status");
  const to = (prompt(`New name for ${name}:`, name) || "").trim();
  if (!to || to === name) return;
  const send = (merge) => apiJSON(`/v1/people/${encodeURIComponent(name)}`, {
    method: "PATCH", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: to, merge }),
  });
  try {
    let r;
    try {
      r = await send(false);
    } catch (err) {
      if (!/\(409\)$/.test(err.message) || !confirm(`${to} is already enrolled: merge ${name} into ${to}?`)) throw err;
      r = await send(true);
    }
    say(status, r.merged ? `Merged ${r.from} into ${r.name} (${r.photos} photos)` : `Renamed ${r.from} to ${r.name}`);
    await reloadPeople(r.name);
  } catch (err) {
    say(status, err.message, true);
  }
}

// the people list again, keeping the status line, with ``open``'s photos shown
async function reloadPeople(open = null) {
  const status = $("#people-status");
  status.classList.add("keep");
  await loadPeople();
  status.classList.remove("keep");
  if (open) {
    const li = [...document.querySelectorAll("#people .person")].find((el) => el.dataset.name === open);
    if (li) await togglePhotos(li, open, true);
  }
}

async function loadThumb(name, holder) {
  try {
    const res = await api(`/v1/people/${encodeURIComponent(name)}/thumbnail`);
    const img = document.createElement("img");
    img.className = "thumb";
    img.alt = name;
    img.src = URL.createObjectURL(await res.blob());
    holder.replaceWith(img);
  } catch (err) { /* keep the initial */ }
}

async function enrol(name, files) {
  const status = $("#people-status");
  if (!files || !files.length) return;
  const form = new FormData();
  for (const f of files) form.append("image", f, f.name);
  say(status, `Adding ${files.length} photo${files.length > 1 ? "s" : ""} of ${name}…`);
  try {
    const url = `/v1/people/${encodeURIComponent(name)}/photos`;
    const r = await apiJSON(url, { method: "POST", body: form });
    let text = `Added ${r.added} photo${r.added === 1 ? "" : "s"} of ${r.name} (${r.photos} in all)`;
    if (r.skipped.length) text += `; skipped: ${r.skipped.map((s) => s.reason).join("; ")}`;
    say(status, text);
    await reloadPeople();
    return true;
  } catch (err) {
    say(status, err.message, true);
    return false;
  }
}

async function removePerson(name) {
  if (!confirm(`Remove ${name} and all their photos from the gallery?`)) return;
  const status = $("#people-status");
  try {
    const r = await apiJSON(`/v1/people/${encodeURIComponent(name)}`, { method: "DELETE" });
    say(status, `Removed ${r.name} (${r.removed} photo${r.removed === 1 ? "" : "s"})`);
    await reloadPeople();
  } catch (err) {
    say(status, err.message, true);
  }
}

// ------------------------------------------------------------------ wiring
function route() {
  const view = location.hash === "#people" ? "people" : "recognize";
  for (const v of ["recognize", "people"]) $(`#view-${v}`).hidden = v !== view;
  document.querySelectorAll("nav a[data-view]").forEach((a) => a.classList.toggle("active", a.dataset.view === view));
  if (view === "people") { stopCamera(); loadPeople(); }
}

function init() {
  const drop = $("#drop");
  $("#photo").addEventListener("change", (e) => {
    const file = e.target.files[0];
    e.target.value = ""; // choosing the same file again fires "change" again
    if (file) recognizePhoto(file);
  });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => e.dataTransfer.files[0] && recognizePhoto(e.dataTransfer.files[0]));
  $("#camera").addEventListener("click", () => (state.camera ? stopCamera() : startCamera()));
  $("#photos").addEventListener("change", (e) => {
    const n = e.target.files.length;
    $("#photos-label").textContent = n ? `${n} photo${n > 1 ? "s" : ""}` : "Choose photos";
  });
  $("#enrol").addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = e.target.querySelector("button");
    button.disabled = true;
    if (await enrol($("#name").value.trim(), $("#photos").files)) {
      e.target.reset();
      $("#photos-label").textContent = "Choose photos";
    }
    button.disabled = false;
  });
  $("#keybar").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("#key").value.trim();
    localStorage.setItem(KEY_STORE, state.key);
    $("#keybar").hidden = true;
    route();
  });
  window.addEventListener("hashchange", route);
  route();
  // with keys on, /health tells the gallery's size only to a key holder
  api("/health").then((r) => r.json()).then((h) => h.identities != null && showStatus(h)).catch(() => {});
}

init();
