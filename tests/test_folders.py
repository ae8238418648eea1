"""Issue 28, the engine: a folder or a .zip of the user's own images as a dataset (vae.folders), the
models on any (C, H, W), and `python -m vae.train --dataset PATH`. Every bad input goes through the
command line's main() (exit 1: SystemExit with one "error: ..." line, and nothing written outside the
cache); one runs as a real process to see the exit status and that no traceback reaches the terminal.
"""

import colorsys
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vae import folders
from vae.checkpoint import load_checkpoint
from vae.data import load_dataset, load_split
from vae.evaluate import evaluate_checkpoint
from vae.folders import FolderDatasetError, Limits, card_markdown, load_folder
from vae.losses import Objective
from vae.models import MODELS, build_model
from vae.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "vae", "--latent-dim", "2", "--hidden", "16", "--epochs", "1"]


@pytest.fixture(scope="module")
def digits():
    """MNIST's first 3,000 training and 1,000 test images as uint8 (N, 28, 28), with their labels."""
    out = {}
    for split, n in (("train", 3000), ("test", 1000)):
        x, y = load_dataset("mnist", split)
        out[split] = (x[:n, 0].mul(255).round().to(torch.uint8).numpy(), y[:n].numpy())
    return out


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder of the test's own, also as $VAE_CACHE_DIR, so that nothing reaches ~/.cache."""
    path = tmp_path / "cache"
    monkeypatch.setenv("VAE_CACHE_DIR", str(path))
    return path


def png(a: np.ndarray | Image.Image, **save) -> bytes:
    b = io.BytesIO()
    (a if isinstance(a, Image.Image) else Image.fromarray(a)).save(b, format=save.pop("format", "PNG"), **save)
    return b.getvalue()


def write_digits(root: Path, images: np.ndarray, labels: np.ndarray, offset: int = 0) -> None:
    for i, (a, y) in enumerate(zip(images, labels)):
        (root / str(int(y))).mkdir(parents=True, exist_ok=True)
        (root / str(int(y)) / f"{offset + i:05d}.png").write_bytes(png(a))


def files_under(root: Path, *leave_out: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if not any(p == q or q in p.parents for q in leave_out)}


def fails(argv: list[str], *phrases: str) -> str:
    """vae.train's main exits with one line, "error: ..." holding every phrase."""
    with pytest.raises(SystemExit) as e:
        train_main(argv)
    message = str(e.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    for p in phrases:
        assert p in message, message
    return message


def huge_png(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims width x height (the CRC recomputed): a decompression bomb's header."""
    data = bytearray(png(np.zeros((1, 1), np.uint8)))
    ihdr = bytearray(data[12:29])  # "IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def set_central_sizes(zip_bytes: bytes, size: int, only: str | None = None) -> bytes:
    """The zip with the uncompressed size in its central directory set to ``size`` (for member ``only``, or all)."""
    data = bytearray(zip_bytes)
    at = data.find(b"PK\x01\x02")
    while at != -1:
        name_len = struct.unpack("<H", data[at + 28 : at + 30])[0]
        name = data[at + 46 : at + 46 + name_len].decode()
        if only is None or name == only:
            data[at + 24 : at + 28] = struct.pack("<I", size)
        at = data.find(b"PK\x01\x02", at + 4)
    return bytes(data)


# --------------------------------------------------------------------------- import and cache


def test_a_folder_of_pngs_imports_byte_for_byte_and_the_second_import_decodes_nothing(tmp_path, cache, digits,
                                                                                    monkeypatch):
    x, y = digits["train"][0][:200], digits["train"][1][:200]
    src = tmp_path / "mine"
    write_digits(src, x, y)
    (src / ".DS_Store").write_bytes(b"\0\1junk")
    (src / "__MACOSX").mkdir()
    (src / "__MACOSX" / "._00000.png").write_bytes(b"AppleDouble")
    (src / "3" / ".hidden.png").write_bytes(png(x[0]))
    before = files_under(tmp_path)

    ds = load_folder(src)
    order = sorted(range(200), key=lambda i: (str(int(y[i])), f"{i:05d}"))  # class folders, then file names
    assert ds.images.dtype == torch.uint8 and ds.image_shape == (1, 28, 28)  # grey, <= 28 px: the defaults
    assert torch.equal(ds.images[:, 0], torch.from_numpy(x[order])) and ds.labels.tolist() == y[order].tolist()
    card = ds.card
    assert card["classes"] == [str(d) for d in range(10)] and card["n_images"] == 200 and not card["cached"]
    assert card["n_ignored"] == 3 and card["n_skipped"] == 0  # .DS_Store, __MACOSX/, .hidden.png
    sp = card["split"]
    for c in card["classes"]:  # train + validation + test = the class; a tenth of each class is test
        assert sp["train"][c] + sp["validation"][c] + sp["test"][c] == card["counts"][c]
        assert sp["test"][c] == max(1, round(0.1 * card["counts"][c]))
    assert int(ds.test.sum()) == sum(sp["test"].values())
    assert "| 3 |" in card_markdown(card) and "Skipped: none." in card_markdown(card)
    assert files_under(tmp_path, cache) == before  # nothing written but the cache
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".safetensors"]

    def decode(*a, **k):
        raise AssertionError("a cache hit decodes nothing")

    real = folders._decode
    monkeypatch.setattr(folders, "_decode", decode)
    again = load_folder(src)
    assert again.card["cached"] and torch.equal(again.images, ds.images) and torch.equal(again.test, ds.test)
    xt, yt = load_split(str(src), "test", image_shape=[1, 28, 28])  # what vae.evaluate reads: the cache too
    assert torch.equal(xt, ds.images[ds.test].float() / 255) and torch.equal(yt, ds.labels[ds.test])
    monkeypatch.setattr(folders, "_decode", real)
    (src / str(int(y[7])) / "00007.png").write_bytes(png(255 - x[7]))  # new content: decoded again
    changed = load_folder(src)
    assert not changed.card["cached"] and changed.card["sha256"] != card["sha256"] and len(list(cache.iterdir())) == 4


def test_decoding_exif_palette_cmyk_alpha_high_bit_depth_and_the_centre_crop(tmp_path, cache):
    src = tmp_path / "odd"
    src.mkdir()
    halves = np.zeros((30, 60), np.uint8)
    halves[:, :30] = 255  # stored: left half white; EXIF 6 = turn 90 degrees clockwise: top half white
    exif = Image.Exif()
    exif[0x0112] = 6
    (src / "turned.jpg").write_bytes(png(Image.fromarray(halves).convert("RGB"), format="JPEG", quality=95, exif=exif))
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 10:30] = (255, 0, 0, 255)  # an opaque red square; the rest transparent "white"
    rgba[:10, :, :3] = 255
    (src / "alpha.png").write_bytes(png(rgba))
    (src / "palette.png").write_bytes(png(Image.new("RGB", (50, 20), (0, 0, 255)).convert("P")))
    (src / "cmyk.jpg").write_bytes(png(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), format="JPEG"))
    (src / "deep.png").write_bytes(png(Image.fromarray(np.full((32, 32), 65535, np.uint16))))
    (src / "bits.png").write_bytes(png(Image.new("1", (28, 28), 1)))

    ds = load_folder(src, min_images=1)
    card = ds.card
    assert ds.image_shape == (3, 32, 32) and not card["labelled"]  # colour: 3 channels and 32 px by default
    names = sorted(["turned.jpg", "alpha.png", "palette.png", "cmyk.jpg", "deep.png", "bits.png"])
    im = {n: ds.images[i].float() for i, n in enumerate(names)}
    turned = im["turned.jpg"].mean(0)
    assert turned[:12].mean() > 200 and turned[-12:].mean() < 50  # upright: white on top
    alpha = im["alpha.png"]
    assert alpha[:, :4].max() == 0 and alpha[:, 14:18, 14:18].mean((1, 2)).tolist() == [255, 0, 0]  # on black
    assert im["palette.png"].mean((1, 2)).tolist() == [0, 0, 255]
    assert im["cmyk.jpg"].mean((1, 2))[0] > 240 and im["cmyk.jpg"].mean((1, 2))[1:].max() < 15  # CMYK red
    assert im["deep.png"].min() == 255 and im["bits.png"].min() == 255  # 16-bit and 1-bit white stay white
    assert card["sizes_before"]["distinct"] == 6 and [30, 60] in [s[:2] for s in card["sizes_before"]["most_common"]]
    assert set(card["modes_before"]) == {"RGB", "RGBA", "P", "CMYK", "I;16", "1"}

    upload = folders.decode_image((src / "alpha.png").read_bytes(), (3, 32, 32))  # one file, as the folder's were
    assert torch.equal(upload[0], ds.images[names.index("alpha.png")].float() / 255)
    with pytest.raises(FolderDatasetError, match="not an image"):
        folders.decode_image(b"hello", (1, 28, 28))
    grey = load_folder(src, channels=1, image_size=64, min_images=1)
    assert grey.image_shape == (1, 64, 64) and not grey.card["cached"]
    big = tmp_path / "big"
    big.mkdir()
    for i in range(3):  # grey saved as colour JPEGs, larger than 28 px: grey, 32 px
        (big / f"{i}.jpg").write_bytes(png(Image.fromarray(np.tile(np.arange(40, dtype=np.uint8) * 6, (40, 1)))
                                           .convert("RGB"), format="JPEG"))
    assert load_folder(big, min_images=1).image_shape == (1, 32, 32)


def test_an_upload_is_read_from_memory_and_a_model_finds_it_again_through_its_cache_file(tmp_path, cache, digits):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(40):
            z.writestr(f"digits/{'ab'[i % 2]}/{i}.png", png(digits["train"][0][i]))
    ds = load_folder(buf.getvalue(), name="mine.zip")
    assert ds.card["source"] == "mine.zip (uploaded)" and ds.card["classes"] == ["a", "b"]
    again = load_folder(ds.card["cache_file"])  # what a model trained on the upload names as its dataset
    assert torch.equal(again.images, ds.images)
    with pytest.raises(FolderDatasetError, match="not the 64 px"):
        load_folder(ds.card["cache_file"], image_size=64)


# --------------------------------------------------------------------------- bad input, through the command line


def _zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


BAD = {
    "not a zip": (lambda t, d: t.joinpath("photos.zip").write_bytes(b"just text") and t / "photos.zip",
                  ["photos.zip is not a zip file"]),
    "missing": (lambda t, d: t / "nowhere", ["does not exist"]),
    "no images": (lambda t, d: _zip(t / "text.zip", {"a/notes.txt": "hi", "b/list.csv": "1,2"}),
                  ["holds no images", "2 files that are not images"]),
    "every image corrupt": (lambda t, d: _zip(t / "broken.zip", {f"a/{i}.png": png(d[i])[:60] for i in range(25)}),
                            ["none of the 25 images", "could be decoded", "truncated"]),
    "too few": (lambda t, d: _zip(t / "few.zip", {f"a/{i}.png": png(d[i]) for i in range(7)}),
                ["7 usable images", "needs at least 20"]),
    "climbs out": (lambda t, d: _zip(t / "up.zip", {"a/1.png": png(d[0]), "../evil.png": png(d[1])}),
                   ["'../evil.png'", "climbs out of the folder or is absolute"]),
    "absolute": (lambda t, d: _zip(t / "abs.zip", {"a/1.png": png(d[0]), "/tmp/evil.png": png(d[1])}),
                 ["'/tmp/evil.png'", "climbs out of the folder or is absolute"]),
    "bomb by declared size": (lambda t, d: t.joinpath("bomb.zip").write_bytes(set_central_sizes(
        _zip(t / "b.zip", {f"a/{i}.png": png(d[i]) for i in range(3)}).read_bytes(), 0xFFFF0000)) and t / "bomb.zip",
                              ["declares 12 GiB uncompressed", "refused before extracting", "zip bomb"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_input_exits_with_one_line_and_writes_nothing(case, tmp_path, cache, digits):
    make, phrases = BAD[case]
    src = make(tmp_path, digits["train"][0])
    before = files_under(tmp_path)
    fails(["--dataset", str(src), "--out", str(tmp_path / "out"), *TINY], *phrases)
    assert files_under(tmp_path) == before  # no model, no cache entry, no extracted member


def test_a_zip_with_more_members_than_allowed_is_refused_before_reading(tmp_path, cache, digits, monkeypatch):
    monkeypatch.setattr(folders, "DEFAULT_LIMITS", Limits(max_files=50))
    src = _zip(tmp_path / "many.zip", {f"a/{i}.png": b"" for i in range(60)})
    monkeypatch.setattr(folders, "_read", lambda *a: pytest.fail("a member was read"))
    fails(["--dataset", str(src), "--out", str(tmp_path / "out"), *TINY], "60 members, over the limit of 50",
          "refused before extracting")


def test_options_that_do_not_fit_the_data_exit_with_one_line(tmp_path, cache, digits):
    src = tmp_path / "flat"
    src.mkdir()
    for i in range(30):  # images directly in the folder: unlabelled
        (src / f"{i}.png").write_bytes(png(digits["train"][0][i]))
    fails(["--dataset", str(src), "--out", str(tmp_path / "o"), *TINY, "--model", "cvae"], "CVAE needs labels")
    fails(["--dataset", "mnist", "--image-size", "32", "--out", str(tmp_path / "o")], "MNIST is 28 x 28 grey")
    assert not (tmp_path / "o").exists()


def test_a_bad_zip_on_the_real_command_line_exits_1_without_a_traceback(tmp_path):
    (tmp_path / "photos.zip").write_bytes(b"PK\x03\x04 not really")
    env = {**os.environ, "VAE_CACHE_DIR": str(tmp_path / "cache")}
    p = subprocess.run([sys.executable, "-m", "vae.train", "--dataset", str(tmp_path / "photos.zip"), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().splitlines() == ["error: photos.zip is not a zip file (nor a folder): give a folder of "
                                             "images or a .zip of one."]


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_bad_files_among_good_ones_are_skipped_named_in_the_card_and_the_rest_trains(kind, tmp_path, cache, digits):
    x = digits["train"][0]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(png(x[99]))
    members = {f"mine/{'ab'[i % 2]}/{i:02d}.png": png(x[i]) for i in range(30)}
    members.update({
        "mine/a/empty.png": b"", "mine/a/cut.png": png(x[40])[:70], "mine/b/notes.txt": b"not a picture",
        "mine/b/bomb.png": huge_png(10_000, 10_000), "mine/stray.png": png(x[41]),
        "mine/.DS_Store": b"\0", "__MACOSX/mine/a/._00.png": b"AppleDouble", "mine/b/liar.png": png(x[42]),
    })
    if kind == "folder":
        members["mine/__MACOSX/a/._00.png"] = members.pop("__MACOSX/mine/a/._00.png")
        for name, data in members.items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(data)
        (tmp_path / "mine/a/link.png").symlink_to(outside / "secret.png")
        (tmp_path / "mine/linked").symlink_to(outside, target_is_directory=True)
        (tmp_path / "mine/b/liar.png").write_bytes(png(x[42])[:100])  # a truncated file, in a folder
        src = tmp_path / "mine"
    else:
        with zipfile.ZipFile(tmp_path / "z.zip", "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members.items():
                z.writestr(name, data)
            link = zipfile.ZipInfo("mine/a/link.png")
            link.create_system, link.external_attr = 3, (0o120777 << 16)
            z.writestr(link, "../../outside/secret.png")
        liar = set_central_sizes((tmp_path / "z.zip").read_bytes(), 100, only="mine/b/liar.png")  # says 100 bytes
        src = tmp_path / "mine.zip"
        src.write_bytes(liar)
    before = files_under(tmp_path)
    train_main(["--dataset", str(src), "--out", str(tmp_path / "model"), *TINY])
    metrics = json.loads((tmp_path / "model/metrics.json").read_text())
    config = json.loads((tmp_path / "model/config.json").read_text())
    card = metrics["data"]
    why = dict(card["skipped"])
    assert card["n_images"] == 30 and card["classes"] == ["a", "b"] and config["n_classes"] == 2
    assert config["dataset"] == str(src) and config["image_shape"] == [1, 28, 28]
    assert why["mine/a/empty.png" if kind == "zip" else "a/empty.png"] == "an empty file"
    prefix = "mine/" if kind == "zip" else ""
    assert why[prefix + "a/cut.png"].startswith("truncated or corrupt")
    assert why[prefix + "b/notes.txt"].startswith("not an image")
    assert "over the decompression-bomb limit" in why[prefix + "b/bomb.png"]
    assert why[prefix + "stray.png"].startswith("outside the class folders")
    assert why[prefix + "a/link.png"] == "a symbolic link (not followed)"
    assert why[prefix + "b/liar.png"].startswith("truncated or corrupt" if kind == "folder" else "a corrupt zip member")
    if kind == "folder":
        assert why["linked"] == "a symbolic link (not followed)"
    assert card["n_skipped"] == len(why) == (8 if kind == "folder" else 7) and card["n_ignored"] == 2
    assert all(f"`{name}`" in card_markdown(card) for name in why)
    assert files_under(tmp_path, cache, tmp_path / "model") == before  # nothing else written
    ev = evaluate_checkpoint(tmp_path / "model", k=2)  # the test split: the cache, the same images
    assert ev["n_images"] == sum(card["split"]["test"].values()) == 4


# --------------------------------------------------------------------------- models of every shape


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 32, 32), (3, 32, 32), (3, 64, 64)])
def test_every_model_takes_every_shape_and_mnist_configs_keep_their_weights(shape):
    for name in MODELS:
        config = {"model": name, "latent_dim": 3, "hidden": [24], "channels": [4, 8], "n_classes": 3,
                  "image_shape": list(shape)}
        model = build_model(config)
        x, y = torch.rand(5, *shape), torch.tensor([0, 1, 2, 0, 1])
        logits = model(x, y)[0]
        assert logits.shape == x.shape and model.image_shape == shape
        parts = Objective(model)(x, y)
        assert torch.isfinite(parts.loss) and parts.loss > 0.5 * np.prod(shape)  # Bernoulli: per pixel and channel
        if shape == (1, 28, 28):  # a config.json from before image_shape: the same tensors, the same shapes
            old = build_model({k: v for k, v in config.items() if k != "image_shape"})
            assert {k: v.shape for k, v in old.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="image_shape"):
        build_model({"model": "conv", "image_shape": [3, 30, 30]})


def test_every_shipped_model_loads_as_the_mnist_shape_it_was_trained_on():
    for config in sorted(ROOT.glob("pretrained/*/config.json")):
        model, cfg, _ = load_checkpoint(config.parent)
        assert "image_shape" not in cfg and model.image_shape == (1, 28, 28), config


# --------------------------------------------------------------------------- training on a folder


@pytest.mark.slow
def test_mnist_as_png_files_in_class_folders_trains_like_dataset_mnist(tmp_path, cache, digits):
    """Issue 28's first "done when": 3,000 MNIST training images as PNG files (and the first 1,000 test
    images in test/), trained from the folder and from --dataset mnist with the same seed and images:
    the same test -ELBO within 1% (on the same 1,000 test images). The two runs differ only in the
    images' order (class folders, then file names), hence in the validation split and the shuffles."""
    src = tmp_path / "mnist-pngs"
    for split in ("train", "test"):
        write_digits(src / split, *digits[split])
    args = ["--model", "vae", "--latent-dim", "8", "--hidden", "256", "--epochs", "10", "--seed", "0"]
    train_main(["--dataset", str(src), "--out", str(tmp_path / "folder"), *args])
    train_main(["--dataset", "mnist", "--n-images", "3000", "--out", str(tmp_path / "mnist"), *args])
    card = json.loads((tmp_path / "folder/metrics.json").read_text())["data"]
    assert card["split"]["test_from"] == "the test/ folder" and sum(card["split"]["test"].values()) == 1000
    folder = evaluate_checkpoint(tmp_path / "folder", k=1)
    mnist = evaluate_checkpoint(tmp_path / "mnist", k=1, n_images=1000)
    assert folder["n_images"] == mnist["n_images"] == 1000
    assert folder["neg_elbo"] == pytest.approx(mnist["neg_elbo"], rel=0.01), (folder["neg_elbo"], mnist["neg_elbo"])


@pytest.mark.slow
def test_a_colour_model_keeps_the_colours_that_a_grey_one_loses(tmp_path, cache, digits):
    """Issue 28's second "done when": MNIST digits in a random saturated colour on a darker background
    of another hue (a zip of 3-channel PNGs), a colour model and a grey one (--channels 1) of the same
    size: the colour model's per-channel squared error is well below the grey one's, and the mean
    colour of each reconstruction is close to its image's."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(tmp_path / "tinted.zip", "w") as z:
        for i, (d, y) in enumerate(zip(*(a[:1500] for a in digits["train"]))):
            h = rng.uniform()
            fg = np.array(colorsys.hsv_to_rgb(h, 1, 1))
            bg = np.array(colorsys.hsv_to_rgb((h + rng.uniform(0.25, 0.75)) % 1, 1, 0.5))
            rgb = bg * (1 - d[..., None] / 255) + fg * d[..., None] / 255
            z.writestr(f"tinted/{y}/{i:04d}.png", png((rgb * 255).round().astype(np.uint8)))
    args = ["--model", "vae", "--latent-dim", "8", "--hidden", "256", "--epochs", "5", "--batch-size", "32"]
    train_main(["--dataset", str(tmp_path / "tinted.zip"), "--out", str(tmp_path / "colour"), *args])
    train_main(["--dataset", str(tmp_path / "tinted.zip"), "--out", str(tmp_path / "grey"), *args,
                "--channels", "1", "--image-size", "32"])
    x, _ = load_folder(tmp_path / "tinted.zip").split("test")  # (150, 3, 32, 32): colour, 32 px by default
    assert x.shape[1:] == (3, 32, 32)
    err, colour_err = {}, {}
    for name in ("colour", "grey"):
        model, config, _ = load_checkpoint(tmp_path / name)
        inputs, _ = load_split(config["dataset"], "test", image_shape=config["image_shape"])
        with torch.no_grad():
            recon = torch.sigmoid(model.decode(model.encode(inputs)[0])).expand(-1, 3, -1, -1)
        err[name] = (recon - x).pow(2).mean((0, 2, 3))  # per channel
        colour_err[name] = (recon.mean((2, 3)) - x.mean((2, 3))).abs().mean(0)
    assert json.loads((tmp_path / "colour/config.json").read_text())["image_shape"] == [3, 32, 32]
    assert (err["colour"] < 0.6 * err["grey"]).all(), err
    assert (colour_err["colour"] < 0.05).all() and (colour_err["colour"] < colour_err["grey"] / 3).all(), colour_err
