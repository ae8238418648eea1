"""Real-browser smoke test: `streamlit run app.py` for real, every page opened in headless Chromium.

Fails on any Streamlit exception box, browser page error, or traceback in the server's log, and keeps
one screenshot per page under artifacts/screenshots/. Needs Debian's `chromium` and Playwright for
Python (`.ci/run` installs both); without Chromium the tests are skipped, except under CI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, ROOT, start_app, wait_until_rendered

SHOTS = ROOT / "artifacts" / "screenshots"

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    proc, url = start_app(log_path)
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    log = log_path.read_text()
    # No traceback, and none of the file watcher's "Examining the path of torch.classes" noise.
    assert "Traceback" not in log and "torch.classes" not in log, log


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()


def assert_clean(page) -> None:
    exceptions = page.locator("[data-testid=stException]")
    assert exceptions.count() == 0, exceptions.first.inner_text()
    assert not page.errors, page.errors


def test_every_page_renders(app, page):
    page.goto(app)
    wait_until_rendered(page)
    links = page.locator("[data-testid=stSidebarNav] a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert len(hrefs) == 6, hrefs
    # Named by URL path; the default page's URL is the bare root.
    pages = {href.rstrip("/").rsplit("/", 1)[-1] if href.rstrip("/") != app else "manifold": href for href in hrefs}
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, href in pages.items():
        page.goto(href)
        wait_until_rendered(page)
        page.screenshot(path=SHOTS / f"{name}.png", full_page=True)
        assert_clean(page)
        assert page.locator("[data-testid=stImage] img, .js-plotly-plot").count() > 0, f"{name} shows nothing"


def test_moving_a_slider_redraws_the_manifold(app, page):
    page.goto(app)
    wait_until_rendered(page)
    image = page.locator("[data-testid=stImage] img").first
    before = image.get_attribute("src")
    page.get_by_role("slider").first.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "before => document.querySelector('[data-testid=stImage] img').getAttribute('src') !== before",
        arg=before, timeout=30_000,
    )
    wait_until_rendered(page)
    assert_clean(page)
    assert page.locator("[data-testid=stSliderThumbValue]").first.inner_text() == "18"  # 15 + 3 steps
