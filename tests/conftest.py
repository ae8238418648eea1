"""What the tests share: AppTest helpers (import them: ``from conftest import open_app``), and the
fixtures of the real-browser tests under tests/e2e (one `streamlit run app.py` for the session,
Chromium, pages).

The browser tests need Debian's `chromium` and Playwright for Python (`.ci/run` installs both).
Without Chromium they are skipped, except under CI, where they fail instead. One conftest.py for both:
a second one under tests/e2e would shadow this module for ``from conftest import ...``.
"""

import io
import os
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.parent.name for p in (ROOT / "pretrained").glob("*/config.json"))
SAMPLE = ROOT / "pretrained/samples/mnist-test-sample.safetensors"
HERE = Path(__file__).parent / "e2e"

sys.path.insert(0, str(HERE))
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, open_in_browser, start_app  # noqa: E402

MISSING = None if Path(CHROMIUM).exists() or os.environ.get("CI") else "Chromium is not installed (apt-get install chromium)"


# ---------------------------------------------------------------- AppTest helpers


def rerun(at: AppTest) -> AppTest:
    """Run the app again, with no exception allowed."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_app(page: str | None = "manifold", model: str | None = None, timeout: float = 60) -> AppTest:
    """app.py under AppTest, with ``model`` picked in the sidebar (else the default), on pages/PAGE.py
    (None: the landing page, where the app opens); no exception allowed."""
    at = rerun(AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout))
    if model:
        at.sidebar.selectbox[0].select(model)
        rerun(at)
    if page:
        at.switch_page(f"pages/{page}.py")
        rerun(at)
    return at


def shown(at: AppTest) -> list[str]:
    """The media URLs of the images on the page; Streamlit names each by a hash of its bytes."""
    return [url for img in at.get("image") for url in img.value]


@pytest.fixture
def media(monkeypatch):
    """The bytes of every media file the runs store, by file id: AppTest's media storage is gone once a
    run has ended, so they are recorded as they are stored. Read an image's size with ``image_size``."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    saved, store = {}, MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        file_id = store(self, path_or_data, mimetype, kind, filename)
        if isinstance(path_or_data, bytes):
            saved[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return saved


def image_size(media: dict, url: str) -> tuple[int, int]:
    """(width, height) in pixels of the image at a media ``url`` on the page (``shown``), from ``media``."""
    from PIL import Image

    return Image.open(io.BytesIO(media[url.rsplit("/", 1)[-1].split(".")[0]])).size


def labelled(widgets, label: str):
    """The first widget of ``widgets`` with this label."""
    return next(w for w in widgets if w.label == label)


def wait_for(condition, timeout: float = 60.0) -> None:
    """Poll ``condition()`` every 20 ms until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# ---------------------------------------------------------------- browser fixtures


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.slow)
            if MISSING:
                item.add_marker(pytest.mark.skip(reason=MISSING))


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    """The base URL of `streamlit run app.py` on a free loopback port, models saved to a temporary
    folder. When the session ends, the server's log must hold no traceback and none of the file
    watcher's "torch.classes" noise."""
    tmp = tmp_path_factory.mktemp("streamlit")
    os.environ["VAE_USER_MODELS"] = str(tmp / "user_models")  # start_app passes the environment on
    try:
        proc, url = start_app(tmp / "server.log")
    finally:
        del os.environ["VAE_USER_MODELS"]
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log = (tmp / "server.log").read_text()
    assert "Traceback" not in log and "torch.classes" not in log, log


@pytest.fixture(scope="session")
def browser():
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def open_page(app, browser):
    """open_page(path="", height=1000): a new browser session (a context of its own) on the app's page
    at ``path``, rendered; browser page errors are collected in ``page.errors``."""
    contexts = []

    def open_(path: str = "", height: int = 1000):
        context, page = open_in_browser(browser, f"{app}/{path}", height)
        contexts.append(context)
        return page

    yield open_
    for context in contexts:
        context.close()


# ---------------------------------------------------------------- the static explorer (vae.web)


def tinted_zip(path: Path, n: int = 300, seed: int = 0) -> Path:
    """A zip of n MNIST training digits as 3-channel PNGs, each in a random saturated colour on a darker
    background of another hue, one folder per class: a colour dataset of the user's own images."""
    import colorsys
    import zipfile

    import numpy as np
    from PIL import Image

    from vae.data import load_dataset

    x, y = load_dataset("mnist", "train")
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as z:
        for i in range(n):
            d = x[i, 0].numpy()
            hue = rng.uniform()
            fg = np.array(colorsys.hsv_to_rgb(hue, 1, 1))
            bg = np.array(colorsys.hsv_to_rgb((hue + rng.uniform(0.25, 0.75)) % 1, 1, 0.5))
            rgb = bg * (1 - d[..., None]) + fg * d[..., None]
            b = io.BytesIO()
            Image.fromarray((rgb * 255).round().astype(np.uint8)).save(b, format="PNG")
            z.writestr(f"tinted/{int(y[i])}/{i:04d}.png", b.getvalue())
    return path


@pytest.fixture(scope="session")
def web_site(tmp_path_factory):
    """`python -m vae.web build --projector` of mnist-vae-2d, mnist-cvae and a colour 32-px model trained for one
    epoch on a zip of tinted digits (the user's own images): the site's folder."""
    from vae.train import main as train_main
    from vae.web import build

    tmp = tmp_path_factory.mktemp("web")
    before = os.environ.get("VAE_CACHE_DIR")
    os.environ["VAE_CACHE_DIR"] = str(tmp / "cache")  # the zip's decoded cache: the test's own
    try:
        train_main(["--dataset", str(tinted_zip(tmp / "tinted.zip")), "--out", str(tmp / "tinted-vae"), "--model", "vae",
                    "--latent-dim", "2", "--hidden", "32", "--epochs", "1", "--batch-size", "32"])
        return build(tmp / "site", ["mnist-vae-2d", "mnist-cvae", str(tmp / "tinted-vae")], projector=True,
                     log=lambda *_: None)
    finally:
        if before is None:
            del os.environ["VAE_CACHE_DIR"]
        else:
            os.environ["VAE_CACHE_DIR"] = before
