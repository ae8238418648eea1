"""Real-browser smoke test: `streamlit run app.py` for real, every page opened in headless Chromium.

Fails on any Streamlit exception box, browser page error, or traceback in the server's log, and keeps
one screenshot per page under artifacts/screenshots/. Needs Debian's `chromium` and Playwright for
Python (`.ci/run` installs both); without Chromium the tests are skipped, except under CI.
"""

from __future__ import annotations

from urllib.parse import urljoin

from streamlit_server import (assert_clean, assert_hover_picture, hover_a_point, open_in_browser, screenshot,
                              start_app, wait_until_rendered)


def test_every_page_renders(app, open_page):
    page = open_page()
    links = page.locator("[data-testid=stSidebar] [data-testid=stPageLink-NavLink]")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert len(hrefs) == 10, hrefs
    # Named by URL path; the landing page's URL is the bare root.
    pages = {href.strip("/").rsplit("/", 1)[-1] or "home": urljoin(f"{app}/", href) for href in hrefs}
    for name, href in pages.items():
        page.goto(href)
        wait_until_rendered(page)
        screenshot(page, name)
        assert_clean(page)
        # a chart's code loads when first needed: wait for something drawn, not just the script's end
        page.locator("[data-testid=stImage] img, .js-plotly-plot, [data-testid=stVegaLiteChart], "
                     "[data-testid=stDataFrame]").first.wait_for(timeout=30_000)  # the landing page: its table


def test_moving_a_slider_redraws_the_manifold(open_page):
    page = open_page("manifold")
    image = page.locator("[data-testid=stImage] img").first
    before = image.get_attribute("src")
    page.get_by_role("slider").first.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "before => document.querySelector('[data-testid=stImage] img').getAttribute('src') !== before",
        arg=before, timeout=30_000,
    )
    # every press counts, whatever the reruns they started did meanwhile: the thumb settles at 15 + 3
    page.wait_for_function(
        "() => document.querySelector('[data-testid=stSliderThumbValue]').innerText === '18'", timeout=30_000)
    wait_until_rendered(page)
    assert_clean(page)
    assert page.locator("[data-testid=stSliderThumbValue]").first.inner_text() == "18"


TITLES = {"Start here", "Latent manifold", "Reconstruct an image", "Latent sliders", "What the dimensions mean", "Interpolation",
          "CVAE: class and style",
          "Embeddings (t-SNE, UMAP, PCA)", "AE vs VAE", "Theory: KL and ELBO"}
# Every navigation label the page ever shows, recorded from the first byte on.
RECORD_NAV = r"""
window.navSeen = new Set();
new MutationObserver(() => document.querySelectorAll('[data-testid=stSidebarNav] a, [data-testid=stPageLink-NavLink]')
    .forEach(a => window.navSeen.add(a.innerText.trim().split("\n").pop()))).observe(document, {subtree: true, childList: true, characterData: true});
"""


def test_a_cold_servers_first_visit_on_a_deep_link_renders_inside_the_app(browser, tmp_path):
    """A fresh server's first request is for /sliders: the page renders inside app.py's frame (the sidebar's
    model picker, the app's page titles) and never shows Streamlit's file-name navigation."""
    proc, url = start_app(tmp_path / "server.log")
    try:
        context, page = open_in_browser(browser, f"{url}/sliders", 900, init_script=RECORD_NAV)
        screenshot(page, "cold-deep-link-sliders")
        assert_clean(page)
        assert page.locator("[data-testid=stMain] h1").first.inner_text() == "Latent sliders"
        assert page.locator("[data-testid=stSidebar]").get_by_text("Model", exact=True).count() == 1
        seen = set(page.evaluate("[...window.navSeen]"))
        assert seen == TITLES, seen  # never "app", "sliders", ... (the files' names)
        context.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log


def test_controls_keep_their_values_when_a_run_stops_before_drawing_them(open_page):
    """Issue 14, item 2, in a real browser (AppTest keeps hidden widgets' values, so it cannot catch
    this): the interpolation controls survive a run that stops before them."""
    page = open_page("interpolate")
    page.get_by_text("spherical (slerp)").click()
    wait_until_rendered(page)
    end = page.locator("[data-testid=stRadio]").filter(has_text="End").first
    end.get_by_text("an upload").click()
    wait_until_rendered(page)
    assert page.get_by_text("spherical (slerp)").count() == 0  # the run stopped before the controls
    end.get_by_text("a test image").click()
    wait_until_rendered(page)
    checked = page.locator("[data-testid=stRadio]").filter(has_text="spherical (slerp)").locator("input:checked")
    assert checked.first.evaluate("e => e.closest('label').innerText.trim()") == "spherical (slerp)"
    assert_clean(page)
    page.goto(page.url.replace("/interpolate", "/reconstruct"))
    wait_until_rendered(page)
    page.get_by_role("slider").first.focus()
    page.keyboard.press("ArrowRight")  # k: 100 -> 1000
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stMetricLabel]')]"
                           ".some(e => e.innerText.includes('k = 1000'))", timeout=30_000)
    inputs = page.locator("[data-testid=stButtonGroup]").first
    inputs.get_by_text("Upload").click()
    wait_until_rendered(page)
    inputs.get_by_text("Test image").click()
    wait_until_rendered(page)
    assert page.locator("[data-testid=stSliderThumbValue]").first.inner_text() == "1000"
    assert "IWAE NLL (k = 1000)" in page.locator("[data-testid=stMetricLabel]").all_inner_texts()
    assert_clean(page)


def pick_model(page, name: str) -> None:
    page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.click()
    page.get_by_role("option", name=name, exact=True).click()
    wait_until_rendered(page)


def test_every_class_button_is_visible_at_1400_px(open_page):
    """Issue 14, item 4: class pickers wrap instead of hiding classes past the column's edge."""
    page = open_page("manifold")
    for model, path, label in (("mnist-cvae", "", "Class (the CVAE's label y)"),
                               ("fashion-cvae", "cvae", "Pick the item (the label y)")):
        if path:
            page.goto(page.url.rsplit("/", 1)[0] + "/" + path)
            wait_until_rendered(page)
        pick_model(page, model)
        group = page.locator("[data-testid=stElementContainer]").filter(
            has=page.get_by_text(label, exact=True)).filter(has=page.locator("[data-testid=stButtonGroup]")).last
        buttons = group.locator("[data-testid=stButtonGroup] button")
        assert buttons.count() == 10
        right = group.bounding_box()["x"] + group.bounding_box()["width"]
        for i in range(10):
            box = buttons.nth(i).bounding_box()
            assert box and box["x"] + box["width"] <= right + 1 and box["x"] + box["width"] <= 1400, (model, i, box)
        assert_clean(page)


def test_on_a_phone_the_decoded_image_stays_in_view_with_the_sliders(app, browser):
    """Issue 14, item 7: at 390x844 the sliders page put the start buttons and the test-image picker
    between the image and the sliders, so the image was out of view while a slider moved."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(f"{app}/sliders")
        wait_until_rendered(page)
        image = page.locator("[data-testid=stImage] img").first
        image.scroll_into_view_if_needed()
        top = image.bounding_box()["y"]
        slider = page.get_by_role("slider").first.bounding_box()
        assert slider["y"] + slider["height"] <= top + 844, (top, slider)  # both in one screen
        screenshot(page, "sliders-phone")
        assert_clean(page)
    finally:
        context.close()


RESAMPLED = """() => [...document.querySelectorAll('[data-testid=stImage] img')]
    .filter(i => i.naturalWidth !== i.clientWidth)
    .map(i => `${i.naturalWidth} px shown at ${i.clientWidth}: ${(i.closest('[data-testid=stImage]').innerText || '').slice(0, 60)}`)"""


LOADED = "() => [...document.querySelectorAll('[data-testid=stImage] img')].every(i => i.complete && i.naturalWidth > 0)"


def test_no_image_is_resampled_by_the_browser_at_1400_px(open_page):
    """Issue 14, item 6: the manifold grid was drawn at 840 px into 595, the interpolation strip scaled
    1.31x, style transfer 1.3x. Every image is shown at its own size (integer scales that fit)."""
    page = open_page()
    base = page.url.rstrip("/")
    for path, setup in (("manifold", None), ("sliders", None), ("interpolate", None), ("cvae", "Switch to mnist-cvae"),
                        ("reconstruct", None), ("ae_vs_vae", None), ("theory", None)):
        page.goto(f"{base}/{path}")
        wait_until_rendered(page)
        if setup:
            page.get_by_role("button", name=setup, exact=True).click()
            wait_until_rendered(page)
        page.wait_for_function(LOADED, timeout=30_000)
        assert page.evaluate(RESAMPLED) == [], path
    page.goto(f"{base}/interpolate")
    wait_until_rendered(page)
    slider = page.get_by_role("slider").first  # images between the ends: 8 -> 20, two rows
    slider.focus()
    for _ in range(12):
        page.keyboard.press("ArrowRight")
    page.get_by_text("20 images decoded").wait_for(timeout=30_000)
    wait_until_rendered(page)
    page.wait_for_function(LOADED, timeout=30_000)
    assert page.evaluate(RESAMPLED) == []
    assert_clean(page)


def test_a_click_on_the_latent_pad_moves_the_sliders(open_page):
    """Issue 14: for a 2-d model, a click on the plane decodes that z; the sliders follow."""
    page = open_page("sliders")
    pad = page.locator("[data-testid=stPlotlyChart]").first
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    x, y = box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.3  # right of and above the centre
    page.mouse.move(x, y)  # a hover first, as a person's pointer does
    page.mouse.click(x, y)
    page.wait_for_function("() => document.querySelector('[data-testid=stImage]').innerText.includes('latent pad')",
                           timeout=30_000)
    wait_until_rendered(page)
    after = page.locator("[data-testid=stSliderThumbValue]").all_inner_texts()
    assert float(after[0]) > 0.5 and float(after[1]) > 0.0, after
    screenshot(page, "sliders-pad")
    assert_clean(page)


def test_on_a_phone_no_image_overflows_the_screen(app, browser):
    """Images drawn at their own size shrink to a phone's column instead of running off the screen."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        for path in ("", "interpolate", "ae_vs_vae"):
            page.goto(f"{app}/{path}")
            wait_until_rendered(page)
            over = page.evaluate("() => [...document.querySelectorAll('[data-testid=stImage] img')]"
                                 ".filter(i => i.getBoundingClientRect().right > window.innerWidth + 1).length")
            assert over == 0, path
        assert_clean(page)
    finally:
        context.close()


def test_hovering_a_point_on_the_embeddings_map_shows_its_image(open_page):
    """Issue 15: the pointer over a point of either chart shows that test image (a thumbnail in Vega's
    tooltip), its index and its class; a click then selects it (its neighbours appear)."""
    page = open_page("embeddings", height=1400)
    charts = page.locator("[data-testid=stMain] [data-testid=stVegaLiteChart]")
    charts.nth(1).locator("canvas, svg").first.wait_for(timeout=30_000)  # Vega's code loads when first needed
    assert charts.count() == 2  # mnist-vae-2d: the t-SNE map and the latent plane
    for c in range(2):
        found = hover_a_point(page, charts.nth(c))
        box = charts.nth(c).locator("canvas, svg").first.bounding_box()
        assert_hover_picture(page, "mnist")
        text = page.locator("#vg-tooltip-element").inner_text()
        assert "test image" in text and "class" in text, text
        screenshot(page.locator("#vg-tooltip-element"), f"embeddings-hover-{c}")
    page.mouse.click(box["x"] + found[0] * box["width"], box["y"] + found[1] * box["height"])
    page.get_by_text("its nearest neighbours").wait_for(timeout=30_000)
    wait_until_rendered(page)
    screenshot(page, "embeddings-clicked")
    assert_clean(page)
