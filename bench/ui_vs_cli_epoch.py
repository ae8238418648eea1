"""Seconds per epoch: training from the app's sidebar against `python -m vae.train`, same config.

UI: `streamlit run app.py` for real; headless Chromium opens the page (a new browser session each
run), sets the sidebar's form, presses Train, waits for the run to finish (the live fragment
refreshing every second all along) and downloads the zip, whose metrics.json holds the per-epoch
times. CLI: `python -m vae.train` with the same settings (and the width the app uses), its
metrics.json. job: the same through `vae.jobs.JobRegistry`, as the Train button starts it, in this
process, with no server and no browser: what the app's own machinery costs. Both time epochs inside `vae.train.train` (after the data is loaded), so the numbers
compare the training loop in each setting. Runs alternate (CLI, job, UI, then UI, job, CLI) so that load from
other processes falls on both alike. Prints every epoch's seconds, the medians and the ratio, the
load average before and after, and how often the server's file watcher overflowed.

What this benchmark found; together they made UI epochs 1.1 to 1.8 times the CLI's on a 2-core CPU:
- training in a thread of the server: every thread that calls into torch has an OpenMP team of its
  own and the teams compete for the cores (even in a plain process, `train` in a second thread ran
  1.7 times as long per epoch as in the main thread); a job now trains in a child process;
- Streamlit's ``gc.collect(2)`` after every script run, the once-a-second refresh included (0.05 to
  0.25 s each with torch loaded): off with ``runner.postScriptGC = false``;
- the file watcher's recursive watch of the app folder, .venv included: ``fileWatcherType = "none"``;
- a Plotly chart redrawn every second: the live chart is a small SVG.
Here the browser runs on the same CPUs as the server; ``--browser-nice 19`` lets it yield them, as a
visitor's browser on another machine would.

    .venv/bin/python bench/ui_vs_cli_epoch.py [--runs 3] [--epochs 5] [--dataset mnist] [--batch-size 128]
                                              [--file-watcher none] [--browser-nice 19]
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
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, ROOT, start_app, wait_until_rendered  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

sys.path.insert(0, str(ROOT))
from vae.data import DATASET_NAMES  # noqa: E402
from vae.jobs import JobRegistry  # noqa: E402
from vae.policy import Policy  # noqa: E402
from vae.models import MODELS  # noqa: E402
from vae.train import TrainConfig  # noqa: E402


def epoch_seconds(metrics: dict) -> list[float]:
    """Each epoch's own seconds, from the cumulative seconds in metrics.json's history."""
    cumulative = [h["seconds"] for h in metrics["history"]]
    return [b - a for a, b in zip([0.0, *cumulative], cumulative)]


def cli_run(a, out: Path) -> list[float]:
    subprocess.run([sys.executable, "-m", "vae.train", "--dataset", a.dataset, "--model", a.model,
                    "--latent-dim", str(a.latent_dim), "--hidden", *map(str, MODELS[a.model].default_hidden),
                    "--epochs", str(a.epochs),
                    "--batch-size", str(a.batch_size), "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    return epoch_seconds(json.loads((out / "metrics.json").read_text()))


def job_run(a, folder: Path) -> list[float]:
    """A job started the way the Train button starts one (vae.jobs), with no server and no browser."""
    config = TrainConfig(dataset=a.dataset, model=a.model, latent_dim=a.latent_dim, hidden=list(MODELS[a.model].default_hidden),
                         epochs=a.epochs, batch_size=a.batch_size)
    job = JobRegistry(Policy(max_jobs=1), folder=folder).start("bench", config)
    job.wait()
    assert job.state == "done", job.error
    return epoch_seconds(job.metrics)


def ui_run(browser, url: str, a) -> list[float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1500}, accept_downloads=True)
    page = context.new_page()
    try:
        page.goto(url)
        wait_until_rendered(page)
        sidebar = page.locator("[data-testid=stSidebar]")
        sidebar.get_by_text("Train a model").click()
        sidebar.get_by_text(DATASET_NAMES[a.dataset], exact=True).click()  # a radio button's label
        sidebar.get_by_text(MODELS[a.model].short_name, exact=True).click()
        if a.batch_size != 128:  # the form's default
            sidebar.get_by_label("Batch size", exact=True).click()
            page.get_by_role("option", name=str(a.batch_size), exact=True).click()
        for label, value in (("Epochs", a.epochs), ("Latent dim.", a.latent_dim)):
            box = sidebar.get_by_label(label, exact=True)
            box.fill(str(value))
            box.press("Tab")
        sidebar.get_by_role("button", name="Train", exact=True).click()
        sidebar.locator("[data-testid=stProgress]").wait_for(timeout=60_000)  # the live part is on
        done = sidebar.get_by_text("Trained ")
        while not done.is_visible():  # poll slowly: Playwright's wait_for polls on every animation frame
            time.sleep(2)
        with page.expect_download() as download:
            sidebar.locator("[data-testid=stDownloadButton] button").first.click()
        data = Path(download.value.path()).read_bytes()
        archive = zipfile.ZipFile(io.BytesIO(data))
        config = json.loads(next(archive.read(n) for n in archive.namelist() if n.endswith("config.json")))
        assert (config["dataset"], config["epochs"], config["batch_size"], config["latent_dim"]) == \
            (a.dataset, a.epochs, a.batch_size, a.latent_dim), config
        metrics = next(archive.read(n) for n in archive.namelist() if n.endswith("metrics.json"))
        return epoch_seconds(json.loads(metrics))
    finally:
        context.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--dataset", choices=tuple(DATASET_NAMES), default="mnist")
    p.add_argument("--model", choices=tuple(MODELS), default="vae")
    p.add_argument("--latent-dim", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--file-watcher", choices=("auto", "watchdog", "poll", "none"), default=None,
                   help="the server's server.fileWatcherType (default: as .streamlit/config.toml says)")
    p.add_argument("--browser-nice", type=int, default=0,
                   help="run Chromium at this nice level (19: it yields the CPUs to the server, as a visitor's "
                   "browser on another machine would; 0: shares them equally)")
    a = p.parse_args()
    if a.file_watcher:
        os.environ["STREAMLIT_SERVER_FILE_WATCHER_TYPE"] = a.file_watcher  # start_app passes it on
    tmp = Path(tempfile.mkdtemp())
    chromium = CHROMIUM
    if a.browser_nice:
        chromium = tmp / "chromium-niced"
        chromium.write_text(f'#!/bin/sh\nexec nice -n {a.browser_nice} {CHROMIUM} "$@"\n')
        chromium.chmod(0o755)
    load_before = os.getloadavg()
    times: dict[str, list[list[float]]] = {"CLI": [], "job": [], "UI": []}
    proc, url = start_app(tmp / "server.log")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
            for i in range(a.runs):
                order = (("CLI", "job", "UI") if i % 2 == 0 else ("UI", "job", "CLI"))
                for kind in order:
                    run = (cli_run(a, tmp / f"cli-{i}") if kind == "CLI" else job_run(a, tmp / f"jobs-{i}")
                           if kind == "job" else ui_run(browser, url, a))
                    times[kind].append(run)
                    print(f"run {i + 1} {kind:3s}: " + ", ".join(f"{s:.3f}" for s in run) + " s per epoch", flush=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    overflows = (tmp / "server.log").read_text().count("Inotify queue overflowed")
    print(f"{a.model} {a.latent_dim}-d, {a.dataset}, batch {a.batch_size}, {a.epochs} epochs, {a.runs} runs each, "
          f"file watcher {a.file_watcher or 'as configured'}, browser at nice {a.browser_nice}, "
          f"alternating; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          f"({os.cpu_count()} CPUs); "
          f"the server's file watcher logged {overflows} inotify queue overflows")
    medians = {}
    for kind, runs in times.items():
        flat = [s for run in runs for s in run]
        later = [s for run in runs for s in run[1:]]
        medians[kind] = statistics.median(flat)
        print(f"  {kind:3s} median s/epoch {medians[kind]:.3f} (all epochs; mean {statistics.mean(flat):.3f}), "
              f"{statistics.median(later) if later else float('nan'):.3f} (without each run's first epoch); "
              f"per-run medians: {', '.join(f'{statistics.median(r):.3f}' for r in runs)}")
    print(f"  ratio job / CLI (medians, all epochs): {medians['job'] / medians['CLI']:.2f}")
    print(f"  ratio UI / CLI (medians, all epochs): {medians['UI'] / medians['CLI']:.2f}")


if __name__ == "__main__":
    main()
