"""Is the class picked the class shown? A classifier that never saw the CVAE labels its samples.

    VAE_DATA_DIR=../shared/data .venv/bin/python bench/cvae_accuracy.py [FOLDER ...] [--per-class 100]

For every shipped conditional model (default: each folder under pretrained/ whose config says "cvae"
or "cvae_class_prior"), or the folders given: fit a pixel classifier (PCA 50 + RBF SVM,
``vae.conditional.fit_pixel_classifier``) on the dataset's training split, label ``per_class`` prior
samples of every class (z ~ p(z|y): N(0, I) for a CVAE told y, N(mu_y, I) for the class-prior VAE;
seeded, decoder means), and label the whole real test split with the same classifier in the same run.
Prints the accuracy per class on samples and on real images and their ratio: a ratio near 1 means the
samples read as their class as well as real images do. ``--json`` prints one JSON object instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vae.checkpoint import METRICS, load_checkpoint, write_json  # noqa: E402
from vae.conditional import class_accuracy, fit_pixel_classifier, sample_classes  # noqa: E402
from vae.data import CLASS_NAMES, DATASET_NAMES, load_dataset  # noqa: E402


def shipped_cvaes() -> list[Path]:
    folders = []
    for config in sorted((ROOT / "pretrained").glob("*/config.json")):
        if json.loads(config.read_text()).get("model") in ("cvae", "cvae_class_prior") and (config.parent / "model.safetensors").is_file():
            folders.append(config.parent)
    return folders


def measure(folder: Path, per_class: int, seed: int, classifiers: dict) -> dict:
    model, config, _ = load_checkpoint(folder, "cpu")
    dataset = config["dataset"]
    if dataset not in classifiers:
        t0 = time.perf_counter()
        images, labels = load_dataset(dataset, "train")
        classifier = fit_pixel_classifier(images, labels, seed=seed)
        fit_s = time.perf_counter() - t0
        test_images, test_labels = load_dataset(dataset, "test")
        real = class_accuracy(classifier, test_images, test_labels, model.n_classes)
        classifiers[dataset] = (classifier, real, fit_s, min(len(labels), 10_000))
    classifier, real, fit_s, n_fit = classifiers[dataset]
    t0 = time.perf_counter()
    images, labels = sample_classes(model, per_class, seed)
    samples = class_accuracy(classifier, images, labels, model.n_classes)
    samples["seconds"] = time.perf_counter() - t0
    return {"model": folder.name, "dataset": dataset, "per_class": per_class, "seed": seed,
            "classifier": f"PCA 50 + RBF SVM fitted on {n_fit:,} {DATASET_NAMES[dataset]} training images",
            "fit_seconds": fit_s, "samples": samples, "real_test": real,
            "ratio": samples["overall"] / real["overall"]}


def print_table(r: dict) -> None:
    names = CLASS_NAMES[r["dataset"]]
    s, t = r["samples"], r["real_test"]
    print(f"\n{r['model']}: {r['per_class']} prior samples per class (seed {r['seed']}), decoder means; "
          f"{r['classifier']} ({r['fit_seconds']:.1f} s)")
    print(f"{'class':<12} {'samples':>8} {'real test':>10} {'ratio':>6}")
    for c, name in enumerate(names):
        print(f"{name:<12} {s['per_class'][c]:>8.1%} {t['per_class'][c]:>10.1%} {s['per_class'][c] / t['per_class'][c]:>6.3f}")
    print(f"{'overall':<12} {s['overall']:>8.1%} {t['overall']:>10.1%} {r['ratio']:>6.3f}"
          f"   ({s['n']:,} samples, {t['n']:,} real test images)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="*", type=Path, help="CVAE checkpoint folders (default: every shipped CVAE)")
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--write", action="store_true", help="store each result in its folder's metrics.json (class_accuracy)")
    a = p.parse_args(argv)
    folders = a.folders or shipped_cvaes()
    if not folders:
        sys.exit("no CVAE under pretrained/ (a folder whose config.json says \"model\": \"cvae\")")
    t0 = time.perf_counter()
    classifiers: dict = {}
    results = [measure(f, a.per_class, a.seed, classifiers) for f in folders]
    if a.write:
        for folder, r in zip(folders, results):
            _, _, metrics = load_checkpoint(folder, "cpu")
            metrics["class_accuracy"] = {k: r[k] for k in ("per_class", "seed", "classifier", "ratio")} | {
                "samples": {k: r["samples"][k] for k in ("overall", "per_class", "n")},
                "real_test": {k: r["real_test"][k] for k in ("overall", "per_class", "n")}}
            write_json(folder / METRICS, metrics)
    if a.json:
        print(json.dumps(results))
        return
    for r in results:
        print_table(r)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
