// The explorer's frame: reads manifest.json and strings.json, keeps the state in the URL, picks the model and the
// view, and offers window.vaeExplorer to tests and to pages that embed the explorer.
import { Model, startRuntime } from "./model.js";
import { VIEWS, browserLanguage, fromUrl, setWords, t, toUrl } from "./state.js";
import { h } from "./ui.js";
import * as sliders from "./views/sliders.js";
import * as manifold from "./views/manifold.js";
import * as draw from "./views/draw.js";
import * as interpolate from "./views/interpolate.js";
import * as map from "./views/map.js";

const MODULES = { sliders, manifold, draw, interpolate, map };
const LANGUAGES = { en: "English", "zh-CN": "简体中文" };
const app = document.getElementById("app");
const models = {};  // name -> Model, fetched when first picked
let manifest, words, state, ignored, unmount = null, renders = 0;

const api = window.vaeExplorer = { latencies: [], state: null };
api.ready = boot();
api.decode = async (name, z, y) => (await loaded(name)).decode(Float32Array.from(z), y ?? [0]);
api.encode = async (name, x, y) => (await loaded(name)).encode(Float32Array.from(x), y ?? [0]);

async function boot() {
  startRuntime();  // the WebAssembly binary downloads while the manifest is read
  [manifest, words] = await Promise.all([fetchJson("manifest.json"), fetchJson("strings.json")]);
  ({ state, ignored } = fromUrl());
  if (!manifest.models.some((m) => m.name === state.model)) {
    if (state.model) ignored.push("model");
    state.model = manifest.models[0].name;
  }
  state.lang ||= browserLanguage();
  check(manifest.models.find((m) => m.name === state.model));
  api.state = state;
  addEventListener("popstate", () => {  // Back and Forward: the view, model and language they held
    ({ state, ignored } = fromUrl());
    if (!manifest.models.some((m) => m.name === state.model)) state.model = manifest.models[0].name;
    state.lang ||= browserLanguage();
    check(manifest.models.find((m) => m.name === state.model));
    api.state = state;
    render(false);
  });
  await render(false);
}

// Drop the values a link holds that this model cannot take, and say so.
function check(entry) {
  const drop = (key, value) => { state[key] = value; ignored.push(key); };
  if (state.y >= entry.class_names.length) drop("y", 0);
  if (state.z && state.z.length !== entry.latent_dim) drop("z", null);
  if (state.a !== null && state.a >= entry.n) drop("a", null);
  if (state.b !== null && state.b >= entry.n) drop("b", null);
}

async function fetchJson(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function loaded(name) {
  const entry = manifest.models.find((m) => m.name === name);
  if (!entry) throw new Error(`no model ${name}`);
  return (models[name] ??= new Model(entry)).ready();
}

function set(patch) { Object.assign(state, patch); toUrl(state); }
function go(view) { Object.assign(state, { view }); render(); }

// The model's test score with its protocol, as the app's cards say it (a grey-level score is not a binarized one).
function score(entry) {
  const m = entry.metrics;
  if (!m) return "";
  const nats = t("metrics", { neg_elbo: m.neg_elbo.toFixed(1), nll: m.iwae_nll?.toFixed(1) ?? "–", k: m.k ?? "–",
    nll_of: (m.nll_of || "-log p(x)").replace("-", "−"),
    dataset: entry.dataset === "fashion" ? "Fashion-MNIST" : entry.dataset === "mnist" ? "MNIST" : entry.title,
    n: m.n_images?.toLocaleString() ?? "–" });
  const likelihood = t(`likelihood_${m.likelihood}`, {}, m.likelihood);
  return `${nats} ${m.binarization && m.binarization !== "none" ? t("protocol_binarized", { likelihood, binarization: m.binarization })
    : t("protocol_grey", { likelihood })}`;
}

// The sliders' range: +-4 prior standard deviations, wider where the test codes or the class means lie further out.
// An autoencoder has no prior: its range is the codes' own (99.5% of them inside).
function bound(entry, codes) {
  if (!entry.variational) {
    const sorted = Float32Array.from(codes, Math.abs).sort();
    return Math.ceil(sorted[Math.floor(0.995 * (sorted.length - 1))] || 1);
  }
  let r = 4;
  for (const v of codes) r = Math.max(r, Math.abs(v));
  for (const mean of entry.class_means || []) for (const v of mean) r = Math.max(r, Math.abs(v) + 3);
  return Math.min(10, Math.ceil(r));
}

function views(entry) {
  return VIEWS.filter((v) => (entry.latent_dim >= 2 || (v !== "manifold")));
}

function header(entry) {
  const picker = h("select", { "aria-label": t("model"), "data-testid": "model", onchange: (e) => {
    const next = manifest.models.find((m) => m.name === e.target.value);
    Object.assign(state, { model: next.name, z: null, y: 0, attr: {}, a: null, b: null });
    render();
  } }, manifest.models.map((m) => h("option", { value: m.name, selected: m.name === entry.name }, `${m.name} · ${m.title}`)));
  const language = h("select", { "aria-label": t("language"), "data-testid": "lang", onchange: (e) => { state.lang = e.target.value; render(); } },
    Object.entries(LANGUAGES).map(([k, name]) => h("option", { value: k, selected: k === state.lang }, name)));
  const tabs = h("nav", { class: "tabs", role: "tablist" }, views(entry).map((v) =>
    h("button", { type: "button", role: "tab", "aria-selected": String(v === state.view), class: v === state.view ? "on" : "",
      "data-testid": `tab-${v}`, onclick: () => go(v) }, t(`view_${v}`))));
  return h("header", {},
    h("div", { class: "top" }, h("h1", {}, t("title")),
      h("label", { class: "field" }, h("span", { class: "name" }, t("model")), picker),
      h("label", { class: "field" }, h("span", { class: "name" }, "Language / 语言"), language)),
    h("p", { class: "tagline" }, t("tagline"), " ", h("small", {}, score(entry))),
    tabs);
}

// Draw the page for the state; `push`: a new history entry (a view, model or language picked by hand).
async function render(push = true) {
  const token = ++renders;  // a later render (another click while a model loads) supersedes this one
  if (push) ignored = [];  // the link's notice stays until the visitor picks something
  setWords(words, state.lang);
  document.title = t("title");
  const entry = manifest.models.find((m) => m.name === state.model);
  if (!views(entry).includes(state.view)) state.view = "sliders";
  toUrl(state, push);
  if (unmount) unmount();
  unmount = null;
  const main = h("main", { "data-view": state.view, "aria-busy": "true" }, h("p", { class: "note" }, t("loading")));
  const notice = ignored.length ? h("p", { class: "notice" }, t("ignored", { keys: ignored.join(", ") })) : null;
  app.replaceChildren(...[header(entry), notice, main].filter(Boolean),
    h("footer", {}, t("full_app"), " ", manifest.source_url ? h("a", { href: manifest.source_url, rel: "noopener" }, t("full_app_link")) : h("code", {}, "streamlit run app.py")));
  let model, data;
  try {
    model = await loaded(entry.name);
    data = { codes: await model.codes(), labels: await model.labels() };
  } catch (err) {
    console.error(err);
    if (token === renders) main.replaceChildren(h("p", { class: "error" }, t("failed", { reason: err.message })));
    return;
  }
  if (token !== renders) return;
  main.replaceChildren();
  const classNames = entry.class_names.map((name) => t(`class:${name}`, {}, name));
  unmount = MODULES[state.view].mount(main, { model, entry, state, data, set, go, classNames, bound: bound(entry, data.codes) }) || null;
  main.setAttribute("aria-busy", "false");
}

api.ready.catch((err) => {
  console.error(err);
  app.replaceChildren(h("p", { class: "error" }, t("failed", { reason: err.message })));
});
