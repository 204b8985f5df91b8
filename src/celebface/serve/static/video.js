"use strict";
// The video page: upload (choose or drop) a video, follow its job, play it with the timeline
// under it; when the browser cannot play the file itself, the job's WebM copy plays.
const KEY_STORE = "celebface-api-key";
const $ = (sel) => document.querySelector(sel);
const state = { key: localStorage.getItem(KEY_STORE) || "", duration: 0, spans: [], job: null };

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.key) headers.set("X-API-Key", state.key);
  const res = await fetch(path, { ...options, headers });
  if (res.status === 401) {
    const key = window.prompt("This server needs an API key");
    if (key) {
      state.key = key.trim();
      localStorage.setItem(KEY_STORE, state.key);
      return api(path, options);
    }
  }
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(detail);
  }
  return res;
}

const fmt = (s) => `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, "0")}`;

function setStatus(text, progress) {
  $("#job").hidden = false;
  $("#status").textContent = text;
  if (progress !== undefined) $("#progress").value = progress;
}

async function upload(file) {
  const player = $("#player");
  player.src = URL.createObjectURL(file);
  player.dataset.source = "upload";
  player.hidden = false;
  $("#timeline").replaceChildren();
  $("#appearances").hidden = true;
  setStatus(`uploading ${file.name}…`, 0);
  try {
    const job = await (await api(`/v1/videos?filename=${encodeURIComponent(file.name)}`,
      { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } })).json();
    await follow(job.id);
  } catch (err) {
    // the server's messages name the file; say it when one does not
    const msg = err.message.includes(file.name) ? err.message : `${file.name}: ${err.message}`;
    setStatus(`failed: ${msg}`);
  }
}

async function playCopy(job) {
  // the browser cannot play the upload itself (e.g. an MPEG-4 part 2 MP4): the job's WebM copy
  const blob = await (await api(job.video_url)).blob();
  $("#player").src = URL.createObjectURL(blob);
  $("#player").dataset.source = "copy";
}

async function follow(id) {
  for (;;) {
    const job = await (await api(`/v1/videos/${id}`)).json();
    if (job.status === "done") {
      if (job.video_url) await playCopy(job);
      setStatus(`${job.appearances.length} appearance(s) in ${job.frames_done} frames ` +
                `(${job.seconds} s)`, 1);
      show(job);
      return;
    }
    if (job.status === "failed") throw new Error(job.error);
    setStatus(`${job.status}: frame ${job.frames_done} of ${job.frames_total}`, job.progress);
    await new Promise((r) => setTimeout(r, 500));
  }
}

function seek(a, span) {
  const player = $("#player");
  player.currentTime = a.start_s;
  document.querySelectorAll(".span.active").forEach((el) => el.classList.remove("active"));
  if (span) span.classList.add("active");
}

function nameForm(a) {
  // who an unknown track is: its face is enrolled under the name (enroll --from-timeline)
  const form = document.createElement("form");
  form.className = "name-track";
  form.dataset.track = a.track;
  const input = document.createElement("input");
  input.name = "name";
  input.required = true;
  input.maxLength = 64;
  input.placeholder = "who is this?";
  input.setAttribute("aria-label", `name of ${a.person} (track ${a.track})`);
  const button = document.createElement("button");
  button.type = "submit";
  button.textContent = "Name";
  const note = document.createElement("span");
  note.className = "note";
  note.setAttribute("role", "status");
  form.append(input, button, note);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    button.disabled = true;
    note.textContent = "enrolling…";
    try {
      const job = await (await api(`/v1/videos/${state.job}/tracks/${a.track}/name`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: input.value.trim() }) })).json();
      show(job);
      setStatus(`${a.person} is now ${job.enrolled.label} (enrolled)`);
    } catch (err) {
      note.textContent = err.message;
      button.disabled = false;
    }
  });
  return form;
}

function show(job) {
  state.job = job.id;
  const apps = job.appearances;
  state.duration = Math.max(job.frames_total / (job.fps || 25), ...apps.map((a) => a.end_s), 0.001);
  const people = [...new Set(apps.map((a) => a.person))];
  // the name to show of each person (the server's: "Ben Afflek" for ben_afflek)
  const shown = new Map(apps.map((a) => [a.person, a.label || a.person]));
  const label = (person) => shown.get(person);
  const timeline = $("#timeline");
  timeline.replaceChildren();
  state.spans = [];
  for (const person of people) {
    const who = document.createElement("div");
    who.className = "who";
    who.textContent = label(person);
    who.title = person;
    const lane = document.createElement("div");
    lane.className = "lane";
    for (const a of apps.filter((x) => x.person === person)) {
      const span = document.createElement("button");
      span.type = "button";
      span.className = "span" + (person.startsWith("unknown-") ? " unknown" : "");
      span.style.left = `${(100 * a.start_s) / state.duration}%`;
      span.style.width = `${(100 * (a.end_s - a.start_s)) / state.duration}%`;
      span.title = `${label(person)}, track ${a.track}: ${fmt(a.start_s)} to ${fmt(a.end_s)}`;
      span.setAttribute("aria-label", span.title);
      span.dataset.track = a.track;
      span.dataset.start = a.start_s;
      span.addEventListener("click", () => seek(a, span));
      lane.append(span);
      state.spans.push(span);
    }
    const cursor = document.createElement("div");
    cursor.className = "cursor";
    lane.append(cursor);
    timeline.append(who, lane);
    if (person.startsWith("unknown-")) {
      for (const a of apps.filter((x) => x.person === person)) timeline.append(nameForm(a));
    }
  }
  const body = $("#appearances tbody");
  body.replaceChildren();
  for (const a of apps) {
    const row = document.createElement("tr");
    const img = document.createElement("img");
    img.alt = label(a.person);
    if (a.thumbnail_url) {
      api(a.thumbnail_url).then((r) => r.blob()).then((b) => { img.src = URL.createObjectURL(b); })
        .catch(() => {});
    }
    const cells = [img, label(a.person), a.track, fmt(a.start_s), fmt(a.end_s), a.frames,
      a.best_score ?? "", a.mean_score ?? ""];
    for (const c of cells) {
      const td = document.createElement("td");
      td.append(c instanceof Node ? c : document.createTextNode(String(c)));
      row.append(td);
    }
    row.addEventListener("click", () => seek(a, state.spans.find((s) => +s.dataset.track === a.track)));
    body.append(row);
  }
  $("#appearances").hidden = !apps.length;
}

function init() {
  $("#video-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) upload(file);
  });
  const drop = $(".drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) upload(file);
  });
  $("#player").addEventListener("timeupdate", () => {
    const t = $("#player").currentTime;
    document.querySelectorAll(".cursor").forEach((c) => {
      c.style.left = `${(100 * t) / (state.duration || 1)}%`;
    });
  });
}

init();
