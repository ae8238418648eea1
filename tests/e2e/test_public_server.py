"""The Docker image's steps without Docker, and public mode as a visitor meets it.

What the Dockerfile does, done here by hand (CI has no Docker daemon): a fresh virtual environment
from requirements.txt (the image takes torch and torchvision from PyTorch's CPU index first; here
they come from the registry, the CUDA build, which runs on the CPU), the files `docker build` copies
(.dockerignore applied), owned by root and read-only, and `streamlit run app.py` as uid 1000 with
`VAE_PUBLIC=1`, a home and a temp folder of its own. Then every page is opened in Chromium, a model
is trained from the sidebar (no save control; deleted once the tab is closed), and no file may have
been written by the server outside its home and temp folder.

Needs root (to run the server as another user) and Chromium; about 3 minutes, most of it the install.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from streamlit_server import (ROOT, assert_clean, assert_hover_picture, hover_a_point, open_in_browser, screenshot,
                              start_app, wait_until_rendered)

NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="runs the server as uid 1000, which needs root")

UID = 1000  # a Space runs its container as this user; the Dockerfile's `user`
PAGES = ["", "manifold", "reconstruct", "sliders", "interpolate", "cvae", "embeddings", "ae_vs_vae", "theory", "meaning"]


def docker_context_files() -> list[str]:
    """The repository's files (tracked, and untracked ones git does not ignore) that `docker build .`
    sends, .dockerignore applied as Docker reads it: a pattern is matched from the top (`/x` and `x`
    alike), `**/x` at any depth, and an excluded folder takes its files with it."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        for p in patterns:
            if p.startswith("**/"):
                if any(fnmatch.fnmatch(part, p[3:]) for part in parts):
                    return True
            elif any(fnmatch.fnmatch("/".join(parts[:i]), p.lstrip("/")) for i in range(1, len(parts) + 1)):
                return True  # anchored at the top, as Docker reads it; a folder takes its files with it
        return False

    return [f for f in files if (ROOT / f).is_file() and not ignored(f)]


def interpreter_for(uid: int) -> str:
    """A Python 3.11 that ``uid`` may run (the test's own may live under root's home, as pyenv's does)."""
    for candidate in ("/usr/local/bin/python3.11", "/usr/bin/python3.11", sys._base_executable):
        if os.path.exists(candidate) and subprocess.run(
                ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", candidate, "-c", "import venv"],
                capture_output=True).returncode == 0:
            return candidate
    pytest.skip(f"no Python 3.11 that uid {uid} may run")


def test_the_docker_context_holds_the_app_and_not_the_tests():
    files = set(docker_context_files())
    assert {"app.py", "requirements.txt", ".streamlit/config.toml", "pretrained/mnist-vae-2d/model.safetensors",
            "pretrained/mnist-vae-2d/embedding.safetensors", "pretrained/mnist-vae-2d/embedding-umap.safetensors",
            "vae/models.py", "ui/models.py", "pages/manifold.py", "locales/zh_CN/LC_MESSAGES/messages.po"} <= files
    assert any(f.startswith("pretrained/samples/") for f in files)  # the offline test images
    assert not [f for f in files if f.startswith(("tests/", "bench/", ".venv/", ".git/", "artifacts/"))]


@pytest.fixture(scope="module")
def image():
    """(base URL, folders) of the server run as the image runs it; stops it and removes everything after."""
    root = Path(tempfile.mkdtemp(prefix="vae-image-", dir="/tmp"))
    root.chmod(0o755)  # uid 1000 must reach the environment and the app
    try:
        venv = root / "venv"
        subprocess.run([interpreter_for(UID), "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(ROOT / "requirements.txt")],
                       check=True, capture_output=True)
        app = root / "app"
        for f in docker_context_files():
            (app / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, app / f)
        data = Path(os.environ.get("VAE_DATA_DIR") or ROOT / "data").resolve()
        subprocess.run([str(venv / "bin" / "python"), "-m", "ui.images", "--data-root", str(data)], cwd=app,
                       check=True, capture_output=True)  # the Dockerfile's RUN python -m ui.images, as root
        for path in [app, *app.rglob("*")]:  # root's, and nobody else may write
            path.chmod(0o555 if path.is_dir() else 0o444)
        home, tmp = root / "home", root / "tmp"
        for folder in (home, tmp):
            folder.mkdir()
            os.chown(folder, UID, UID)
        marker = root / "started"
        marker.touch()
        time.sleep(1.1)  # file times in whole seconds on some file systems: later writes are newer
        env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(tmp),
               "PYTHONDONTWRITEBYTECODE": "1", "NUMBA_CACHE_DIR": str(home / ".cache" / "numba"), "VAE_PUBLIC": "1", "VAE_SESSION_GRACE_S": "3",
               "VAE_DATA_DIR": str(data)}
        proc, url = start_app(root / "server.log", cwd=app, python=str(venv / "bin" / "python"), env=env,
                              prefix=("setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups"))
        try:
            uid = next(line.split()[1] for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                       if line.startswith("Uid:"))
            assert uid == str(UID), f"the server runs as uid {uid}"
            yield url, dict(root=root, home=home, tmp=tmp, marker=marker, data=data)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        log = (root / "server.log").read_text()
        assert "Traceback" not in log and "torch.classes" not in log, log
    finally:
        shutil.rmtree(root, ignore_errors=True)


@NEEDS_ROOT
def test_the_image_serves_every_page_and_a_visitor_keeps_nothing_behind(image, browser):
    url, at = image
    context, page = open_in_browser(browser, url, height=1500)
    try:
        for path in PAGES:
            page.goto(f"{url}/{path}")
            wait_until_rendered(page)
            screenshot(page, f"public-{path or 'home'}")
            assert_clean(page)
            # a chart's code loads when first needed: wait for something drawn, not just the script's end
            page.locator("[data-testid=stImage] img, .js-plotly-plot, [data-testid=stVegaLiteChart], "
                         "[data-testid=stDataFrame]").first.wait_for(timeout=30_000)  # the landing page: its table
        # UMAP with a seed no map is stored for: umap-learn imported and compiled by the server's user
        page.goto(f"{url}/embeddings")
        wait_until_rendered(page)
        main = page.locator("[data-testid=stMain]")
        # the hover pictures written at build time are the ones served (not a fallback into the charts)
        chart = main.locator("[data-testid=stVegaLiteChart]").first
        chart.locator("canvas, svg").first.wait_for(timeout=30_000)
        hover_a_point(page, chart)
        assert_hover_picture(page, "mnist")
        main.locator("button", has_text="UMAP").first.click()
        wait_until_rendered(page)
        seed = main.get_by_label("Seed", exact=True)
        seed.fill("1")
        seed.press("Enter")
        # a new map of all 10,000 is more than a public server computes: the stored map stays, with a warning
        main.get_by_text("This public server computes new maps of at most 2,000 images").wait_for(timeout=30_000)
        n = main.get_by_role("slider").first  # N: 10,000 -> 2,000 in steps of 500; a background job then
        n.focus()
        for _ in range(16):
            page.keyboard.press("ArrowLeft")
        main.get_by_text("UMAP of the means of 2,000 test images (15 neighbours, min_dist 0.1, seed 1); computed in").wait_for(
            timeout=120_000)
        wait_until_rendered(page)
        assert_clean(page)

        trains = (at["data"] / "MNIST").exists()  # without the dataset the sidebar cannot train
        if trains:
            sidebar = page.locator("[data-testid=stSidebar]")
            sidebar.get_by_text("Train a model").click()
            epochs = sidebar.get_by_label("Epochs", exact=True)
            epochs.fill("1")
            epochs.press("Tab")
            sidebar.get_by_role("button", name="Train", exact=True).click()
            sidebar.get_by_text(re.compile(r"Trained run \d+ · mnist vae 2-d: 1 epoch in")).wait_for(timeout=120_000)
            wait_until_rendered(page)
            screenshot(sidebar, "public-trained")
            assert_clean(page)
            assert sidebar.get_by_text("download the zip to keep this one").is_visible()
            assert sidebar.get_by_role("button", name=re.compile(r"Download run-\d+-mnist-vae-2-d\.zip")).is_visible()
            assert sidebar.get_by_role("button", name=re.compile("Save")).count() == 0
            (models,) = list(at["tmp"].glob("vae-session-models-*"))
            assert len(list(models.glob("*/*/model.safetensors"))) == 1  # ROOT/SESSION/JOB, in the temp folder
    finally:
        context.close()

    if trains:  # the tab is closed: once the session has been gone VAE_SESSION_GRACE_S seconds, its model goes
        deadline = time.monotonic() + 30
        while any(models.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(models.iterdir()), list(models.rglob("*"))

    # Nothing written by the server's user outside its home and temp folder (the app is read-only).
    found = subprocess.run(["find", "/", "/tmp", "/dev/shm", "-xdev", "-user", str(UID), "-newer", str(at["marker"]),
                            "-not", "-path", f"{at['home']}*", "-not", "-path", f"{at['tmp']}*"],
                           capture_output=True, text=True).stdout.split()
    assert found == [], found
