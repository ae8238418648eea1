"""Fixtures of the real-browser tests: one `streamlit run app.py` for the session, Chromium, pages.

Needs Debian's `chromium` and Playwright for Python (`.ci/run` installs both). Without Chromium the
browser tests are skipped, except under CI, where they fail instead.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, start_app, wait_until_rendered  # noqa: E402

HERE = Path(__file__).parent
MISSING = None if Path(CHROMIUM).exists() or os.environ.get("CI") else "Chromium is not installed (apt-get install chromium)"


def pytest_collection_modifyitems(config, items):
    if MISSING:
        for item in items:
            if HERE in Path(item.fspath).parents:
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
        context = browser.new_context(viewport={"width": 1400, "height": height}, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(f"{app}/{path}")
        wait_until_rendered(page)
        return page

    yield open_
    for context in contexts:
        context.close()
