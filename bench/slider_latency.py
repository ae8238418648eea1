"""Slider latency: server time of the rerun a latent slider change causes on the sliders page.

Under AppTest, through app.py (sidebar included), after a warm-up: the median of --runs changes of an
active dimension's slider (alternating between two values, so every run decodes a new z), for the
2-d MLP VAE and the 20-d ConvVAE. Baselines measured in the same process: the same page rerun with
no change, and the manifold page's rerun (a 15 x 15 grid of the 2-d model, its default view).
"Server time" is the script run itself (ScriptRunner._run_script); the AppTest wall time around it,
which adds AppTest's own bookkeeping, is printed too.

    VAE_DATA_DIR=../shared/data .venv/bin/python bench/slider_latency.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import script_runner
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]

# A real server runs pages/ as Streamlit v1 multipage scripts only until app.py's st.navigation
# turns that off (its first run); AppTest resets it before every run, which would run a switched-to
# page without app.py and its sidebar. Turn it off here too, so each rerun is the server's whole rerun.
_init = PagesManager.__init__


def _init_without_v1_pages(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    PagesManager.uses_pages_directory = False


PagesManager.__init__ = _init_without_v1_pages

# Time the script run itself.
_SCRIPT_SECONDS: list[float] = []
_run_script = script_runner.ScriptRunner._run_script


def _timed_run_script(self, *args, **kwargs):
    t0 = time.perf_counter()
    try:
        return _run_script(self, *args, **kwargs)
    finally:
        _SCRIPT_SECONDS.append(time.perf_counter() - t0)


script_runner.ScriptRunner._run_script = _timed_run_script


def timed_run(at: AppTest) -> tuple[float, float]:
    """(server seconds, AppTest wall seconds) of one rerun."""
    _SCRIPT_SECONDS.clear()
    t0 = time.perf_counter()
    at.run()
    wall = time.perf_counter() - t0
    assert not at.exception, [e.value for e in at.exception]
    return sum(_SCRIPT_SECONDS), wall


def open_page(page: str, model: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.sidebar.selectbox(key="model_name").select(model).run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception and at.sidebar.selectbox(key="model_name").value == model
    return at


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--threads", type=int, nargs="*", default=[torch.get_num_threads(), 1],
                   help="torch intra-op thread counts to compare (default: torch's default, then 1)")
    a = p.parse_args()
    load = os.getloadavg()[0]
    series = {"manifold page rerun, mnist-vae-2d (baseline)": (open_page("manifold", "mnist-vae-2d"), None)}
    for model in ("mnist-vae-2d", "mnist-vae-20d"):
        at = open_page("sliders", model)
        sliders = [s for s in at.slider if s.label.startswith("z[")]
        first_row = next(m.value for m in at.markdown if m.value.startswith("**z["))  # highest-KL dimension
        key = f"sliders/{model}/z{first_row[4 : first_row.index(']')]}"
        series[f"sliders page rerun, no change, {model}"] = (at, None)
        series[f"slider change, {model} ({len(sliders)} sliders)"] = (
            at, lambda i, at=at, key=key: at.slider(key=key).set_value(1.5 if i % 2 else -1.0))
    print(f"Server time per rerun, median of {a.runs} after 3 warm-up rounds (AppTest wall time beside "
          f"it); torch {torch.__version__}, {os.cpu_count()} CPUs.")
    for threads in a.threads:
        torch.set_num_threads(threads)
        # Round-robin over the series, so that load from other processes falls on all of them alike.
        times = {name: [] for name in series}
        for i in range(3 + a.runs):  # 3 warm-up rounds
            for name, (at, change) in series.items():
                if change:
                    change(i)
                t = timed_run(at)
                if i >= 3:
                    times[name].append(t)
        medians = {name: (statistics.median(s for s, _ in v), statistics.median(w for _, w in v))
                   for name, v in times.items()}
        base = medians["manifold page rerun, mnist-vae-2d (baseline)"][0]
        print(f"torch threads {threads}; load average {load:.1f} before, {os.getloadavg()[0]:.1f} after:")
        load = os.getloadavg()[0]
        for name, (server, wall) in medians.items():
            print(f"  {name:48s} {server * 1000:7.1f} ms   (wall {wall * 1000:6.1f} ms)   "
                  f"ratio to the manifold baseline {server / base:5.2f}")


if __name__ == "__main__":
    main()
