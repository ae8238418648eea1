// What the views share: a tiny DOM builder, pictures of pixel means, the latent plane (the "pad"), class colours.

// The Tableau 10 palette (Vega's and Matplotlib's default categories), one colour a class.
export const PALETTE = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"];
export const colour = (label) => PALETTE[label % PALETTE.length];

// h("div", {class: "row", onclick: f}, child, "text", ...): an element.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

// A canvas that shows images of shape [C, H, W] at their own resolution, scaled up by CSS (pixelated).
export function pictureCanvas(shape, cols = 1, rows = 1, label = "") {
  const [, hh, ww] = shape;
  return h("canvas", { class: "picture", width: ww * cols, height: hh * rows, role: "img", "aria-label": label });
}

// Paint B images (pixel means, B x C x H x W) into `canvas`, `cols` a row.
export function paint(canvas, means, shape, cols = 1) {
  const [c, hh, ww] = shape, per = c * hh * ww, n = means.length / per;
  const context = canvas.getContext("2d");
  const img = context.createImageData(canvas.width, canvas.height);
  for (let i = 0; i < n; i++) {
    const x0 = (i % cols) * ww, y0 = Math.floor(i / cols) * hh;
    for (let y = 0; y < hh; y++) for (let x = 0; x < ww; x++) {
      const o = 4 * ((y0 + y) * canvas.width + x0 + x), p = i * per + y * ww + x;
      for (let ch = 0; ch < 3; ch++) img.data[o + ch] = Math.round(255 * means[p + (c === 3 ? ch * hh * ww : 0)]);
      img.data[o + 3] = 255;
    }
  }
  context.putImageData(img, 0, 0);
  canvas.dataset.painted = String(Number(canvas.dataset.painted || 0) + 1);  // for tests: how often it was drawn
}

// The latent plane of two dimensions (dx, dy) over [-r, r]^2: the test images' codes as dots by class, a marker at
// the current z. `onpick(u, v)` gets the plane's coordinates under the pointer or finger on every move.
export class Pad {
  // radius: the plane's half width; by default the codes' largest |value|, from 3 to 6 prior standard deviations.
  constructor({ codes, labels, d, dx, dy, onpick, size = 300, label = "", radius = null }) {
    Object.assign(this, { codes, labels, d, dx, dy, onpick });
    let r = 3;
    for (let i = 0; i < labels.length; i++) r = Math.max(r, Math.abs(codes[i * d + dx]), Math.abs(codes[i * d + dy]));
    this.r = radius ?? Math.min(r, 6);
    this.ratio = window.devicePixelRatio || 1;
    this.canvas = h("canvas", { class: "pad", width: size * this.ratio, height: size * this.ratio, role: "slider", "aria-label": label, tabindex: 0 });
    this.background = this.drawBackground();
    this.marker = null;
    if (onpick) this.listen();
    this.draw();
  }
  toCanvas(u, v) {
    const s = this.canvas.width;
    return [((u + this.r) / (2 * this.r)) * s, ((this.r - v) / (2 * this.r)) * s];
  }
  drawBackground() {
    const off = document.createElement("canvas");
    off.width = off.height = this.canvas.width;
    const c = off.getContext("2d");
    c.fillStyle = "#fff"; c.fillRect(0, 0, off.width, off.height);
    c.strokeStyle = "#ddd"; c.lineWidth = this.ratio;
    const step = 10 ** Math.floor(Math.log10(this.r / 1.5));
    for (let k = -Math.floor(this.r / step) * step; k <= this.r; k += step) {
      const [p] = this.toCanvas(k, 0), [, q] = this.toCanvas(0, k);
      c.beginPath(); c.moveTo(p, 0); c.lineTo(p, off.height); c.moveTo(0, q); c.lineTo(off.width, q); c.stroke();
    }
    // Axes: the integers along the bottom and the left edge, the dimensions' names in the corners.
    c.fillStyle = "#666"; c.font = `${11 * this.ratio}px system-ui, sans-serif`;
    const tick = 10 ** Math.floor(Math.log10(this.r / 1.5));  // about 3 to 15 ticks a side
    for (let k = -Math.floor(this.r / tick) * tick + tick; k < this.r; k += tick) {
      if (Math.abs(k) < tick / 2) continue;
      const [p] = this.toCanvas(k, 0), [, q] = this.toCanvas(0, k);
      c.textAlign = "center"; c.fillText(String(k), p, off.height - 4 * this.ratio);
      c.textAlign = "left"; c.fillText(String(k), 3 * this.ratio, q + 4 * this.ratio);
    }
    c.font = `600 ${12 * this.ratio}px system-ui, sans-serif`; c.fillStyle = "#333";
    c.textAlign = "right"; c.fillText(`z[${this.dx}] →`, off.width - 4 * this.ratio, off.height - 18 * this.ratio);
    c.textAlign = "left"; c.fillText(`↑ z[${this.dy}]`, 22 * this.ratio, 16 * this.ratio);
    c.globalAlpha = 0.5;
    const dot = 1.6 * this.ratio;
    for (let i = 0; i < this.labels.length; i++) {
      const [p, q] = this.toCanvas(this.codes[i * this.d + this.dx], this.codes[i * this.d + this.dy]);
      c.fillStyle = colour(this.labels[i]);
      c.fillRect(p - dot / 2, q - dot / 2, dot, dot);
    }
    return off;
  }
  draw() {
    const c = this.canvas.getContext("2d");
    c.drawImage(this.background, 0, 0);
    if (!this.marker) return;
    const [p, q] = this.toCanvas(...this.marker);
    c.strokeStyle = "#111"; c.lineWidth = 2.5 * this.ratio;
    c.beginPath(); c.arc(p, q, 7 * this.ratio, 0, 2 * Math.PI); c.stroke();
    c.beginPath(); c.moveTo(p - 11 * this.ratio, q); c.lineTo(p + 11 * this.ratio, q); c.moveTo(p, q - 11 * this.ratio); c.lineTo(p, q + 11 * this.ratio); c.stroke();
  }
  mark(u, v) { this.marker = [u, v]; this.draw(); }
  listen() {
    const pick = (e) => {
      const box = this.canvas.getBoundingClientRect();
      const u = ((e.clientX - box.left) / box.width) * 2 * this.r - this.r;
      const v = this.r - ((e.clientY - box.top) / box.height) * 2 * this.r;
      this.onpick(Math.max(-this.r, Math.min(this.r, u)), Math.max(-this.r, Math.min(this.r, v)), e);
    };
    this.canvas.addEventListener("pointerdown", (e) => { this.canvas.setPointerCapture(e.pointerId); this.dragging = true; pick(e); });
    this.canvas.addEventListener("pointermove", (e) => { if (this.dragging) pick(e); });
    const stop = () => { this.dragging = false; };
    this.canvas.addEventListener("pointerup", stop);
    this.canvas.addEventListener("pointercancel", stop);
    this.canvas.addEventListener("keydown", (e) => {
      const step = { ArrowLeft: [-0.1, 0], ArrowRight: [0.1, 0], ArrowUp: [0, 0.1], ArrowDown: [0, -0.1] }[e.key];
      if (!step || !this.marker) return;
      e.preventDefault();
      this.onpick(this.marker[0] + step[0], this.marker[1] + step[1], e);
    });
  }
}

// The class colours, one swatch and name each.
export function legend(names) {
  return h("div", { class: "legend" }, names.map((name, k) => h("span", {}, h("i", { style: { background: colour(k) } }), name)));
}

// A labelled range input; `oninput(value, event)` on every move.
export function slider({ label, min, max, step, value, oninput, testid }) {
  const digits = Math.max(0, Math.min(3, -Math.floor(Math.log10(step) + 1e-9)));  // as many decimals as the step has
  const show = (v) => Number(v).toFixed(digits);
  const out = h("output", {}, show(value));
  const input = h("input", { type: "range", min, max, step, value, "data-testid": testid, "aria-label": label });
  input.addEventListener("input", (e) => { out.textContent = show(input.value); oninput(Number(input.value), e); });
  const row = h("label", { class: "slider" }, h("span", { class: "name" }, label), input, out);
  row.set = (v) => { input.value = v; out.textContent = show(v); };
  return row;
}

// The class buttons of a conditional model: one tap picks a class.
export function classButtons(names, current, onpick) {
  const row = h("div", { class: "classes", role: "radiogroup" });
  names.forEach((name, i) => row.append(h("button", {
    type: "button", class: i === current ? "on" : "", role: "radio", "aria-checked": String(i === current),
    style: { borderColor: colour(i) }, onclick: () => {
      for (const b of row.children) { b.classList.remove("on"); b.setAttribute("aria-checked", "false"); }
      row.children[i].classList.add("on"); row.children[i].setAttribute("aria-checked", "true");
      onpick(i);
    } }, name)));
  return row;
}

// Records input-to-picture latency: call `mark(event)` when an input starts a decode and `painted()` after drawing;
// the time from the event to the next animation frame is pushed to window.vaeExplorer.latencies (ms).
export const latency = {
  start: null,
  mark(e) { if (e && e.timeStamp && this.start === null) this.start = e.timeStamp; },  // the oldest input not yet drawn
  painted() {
    if (this.start === null) return;
    const t0 = this.start;
    this.start = null;
    requestAnimationFrame(() => window.vaeExplorer.latencies.push(performance.now() - t0));
  },
};
