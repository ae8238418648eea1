"""Streamlit helpers shared by app.py and the pages: the model picker, cached model loading, and
training from the sidebar (vae.jobs runs the jobs).

Imports point one way: app.py and pages/ -> ui -> vae.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import streamlit as st
import torch
from streamlit.runtime import Runtime
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from vae.checkpoint import CONFIG, CheckpointError, load_checkpoint
from vae.data import CLASS_NAMES, DatasetNotFoundError, load_test_images
from vae.jobs import (NAME_PATTERN, BusyError, Job, JobRegistry, ModelNameError, best_val, format_seconds,
                      save_user_model, zip_folder)
from vae.losses import LIKELIHOODS
from vae.preprocess import EXTENSIONS, ImageError, Preprocessed, preprocess_image
from vae.train import TrainConfig, best_device, describe_device

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
    """The shared sidebar: model picker, what the model is, the device in use, and training."""
    if not shipped_models():
        st.sidebar.error("No models found in pretrained/. "
                         "Train one with `python -m vae.train ... --out pretrained/NAME`.")
        st.stop()
    with st.sidebar:
        _adopt_finished_job()
        shipped, saved, trained = shipped_models(), user_models(), session_models()
        labels = {**{n: n for n in shipped}, **{n: f"user: {n}" for n in saved},
                  **{n: f"session: {n}" for n in trained}}
        folders = {**shipped, **saved, **trained}
        st.session_state[MODEL_KEY] = _picked(folders)
        name = st.selectbox("Model", list(folders), key=MODEL_KEY, format_func=labels.get)
        try:
            _, config, metrics = load_model(folders[name])
        except CheckpointError as err:
            st.error(f"Cannot load {name}: {err}")
            st.stop()
        test = metrics.get("test")
        if test:
            score = f" · test -ELBO {test['elbo']:.1f} nats"
        elif metrics.get("history"):
            score = f" · validation -ELBO {best_val(metrics)['val_loss']:.1f} nats"
        else:
            score = ""
        st.caption(describe(config) + score)
        st.caption(f"Device: {describe_device(best_device())}")
        training_panel()


def _picked(folders: dict[str, str]) -> str:
    """The picked model's name if it is still there, else the default (mnist-vae-2d, else the first)."""
    name = st.session_state.get(MODEL_KEY)
    if name in folders:
        return name
    return "mnist-vae-2d" if "mnist-vae-2d" in folders else next(iter(folders))


def _run_inside_app() -> None:
    """Rerun through app.py when Streamlit ran a page script on its own.

    Streamlit (1.67) starts every server in its old ``pages/``-folder mode when a ``pages/`` folder sits
    beside the main script, and leaves it only when app.py calls ``st.navigation``. Until then, a first
    visitor who opens a page's URL directly (``/sliders``) gets that script run alone: no sidebar, no
    model picker, the files' names as navigation. A page that runs while the flag is still set was run
    that way; turning the flag off and rerunning runs app.py, whose ``st.navigation`` serves the same
    URL (its pages' URL paths are the file names).
    """
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def current_model():
    """(name, model, config, metrics) for the model picked in the sidebar: shipped, saved or trained here.

    Every page calls this first, so it also puts the page back inside app.py's frame when Streamlit ran
    the page alone (see ``_run_inside_app``).
    """
    _run_inside_app()
    folders = model_folders()
    name = _picked(folders)
    return (name, *load_model(folders[name]))


# ---------------------------------------------------------------- models saved from the app or trained here

JOB_KEY = "train_job_id"  # session state: the id of this session's latest training job
SESSION_MODELS_KEY = "session_models"  # session state: name -> folder of the models trained in this session
USER_MODELS_ENV = "VAE_USER_MODELS"


def user_models_dir() -> Path:
    """Where the app saves models: ``$VAE_USER_MODELS``, else user_models/ beside app.py (git-ignored)."""
    return Path(os.environ.get(USER_MODELS_ENV) or Path(__file__).parent / "user_models")


def user_models() -> dict[str, str]:
    """Name -> folder of every model saved in the user models folder, in name order; read on every
    call (other sessions may save), skipping names a shipped model has."""
    shipped = shipped_models()
    return {p.parent.name: str(p.parent) for p in sorted(user_models_dir().glob(f"*/{CONFIG}"))
            if p.parent.name not in shipped and NAME_PATTERN.fullmatch(p.parent.name)}


def session_models() -> dict[str, str]:
    """Name -> folder of the models trained in this browser session (they vanish with it)."""
    return st.session_state.setdefault(SESSION_MODELS_KEY, {})


def model_folders() -> dict[str, str]:
    """Name -> folder of every model this session can pick: shipped, saved, then trained here.

    Names are unique across the server process: a trained model's name holds its run number.
    """
    return {**shipped_models(), **user_models(), **session_models()}


# ---------------------------------------------------------------- training from the sidebar

DATASET_LABELS = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}
MODEL_LABELS = {"vae": "VAE", "conv": "ConvVAE", "cvae": "CVAE"}
HIDDEN = {"vae": [400], "conv": [256], "cvae": [400]}  # the shipped models' widths
BATCH_SIZES = (32, 64, 128, 256, 512)
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


@st.cache_resource
def job_registry() -> JobRegistry:
    """The server's one registry of training jobs; its limit is ``$VAE_MAX_JOBS``, else 1 on a CPU."""
    return JobRegistry()


def session_key() -> str:
    """This browser session's id for the job registry: a random id kept in its session state."""
    return st.session_state.setdefault("_session_key", uuid.uuid4().hex)


def _session_check():
    """A thread-safe callable saying whether this browser session is still connected, or None when
    there is no connected session to watch (as under AppTest); the job's heartbeat still applies."""
    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists() or not Runtime.instance().is_active_session(ctx.session_id):
        return None
    runtime, session_id = Runtime.instance(), ctx.session_id
    return lambda: runtime.is_active_session(session_id)


def _adopt_finished_job() -> None:
    """Once a job of this session has saved its model, the model joins the picker, picked."""
    job = job_registry().job(st.session_state.get(JOB_KEY))
    if job is not None and not job.running and job.folder is not None and job.name not in session_models():
        session_models()[job.name] = str(job.folder)
        st.session_state[MODEL_KEY] = job.name


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")


def training_panel() -> None:
    """The sidebar's "Train a model" expander: the settings and Train button, the live progress
    with a Stop button while a job runs, then the result with a download and a save button."""
    registry = job_registry()
    job = registry.job(st.session_state.get(JOB_KEY))
    running = job is not None and job.running
    with st.expander("Train a model", expanded=job is not None,
                     icon=":material/hourglass_top:" if running else ":material/model_training:"):
        if running:
            job.touch()
            live_progress(job.id)
        elif job is not None:
            _finished(job)
        _train_form(running)


SPLIT_COLORS = (("train", "#1f77b4"), ("val", "#ff7f0e"))  # validation in orange


def history_svg(history: list[dict], width: int = 210) -> str:
    """The ELBO's parts per epoch as a small SVG: reconstruction above, KL below (nats per image),
    train in blue and validation in orange, each panel scaled to its own range.

    history: rows as in TrainResult.history (epoch, train_recon, val_recon, train_kl, val_kl, ...).
    A plain SVG rather than a Plotly chart: redrawn every second during training, it costs the
    browser and the server next to nothing (a Plotly redraw slowed training epochs on a 2-core CPU).
    """
    left, right, panel, top, gap = 40, 6, 64, 16, 22
    n, w = len(history), width - left - right
    height = top + 2 * panel + gap + 34
    x = (lambda e: left + w / 2) if n == 1 else (lambda e: left + (e - 1) / (n - 1) * w)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11" fill="#555">']
    for i, (part, title) in enumerate((("recon", "reconstruction (nats)"), ("kl", "KL (nats)"))):
        y0 = top + i * (panel + gap)
        values = [h[f"{split}_{part}"] for split, _ in SPLIT_COLORS for h in history]
        lo, hi = min(values), max(values)
        pad = max(hi - lo, 1e-3) * 0.1  # keep the dots inside the frame
        y = lambda v: y0 + (hi + pad - v) / (hi - lo + 2 * pad) * panel  # noqa: E731
        parts += [f'<text x="{left}" y="{y0 - 4}">{title}</text>',
                  f'<rect x="{left}" y="{y0}" width="{w}" height="{panel}" fill="none" stroke="#ddd"/>',
                  f'<text x="{left - 4}" y="{y(hi) + 4:.1f}" text-anchor="end">{hi:.1f}</text>']
        if hi - lo > 1e-3:
            parts.append(f'<text x="{left - 4}" y="{y(lo) + 4:.1f}" text-anchor="end">{lo:.1f}</text>')
        for split, color in SPLIT_COLORS:
            points = [(x(h["epoch"]), y(h[f"{split}_{part}"])) for h in history]
            parts.append(f'<polyline points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in points)}" fill="none" '
                         f'stroke="{color}" stroke-width="1.5"/>')
            if n <= 40:
                parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{color}"/>' for a, b in points]
    axis = top + 2 * panel + gap + 12
    if n == 1:
        parts.append(f'<text x="{left + w / 2}" y="{axis}" text-anchor="middle">epoch {history[0]["epoch"]}</text>')
    else:
        parts += [f'<text x="{left}" y="{axis}" text-anchor="middle">{history[0]["epoch"]}</text>',
                  f'<text x="{left + w}" y="{axis}" text-anchor="end">{history[-1]["epoch"]}</text>',
                  f'<text x="{left + w / 2}" y="{axis}" text-anchor="middle">epoch</text>']
    for (name, (_, color)), at in zip((("train", SPLIT_COLORS[0]), ("validation", SPLIT_COLORS[1])), (left, left + 64)):
        parts += [f'<line x1="{at}" y1="{axis + 14}" x2="{at + 16}" y2="{axis + 14}" stroke="{color}" '
                  'stroke-width="2"/>',
                  f'<text x="{at + 20}" y="{axis + 18}">{name}</text>']
    return "".join(parts) + "</svg>"


def history_chart(history: list[dict]) -> None:
    """history_svg in the current container, or a line saying when it will appear."""
    if not history:
        st.caption("The ELBO's parts appear here after the first epoch.")
        return
    st.image(history_svg(history), caption=f"ELBO parts after epoch {history[-1]['epoch']}")


@st.fragment(run_every=1)
def live_progress(job_id: str) -> None:
    """A running job's progress bar, ELBO chart and Stop button, redrawn every second; when the job
    has ended, reruns the whole app so that its model joins the picker."""
    job = job_registry().job(job_id)
    if job is None:
        return
    job.touch()
    if not job.running:
        st.rerun()
    st.caption(f"Training **{job.name}** on {job.device}")
    p = job.progress
    if p is None:
        st.progress(0.0, text=f"Loading {DATASET_LABELS[job.config.dataset]}...")
    else:
        st.progress(job.fraction(), text=f"Epoch {p.epoch}/{p.epochs} · step {p.step}/{p.steps_per_epoch} · "
                                         f"{format_seconds(job.seconds_left())} left")
    history_chart(list(job.history))
    if job.stopping:
        st.caption("Stopping after the current step...")
    elif st.button("Stop", key="train_stop", icon=":material/stop:",
                   help="End the run after the current step and keep the best weights so far."):
        job.stop()
        st.caption("Stopping after the current step...")


def _finished(job: Job) -> None:
    """How the session's last job ended: its error, or its model with a download and a save button."""
    if job.state == "failed":
        st.error(job.error)
        return
    train = job.metrics["train"]
    best, p = best_val(job.metrics), job.progress
    summary = (f"{train['epochs']} epoch{'s' if train['epochs'] > 1 else ''} in {format_seconds(train['seconds'])} "
               f"({train['seconds_per_epoch']:.2f} s each) on {train['device']}; best validation -ELBO "
               f"{best['val_loss']:.1f} nats, epoch {train['best_epoch']}. Now picked in the model picker.")
    if job.state == "stopped":
        note = job.note or "stopped"
        st.info(f"{note[0].upper()}{note[1:]} in epoch {p.epoch}, step {p.step} of {p.steps_per_epoch}, "
                f"keeping the best weights so far: {summary}")
    else:
        st.success(f"Trained **{job.name}**: {summary}")
    history_chart(job.history)
    stem = _file_stem(job.name)
    st.download_button(f"Download {stem}.zip", lambda: zip_folder(job.folder, stem), f"{stem}.zip",
                       "application/zip", key=f"train_download_{job.id}", on_click="ignore",
                       icon=":material/download:", help="model.safetensors, config.json and metrics.json")
    saved = st.session_state.pop("train_saved", None)
    if saved:
        st.success(f"Saved as *user: {saved}* in {user_models_dir()}.")
    with st.form(f"train_save_{job.id}", border=False):
        new = st.text_input("Save as", stem, max_chars=64, key=f"train_save_name_{job.id}",
                            help=f"Saves the folder to {user_models_dir()}, where every session finds it, "
                            "also after a restart. Letters, digits, - and _; a shipped model's or a saved "
                            "model's name is refused, so nothing is overwritten.")
        submitted = st.form_submit_button("Save to user models", icon=":material/save:")
    if submitted:
        try:
            save_user_model(job.folder, new.strip(), user_models_dir(), reserved=(PRETRAINED,))
        except ModelNameError as err:
            st.error(str(err))
        except OSError as err:
            st.error(f"Cannot save to {user_models_dir()}: {err.strerror or err}.")
        else:
            st.session_state["train_saved"] = new.strip()
            st.rerun()


def _start_job() -> None:
    """The Train button's callback (it runs before the rerun, so the rerun already shows the job):
    starts a job from the form's values, or leaves the busy message for the form to show."""
    state = st.session_state
    config = TrainConfig(state.train_dataset, state.train_model, int(state.train_latent_dim),
                         HIDDEN[state.train_model], int(state.train_epochs), int(state.train_batch_size),
                         float(state.train_lr), float(state.train_beta), state.train_likelihood)
    try:
        job = job_registry().start(session_key(), config, alive=_session_check())
    except BusyError as err:
        state["train_busy"] = str(err)
    else:
        state[JOB_KEY] = job.id


def _train_form(running: bool) -> None:
    """The training settings and the Train button, which starts a job through the registry."""
    with st.form("train_form", border=False):
        st.radio("Dataset", list(DATASET_LABELS), format_func=DATASET_LABELS.get, horizontal=True, key="train_dataset")
        st.radio("Model type", list(MODEL_LABELS), format_func=MODEL_LABELS.get, horizontal=True, key="train_model",
                 help="VAE: MLP encoder and decoder (784-400-latent); ConvVAE: convolutional; CVAE: the MLP VAE "
                 "told the class, for the CVAE page.")
        c1, c2 = st.columns(2)
        c1.number_input("Latent dim.", 1, 64, 2, key="train_latent_dim")
        c2.number_input("Epochs", 1, 500, 10, key="train_epochs")
        c1.selectbox("Batch size", BATCH_SIZES, index=BATCH_SIZES.index(128), key="train_batch_size")
        c2.selectbox("Learning rate", LEARNING_RATES, index=LEARNING_RATES.index(1e-3), format_func=lambda v: f"{v:g}",
                     key="train_lr")
        c1.number_input("Beta", 0.0, 100.0, 1.0, 0.5, key="train_beta",
                        help="Weight of the KL term; 1 is the plain ELBO, above 1 a beta-VAE.")
        c2.radio("Likelihood", LIKELIHOODS, key="train_likelihood",
                 help="bernoulli: binary cross-entropy; gaussian: squared error, sigma 0.1.")
        st.form_submit_button(
            "Train", type="primary", icon=":material/play_arrow:", width="stretch", disabled=running,
            on_click=_start_job,
            help="This session is training; stop it or let it finish first." if running else
            "Train in the background; the app stays usable. 10% of the training split is held out for validation; "
            f"a run stops by itself after {job_registry().max_seconds / 60:g} minutes, keeping its best weights.",
        )
    busy = st.session_state.pop("train_busy", None)
    if busy:
        st.warning(busy, icon=":material/hourglass_top:")


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
    if c3.button("", icon=":material/casino:", key=f"{key}_dice", help="A random example"):
        st.session_state[number_key] = int(torch.randint(len(pool), ()).item())
    if st.session_state.get(number_key, 0) >= len(pool):
        st.session_state[number_key] = 0
    n = c2.number_input(f"Example (of {len(pool):,})", 0, len(pool) - 1, key=number_key)
    i = int(pool[n])
    return images[i : i + 1], int(labels[i]), int(indices[i])


# ---------------------------------------------------------------- uploaded images


def max_upload_bytes() -> int:
    """Streamlit's ``server.maxUploadSize`` (set in .streamlit/config.toml), in bytes."""
    return int(st.get_option("server.maxUploadSize")) * 2**20


@st.cache_data(show_spinner=False, max_entries=32)
def _preprocess(data: bytes, max_bytes: int, style: str) -> Preprocessed:
    return preprocess_image(data, max_bytes=max_bytes, style=style)


def preprocess(data: bytes, style: str = "mnist") -> Preprocessed:
    """``vae.preprocess.preprocess_image`` with the upload size limit, cached in memory (never on
    disk), so a rerun for another widget does not decode the image again. Raises ImageError."""
    return _preprocess(data, max_upload_bytes(), style)


def preprocess_style(config: dict) -> str:
    """How an image is framed for this model: "fashion" for Fashion-MNIST models, else "mnist"."""
    return "fashion" if config["dataset"] == "fashion" else "mnist"


def upload_preprocessed(key: str, container=st, label: str = "Upload an image", style: str = "mnist"):
    """A file uploader whose file goes through ``vae.preprocess.preprocess_image``.

    Returns the Preprocessed (its ``image`` float (1, 1, 28, 28) in [0, 1], and the steps), or None
    when no file is chosen or the file is unusable; then its reason shows as one st.error sentence.
    ``style``: "mnist", or "fashion" for a Fashion-MNIST model (see ``preprocess_style``).
    """
    file = container.file_uploader(
        label, type=list(EXTENSIONS), key=key,
        help=f"PNG, JPEG, BMP, GIF, WebP or TIFF, up to {max_upload_bytes() // 2**20} MB (the browser refuses "
        "larger files); a photo of one digit on paper works. Read in memory only, never saved.",
    )
    if file is None:
        return None
    try:
        return preprocess(file.getvalue(), style)
    except ImageError as err:
        container.error(str(err))
        return None


def upload_image(key: str, container=st, label: str = "Upload an image", style: str = "mnist"):
    """A file uploader that returns the model's input: float (1, 1, 28, 28) in [0, 1], or None.

    None when no file is chosen, or when the file is unusable (its reason then shows with st.error).
    """
    done = upload_preprocessed(key, container, label, style)
    return None if done is None else done.image
