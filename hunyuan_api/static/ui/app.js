// The playground's script: plain JavaScript against the service's JSON API, no libraries.
// form.js (loaded first) draws the form for the picked model and reads it.
"use strict";

const KEY_STORAGE = "hunyuan-video.api-key";
const TERMINAL = new Set(["completed", "failed", "canceled"]);
const POLL_ACTIVE_MS = 1000;  // while a job is queued or running
const POLL_IDLE_MS = 5000;    // otherwise: just notice jobs submitted elsewhere
const LIST_LIMIT = 20;
const PHASES = {
  queued: "Waiting in the queue", starting: "Starting the runner", loading_model: "Loading the model",
  encoding_text: "Encoding the prompt", denoising: "Denoising", decoding: "Decoding frames",
  writing_video: "Writing the MP4", done: "Done", failed: "Failed", canceled: "Canceled",
};

const cards = new Map();        // job_id -> {element, mediaFor}
let keyPrompt = null;           // the pending API-key dialog, shared by concurrent 401s
let pollTimer = null;

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

function apiKey() { return localStorage.getItem(KEY_STORAGE) || ""; }

async function detailOf(response) {
  try {
    const body = await response.json();
    return body.detail || body.message || `HTTP ${response.status}`;
  } catch (_) {
    return `HTTP ${response.status} ${response.statusText}`;
  }
}

// Every request goes through here: adds the key, turns errors into ApiError with the server's detail,
// and on 401 asks for a key once and retries.
// `json` is sent as JSON; `form` (FormData) as multipart/form-data, its boundary set by the browser.
async function api(path, { method = "GET", json, form, retried = false } = {}) {
  const headers = {};
  if (apiKey()) headers["X-API-Key"] = apiKey();
  if (json !== undefined) headers["Content-Type"] = "application/json";
  const body = form !== undefined ? form : json === undefined ? undefined : JSON.stringify(json);
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch (error) {
    throw new ApiError(0, `The server cannot be reached (${error.message}).`);
  }
  if (response.status === 401 && !retried) {
    const detail = await detailOf(response);
    if (await askForKey(detail)) return api(path, { method, json, form, retried: true });
    throw new ApiError(401, detail);
  }
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  return response;
}

function askForKey(reason) {
  if (keyPrompt) return keyPrompt;
  const dialog = $("#key-dialog");
  const input = $("#api-key");
  input.value = apiKey();
  dialog.querySelector("p").textContent = (reason ? reason + " " : "") +
    "The key is kept in this browser only (localStorage) and sent as X-API-Key.";
  keyPrompt = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      keyPrompt = null;
      const saved = dialog.returnValue === "save" && input.value.trim() !== "";
      if (saved) localStorage.setItem(KEY_STORAGE, input.value.trim());
      resolve(saved);
    }, { once: true });
  });
  dialog.showModal();
  input.focus();
  return keyPrompt;
}

function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  return minutes < 60 ? `${minutes} min ${String(s % 60).padStart(2, "0")} s`
    : `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

// ---- the form -------------------------------------------------------------------------------

async function submit(event) {
  event.preventDefault();
  const errorBox = $("#form-error");
  const { body, image, error } = readForm();
  showError($("#form-note"), "");
  if (error) return showError(errorBox, error);
  showError(errorBox, "");
  const button = $("#submit");
  button.disabled = true;
  try {
    // With an image the body is multipart (the file as it is, no base64); otherwise JSON as always.
    const request = image ? { method: "POST", form: formBody(body, image) } : { method: "POST", json: body };
    const response = await api("/api/generate", request);
    const job = await response.json();
    if (job.adjustments && job.adjustments.length) showError($("#form-note"), job.adjustments.join("; "));
    await refresh();
  } catch (err) {
    showError(errorBox, err.message);
  } finally {
    button.disabled = false;
  }
}

// ---- the job list ---------------------------------------------------------------------------

// With a key the browser cannot add headers to <video src>, so media is fetched and shown as a blob.
async function mediaUrl(path) {
  if (!apiKey()) return path;
  const response = await api(path);
  return URL.createObjectURL(await response.blob());
}

function newCard(job) {
  const element = $("#job-template").content.firstElementChild.cloneNode(true);
  element.dataset.jobId = job.job_id;
  const short = job.job_id.slice(0, 8);
  element.querySelector(".bar").setAttribute("aria-label", `Progress of job ${short}`);
  element.querySelector(".cancel").setAttribute("aria-label", `Cancel job ${short}`);
  element.querySelector(".delete").setAttribute("aria-label", `Delete job ${short}`);
  element.querySelector(".cancel").addEventListener("click", () => act(job.job_id, "cancel"));
  element.querySelector(".delete").addEventListener("click", () => act(job.job_id, "delete"));
  return { element, mediaFor: null };
}

function phaseText(job) {
  const left = job.eta_seconds ? ` · about ${formatSeconds(job.eta_seconds)} left` : "";
  if (job.status === "queued") {
    return `${PHASES.queued}${job.queue_position ? ` (position ${job.queue_position})` : ""}${left}`;
  }
  if (job.status === "processing") {
    const step = job.phase === "denoising" && job.steps ? ` step ${job.step}/${job.steps}` : "";
    return `${PHASES[job.phase] || job.phase}${step}${left}`;
  }
  if (job.status === "completed") {
    const took = job.started_at && job.finished_at ? (Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000 : null;
    return took === null ? "Done" : `Done in ${formatSeconds(took)}`;
  }
  return PHASES[job.status] || job.status;
}

function updateCard(card, job) {
  const el = card.element;
  el.className = `job status-${job.status}`;
  const badge = el.querySelector(".badge");
  badge.textContent = job.status;
  const params = job.params || {};
  el.querySelector(".prompt").textContent = params.prompt || "(no prompt)";
  el.querySelector(".meta").textContent = [
    ...(picked.models.length > 1 && job.model ? [job.model] : []),
    `${params.width}×${params.height}`, `${params.video_length} frames @ ${params.fps} fps`,
    `${params.num_inference_steps} steps`, `seed ${params.seed}`,
    new Date(job.created_at).toLocaleString(), job.job_id.slice(0, 8),
  ].join(" · ");
  const percent = Math.round((job.progress || 0) * 100);
  const bar = el.querySelector(".bar");
  bar.setAttribute("aria-valuenow", String(percent));
  bar.setAttribute("aria-valuetext", `${percent}%`);
  el.querySelector(".fill").style.width = `${percent}%`;
  el.querySelector(".percent").textContent = `${percent}%`;
  el.querySelector(".phase").textContent = phaseText(job);
  showError(el.querySelector(".job-error"), job.error);
  el.querySelector(".cancel").hidden = TERMINAL.has(job.status);
  el.querySelector(".delete").hidden = job.status === "processing";
  if (job.status === "completed" && job.video_url && card.mediaFor !== job.video_url) {
    card.mediaFor = job.video_url;
    showVideo(el, job).catch((err) => showError(el.querySelector(".job-error"), err.message));
  }
}

async function showVideo(el, job) {
  const video = el.querySelector("video");
  video.setAttribute("aria-label", `Video of job ${job.job_id.slice(0, 8)}`);
  if (job.poster_url) video.poster = await mediaUrl(job.poster_url);
  const source = await mediaUrl(job.video_url);
  video.src = source;
  el.querySelector(".player").hidden = false;
  const link = el.querySelector(".download");
  link.href = source;
  link.download = `${job.job_id}.mp4`;
  link.hidden = false;
}

function render(jobs) {
  const list = $("#jobs");
  const seen = new Set();
  jobs.forEach((job, index) => {
    seen.add(job.job_id);
    let card = cards.get(job.job_id);
    if (!card) {
      card = newCard(job);
      cards.set(job.job_id, card);
    }
    updateCard(card, job);
    // Move only what is out of place: moving a playing <video> would stop it.
    if (list.children[index] !== card.element) list.insertBefore(card.element, list.children[index] || null);
  });
  for (const [id, card] of cards) {
    if (!seen.has(id)) {
      card.element.remove();
      cards.delete(id);
    }
  }
  $("#no-jobs").hidden = jobs.length > 0;
  const running = jobs.filter((j) => j.status === "processing").length;
  const queued = jobs.filter((j) => j.status === "queued").length;
  $("#jobs-summary").textContent = `${jobs.length} shown · ${running} running · ${queued} queued`;
  return running + queued > 0;
}

async function refresh() {
  clearTimeout(pollTimer);
  let active = false;
  try {
    const response = await api(`/api/jobs?limit=${LIST_LIMIT}`);
    active = render((await response.json()).jobs);
    showError($("#jobs-error"), "");
  } catch (err) {
    showError($("#jobs-error"), err.message);
  }
  pollTimer = setTimeout(refresh, active ? POLL_ACTIVE_MS : POLL_IDLE_MS);
}

async function act(jobId, action) {
  const errorBox = $("#jobs-error");
  if (action === "delete" && !window.confirm(`Delete job ${jobId.slice(0, 8)} and its video?`)) return;
  try {
    if (action === "cancel") await api(`/api/jobs/${jobId}/cancel`, { method: "POST" });
    else await api(`/api/jobs/${jobId}`, { method: "DELETE" });
    showError(errorBox, "");
  } catch (err) {
    showError(errorBox, `Could not ${action} job ${jobId.slice(0, 8)}: ${err.message}`);
  }
  await refresh();
}

async function load() {
  try {
    buildForm(await (await api("/api/info")).json());
  } catch (err) {
    $("#model-note").textContent = `Cannot read the server's parameters: ${err.message}`;
  }
  await refresh();
}

function start() {
  startForm();
  $("#generate-form").addEventListener("submit", submit);
  $("#generate-form").addEventListener("reset", () => showError($("#form-error"), ""));
  $("#change-key").addEventListener("click", async () => { if (await askForKey("")) await load(); });
  load();
}

document.addEventListener("DOMContentLoaded", start, { once: true });
