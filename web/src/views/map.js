// The stored t-SNE map of the test images' codes (a PCA map for a model without one): hover or tap a point to see
// its image; open it in the sliders (its code, from the encoder) or make it an end of the interpolation.
import { t } from "../state.js";
import { colour, h, legend } from "../ui.js";

// The map's N points (x, y pairs) in canvas pixels: the whole map centred and fitted, its y axis pointing up.
function place(coords, n, width, height) {
  const lo = [Infinity, Infinity], hi = [-Infinity, -Infinity];
  for (let i = 0; i < 2 * n; i++) { lo[i % 2] = Math.min(lo[i % 2], coords[i]); hi[i % 2] = Math.max(hi[i % 2], coords[i]); }
  const span = Math.max(hi[0] - lo[0], hi[1] - lo[1]) * 1.04, mid = [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2];
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    out[2 * i] = ((coords[2 * i] - mid[0]) / span + 0.5) * width;
    out[2 * i + 1] = (0.5 - (coords[2 * i + 1] - mid[1]) / span) * height;
  }
  return out;
}

// Dots by class, and a ring around the picked point (-1: none).
function drawMap(canvas, xy, labels, picked, ratio) {
  const g = canvas.getContext("2d"), dot = 2.2 * ratio;
  g.fillStyle = "#fff"; g.fillRect(0, 0, canvas.width, canvas.height);
  g.globalAlpha = 0.6;
  for (let i = 0; i < labels.length; i++) { g.fillStyle = colour(labels[i]); g.fillRect(xy[2 * i] - dot / 2, xy[2 * i + 1] - dot / 2, dot, dot); }
  g.globalAlpha = 1;
  if (picked < 0) return;
  g.strokeStyle = "#111"; g.lineWidth = 2 * ratio;
  g.beginPath(); g.arc(xy[2 * picked], xy[2 * picked + 1], 8 * ratio, 0, 2 * Math.PI); g.stroke();
}

// The point nearest to a pointer event, within 14 CSS pixels; -1 when none is.
function nearest(e, canvas, xy, ratio) {
  const box = canvas.getBoundingClientRect();
  const px = ((e.clientX - box.left) / box.width) * canvas.width, py = ((e.clientY - box.top) / box.height) * canvas.height;
  let best = -1, dist = (14 * ratio) ** 2;
  for (let i = 0; i < xy.length / 2; i++) {
    const q = (xy[2 * i] - px) ** 2 + (xy[2 * i + 1] - py) ** 2;
    if (q < dist) { dist = q; best = i; }
  }
  return best;
}

export function mount(root, ctx) {
  const { model, entry } = ctx;
  const labels = ctx.data.labels, n = entry.n, [, hh, ww] = entry.image_shape;
  const ratio = window.devicePixelRatio || 1, size = 520;
  const canvas = h("canvas", { class: "map", width: size * ratio, height: size * ratio, "aria-label": t("view_map"), "data-testid": "map" });
  const thumb = h("canvas", { class: "picture", width: ww, height: hh, hidden: true });
  const caption = h("p", { class: "caption" });
  let xy = null, picked = -1;

  const pick = async (i) => {
    if (i < 0 || i === picked) return;
    picked = i;
    drawMap(canvas, xy, labels, picked, ratio);
    const { img } = await model.sprite();
    const cols = entry.sprite_cols, g = thumb.getContext("2d");
    g.imageSmoothingEnabled = false;
    g.drawImage(img, (i % cols) * ww, Math.floor(i / cols) * hh, ww, hh, 0, 0, ww, hh);
    caption.textContent = t("image_n", { i, label: ctx.classNames[labels[i]] });
    actions.hidden = thumb.hidden = false;
    root.dataset.picked = String(i);
  };
  const onPointer = (e) => { if (xy) pick(nearest(e, canvas, xy, ratio)); };  // nothing to pick before the map arrives
  canvas.addEventListener("pointermove", onPointer);
  canvas.addEventListener("pointerdown", onPointer);
  const actions = pickedActions(ctx, () => picked);

  root.append(
    h("p", { class: "help" }, t({ PCA: "map_help_pca", codes: "map_help_codes" }[entry.map_method] ?? "map_help",
      { method: entry.map_method, n: n.toLocaleString() })),
    h("div", { class: "stage map-stage" }, canvas, h("div", { class: "picked" }, thumb, caption, actions)),
    legend(ctx.classNames));
  model.map().then((coords) => {
    xy = place(coords, n, canvas.width, canvas.height);
    drawMap(canvas, xy, labels, picked, ratio);
    root.dataset.ready = "1";
  });
  model.sprite();  // start fetching the images now
}

// What a picked point offers: its code in the sliders (encoded with its label for a CVAE), or an end of the path.
function pickedActions(ctx, picked) {
  const { model, entry } = ctx, labels = ctx.data.labels;
  const open = async () => {
    const i = picked();
    if (i < 0) return;
    const z = await model.encode(await model.testImage(i), [entry.conditional ? labels[i] : 0]);
    ctx.set({ z: Array.from(z), y: entry.conditional || entry.class_prior ? labels[i] : ctx.state.y });
    ctx.go("sliders");
  };
  const end = (key) => () => { if (picked() >= 0) { ctx.set({ [key]: picked() }); ctx.go("interpolate"); } };
  return h("div", { class: "buttons", hidden: true },
    h("button", { type: "button", "data-testid": "map-open", onclick: open }, t("map_open")),
    h("button", { type: "button", onclick: end("a") }, t("start")),
    h("button", { type: "button", onclick: end("b") }, t("end")));
}
