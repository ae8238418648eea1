// The models, run by onnxruntime-web's WebAssembly backend: the ONNX files `python -m vae.web build` exported
// and checked against torch. A model's decoder and its test codes are fetched when it is first picked; its
// encoder, map and sprite when a view first needs them.
import * as ort from "./ort/ort.wasm.min.mjs";

const ORT_DIR = new URL("./ort/", import.meta.url).href;  // ORT resolves wasmPaths against its own URL: give it whole

async function gunzip(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Response(response.body.pipeThrough(new DecompressionStream("gzip"))).arrayBuffer();
}

let runtime = null;
export function startRuntime() {
  // One thread: a static host sends no cross-origin isolation headers, so WebAssembly threads are unavailable.
  runtime ??= gunzip(ORT_DIR + "ort-wasm-simd-threaded.wasm.gz").then((binary) => {
    Object.assign(ort.env.wasm, { wasmPaths: ORT_DIR, numThreads: 1, proxy: false, wasmBinary: binary });
    return ort;
  });
  return runtime;
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

// One session runs one call at a time: calls queue behind each other.
class Network {
  constructor(url) { this.url = url; this.session = null; this.queue = Promise.resolve(); }
  async load() {
    this.session ??= startRuntime().then(async () =>
      ort.InferenceSession.create(await fetchBytes(this.url), { executionProviders: ["wasm"], graphOptimizationLevel: "all" }));
    return this.session;
  }
  run(feeds) {
    const result = this.queue.then(async () => (await this.load()).run(feeds));
    this.queue = result.catch(() => {});
    return result;
  }
}

const labelsTensor = (y, n) => new ort.Tensor("int64", BigInt64Array.from({ length: n }, (_, i) => BigInt(y[i] ?? y[0] ?? 0)), [n]);

export class Model {
  constructor(entry) {
    this.entry = entry;
    this.d = entry.latent_dim;
    this.shape = entry.image_shape;  // [C, H, W]
    this.pixels = this.shape[0] * this.shape[1] * this.shape[2];
    this.decoder = new Network(entry.decoder);
    this.encoder = new Network(entry.encoder);
    this.cache = {};
  }

  // The decoder and the test codes and labels: what the first view needs.
  async ready() {
    await Promise.all([this.decoder.load(), this.codes(), this.labels()]);
    return this;
  }

  once(key, make) { return (this.cache[key] ??= make()); }
  codes() { return this.once("codes", async () => new Float32Array(await fetchBytes(this.entry.codes))); }
  labels() { return this.once("labels", async () => new Uint8Array(await fetchBytes(this.entry.labels))); }
  map() { return this.once("map", async () => new Float32Array(await fetchBytes(this.entry.map))); }
  sprite() {
    return this.once("sprite", async () => {
      const img = new Image();
      img.src = this.entry.sprite;
      await img.decode();
      const canvas = document.createElement("canvas");
      canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
      const context = canvas.getContext("2d", { willReadFrequently: true });
      context.drawImage(img, 0, 0);
      return { img, data: context.getImageData(0, 0, canvas.width, canvas.height).data, width: canvas.width };
    });
  }

  // Test image i of the map's order as float32 (C*H*W) in [0, 1], channel-major: the encoder's input.
  async testImage(i) {
    const { data, width } = await this.sprite();
    const [c, h, w] = this.shape, cols = this.entry.sprite_cols;
    const x0 = (i % cols) * w, y0 = Math.floor(i / cols) * h, out = new Float32Array(this.pixels);
    for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      out[ch * h * w + y * w + x] = data[4 * ((y0 + y) * width + x0 + x) + ch] / 255;
    }
    return out;
  }

  // z: Float32Array of B x D; y: B labels (a conditional model). Returns B x C x H x W pixel means in [0, 1].
  async decode(z, y = [0]) {
    const b = z.length / this.d;
    const feeds = { z: new ort.Tensor("float32", Float32Array.from(z), [b, this.d]) };
    if (this.entry.conditional) feeds.y = labelsTensor(y, b);
    return (await this.decoder.run(feeds)).means.data;
  }

  // x: Float32Array of B x C x H x W in [0, 1]; returns the encoder's means mu, B x D.
  async encode(x, y = [0]) {
    const b = x.length / this.pixels;
    const feeds = { x: new ort.Tensor("float32", Float32Array.from(x), [b, ...this.shape]) };
    if (this.entry.conditional) feeds.y = labelsTensor(y, b);
    return (await this.encoder.run(feeds)).mu.data;
  }

  // The prior's mean for class y: the class-prior model's mu_y, else zeros.
  priorMean(y) {
    return this.entry.class_means ? Float32Array.from(this.entry.class_means[y]) : new Float32Array(this.d);
  }
}

// Runs `work(input)` for the latest input only: while one run is in flight, newer inputs replace each other, so a
// fast hand never queues stale decodes. `done(result, input)` draws.
export function latest(work, done) {
  let busy = false, pending = null;
  const pump = async () => {
    busy = true;
    while (pending !== null) {
      const input = pending;
      pending = null;
      try { done(await work(input), input); } catch (err) { console.error(err); }
    }
    busy = false;
  };
  return (input) => { pending = input; if (!busy) pump(); };
}
