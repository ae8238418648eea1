// Draw: a digit drawn with the mouse or a finger, framed as vae.preprocess frames a drawing (../frame.js),
// encoded, decoded again, and placed on the latent plane.
import { t } from "../state.js";
import { Pad, classButtons, h, legend, paint, pictureCanvas } from "../ui.js";
import { frameDrawing } from "../frame.js";

const SIZE = 280, STROKE = 18;  // the app's canvas: 280 px, black strokes 18 px wide on white

// Bytes as base64: how a test reads the drawing's 313,600 RGBA values (a plain array crosses the DevTools
// protocol a thousand times slower).
function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return btoa(text);
}

export function mount(root, ctx) {
  const { model, entry, state } = ctx;
  const [c, hh] = entry.image_shape;
  if (c !== 1 || hh !== 28) { root.append(h("p", { class: "note" }, t("draw_unavailable"))); return; }
  const { board, clear, stroke } = drawingBoard(() => reconstruct());
  const pen = board.getContext("2d", { willReadFrequently: true });
  const framed = pictureCanvas(entry.image_shape, 1, 1, t("framed"));
  const recon = pictureCanvas(entry.image_shape, 1, 1, t("reconstruction"));
  const note = h("p", { class: "note" }, t("draw_blank"));
  const d = entry.latent_dim, order = entry.dims_by_kl;
  const pad = d >= 2 ? new Pad({ codes: ctx.data.codes, labels: ctx.data.labels, d, dx: order[0], dy: order[1], size: 220,
    radius: entry.variational ? null : ctx.bound,
    label: t("draw_place") }) : null;

  const style = entry.dataset === "fashion" ? "fashion" : "mnist";
  let running = Promise.resolve();
  const reconstruct = () => {
    running = running.then(async () => {
      const px = pen.getImageData(0, 0, SIZE, SIZE).data;
      const result = frameDrawing(px, SIZE, SIZE, style);
      if (!result) { note.hidden = false; return; }
      note.hidden = true;
      paint(framed, result.image, entry.image_shape);
      const mu = await model.encode(result.image, [state.y]);
      paint(recon, await model.decode(mu, [state.y]), entry.image_shape);
      if (pad) pad.mark(mu[order[0]], mu[order[1]]);
      ctx.set({ z: Array.from(mu) });
      window.vaeExplorer.lastDrawing = { rgba: base64(px), framed: Array.from(result.image), centreOfMass: result.centreOfMass, mu: Array.from(mu) };
      root.dataset.reconstructed = String((Number(root.dataset.reconstructed) || 0) + 1);
    }).catch((err) => console.error(err));
  };

  root.append(...[
    h("p", { class: "help" }, t(style === "fashion" ? "draw_help_fashion" : "draw_help")),
    entry.conditional ? h("div", { class: "field" }, h("span", { class: "name" }, t("class")),
      classButtons(ctx.classNames, state.y, (y) => { ctx.set({ y }); reconstruct(); })) : null,
    h("div", { class: "stage draw" },
      h("figure", {}, board, h("figcaption", {}, h("button", { type: "button", "data-testid": "clear", onclick: () => {
        clear(); note.hidden = false; framed.getContext("2d").clearRect(0, 0, 28, 28); recon.getContext("2d").clearRect(0, 0, 28, 28);
      } }, t("clear")))),
      h("div", { class: "results" },
        h("figure", {}, framed, h("figcaption", {}, t("framed"))),
        h("figure", {}, recon, h("figcaption", {}, t("reconstruction"))),
        pad ? h("figure", { class: "wide" }, pad.canvas, h("figcaption", {}, t("draw_place")), legend(ctx.classNames)) : null)),
    note].filter(Boolean));
  // For tests: draw a polyline of [x, y] points (canvas pixels) as a hand would, then reconstruct.
  window.vaeExplorer.drawStrokes = async (strokes) => {
    clear();
    for (const line of strokes) for (let i = 0; i < line.length; i++) stroke(line[Math.max(0, i - 1)], line[i]);
    reconstruct();
    await running;
    return window.vaeExplorer.lastDrawing;
  };
}

// A white 280-px board that draws black strokes under a mouse or a finger; `onend()` when a stroke ends.
// Returns {board, clear(), stroke(p, q)} (points in the board's pixels).
function drawingBoard(onend) {
  const board = h("canvas", { class: "board", width: SIZE, height: SIZE, "aria-label": t("view_draw"), "data-testid": "board" });
  const pen = board.getContext("2d", { willReadFrequently: true });
  const clear = () => { pen.fillStyle = "#fff"; pen.fillRect(0, 0, SIZE, SIZE); };
  const stroke = (p, q) => {
    pen.strokeStyle = "#000"; pen.lineWidth = STROKE; pen.lineCap = "round"; pen.lineJoin = "round";
    pen.beginPath(); pen.moveTo(...p); pen.lineTo(...q); pen.stroke();
  };
  let last = null;
  const at = (e) => { const b = board.getBoundingClientRect(); return [((e.clientX - b.left) / b.width) * SIZE, ((e.clientY - b.top) / b.height) * SIZE]; };
  board.addEventListener("pointerdown", (e) => { board.setPointerCapture(e.pointerId); last = at(e); stroke(last, last); });
  board.addEventListener("pointermove", (e) => { if (last) { const p = at(e); stroke(last, p); last = p; } });
  const end = () => { if (last) { last = null; onend(); } };
  board.addEventListener("pointerup", end);
  board.addEventListener("pointercancel", end);
  clear();
  return { board, clear, stroke };
}
