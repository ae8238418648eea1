// Manifold: the decoder's images over an n x n grid of the two leading latent dimensions, decoded in one batch
// (Kingma & Welling, 2014, Fig. 4). The other dimensions stay at the current z.
import { t } from "../state.js";
import { classButtons, h, latency, paint, pictureCanvas, slider } from "../ui.js";
import { latest } from "../model.js";

// The standard normal's CDF (Abramowitz & Stegun 7.1.26 for erf, |error| < 1.5e-7) and its inverse (Acklam's
// rational approximation, then one Newton step): only to place the grid's cells, as vae.latent.grid_coordinates.
function cdf(x) {
  const z = Math.abs(x) / Math.SQRT2, k = 1 / (1 + 0.3275911 * z);
  const erf = 1 - ((((1.061405429 * k - 1.453152027) * k + 1.421413741) * k - 0.284496736) * k + 0.254829592) * k * Math.exp(-z * z);
  return 0.5 * (1 + Math.sign(x) * erf);
}
function icdf(p) {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const dd = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const q = Math.min(p, 1 - p);
  let x;
  if (q < 0.02425) {
    const r = Math.sqrt(-2 * Math.log(q));
    x = (((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]) / ((((dd[0] * r + dd[1]) * r + dd[2]) * r + dd[3]) * r + 1);
    if (p > 0.5) x = -x;
  } else {
    const r = (p - 0.5), s = r * r;
    x = (((((a[0] * s + a[1]) * s + a[2]) * s + a[3]) * s + a[4]) * s + a[5]) * r / (((((b[0] * s + b[1]) * s + b[2]) * s + b[3]) * s + b[4]) * s + 1);
  }
  return x - (cdf(x) - p) * Math.sqrt(2 * Math.PI) * Math.exp(x * x / 2);
}

export function gridCoordinates(n, span, spacing) {
  if (spacing === "linear") return Array.from({ length: n }, (_, i) => -span + (2 * span * i) / (n - 1));
  const lo = cdf(-span);
  return Array.from({ length: n }, (_, i) => icdf(lo + ((1 - 2 * lo) * i) / (n - 1)));
}

export function mount(root, ctx) {
  const { model, entry, state } = ctx;
  const d = entry.latent_dim, [dx, dy] = entry.dims_by_kl;
  const shape = entry.image_shape;
  let canvas = null, zs = null;
  const holder = h("div", { class: "grid-holder" });
  const decode = latest((input) => model.decode(input.zs, [state.y]), (means, input) => {
    if (!canvas || canvas.width !== input.n * shape[2]) {
      canvas = pictureCanvas(shape, input.n, input.n, t("view_manifold"));
      canvas.classList.add("grid");
      canvas.addEventListener("click", (e) => {
        const box = canvas.getBoundingClientRect(), n = state.grid;
        const col = Math.min(n - 1, Math.floor(((e.clientX - box.left) / box.width) * n));
        const row = Math.min(n - 1, Math.floor(((e.clientY - box.top) / box.height) * n));
        ctx.set({ z: Array.from(zs.subarray((row * n + col) * d, (row * n + col + 1) * d)) });
        ctx.go("sliders");
      });
      holder.replaceChildren(canvas);
    }
    paint(canvas, means, shape, input.n);
    latency.painted();
  });
  const draw = (e) => {
    latency.mark(e);
    // An autoencoder has no prior: its grid spans the codes' range (ctx.bound for span 4), evenly.
    const n = state.grid, coords = entry.variational ? gridCoordinates(n, state.span, state.spacing)
      : gridCoordinates(n, (state.span * ctx.bound) / 4, "linear");
    const base = Float32Array.from(state.z && state.z.length === d ? state.z : model.priorMean(state.y));
    const centre = model.priorMean(state.y);
    zs = new Float32Array(n * n * d);
    for (let row = 0; row < n; row++) for (let col = 0; col < n; col++) {
      const k = (row * n + col) * d;
      zs.set(base, k);
      zs[k + dx] = centre[dx] + coords[col];
      zs[k + dy] = centre[dy] + coords[n - 1 - row];  // the top row holds the largest value, as in a plot
    }
    decode({ zs, n });
  };
  const spacing = h("select", { "aria-label": t("spacing"), onchange: (e) => { ctx.set({ spacing: e.target.value }); draw(e); } },
    ...["quantile", "linear"].map((s) => h("option", { value: s, selected: s === state.spacing }, t(`spacing_${s}`))));
  root.append(...[
    h("p", { class: "help" }, t("manifold_help", { i: dx, j: dy })),
    entry.conditional || entry.class_prior ? h("div", { class: "field" }, h("span", { class: "name" }, t("class")),
      classButtons(ctx.classNames, state.y, (y) => { ctx.set({ y }); draw(window.event); })) : null,
    h("div", { class: "controls" },
      slider({ label: t("grid_size"), min: 5, max: 25, step: 1, value: state.grid, testid: "grid", oninput: (v, e) => { ctx.set({ grid: v }); draw(e); } }),
      slider({ label: t("span"), min: 0.5, max: 4, step: 0.25, value: state.span, testid: "span", oninput: (v, e) => { ctx.set({ span: v }); draw(e); } }),
      entry.variational ? h("label", { class: "field" }, h("span", { class: "name" }, t("spacing")), spacing) : null),
    entry.variational ? null : h("p", { class: "note" }, t("ae_manifold")),
    holder].filter(Boolean));
  draw();
}
