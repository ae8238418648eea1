"""The Embeddings page in a browser: the whole test split's maps against the bundled sample's, and the
hover pictures as static files against pictures carried in the charts.

    VAE_DATA_DIR=../shared/data .venv/bin/python bench/embeddings_browser.py [--rounds 5]

Three fresh `streamlit run app.py` servers, started together and used in turn, the default model
(mnist-vae-2d: its t-SNE map and its latent plane, two charts):

- "10,000, file": what ships: the stored maps of the whole test split, each point's hover picture a
  small PNG in static/thumbnails/ that the browser fetches when the pointer rests on it (the chart
  carries its URL);
- "10,000, inline": the same maps, static serving off, so each chart carries its points' pictures
  as data URLs (what the page did before, at 2,000 points);
- "2,000 (sample)": the data root emptied, so the page shows the bundled sample's 2,000 images of
  the same stored maps, pictures as files (the baseline: 2,000 points a chart, as the page had).

Each round opens the page in a fresh browser context (the browser's cache empty), hovers the t-SNE
map until a picture shows, clicks that point (its neighbours appear; the plane is sent again with
the point marked), colours by -ELBO and back to class (both charts sent again). For each step: the
seconds from the action until the browser is done, i.e. until the server's "script finished"
message has arrived and the browser's main thread has had no long task (over 50 ms, Chromium's
PerformanceObserver) for one second, the end of the last such task counting; and the bytes that
came over the websocket and over HTTP from app/static/ (the hover pictures). Medians over --rounds,
the rounds of the three interleaved; ratios against "2,000 (sample)". The browser shares the 2 cores
with the server.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, hover_a_point, is_script_finished, start_app  # noqa: E402

LONG_TASKS = """window.__longTaskEnds = [];
new PerformanceObserver(list => list.getEntries().forEach(e => window.__longTaskEnds.push(e.startTime + e.duration)))
  .observe({type: 'longtask', buffered: true});"""
QUIET_S = 1.0  # no long task for this long: the browser is done


class Tab:
    """A page whose websocket's frames are counted (bytes, and the server's "script finished")."""

    def __init__(self, page):
        self.page, self.finished, self.bytes, self.errors = page, 0, 0, []

        def frame(payload) -> None:
            self.bytes += len(payload) if isinstance(payload, bytes) else 0
            self.finished += is_script_finished(payload)

        page.on("websocket", lambda ws: ws.on("framereceived", frame))
        page.on("pageerror", lambda e: self.errors.append(str(e)[:200]))

    def clock_offset(self) -> float:
        """perf_counter() minus the page's performance.now(), in seconds."""
        return time.perf_counter() - self.page.evaluate("performance.now()") / 1000

    def step(self, action, scripts: int = 1) -> tuple[float, int]:
        """(seconds until the browser is done, websocket and static bytes) for ``action()``."""
        before, sent = self.finished, self.bytes + self.static_bytes()
        offset = self.clock_offset()
        t0 = time.perf_counter()
        action()
        deadline = t0 + 120
        while self.finished < before + scripts:
            assert time.perf_counter() < deadline, "no script finished in 120 s"
            self.page.wait_for_timeout(5)
        finished = time.perf_counter()
        while True:  # until the main thread has been free of long tasks for QUIET_S
            ends = self.page.evaluate("window.__longTaskEnds")
            last = max([finished] + [offset + e / 1000 for e in ends])
            if time.perf_counter() - last >= QUIET_S:
                break
            assert time.perf_counter() < deadline, "the browser stayed busy for 120 s"
            self.page.wait_for_timeout(50)
        assert not self.page.locator("[data-testid=stException]").count() and not self.errors, self.errors
        return last - t0, self.bytes + self.static_bytes() - sent

    def static_bytes(self) -> int:
        """Bytes fetched over HTTP from app/static/ so far (Resource Timing's transferSize: 0 from the cache)."""
        return int(self.page.evaluate("performance.getEntriesByType('resource').filter(e => "
                                      "e.name.includes('/app/static/')).reduce((n, e) => n + e.transferSize, 0)"))


def one_round(browser, url: str) -> dict[str, tuple[float, int]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(LONG_TASKS)
    try:
        tab = Tab(context.new_page())
        out = {"open the page": tab.step(lambda: tab.page.goto(f"{url}/embeddings"))}
        main = tab.page.locator("[data-testid=stMain]")
        charts = main.locator("[data-testid=stVegaLiteChart]")
        charts.nth(1).locator("canvas, svg").first.wait_for(timeout=60_000)
        fx, fy = hover_a_point(tab.page, charts.first)
        box = charts.first.locator("canvas, svg").first.bounding_box()
        out["click a point (neighbours)"] = tab.step(lambda: tab.page.mouse.click(
            box["x"] + fx * box["width"], box["y"] + fy * box["height"]))
        assert main.get_by_text("its nearest neighbours").count()
        for name, label in (("colour by -ELBO", "-ELBO"), ("colour by class", "class")):
            button = main.locator("button", has_text=re.compile(f"^{re.escape(label)}$")).first
            out[name] = tab.step(button.click)
        return out
    finally:
        context.close()


def main() -> None:
    from playwright.sync_api import sync_playwright

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", nargs="+", help="run these configurations alone (their names as printed)")
    a = p.parse_args()
    empty = tempfile.mkdtemp()
    configs = {"10,000, file": {}, "10,000, inline": {"STREAMLIT_SERVER_ENABLE_STATIC_SERVING": "false"},
               "2,000 (sample)": {"VAE_DATA_DIR": empty}}
    configs = {k: v for k, v in configs.items() if not a.only or k in a.only}
    rounds: dict[str, list[dict]] = {name: [] for name in configs}
    servers = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, env in configs.items():  # all three at once, idle but for the one in use
                servers[name] = start_app(Path(empty) / f"{len(servers)}.log", env={**os.environ, **env})
            for name, (_, url) in servers.items():
                one_round(browser, url)  # a warm-up: the server's caches, the stored maps read once
            for _ in range(a.rounds):  # interleaved, so a change of load falls on all alike
                for name, (_, url) in servers.items():
                    rounds[name].append(one_round(browser, url))
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=20)
            browser.close()
    results = {name: {step: [r[step] for r in rs] for step in rs[0]} for name, rs in rounds.items()}
    base = results.get("2,000 (sample)") or next(iter(results.values()))
    print(f"Embeddings page, mnist-vae-2d (two charts), Chromium on {os.cpu_count()} CPUs; median of {a.rounds} "
          "rounds: seconds until the browser is done, and MB received; ratio against "
          + ("2,000 (sample)" if "2,000 (sample)" in results else next(iter(results))))
    print(f"  {'step':28s}" + "".join(f" {name:>27s}" for name in results))
    for step in base:
        cells = []
        for name in results:
            s = statistics.median(t for t, _ in results[name][step])
            mb = statistics.median(b for _, b in results[name][step]) / 1e6
            ratio = s / statistics.median(t for t, _ in base[step])
            cells.append(f"{s:6.2f} s {mb:6.2f} MB x{ratio:5.2f}")
        print(f"  {step:28s}" + "".join(f" {c:>27s}" for c in cells))


if __name__ == "__main__":
    main()
