"""The static explorer in headless Chromium against the app's server path, measured the same way in one run.

Static page (`python -m vae.web build` of its default models, served by a plain static file server on loopback):
- first view with an empty cache: bytes fetched (the Resource Timing entries' transferSize) and the time from
  navigation to the first decoded picture drawn; then the bytes of each further model when it is first picked;
- decodes through window.vaeExplorer.decode: median and p95 of --runs single decodes per model, and of 20
  15 x 15 manifolds (225 z in one batch);
- input to picture: --moves pointer moves across the latent pad (mouse held down), each from the event's time
  stamp to the animation frame after its picture was drawn (window.vaeExplorer.latencies).
App (`streamlit run app.py`, the Latent sliders page of mnist-vae-2d): --steps ArrowRight presses on the first
z slider, each from its keydown's time stamp to the animation frame after the decoded image's src changed,
waiting for the page to settle between presses.

    VAE_DATA_DIR=../shared/data .venv/bin/python bench/web.py [--runs 200] [--moves 100] [--steps 20]
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, start_app, wait_until_rendered  # noqa: E402

MODELS = ["mnist-vae-2d", "mnist-vae-20d", "mnist-cvae", "fashion-vae-2d"]  # vae.web's default site
BYTES = "performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))" \
        ".reduce((s, e) => s + e.transferSize, 0)"


def pct(values, q) -> float:
    return float(np.percentile(np.asarray(values, float), q))


def line(name: str, values) -> str:
    return f"{name}: median {statistics.median(values):.2f} ms, p95 {pct(values, 95):.2f} ms (n = {len(values)})"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def static_page(browser, url: str, runs: int, moves: int) -> dict:
    out = {}
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(url + "?model=mnist-vae-2d")
    page.wait_for_selector("main canvas.picture[data-painted]", timeout=60_000)
    out["first_view_s"] = page.evaluate("performance.now()") / 1000
    out["first_view_wall_s"] = time.perf_counter() - t0
    page.wait_for_timeout(500)
    out["first_view_bytes"] = page.evaluate(BYTES)
    before = out["first_view_bytes"]
    for name in MODELS[1:]:
        page.select_option("[data-testid=model]", name)
        page.wait_for_selector(f"main[aria-busy=false] canvas.picture[data-painted]", timeout=60_000)
        page.wait_for_timeout(500)
        now = page.evaluate(BYTES)
        out[f"bytes {name}"], before = now - before, now
    for name in MODELS[:2]:
        d = 2 if name.endswith("2d") else 20
        out[f"decode {name}"] = page.evaluate("""async ([name, d, runs]) => {
            const times = [];
            for (let i = 0; i < runs + 10; i++) {
              const z = Array.from({length: d}, () => Math.random() * 4 - 2);
              const t = performance.now(); await window.vaeExplorer.decode(name, z); times.push(performance.now() - t);
            }
            return times.slice(10); }""", [name, d, runs])
        out[f"manifold 15x15 {name}"] = page.evaluate("""async ([name, d]) => {
            const times = [];
            for (let i = 0; i < 22; i++) {
              const z = Array.from({length: 225 * d}, () => Math.random() * 4 - 2);
              const t = performance.now(); await window.vaeExplorer.decode(name, z); times.push(performance.now() - t);
            }
            return times.slice(2); }""", [name, d])
    out.update(parity(page, url))
    page.goto(url + "?model=mnist-vae-2d")
    page.wait_for_selector("main canvas.picture[data-painted]", timeout=60_000)
    box = page.locator("canvas.pad").bounding_box()
    page.evaluate("window.vaeExplorer.latencies.length = 0")
    page.mouse.move(box["x"] + 10, box["y"] + box["height"] / 2)
    page.mouse.down()
    for i in range(moves):
        page.mouse.move(box["x"] + 10 + (box["width"] - 20) * i / moves, box["y"] + box["height"] * (0.5 + 0.3 * np.sin(i / 7)))
        page.wait_for_timeout(20)
    page.mouse.up()
    page.wait_for_timeout(300)
    out["pad move to picture"] = page.evaluate("window.vaeExplorer.latencies.slice()")
    context.close()
    return out


def parity(page, url: str) -> dict:
    """100 fixed z decoded in the page against torch, and 20 drawings framed in the page against vae.preprocess."""
    import torch

    from test_web_browser import _centre, _strokes
    from vae.checkpoint import load_checkpoint
    from vae.preprocess import preprocess_image

    model = load_checkpoint(ROOT / "pretrained" / "mnist-vae-2d")[0]
    z = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    got = np.array(page.evaluate("z => window.vaeExplorer.decode('mnist-vae-2d', z).then(Array.from)", z.flatten().tolist()))
    with torch.no_grad():
        want = torch.sigmoid(model.decode(z)).flatten().numpy()
    page.goto(url + "?model=mnist-vae-2d&view=draw")
    page.wait_for_selector("main[data-view=draw][aria-busy=false]")
    rng, grey, centre = np.random.default_rng(0), [], []
    for _ in range(20):
        out = page.evaluate("s => window.vaeExplorer.drawStrokes(s)", _strokes(rng))
        framed = np.array(out["framed"]).reshape(28, 28)
        ref = preprocess_image(np.frombuffer(base64.b64decode(out["rgba"]), np.uint8).reshape(280, 280, 4)).image[0, 0].numpy()
        grey.append(np.abs(framed - ref).mean() * 255)
        centre.append(np.abs(_centre(framed) - _centre(ref)).max())
    return {"decode_max_abs": float(np.abs(got - want).max()), "drawing_grey_levels": grey, "drawing_centre_px": centre}


# The app: the time from a keydown on a slider to the frame after the page's first image changed.
WATCH = """() => { window.benchTimes = []; window.benchStart = null;
  document.addEventListener('keydown', (e) => { window.benchStart = e.timeStamp; }, true);
  new MutationObserver((records) => {
    if (window.benchStart === null) return;
    if (!records.some((r) => r.target.tagName === 'IMG' || [...r.addedNodes].some((n) => n.querySelector && n.querySelector('img')))) return;
    const t0 = window.benchStart; window.benchStart = null;
    requestAnimationFrame((t) => window.benchTimes.push(t - t0));
  }).observe(document.querySelector('[data-testid=stMain]'), {subtree: true, attributes: true, attributeFilter: ['src'], childList: true});
}"""


def app_path(browser, steps: int, log: Path) -> dict:
    proc, url = start_app(log)
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(f"{url}/sliders?model=mnist-vae-2d")
        wait_until_rendered(page)
        page.locator("[data-testid=stImage] img").first.wait_for(timeout=60_000)
        page.evaluate(WATCH)
        page.get_by_role("slider").first.focus()
        for _ in range(steps):
            n = page.evaluate("window.benchTimes.length")
            page.keyboard.press("ArrowRight")
            page.wait_for_function("n => window.benchTimes.length > n", arg=n, timeout=60_000)
            wait_until_rendered(page)
        times = page.evaluate("window.benchTimes.slice()")
        context.close()
        return {"app slider step to picture": times}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--moves", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--site", default=None, help="a built site holding MODELS (default: build them)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(args.site) if args.site else None
        if site is None:
            from vae.web import build

            site = build(Path(tmp) / "site", MODELS, log=lambda *_: None)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page_result = static_page(browser, f"http://127.0.0.1:{server.server_address[1]}/", args.runs, args.moves)
            app_result = app_path(browser, args.steps, Path(tmp) / "server.log")
            browser.close()
        server.shutdown()
    print(f"first view (mnist-vae-2d, empty cache, loopback): {page_result['first_view_bytes'] / 1e6:.2f} MB, "
          f"first picture at {page_result['first_view_s']:.2f} s after navigation")
    for name in MODELS[1:]:
        print(f"further model, {name}, when first picked: {page_result[f'bytes {name}'] / 1e6:.2f} MB")
    for name in MODELS[:2]:
        print(line(f"decode, {name}, one z", page_result[f"decode {name}"]))
        print(line(f"decode, {name}, 15 x 15 manifold", page_result[f"manifold 15x15 {name}"]))
    print(f"parity: 100 z decoded in the page vs torch, max |difference| {page_result['decode_max_abs']:.2e} "
          f"(goal 1/255 = {1 / 255:.2e}); 20 drawings framed in the page vs vae.preprocess: mean |difference| at most "
          f"{max(page_result['drawing_grey_levels']):.4f} grey levels, centres of mass within "
          f"{max(page_result['drawing_centre_px']):.4f} px")
    pad, app = page_result["pad move to picture"], app_result["app slider step to picture"]
    print(line("static page: pad move to picture drawn (mnist-vae-2d)", pad))
    print(line("app: slider step to picture drawn (mnist-vae-2d)", app))
    print(f"ratio app / static page, median: {statistics.median(app) / statistics.median(pad):.0f}x")


if __name__ == "__main__":
    main()
