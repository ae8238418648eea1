"""AUROC of each out-of-distribution score (``vae.ood``) for shipped models: in-distribution, the
model's own test split; out, the other dataset's test split, letters rendered from the fonts on this
machine and framed the way uploads are (``vae.preprocess.preprocess_image``), scikit-image's bundled
photographs framed alike, and uniform noise. Like is set against like: the letters and photos against
the test split framed the same way
(``vae.ood.frame_like_uploads``), the rest against the test split as it is.

    VAE_DATA_DIR=../shared/data python bench/ood.py [--models mnist-vae-20d fashion-vae-2d] [--json out.json]

Prints one row per model and out-set: the AUROC of -ELBO (the baseline, the plain likelihood
bound), of the complexity-corrected score and of the combined one (the app's), the combined's ratio
to the baseline, and the share of out-set images above each score's 5%-false-positive threshold
(fitted on the same test split); then each score's false-positive rate on each class of the test
split, and the eight letters the combined score tells worst from digits -- in one process, with the
same draws.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import string
import sys
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vae.checkpoint import load_checkpoint  # noqa: E402
from vae.data import load_dataset  # noqa: E402
from vae.ood import COMBINED, SCORES, auroc, combined, fit_all, frame_like_uploads, ood_scores  # noqa: E402
from vae.preprocess import ImageError, preprocess_image  # noqa: E402

OTHER = {"mnist": "fashion", "fashion": "mnist"}
LETTERS = string.ascii_uppercase + string.ascii_lowercase
PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "page", "text", "horse",
          "hubble_deep_field", "immunohistochemistry", "brick", "grass", "gravel", "cell", "clock", "logo")
FRAMED = ("letters", "photos")  # out-sets framed as uploads: set against the test split framed alike


def font_files() -> list[str]:
    """Every TrueType font under /usr/share/fonts (Debian: DejaVu, Liberation), sorted."""
    return sorted(glob.glob("/usr/share/fonts/**/*.ttf", recursive=True))


def render_letter(char: str, font: ImageFont.FreeTypeFont, size: int = 240) -> bytes:
    """One character, black on white paper, as a PNG file's bytes: what a user photographs or uploads."""
    im = Image.new("L", (size, size), 255)
    ImageDraw.Draw(im).text((size / 2, size / 2), char, fill=0, font=font, anchor="mm")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def letters(style: str, fonts: list[str]) -> torch.Tensor:
    """A..Z and a..z in each font (and Pillow's own Aileron), framed as uploads are: (N, 1, 28, 28)."""
    faces = [ImageFont.truetype(f, 160) for f in fonts] + [ImageFont.load_default(size=160)]
    return torch.cat([preprocess_image(render_letter(c, face), style=style).image for face in faces for c in LETTERS])


def photos(style: str) -> torch.Tensor:
    """The photographs and scans scikit-image bundles (``skimage.data``: an astronaut, a camera man, a cat,
    coffee, coins, a page of text, textures...), framed as uploads are: (M, 1, 28, 28), M <= 18 (those the
    upload path refuses are left out)."""
    import numpy as np
    import skimage.data

    out = []
    for name in PHOTOS:
        a = getattr(skimage.data, name)()
        if a.dtype == bool:
            a = a.astype(np.uint8) * 255
        elif a.dtype != np.uint8:
            a = (255 * (a - a.min()) / max(float(np.ptp(a)), 1e-9)).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        try:
            out.append(preprocess_image(buf.getvalue(), style=style).image)
        except ImageError:  # refused as an upload would be ("looks blank"): never reaches the model
            continue
    return torch.cat(out)


def noise(n: int = 1000, seed: int = 0) -> torch.Tensor:
    """Uniform grey-level noise, (n, 1, 28, 28)."""
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def labels_of(dataset: str, data_root: str | None) -> torch.Tensor:
    return load_dataset(dataset, "test", data_root)[1]


def run(name: str, data_root: str | None, fonts: list[str]) -> list[dict]:
    model, config, _ = load_checkpoint(Path("pretrained") / name)
    dataset = config["dataset"]
    style = "fashion" if dataset == "fashion" else "mnist"
    test = load_dataset(dataset, "test", data_root)[0]
    sets = {"in": test, "in, framed": frame_like_uploads(test, style)[0]}
    sets[f"{OTHER[dataset]} test split"] = load_dataset(OTHER[dataset], "test", data_root)[0]
    t0 = time.perf_counter()
    sets["letters"] = letters(style, fonts)
    t_letters = time.perf_counter() - t0
    sets["photos"] = photos(style)
    sets["uniform noise"] = noise()
    t0 = time.perf_counter()
    scored = {k: ood_scores(model, v, config["likelihood"], config["sigma"]) for k, v in sets.items()}
    seconds = time.perf_counter() - t0
    fits = {k: fit_all(scored[k]) for k in ("in", "in, framed")}
    for k, v in scored.items():  # the combined score, against the fits of the in-set each is compared with
        v[COMBINED] = combined(v, fits["in, framed" if k in (*FRAMED, "in, framed") else "in"])
    labels = labels_of(dataset, data_root)
    rows = []
    for out_name in list(sets)[2:]:
        ref = "in, framed" if out_name in FRAMED else "in"
        inside, out = scored[ref], scored[out_name]
        row = {"model": name, "out": out_name, "in": "test split, framed as uploads" if ref != "in" else "test split",
               "n_in": inside["neg_elbo"].numel(), "n_out": out["neg_elbo"].numel()}
        for s in (*SCORES, COMBINED):
            row[f"auroc_{s}"] = auroc(inside[s], out[s])
            row[f"flagged_{s}"] = (out[s] > fits[ref][s]["threshold"]).double().mean().item()
        rows.append(row)
    # the false-positive rate of each score on each class of the test split, at its 5% threshold
    fpr_rows = {s: [round((scored["in"][s][labels == c] > fits["in"][s]["threshold"]).double().mean().item(), 3)
                    for c in range(int(labels.max()) + 1)] for s in (*SCORES, COMBINED)}
    rows.append({"model": name, "out": "false-positive rate per class", **{f"fpr_{s}": v for s, v in fpr_rows.items()}})
    per = scored["letters"][COMBINED].view(-1, len(LETTERS))  # which letters pass for digits, by the chosen score
    hardest = sorted((auroc(scored["in, framed"][COMBINED], per[:, j]), c) for j, c in enumerate(LETTERS))[:8]
    rows[[r["out"] for r in rows].index("letters")]["hardest_letters"] = [[c, round(a, 3)] for a, c in hardest]
    print(f"{name}: scored {sum(v.shape[0] for v in sets.values()):,} images in {seconds:.1f} s"
          f" ({len(fonts) + 1} fonts' letters framed in {t_letters:.1f} s)", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mnist-vae-20d", "mnist-vae-2d", "fashion-vae-2d"])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    fonts = font_files()
    rows = [r for m in args.models for r in run(m, args.data_root, fonts)]
    print(f"\n{'model':<22} {'out-set':<20} {'n out':>6}  AUROC: -ELBO  corrected  combined  (ratio to -ELBO)"
          "  flagged at 5%: -ELBO / corrected / combined")
    for r in rows:
        if "fpr_neg_elbo" in r:
            print(f"{r['model']:<22} false-positive rate per class: " + "; ".join(
                f"{s}: {r['fpr_' + s]}" for s in (*SCORES, COMBINED)))
            continue
        a, b, c = (r[f"auroc_{s}"] for s in (*SCORES, COMBINED))
        print(f"{r['model']:<22} {r['out']:<20} {r['n_out']:>6}  {a:11.4f}  {b:9.4f}  {c:8.4f}  ({c / a:.2f})"
              f"  {r['flagged_neg_elbo']:.3f} / {r['flagged_complexity_corrected']:.3f} / {r['flagged_combined']:.3f}"
              + (f"  hardest letters: {r['hardest_letters']}" if "hardest_letters" in r else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
