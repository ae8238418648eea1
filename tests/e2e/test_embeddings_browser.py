"""Issue 25 on the Embeddings page, in Chromium: a tap on a map point selects it on a phone (item 3), a
swipe over the map still scrolls the page; the map, its colouring and the selection survive a visit to
another page and travel as a link; Clear selection (item 10)."""

from streamlit_server import (SHOTS, assert_clean, hover_a_point, open_in_browser, screenshot,
                              wait_until_rendered)

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
CHARTS = "[data-testid=stMain] [data-testid=stVegaLiteChart]"
HEADINGS = "[data-testid=stMain] [data-testid=stHeading]"
SCROLLED = "() => document.querySelector('[data-testid=stMain]').scrollTop"


def a_point(page, chart) -> tuple[float, float]:
    """Where a point of ``chart`` is, as fractions of its drawing: found with the mouse (its tooltip
    shows), which then leaves the chart, so that a tap there gets no help from a hover (a phone has none)."""
    chart.scroll_into_view_if_needed()
    found = hover_a_point(page, chart)
    page.mouse.move(1, 1)
    page.wait_for_function("() => !document.querySelector('#vg-tooltip-element.visible')", timeout=10_000)
    return found


def on_screen(chart, where: tuple[float, float]) -> tuple[float, float]:
    """The page coordinates of fractions ``where`` of the chart's drawing, the chart scrolled into view."""
    chart.scroll_into_view_if_needed()
    box = chart.locator("canvas").first.bounding_box()
    return box["x"] + where[0] * box["width"], box["y"] + where[1] * box["height"]


def phone_page(browser, url: str):
    """(context, page): a 390x844 touch phone on ``url``, rendered, its page errors in ``page.errors``."""
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url)
    wait_until_rendered(page)
    return context, page


def picked_heading(page):
    return page.locator(HEADINGS).filter(has_text="its nearest neighbours")


def test_on_a_phone_a_tap_on_a_map_point_selects_it_and_a_swipe_still_scrolls(app, browser):
    """Item 3: taps showed no picture and selected nothing (Vega knew the point under the pointer only
    from pointer moves, which a tap has none of). Now a tap shows the point's image, reconstruction and
    neighbours; a swipe that starts on a point scrolls the page and selects nothing."""
    context, page = phone_page(browser, f"{app}/embeddings")
    try:
        chart = page.locator(CHARTS).first
        chart.locator("canvas").first.wait_for(timeout=30_000)
        page.touchscreen.tap(*on_screen(chart, a_point(page, chart)))
        picked_heading(page).wait_for(timeout=30_000)
        wait_until_rendered(page)
        heading = picked_heading(page).inner_text()
        assert "picked on the t-SNE map" in heading and "picked=" in page.url
        pictures = page.locator("[data-testid=stMain] [data-testid=stImage] img")
        assert pictures.count() >= 3 and pictures.first.evaluate("i => i.complete && i.naturalWidth > 0")
        below = pictures.first.bounding_box()["y"] - (chart.bounding_box()["y"] + chart.bounding_box()["height"])
        assert 0 <= below < 40, below  # the picture and its neighbours right under the map, not two screens down
        page.screenshot(path=SHOTS / "embeddings-phone-tapped.png")
        chart.scroll_into_view_if_needed()
        screenshot(page, "embeddings-phone-tapped-full")
        x, y = on_screen(chart, a_point(page, chart))
        url, before = page.url, page.evaluate(SCROLLED)
        drag(page, (x, y), (x, y - 300))
        page.wait_for_timeout(1000)
        wait_until_rendered(page)
        assert page.evaluate(SCROLLED) > before + 100  # the page scrolled
        assert page.url == url and picked_heading(page).inner_text() == heading  # the same selection
        assert_clean(page)
    finally:
        context.close()


def go_to(page, title: str) -> None:
    page.locator("[data-testid=stSidebar] [data-testid=stPageLink-NavLink]").filter(has_text=title).first.click()
    page.wait_for_function("t => document.querySelector('[data-testid=stMain] h1')?.innerText.startsWith(t)",
                           arg=title.split(":")[0], timeout=60_000)
    wait_until_rendered(page)


def test_the_selection_and_colouring_survive_other_pages_a_link_and_clear_selection(app, browser, open_page):
    """Item 2 and the link: the page came back as t-SNE coloured by class with nothing selected. Item 10:
    Clear selection is a button; the same point clicked again is selected again."""
    page = open_page("embeddings", height=900)
    chart = page.locator(CHARTS).first
    chart.locator("canvas").first.wait_for(timeout=30_000)
    page.get_by_text("-ELBO", exact=True).click()
    page.wait_for_function("() => location.search.includes('colour=neg_elbo')", timeout=30_000)
    wait_until_rendered(page)
    page.wait_for_timeout(1000)  # the chart redrawn with the colour bar beside it (a new spec: a new view)
    where = a_point(page, chart)  # where a point is, with this colouring's legend beside the plot
    page.mouse.click(*on_screen(chart, where))
    picked_heading(page).wait_for(timeout=30_000)
    wait_until_rendered(page)
    heading = picked_heading(page).inner_text()
    screenshot(page, "embeddings-elbo-after-a-click")
    for title in ("Theory", "Latent manifold", "Embeddings"):
        go_to(page, title)
    picked_heading(page).wait_for(timeout=30_000)
    assert picked_heading(page).inner_text() == heading and "colour=neg_elbo" in page.url
    context, fresh = open_in_browser(browser, page.url, 900)  # the link, in a new session
    try:
        picked_heading(fresh).wait_for(timeout=30_000)
        assert picked_heading(fresh).inner_text() == heading
        pressed = fresh.locator("[data-testid=stButtonGroup] button[aria-checked=true]").all_inner_texts()
        assert pressed == ["t-SNE", "-ELBO"], pressed
        assert_clean(fresh)
    finally:
        context.close()
    clear_selection(page)
    assert "picked=" not in page.url
    chart = page.locator(CHARTS).first
    where = a_point(page, chart)
    page.mouse.click(*on_screen(chart, where))
    picked_heading(page).wait_for(timeout=30_000)
    wait_until_rendered(page)
    again = picked_heading(page).inner_text()
    clear_selection(page)
    page.mouse.click(*on_screen(chart, where))  # the same point, just after a Clear: selected again
    picked_heading(page).wait_for(timeout=30_000)
    assert picked_heading(page).inner_text() == again
    assert_clean(page)


def clear_selection(page) -> None:
    page.get_by_role("button", name="Clear selection").click()
    picked_heading(page).wait_for(state="detached", timeout=30_000)
    wait_until_rendered(page)
    page.locator(CHARTS).first.locator("canvas").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)  # the charts drawn afresh (new keys)


def test_on_a_phone_a_finger_draws_a_box(app, browser):
    """Item 3: with Box select on, a swipe over the map selected nothing (its start, like a tap's, had no
    point under it, and the page scrolled instead)."""
    context, page = phone_page(browser, f"{app}/embeddings")
    try:
        page.get_by_text("Box select", exact=True).tap()
        page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stCheckbox] input')].some(i => "
                               "i.checked && i.closest('label').innerText.includes('Box select'))", timeout=30_000)
        wait_until_rendered(page)
        plane = page.locator(CHARTS).nth(1)
        plane.locator("canvas").first.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)  # the charts drawn with their box selections
        x, y = on_screen(plane, (0.35, 0.55))
        before = page.evaluate(SCROLLED)
        drag(page, (x, y), (x + 90, y - 90))
        heading = page.locator(HEADINGS).filter(has_text="selected on the latent plane")
        heading.wait_for(timeout=30_000)
        wait_until_rendered(page)
        assert page.evaluate(SCROLLED) == before and "rect=" in page.url  # drawn, not scrolled
        assert int(heading.inner_text().split()[0].replace(",", "")) > 10
        screenshot(page, "embeddings-phone-box")
        assert_clean(page)
    finally:
        context.close()


def drag(page, start: tuple[float, float], end: tuple[float, float], steps: int = 15) -> None:
    """A finger put down at ``start``, moved to ``end`` in ``steps`` steps, then lifted."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": start[0], "y": start[1]}]})
    for i in range(1, steps + 1):
        x, y = (start[k] + (end[k] - start[k]) * i / steps for k in (0, 1))
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        page.wait_for_timeout(16)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
