// The page's state: one small object mirrored to the URL (a new history entry for another view, model or
// language; in place for a slider's moves, so that Back steps through views, not moves), and the page's words.

export const VIEWS = ["sliders", "manifold", "draw", "interpolate", "map"];
const DEFAULTS = {
  model: "", view: "sliders", lang: "", z: null, y: 0, attr: {},
  grid: 15, span: 2, spacing: "quantile", a: null, b: null, method: "linear", t: 0.5, steps: 10,
};

const numbers = (text) => (text ? text.split(",").map(Number) : null);

// The state a URL asks for; values that make no sense are dropped (and reported in `ignored`).
export function fromUrl(search = location.search) {
  const q = new URLSearchParams(search);
  const s = structuredClone(DEFAULTS);
  const ignored = [];
  const take = (key, parse, ok) => {
    if (!q.has(key)) return;
    const v = parse(q.get(key));
    if (ok(v)) s[key] = v; else ignored.push(key);
  };
  const finite = (v) => Number.isFinite(v);
  take("model", String, (v) => v.length > 0);
  take("view", String, (v) => VIEWS.includes(v));
  take("lang", String, (v) => v === "en" || v === "zh-CN");
  take("z", numbers, (v) => v !== null && v.every(finite) && v.every((x) => Math.abs(x) <= 1000));
  take("y", Number, (v) => Number.isInteger(v) && v >= 0);
  take("grid", Number, (v) => Number.isInteger(v) && v >= 5 && v <= 25);  // the controls' ranges
  take("span", Number, (v) => finite(v) && v >= 0.5 && v <= 4);
  take("spacing", String, (v) => v === "quantile" || v === "linear");
  take("a", Number, (v) => Number.isInteger(v) && v >= 0);
  take("b", Number, (v) => Number.isInteger(v) && v >= 0);
  take("method", String, (v) => v === "linear" || v === "slerp");
  take("t", Number, (v) => finite(v) && v >= 0 && v <= 1);
  take("steps", Number, (v) => Number.isInteger(v) && v >= 3 && v <= 20);
  take("attr", (text) => Object.fromEntries(text.split(",").map((p) => p.split(":")).map(([k, v]) => [k, Number(v)])),
       (v) => Object.values(v).every(finite));
  return { state: s, ignored };
}

let timer = null;
// Write the state to the address bar: a new history entry when `push` (another view, model or language: Back
// returns to it), else in place at most every 150 ms (a slider's moves; browsers throttle replaceState).
export function toUrl(s, push = false) {
  clearTimeout(timer);
  const write = () => {
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(s)) {
      if (value === null || value === DEFAULTS[key] || value === "") continue;
      if (key === "z") q.set(key, Array.from(value, (v) => +v.toFixed(3)).join(","));
      else if (key === "attr") {
        const parts = Object.entries(value).filter(([, v]) => v !== 0).map(([k, v]) => `${k}:${+v.toFixed(3)}`);
        if (parts.length) q.set(key, parts.join(","));
      } else q.set(key, String(value));
    }
    const url = `${location.pathname}?${q}`;
    if (push && url !== location.pathname + location.search) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  };
  if (push) write(); else timer = setTimeout(write, 150);
}

// ---------------------------------------------------------------- words

let words = { en: {} }, language = "en";

export function browserLanguage(tags = navigator.languages || [navigator.language]) {
  for (const tag of tags) {
    const t = tag.toLowerCase();
    if (t.startsWith("zh")) return /(tw|hk|mo|hant)/.test(t) ? "en" : "zh-CN";
    if (t.startsWith("en")) return "en";
  }
  return "en";
}

export function setWords(all, lang) { words = all; language = all[lang] ? lang : "en"; document.documentElement.lang = language; }

// The page's word `key` in the current language, {name} placeholders filled from `vars`.
export function t(key, vars = {}, fallback = key) {
  const text = words[language]?.[key] ?? words.en?.[key] ?? fallback;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? vars[name] : m));
}
