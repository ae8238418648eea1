"""The sidebar's "Train a model" panel: settings, a background job (vae.jobs), live progress, the result."""

from __future__ import annotations

import math
import re
import uuid
from pathlib import Path

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from vae.checkpoint import ModelNameError, save_user_model, zip_folder
from vae.data import DATASET_NAMES, data_root, has_split
from vae.errors import Message, UserError, format_size
from vae.folders import DEFAULT_LIMITS, FolderDatasetError, Limits, card_markdown, default_cache_dir, load_folder
from vae.jobs import BusyError, Job, JobRegistry
from vae.losses import LIKELIHOODS
from vae.models import MODELS
from vae.latent import ACTIVE_KL_THRESHOLD
from vae.train import TrainConfig, active_units_per_epoch, collapse_warning, kl_per_dim_history

from . import PRETRAINED, policy
from .i18n import N_, _, error_message, language, ngettext, say
from .models import APP_STATE, best_val, dataset_words, loss_name, model_kind, session_models, user_models_dir

JOB_KEY = "train_job_id"  # session state: the id of this session's latest training job
YOURS = "yours"  # the Dataset choice of a zip of your own images
ZIP_KEY = "train_zip"  # the zip uploader's key
IMPORTED = "train_imported"  # session state: {"id": (file id, size, channels), "card": dict} or {"id", "error": exception}
BATCH_SIZES = (32, 64, 128, 256, 512)
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
PUBLIC_NOT_SAVED = N_("This is a public server: models are not saved here. Download the zip to keep yours.")
LIKELIHOOD_WORDS = {"bernoulli": N_("bernoulli"), "gaussian": N_("gaussian")}  # the radio's stored values, shown


def format_seconds(seconds: float | None) -> str:
    """'42 s', '3 min 05 s', '1 h 02 min'; '?' for None or a non-finite value."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@st.cache_resource
def job_registry() -> JobRegistry:
    """The server's one registry of training jobs, bounded by ``ui.policy()`` (``vae.policy.Policy``):
    ``$VAE_MAX_JOBS`` at once, else 1 on a CPU; a session's models deleted once it has been gone
    ``$VAE_SESSION_GRACE_S`` seconds (default 150, past Streamlit's 120 s for a disconnected session to
    come back); in public mode one job at a time, 20 epochs and 10 minutes per job, the newest 3
    models of a session and 24 in all."""
    return JobRegistry(policy())


def save_to_user_models(folder: str | Path, name: str) -> Path:
    """Copy a session's model into the user models folder, where every session finds it; returns the new
    folder. The server's check behind the Save button: raises PermissionError in public mode (there is
    no button then), ModelNameError for a name that is taken or not 1 to 64 letters, digits, - and _,
    OSError when the folder cannot be written."""
    if policy().public:
        raise PermissionError(PUBLIC_NOT_SAVED)
    return save_user_model(folder, name, user_models_dir(), reserved=(PRETRAINED,))


def session_key() -> str:
    """This browser session's id for the job registry: a random id kept in its session state."""
    return st.session_state.setdefault("_session_key", uuid.uuid4().hex)


def _session_check():
    """A thread-safe callable saying whether this browser session is still connected, or None when
    there is no connected session to watch (as under AppTest); the job's heartbeat still applies.

    The one use of Streamlit's runtime internals in the app: Streamlit (1.67) has no public way to
    ask whether a session is still connected, and without it a job whose tab was closed would run
    until its heartbeat times out (the heartbeat must outlast a background tab's throttled timers)."""
    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists() or not Runtime.instance().is_active_session(ctx.session_id):
        return None
    runtime, session_id = Runtime.instance(), ctx.session_id
    return lambda: runtime.is_active_session(session_id)


def adopt_finished_job() -> None:
    """Once a job of this session has saved its model, the model joins the picker, picked."""
    job = job_registry().job(st.session_state.get(JOB_KEY))
    if job is not None and not job.running and job.folder is not None and job.name not in session_models():
        session_models()[job.name] = str(job.folder)
        APP_STATE.set("model", job.name)


def words(text: str | None) -> str | None:
    """A text ``vae`` hands the panel (a job's error or stop note, a warning) in this run's language: a
    ``vae.errors.Message`` translated, a string marked with ``N_`` looked up, any other as it is."""
    if not text:
        return text
    return say(text) if isinstance(text, Message) else _(text)


def said(err: Exception) -> str:
    """What an exception tells the visitor, in this run's language (``ui.i18n.error_message`` for
    ``vae``'s, the panel's own marked messages looked up)."""
    return error_message(err) if isinstance(err, UserError) else words(str(err))


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")


def panel() -> None:
    """The sidebar's "Train a model" expander: the settings and Train button, the live progress
    with a Stop button while a job runs, then the result with a download and a save button."""
    registry = job_registry()
    job = registry.job(st.session_state.get(JOB_KEY))
    running = job is not None and job.running
    with st.expander(_("Train a model"), expanded=job is not None,
                     icon=":material/hourglass_top:" if running else ":material/model_training:"):
        if running:
            job.touch()
            live_progress(job.id)
        elif job is not None:
            _finished(job)
        _train_form(running)


def history_chart(history: list[dict], config: TrainConfig, static: bool = False) -> None:
    """The run's history in the current container, or a line saying when it will appear: a warning
    when the posterior has collapsed (``vae.train.collapse_warning``), the chart of the loss's parts,
    then the per-dimension KL (``kl_strip``).

    static: pictures without hover or zoom, for the charts redrawn every second while a job runs
    (cheaper for the browser, which may share the CPU with the training)."""
    if not history:
        st.caption(_("The loss's parts appear here after the first epoch."))
        return
    warning = collapse_warning(history, beta=config.beta)
    if warning:
        st.warning(words(warning), icon=":material/warning:")
    from .charts import history_figure  # plotly and altair: not imported for the first page, which has no history

    st.space("small")  # room for the chart's full-screen button, which sits above it, clear of the progress bar
    st.plotly_chart(history_figure(history, loss_name(vars(config))), config={"staticPlot": static,
                                                                            "displayModeBar": False})
    kl_strip(history, config, static)


def kl_strip(history: list[dict], config: TrainConfig, static: bool = False) -> None:
    """The validation KL of each latent dimension per epoch (a heat map, ``ui.charts.kl_heatmap``) under
    the number of active units per epoch, and a line with the last epoch's count. Nothing for a plain
    autoencoder (no KL) or a history from before the per-dimension KL was kept (no "val_kl_per_dim")."""
    kl = kl_per_dim_history(history)
    if kl is None:
        return
    from .charts import kl_heatmap

    active = active_units_per_epoch(history)
    st.plotly_chart(kl_heatmap([h["epoch"] for h in history], kl, active, ACTIVE_KL_THRESHOLD),
                    config={"staticPlot": static, "displayModeBar": False})
    st.caption(_("Active units after epoch {epoch}: **{active} of {d}**, dimensions with a mean KL of at least "
                 "{threshold:g} nats on the validation split ({share:.0%} of the training images; Burda et al., 2016, "
                 "Sec. 5.2).").format(epoch=history[-1]["epoch"], active=active[-1], d=len(kl[-1]),
                                      threshold=ACTIVE_KL_THRESHOLD, share=config.val_fraction))


@st.fragment(run_every=1)
def live_progress(job_id: str) -> None:
    """A running job's progress bar, history (``history_chart``) and Stop button, redrawn every second; when the job
    has ended, reruns the whole app so that its model joins the picker."""
    job = job_registry().job(job_id)
    if job is None:
        return
    job.touch()
    if not job.running:
        st.rerun()
    st.caption(_("Training **{name}** on {device}").format(name=job.name, device=say(job.device)))
    p = job.progress
    if p is None:
        st.progress(0.0, text=_("Loading {dataset}...").format(
            dataset=dataset_words(job.config.dataset, (imported_card() or {}))))
    else:
        left, where = job.seconds_left(), dict(epoch=p.epoch, epochs=p.epochs, step=p.step, steps=p.steps_per_epoch)
        st.progress(job.fraction(), text=_("Epoch {epoch}/{epochs} · step {step}/{steps} · estimating the time left")
                    .format(**where) if left is None else
                    _("Epoch {epoch}/{epochs} · step {step}/{steps} · {left} left").format(**where, left=format_seconds(left)))
    history_chart(list(job.history), job.config, static=True)
    if job.stopping:
        st.caption(_("Stopping after the current step..."))
    elif st.button(_("Stop"), key="train_stop", icon=":material/stop:",
                   help=_("End the run after the current step and keep the best weights so far.")):
        job.stop(N_("stopped from the sidebar"))  # the job's note, said by ``words`` in the visitor's language
        st.caption(_("Stopping after the current step..."))


def _finished(job: Job) -> None:
    """How the session's last job ended: its error, or its model with a download and a save button."""
    if job.state in ("failed", "killed"):
        st.error(words(job.error))
        return
    train = job.metrics["train"]
    best, p = best_val(job.metrics), job.progress
    epochs, partial = train["epochs"], p is not None and p.step < p.steps_per_epoch
    if partial:
        done = ngettext("{full} full epoch and {step} of {steps} steps of epoch {epoch}",
                        "{full} full epochs and {step} of {steps} steps of epoch {epoch}", epochs - 1).format(
            full=epochs - 1, step=p.step, steps=p.steps_per_epoch, epoch=epochs)
    else:
        done = ngettext("{n} epoch", "{n} epochs", epochs).format(n=epochs)
    best_epoch = (_("epoch {epoch} (the partial one)") if partial and train["best_epoch"] == epochs
                  else _("epoch {epoch}")).format(epoch=train["best_epoch"])
    summary = _("{done} in {time} on {device}; best validation {loss} {value:.1f} nats, {best}. Now picked in the "
                "model picker.").format(done=done, time=format_seconds(train["seconds"]), device=say(train["device"]),
                                        loss=loss_name(vars(job.config)), value=best["val_loss"], best=best_epoch)
    if job.state == "stopped":
        note = words(job.note) or _("stopped")
        if language() == "en":  # the note is the start of an English sentence here
            note = f"{note[0].upper()}{note[1:]}"
        st.info(_("{note} in epoch {epoch}, step {step} of {steps}, keeping the best weights so far: {summary}").format(
            note=note, epoch=p.epoch, step=p.step, steps=p.steps_per_epoch, summary=summary))
    else:
        st.success(_("Trained **{name}**: {summary}").format(name=job.name, summary=summary))
    history_chart(job.history, job.config)
    stem = _file_stem(job.name)
    st.download_button(_("Download {file}").format(file=f"{stem}.zip"), lambda: zip_folder(job.folder, stem),
                       f"{stem}.zip", "application/zip", key=f"train_download_{job.id}", on_click="ignore",
                       icon=":material/download:", help=_("model.safetensors, config.json and metrics.json"))
    if policy().public:
        st.caption(_("A public server keeps no visitor's model for others: download the zip to keep this one. It is "
                     "deleted when you leave, and so is any beyond your newest {n}.").format(n=policy().keep_per_session))
        return
    saved = st.session_state.pop("train_saved", None)
    if saved:
        st.success(_("Saved as *user: {name}* in {folder}.").format(name=saved, folder=user_models_dir()))
    with st.form(f"train_save_{job.id}", border=False):
        new = st.text_input(_("Save as"), stem, max_chars=64, key=f"train_save_name_{job.id}",
                            help=_("Saves the folder to {folder}, where every session finds it, also after a restart. "
                                   "Letters, digits, - and _; a shipped model's or a saved model's name is refused, so "
                                   "nothing is overwritten.").format(folder=user_models_dir()))
        submitted = st.form_submit_button(_("Save to user models"), icon=":material/save:")
    if submitted:
        try:
            save_to_user_models(job.folder, new.strip())
        except (ModelNameError, PermissionError) as err:
            st.error(said(err))
        except OSError as err:
            st.error(_("Cannot save to {folder}: {error}.").format(folder=user_models_dir(), error=err.strerror or err))
        else:
            st.session_state["train_saved"] = new.strip()
            st.rerun()


def _start_job() -> None:
    """The Train button's callback (it runs before the rerun, so the rerun already shows the job):
    starts a job from the form's values, or leaves the busy message for the form to show."""
    state = st.session_state
    card = imported_card() if state.train_dataset == YOURS else None
    try:  # ValueError: beyond the server's bounds (TrainConfig's, the registry's), whatever the widgets said
        data = {"dataset": state.train_dataset}
        if state.train_dataset == YOURS:
            if card is None:
                raise ValueError(N_("Upload a zip of your images first."))
            if MODELS[state.train_model].cls.conditional and (not card["labelled"] or len(card["classes"]) < 2):
                raise UserError(N_("A {model} needs labels: put the images in two or more subfolders, one per class, "
                                   "or pick an unconditional model."), model=model_kind(state.train_model))
            data = {"dataset": card["cache_file"], "n_classes": len(card["classes"]),
                    "image_shape": [card["channels"], card["image_size"], card["image_size"]]}
        config = TrainConfig(
            **data, model=state.train_model, latent_dim=int(state.train_latent_dim),
            hidden=list(MODELS[state.train_model].default_hidden), epochs=int(state.train_epochs),
            batch_size=int(state.train_batch_size), lr=float(state.train_lr),
            beta=1.0 if state.train_model == "ae" else float(state.train_beta),  # an AE has no KL to weigh
            likelihood=state.train_likelihood,
        )
        job = job_registry().start(session_key(), config, alive=_session_check(), card=card)
    except (BusyError, ValueError, UserError) as err:
        state["train_busy"] = said(err)  # in this run's language: the form shows it in this same run
    else:
        state[JOB_KEY] = job.id


def missing_data() -> str | None:
    """What the panel says when a dataset's training images are not on this machine, in a visitor's
    words (``vae.data.has_split``); None when both are there."""
    missing = [DATASET_NAMES[n] for n in DATASET_NAMES if not has_split(n, "train")]
    if not missing:
        return None
    which = _(" and ").join(missing)
    return _("Training needs the {datasets} training images, which are not on this machine (looked in {folder}). "
             "The app's pages work from the shipped models and a bundled sample of test images; to train, put the "
             "datasets there (`python -m vae.data` downloads them) or set VAE_DATA_DIR to where they are, then "
             "restart the app.").format(datasets=which, folder=data_root().resolve())


def upload_limits() -> Limits:
    """What an uploaded zip may hold (``vae.folders.Limits``): the policy's image count (with room for
    folders and hidden files) refused before a byte is decompressed; a public server's zip also at most
    1 GiB uncompressed."""
    p, d = policy(), DEFAULT_LIMITS
    n = p.upload_max_images
    return Limits(max_files=d.max_files if n is None else 2 * n + 100,
                  max_file_bytes=d.max_file_bytes, max_total_bytes=2**30 if p.public else d.max_total_bytes,
                  max_pixels=d.max_pixels)


def upload_cache_dir() -> Path:
    """Where an upload's decoded images are kept: on a public server, this session's own folder beside
    its models (``JobRegistry.watch``: deleted with them once the visitor has left); elsewhere the cache
    of ``python -m vae.train --dataset`` (``vae.folders.default_cache_dir``), so that a saved model finds
    its images after a restart and a second upload of the same zip decodes nothing."""
    if policy().public:
        return job_registry().watch(session_key(), _session_check()) / "datasets"
    return default_cache_dir()


def imported_card() -> dict | None:
    """The data card of this session's imported zip, or None."""
    done = st.session_state.get(IMPORTED)
    return None if done is None else done.get("card")


def _import(file, size: int | None, channels: int | None) -> dict:
    """Decode an uploaded zip (a progress bar while it decodes): {"card": its data card} or {"error": the
    FolderDatasetError, said by ``upload_error`` in the language of the run that shows it}."""
    bar = st.progress(0.0, text=_("Reading {file}...").format(file=file.name))
    shown, decoding = [-1], _("Decoding {done:,} of {total:,} images")  # translated here: progress may run elsewhere

    def progress(done: int, total: int) -> None:
        pct = 100 * done // max(total, 1)
        if pct != shown[0]:  # at most 101 updates, not one per image
            shown[0] = pct
            bar.progress(pct / 100, text=decoding.format(done=done, total=total))

    limit, most = policy().upload_max_images, policy().upload_max_mib * 2**20
    try:
        if file.size > most:  # the browser refuses it first; this holds whatever reaches the server
            raise FolderDatasetError("zip_too_large", N_("it is {size}, over the {limit} this server takes: "
                                                         "upload a smaller zip."),
                                     size=format_size(file.size), limit=format_size(most))
        ds = load_folder(file.getvalue(), size, channels, upload_cache_dir(), upload_limits(), progress=progress,
                         name=file.name)
        if limit is not None and ds.card["n_images"] > limit:
            raise FolderDatasetError("too_many_images", N_("it holds {n:,} images, more than the {limit:,} this server "
                                                           "trains on: upload fewer."), n=ds.card["n_images"], limit=limit)
    except FolderDatasetError as err:
        return {"error": err}
    finally:
        bar.empty()
    return {"card": ds.card}


def upload_error(name: str, err: Exception) -> str:
    """The one line on a zip that cannot be a dataset: '**photos.zip**: It is not a zip file: ...'."""
    why = error_message(err)
    if language() == "en":  # the reason starts the sentence after the colon
        why = why[:1].upper() + why[1:]
    return _("**{name}**: {error}").format(name=name, error=why)


def your_images() -> dict | None:
    """The zip uploader, the image size and channels, the import and a line on what it holds, with the
    data card in an expander. Returns the card, or None (no zip, or a zip that cannot be a dataset:
    then its reason in one st.error line)."""
    p = policy()
    file = st.file_uploader(
        _("A zip of your images (up to {limit})").format(limit=format_size(p.upload_max_mib * 2**20)), type=["zip"],
        key=ZIP_KEY, max_upload_size=p.upload_max_mib,
        help=_("{first} {second}").format(  # two sentences in a row
            first=_("One subfolder per class (its name is the class's name); images directly in the zip's top folder "
                    "make an unlabelled dataset. PNG, JPEG, BMP, GIF, WebP, TIFF; each is centre-cropped to a square "
                    "and resized, transparency on black."),
            second=_("Read in memory, nothing extracted; at most {n:,} images, kept for this session only.").format(
                n=p.upload_max_images) if p.upload_max_images else _("Read in memory, nothing extracted.")))
    c1, c2 = st.columns(2)
    # "auto", not None: a selectbox showing None offers to clear it, and its narrow box cut the word off
    auto = _("auto")
    size = c1.selectbox(_("Image size"), ["auto", *p.upload_sizes], key="train_image_size",
                        format_func=lambda v: auto if v == "auto" else f"{v} px",
                        help=_("auto: 28 px for grey images of at most 28 px, else 32."))
    channels = c2.selectbox(_("Channels"), ["auto", 1, 3], key="train_channels",
                            format_func={"auto": auto, 1: _("grey"), 3: _("colour")}.get,
                            help=_("auto: grey when every image is grey, else colour."))
    size, channels = (None if v == "auto" else v for v in (size, channels))
    if file is None:
        return None
    done = st.session_state.get(IMPORTED)
    if done is None or done["id"] != (file.file_id, size, channels):
        done = {"id": (file.file_id, size, channels), **_import(file, size, channels)}
        st.session_state[IMPORTED] = done
    if "error" in done:
        st.error(upload_error(file.name, done["error"]))
        return None
    card = done["card"]
    look = dict(name=card["name"], n=card["n_images"], size=card["image_size"],
                colour=_("grey") if card["channels"] == 1 else _("colour"),
                skipped=_(", {n:,} files skipped").format(n=card["n_skipped"]) if card["n_skipped"] else "")
    st.caption(_("**{name}**: {n:,} images, {classes} classes, {size}×{size} {colour}{skipped}.").format(
        **look, classes=len(card["classes"])) if card["labelled"] else
        _("**{name}**: {n:,} images, unlabelled, {size}×{size} {colour}{skipped}.").format(**look))
    with st.expander(_("Data card")):
        st.markdown(card_markdown(card, _).split("\n", 2)[2])  # without its title: the line above names it
    return card


def _train_help(bounds) -> str:
    """The Train button's help while no job runs: what a run does, and a public server's one slot."""
    train = _("Train in the background; the app stays usable. 10% of the training split is held out for validation; "
              "a run stops by itself after {minutes:g} minutes, keeping its best weights.").format(
        minutes=bounds.max_seconds / 60)
    if not bounds.public:
        return train
    return _("{first} {second}").format(first=train, second=_("This public server trains one model at a time, for everyone."))


def _train_form(running: bool) -> None:
    """The training settings and the Train button, which starts a job through the registry."""
    offline = missing_data()
    if offline:
        st.info(offline, icon=":material/cloud_off:")
    usable = [n for n in DATASET_NAMES if has_split(n, "train")]
    yours = _("Your images")
    dataset = st.radio(_("Dataset"), [*usable, YOURS], horizontal=True, key="train_dataset",
                       format_func=lambda n: yours if n == YOURS else DATASET_NAMES[n])
    if dataset == YOURS and your_images() is None:
        return
    # The options' words are looked up now, not in format_func: Streamlit's AppTest calls a widget's
    # format_func again after the run, outside it, where ``_`` is English.
    kinds, likelihoods = {k: model_kind(k) for k in MODELS}, {v: _(LIKELIHOOD_WORDS.get(v, v)) for v in LIKELIHOODS}
    with st.form("train_form", border=False):
        st.radio(_("Model type"), list(MODELS), format_func=kinds.get, horizontal=True, key="train_model",
                 help=_("VAE: MLP encoder and decoder (784-400-latent); ConvVAE: convolutional; CVAE: the MLP VAE told "
                        "the class, for the CVAE page; class-prior VAE: the MLP VAE with a learned prior mean per class; "
                        "AE: a plain autoencoder (no KL, not generative), for the AE vs VAE page."))
        c1, c2 = st.columns(2)
        c1.number_input(_("Latent dim."), 1, 64, 2, key="train_latent_dim")
        bounds = job_registry().policy
        c2.number_input(_("Epochs"), 1, bounds.max_epochs, min(10, bounds.max_epochs), key="train_epochs",
                        help=_("At most {n} on this server.").format(n=bounds.max_epochs) if bounds.public else None)
        c1.selectbox(_("Batch size"), BATCH_SIZES, index=BATCH_SIZES.index(128), key="train_batch_size")
        c2.selectbox(_("Learning rate"), LEARNING_RATES, index=LEARNING_RATES.index(1e-3), format_func=lambda v: f"{v:g}",
                     key="train_lr")
        c1.number_input(_("Beta"), 0.0, 100.0, 1.0, 0.5, key="train_beta",
                        help=_("Weight of the KL term; 1 is the plain ELBO, above 1 a beta-VAE. An AE has no KL term "
                               "and ignores it."))
        c2.radio(_("Likelihood"), LIKELIHOODS, key="train_likelihood",
                 format_func=likelihoods.get,
                 help=_("bernoulli: binary cross-entropy; gaussian: squared error, sigma 0.1."))
        st.form_submit_button(
            _("Train"), type="primary", icon=":material/play_arrow:", width="stretch", disabled=running,
            on_click=_start_job,
            help=_("This session is training; stop it or let it finish first.") if running else _train_help(bounds),
        )
    busy = st.session_state.pop("train_busy", None)
    if busy:
        st.warning(busy, icon=":material/hourglass_top:")
