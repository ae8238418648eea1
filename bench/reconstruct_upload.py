"""Server time of the reconstruct page's rerun after an upload, against a rerun that changes nothing.

AppTest drives app.py in this process: the page in its Upload mode, then one warm-up upload, then ``--runs`` uploads of
new images (each different, so no cache answers) and as many reruns with nothing changed (the
baseline: the app's frame and the page with every result cached). Each time is one ``AppTest.run()``
call, i.e. the whole script run on the server, rendering included; the browser's work is not in it.
Prints the medians, the ratio, and the load average (other processes share the CPUs).

    VAE_DATA_DIR=../shared/data .venv/bin/python bench/reconstruct_upload.py [--runs 10]
        [--model mnist-vae-2d] [--size 600x450]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ui import MODEL_KEY  # noqa: E402


def photo(i: int, w: int, h: int) -> bytes:
    """A JPEG "photo": a dark 7 on unevenly lit paper, shifted by i pixels so each one is new."""
    rng = np.random.default_rng(i)
    grey = np.linspace(235, 160, w)[None, :].repeat(h, 0) + rng.normal(0, 3, (h, w))
    im = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("RGB")
    s = min(w, h) / 450
    pts = [(int((120 + i) * s), int(90 * s)), (int((260 + i) * s), int(90 * s)), (int((170 + i) * s), int(330 * s))]
    ImageDraw.Draw(im).line(pts, fill=(40, 40, 40), width=int(26 * s), joint="curve")
    b = io.BytesIO()
    im.save(b, "JPEG", quality=90)
    return b.getvalue()


def timed(at: AppTest) -> float:
    start = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - start
    assert not at.exception and not at.error, [e.value for e in (*at.exception, *at.error)]
    return seconds * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--model", default="mnist-vae-2d")
    p.add_argument("--size", default="600x450", help="the photo's width x height in pixels")
    a = p.parse_args()
    w, h = map(int, a.size.split("x"))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.session_state[MODEL_KEY] = a.model
    at.switch_page("pages/reconstruct.py").run()
    at.session_state[MODEL_KEY] = a.model
    at.get("button_group")[0].set_value("Upload").run()  # the page opens on the test images
    images = [photo(i, w, h) for i in range(a.runs + 1)]
    print(f"{a.model}, {w}x{h} JPEG of {len(images[0]) / 1024:.0f} KB")
    uploads, base = [], []
    for i, data in enumerate(images):
        at.session_state[MODEL_KEY] = a.model  # AppTest drops the sidebar picker's key after switch_page
        at.file_uploader[0].set_value((f"photo{i}.jpg", data, "image/jpeg"))
        ms = timed(at)
        if i:  # the first is the warm-up: test encodings, caches
            uploads.append(ms)
            at.session_state[MODEL_KEY] = a.model
            base.append(timed(at))
    up, b = statistics.median(uploads), statistics.median(base)
    print(f"upload rerun:  median {up:.0f} ms  (min {min(uploads):.0f}, max {max(uploads):.0f})")
    print(f"nothing-changed rerun: median {b:.0f} ms  (min {min(base):.0f}, max {max(base):.0f})")
    print(f"ratio upload / nothing changed: {up / b:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
