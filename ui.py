"""Streamlit helpers shared by app.py and the pages: the model picker and cached model loading.

Imports point one way: app.py and pages/ -> ui -> vae.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch

from vae.checkpoint import CONFIG, CheckpointError, load_checkpoint
from vae.data import CLASS_NAMES, DatasetNotFoundError, load_test_images
from vae.train import best_device, describe_device

PRETRAINED = Path(__file__).parent / "pretrained"
SAMPLES = PRETRAINED / "samples"
MODEL_KEY = "model_name"


@st.cache_data(show_spinner=False)
def shipped_models() -> dict[str, str]:
    """Name -> folder of every model under pretrained/, in name order."""
    return {p.parent.name: str(p.parent) for p in sorted(PRETRAINED.glob(f"*/{CONFIG}"))}


@st.cache_resource(show_spinner="Loading the model...")
def load_model(folder: str):
    """(model, config, metrics) on the best device, loaded once per server process."""
    return load_checkpoint(folder, best_device())


def describe(config: dict) -> str:
    kind = {"vae": "MLP VAE", "conv": "conv VAE", "cvae": "CVAE"}[config["model"]]
    data = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}[config["dataset"]]
    return f"{kind}, {config['latent_dim']}-d latent, {data}"


def sidebar() -> None:
    """The shared sidebar: model picker, what the model is, and the device in use."""
    models = shipped_models()
    with st.sidebar:
        if not models:
            st.error("No models found in pretrained/. Train one with `python -m vae.train ... --out pretrained/NAME`.")
            st.stop()
        names = list(models)
        default = names.index("mnist-vae-2d") if "mnist-vae-2d" in names else 0
        name = st.selectbox("Model", names, index=default, key=MODEL_KEY)
        try:
            _, config, metrics = load_model(models[name])
        except CheckpointError as err:
            st.error(f"Cannot load {name}: {err}")
            st.stop()
        test = metrics.get("test")
        st.caption(describe(config) + (f" · test -ELBO {test['elbo']:.1f} nats" if test else ""))
        st.caption(f"Device: {describe_device(best_device())}")


def current_model():
    """(name, model, config, metrics) for the model picked in the sidebar."""
    models = shipped_models()
    name = st.session_state.get(MODEL_KEY) or next(iter(models))
    return (name, *load_model(models[name]))


def class_names(config: dict) -> list[str]:
    return CLASS_NAMES[config["dataset"]]


@st.cache_resource(show_spinner="Reading the test images...")
def _test_images(dataset: str):
    return load_test_images(dataset, sample=SAMPLES / f"{dataset}-test-sample.safetensors")


def test_images(dataset: str):
    """(images (N, 1, 28, 28), labels, indices, source) from the data root, else the bundled sample.

    Cached once per server process and shared by sessions without copying: treat the tensors as
    read-only. When neither is there, shows why with st.error and stops the page.
    """
    try:
        return _test_images(dataset)
    except DatasetNotFoundError as err:
        st.error(str(err))
        st.stop()


def pick_test_image(config: dict, key: str, container=st):
    """Widgets to choose one test image: a class (or any) and an example number, with a dice button.

    ``key`` keeps several pickers on one page apart. Returns (image float (1, 1, 28, 28) in [0, 1],
    label int, index into the full test split int). Stops the page when no test images exist.
    """
    images, labels, indices, source = test_images(config["dataset"])
    names = class_names(config)
    c1, c2, c3 = container.columns([3, 2, 1], vertical_alignment="bottom")
    cls = c1.selectbox("Class", [None, *range(len(names))], key=f"{key}_class",
                       format_func=lambda c: "any class" if c is None else names[c])
    pool = torch.arange(len(labels)) if cls is None else torch.nonzero(labels == cls).flatten()
    number_key = f"{key}_number"
    if c3.button("🎲", key=f"{key}_dice", help="A random example"):
        st.session_state[number_key] = int(torch.randint(len(pool), ()).item())
    if st.session_state.get(number_key, 0) >= len(pool):
        st.session_state[number_key] = 0
    n = c2.number_input(f"Example (of {len(pool):,})", 0, len(pool) - 1, key=number_key)
    i = int(pool[n])
    return images[i : i + 1], int(labels[i]), int(indices[i])
