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
    try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(`${detail} (${res.status})`);
  }
  return res;
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
  const who = face.identity || "unknown";
  const sim = face.similarity == null ? "" : ` ${face.similarity.toFixed(3)}`;
  return who + sim;
}

function drawFaces(ctx, faces, scale) {
  const w = ctx.canvas.width;
  const line = Math.max(2, Math.round(w / 320));
  const size = Math.max(14, Math.round(w / 38));
  ctx.font = `600 ${size}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
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
    const tw = ctx.measureText(text).width + 2 * line + 8;
    const ty = y1 - size - 8 >= 0 ? y1 - size - 8 : y2;
    ctx.fillStyle = color;
    ctx.fillRect(x1 - line / 2, ty, tw, size + 8);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x1 + line + 2, ty + 4);
  }
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
    name.textContent = who;
    const why = document.createElement("div");
    why.className = "why";
    const parts = [];
    if (f.similarity != null) parts.push(`similarity ${f.similarity.toFixed(3)}`);
    if (f.runner_up) parts.push(`${who === "unknown" ? "closest" : "next"}: ${f.runner_up}`);
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

async function recognizePhoto(file) {
  stopCamera();
  const status = $("#status");
  say(status, `Looking for faces in ${file.name}…`);
  $("#results").replaceChildren();
  try {
    const img = await loadImage(file);
    const canvas = $("#canvas");
    // drawn at 720-1600 px on the long side: small photos are enlarged so names stay legible
    const long = Math.max(img.naturalWidth, img.naturalHeight);
    const fit = Math.min(1600 / long, Math.max(1, 720 / long));
    canvas.width = Math.round(img.naturalWidth * fit);
    canvas.height = Math.round(img.naturalHeight * fit);
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    $("#stage").hidden = false;
    const body = file.size > MAX_UPLOAD ? await canvasBlob(canvas) : file;
    const t0 = performance.now();
    const result = await (await api("/v1/recognize", { method: "POST", body })).json();
    const ms = Math.round(performance.now() - t0);
    drawFaces(ctx, result.faces, canvas.width / result.width);
    listFaces(result.faces);
    showStatus(result);
    const n = result.faces.length;
    say(status, n ? `${n} face${n > 1 ? "s" : ""} found in ${ms} ms` : "No face found in this photo");
  } catch (err) {
    say(status, err.message, true);
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

function stopCamera() {
  if (!state.camera) return;
  state.camera.stream.getTracks().forEach((t) => t.stop());
  state.camera = null;
  $("#camera").textContent = "Use camera";
  $("#camera").classList.remove("on");
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
    const result = await (await api("/v1/recognize", { method: "POST", body })).json();
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
    const data = await (await api("/v1/people")).json();
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
  thumb.textContent = p.name.slice(0, 1).toUpperCase();
  thumb.style.background = `hsl(${[...p.name].reduce((h, c) => h + c.charCodeAt(0), 0) % 360} 35% 60%)`;
  loadThumb(p.name, thumb);
  const info = document.createElement("div");
  info.className = "info";
  info.innerHTML = '<div class="name"></div><div class="count"></div>';
  info.querySelector(".name").textContent = p.name;
  info.querySelector(".count").textContent = `${p.photos} photo${p.photos === 1 ? "" : "s"}`;
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
  actions.append(add, remove);
  li.append(thumb, info, actions);
  return li;
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
    const r = await (await api(url, { method: "POST", body: form })).json();
    let text = `Added ${r.added} photo${r.added === 1 ? "" : "s"} of ${r.name} (${r.photos} in all)`;
    if (r.skipped.length) text += `; skipped: ${r.skipped.map((s) => s.reason).join("; ")}`;
    say(status, text);
    status.classList.add("keep");
    await loadPeople();
    status.classList.remove("keep");
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
    const r = await (await api(`/v1/people/${encodeURIComponent(name)}`, { method: "DELETE" })).json();
    say(status, `Removed ${r.name} (${r.removed} photo${r.removed === 1 ? "" : "s"})`);
    status.classList.add("keep");
    await loadPeople();
    status.classList.remove("keep");
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
  $("#photo").addEventListener("change", (e) => e.target.files[0] && recognizePhoto(e.target.files[0]));
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
  api("/health").then((r) => r.json()).then(showStatus).catch(() => {});
}

init();
