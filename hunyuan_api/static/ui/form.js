// The playground's form: the model picker, the picked model's parameter fields, and the image input
// of image-to-video models. Plain JavaScript, loaded before app.js (which submits what readForm reads).
"use strict";

const LABELS = {
  width: "Width (px)", height: "Height (px)", video_length: "Frames", fps: "Frames per second",
  num_inference_steps: "Inference steps", guidance_scale: "Guidance scale", flow_shift: "Flow shift",
  embedded_guidance_scale: "Embedded guidance",
};
// The form's order (JSON objects arrive sorted by name); parameters not listed here follow.
const ORDER = ["width", "height", "video_length", "fps", "num_inference_steps", "guidance_scale",
  "embedded_guidance_scale", "flow_shift"];
// Spinner steps that land on values the model takes (the server rounds anything else).
const STEPS = { width: 16, height: 16, video_length: 4 };

const $ = (selector) => document.querySelector(selector);
const picked = {
  models: [],        // GET /api/info `models`
  model: null,       // the picked one
  parameters: {},    // its parameters that the form shows (those it uses), in ORDER
  maxUploadBytes: 0, // GET /api/info limits.max_upload_bytes (0: not said)
  imageUrl: null,    // the preview's object URL, revoked when the file changes
};

function showError(element, message) {
  element.textContent = message || "";
  element.hidden = !message;
}

// The models a server offers; one from before `models` existed offers its one model.
function modelsOf(info) {
  if (Array.isArray(info.models) && info.models.length) return info.models;
  const model = info.model || {};
  return [{
    name: model.name, family: "hunyuanvideo", task: "text-to-video", takes_image: false, demo: model.demo,
    ready: model.ready, problem: model.problem, default: true, description: model.description,
    parameters: info.parameters, unused_fields: [], size_rules: info.size_rules || {},
  }];
}

function optionText(model) {
  return `${model.name} — ${model.task}${model.demo ? ", demo" : ""}${model.ready ? "" : " (not ready)"}`;
}

function buildForm(info) {
  const before = $("#model").value;
  picked.models = modelsOf(info);
  picked.maxUploadBytes = (info.limits && info.limits.max_upload_bytes) || 0;
  const select = $("#model");
  select.replaceChildren(...picked.models.map((model) => {
    // defaultSelected: "Reset to defaults" goes back to the server's default model.
    const option = new Option(optionText(model), model.name, Boolean(model.default));
    option.dataset.task = model.task;
    return option;
  }));
  // One model: nothing to pick, and the page looks as it always did.
  $("#model-field").hidden = picked.models.length < 2;
  $("#prompt").maxLength = info.prompt.max_length;
  $("#seed").max = info.seed.maximum;
  $("#seed-range").textContent = `(0–${info.seed.maximum}; empty = random)`;
  const keep = picked.models.some((model) => model.name === before) ? before : null;
  pickModel(keep || (picked.models.find((model) => model.default) || picked.models[0]).name);
}

// Show the model `name`: its ranges, defaults and help, and the image input if it takes one.
function pickModel(name) {
  const model = picked.models.find((m) => m.name === name) || picked.models[0];
  picked.model = model;
  $("#model").value = model.name;
  buildFields(model);
  describeModel(model);
  $("#image-field").hidden = !model.takes_image;
  $("#image").required = Boolean(model.takes_image);
}

function badge(text, kind) {
  const element = document.createElement("span");
  element.className = `badge ${kind}`;
  element.textContent = text;
  return element;
}

function describeModel(model) {
  const about = $("#model-about");
  about.replaceChildren(badge(model.task, "task"));
  if (model.demo) about.append(badge("demo", "demo"));
  about.append(badge(model.ready ? "ready" : "not ready", model.ready ? "ready" : "not-ready"));
  about.append(document.createTextNode(` ${model.family}${model.problem ? ": " + model.problem : ""}`));
  $("#model-note").textContent = model.demo
    ? `Model: ${model.name} — the embedded demo model has random weights, so its videos are noise.`
    : `Model: ${model.name}${model.ready ? "" : " (not ready: " + (model.problem || "preparing") + ")"}`;
}

function buildFields(model) {
  const unused = new Set(model.unused_fields || []);
  const names = Object.keys(model.parameters || {}).filter((name) => !unused.has(name))
    .sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99));
  picked.parameters = Object.fromEntries(names.map((name) => [name, model.parameters[name]]));
  const container = $("#parameter-fields");
  container.replaceChildren();
  for (const [name, p] of Object.entries(picked.parameters)) {
    const field = document.createElement("div");
    field.className = "field";
    const label = document.createElement("label");
    label.htmlFor = `param-${name}`;
    label.textContent = LABELS[name] || name;
    const range = document.createElement("span");
    range.className = "range";
    range.id = `param-${name}-range`;
    range.textContent = `${p.minimum}–${p.maximum}, default ${p.default}`;
    label.append(range);
    const input = document.createElement("input");
    Object.assign(input, { id: `param-${name}`, name, type: "number", min: p.minimum, max: p.maximum, required: true });
    input.step = STEPS[name] || (p.type === "integer" ? 1 : 0.1);
    input.value = p.default;
    input.defaultValue = String(p.default);
    const help = document.createElement("small");
    help.className = "help";
    help.id = `param-${name}-help`;
    help.textContent = p.description || "";
    input.setAttribute("aria-describedby", `${range.id} ${help.id}`);
    field.append(label, input, help);
    container.append(field);
  }
  // Fields the model ignores are not shown; the note says which, so nobody looks for them.
  const skipped = [...unused].map((name) => LABELS[name] || name);
  let note = skipped.length ? `Not used by ${model.name}: ${skipped.join(", ")}.` : "";
  if (model.takes_image && model.size_rules && model.size_rules.from_image) {
    note += `${note ? " " : ""}Size: ${model.size_rules.from_image}.`;
  }
  showError($("#unused-note"), note);
}

// The preview of the chosen image, with its pixel size once the browser has decoded it.
function showImage() {
  const file = $("#image").files[0];
  const figure = $("#image-preview");
  const image = figure.querySelector("img");
  const caption = $("#image-size");
  if (picked.imageUrl) URL.revokeObjectURL(picked.imageUrl);
  picked.imageUrl = null;
  caption.textContent = "";
  image.onload = image.onerror = null;
  if (!file) {
    image.removeAttribute("src");
    figure.hidden = true;
    return;
  }
  picked.imageUrl = URL.createObjectURL(file);
  image.onload = () => {
    caption.textContent = `${image.naturalWidth}×${image.naturalHeight} px · ${file.name} · ${formatBytes(file.size)}`;
  };
  image.onerror = () => {
    caption.textContent = `${file.name}: this browser cannot show it as an image (the server will say why).`;
  };
  image.src = picked.imageUrl;
  figure.hidden = false;
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

// The request: {body} (JSON fields), plus {image} (a File) for an image-to-video model; or {error} naming the
// first field that is wrong.
function readForm() {
  const model = picked.model || {};
  const prompt = $("#prompt").value.trim();
  if (!prompt) return { error: "prompt: Enter a prompt describing the video." };
  const body = { prompt };
  // Without `model` the server uses its default: the body for the default model stays as it always was.
  if (picked.models.length > 1 && !model.default) body.model = model.name;
  const negative = $("#negative_prompt").value.trim();
  if (negative) body.negative_prompt = negative;
  for (const [name, p] of Object.entries(picked.parameters)) {
    const raw = $(`#param-${name}`).value;
    const value = Number(raw);
    if (raw === "" || !Number.isFinite(value) || (p.type === "integer" && !Number.isInteger(value))) {
      return { error: `${name}: Enter ${p.type === "integer" ? "a whole number" : "a number"}.` };
    }
    if (value < p.minimum || value > p.maximum) {
      return { error: `${name}: Must be between ${p.minimum} and ${p.maximum}; got ${raw}.` };
    }
    body[name] = value;
  }
  const seed = $("#seed").value.trim();
  if (seed !== "") body.seed = Number(seed);
  if (!model.takes_image) return { body };
  const image = $("#image").files[0];
  if (!image) return { error: `image: Choose an image (PNG, JPEG or WebP): ${model.name} makes its video from it.` };
  if (picked.maxUploadBytes && image.size > picked.maxUploadBytes) {
    return { error: `image: ${image.name} is ${formatBytes(image.size)}; this server takes at most `
      + `${formatBytes(picked.maxUploadBytes)}.` };
  }
  return { body, image };
}

// A multipart body: the image as a file part, every other field a form field (the server reads them as JSON's).
function formBody(body, image) {
  const data = new FormData();
  for (const [name, value] of Object.entries(body)) data.append(name, String(value));
  data.append("image", image, image.name);
  return data;
}

function startForm() {
  $("#model").addEventListener("change", (event) => {
    pickModel(event.target.value);
    showError($("#form-error"), "");
  });
  $("#image").addEventListener("change", () => {
    showImage();
    showError($("#form-error"), "");
  });
  // The reset event comes before the fields are reset: redraw for the default model once they are.
  $("#generate-form").addEventListener("reset", () => setTimeout(() => {
    if (picked.models.length) pickModel($("#model").value);
    showImage();
  }));
}
