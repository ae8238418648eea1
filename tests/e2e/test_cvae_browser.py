"""Real-browser check of the CVAE page: `streamlit run app.py`, headless Chromium.

Picks mnist-cvae in the sidebar, opens "CVAE: class and style", clicks a digit, moves a z slider,
and transfers the style of an uploaded PNG once its label is confirmed. Screenshots go to
artifacts/screenshots/cvae-*.png. Fails on any exception box, browser error, or server traceback.
"""

from __future__ import annotations

import io

from streamlit_server import assert_clean, screenshot, wait_until_rendered


def first_image_changes(page, action) -> None:
    """Run ``action`` and wait until the page's first image (the one-style picture) is redrawn."""
    before = page.locator("[data-testid=stMain] [data-testid=stImage] img").first.get_attribute("src")
    action()
    page.wait_for_function(
        "b => document.querySelector('[data-testid=stMain] [data-testid=stImage] img').getAttribute('src') !== b",
        arg=before, timeout=30_000,
    )
    wait_until_rendered(page)


def digit_png() -> bytes:
    """A white 7-like stroke on black, 28 x 28, as PNG bytes."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(img).line([(7, 7), (21, 7), (12, 23)], fill=255, width=3)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def test_cvae_page_picks_digits_moves_styles_and_transfers_an_upload(open_page):
    page = open_page(height=2400)
    page.locator("[data-testid=stSidebar] [data-testid=stSelectbox]").first.click()
    page.get_by_role("option", name="mnist-cvae", exact=True).click()
    wait_until_rendered(page)
    page.locator("[data-testid=stSidebar] [data-testid=stPageLink-NavLink]", has_text="CVAE").click()
    page.locator("h1", has_text="Conditional VAE").wait_for(timeout=30_000)
    page.get_by_text("36 random styles of 0").wait_for(timeout=30_000)  # the CVAE's page, not the pointer to it
    wait_until_rendered(page)
    assert_clean(page)

    first_image_changes(page, lambda: page.locator("[data-testid=stButtonGroup] button", has_text="7").first.click())
    page.get_by_text("7 in the style z = (0.00, 0.00)").wait_for(timeout=30_000)
    page.get_by_text("36 random styles of 7").wait_for(timeout=30_000)

    def nudge():
        page.get_by_role("slider").first.focus()
        for _ in range(4):
            page.keyboard.press("ArrowRight")

    first_image_changes(page, nudge)
    page.get_by_text("7 in the style z = (0.20, 0.00)").wait_for(timeout=30_000)  # 4 steps of 0.05
    wait_until_rendered(page)
    assert_clean(page)
    screenshot(page, "cvae-mnist-cvae")

    page.get_by_text("Your own image").click()
    wait_until_rendered(page)
    page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(
        files=[{"name": "seven.png", "mimeType": "image/png", "buffer": digit_png()}]
    )
    page.get_by_text("Confirm its label").wait_for(timeout=30_000)
    wait_until_rendered(page)
    page.locator("[data-testid=stButtonGroup]").nth(1).locator("button", has_text="7").click()
    page.get_by_text("your image, encoded as 7").wait_for(timeout=30_000)
    page.get_by_text("Its style z = (").wait_for(timeout=30_000)
    page.get_by_text("Pick the digit your image shows").wait_for(state="detached", timeout=30_000)
    wait_until_rendered(page)
    text = page.locator("[data-testid=stMain]").inner_text()
    assert "Its style z = (" in text and "Pick the digit your image shows" not in text, text
    assert_clean(page)
    screenshot(page, "cvae-upload")
