"""Load: N visitors at once on one fresh `streamlit run app.py`, each visiting every page and using it.

    VAE_DATA_DIR=../shared/data .venv/bin/python bench/load.py [--visitors 1 4 8 16] [--repeats 1] [--train 5]

Each visitor is a headless Chromium context of its own (a browser session, as a person's tab), all
driven at once by Playwright's asyncio API from one browser process. A visitor opens the app (the
manifold), then goes through the other seven pages by their sidebar links, as a person does (one
session, no reload), and on each page makes a typical interaction: one step of the first slider
in the page (grid size, a latent, the interpolation steps, the span, ...), colour by -ELBO on the
Embeddings page (its first slider recomputes the map). Times, from the visitor's side:

- first load: from `goto` until the page has rendered (the frontend's scripts included);
- page switch and interaction: from the click or key press until the server's "script finished"
  message reaches the browser (read from the websocket, Streamlit's own protocol), so the queueing
  behind other visitors' scripts is in it and the browser's painting is not.

A step counts as an error when the page shows a Streamlit exception box, the browser reports a page
error, or no "script finished" comes within 120 s; a server log line with "Traceback" or "Error"
counts too. The server's peak resident set is Linux's VmHWM of its process (a training job's child
process is not in it); its CPU share is the CPU seconds it used while the visitors ran over the
machine's (wall time x cores): the rest went to the browsers. With --train K, K sessions first train a one-epoch MNIST VAE each from the
sidebar (one job at a time, as the server allows), open every page with it picked and stay open,
then the N visitors come: the memory after K trained session models and N visitors.

The browsers share the machine's cores with the server, so the times include their work. The
baseline is N = 1 in the same run: the ratio of p95s says what the concurrency costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, is_script_finished, start_app  # noqa: E402

RENDERED = ("() => document.querySelector('[data-testid=stMain] h1') && "
            "!document.querySelector('[data-testid=stStatusWidget]') && !document.querySelector('[data-testid=stSkeleton]')")
TIMEOUT_S = 120


class Tab:
    """A visitor's page, with the server's "script finished" messages counted from its websocket."""

    def __init__(self, page):
        self.page, self.finished, self.errors = page, 0, []
        self._changed = asyncio.Event()

        def frame(payload) -> None:
            if is_script_finished(payload):
                self.finished += 1
                self._changed.set()

        page.on("websocket", lambda ws: ws.on("framereceived", frame))
        page.on("pageerror", lambda e: self.errors.append(f"page error {str(e)[:200]}"))

    async def timed(self, action, what: str, errors: list) -> float | None:
        """Seconds from ``action()`` until the next "script finished"; None (and an error) on a timeout."""
        before = self.finished
        t0 = time.perf_counter()
        await action()
        deadline = t0 + TIMEOUT_S
        while self.finished == before:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.01, deadline - time.perf_counter()))
            except asyncio.TimeoutError:
                errors.append(f"{what}: no script finished in {TIMEOUT_S} s")
                return None
        seconds = time.perf_counter() - t0
        await self.page.wait_for_function(RENDERED, timeout=TIMEOUT_S * 1000)
        await self.check(what, errors)
        return seconds

    async def check(self, what: str, errors: list) -> None:
        boxes = self.page.locator("[data-testid=stException]")
        if await boxes.count():
            errors.append(f"{what}: " + (await boxes.first.inner_text())[:200])
        errors.extend(f"{what}: {e}" for e in self.errors)
        self.errors.clear()


BUTTONS = {"embeddings": "-ELBO"}  # a page's typical interaction is a button there: Colour by -ELBO (its
# first slider, the number of test images, recomputes the t-SNE map: 11 s, a deliberate wait, not typical)


async def interact(tab: Tab, what: str, times: dict, errors: list) -> None:
    """A button of BUTTONS, else one step of the page's first slider, else a click on its first class
    button, else nothing."""
    main = tab.page.locator("[data-testid=stMain]")
    slider = main.locator("[data-testid=stSlider] input[type=range]").first
    if what in BUTTONS:
        button = main.locator("button", has_text=re.compile(f"^{re.escape(BUTTONS[what])}$")).first
        took = await tab.timed(button.click, f"{what} interaction", errors)
    elif await slider.count():
        await slider.focus()
        took = await tab.timed(lambda: slider.press("ArrowRight"), f"{what} interaction", errors)
    else:
        button = main.locator("button", has_text=re.compile(r"^[0-9]$")).first
        if not await button.count():
            return
        took = await tab.timed(button.click, f"{what} interaction", errors)
    if took is not None:
        times["interaction"].append(took)


async def visitor(browser, url: str, times: dict, errors: list) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        tab = Tab(await context.new_page())
        t0 = time.perf_counter()
        await tab.page.goto(f"{url}/manifold")
        await tab.page.wait_for_function(RENDERED, timeout=TIMEOUT_S * 1000)
        times["first load"].append(time.perf_counter() - t0)
        await tab.check("first load", errors)
        await interact(tab, "manifold", times, errors)
        links = tab.page.locator("[data-testid=stSidebar] [data-testid=stPageLink-NavLink]")
        for i in range(2, await links.count()):  # 0: the landing page, 1: the manifold, open already
            link = links.nth(i)
            name = (await link.get_attribute("href")).rstrip("/").rsplit("/", 1)[-1]
            took = await tab.timed(link.click, name, errors)
            if took is not None:
                times["page switch"].append(took)
                await interact(tab, name, times, errors)
    finally:
        await context.close()


async def trainer(browser, url: str, errors: list):
    """A session that trains a one-epoch model from the sidebar, then opens every page with it; its
    context stays open (the model lives as long as the session) and is returned."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1500})
    page = await context.new_page()
    tab = Tab(page)  # before the page opens its websocket, so that its messages are counted
    await page.goto(url)
    await page.wait_for_function(RENDERED, timeout=TIMEOUT_S * 1000)
    sidebar = page.locator("[data-testid=stSidebar]")
    await sidebar.get_by_text("Train a model").click()
    epochs = sidebar.get_by_label("Epochs", exact=True)
    await epochs.fill("1")
    await epochs.press("Tab")
    await sidebar.get_by_role("button", name="Train", exact=True).click()
    await sidebar.get_by_text(re.compile(r"Trained run \d+ · mnist vae 2-d: 1 epoch in")).wait_for(timeout=300_000)
    links = sidebar.locator("[data-testid=stPageLink-NavLink]")
    count = await links.count()
    for i in [*range(1, count), 0]:  # the landing page (page 0) is already open: it comes last
        await tab.timed(links.nth(i).click, f"trained model, page {i + 1}", errors)
    return context


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used so far (Linux /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> int:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["VmHWM"].split()[0]) * 1024


async def one_run(n: int, log: Path, train: int = 0) -> dict:
    from playwright.async_api import async_playwright

    proc, url = start_app(log)
    times: dict[str, list[float]] = {"first load": [], "page switch": [], "interaction": []}
    errors: list[str] = []
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            kept = [await trainer(browser, url, errors) for _ in range(train)]
            t0, cpu0 = time.perf_counter(), cpu_seconds(proc.pid)
            await asyncio.gather(*(visitor(browser, url, times, errors) for _ in range(n)))
            wall, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
            for context in kept:
                await context.close()
            await browser.close()
        rss = peak_rss(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    server_errors = [line for line in log.read_text().splitlines() if "Traceback" in line or "Error" in line]
    steps = times["page switch"] + times["interaction"]
    return {"n": n, "train": train, "times": times, "errors": errors + server_errors, "wall": wall, "rss": rss,
            "server_share": cpu / (wall * (os.cpu_count() or 1)),
            "p50": statistics.median(steps), "p95": p95(steps), "load_p50": statistics.median(times["first load"]),
            "load_p95": p95(times["first load"])}


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) > 1 else values[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--visitors", type=int, nargs="+", default=[1, 4, 8, 16])
    p.add_argument("--repeats", type=int, default=1, help="cold servers per N (0: only the --train run)")
    p.add_argument("--train", type=int, default=0, help="sessions that train a model first (in one more run, "
                   "at the largest N)")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    runs = [(n, 0) for n in sorted(set([1, *a.visitors])) for _ in range(a.repeats)]
    if a.train:
        runs.append((max(a.visitors), a.train))
    rows = []
    for i, (n, train) in enumerate(runs):
        rows.append(asyncio.run(one_run(n, tmp / f"server-{i}.log", train)))
        r = rows[-1]
        print(f"N = {n:2d}{f' after {train} trained models' if train else ''}: {len(r['errors'])} errors; "
              f"first load p50 {r['load_p50']:.2f} s, p95 {r['load_p95']:.2f} s; page switches and interactions "
              f"({len(r['times']['page switch']) + len(r['times']['interaction'])}) p50 {r['p50']:.2f} s, "
              f"p95 {r['p95']:.2f} s; visitors done in {r['wall']:.1f} s, the server using {100 * r['server_share']:.0f}% "
              f"of the CPUs; server peak RSS {r['rss'] / 2**30:.2f} GiB",
              flush=True)
        for e in r["errors"][:5]:
            print("   ", e)
    base = statistics.median([r["p95"] for r in rows if r["n"] == 1 and not r["train"]] or [float("nan")])
    print("\n| visitors | trained models | steps | errors | first load p50 / p95 | step p50 | step p95 | "
          "p95 / N = 1 | server's CPU share | server peak RSS |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        steps = len(r["times"]["page switch"]) + len(r["times"]["interaction"])
        print(f"| {r['n']} | {r['train']} | {steps} | {len(r['errors'])} | {r['load_p50']:.2f} / {r['load_p95']:.2f} s | "
              f"{r['p50']:.2f} s | {r['p95']:.2f} s | {r['p95'] / base:.2f} | {100 * r['server_share']:.0f}% | "
              f"{r['rss'] / 2**30:.2f} GiB |")


if __name__ == "__main__":
    main()
