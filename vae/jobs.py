"""Training jobs in background threads: at most one per browser session, a global limit, self-stopping.

The app's Train button calls ``JobRegistry.start``. A job runs ``vae.train.train``, the function the
command line uses, in a daemon thread; it records its progress for the app to poll, saves its result
as a checkpoint folder (``model.safetensors`` + ``config.json`` + ``metrics.json``), and stops itself,
keeping the best weights so far, when its session is gone (no heartbeat for a while, or the session
check says so) or when its time cap passes, so no thread runs forever.

Also here: the zip of a model folder, built in memory, and saving a model to the user models folder
(never over a shipped model). No Streamlit here: the app passes in what it knows about sessions.
"""

from __future__ import annotations

import atexit
import dataclasses
import gc
import io
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .checkpoint import CONFIG, METRICS, WEIGHTS, save_checkpoint
from .data import DatasetNotFoundError
from .train import Progress, TrainConfig, TrainingDiverged, TrainResult, best_device, describe_device, train

MAX_JOBS_ENV = "VAE_MAX_JOBS"  # global limit on concurrent training jobs
STATES = ("running", "done", "stopped", "failed")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_log = logging.getLogger(__name__)


class BusyError(RuntimeError):
    """No training slot is free, or the session already has a running job; the message says which."""


class ModelNameError(ValueError):
    """A name for a saved model is malformed or already taken; the message says which."""


def default_max_jobs(device: torch.device | str | None = None) -> int:
    """The global limit on concurrent jobs: ``$VAE_MAX_JOBS`` if set, else 1 on a CPU, 2 on a GPU.

    Raises ValueError when ``$VAE_MAX_JOBS`` is not a positive integer.
    """
    value = os.environ.get(MAX_JOBS_ENV)
    if value:
        if not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"{MAX_JOBS_ENV} must be a positive integer, got {value!r}")
        return int(value)
    device = torch.device(device) if device is not None else best_device()
    return 2 if device.type == "cuda" else 1


def run_metrics(config: TrainConfig, result: TrainResult) -> dict:
    """The ``metrics.json`` of a training run, as ``python -m vae.train`` writes it, plus ``stopped``."""
    epochs = len(result.history)
    return {
        "train": {
            "dataset": config.dataset, "split": "train", "n_train": result.n_train, "n_val": result.n_val,
            "epochs": epochs, "best_epoch": result.best_epoch, "stopped": result.stopped,
            "seconds": round(result.seconds, 2), "seconds_per_epoch": round(result.seconds / epochs, 3),
            "device": result.device, "torch": torch.__version__,
        },
        "history": result.history,
    }


class _GcFreeze:
    """While any job runs, full garbage collections skip the objects that existed when the first began.

    A host may force full collections often: Streamlit runs ``gc.collect(2)`` after every script
    run, the app's once-a-second progress refresh included. With torch, plotly and pandas loaded that
    scans about half a million objects (about 0.25 s on this project's 2-core CPU) while holding the
    GIL, and the training thread, which needs the GIL between its tensor operations, waits: an epoch
    ran about twice as slow as on the command line. ``gc.freeze()`` (after one collection, so no
    garbage is kept) moves those objects out of the collector's view; ``gc.unfreeze()`` when the last
    job ends puts them back. Reference counting frees memory as usual meanwhile.
    """

    def __init__(self):
        self._lock, self._count = threading.Lock(), 0

    def enter(self) -> None:
        with self._lock:
            self._count += 1
            if self._count == 1:
                gc.collect()
                gc.freeze()

    def exit(self) -> None:
        with self._lock:
            self._count -= 1
            if self._count == 0:
                gc.unfreeze()


_gc_freeze = _GcFreeze()


@dataclass
class Job:
    """One training run and what the app shows of it. Read its fields from any thread.

    ``state``: "running", then "done", "stopped" (the stop event ended it; the best weights so far are
    saved) or "failed" (``error`` holds one sentence; nothing is saved). ``progress``: the last
    Progress (after every step). ``history``: one row per finished epoch, as in TrainResult.history
    (epoch, seconds, train_recon, train_kl, train_loss, val_recon, val_kl, val_loss; nats per image).
    ``folder``: the saved checkpoint, once done or stopped. ``note``: why a run was stopped.
    """

    id: str
    session: str
    name: str
    config: TrainConfig
    device: str
    state: str = "running"
    progress: Progress | None = None
    history: list[dict] = field(default_factory=list)
    error: str | None = None
    note: str | None = None
    folder: Path | None = None
    metrics: dict | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    heartbeat: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def stopping(self) -> bool:
        """True once a stop was asked for while the job still runs its last step."""
        return self.running and self._stop.is_set()

    def touch(self) -> None:
        """The heartbeat: the app calls this whenever it shows the job."""
        self.heartbeat = time.monotonic()

    def stop(self, reason: str = "stopped from the sidebar") -> None:
        """End the run after the current step; the best weights so far are kept and saved."""
        if self.running and not self._stop.is_set():
            self.note = reason
            self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread ends (or ``timeout`` seconds pass); True when it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def fraction(self) -> float:
        """Steps done over all steps of the run, in [0, 1]."""
        p = self.progress
        if p is None:
            return 0.0
        return min(1.0, ((p.epoch - 1) * p.steps_per_epoch + p.step) / (p.epochs * p.steps_per_epoch))

    def seconds_left(self) -> float | None:
        """Estimated seconds to the end of the last epoch at the pace so far; None before the first step."""
        p, f = self.progress, self.fraction()
        if p is None or f == 0:
            return None
        return p.seconds * (1 - f) / f


class JobRegistry:
    """Thread-safe registry of training jobs, one process-wide instance behind the app.

    max_jobs: global limit on running jobs (default ``default_max_jobs()``). folder: where finished
    models are saved, one sub-folder per job (default: a temporary folder removed at exit).
    heartbeat_timeout: seconds without ``Job.touch`` after which a job stops itself. max_seconds: the
    time cap of one job. alive_grace: seconds the session check may fail before the job stops.
    """

    def __init__(self, max_jobs: int | None = None, folder: str | os.PathLike | None = None,
                 heartbeat_timeout: float = 180.0, max_seconds: float = 1800.0, alive_grace: float = 10.0,
                 data_root: str | os.PathLike | None = None):
        self.max_jobs = max_jobs if max_jobs is not None else default_max_jobs()
        self.heartbeat_timeout, self.max_seconds, self.alive_grace = heartbeat_timeout, max_seconds, alive_grace
        self.data_root = data_root
        self._folder = Path(folder) if folder is not None else None
        self._jobs: dict[str, Job] = {}
        self._runs = 0
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        """The folder that holds finished jobs' models (created on first use)."""
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="vae-session-models-"))
                atexit.register(shutil.rmtree, self._folder, ignore_errors=True)
            return self._folder

    def job(self, job_id: str | None) -> Job | None:
        return self._jobs.get(job_id) if job_id else None

    def running(self) -> list[Job]:
        return [j for j in list(self._jobs.values()) if j.running]

    def start(self, session: str, config: TrainConfig, alive: Callable[[], bool] | None = None,
              data: tuple[torch.Tensor, torch.Tensor] | None = None) -> Job:
        """Start training ``config`` for ``session`` in a background thread; returns the running Job.

        alive: optional session check, called about once a second from the training thread; when it
        has returned False for ``alive_grace`` seconds the job stops itself. data: optional (images,
        labels) instead of the dataset's training split. Raises BusyError when the session already
        has a running job or ``max_jobs`` jobs are running.
        """
        folder = self.folder
        with self._lock:
            running = [j for j in self._jobs.values() if j.running]
            mine = next((j for j in running if j.session == session), None)
            if mine is not None:
                raise BusyError(f"This session is already training {mine.name}; stop it or let it finish first.")
            if len(running) >= self.max_jobs:
                raise BusyError(
                    f"The server is busy: {len(running)} training job{'s' if len(running) > 1 else ''} "
                    f"running, as many as this machine allows at once; try again when one ends."
                )
            self._runs += 1
            device = best_device() if config.device == "auto" else torch.device(config.device)
            job = Job(uuid.uuid4().hex[:12], session,
                      f"{config.dataset}-{config.model}-{config.latent_dim}d · run {self._runs}",
                      config, describe_device(device))
            self._jobs[job.id] = job
        job._thread = threading.Thread(target=self._run, args=(job, folder / job.id, alive, data),
                                       name=f"vae-train-{job.id}", daemon=True)
        _gc_freeze.enter()
        job._thread.start()
        return job

    def _watch(self, job: Job, alive: Callable[[], bool] | None) -> Callable[[Progress], None]:
        """The training callback: records progress and, once a second, checks the job's limits."""
        next_check, gone_since = 0.0, None

        def callback(p: Progress) -> None:
            nonlocal next_check, gone_since
            job.progress = p
            if p.train is not None:
                job.history.append({"epoch": p.epoch, "seconds": round(p.seconds, 3),
                                    **{f"train_{k}": v for k, v in p.train.items()},
                                    **{f"val_{k}": v for k, v in p.val.items()}})
            now = time.monotonic()
            if now < next_check or job._stop.is_set():
                return
            next_check = now + 1.0
            if now - job.started > self.max_seconds:
                job.stop(f"stopped at the time cap of {self.max_seconds / 60:g} min")
            elif now - job.heartbeat > self.heartbeat_timeout:
                job.stop(f"stopped: its browser session showed no sign of life for {self.heartbeat_timeout:g} s")
            elif alive is not None:
                if alive():
                    gone_since = None
                elif gone_since is None:
                    gone_since = now
                elif now - gone_since > self.alive_grace:
                    job.stop("stopped: its browser session is gone")

        return callback

    def _run(self, job: Job, folder: Path, alive, data) -> None:
        try:
            result = train(job.config, self._watch(job, alive), job._stop, data=data, data_root=self.data_root)
            metrics = run_metrics(job.config, result)
            job.folder = save_checkpoint(result.model, dataclasses.asdict(job.config), metrics, folder)
            job.metrics, job.history = metrics, result.history
            job.state = "stopped" if result.stopped else "done"
        except TrainingDiverged as err:
            job.error, job.state = f"Training diverged: {err}.", "failed"
        except DatasetNotFoundError as err:
            job.error, job.state = str(err), "failed"
        except Exception as err:  # a bug, not the user's doing: keep the traceback in the server log
            _log.exception("training job %s failed", job.id)
            job.error, job.state = f"Training failed: {err!r}.", "failed"
        finally:
            job.ended = time.monotonic()
            _gc_freeze.exit()


def best_val(metrics: dict) -> dict:
    """The history row of the best epoch in a run's metrics (val_loss in nats per image)."""
    return metrics["history"][metrics["train"]["best_epoch"] - 1]


def zip_folder(folder: str | os.PathLike, name: str) -> bytes:
    """A zip, built in memory, of a model folder's weights, config and metrics under ``name/``.

    Raises FileNotFoundError when one of the three files is missing.
    """
    folder, buffer = Path(folder), io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for file in (WEIGHTS, CONFIG, METRICS):
            z.write(folder / file, f"{name}/{file}")
    return buffer.getvalue()


_save_lock = threading.Lock()


def save_user_model(folder: str | os.PathLike, name: str, root: str | os.PathLike,
                    reserved: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Copy a model folder to ``root/name``; returns the new folder.

    Never overwrites: raises ModelNameError when ``name`` is not 1 to 64 letters, digits, - and _,
    or when a folder of that name exists in ``root`` or in any ``reserved`` folder (the shipped
    models). The copy is made under a temporary name in ``root`` and renamed into place.
    """
    if not NAME_PATTERN.fullmatch(name or ""):
        raise ModelNameError(f"{name!r} is not a usable name: use 1 to 64 letters, digits, - and _.")
    root = Path(root)
    with _save_lock:
        for place, what in [*((Path(r), "a shipped model") for r in reserved), (root, "a saved model")]:
            if (place / name).exists():
                raise ModelNameError(f"{name} is already taken by {what}; pick another name.")
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
        try:
            for file in (WEIGHTS, CONFIG, METRICS):
                shutil.copyfile(Path(folder) / file, tmp / file)
            tmp.chmod(0o755)
            os.rename(tmp, root / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return root / name


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
