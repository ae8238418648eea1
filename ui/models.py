"""The model registry (shipped, saved, trained here), the sidebar's picker, and cached model data."""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import streamlit as st
import torch

from vae.checkpoint import CONFIG, METRICS, NAME_PATTERN, WEIGHTS, CheckpointError, load_checkpoint
from vae.data import class_names, dataset_title, is_builtin
from vae.latent import encode_images
from vae.models import MODELS
from vae.train import best_device

from . import PRETRAINED, policy, state
from .i18n import LANGUAGES, N_, _, error_message
from .images import test_images

APP_STATE = state.PageState(state.APP, [  # in every page's URL
    state.Setting("model", str, "mnist-vae-2d", unknown=N_("no such model")),
    state.Setting("projector", bool, False, in_links=False),  # the room's size: a copied link leaves it out
    state.Setting("lang", str, "en", options=tuple(LANGUAGES), unknown=N_("not en or zh-CN"))])
MODEL_KEY = APP_STATE.key("model")  # session state: the picker's value
SESSION_MODELS_KEY = "session_models"  # session state: name -> folder of the models trained in this session
USER_MODELS_ENV = "VAE_USER_MODELS"
DEFAULT_MODEL = "mnist-vae-2d"


@dataclass(frozen=True)
class Selection:
    """The model picked in the sidebar, resolved once per rerun and handed to the page.

    name: the picker's name; folder: its checkpoint folder; model: in eval mode on the best device
    (shared by every session: never train or modify it); config and metrics: its JSON files.
    """

    name: str
    folder: str
    model: torch.nn.Module
    config: dict
    metrics: dict

    @cached_property
    def class_names(self) -> list[str]:
        """The dataset's class names in label order (``vae.data.class_names``), as the page shows them:
        MNIST's digits, Fashion-MNIST's items in this run's language, a folder's class folders as they
        are named. Words to show, never to store: a widget's stored value is the class's index. Once per
        Selection (a folder model without a data card reads its folder again to know them)."""
        names = class_names(self.config, self.metrics)
        return [_(n) for n in names] if self.config["dataset"] == "fashion" else names

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the model's images: (1, 28, 28) for MNIST and Fashion-MNIST, a folder's own."""
        return tuple(int(v) for v in self.config.get("image_shape") or (1, 28, 28))

    @property
    def builtin(self) -> bool:
        """Trained on MNIST or Fashion-MNIST, not on a folder or zip of a user's images."""
        return is_builtin(self.config["dataset"])

    @property
    def digits(self) -> bool:
        """Trained on MNIST: the tools made for handwritten digits (morphometry, the pixel classifier,
        the out-of-distribution scores' references) apply."""
        return self.config["dataset"] == "mnist"

    @property
    def dataset_title(self) -> str:
        """The dataset in words, in this run's language: "MNIST", "Fashion-MNIST", "photos (your images)"."""
        return dataset_words(self.config["dataset"], self.metrics.get("data"))

    @property
    def thing(self) -> str:
        """What one image shows, for labels like "An image of one digit": digit, item, or image (English:
        a page may use it as a key, and translates it where it shows it)."""
        return {"mnist": "digit", "fashion": "item"}.get(self.config["dataset"], "image")

    def test_images(self):
        """``ui.images.test_images`` of this model's dataset, at its image_shape."""
        return test_images(self.config["dataset"], self.image_shape)

    @property
    def conditional(self) -> bool:
        """The model needs labels (a CVAE, or a class-prior VAE for its KL and samples)."""
        return bool(getattr(self.model, "conditional", False))

    @property
    def label_decoder(self) -> bool:
        """The decoder takes the label y beside z (a CVAE): the same z draws another class when y changes."""
        return self.config["model"] == "cvae"

    @property
    def class_prior(self) -> bool:
        """The prior has a mean per class, p(z|y) = N(mu_y, I) (``vae.models.ClassPriorVAE``)."""
        return self.config["model"] == "cvae_class_prior"

    @property
    def preprocess_style(self):
        """How an upload is made into this model's input (``ui.images.preprocess``): "mnist" or
        "fashion" (framed as that dataset framed its images), or a folder model's image_shape (C, S, S)
        (centre-cropped and resized as its training images were)."""
        if not self.builtin:
            return self.image_shape
        return "fashion" if self.config["dataset"] == "fashion" else "mnist"


def sliders_state(name: str) -> state.PageState:
    """The Latent sliders page's settings for model ``name`` (scoped by it, so that switching models never
    carries stale values): ``z``, the sliders' values, one URL parameter (``z=1.5,-0.75``: the page sets
    its length and default from the model), and ``y``, a CVAE's label. Its ``key("start")`` holds the
    last start (z, how, y) for the page's Reset button and caption."""
    return state.PageState("sliders", [state.Setting("z", float, None, many=True), state.Setting("y", int, 0, 0)],
                           scope=name)


def start_sliders(name: str, z: list[float], how: str, y: int | None = None) -> None:
    """Set every slider of model ``name`` on the Latent sliders page (and a CVAE's label y) before a run
    draws them, and remember the start (``how``: "the manifold cell (3, 4)") for the page's Reset button.
    Call it from a button's callback, or before ``st.switch_page``. z: latent_dim floats, rounded to the
    sliders' 0.01 step; values beyond a slider's range are clipped by the page."""
    sliders, z = sliders_state(name), [round(float(v), 2) for v in z]
    sliders.set("z", tuple(z))
    for j in range(len(z)):  # the sliders' widgets take the new values from the store
        st.session_state.pop(f"{sliders.key('z')}{j}", None)
    if y is not None:
        sliders.set("y", int(y))
    st.session_state[sliders.key("start")] = (z, how, y)


def open_in_sliders_page(name: str, z: list[float], how: str, y: int | None = None) -> None:
    """Open the Latent sliders page at z (and a CVAE's label y) for model ``name``: the one hand-off
    every page uses ("Open in the sliders")."""
    start_sliders(name, z, how, y)
    APP_STATE.set("model", name)
    st.switch_page("pages/sliders.py", query_params={"model": name})


_run = threading.local()  # each session's script runs in a thread of its own


@contextmanager
def selected(selection: Selection):
    """Within this block, ``current_selection()`` in this script run returns ``selection``."""
    _run.selection = selection
    try:
        yield
    finally:
        _run.selection = None


def current_selection() -> Selection | None:
    """The Selection app.py made in this script run, or None outside its frame."""
    return getattr(_run, "selection", None)


@st.cache_data(show_spinner=False, max_entries=1)
def shipped_models() -> dict[str, str]:
    """Name -> folder of every model under pretrained/, in name order."""
    return {p.parent.name: str(p.parent) for p in sorted(PRETRAINED.glob(f"*/{CONFIG}"))}


def user_models_dir() -> Path:
    """Where the app saves models: ``$VAE_USER_MODELS``, else user_models/ beside app.py (git-ignored)."""
    return Path(os.environ.get(USER_MODELS_ENV) or PRETRAINED.parent / "user_models")


def user_models() -> dict[str, str]:
    """Name -> folder of every model saved in the user models folder, in name order; read on every
    call (other sessions may save), skipping names a shipped model has."""
    shipped = shipped_models()
    return {p.parent.name: str(p.parent) for p in sorted(user_models_dir().glob(f"*/{CONFIG}"))
            if p.parent.name not in shipped and NAME_PATTERN.fullmatch(p.parent.name)}


def session_models() -> dict[str, str]:
    """Name -> folder of the models trained in this browser session (deleted when it ends), without
    those the training registry has deleted already (beyond the newest it keeps per session)."""
    models = st.session_state.setdefault(SESSION_MODELS_KEY, {})
    for name in [n for n, folder in models.items() if not (Path(folder) / CONFIG).is_file()]:
        del models[name]
    return models


def weights_mtime(folder: str) -> float:
    """The weights file's modification time: a cache key that changes when a folder is rewritten."""
    path = Path(folder) / WEIGHTS
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_resource(show_spinner=False, max_entries=16)
def _load(folder: str, version: float):
    # The spinner inside: it shows only when the model is not cached yet, and in the run's language (a
    # spinner is no element the cache replays).
    with st.spinner(_("Loading the model...")):
        return load_checkpoint(folder, best_device())


def load_model(folder: str):
    """(model, config, metrics) on the best device; at most 16 models stay loaded, least recent out.

    Raises CheckpointError for a folder that cannot be loaded.
    """
    return _load(folder, weights_mtime(folder))


_WEB = {"lock": threading.Lock(), "slots": None, "zips": {}}  # the server's web-page builds and finished zips


def web_page_zip(folder: str) -> bytes:
    """The zip of ``python -m vae.web build`` for one model folder, built in a child process (``vae.web.make_zip``),
    at most ``policy().web_slots`` at once over the server (a caller waits for a slot up to web_max_seconds), the
    newest ``web_keep`` kept for every visitor. Raises RuntimeError when the build fails or finds no slot."""
    from vae.web import make_zip

    bound = policy()
    key = (folder, weights_mtime(folder))
    with _WEB["lock"]:
        if key in _WEB["zips"]:
            return _WEB["zips"][key]
        _WEB["slots"] = _WEB["slots"] or threading.BoundedSemaphore(bound.web_slots)
        slots = _WEB["slots"]
    if not slots.acquire(timeout=bound.web_max_seconds):
        raise RuntimeError("every web-page slot of this server stayed busy")
    try:
        with _WEB["lock"]:  # built by another click while this one waited for the slot
            data = _WEB["zips"].get(key)
        if data is None:
            data = make_zip(folder, bound)
    finally:
        slots.release()
    with _WEB["lock"]:
        _WEB["zips"][key] = data
        while len(_WEB["zips"]) > bound.web_keep:
            del _WEB["zips"][next(iter(_WEB["zips"]))]  # the oldest first
    return data


def web_download(sel: Selection) -> None:
    """The sidebar's "Download this model as a web page": the zip is built when the button is pressed, off the
    script thread (Streamlit runs a callable ``data`` in a thread of its own)."""
    st.download_button(_("Download this model as a web page"), data=lambda: web_page_zip(sel.folder),
                       file_name=f"{sel.name}-web.zip", mime="application/zip", on_click="ignore", width="stretch",
                       icon=":material/public:",
                       help=_("A folder that any static host serves for free (a static Hugging Face Space, GitHub Pages, "
                              "a USB stick): the model runs in the visitor's browser. Building it takes about 15 s."))


def dataset_words(dataset: str, card: dict | None = None) -> str:
    """``vae.data.dataset_title`` in this run's language: "MNIST", "Fashion-MNIST", or "NAME (your
    images)" with a folder's or zip's name (the data card's ``name`` when given)."""
    if is_builtin(dataset):
        return dataset_title(dataset)
    return _("{name} (your images)").format(name=(card or {}).get("name") or Path(dataset).name)


def model_kind(kind: str) -> str:
    """A model type's short name (``vae.models.MODELS[kind].short_name``: "VAE", "class-prior VAE") in
    this run's language; the names that are acronyms stay as they are."""
    return _(MODELS[kind].short_name)


N_("class-prior VAE")  # vae.models' one short name in words: for the catalogue (model_kind says it)


def describe(config: dict, metrics: dict | None = None) -> str:
    """'VAE, 2-d latent, MNIST'; a folder model's adds its image size: 'VAE, 2-d latent, photos (your
    images), 32×32 colour' (its name from the data card in ``metrics``)."""
    title = dataset_words(config["dataset"], (metrics or {}).get("data"))
    line = _("{model}, {d}-d latent, {dataset}").format(model=model_kind(config["model"]),
                                                         d=config["latent_dim"], dataset=title)
    if not is_builtin(config["dataset"]):
        c, h, w = config.get("image_shape") or (1, 28, 28)
        line += (_(", {h}×{w} grey") if c == 1 else _(", {h}×{w} colour")).format(h=h, w=w)
    return line


def available_models() -> tuple[dict[str, str], dict[str, str]]:
    """(name -> folder, name -> label) of every model a visitor can pick: shipped, then saved
    ("user: NAME"), then trained in this session ("session: NAME")."""
    shipped, saved, trained = shipped_models(), user_models(), session_models()
    user, session = _("user: {name}"), _("session: {name}")
    labels = {**{n: n for n in shipped}, **{n: user.format(name=n) for n in saved},
              **{n: session.format(name=n) for n in trained}}
    return {**shipped, **saved, **trained}, labels


def selection_of(name: str, folder: str) -> Selection:
    """A Selection for a model other than the sidebar's (a page that sets two models side by side).
    Raises CheckpointError for a folder that cannot be loaded."""
    return Selection(name, folder, *load_model(folder))


def picker() -> Selection:
    """The sidebar's model picker and a line on the model; returns the one Selection of this rerun.

    Stops the app with an error when there is no model, or the picked one cannot be loaded.
    """
    folders, labels = available_models()
    if not folders:
        st.error(_("No models found in pretrained/. Train one with `python -m vae.train ... --out pretrained/NAME`."))
        st.stop()
    default = DEFAULT_MODEL if DEFAULT_MODEL in folders else next(iter(folders))
    key = APP_STATE.bind("model", default=default, options=tuple(folders))  # the link's, else the session's
    name = st.selectbox(_("Model"), list(folders), key=key, format_func=labels.get)
    try:
        model, config, metrics = load_model(folders[name])
    except CheckpointError as err:
        st.error(_("Cannot load {name}: {error}").format(name=name, error=error_message(err)))
        st.stop()
    st.caption(describe(config, metrics) + score_line(config, metrics))
    return Selection(name, folders[name], model, config, metrics)


def score_line(config: dict, metrics: dict) -> str:
    """' · test -ELBO 98.1 nats' from metrics.json; a validation loss where there is no test result,
    called -ELBO only when it is one (beta = 1, the ELBO objective)."""
    test = test_metrics(metrics)
    if test:
        if "neg_elbo" not in test:  # a plain autoencoder: no ELBO
            return _(" · test reconstruction {value:.1f} nats").format(value=test["recon"])
        if test.get("protocol") == "binarized":
            return _(" · test -ELBO (binarized) {value:.1f} nats").format(value=test["neg_elbo"])
        return _(" · test -ELBO {value:.1f} nats").format(value=test["neg_elbo"])
    if metrics.get("history"):
        return _(" · validation {loss} {value:.1f} nats").format(loss=loss_name(config),
                                                               value=best_val(metrics)["val_loss"])
    return ""


def test_metrics(metrics: dict) -> dict:
    """The test metrics of metrics.json: the grey-level protocol's, else the binarized one's, else {}."""
    return metrics.get("test") or metrics.get("test_binarized") or {}


def best_val(metrics: dict) -> dict:
    """The history row of the best epoch in a run's metrics (val_loss in nats per image)."""
    return metrics["history"][metrics["train"]["best_epoch"] - 1]


@st.cache_data(show_spinner=False, max_entries=1)
def shipped_configs() -> dict[str, dict]:
    """Name -> config.json of every shipped model."""
    return {name: json.loads((Path(folder) / CONFIG).read_text()) for name, folder in shipped_models().items()}


@st.cache_data(show_spinner=False, max_entries=32)
def _read_metrics(path: str, mtime: float) -> dict:
    return json.loads(Path(path).read_text())


def shipped_metrics() -> dict[str, dict]:
    """Name -> metrics.json of every shipped model that has one; each file read once and again only
    when it changes (keyed by its modification time, so a ``--write`` shows without a restart)."""
    paths = {name: Path(folder) / METRICS for name, folder in shipped_models().items()}
    return {name: _read_metrics(str(p), p.stat().st_mtime) for name, p in paths.items() if p.is_file()}


def loss_name(config: dict) -> str:
    """What a run's loss is: "-ELBO", "-L_k (IWAE, k = 5)", "loss (beta = 4)", or "reconstruction" (an AE)."""
    if config.get("objective") == "iwae":
        return f"-L_k (IWAE, k = {config.get('iwae_k')})"
    if config.get("model") == "ae":
        return _("reconstruction")  # a plain autoencoder: no KL, so no ELBO
    beta = float(config.get("beta", 1.0))
    return "-ELBO" if beta == 1.0 else _("loss (β = {beta:g})").format(beta=beta)


@st.cache_data(show_spinner=False, max_entries=8)
def _test_encodings(folder: str, version: float, dataset: str, image_shape) -> tuple[torch.Tensor, torch.Tensor]:
    with st.spinner(_("Encoding the test images...")):  # inside: only when not cached (as _load's)
        model = load_model(folder)[0]
        images, labels, *_rest = test_images(dataset, image_shape)
        return encode_images(model, images, labels if model.conditional else None)


def test_encodings(sel: Selection) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, logvar) of q(z|x) for every test image at hand (``images.test_images``), float32
    (N, latent_dim) on the CPU, in the same order; a CVAE encodes each with its true label.

    Computed once per model folder and weights (at most 8 models cached); every page that needs the
    test encodings calls this.
    """
    return _test_encodings(sel.folder, weights_mtime(sel.folder), sel.config["dataset"], sel.image_shape)
