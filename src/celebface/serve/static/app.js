// celebface web page: recognise faces in a photo or the camera, and manage the people.
// Plain JavaScript, no build step. Talks to the API under /v1 (see /docs).
"use strict";

const $ = (sel) => document.querySelector(sel);
const KEY_STORE = "celebface-api-key";
const CAMERA_INTERVAL_MS = 250; // at most ~4 frames a second go to the server
const CAMERA_SIDE = 640; // camera frames are sent at most this wide
const MAX_UPLOAD = 8 * 1024 * 1024; // bigger photos are re-encoded smaller before sending

const PEOPLE_PAGE = 48; // people cards loaded at a time
// the canvas's name labels: white on these keeps a contrast of at least 4.5:1
const LABEL = { known: "#15803d", unknown: "#c2410c", text: "#ffffff" };

const state = {
  key: localStorage.getItem(KEY_STORE) || "", faces: [], scale: 1, camera: null,
  scope: "admin", // what the key may do: admin (edit people) or recognize
  action: null, // what the user asked for, while it runs
  pending: null, // what a missing or wrong key stopped: sent again once a key is entered
  peoplePage: 0, query: "",
};

// the user's request: remembered while it runs, so entering an API key can send it again
async function act(fn) {
  state.action = fn;
  try {
    return await fn();
  } finally {
    if (state.action === fn) state.action = null;
  }
}

// ------------------------------------------------------------------ the API
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.key) headers.set("X-API-Key", state.key);
  const res = await fetch(path, { ...options, headers });
  if (res.status === 401) {
    state.pending = state.action;
    $("#keybar").hidden = false;
    $("#key").focus(); // brings the key field into view, on a phone too
    throw new Error(state.key ? "this API key is not accepted: enter another one above"
      : "this server needs an API key: enter it above");
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

// a message in ``el``; an error is also shown at the bottom of the window when ``el`` is
// out of view (where the user is looking, on a phone too)
function say(el, text, error = false) {
  el.textContent = text;
  el.classList.toggle("error", error);
  const toast = $("#toast");
  if (!error) {
    toast.hidden = true;
    return;
  }
  const r = el.getBoundingClientRect();
  if (r.top >= 0 && r.bottom <= window.innerHeight) return;
  $("#toast-text").textContent = text;
  toast.hidden = false;
  clearTimeout(state.toastTimer);
  state.toastTimer = setTimeout(() => { toast.hidden = true; }, 10000);
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
    const back = known ? LABEL.known : LABEL.unknown;
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
    ctx.fillStyle = back;
    ctx.fillRect(tx, ty, tw, th);
    ctx.fillStyle = LABEL.text;
    ctx.fillText(text, tx + line + 2, ty + 4, tw - line - 4);
    labels.push({ text, x: tx, y: ty, w: tw, h: th, background: back, color: LABEL.text });
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
// one page of people (the first: the list starts again), filtered by the search box
async function loadPeople(page = 0) {
  const status = $("#people-status");
  try {
    const q = encodeURIComponent(state.query);
    const data = await apiJSON(`/v1/people?size=${PEOPLE_PAGE}&page=${page}&q=${q}`);
    showStatus(data);
    const ul = $("#people");
    if (page === 0) ul.replaceChildren();
    ul.append(...data.people.map(personCard));
    state.peoplePage = page;
    const more = $("#people-more");
    more.hidden = data.page + 1 >= data.pages;
    more.textContent = `Show more (${data.total - (data.page + 1) * data.size} left)`;
    $("#people-count").textContent = state.query
      ? `${data.total} of the people match “${state.query}”` : `${data.total} people`;
    if (!data.total && !state.query) say(status, "Nobody is enrolled yet: add a person above.");
    else if (!status.classList.contains("keep")) say(status, "");
  } catch (err) {
    say(status, err.message, true);
  }
}

// a thumbnail that loads when it comes into view (loading="lazy"; with a key, which an
// <img> cannot send, fetched when it is about to be seen)
const lazy = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (!e.isIntersecting) continue;
    lazy.unobserve(e.target);
    fetchInto(e.target);
  }
}, { rootMargin: "200px" }) : null;

function fetchInto(img) {
  api(img.dataset.src).then((r) => r.blob()).then((b) => { img.src = URL.createObjectURL(b); })
    .catch(() => img.dispatchEvent(new Event("error")));
}

function lazyImage(img, url) {
  img.loading = "lazy";
  if (!state.key) {
    img.src = url;
    return;
  }
  img.dataset.src = url;
  if (lazy) lazy.observe(img);
  else fetchInto(img);
}

function personCard(p) {
  const li = document.createElement("li");
  li.className = "person";
  li.dataset.name = p.name;
  li.dataset.label = p.label;
  const initial = document.createElement("div");
  initial.className = "thumb";
  initial.textContent = p.label.slice(0, 1).toUpperCase();
  initial.setAttribute("aria-hidden", "true");
  // dark enough for the white initial (contrast over 4.5:1)
  initial.style.background = `hsl(${[...p.name].reduce((h, c) => h + c.charCodeAt(0), 0) % 360} 35% 36%)`;
  const thumb = document.createElement("img");
  thumb.className = "thumb";
  thumb.alt = p.label;
  thumb.width = thumb.height = 160;
  thumb.addEventListener("error", () => thumb.replaceWith(initial), { once: true });
  lazyImage(thumb, `/v1/people/${encodeURIComponent(p.name)}/thumbnail`);
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
  count.setAttribute("aria-expanded", "false");
  count.addEventListener("click", () => togglePhotos(li, p.name));
  info.querySelector(".count").replaceChildren(count);
  const actions = document.createElement("div");
  actions.className = "actions admin";
  const add = document.createElement("label");
  add.className = "file secondary";
  add.innerHTML = '<input type="file" accept="image/*" multiple><span>Add photos</span>';
  add.querySelector("input").setAttribute("aria-label", `add photos of ${p.label}`);
  add.querySelector("input").addEventListener("change", (e) => {
    const files = [...e.target.files];
    e.target.value = "";
    act(() => enrol(p.name, files, p.label));
  });
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "danger";
  remove.textContent = "Remove";
  remove.setAttribute("aria-label", `remove ${p.label}`);
  remove.addEventListener("click", () => act(() => removePerson(p.name, p.label)));
  const rename = document.createElement("button");
  rename.type = "button";
  rename.className = "secondary";
  rename.textContent = "Rename";
  rename.setAttribute("aria-label", `rename ${p.label}`);
  rename.addEventListener("click", () => act(() => renamePerson(p.name, p.label)));
  actions.append(add, rename, remove);
  const panel = document.createElement("ul");
  panel.className = "photos";
  panel.hidden = true;
  panel.setAttribute("aria-label", `photos of ${p.label}`);
  li.append(thumb, info, actions, panel);
  return li;
}

// ------------------------------------------------------------------ one person's photos
const PHOTO_PAGE = 24;

async function togglePhotos(li, name, open = null) {
  const panel = li.querySelector(".photos");
  panel.hidden = open === null ? !panel.hidden : !open;
  li.querySelector(".count button").setAttribute("aria-expanded", String(!panel.hidden));
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
  img.width = img.height = 160;
  img.addEventListener("error", () => img.classList.add("missing"), { once: true });
  lazyImage(img, ph.thumbnail);
  const caption = document.createElement("span");
  caption.className = "source";
  caption.textContent = ph.source;
  caption.title = `photo ${ph.id}`;
  const del = document.createElement("button");
  del.type = "button";
  del.className = "danger small admin";
  del.textContent = "Delete";
  del.title = `delete ${ph.source}`;
  del.setAttribute("aria-label", `delete ${ph.source}`);
  del.addEventListener("click", () => act(() => removePhoto(name, ph, label)));
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

async function renamePerson(name, label) {
  const status = $("#people-status");
  const to = (prompt(`New name for ${label}:`, label) || "").trim();
  if (!to || to === name || to === label) return;
  const send = (merge) => apiJSON(`/v1/people/${encodeURIComponent(name)}`, {
    method: "PATCH", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: to, merge }),
  });
  try {
    let r;
    try {
      r = await send(false);
    } catch (err) {
      if (!/\(409\)$/.test(err.message)) throw err;
      // another person already has (or is shown under) that name: one card per name
      if (!confirm(`${to} is already in the gallery: move every photo of ${label} to ${to}?`)) {
        say(status, `Not renamed: ${to} is already in the gallery`);
        return;
      }
      r = await send(true);
    }
    say(status, r.merged ? `Merged ${r.from_label} into ${r.label} (${r.photos} photos)`
      : `Renamed ${r.from_label} to ${r.label}`);
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

async function enrol(name, files, label = name) {
  const status = $("#people-status");
  if (!files || !files.length) return;
  const form = new FormData();
  for (const f of files) form.append("image", f, f.name);
  say(status, `Adding ${files.length} photo${files.length > 1 ? "s" : ""} of ${label}…`);
  try {
    const url = `/v1/people/${encodeURIComponent(name)}/photos`;
    const r = await apiJSON(url, { method: "POST", body: form });
    let text = `Added ${r.added} photo${r.added === 1 ? "" : "s"} of ${r.label} (${r.photos} in all)`;
    if (r.skipped.length) text += `; skipped: ${r.skipped.map((s) => s.reason).join("; ")}`;
    say(status, text);
    await reloadPeople();
    return true;
  } catch (err) {
    say(status, err.message, true);
    return false;
  }
}

async function removePerson(name, label) {
  if (!confirm(`Remove ${label} and all their photos from the gallery?`)) return;
  const status = $("#people-status");
  try {
    const r = await apiJSON(`/v1/people/${encodeURIComponent(name)}`, { method: "DELETE" });
    say(status, `Removed ${r.label} (${r.removed} photo${r.removed === 1 ? "" : "s"})`);
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

// what the key may do: a recognise-only key sees no Add, Rename, Remove or Delete
async function loadScope() {
  try {
    const h = await (await api("/health")).json();
    if (h.identities != null) showStatus(h);
    state.scope = h.scope || "none";
  } catch (err) {
    state.scope = "none";
  }
  document.body.classList.toggle("read-only", state.scope !== "admin");
}

function init() {
  const drop = $("#drop");
  $("#photo").addEventListener("change", (e) => {
    const file = e.target.files[0];
    e.target.value = ""; // choosing the same file again fires "change" again
    if (file) act(() => recognizePhoto(file));
  });
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => {
    const file = e.dataTransfer.files[0];
    if (file) act(() => recognizePhoto(file));
  });
  $("#camera").addEventListener("click", () => (state.camera ? stopCamera() : startCamera()));
  $("#photos").addEventListener("change", (e) => {
    const n = e.target.files.length;
    $("#photos-label").textContent = n ? `${n} photo${n > 1 ? "s" : ""}` : "Choose photos";
  });
  $("#enrol").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    const button = form.querySelector("button");
    const name = $("#name").value.trim();
    const files = [...$("#photos").files];
    button.disabled = true;
    if (await act(() => enrol(name, files))) {
      form.reset();
      $("#photos-label").textContent = "Choose photos";
    }
    button.disabled = false;
  });
  $("#keybar").addEventListener("submit", async (e) => {
    e.preventDefault();
    state.key = $("#key").value.trim();
    localStorage.setItem(KEY_STORE, state.key);
    $("#keybar").hidden = true;
    await loadScope();
    // send again what the key was missing for (the photo, the edit), else reload the view
    const again = state.pending;
    state.pending = null;
    if (again) await act(again);
    else route();
  });
  let typing;
  $("#search").addEventListener("input", (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.query = e.target.value.trim(); loadPeople(0); }, 250);
  });
  $("#people-more").addEventListener("click", () => loadPeople(state.peoplePage + 1));
  $("#toast-close").addEventListener("click", () => { $("#toast").hidden = true; });
  window.addEventListener("hashchange", route);
  route();
  // with keys on, /health tells the gallery's size and the key's scope only to a key holder
  loadScope();
}

init();
