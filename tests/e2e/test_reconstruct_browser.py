"""Real-browser check of the reconstruct page: `streamlit run app.py`, headless Chromium.

Opens "Reconstruct an image" (a test image first), uploads a JPEG photo through the real file input,
then a file that is not an image, then draws a digit on the canvas with the mouse. Screenshots go to
artifacts/screenshots/reconstruct-*.png. Fails on any exception box, browser error, or server traceback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit_server import assert_clean, screenshot, wait_until_rendered


@pytest.fixture
def page(open_page):
    """The reconstruct page, its first result (a test image) drawn."""
    pg = open_page("reconstruct", height=2000)
    pg.locator("[data-testid=stMetric]").nth(3).wait_for(timeout=60_000)  # the run streams its elements
    wait_until_rendered(pg)
    return pg


def pick(page, mode: str) -> None:
    page.locator("[data-testid=stButtonGroup] button", has_text=mode).click()
    wait_until_rendered(page)


def photo_jpeg(path: Path) -> Path:
    w, h = 800, 600
    im = Image.fromarray(np.linspace(235, 160, w)[None, :].repeat(h, 0).astype(np.uint8)).convert("RGB")
    ImageDraw.Draw(im).line([(160, 120), (350, 120), (230, 440)], fill=(40, 40, 40), width=34, joint="curve")
    im.save(path, "JPEG", quality=90)
    return path


def test_upload_a_photo_then_a_bad_file(page, tmp_path):
    assert page.locator("[data-testid=stMetric]").count() == 4  # a test image, at once
    pick(page, "Upload")
    page.set_input_files("[data-testid=stFileUploader] input[type=file]", str(photo_jpeg(tmp_path / "seven.jpg")))
    page.wait_for_selector("text=What the model receives: JPEG", timeout=60_000)
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=60_000)  # the run streams its elements
    wait_until_rendered(page)
    screenshot(page, "reconstruct-upload")
    assert_clean(page)
    # the framing steps, input, reconstruction, samples, and the reconstruction beside its moved code (issue 26)
    assert page.locator("[data-testid=stImage] img").count() == 9 and page.locator(".js-plotly-plot").count() == 2
    (tmp_path / "notes.png").write_bytes(b"not a picture at all\n" * 50)
    page.set_input_files("[data-testid=stFileUploader] input[type=file]", str(tmp_path / "notes.png"))
    page.wait_for_selector("[data-testid=stAlertContentError]", timeout=60_000)
    wait_until_rendered(page)
    assert "not an image that can be read" in page.locator("[data-testid=stAlertContentError]").inner_text()
    assert page.locator("[data-testid=stMetric]").count() == 0
    assert_clean(page, errors_allowed=True)


def test_a_file_the_browser_refuses_leaves_no_error_about_another_file(page, tmp_path):
    """Issue 25, item 11: a file over server.maxUploadSize (10 MB) is refused by the browser and never
    sent, so the page keeps the previous file; its error then named no file and read as the new one's."""
    pick(page, "Upload")
    uploader = "[data-testid=stFileUploader] input[type=file]"
    Image.new("L", (64, 64), 255).save(tmp_path / "white.png")
    page.set_input_files(uploader, str(tmp_path / "white.png"))
    page.wait_for_selector("[data-testid=stAlertContentError]", timeout=60_000)
    wait_until_rendered(page)
    (tmp_path / "big.bmp").write_bytes(b"BM" + bytes(36 * 2**20))
    page.set_input_files(uploader, str(tmp_path / "big.bmp"))
    page.wait_for_selector("text=File must be 10.0MB or smaller", timeout=30_000)  # the uploader's own words
    wait_until_rendered(page)
    errors = page.locator("[data-testid=stAlertContentError]").all_inner_texts()
    assert errors and all(e.startswith("white.png: ") for e in errors), errors  # about the file the page has
    assert_clean(page, errors_allowed=True)


def go_to(page, title: str) -> None:
    """Follow the sidebar's link to another page of the app (the same session)."""
    page.locator("[data-testid=stSidebar] [data-testid=stPageLink-NavLink]", has_text=title).click()
    page.wait_for_selector(f"[data-testid=stMain] h1:has-text('{title}')", timeout=60_000)
    wait_until_rendered(page)


def leave_and_come_back(page) -> None:
    go_to(page, "Latent manifold")
    go_to(page, "Reconstruct an image")
    page.locator("[data-testid=stMetric]").nth(3).wait_for(timeout=60_000)
    wait_until_rendered(page)


def test_an_upload_is_kept_when_the_page_is_left(page, tmp_path):
    """Issue 25, item 2: Streamlit's uploader forgets its file when a run does not draw it."""
    pick(page, "Upload")
    page.set_input_files("[data-testid=stFileUploader] input[type=file]", str(photo_jpeg(tmp_path / "seven.jpg")))
    page.wait_for_selector("text=What the model receives: JPEG", timeout=60_000)
    page.locator("[data-testid=stMetric]").nth(3).wait_for(timeout=60_000)
    wait_until_rendered(page)
    before = page.locator("[data-testid=stImage] img").nth(5).get_attribute("src")  # the input x
    leave_and_come_back(page)
    assert page.locator("text=Current image: seven.jpg").count() == 1
    assert page.locator("[data-testid=stImage] img").nth(5).get_attribute("src") == before
    assert_clean(page)
    page.get_by_role("button", name="Remove").click()
    page.wait_for_selector("text=the steps that turn it into", timeout=30_000)
    assert page.locator("[data-testid=stMetric]").count() == 0


def test_draw_a_digit_with_the_mouse(page):
    pick(page, "Draw")
    canvas = page.locator("canvas.upper-canvas")  # Fabric.js draws on the upper of its two canvases
    canvas.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # Fabric.js binds its mouse handlers after the canvas shows
    box = canvas.bounding_box()
    x, y = box["x"], box["y"]
    page.mouse.move(x + 70, y + 60)
    page.mouse.down()
    for px, py in [(150, 60), (210, 60), (170, 140), (130, 230)]:
        page.mouse.move(x + px, y + py, steps=8)
    page.mouse.up()
    page.wait_for_selector("text=What the model receives: PNG", timeout=60_000)
    page.locator("[data-testid=stMetric]").nth(3).wait_for(timeout=60_000)  # the run streams its elements
    wait_until_rendered(page)
    screenshot(page, "reconstruct-draw")
    assert_clean(page)
    assert page.locator("[data-testid=stMetric]").count() == 4
    before = page.locator("[data-testid=stImage] img").nth(5).get_attribute("src")  # the input x
    leave_and_come_back(page)  # the drawing is kept (issue 25, item 2), on the canvas and in the result
    assert page.locator("[data-testid=stImage] img").nth(5).get_attribute("src") == before
    ink = canvas.evaluate("c => { const d = c.parentElement.querySelector('canvas.lower-canvas').getContext('2d')"
                          ".getImageData(0, 0, 280, 280).data; let n = 0; for (let i = 0; i < d.length; i += 4)"
                          " n += d[i] < 128; return n }")
    assert ink > 1000, ink  # dark pixels of the stroke, drawn again from the kept drawing
    assert_clean(page)


# ---------------------------------------------------------------- a phone, by touch (issue 25, item 7)

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(app, browser):
    """A phone-sized touch browser (390x844, is_mobile, has_touch) on the reconstruct page, its first
    result (a test image) drawn."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.goto(f"{app}/reconstruct")
    pg.locator("[data-testid=stMetric]").nth(3).wait_for(timeout=60_000)
    wait_until_rendered(pg)
    yield pg
    context.close()


def tap(page, mode: str) -> None:
    page.locator("[data-testid=stButtonGroup] button", has_text=mode).tap()
    wait_until_rendered(page)


def top_in_page(page, locator) -> float:
    """The element's top in CSS px from the top of the page (not of the viewport): the app scrolls
    inside [data-testid=stMain]."""
    return locator.evaluate("e => e.getBoundingClientRect().top + document.querySelector('[data-testid=stMain]').scrollTop")


def draw_by_touch(page, canvas, points) -> None:
    """One stroke through ``points`` (CSS px inside the canvas) with touch events (Chrome's
    Input.dispatchTouchEvent), as a finger draws."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    cdp = page.context.new_cdp_session(page)
    at = [{"x": box["x"] + x, "y": box["y"] + y} for x, y in points]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [at[0]]})
    for a, b in zip(at, at[1:]):
        for i in range(1, 9):
            p = {"x": a["x"] + (b["x"] - a["x"]) * i / 8, "y": a["y"] + (b["y"] - a["y"]) * i / 8}
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [p]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def reconstruction(page):
    return page.locator("[data-testid=stImage]", has_text="reconstruction: the decoder's mean")


def test_phone_the_reconstruction_shows_beside_the_input_and_near_the_canvas(phone):
    page = phone
    test_input = page.locator("[data-testid=stImage]", has_text="input x")
    assert abs(top_in_page(page, test_input) - top_in_page(page, reconstruction(page))) < 2  # side by side
    tap(page, "Draw")
    captions = " ".join(page.locator("[data-testid=stCaptionContainer]").all_inner_texts())
    assert "Draw one digit" in captions and "hover" not in captions and "finger" in captions
    canvas = page.locator("canvas.upper-canvas")
    canvas.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # Fabric.js binds its handlers after the canvas shows
    draw_by_touch(page, canvas, [(70, 60), (150, 60), (210, 60), (170, 140), (130, 230)])
    page.wait_for_selector("text=What the model receives: PNG", timeout=60_000)
    page.locator("[data-testid=stMetric]").nth(3).wait_for(timeout=60_000)
    wait_until_rendered(page)
    assert_clean(page)
    # The framing steps no longer stack between the canvas and the result: it starts within 1.5 screens.
    assert top_in_page(page, reconstruction(page)) < 1.5 * PHONE["height"]
    page.get_by_role("button", name="Clear drawing").tap()
    page.wait_for_selector("text=the steps that turn it into", timeout=30_000)
    wait_until_rendered(page)
    assert page.locator("[data-testid=stMetric]").count() == 0 and not reconstruction(page).count()


def overlaps(a, b) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def test_phone_no_chart_toolbar_covers_a_chart_title(phone):
    page = phone
    charts = page.locator("[data-testid=stPlotlyChart]")
    charts.nth(1).wait_for(timeout=60_000)
    assert charts.count() == 2
    for i in range(2):
        chart = charts.nth(i)
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # a tap: Plotly's hover
        page.wait_for_timeout(500)
        titles = [t.bounding_box() for t in page.locator(".gtitle, [data-testid=stMarkdownContainer] strong").all()
                  if t.is_visible()]
        bars = [b.bounding_box() for b in page.locator(".modebar-btn, [data-testid=stElementToolbarButton]").all()
                if b.is_visible() and float(b.evaluate("e => getComputedStyle(e.closest('.modebar') || e).opacity")) > 0]
        covered = [(t, b) for t in titles for b in bars if t and b and overlaps(t, b)]
        assert not covered, covered


def test_the_widgets_show_the_kept_values_when_drawn_again(page):
    """A widget that a run did not draw, drawn again, shows the value the page uses (Streamlit's frontend
    showed its default: k = 10 beside "IWAE NLL (k = 1000)")."""
    page.get_by_role("slider").first.focus()
    page.keyboard.press("ArrowRight")  # k: 100 -> 1000
    page.wait_for_selector("text=IWAE NLL (k = 1000)", timeout=60_000)
    page.locator("[data-testid=stMain] [data-testid=stNumberInput] input").fill("5")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Example 5 is test image #5", timeout=60_000)
    wait_until_rendered(page)
    pick(page, "Upload")
    pick(page, "Test image")
    page.wait_for_selector("text=IWAE NLL (k = 1000)", timeout=60_000)
    wait_until_rendered(page)
    assert page.locator("[data-testid=stSliderThumbValue]").first.inner_text() == "1000"
    assert page.locator("[data-testid=stMain] [data-testid=stNumberInput] input").input_value() == "5"
