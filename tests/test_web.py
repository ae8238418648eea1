"""The static explorer's build (vae.web): ONNX exports that match torch for every model type, the site's files,
its words from the catalogue, the Embedding Projector's files. The site in Chromium: tests/e2e/test_web_browser.py."""

import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from vae import web
from vae.models import build_model

CASES = {  # name -> config of a small untrained model of each type the app trains
    "mlp": {"model": "vae", "latent_dim": 2, "hidden": [64, 32]},
    "conv": {"model": "conv", "latent_dim": 20, "hidden": [64], "channels": [8, 16]},
    "cvae": {"model": "cvae", "latent_dim": 2, "hidden": [64]},
    "class-prior": {"model": "cvae_class_prior", "latent_dim": 2, "hidden": [64]},
    "ae": {"model": "ae", "latent_dim": 2, "hidden": [64]},
    "colour-32px": {"model": "vae", "latent_dim": 4, "hidden": [64], "image_shape": [3, 32, 32]},
    "colour-conv-64px": {"model": "conv", "latent_dim": 8, "hidden": [32], "channels": [8, 8], "image_shape": [3, 64, 64]},
}


def random_model(config: dict):
    torch.manual_seed(0)
    model = build_model(config).eval()
    g = torch.Generator().manual_seed(1)
    images = torch.rand(web.PARITY_N, *model.image_shape, generator=g)
    labels = torch.randint(10, (web.PARITY_N,), generator=g)
    return model, images, labels


@pytest.mark.parametrize("case", CASES)
def test_every_model_type_exports_to_onnx_that_matches_torch_at_any_batch_size(case, tmp_path):
    model, images, labels = random_model(CASES[case])
    report = web.export_onnx(model, tmp_path, images, labels)
    assert report["decoder_max_abs"] <= 1e-3 and report["n_z"] == report["n_images"] == 1000, report
    dec = ort.InferenceSession(str(tmp_path / "decoder.onnx"), providers=["CPUExecutionProvider"])
    enc = ort.InferenceSession(str(tmp_path / "encoder.onnx"), providers=["CPUExecutionProvider"])
    assert not list(tmp_path.glob("*.data")), "the weights belong inside the .onnx files"
    for b in (1, 7, 225):  # one image, an odd batch, a 15 x 15 manifold
        z = torch.randn(b, model.latent_dim)
        y = torch.randint(10, (b,))
        feed = {"z": z.numpy()} | ({"y": y.numpy()} if web.takes_label(model) else {})
        with torch.no_grad():
            want = torch.sigmoid(model.decode(z, y)).numpy()
        got = dec.run(None, feed)[0]
        assert got.shape == (b, *model.image_shape) and np.abs(got - want).max() <= 1e-3
        x = torch.rand(b, *model.image_shape)
        feed = {"x": x.numpy()} | ({"y": y.numpy()} if web.takes_label(model) else {})
        with torch.no_grad():
            mu = model.encode(x, y)[0].numpy()
        assert np.abs(enc.run(None, feed)[0] - mu).max() <= 1e-4
    assert [i.name for i in enc.get_outputs()] == (["mu", "logvar"] if model.variational else ["mu"])


def test_an_export_that_does_not_match_torch_is_refused(tmp_path, monkeypatch):
    """The check is real: a decoder exported without its sigmoid (logits, not pixel means) fails it."""
    model, images, labels = random_model(CASES["mlp"])
    monkeypatch.setattr(web._Decoder, "forward", lambda self, z, y=None: self.model.decode(z, y))
    with pytest.raises(web.WebExportError, match="differs from torch"):
        web.export_onnx(model, tmp_path, images, labels)


def test_the_site_holds_every_file_its_manifest_names_and_no_address_outside_it(web_site):
    manifest = json.loads((web_site / "manifest.json").read_text())
    names = [m["name"] for m in manifest["models"]]
    assert names == ["mnist-vae-2d", "mnist-cvae", "tinted-vae"]
    for m in manifest["models"]:
        c, h, w = m["image_shape"]
        n, d = m["n"], m["latent_dim"]
        for key in ("encoder", "decoder", "codes", "labels", "map", "sprite"):
            assert (web_site / m[key]).is_file(), (m["name"], key)
        assert (web_site / m["codes"]).stat().st_size == 4 * n * d
        assert (web_site / m["map"]).stat().st_size == 4 * n * 2
        labels = np.fromfile(web_site / m["labels"], np.uint8)
        assert len(labels) == n and labels.max() < len(m["class_names"])
        sprite = Image.open(web_site / m["sprite"])
        assert sprite.mode == ("L" if c == 1 else "RGB") and sprite.size[0] == m["sprite_cols"] * w
        assert sprite.size[1] == math.ceil(n / m["sprite_cols"]) * h
        assert sorted(m["dims_by_kl"]) == list(range(d)) and m["parity"]["decoder_max_abs"] <= 1e-3
    by = {m["name"]: m for m in manifest["models"]}
    assert by["mnist-vae-2d"]["map_method"] == "t-SNE" and by["mnist-vae-2d"]["metrics"]["k"] >= 1
    assert by["mnist-vae-2d"]["attributes"]["thickness"]["units"] == "px"
    assert by["mnist-cvae"]["conditional"] and not by["mnist-vae-2d"]["conditional"]
    assert by["tinted-vae"]["image_shape"] == [3, 32, 32] and by["tinted-vae"]["map_method"] == "codes"  # 2-d, no stored map
    assert by["tinted-vae"]["title"] == "tinted (your images)"
    # No address outside the site: every script and style is the site's own, loaded by relative paths.
    for path in [*web_site.glob("*.js"), *web_site.glob("views/*.js"), web_site / "index.html", web_site / "style.css"]:
        text = path.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path
    assert {p.name for p in (web_site / "ort").iterdir()} == {*web.ORT_FILES, web.ORT_WASM + ".gz"}
    front = (web_site / "README.md").read_text().split("---")[1]
    assert "sdk: static" in front and "app_file: index.html" in front


def test_the_pages_words_come_from_the_catalogue_in_both_languages(web_site):
    words = json.loads((web_site / "strings.json").read_text())
    from vae.data import CLASS_NAMES

    assert words["en"] == web.STRINGS | {f"class:{n}": n for n in CLASS_NAMES["fashion"]}
    assert words["zh-CN"].keys() == words["en"].keys() and words["zh-CN"]["class:Ankle boot"] == "短靴"
    english_left = [k for k, v in words["zh-CN"].items() if v == words["en"][k] and any(c.isalpha() for c in v[:3])]
    assert english_left == ["dim_label"], english_left  # "z[{j}] · KL {kl} nats" reads the same in both
    assert words["zh-CN"]["view_interpolate"] == "插值" and words["zh-CN"]["random"] == "随机采样"


def test_the_embedding_projectors_files_parse(web_site):
    manifest = json.loads((web_site / "manifest.json").read_text())
    for m in manifest["models"]:
        folder = web_site / "models" / m["name"] / "projector"
        tensors = np.loadtxt(folder / "tensors.tsv", delimiter="\t", ndmin=2)
        assert tensors.shape == (m["n"], m["latent_dim"])
        codes = np.fromfile(web_site / m["codes"], "<f4").reshape(m["n"], m["latent_dim"])
        assert np.allclose(tensors, codes, atol=1e-5)
        rows = (folder / "metadata.tsv").read_text().splitlines()
        assert rows[0] == "label\tclass" and len(rows) == m["n"] + 1
        assert all(r.split("\t")[1] == m["class_names"][int(r.split("\t")[0])] for r in rows[1:])
        config = (folder / "projector_config.pbtxt").read_text()
        size = m["image_shape"][2]
        assert 'tensor_path: "tensors.tsv"' in config and 'metadata_path: "metadata.tsv"' in config
        assert f"single_image_dim: {size}" in config and Image.open(folder / "sprite.png").size[0] % size == 0


def test_without_onnxruntime_web_the_build_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(web, "ORT_DIST", tmp_path / "nothing")
    assert web.main(["build", "--out", str(tmp_path / "site"), "--models", "mnist-vae-2d"]) == 1
    assert "npm ci --prefix web" in capsys.readouterr().err


def test_a_name_that_is_neither_a_shipped_model_nor_a_folder_is_refused(tmp_path, capsys):
    assert web.main(["build", "--out", str(tmp_path / "site"), "--models", "no-such-model"]) == 1
    assert "neither a shipped model nor a folder" in capsys.readouterr().err


def test_the_zip_the_app_offers_is_the_site(monkeypatch):
    calls = []

    def fake_build(out, models, **kw):
        calls.append(models)
        Path(out).mkdir(parents=True)
        (Path(out) / "index.html").write_text("<!doctype html>")
        return Path(out)

    monkeypatch.setattr(web, "build", fake_build)
    import io
    import zipfile

    data = web.build_zip(["mnist-vae-2d"])
    assert calls == [["mnist-vae-2d"]]
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["vae-explorer/index.html"]


def test_the_sidebar_offers_the_picked_model_as_a_web_page_built_in_a_child_and_kept(monkeypatch):
    import io
    import sys
    import zipfile

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import open_app

    import ui
    from ui import models

    at = open_app(None, model="mnist-cvae")
    assert [b.proto.label for b in at.get("download_button")] == ["Download this model as a web page"]
    monkeypatch.setattr(ui, "POLICY", ui.POLICY.replace(web_slots=1, web_keep=1))
    monkeypatch.setitem(models._WEB, "slots", None)
    monkeypatch.setitem(models._WEB, "zips", {})
    folder = str(Path(__file__).resolve().parents[1] / "pretrained" / "mnist-cvae")
    data = models.web_page_zip(folder)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert "vae-explorer/index.html" in names and "vae-explorer/models/mnist-cvae/decoder.onnx" in names
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("vae-explorer/manifest.json"))
    assert [m["name"] for m in manifest["models"]] == ["mnist-cvae"]
    monkeypatch.setattr(web, "make_zip", lambda *a: pytest.fail("a kept zip is not built again"))
    assert models.web_page_zip(folder) is data


def test_a_web_page_build_is_bounded_by_the_policy(monkeypatch):
    import ui
    from ui import models

    slow = ui.POLICY.replace(web_slots=1, web_max_seconds=0.3)
    monkeypatch.setattr(ui, "POLICY", slow)
    monkeypatch.setitem(models._WEB, "zips", {})
    monkeypatch.setitem(models._WEB, "slots", __import__("threading").BoundedSemaphore(1))
    models._WEB["slots"].acquire()  # another visitor's build holds the server's one slot
    with pytest.raises(RuntimeError, match="stayed busy"):
        models.web_page_zip("pretrained/mnist-vae-2d")
    with pytest.raises(RuntimeError, match="time cap of 0.3 s"):  # the child is stopped at the cap
        web.make_zip("pretrained/mnist-vae-2d", slow)


def test_an_encoder_whose_variance_head_is_lost_in_the_export_is_refused(tmp_path, monkeypatch):
    """The encoder's every output is compared, logvar included (an export with logvar = 0 passed before)."""
    model, images, labels = random_model(CASES["mlp"])
    monkeypatch.setattr(web._Encoder, "forward", lambda self, x, y=None: (self.model.encode(x, y)[0],
                                                                           torch.zeros_like(self.model.encode(x, y)[1])))
    with pytest.raises(web.WebExportError, match="ONNX encoder .* differs from torch"):
        web.export_onnx(model, tmp_path, images, labels)


def test_a_one_dimensional_model_gets_a_map_of_two_columns(tmp_path):
    model, images, labels = random_model({"model": "vae", "latent_dim": 1, "hidden": [32]})
    coords, positions, method, _ = web._map(tmp_path, model, images, labels, torch.arange(len(labels)))
    assert coords.shape == (len(positions), 2) and method == "codes" and not coords[:, 1].any()
