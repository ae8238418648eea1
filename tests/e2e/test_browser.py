"""Real-browser smoke test: `streamlit run app.py` for real, every page opened in headless Chromium.

Fails on any Streamlit exception box, browser page error, or traceback in the server's log, and keeps
one screenshot per page under artifacts/screenshots/. Needs Debian's `chromium` and Playwright for
Python (`.ci/run` installs both); without Chromium the tests are skipped, except under CI.
"""

from __future__ import annotations

from streamlit_server import assert_clean, screenshot, wait_until_rendered


def test_every_page_renders(app, open_page):
    page = open_page()
    links = page.locator("[data-testid=stSidebarNav] a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert len(hrefs) == 6, hrefs
    # Named by URL path; the default page's URL is the bare root.
    pages = {href.rstrip("/").rsplit("/", 1)[-1] if href.rstrip("/") != app else "manifold": href for href in hrefs}
    for name, href in pages.items():
        page.goto(href)
        wait_until_rendered(page)
        screenshot(page, name)
        assert_clean(page)
        assert page.locator("[data-testid=stImage] img, .js-plotly-plot").count() > 0, f"{name} shows nothing"


def test_moving_a_slider_redraws_the_manifold(open_page):
    page = open_page()
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
