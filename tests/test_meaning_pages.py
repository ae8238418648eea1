"""Issue 26 on the pages: What the dimensions mean (heat map, scores, the beta sweep), the sliders' names
and attribute sliders, the manifold's axes, and Reconstruct's measurements of one digit."""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import ROOT, SAMPLE, open_app, rerun, shown

from ui import meaning
from vae.attributes import dimension_label, dimension_report
from vae.checkpoint import load_checkpoint
from vae.data import load_test_images
from vae.latent import encode_images
from vae.morphometry import load_measurements, measure

MEASURED = re.compile(r"measured (\w+): \*\*([-+0-9.]+) ")


def at_hand():
    """The test images the app uses (the split under VAE_DATA_DIR, else the bundled sample) and their
    stored measurements, in the same order."""
    images, labels, indices, _ = load_test_images("mnist", sample=SAMPLE)
    stored = load_measurements("mnist", "test")
    return images, labels, {n: v.astype(np.float64)[indices.numpy()] for n, v in stored.items()}


def report_of(model: str) -> dict:
    images, labels, measured = at_hand()
    net, config, _ = load_checkpoint(ROOT / "pretrained" / model, "cpu")
    mu, _ = encode_images(net.eval(), images, labels if net.conditional else None)
    return dimension_report(mu, labels, measured)


def measured_values(at) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for c in at.caption if (m := MEASURED.match(c.value))}


def chart(at, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if key in c.proto.id).proto.spec)


# ---------------------------------------------------------------- the page


@pytest.mark.parametrize("model", ["mnist-vae-20d", "mnist-vae-2d", "mnist-cvae", "mnist-ae-2d", "fashion-vae-2d"])
def test_the_page_opens_for_every_kind_of_model(model):
    at = open_app("meaning", model)
    assert at.title[0].value == "What the dimensions mean" and not at.error
    charts = [c.proto.id for c in at.get("plotly_chart")]
    if model.startswith("fashion"):
        assert any(i.value == meaning.FOR_DIGITS.format(data="Fashion-MNIST") for i in at.info)
        assert not any("meaning_heatmap" in c for c in charts)
    else:
        assert any("meaning_heatmap" in c for c in charts)
        assert any("Castro et al. (2019)" in c.value and "MNIST test images" in c.value for c in at.caption)
        assert [m.label for m in at.metric][:5] == ["MIG", "SAP", "DCI D", "DCI C", "DCI I"]  # shipped and scored
    # the beta sweep: each model either drawn or named as missing
    missing = " ".join(i.value for i in at.info if i.value.startswith("Still missing"))
    drawn = any("meaning_sweep" in c for c in charts)
    for beta in (1, 2, 4, 8):
        name = f"mnist-vae-10d-beta{beta}"
        has = (ROOT / "pretrained" / name / "metrics.json").is_file()
        assert (name in missing) != has and (drawn or not has)


def test_the_heat_map_is_the_dimension_report():
    at = open_app("meaning", "mnist-vae-2d")
    spec = chart(at, "meaning_heatmap")
    rho, mi = spec["data"][0], spec["data"][1]
    expected = report_of("mnist-vae-2d")
    assert rho["x"] == list(expected["measurements"]) and rho["y"] == ["z[0]", "z[1]"]
    assert np.allclose(rho["z"], expected["spearman_abs"], atol=1e-6)
    assert np.allclose(np.asarray(mi["z"])[:, 0], expected["class_mi_nats"], atol=1e-6)


def test_a_model_without_stored_directions_gets_them_computed(tmp_path, monkeypatch):
    """A model trained in the app: no attributes.safetensors, no scores; directions from its test codes."""
    folder = tmp_path / "user_models" / "mine"
    folder.mkdir(parents=True)
    for f in ("config.json", "model.safetensors"):
        shutil.copy(ROOT / "pretrained" / "mnist-vae-2d" / f, folder / f)
    metrics = json.loads((ROOT / "pretrained" / "mnist-vae-2d" / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({k: metrics[k] for k in ("train", "history", "test")}))
    monkeypatch.setenv("VAE_USER_MODELS", str(tmp_path / "user_models"))
    at = open_app("meaning", "mine")
    assert not at.error and any("meaning_heatmap" in c.proto.id for c in at.get("plotly_chart"))
    assert any("trained in the app is not scored" in i.value for i in at.info)
    at.switch_page("pages/sliders.py")
    rerun(at)
    assert any("computed here from this model's test encodings" in c.value for c in at.caption)
    assert set(measured_values(at)) == {"thickness", "slant", "width", "height"}


# ---------------------------------------------------------------- the sliders


def test_a_slider_names_what_its_dimension_tracks():
    model = "mnist-vae-20d"
    at = open_app("sliders", model)
    expected = report_of(model)
    labels = {j: dimension_label(expected, j) for j in range(20)}
    assert any(labels.values())
    for j, lab in labels.items():
        label = at.slider(key=f"sliders/{model}/z{j}").label
        assert label.split(" · ")[0] == (f"z[{j}]: {lab}" if lab else f"z[{j}]")


def test_an_attribute_slider_moves_the_image_and_its_measured_value():
    model = "mnist-vae-20d"
    at = open_app("sliders", model)
    before, values = shown(at)[0], measured_values(at)
    assert set(values) == {"thickness", "slant", "width", "height"}
    for name in ("thickness", "slant"):
        key = f"sliders/{model}/attr_{name}"
        at.slider(key=key).set_value(at.slider(key=key).max)
        rerun(at)
        after = measured_values(at)
        assert shown(at)[0] != before and after[name] > values[name], (name, values, after)
        at.slider(key=key).set_value(at.slider(key=key).min)
        rerun(at)
        assert measured_values(at)[name] < values[name], (name, values, measured_values(at))
        at.slider(key=key).set_value(0.0)
        rerun(at)
    assert shown(at)[0] == before  # back at 0: the sliders' own z


def test_the_manifold_names_its_axes():
    at = open_app("manifold", "mnist-cvae")
    assert any("Axis names" in i.proto.imgs[0].caption for i in at.get("image"))


# ---------------------------------------------------------------- reconstruct


def test_reconstruct_measures_a_test_image_and_places_it_in_its_class():
    at = open_app("reconstruct", "mnist-vae-20d")
    at.selectbox(key="reconstruct/class").select(7)
    rerun(at)
    images, labels, measured = at_hand()
    i = int(torch.nonzero(labels == 7).flatten()[0])
    thickness = float(measure(images[i : i + 1])["thickness"][0])
    sevens = measured["thickness"][labels.numpy() == 7]
    share = (sevens < thickness).mean()
    word, pct = ("thicker", share) if share >= 0.5 else ("thinner", 1 - share)
    text = " ".join(m.value for m in at.markdown)
    assert f"thickness {thickness:.2f} px: {word} than {pct:.0%} of the test 7s" in text
    assert any("Castro et al. (2019)" in c.value and "its test label" in c.value for c in at.caption)
    # "your 7, thicker": the attribute slider moves the decoded image and the measured thickness
    before, values = shown(at), measured_values(at)
    at.slider(key="rec_attr_thickness").set_value(at.slider(key="rec_attr_thickness").max)
    rerun(at)
    assert shown(at)[-1] != before[-1] and measured_values(at)["thickness"] > values["thickness"]


def test_reconstruct_says_morphometry_is_for_digits_on_a_fashion_model():
    at = open_app("reconstruct", "fashion-vae-2d")
    assert any(i.value == meaning.FOR_DIGITS.format(data="Fashion-MNIST") for i in at.info) and not at.error
