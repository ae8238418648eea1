// The stored t-SNE map of the test images' codes (a PCA map for a model without one): hover or tap a point to see
// its image; open it in the sliders (its code, from the encoder) or make it an end of the interpolation.
import { t } from "../state.js";
import { colour, h } from "../ui.js";

export function mount(root, ctx) {
  const { model, entry } = ctx;
  const labels = ctx.data.labels, n = entry.n, [c, hh, ww] = entry.image_shape;
  const ratio = window.devicePixelRatio || 1, size = 520;
  const canvas = h("canvas", { class: "map", width: size * ratio, height: size * ratio, "aria-label": t("view_map"), "data-testid": "map" });
  const thumb = h("canvas", { class: "picture", width: ww, height: hh, hidden: true });
  const caption = h("p", { class: "caption" });
  const actions = h("div", { class: "buttons", hidden: true });
  let xy = null, picked = -1;

  const place = (coords) => {
    let lo = [Infinity, Infinity], hi = [-Infinity, -Infinity];
    for (let i = 0; i < n; i++) for (const k of [0, 1]) { lo[k] = Math.min(lo[k], coords[2 * i + k]); hi[k] = Math.max(hi[k], coords[2 * i + k]); }
    const span = Math.max(hi[0] - lo[0], hi[1] - lo[1]) * 1.04, m = [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2];
    const out = new Float32Array(2 * n);  // the map's y axis points up, the canvas's down
    for (let i = 0; i < n; i++) {
      out[2 * i] = ((coords[2 * i] - m[0]) / span + 0.5) * canvas.width;
      out[2 * i + 1] = (0.5 - (coords[2 * i + 1] - m[1]) / span) * canvas.height;
    }
    return out;
  };
  const draw = () => {
    const g = canvas.getContext("2d");
    g.fillStyle = "#fff"; g.fillRect(0, 0, canvas.width, canvas.height);
    g.globalAlpha = 0.6;
    const dot = 2.2 * ratio;
    for (let i = 0; i < n; i++) { g.fillStyle = colour(labels[i]); g.fillRect(xy[2 * i] - dot / 2, xy[2 * i + 1] - dot / 2, dot, dot); }
    g.globalAlpha = 1;
    if (picked >= 0) {
      g.strokeStyle = "#111"; g.lineWidth = 2 * ratio;
      g.beginPath(); g.arc(xy[2 * picked], xy[2 * picked + 1], 8 * ratio, 0, 2 * Math.PI); g.stroke();
    }
  };
  const nearest = (e) => {
    const box = canvas.getBoundingClientRect();
    const px = ((e.clientX - box.left) / box.width) * canvas.width, py = ((e.clientY - box.top) / box.height) * canvas.height;
    let best = -1, dist = (14 * ratio) ** 2;
    for (let i = 0; i < n; i++) {
      const q = (xy[2 * i] - px) ** 2 + (xy[2 * i + 1] - py) ** 2;
      if (q < dist) { dist = q; best = i; }
    }
    return best;
  };
  const pick = async (i) => {
    if (i < 0 || i === picked) return;
    picked = i;
    draw();
    const { img } = await model.sprite();
    const cols = entry.sprite_cols, g = thumb.getContext("2d");
    g.imageSmoothingEnabled = false;
    g.drawImage(img, (i % cols) * ww, Math.floor(i / cols) * hh, ww, hh, 0, 0, ww, hh);
    caption.textContent = t("image_n", { i, label: ctx.classNames[labels[i]] });
    actions.hidden = thumb.hidden = false;
    root.dataset.picked = String(i);
  };
  canvas.addEventListener("pointermove", (e) => { if (xy) pick(nearest(e)); });  // nothing to pick before the map arrives
  canvas.addEventListener("pointerdown", (e) => { if (xy) pick(nearest(e)); });

  const open = async () => {
    if (picked < 0) return;
    const x = await model.testImage(picked);
    const y = entry.conditional ? labels[picked] : 0;
    ctx.set({ z: Array.from(await model.encode(x, [y])), y: entry.conditional || entry.class_prior ? labels[picked] : ctx.state.y });
    ctx.go("sliders");
  };
  actions.append(
    h("button", { type: "button", "data-testid": "map-open", onclick: open }, t("map_open")),
    h("button", { type: "button", onclick: () => { if (picked >= 0) { ctx.set({ a: picked }); ctx.go("interpolate"); } } }, t("start")),
    h("button", { type: "button", onclick: () => { if (picked >= 0) { ctx.set({ b: picked }); ctx.go("interpolate"); } } }, t("end")));
  const legend = h("div", { class: "legend" }, ctx.classNames.map((name, k) =>
    h("span", {}, h("i", { style: { background: colour(k) } }), name)));
  root.append(
    h("p", { class: "help" }, t({ PCA: "map_help_pca", codes: "map_help_codes" }[entry.map_method] ?? "map_help",
      { method: entry.map_method, n: n.toLocaleString() })),
    h("div", { class: "stage map-stage" }, canvas, h("div", { class: "picked" }, thumb, caption, actions)),
    legend);
  model.map().then((coords) => { xy = place(coords); draw(); root.dataset.ready = "1"; });
  model.sprite();  // start fetching the images now
}
