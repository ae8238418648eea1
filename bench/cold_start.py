"""Cold start: seconds from `streamlit run app.py` until its first page is fully rendered in Chromium.

Baseline, measured in the same run: the same for a one-line Streamlit app (a title), i.e. the cost of
Streamlit itself. Prints the median of --runs starts of each and the ratio.

    .venv/bin/python bench/cold_start.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, ROOT, start_app, wait_until_rendered  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402


def cold_start(browser, script: Path, cwd: Path, log: Path, ready: str) -> float:
    t0 = time.perf_counter()
    proc, url = start_app(log, script, cwd)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        wait_until_rendered(page)
        page.wait_for_selector(ready, timeout=60_000)
        seconds = time.perf_counter() - t0
        page.close()
        return seconds
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "hello.py").write_text("import streamlit as st\nst.title('hello')\n")
    times = {"hello (baseline)": [], "app.py": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(a.runs):
            times["hello (baseline)"].append(cold_start(browser, tmp / "hello.py", tmp, tmp / "h.log", "h1"))
            times["app.py"].append(cold_start(browser, ROOT / "app.py", ROOT, tmp / "a.log", "[data-testid=stImage] img"))
        browser.close()
    base, ours = (statistics.median(v) for v in times.values())
    print(f"cold start to first rendered page, median of {a.runs}:")
    for name, v in times.items():
        print(f"  {name:18s} {statistics.median(v):6.2f} s   runs: {', '.join(f'{x:.2f}' for x in v)}")
    print(f"  ratio app / baseline: {ours / base:.2f}")


if __name__ == "__main__":
    main()
