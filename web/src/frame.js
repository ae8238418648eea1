// A drawing -> the model's 28x28 input, framed exactly as vae.preprocess.preprocess_image frames a drawing
// (style "mnist": MNIST's own recipe, LeCun et al.: the ink's box scaled to 20 px, its centre of mass at the
// centre of the 28x28 field; "fashion": the box scaled to 28 px and centred). Each step names the Python
// function it follows; tests/e2e/test_web_browser.py checks 25 drawings against Python in Chromium. Not model math:
// the networks themselves run in onnxruntime-web.

const WORK_SIZE = 512;
const STYLES = { mnist: [20, "mass"], fashion: [28, "box"] };

// Python's round(): halves to even.
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const reflect = (j, n) => (j < 0 ? -j - 1 : j >= n ? 2 * n - j - 1 : j);

// scipy.ndimage's 1-D minimum or maximum filter (mode "reflect") along rows (axis 1) or columns (axis 0); the
// window of output i covers inputs i - lo .. i - lo + k - 1. Van Herk's and Gil & Werman's algorithm (1992,
// 1993): running extremes within blocks of k, forwards and backwards, so each output costs O(1), not O(k).
function minMax1d(a, h, w, axis, k, lo, useMax) {
  const out = new Float32Array(h * w);
  const n = axis === 0 ? h : w, lines = axis === 0 ? w : h, m = n + k - 1;
  const op = useMax ? Math.max : Math.min;
  const p = new Float32Array(m), fwd = new Float32Array(m), bwd = new Float32Array(m);
  for (let line = 0; line < lines; line++) {
    const stride = axis === 0 ? w : 1, base = axis === 0 ? line : line * w;
    for (let j = 0; j < m; j++) p[j] = a[base + reflect(j - lo, n) * stride];
    for (let j = 0; j < m; j++) fwd[j] = j % k === 0 ? p[j] : op(fwd[j - 1], p[j]);
    for (let j = m - 1; j >= 0; j--) bwd[j] = j % k === k - 1 || j === m - 1 ? p[j] : op(bwd[j + 1], p[j]);
    for (let i = 0; i < n; i++) out[base + i * stride] = op(bwd[i], fwd[i + k - 1]);
  }
  return out;
}

// vae.preprocess._paper_background: grey opening (scipy.ndimage.grey_opening, size k x k) of a 3x3 mean
// (scipy.ndimage.uniform_filter, mode "reflect").
function paperBackground(g, h, w) {
  const k = Math.max(3, Math.floor(0.25 * Math.min(h, w)));
  let m = g;
  for (const axis of [0, 1]) {
    const out = new Float32Array(h * w);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      let s = 0;
      for (let d = -1; d <= 1; d++) {
        s += axis === 0 ? m[reflect(y + d, h) * w + x] : m[y * w + reflect(x + d, w)];
      }
      out[y * w + x] = s / 3;
    }
    m = out;
  }
  const eroded = minMax1d(minMax1d(m, h, w, 0, k, k >> 1, false), h, w, 1, k, k >> 1, false);
  const lo = (k >> 1) - (k % 2 === 0 ? 1 : 0);
  return minMax1d(minMax1d(eroded, h, w, 0, k, lo, true), h, w, 1, k, lo, true);
}

const sorted = (a) => Float64Array.from(a).sort();
function median(a) {  // numpy's median of float32 values
  const s = Float32Array.from(a).sort();
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : Math.fround(Math.fround(s[n / 2 - 1] + s[n / 2]) / 2);
}
function percentile50(a) {
  const s = sorted(a);
  const pos = 0.5 * (s.length - 1);
  const i = Math.floor(pos);
  return Math.fround(s[i] + (pos - i) * ((s[Math.min(i + 1, s.length - 1)]) - s[i]));
}

// vae.preprocess._border: the outer ring, 3% of the shorter side wide.
function border(g, h, w) {
  const b = Math.max(1, roundHalfEven(0.03 * Math.min(h, w)));
  const out = [];
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    if (y < b || y >= h - b || x < b || x >= w - b) out.push(g[y * w + x]);
  }
  return out;
}

// vae.preprocess._ink_is_dark: the paper nearer the lightest grey than the darkest, after a 3x3 median
// (Pillow's MedianFilter(3), its edges replicated).
function inkIsDark(g, h, w) {
  let lo = Infinity, hi = -Infinity;
  const win = new Float32Array(9);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    let n = 0;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      win[n++] = g[Math.min(h - 1, Math.max(0, y + dy)) * w + Math.min(w - 1, Math.max(0, x + dx))];
    }
    const m = win.sort()[4];
    if (m < lo) lo = m;
    if (m > hi) hi = m;
  }
  const paper = median(border(g, h, w));
  return paper - lo > hi - paper;
}

// vae.preprocess._otsu: numpy's 256-bin histogram over [0, max], then Otsu's (1979) threshold.
function otsu(f) {
  let top = 0;
  for (const v of f) if (v > top) top = v;
  const bins = 256, step = top / bins;
  const edges = Float64Array.from({ length: bins + 1 }, (_, i) => (i === bins ? top : i * step));
  const hist = new Float64Array(bins);
  for (const v of f) {
    let i = Math.min(Math.floor((v - 0) * (bins / top)), bins - 1);
    if (v < edges[i]) i -= 1;
    else if (v >= edges[i + 1] && i !== bins - 1) i += 1;
    hist[i] += 1;
  }
  let w0 = 0, m0 = 0, best = -Infinity, at = 0;
  let total = 0, mass = 0;
  for (let i = 0; i < bins; i++) { total += hist[i]; mass += hist[i] * ((edges[i] + edges[i + 1]) / 2); }
  for (let i = 0; i < bins; i++) {
    w0 += hist[i];
    m0 += hist[i] * ((edges[i] + edges[i + 1]) / 2);
    const w1 = total - w0;
    let between = (m0 / w0 - (mass - m0) / w1) ** 2 * w0 * w1;
    if (Number.isNaN(between)) between = -1;
    if (between > best) { best = between; at = i; }
  }
  return edges[at + 1];
}

// vae.preprocess._ink_levels: (paper level, ink level, Otsu's threshold); null when blank.
function inkLevels(flat, h, w, style) {
  const f = flat.map((v) => (v < 0 ? 0 : v));
  let smoothMax = -Infinity;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    let s = 0;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      s += f[Math.min(h - 1, Math.max(0, y + dy)) * w + Math.min(w - 1, Math.max(0, x + dx))];
    }
    if (s / 9 > smoothMax) smoothMax = s / 9;
  }
  const p50 = percentile50(flat);
  const paper = flat.filter((v) => v <= p50);
  const mp = median(paper);
  const noise = 1.4826 * median(paper.map((v) => Math.abs(v - mp)));
  if (smoothMax <= Math.max(0.1, 6 * noise)) return null;
  const t = otsu(f);
  const ink = f.filter((v) => v > t);
  const lo = Math.min(5 * noise, t / 2);
  let hi;
  if (style === "mnist") hi = median(ink);
  else { const s = sorted(ink); const pos = 0.99 * (s.length - 1), i = Math.floor(pos); hi = s[i] + (pos - i) * (s[Math.min(i + 1, s.length - 1)] - s[i]); }
  return [lo, Math.max(hi, lo + 1e-3), t];
}

// vae.preprocess._ink_box: (top, bottom, left, right) of the mask, less 0.2% of its pixels at each side.
function inkBox(mask, h, w, trim = 0.002) {
  const rows = new Float64Array(h), cols = new Float64Array(w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (mask[y * w + x]) { rows[y] += 1; cols[x] += 1; }
  const span = (p) => {
    const total = p.reduce((a, b) => a + b, 0);
    let c = 0, first = p.length, last = p.length;
    const cum = Array.from(p, (v) => (c += v) / total);
    for (let i = 0; i < cum.length; i++) if (cum[i] > trim) { first = i; break; }
    for (let i = 0; i < cum.length; i++) if (cum[i] >= 1 - trim) { last = i; break; }
    return [first, last + 1];
  };
  const [top, bottom] = span(rows), [left, right] = span(cols);
  return [top, Math.min(bottom, h), left, Math.min(right, w)];
}

// Pillow's resize of a float ("F") image with the BILINEAR (triangle) filter: separable, the kernel widened by
// the scale when reducing (antialiasing), horizontal pass first (libImaging/Resample.c, precompute_coeffs).
function coeffs(inSize, outSize) {
  const scale = inSize / outSize, filterscale = Math.max(scale, 1), support = filterscale;
  const out = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const k = [];
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const d = Math.abs((x + xmin - center + 0.5) / filterscale);
      const v = d < 1 ? 1 - d : 0;
      k.push(v); ww += v;
    }
    out.push([xmin, k.map((v) => (ww !== 0 ? v / ww : v))]);
  }
  return out;
}
function resizeBilinear(a, h, w, outW, outH) {
  let cur = a, cw = w;
  if (outW !== w) {
    const cx = coeffs(w, outW), tmp = new Float32Array(h * outW);
    for (let y = 0; y < h; y++) for (let x = 0; x < outW; x++) {
      const [x0, k] = cx[x];
      let s = 0;
      for (let i = 0; i < k.length; i++) s += cur[y * cw + x0 + i] * k[i];
      tmp[y * outW + x] = s;
    }
    cur = tmp; cw = outW;
  }
  if (outH !== h) {
    const cy = coeffs(h, outH), tmp = new Float32Array(outH * cw);
    for (let y = 0; y < outH; y++) {
      const [y0, k] = cy[y];
      for (let x = 0; x < cw; x++) {
        let s = 0;
        for (let i = 0; i < k.length; i++) s += cur[(y0 + i) * cw + x] * k[i];
        tmp[y * cw + x] = s;
      }
    }
    cur = tmp;
  }
  return cur;
}

// Pillow's RGB(A) -> "L" (ITU-R 601-2 luma, its fixed-point rounding), alpha composited onto white.
function toGrey(rgba, n) {
  const g = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const a = rgba[4 * i + 3];
    const c = (v) => Math.floor((v * a + 255 * (255 - a) + 127) / 255);  // Pillow's alpha_composite onto white
    const [r, gg, b] = a === 255 ? [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]] : [c(rgba[4 * i]), c(rgba[4 * i + 1]), c(rgba[4 * i + 2])];
    g[i] = (r * 19595 + gg * 38470 + b * 7471 + 0x8000) >> 16;
  }
  return g;
}

// The drawing's RGBA pixels (H x W, at most WORK_SIZE a side) -> {image: Float32Array(784) in [0, 1], light ink
// on black, centreOfMass: [y, x]}, or null for a blank drawing.
export function frameDrawing(rgba, h, w, style = "mnist") {
  if (Math.max(h, w) > WORK_SIZE) throw new Error(`a drawing of at most ${WORK_SIZE} px a side, got ${w}x${h}`);
  const [box, centring] = STYLES[style];
  const grey = toGrey(rgba, h * w);
  let g = Float32Array.from(grey, (v) => v / 255);
  if (inkIsDark(g, h, w)) g = g.map((v) => 1 - v);
  let flat;
  if (style === "mnist") {
    const bg = paperBackground(g, h, w);
    flat = g.map((v, i) => v - bg[i]);
  } else {
    const m = median(border(g, h, w));
    flat = g.map((v) => v - m);
  }
  const levels = inkLevels(flat, h, w, style);
  if (levels === null) return null;
  const [lo, hi, t] = levels;
  const lo32 = Math.fround(lo), range32 = Math.fround(hi - lo);
  const norm = flat.map((v) => Math.min(1, Math.max(0, Math.fround(Math.fround(v - lo32) / range32))));
  const [top, bottom, left, right] = inkBox(flat.map((v) => (v > t ? 1 : 0)), h, w);
  const ch = bottom - top, cw = right - left;
  const crop = new Float32Array(ch * cw);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) crop[y * cw + x] = norm[(top + y) * w + left + x];
  const scale = box / Math.max(ch, cw);
  const sw = Math.max(1, roundHalfEven(cw * scale)), sh = Math.max(1, roundHalfEven(ch * scale));
  const small = resizeBilinear(crop, ch, cw, sw, sh).map((v) => Math.min(1, Math.max(0, v)));
  let cy = (sh - 1) / 2, cx = (sw - 1) / 2;
  if (centring === "mass") {
    let mass = 0, sy = 0, sx = 0;
    for (let y = 0; y < sh; y++) for (let x = 0; x < sw; x++) {
      const v = small[y * sw + x];
      mass += v; sy += v * y; sx += v * x;
    }
    cy = sy / mass; cx = sx / mass;
  }
  const oy = Math.min(Math.max(roundHalfEven(13.5 - cy), 0), 28 - sh);
  const ox = Math.min(Math.max(roundHalfEven(13.5 - cx), 0), 28 - sw);
  const image = new Float32Array(28 * 28);
  for (let y = 0; y < sh; y++) for (let x = 0; x < sw; x++) image[(oy + y) * 28 + ox + x] = small[y * sw + x];
  return { image, centreOfMass: [oy + cy, ox + cx] };
}
