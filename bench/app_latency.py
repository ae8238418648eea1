"""App latency: each page's rerun for its typical interaction, and the cold start of `streamlit run app.py`.

Reruns: AppTest drives app.py (sidebar included) in this process. For each page, after 3 warm-up
rounds, the median of --runs reruns that each make the page's typical change (every change new, so
no cache answers it), against the baseline measured in the same rounds: the same page rerun with
nothing changed (the app's frame plus the page with its caches warm). Scripts are compiled once per
process, as a server does (AppTest alone would compile app.py and the page again on every run). "Server time" is the script
run itself (ScriptRunner._run_script), which is what a browser waits for before the new elements
arrive; AppTest's own bookkeeping around it is left out. The rounds interleave the pages, so load
from other processes falls on all of them alike.

First visits: server time of each page's first run in this fresh process, its caches cold.

Memory: the server's peak resident set after opening every page once (the default models).

Cold start: seconds from starting `streamlit run app.py` until its first page (the landing page) has
rendered its table of models in headless Chromium, against the same for a one-line app (a title), i.e. the cost
of Streamlit itself; the median of --cold-runs starts each.

Against a commit (``--against REV``): the reruns of the manifold, sliders and Theory pages here and at
commit REV, in processes that alternate, so that what the change between them costs a rerun is measured
in one run (the state layer of issue 25 against the commit before it).

    VAE_DATA_DIR=../shared/data .venv/bin/python bench/app_latency.py [--runs 20] [--cold-runs 3] [--cold-only]
    VAE_DATA_DIR=../shared/data .venv/bin/python bench/app_latency.py --against 828fbea [--runs 20]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from streamlit.runtime.scriptrunner import script_runner
from streamlit.runtime.scriptrunner.script_cache import ScriptCache
from streamlit.testing.v1 import AppTest

ROOT = Path(os.environ.get("VAE_BENCH_ROOT") or Path(__file__).resolve().parents[1])  # the tree whose app.py is timed
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

_SCRIPT_SECONDS: list[float] = []
_run_script = script_runner.ScriptRunner._run_script


def _timed_run_script(self, *args, **kwargs):
    t0 = time.perf_counter()
    try:
        return _run_script(self, *args, **kwargs)
    finally:
        _SCRIPT_SECONDS.append(time.perf_counter() - t0)


script_runner.ScriptRunner._run_script = _timed_run_script

# A server compiles each script once (one ScriptCache per runtime); AppTest makes a new cache for every run,
# so each rerun here would pay the parse, Streamlit's magic and the compile of app.py and the page again
# (tens of ms that grow with the files' length, and that no visitor waits for). Keep one cache per process.
_BYTECODE: dict[tuple[str, float], object] = {}
_get_bytecode = ScriptCache.get_bytecode


def _cached_bytecode(self, script_path: str):
    key = (os.path.abspath(script_path), os.path.getmtime(script_path))
    if key not in _BYTECODE:
        _BYTECODE[key] = _get_bytecode(self, script_path)
    return _BYTECODE[key]


ScriptCache.get_bytecode = _cached_bytecode


def server_seconds(at: AppTest) -> float:
    """Server time of one rerun; fails on any exception or error shown."""
    _SCRIPT_SECONDS.clear()
    at.run()
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    return sum(_SCRIPT_SECONDS)


def open_page(page: str, model: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.sidebar.selectbox[0].select(model).run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception and at.sidebar.selectbox[0].value == model
    return at


def photo(i: int, w: int = 600, h: int = 450) -> bytes:
    """A JPEG "photo": a dark 7 on unevenly lit paper, shifted by i pixels so each one is new."""
    rng = np.random.default_rng(i)
    grey = np.linspace(235, 160, w)[None, :].repeat(h, 0) + rng.normal(0, 3, (h, w))
    im = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("RGB")
    pts = [(120 + i % 100, 90), (260 + i % 100, 90), (170 + i % 100, 330)]
    ImageDraw.Draw(im).line(pts, fill=(40, 40, 40), width=26, joint="curve")
    b = io.BytesIO()
    im.save(b, "JPEG", quality=90)
    return b.getvalue()


def interactions() -> dict[str, tuple[AppTest, callable]]:
    """Name -> (the page, open on its model; a function of the round number that makes the change)."""
    out = {}
    at = open_page("manifold", "mnist-vae-2d")
    out["manifold: grid size, 15x15 of mnist-vae-2d"] = (
        at, lambda i, at=at: at.slider[0].set_value(14 + 2 * (i % 2)))  # 14 or 16 cells a side
    for model in ("mnist-vae-2d", "mnist-vae-20d"):
        at = open_page("sliders", model)
        top = next(m.value for m in at.markdown if m.value.startswith("**z["))  # the highest-KL dimension
        key = f"sliders/{model}/z{top[4:top.index(']')]}"
        out[f"sliders: one latent slider, {model}"] = (
            at, lambda i, at=at, key=key: at.slider(key=key).set_value(round(-2 + 0.01 * i, 2)))
    at = open_page("reconstruct", "mnist-vae-2d")
    at.get("button_group")[0].set_value("Upload").run()
    out["reconstruct: upload a 600x450 JPEG photo"] = (
        at, lambda i, at=at: at.file_uploader[0].set_value((f"photo{i}.jpg", photo(i), "image/jpeg")))
    at = open_page("interpolate", "mnist-vae-2d")
    out["interpolate: end image, mnist-vae-2d"] = (
        at, lambda i, at=at: at.number_input(key="interpolate/end_example").set_value(2 + i))
    at = open_page("cvae", "mnist-cvae")
    out["cvae: pick the digit, mnist-cvae"] = (
        at, lambda i, at=at: at.get("button_group")[0].set_value((i + 1) % 10))
    at = open_page("embeddings", "mnist-vae-20d")

    def select(i, at=at):  # what st.altair_chart stores when points are clicked: their map positions
        at.session_state["embeddings/map-points-0"] = {"selection": {"points": [{"pos": p} for p in range(i % 7, 40 + i % 7)]}}

    out["embeddings: select 40 points, mnist-vae-20d"] = (at, select)
    at = open_page("embeddings", "mnist-vae-20d")

    def click(i, at=at):  # one point: its nearest neighbours in the latent space
        at.session_state["embeddings/map-points-0"] = {"selection": {"points": [{"pos": 100 + i}]}}

    out["embeddings: click a point, its 8 neighbours"] = (at, click)
    at = open_page("embeddings", "mnist-vae-20d")
    at = open_page("embeddings", "mnist-vae-20d")
    out["embeddings: place an upload on the t-SNE map"] = (
        at, lambda i, at=at: at.file_uploader[0].set_value((f"photo{i}.jpg", photo(i), "image/jpeg")))
    at = open_page("embeddings", "mnist-vae-20d")
    out["embeddings: colour by -ELBO or by class"] = (
        at, lambda i, at=at: at.get("button_group")[1].set_value("neg_elbo" if i % 2 == 0 else "class"))
    at = open_page("manifold", "mnist-vae-2d")
    next(t for t in at.toggle if t.label.startswith("Overlay")).set_value(True).run()
    out["manifold: grid size with the encodings overlaid"] = (
        at, lambda i, at=at: at.slider[0].set_value(14 + 2 * (i % 2)))
    at = open_page("sliders", "mnist-vae-2d")

    def pad(i, at=at):  # a click on the latent pad: st.plotly_chart's selection of one point
        point = {"x": round(-2 + 0.05 * i, 2), "y": 0.5, "curve_number": 10, "point_number": 0, "point_index": 0}
        at.session_state["sliders/mnist-vae-2d/pad"] = {"selection": {"points": [point], "point_indices": [0],
                                                                      "box": [], "lasso": []}}

    out["sliders: a click on the latent pad, mnist-vae-2d"] = (at, pad)
    at = open_page("ae_vs_vae", "mnist-vae-2d")
    out["ae_vs_vae: span of the grids"] = (
        at, lambda i, at=at: at.main.slider[0].set_value(1.5 + 0.5 * (i % 4)))
    at = open_page("theory", "mnist-vae-2d")
    out["theory: the mu slider"] = (at, lambda i, at=at: at.slider[0].set_value(round(-2 + 0.05 * i, 2)))
    return out


def first_open_table() -> None:
    """Server time of the first visit to each page in this fresh process: caches cold, model loaded."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    t = server_seconds(at)
    print("First visit of each page in a fresh process (server time; the page's caches cold):")
    print(f"  {'manifold, mnist-vae-2d (app.py, first run: model load)':52s} {t * 1000:6.0f} ms")
    for page, model in (("reconstruct", "mnist-vae-2d"), ("sliders", "mnist-vae-2d"), ("interpolate", "mnist-vae-2d"),
                        ("cvae", "mnist-cvae"), ("embeddings", "mnist-vae-20d"), ("ae_vs_vae", "mnist-vae-2d"),
                        ("theory", "mnist-vae-2d")):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
        at.sidebar.selectbox[0].select(model).run()
        at.switch_page(f"pages/{page}.py")
        print(f"  {f'{page}, {model}':52s} {server_seconds(at) * 1000:6.0f} ms")


def rerun_table(runs: int) -> None:
    series = interactions()
    times = {name: ([], []) for name in series}  # (changed, nothing changed)
    load = os.getloadavg()[0]
    for i in range(3 + runs):  # 3 warm-up rounds
        for name, (at, change) in series.items():
            change(i)
            changed = server_seconds(at)
            unchanged = server_seconds(at)
            if i >= 3:
                times[name][0].append(changed)
                times[name][1].append(unchanged)
    print(f"Server time per rerun, median of {runs} after 3 warm-up rounds; torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {load:.1f} before and "
          f"{os.getloadavg()[0]:.1f} after.")
    print(f"  {'page: interaction':48s} {'change':>9s} {'no change':>10s} {'ratio':>6s}")
    for name, (changed, unchanged) in times.items():
        c, u = statistics.median(changed), statistics.median(unchanged)
        print(f"  {name:48s} {c * 1000:6.0f} ms {u * 1000:7.0f} ms {c / u:6.2f}")


def cold_start_table(runs: int) -> None:
    from playwright.sync_api import sync_playwright
    from streamlit_server import CHROMIUM, CHROMIUM_ARGS, start_app, wait_until_rendered

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

    def peak_memory_after_every_page(browser, log: Path) -> int:
        """The server's peak resident set in bytes (Linux /proc) after each page has been opened once."""
        proc, url = start_app(log)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path in ("", "manifold", "reconstruct", "sliders", "interpolate", "cvae", "embeddings", "ae_vs_vae", "theory"):
                page.goto(f"{url}/{path}")
                wait_until_rendered(page)
            page.close()
            status = dict(line.split(":", 1) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines())
            return int(status["VmHWM"].split()[0]) * 1024
        finally:
            proc.terminate()
            proc.wait(timeout=20)

    tmp = Path(tempfile.mkdtemp())
    (tmp / "hello.py").write_text("import streamlit as st\nst.title('hello')\n")
    times = {"one-line app (baseline)": [], "app.py": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(runs):
            times["one-line app (baseline)"].append(cold_start(browser, tmp / "hello.py", tmp, tmp / "h.log", "h1"))
            times["app.py"].append(cold_start(browser, ROOT / "app.py", ROOT, tmp / "a.log", "[data-testid=stDataFrame]"))
        peak = peak_memory_after_every_page(browser, tmp / "m.log")
        browser.close()
    base, ours = (statistics.median(v) for v in times.values())
    print(f"Server memory after opening every page once: peak resident set {peak / 2**30:.2f} GiB")
    print(f"Cold start, `streamlit run` until the first page is rendered in Chromium, median of {runs}:")
    for name, v in times.items():
        print(f"  {name:26s} {statistics.median(v):5.2f} s   (runs: {', '.join(f'{x:.2f}' for x in v)})")
    print(f"  ratio app.py / baseline: {ours / base:.2f}")


COMPARED = ("manifold", "sliders", "theory")  # pages whose first widgets are the same on both sides of a comparison


_STATE_SECONDS: list[float] = []  # time spent in the state layer (ui.state), where the tree has one


def time_the_state_layer() -> bool:
    """Wrap ui.state's entry points so that their time is added to _STATE_SECONDS; False where the tree
    has no state layer (a commit before issue 25)."""
    try:
        from ui import state
    except ImportError:
        return False

    def timed(f):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                _STATE_SECONDS.append(time.perf_counter() - t0)
        return wrapper

    for name in ("bind", "get", "set"):
        setattr(state.PageState, name, timed(getattr(state.PageState, name)))
    for name in ("begin_run", "end_run", "zoom"):
        setattr(state, name, timed(getattr(state, name)))
    return True


def compared_reruns(runs: int) -> dict[str, float]:
    """Median server time in seconds of ``runs`` reruns per page of COMPARED on mnist-vae-2d, after 3
    warm-up rounds: its first slider moved ("PAGE: change") and nothing changed ("PAGE: no change").
    Widgets are found by their place, not their keys, so that any commit of the app can be timed."""
    layered = time_the_state_layer()
    pages = {page: open_page(page, "mnist-vae-2d") for page in COMPARED}
    times = {f"{page}: {kind}": [] for page in COMPARED for kind in ("change", "no change", "state layer")}
    for i in range(3 + runs):
        for page, at in pages.items():
            slider = at.main.slider[0]
            value = slider.min + (slider.max - slider.min) * (0.25 + 0.5 * (i % 2))
            slider.set_value(round(value) if isinstance(slider.min, int) else round(value, 2))
            _STATE_SECONDS.clear()
            changed, unchanged = server_seconds(at), server_seconds(at)
            if i >= 3:
                times[f"{page}: change"].append(changed)
                times[f"{page}: no change"].append(unchanged)
                times[f"{page}: state layer"].append(sum(_STATE_SECONDS) / 2)  # per rerun
    return {name: statistics.median(v) for name, v in times.items() if layered or not name.endswith("state layer")}


def against_table(rev: str, runs: int, rounds: int = 3) -> None:
    """This tree's reruns against those of commit ``rev`` (a git worktree), timed in the same run: the two
    alternate, one process each per round, ``rounds`` rounds; the medians of the rounds' medians."""
    base = Path(tempfile.mkdtemp()) / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), rev], check=True,
                   capture_output=True)
    trees = {"this tree": ROOT, rev: base}
    results = {name: [] for name in trees}
    try:
        for _ in range(rounds):
            for name, tree in trees.items():
                out = subprocess.run([sys.executable, __file__, "--compared-json", str(runs)], check=True, text=True,
                                     capture_output=True, env={**os.environ, "VAE_BENCH_ROOT": str(tree)})
                results[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    ours, theirs = ({k: statistics.median(r[k] for r in rounds_) for k in rounds_[0]} for rounds_ in results.values())
    print(f"Server time per rerun, this tree against {rev}: the median over {rounds} alternating rounds of each "
          f"round's median of {runs} reruns (mnist-vae-2d).")
    print(f"  {'page: rerun':24s} {'this tree':>10s} {rev[:9]:>10s} {'added':>9s} {'ratio':>6s}")
    for k in ours:
        if k in theirs:
            print(f"  {k:24s} {ours[k] * 1000:7.1f} ms {theirs[k] * 1000:7.1f} ms {(ours[k] - theirs[k]) * 1000:+6.1f} ms "
                  f"{ours[k] / theirs[k]:6.2f}")
        else:  # the time inside ui.state's functions, of this tree's rerun
            print(f"  {k:24s} {ours[k] * 1000:7.2f} ms   (inside ui.state, per rerun: bind, get, set, begin/end_run)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20, help="timed reruns per page")
    p.add_argument("--cold-runs", type=int, default=3, help="cold starts of each app (0: skip; needs Chromium)")
    p.add_argument("--cold-only", action="store_true", help="only the cold starts (and the peak memory)")
    p.add_argument("--against", metavar="REV", help="only: time the reruns of COMPARED pages here and at commit REV")
    p.add_argument("--compared-json", type=int, metavar="RUNS", help=argparse.SUPPRESS)  # one side of --against
    a = p.parse_args()
    if a.compared_json:
        print(json.dumps(compared_reruns(a.compared_json)))
        return
    if a.against:
        against_table(a.against, a.runs)
        return
    if a.cold_only:
        cold_start_table(a.cold_runs)
        return
    first_open_table()
    rerun_table(a.runs)
    if a.cold_runs:
        cold_start_table(a.cold_runs)


if __name__ == "__main__":
    main()
