// Sliders: one slider per latent dimension (by mean KL), the latent plane of the two leading dimensions, the
// measured attribute directions, a conditional model's classes; the picture follows every move.
import { t } from "../state.js";
import { Pad, classButtons, h, latency, legend, paint, pictureCanvas, slider } from "../ui.js";
import { latest } from "../model.js";

const ATTRIBUTES = ["thickness", "slant", "width", "height", "area", "length"];

// N(0, 1) draws (Box-Muller).
export function gaussian(n) {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
  return out;
}

export function mount(root, ctx) {
  const { model, entry, state } = ctx;
  const d = entry.latent_dim, order = entry.dims_by_kl;
  const z = Float32Array.from(state.z && state.z.length === d ? state.z : model.priorMean(state.y));
  const attrs = Object.fromEntries(ATTRIBUTES.filter((a) => entry.attributes[a]).map((a) => [a, entry.attributes[a]]));
  const amount = Object.fromEntries(Object.keys(attrs).map((a) => [a, state.attr[a] ?? 0]));

  const shown = () => {  // z moved along the attribute directions
    const s = Float32Array.from(z);
    for (const [a, info] of Object.entries(attrs)) for (let j = 0; j < d; j++) s[j] += amount[a] * info.scale * info.direction[j];
    return s;
  };
  const picture = pictureCanvas(entry.image_shape, 1, 1, t("decoded"));
  const decode = latest((s) => model.decode(s, [state.y]), (means, s) => {
    paint(picture, means, entry.image_shape);
    latency.painted();
    if (pad) pad.mark(s[order[0]], s[order[1]]);
  });
  const rows = [];
  const update = (e, fromSliders = false) => {
    latency.mark(e);
    if (!fromSliders) rows.forEach((row, k) => row.set(z[order[k]]));
    ctx.set({ z: Array.from(z), attr: { ...amount } });
    decode(shown());
  };

  let pad = null;
  if (d >= 2) {
    const codes = ctx.data.codes, labels = ctx.data.labels;
    pad = new Pad({ codes, labels, d, dx: order[0], dy: order[1], label: t("pad_help", { i: order[0], j: order[1] }),
      radius: entry.variational ? null : ctx.bound,
      onpick: (u, v, e) => { z[order[0]] = u; z[order[1]] = v; update(e); } });
  }
  order.forEach((j) => rows.push(slider({
    label: entry.kl_per_dim ? t("dim_label", { j, kl: entry.kl_per_dim[j].toFixed(2) }) : `z[${j}]`,  // an AE has no KL
    min: -ctx.bound, max: ctx.bound, step: 0.01,
    value: z[j], testid: `z${j}`, oninput: (v, e) => { z[j] = v; update(e, true); } })));

  const controls = startControls(ctx, z, (e) => { for (const a in amount) amount[a] = 0; attrRows.forEach((r) => r.set(0)); update(e); },
                                  update);
  const attrRows = Object.entries(attrs).map(([a, info]) => slider({
    label: t(`attr_${a}`), min: -2 * info.std, max: 2 * info.std, step: info.std / 50, value: amount[a], testid: `attr-${a}`,
    oninput: (v, e) => { amount[a] = v; update(e, true); } }));

  root.classList.add("sliders-view");
  root.append(...[
    h("p", { class: "help" }, t("sliders_help")),
    h("div", { class: pad ? "stage pair" : "stage" }, h("figure", {}, picture, h("figcaption", {}, t("decoded"))),
      pad ? h("figure", {}, pad.canvas, h("figcaption", {}, t("pad_help", { i: order[0], j: order[1] }), legend(ctx.classNames))) : null),
    ...controls,
    h("div", { class: "sliders" }, rows),
    attrRows.length ? h("details", { class: "attributes", open: Object.values(amount).some((v) => v !== 0) },
      h("summary", {}, t("attributes")), attrRows) : null,
  ].filter(Boolean));
  decode(shown());
}

// A conditional model's classes (a class-prior model keeps the style: z's offset from the class's prior mean) and,
// for a VAE, the start buttons. `restart(event)`: z was set afresh; `update(event)`: z or the class changed.
function startControls(ctx, z, restart, update) {
  const { model, entry, state } = ctx, d = entry.latent_dim, controls = [];
  if (entry.conditional || entry.class_prior) {
    controls.push(h("div", { class: "field" }, h("span", { class: "name" }, t("class")), classButtons(ctx.classNames, state.y, (y) => {
      if (entry.class_prior) {
        const from = model.priorMean(state.y), to = model.priorMean(y);
        for (let j = 0; j < d; j++) z[j] += to[j] - from[j];
      }
      ctx.set({ y });
      update(window.event);
    }), h("small", {}, t("class_help"))));
  }
  if (entry.variational) controls.push(h("div", { class: "buttons" },  // an autoencoder has no prior to draw from
    h("button", { type: "button", "data-testid": "random", onclick: (e) => {
      const mean = model.priorMean(state.y), eps = gaussian(d);
      for (let j = 0; j < d; j++) z[j] = mean[j] + eps[j];
      update(e);
    } }, t("random")),
    h("button", { type: "button", onclick: (e) => { z.set(model.priorMean(state.y)); restart(e); } }, t("prior_mean"))));
  return controls;
}
