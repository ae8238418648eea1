// Interpolation: from one test image's code to another's, linear or spherical, as a strip and as a picture that
// follows the position slider (or plays back and forth).
import { t } from "../state.js";
import { classButtons, h, latency, paint, pictureCanvas, slider } from "../ui.js";
import { latest } from "../model.js";

// vae.latent.lerp and vae.latent.slerp: the path's point at t (slerp: Shoemake's great circle between the
// directions, White 2016, with the norm interpolated linearly; lerp where the arc is undefined).
export function pathPoint(z0, z1, s, method) {
  const lerp = () => z0.map((v, j) => (1 - s) * v + s * z1[j]);
  if (method !== "slerp" || s === 0 || s === 1) return s === 0 ? Float32Array.from(z0) : s === 1 ? Float32Array.from(z1) : lerp();
  const n0 = Math.hypot(...z0), n1 = Math.hypot(...z1);
  if (n0 === 0 || n1 === 0) return lerp();
  let dot = 0;
  for (let j = 0; j < z0.length; j++) dot += (z0[j] / n0) * (z1[j] / n1);
  const omega = Math.acos(Math.min(1, Math.max(-1, dot))), so = Math.sin(omega);
  if (so < 1e-4) return lerp();
  const a = Math.sin((1 - s) * omega) / so, b = Math.sin(s * omega) / so, norm = (1 - s) * n0 + s * n1;
  return z0.map((v, j) => norm * (a * (v / n0) + b * (z1[j] / n1)));
}

export function mount(root, ctx) {
  const { model, entry, state } = ctx;
  const n = entry.n, d = entry.latent_dim, shape = entry.image_shape;
  const labels = ctx.data.labels;
  const firstOf = (label, fallback) => { const i = labels.indexOf(label); return i < 0 ? fallback : i; };
  let a = state.a !== null && state.a < n ? state.a : firstOf(1, 0);
  let b = state.b !== null && state.b < n ? state.b : firstOf(7, Math.min(1, n - 1));
  let z0 = null, z1 = null;
  const ends = [pictureCanvas(shape, 1, 1, t("start")), pictureCanvas(shape, 1, 1, t("end"))];
  const strip = pictureCanvas(shape, state.steps, 1, t("view_interpolate"));
  const picture = pictureCanvas(shape, 1, 1, t("decoded"));
  const ycond = (i) => (entry.conditional ? [labels[i]] : [0]);

  // A CVAE's path is one of style z, each end encoded with its own label; it is drawn as the class picked here.
  const one = latest(async (s) => (z0 ? model.decode(pathPoint(z0, z1, s, state.method), [state.y]) : null), (means) => {
    if (!means) return;  // the ends are not encoded yet
    paint(picture, means, shape);
    latency.painted();
  });
  const drawStrip = async () => {
    const k = state.steps, zs = new Float32Array(k * d);
    for (let i = 0; i < k; i++) zs.set(pathPoint(z0, z1, i / (k - 1), state.method), i * d);
    paint(strip, await model.decode(zs, [state.y]), shape, k);
  };
  const encodeEnds = async () => {
    const [ya, yb] = [ycond(a), ycond(b)];  // this pair's labels, before another click changes a and b
    const [xa, xb] = await Promise.all([model.testImage(a), model.testImage(b)]);
    paint(ends[0], xa, shape); paint(ends[1], xb, shape);
    z0 = await model.encode(xa, ya);
    z1 = await model.encode(xb, yb);
    ctx.set({ a, b });
    await drawStrip();
    one(state.t);
    root.dataset.ready = "1";
  };
  const position = slider({ label: t("position"), min: 0, max: 1, step: 0.01, value: state.t, testid: "position",
    oninput: (v, e) => { latency.mark(e); ctx.set({ t: v }); one(v); } });
  const play = playButton((v) => { position.set(v); one(v); });
  const method = h("select", { "aria-label": t("method"), onchange: (e) => { ctx.set({ method: e.target.value }); drawStrip(); one(state.t); } },
    ...["linear", "slerp"].map((m) => h("option", { value: m, selected: m === state.method }, t(m))));
  const steps = slider({ label: t("steps"), min: 3, max: 20, step: 1, value: state.steps, testid: "steps", oninput: (v) => {
    ctx.set({ steps: v }); strip.width = v * shape[2]; drawStrip(); } });

  root.append(...[
    h("p", { class: "help" }, t("interpolate_help")),
    entry.conditional ? h("div", { class: "field" }, h("span", { class: "name" }, t("class")),
      classButtons(ctx.classNames, state.y, (y) => { ctx.set({ y }); drawStrip(); one(state.t); }), h("small", {}, t("cvae_path"))) : null,
    h("div", { class: "stage three" },
      h("figure", {}, ends[0], h("figcaption", {}, t("start"))),
      h("figure", {}, picture, h("figcaption", {}, t("decoded"))),
      h("figure", {}, ends[1], h("figcaption", {}, t("end")))),
    position,
    h("div", { class: "buttons" }, play, h("button", { type: "button", "data-testid": "random-pair", onclick: () => {
      a = Math.floor(Math.random() * n); b = Math.floor(Math.random() * n); encodeEnds();
    } }, t("random_pair"))),
    h("div", { class: "strip" }, strip),
    h("div", { class: "controls" }, h("label", { class: "field" }, h("span", { class: "name" }, t("method")), method), steps),
  ].filter(Boolean));
  encodeEnds();
  return () => play.stop();
}

// "Play": t goes there and back every 4 s, `show(t)` on every frame, until pressed again or `stop()`.
function playButton(show) {
  let playing = null;
  const button = h("button", { type: "button", onclick: () => {
    if (playing) { button.stop(); return; }
    button.textContent = t("pause");
    const t0 = performance.now();
    const frame = (now) => {
      show(0.5 - 0.5 * Math.cos(((now - t0) / 2000) * Math.PI));
      playing = requestAnimationFrame(frame);
    };
    playing = requestAnimationFrame(frame);
  } }, t("play"));
  button.stop = () => { if (playing) cancelAnimationFrame(playing); playing = null; button.textContent = t("play"); };
  return button;
}
