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
