"""Issue 28 in the app: a zip of your own images uploaded in the training panel, trained on, and explored on
every page; bad zips refused there in one line; a public server's bounds on uploads.

A fragment's run_every does not tick under AppTest: the tests wait on the job registry and rerun.
"""

import colorsys
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ui
from conftest import ROOT, open_app, rerun
from test_folders import BAD, files_under, png
from ui import training
from vae.data import load_dataset
from vae.policy import Policy
from vae.train import TrainConfig

pytestmark = pytest.mark.slow  # trains in a child process

TRAIN = "FormSubmitter:train_form-Train"
PAGES = ["manifold", "sliders", "meaning", "interpolate", "reconstruct", "cvae", "embeddings", "ae_vs_vae", "theory"]


def tinted(n: int = 300) -> tuple[bytes, list[np.ndarray]]:
    """A zip of n MNIST training digits, each a random saturated colour on a darker background of another
    hue, 28x28 RGB PNGs in one folder per class (tinted/0/ ... tinted/9/); and the images."""
    x, y = load_dataset("mnist", "train")
    rng, pictures, buf = np.random.default_rng(0), [], io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(n):
            d, h = x[i, 0].numpy()[..., None], rng.uniform()
            fg = np.array(colorsys.hsv_to_rgb(h, 1, 1))
            bg = np.array(colorsys.hsv_to_rgb((h + rng.uniform(0.25, 0.75)) % 1, 1, 0.5))
            a = ((bg * (1 - d) + fg * d) * 255).round().astype(np.uint8)
            pictures.append(a)
            z.writestr(f"tinted/{int(y[i])}/{i:04d}.png", png(a))
    return buf.getvalue(), pictures


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A registry of our own, user models and the dataset cache in tmp_path."""
    monkeypatch.setattr(ui, "POLICY", Policy(max_jobs=1))
    monkeypatch.setenv("VAE_USER_MODELS", str(tmp_path / "user_models"))
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))
    training.job_registry.clear()
    yield tmp_path
    for job in training.job_registry().running():
        job.stop("end of test")
        job.wait(60)
    training.job_registry.clear()


def ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def upload(at, name: str, data: bytes):
    """Pick "Your images" in the training panel and upload ``data`` as the zip ``name``."""
    at.sidebar.radio(key="train_dataset").set_value("yours")
    ok(rerun(at))
    at.sidebar.file_uploader(key="train_zip").set_value((name, data, "application/zip"))
    return ok(rerun(at))


def colour_share(png_bytes: bytes) -> float:
    """The share of an image's pixels whose channels differ by more than 16 levels: 0 for a grey picture."""
    a = np.asarray(Image.open(io.BytesIO(png_bytes)).convert("RGB")).astype(int)
    return float((a.max(-1) - a.min(-1) > 16).mean())


def test_a_zip_uploaded_in_the_panel_trains_and_every_page_shows_its_model_in_colour(fresh, media):
    data, _ = tinted()
    at = upload(open_app(timeout=120), "tinted.zip", data)
    # colour images: 32 px by default
    assert any(c.value == "**tinted**: 300 images, 10 classes, 32×32 colour." for c in at.sidebar.caption)
    card_text = at.sidebar.expander[-1].markdown[0].value  # the data card, in the panel
    assert "| 7 |" in card_text and "Skipped: none." in card_text
    at.sidebar.number_input(key="train_epochs").set_value(2)
    ok(at.sidebar.button(key=TRAIN).click().run())
    job = training.job_registry().job(at.session_state["train_job_id"])
    assert job.config.image_shape == [3, 32, 32] and job.config.dataset.endswith(".safetensors")
    assert Path(job.config.dataset).parent == fresh / "cache"  # decoded once, in the dataset cache only
    assert job.wait(180) and job.state == "done", job.error
    ok(at.run())
    assert at.sidebar.selectbox[0].value == job.name == "run 1 · tinted vae 2-d"
    caption = next(c.value for c in at.sidebar.caption if c.value.startswith("VAE, 2-d latent"))
    assert caption.startswith("VAE, 2-d latent, tinted (your images), 32×32 colour · validation -ELBO")
    metrics = json.loads((Path(job.folder) / "metrics.json").read_text())
    assert metrics["data"]["classes"] == [str(c) for c in range(10)]  # the card rides with the model

    for page in PAGES:  # every page with the folder model: no exception, and what it says fits the data
        media.clear()
        at.switch_page(f"pages/{page}.py")
        ok(at.run())
        text = " ".join(e.value for kind in ("markdown", "caption", "info") for e in at.get(kind))
        if page == "manifold":  # the grid decodes colour images
            grid = max(media.values(), key=len)
            assert colour_share(grid) > 0.5
        if page == "reconstruct":
            assert "dataset's 32×32 colour format" in text
            assert "out-of-distribution check is fitted for the MNIST and Fashion-MNIST models only" in text
        if page == "meaning":  # the digit measurements say what they are for
            assert "so this model (tinted (your images)) gets none" in text
        if page == "cvae":
            assert "is not conditional" in text

    at.switch_page("pages/reconstruct.py")
    ok(at.run())
    at.get("button_group")[0].set_value("Upload")  # the input picker
    ok(at.run())
    photo = Image.new("RGB", (120, 60), (200, 30, 30))  # wider than tall: its centre square is kept
    at.file_uploader[0].set_value(("red.png", png(np.asarray(photo)), "image/png"))
    ok(at.run())
    text = " ".join(m.value for m in at.markdown)
    assert "PNG, 120 × 60 px, RGB; then its centre square resized as the training images were" in text
    assert [i.proto.imgs[0].caption for i in at.get("image")][:2] == ["your image, 120 × 60 px",
                                                                      "32×32, colour: the centre square, resized"]


@pytest.mark.parametrize("case", ["climbs out", "bomb by declared size", "every image corrupt", "not a zip"])
def test_a_bad_zip_uploaded_in_the_panel_gets_one_line_and_writes_nothing(case, fresh, tmp_path):
    make, phrases = BAD[case]
    digits = load_dataset("mnist", "train")[0][:30, 0].mul(255).round().byte().numpy()
    (tmp_path / "made").mkdir()
    src = make(tmp_path / "made", digits)
    before = files_under(tmp_path)
    at = upload(open_app(timeout=120), src.name, src.read_bytes())
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and errors[0].startswith(f"**{src.name}**: ") and "\n" not in errors[0], errors
    for phrase in phrases:
        assert phrase.lower() in errors[0].lower(), (phrase, errors[0])
    assert not at.get("form") or not any(b.proto.label == "Train" for b in at.sidebar.button)  # nothing to train on
    assert files_under(tmp_path) == before  # no cache entry, nothing extracted


def test_a_public_server_bounds_uploads_and_keeps_them_with_the_session(fresh, monkeypatch):
    monkeypatch.setattr(ui, "POLICY", Policy.for_public(upload_max_images=100))
    data, _ = tinted(150)
    at = upload(open_app(timeout=120), "tinted.zip", data)
    zip_uploader = at.sidebar.file_uploader(key="train_zip").proto
    assert zip_uploader.max_upload_size_mb == 20 and zip_uploader.label == "A zip of your images (up to 20 MiB)"
    assert [e.value for e in at.sidebar.error] == [
        "**tinted.zip**: It holds 150 images, more than the 100 this server trains on: upload fewer."]
    assert at.sidebar.selectbox(key="train_image_size").options == ["auto", "28 px", "32 px"]  # no 64 px

    monkeypatch.setattr(ui, "POLICY", Policy.for_public())
    at.sidebar.file_uploader(key="train_zip").set_value(("tinted.zip", tinted(120)[0], "application/zip"))
    ok(rerun(at))
    assert not at.sidebar.error
    card = at.session_state[training.IMPORTED]["card"]  # this session's folder under the registry: deleted with its models
    session = training.job_registry().folder / at.session_state["_session_key"]
    assert Path(card["cache_file"]).parent == session / "datasets" and not (fresh / "cache").exists()
    assert training.job_registry().release(at.session_state["_session_key"]) and not session.exists()


def test_the_server_refuses_a_dataset_the_panel_did_not_make(tmp_path):
    """What reaches the registry is checked: a path that is not a decoded upload, or 64 px on a public server."""
    folder = tmp_path / "photos"
    folder.mkdir()
    with pytest.raises(ValueError, match="dataset must be mnist, fashion or an uploaded zip's decoded images"):
        Policy().check_training(TrainConfig(dataset=str(folder), epochs=1))
    decoded = tmp_path / "x.safetensors"
    decoded.write_bytes(b"")
    Policy().check_training(TrainConfig(dataset=str(decoded), image_shape=[3, 64, 64], epochs=1))
    with pytest.raises(ValueError, match="images must be 28 or 32 px on this server, got 64"):
        Policy.for_public().check_training(TrainConfig(dataset=str(decoded), image_shape=[3, 64, 64], epochs=1))


def test_the_image_uploaders_ask_for_at_most_10_mib_while_the_server_takes_a_200_mib_zip():
    """The limits in Streamlit's "megabytes" (2**20 bytes on its server), said in MiB (issue 37, item 6)."""
    config = (ROOT / ".streamlit/config.toml").read_text()
    assert "\nmaxUploadSize = 200\n" in config
    at = open_app("reconstruct", timeout=120)
    at.get("button_group")[0].set_value("Upload")
    ok(at.run())
    uploader = at.file_uploader[0].proto
    assert uploader.max_upload_size_mb == 10 and uploader.label == "Upload an image of one digit (up to 10 MiB)"
    assert "up to 10 MiB: the browser refuses a larger file" in uploader.help
    at.sidebar.radio(key="train_dataset").set_value("yours")
    ok(at.run())
    assert at.sidebar.file_uploader(key="train_zip").proto.label == "A zip of your images (up to 200 MiB)"
    assert '"--server.maxUploadSize=20"' in (ROOT / "Dockerfile").read_text()


def test_an_unlabelled_grey_64_px_conv_model_and_a_folder_cvae_open_on_every_page(fresh):
    """The other shapes a folder gives: no class folders (one class, nothing to pick), grey, 64 px, the
    ConvVAE; and a CVAE on the colour digits, whose page draws every class folder."""
    from vae.train import main as train_main

    x = load_dataset("fashion", "train")[0][:200, 0].mul(255).round().byte().numpy()
    flat = fresh / "flat.zip"
    with zipfile.ZipFile(flat, "w") as z:  # images straight in the top folder: unlabelled
        for i, a in enumerate(x):
            z.writestr(f"shots/{i:03d}.jpg", png(np.asarray(Image.fromarray(a).resize((56, 56))), format="JPEG"))
    (fresh / "tinted.zip").write_bytes(tinted(200)[0])
    models = fresh / "user_models"
    train_main(["--dataset", str(flat), "--image-size", "64", "--model", "conv", "--latent-dim", "3", "--epochs", "1",
                "--out", str(models / "flat-conv")])
    train_main(["--dataset", str(fresh / "tinted.zip"), "--model", "cvae", "--latent-dim", "2", "--epochs", "1",
                "--out", str(models / "tinted-cvae")])
    for model, expect in (("flat-conv", "ConvVAE, 3-d latent, flat (your images), 64×64 grey"),
                          ("tinted-cvae", "CVAE, 2-d latent, tinted (your images), 32×32 colour")):
        at = open_app("manifold", model, timeout=120)
        assert any(c.value.startswith(expect) for c in at.sidebar.caption), [c.value for c in at.sidebar.caption]
        for page in PAGES:
            at.switch_page(f"pages/{page}.py")
            ok(at.run())
            if page == "sliders" and model == "flat-conv":  # one class: no class picker, said instead
                assert not any(s.label == "Class" for s in at.selectbox)
                assert any(m.value == "Test images of **flat** (unlabelled)" for m in at.markdown)
            if page == "cvae" and model == "tinted-cvae":
                assert [str(o) for o in at.get("button_group")[0].options] == [str(c) for c in range(10)]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A 2-d VAE trained for one epoch as the training panel trains one (``vae.jobs.train_task``: its
    dataset the upload's decoded cache file, named by a hash, and its data card kept) on shapes.zip, 300
    colour digits of which 29 are held out for testing; with VAE_USER_MODELS and VAE_CACHE_DIR pointing
    at its folders. Yields the model's name."""
    import dataclasses
    import threading

    from vae.folders import load_folder
    from vae.jobs import train_task

    tmp = tmp_path_factory.mktemp("shapes")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VAE_USER_MODELS", str(tmp / "user_models"))
        env.setenv("VAE_CACHE_DIR", str(tmp / "cache"))
        card = load_folder(tinted(300)[0], name="shapes.zip").card
        config = TrainConfig(dataset=card["cache_file"], image_shape=[3, 32, 32], n_classes=10, latent_dim=2,
                             hidden=[32], epochs=1, batch_size=32)
        train_task({"config": dataclasses.asdict(config), "folder": str(tmp / "user_models/shapes-vae"),
                    "data_root": None, "card": card}, {}, lambda _: None, threading.Event())
        yield "shapes-vae"


def page_words(at) -> str:
    return " ".join(e.value for kind in ("markdown", "caption", "info", "warning", "error") for e in at.get(kind))


def maps_finished(at):
    """Wait for the server's map jobs to end, touching them as the page's poll does (AppTest does not run
    a fragment's run_every), then run the page again."""
    from conftest import wait_for
    from ui.maps import map_jobs

    def done():
        jobs = map_jobs().running() + map_jobs().waiting()
        for job in jobs:
            job.touch()
        return not jobs

    wait_for(done, timeout=180)
    return ok(at.run())


def test_a_folder_models_captions_name_its_dataset_not_its_cache_file(shapes):
    """Issue 40 item 9: Reconstruct's and Interpolation's captions named an uploaded dataset by its decoded
    cache file ("f73c0f77...-32px-3ch-v1.safetensors") instead of "shapes (your images)"."""
    from vae.evaluate import model_card

    at = open_app("reconstruct", shapes, timeout=120)
    for page in ("reconstruct", "interpolate"):
        at.switch_page(f"pages/{page}.py")
        words = page_words(ok(at.run()))
        assert "from the test split of shapes (your images), 29 images, coloured by class" in words or (
            "mu of the test split of shapes (your images), 29 images, coloured by class" in words), words
        assert ".safetensors" not in words, words
    folder = Path(os.environ["VAE_USER_MODELS"]) / shapes
    config, metrics = (json.loads((folder / f).read_text()) for f in ("config.json", "metrics.json"))
    assert "trained by `python -m vae.train` on shapes (your images)" in model_card(shapes, config, metrics)


def test_embeddings_maps_a_small_own_images_model_with_settings_that_fit_it(shapes):
    """Issue 40 item 2: with 29 test images the page said "Cannot compute this map: t-SNE needs a
    perplexity between 0 and the number of points (29), got 30." t-SNE's perplexity now runs up to
    (N - 1) / 3, starts there and says so; UMAP keeps its 15 neighbours (it needs 17 points). A link's
    pick survives the run that stops while the new map is computed."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update({"model": shapes, "picked": "3"})
    ok(at.run())
    at.switch_page("pages/embeddings.py")
    at.query_params.update({"model": shapes, "picked": "3"})
    at = maps_finished(ok(at.run()))
    words = page_words(at)
    assert not at.error and not at.warning, words
    slider = at.slider(key=f"embeddings/{shapes}/perplexity")
    assert (slider.min, slider.max, slider.value) == (5, 9, 9)
    assert "At most 9 for 29 images" in words and "t-SNE of the means of 29 test images (perplexity 9, seed 0" in words
    assert at.subheader[0].value.startswith("Test image #3 (") and at.query_params["picked"] == "3"
    slider.set_value(6)
    at = maps_finished(ok(at.run()))
    assert "(perplexity 6, seed 0" in page_words(at) and at.query_params["perplexity"] == "6"
    at.get("button_group")[0].set_value("umap")
    at = maps_finished(ok(at.run()))
    assert not at.error and "UMAP of the means of 29 test images (15 neighbours, min_dist 0.1, seed 0)" in page_words(at)


def test_a_link_says_what_it_ignored_on_a_page_that_stops_while_its_map_is_computed(shapes):
    """Issue 40 item 15: a page that stops early (st.stop while a new map is computed) drew nothing after
    the stop, so the link's notice, drawn once the page had run, was lost: perplexity=50 was neither
    used nor said. Now each ignored value is said as soon as it is, and what the page's end finds (a
    parameter no setting knows) on the next run."""
    from streamlit.testing.v1 import AppTest

    from ui.maps import map_jobs

    link = {"model": shapes, "seed": "5", "perplexity": "50", "foo": "bar"}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(link)
    ok(at.run())
    at.switch_page("pages/embeddings.py")
    at.query_params.update(link)
    ok(at.run())
    assert [w.value for w in at.warning] == [
        "Ignored from the link, showing the defaults instead: perplexity=50 (above 9)."]
    assert map_jobs().running() or map_jobs().waiting()  # the page stopped: its map is being computed
    maps_finished(at)
    assert [w.value for w in at.warning] == [
        "Ignored from the link, showing the defaults instead: foo=bar (not a setting of this page)."]
    assert "(perplexity 9, seed 5" in page_words(at)
    assert not ok(at.run()).warning  # said once
