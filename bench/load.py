"""Load: N visitors at once on one fresh `streamlit run app.py`, each opening every page.

    VAE_DATA_DIR=../shared/data .venv/bin/python bench/load.py [--visitors 1 4 8] [--repeats 1]

Each visitor is a headless Chromium context of its own (a browser session, as a person's tab), all
driven at once by Playwright's asyncio API from one browser process. Every visitor opens the eight
pages in turn (the manifold first, through the root URL), waiting each time until the page has
rendered (a title, no running indicator). A page load counts as an error when it shows a Streamlit
exception box or the browser reports a page error. For each N, on a cold server (started for that
N alone): errors, page-load seconds (median and 95th percentile over all loads), and the server's
peak resident set (Linux /proc VmHWM). The baseline is N = 1 in the same run: the p95 ratio says
what the concurrency costs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, start_app  # noqa: E402

PAGES = ("", "reconstruct", "sliders", "interpolate", "cvae", "embeddings", "ae_vs_vae", "theory")
RENDERED = ("() => document.querySelector('[data-testid=stMain] h1') && "
            "!document.querySelector('[data-testid=stStatusWidget]') && !document.querySelector('[data-testid=stSkeleton]')")


async def visitor(browser, url: str, times: list, errors: list) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    try:
        for path in PAGES:
            t0 = time.perf_counter()
            await page.goto(f"{url}/{path}")
            await page.wait_for_function(RENDERED, timeout=120_000)
            times.append(time.perf_counter() - t0)
            boxes = page.locator("[data-testid=stException]")
            if await boxes.count():
                errors.append(f"/{path}: " + (await boxes.first.inner_text())[:200])
            if page_errors:
                errors.append(f"/{path}: page error {page_errors[0][:200]}")
                page_errors.clear()
    finally:
        await context.close()


def peak_rss(pid: int) -> int:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["VmHWM"].split()[0]) * 1024


async def one_run(n: int, log: Path) -> dict:
    from playwright.async_api import async_playwright

    proc, url = start_app(log)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            times: list[float] = []
            errors: list[str] = []
            t0 = time.perf_counter()
            await asyncio.gather(*(visitor(browser, url, times, errors) for _ in range(n)))
            wall = time.perf_counter() - t0
            await browser.close()
        rss = peak_rss(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    server_errors = [line for line in log.read_text().splitlines() if "Traceback" in line or "Error" in line]
    q = statistics.quantiles(times, n=20) if len(times) > 1 else [times[0]] * 19
    return {"n": n, "loads": len(times), "errors": errors, "server_errors": server_errors,
            "p50": statistics.median(times), "p95": q[18], "wall": wall, "rss": rss}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--visitors", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--repeats", type=int, default=1, help="cold servers per N")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    rows = []
    for n in sorted(set([1, *a.visitors])):
        for r in range(a.repeats):
            rows.append(asyncio.run(one_run(n, tmp / f"server-{n}-{r}.log")))
            row = rows[-1]
            print(f"N = {n:2d} (cold server {r + 1}): {row['loads']} page loads, {len(row['errors'])} errors, "
                  f"{len(row['server_errors'])} server log errors; p50 {row['p50']:.2f} s, p95 {row['p95']:.2f} s; "
                  f"all visitors done in {row['wall']:.1f} s; server peak RSS {row['rss'] / 2**30:.2f} GiB", flush=True)
            for e in row["errors"][:5]:
                print("   ", e)
    base = statistics.median(r["p95"] for r in rows if r["n"] == 1)
    print("\n| visitors | page loads | errors | p50 page load | p95 page load | p95 / N = 1 | server peak RSS |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['n']} | {r['loads']} | {len(r['errors']) + len(r['server_errors'])} | {r['p50']:.2f} s | "
              f"{r['p95']:.2f} s | {r['p95'] / base:.2f} | {r['rss'] / 2**30:.2f} GiB |")


if __name__ == "__main__":
    main()
