"""Start `streamlit run` on a free loopback port, wait for a page to finish rendering in Chromium, and
check what a page shows. Shared by the browser tests (tests/e2e) and the benchmarks under bench/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(log_path: Path, script: str | Path = "app.py", cwd: Path = ROOT, python: str = sys.executable,
              env: dict | None = None, prefix: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """Start `streamlit run SCRIPT` on a free loopback port; return (process, base URL) once healthy.

    python: the interpreter (of a virtual environment) to run it with; env: its environment (default:
    this process's); prefix: a command to run it under (``setpriv --reuid 1000 ...``)."""
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [*prefix, python, "-m", "streamlit", "run", str(script), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ) if env is None else env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.05)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"streamlit did not become healthy; log:\n{Path(log_path).read_text()}")


def open_in_browser(browser, url: str, height: int = 1000, init_script: str | None = None):
    """A new browser session (a context of its own, 1400 px wide) on ``url``, rendered; browser page
    errors are collected in ``page.errors``. Returns (context, page); close the context when done."""
    context = browser.new_context(viewport={"width": 1400, "height": height}, accept_downloads=True)
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url)
    wait_until_rendered(page)
    return context, page


def wait_until_rendered(page, timeout_ms: int = 60_000) -> None:
    """Wait for the script run to finish: a title is on the page and the 'running' widget is gone."""
    page.wait_for_selector("[data-testid=stMain] h1", timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]') "
        "&& !document.querySelector('[data-testid=stSkeleton]')",
        timeout=timeout_ms,
    )
    page.wait_for_timeout(300)


def assert_clean(page, errors_allowed: bool = False) -> None:
    """No Streamlit exception box and no browser page error; with errors_allowed=False, no st.error box."""
    exceptions = page.locator("[data-testid=stException]")
    assert exceptions.count() == 0, exceptions.first.inner_text()
    if not errors_allowed:
        errors = page.locator("[data-testid=stAlertContentError]")
        assert errors.count() == 0, errors.first.inner_text()
    assert not page.errors, page.errors


def screenshot(target, name: str) -> Path:
    """Save a PNG of ``target`` (a page, whole, or a locator) as artifacts/screenshots/NAME.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    if hasattr(target, "goto"):
        target.screenshot(path=path, full_page=True)
    else:
        target.screenshot(path=path)
    return path


TOOLTIP_IMAGE = "#vg-tooltip-element.visible img"  # Vega's tooltip, showing a point's picture


def hover_a_point(page, chart) -> tuple[float, float]:
    """Sweep the pointer across the middle of a Vega-Lite chart (a locator) until the tooltip shows a
    picture; returns where, as fractions (fx, fy) of the chart's drawing. Fails when no point is found."""
    page.mouse.move(5, 5)  # off every chart: the one tooltip element hides first
    page.wait_for_function("() => !document.querySelector('#vg-tooltip-element.visible')", timeout=10_000)
    box = chart.locator("canvas, svg").first.bounding_box()
    for fy in (0.5, 0.4, 0.6, 0.3, 0.7):
        for fx in [i / 40 for i in range(4, 36)]:
            page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
            page.wait_for_timeout(30)
            if page.locator(TOOLTIP_IMAGE).count():
                return fx, fy
    raise AssertionError("no tooltip picture over the chart")


def assert_hover_picture(page, dataset: str) -> None:
    """The tooltip's picture is a 28x28 PNG the server sent from static/thumbnails/ (not a data URL
    carried in the chart), and it has loaded."""
    image = page.locator(TOOLTIP_IMAGE)
    assert f"app/static/thumbnails/{dataset}-" in image.get_attribute("src")
    page.wait_for_function("() => { const i = document.querySelector('#vg-tooltip-element.visible img'); "
                           "return i && i.complete && i.naturalWidth > 0 }", timeout=10_000)
    assert image.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [28, 28]


def is_script_finished(payload) -> bool:
    """Whether a websocket frame from the server is Streamlit's "script finished" message (a
    ForwardMsg); False for anything else."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    if not isinstance(payload, bytes):
        return False
    try:
        return ForwardMsg.FromString(payload).WhichOneof("type") == "script_finished"
    except Exception:  # noqa: BLE001 - not a ForwardMsg
        return False
