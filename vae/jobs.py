"""Training jobs in the background: at most one per browser session, a global limit, self-stopping.

The app's Train button calls ``JobRegistry.start``. A job runs ``vae.train.train``, the function the
command line uses, in a child Python process of its own (``child_main``), watched by a daemon thread
of the app's process: the thread records the child's progress for the app to poll and checks the
job's limits; the child saves the result as a checkpoint folder (``model.safetensors`` +
``config.json`` + ``metrics.json``). They talk in JSON lines over the child's stdin and stdout.
A job stops itself, keeping the best weights so far, when its session is gone (no heartbeat for a
while, or the session check says so) or when its time cap passes, so nothing runs forever.

Why a process and not a thread: on a 2-core CPU, ``train`` in a second thread of a process took 1.7
times as long per epoch as in its main thread, and 1.1 to 1.8 times as long in the app's server as
on the command line (bench/ui_vs_cli_epoch.py): each thread that calls into torch gets an OpenMP
thread team of its own, and the teams compete for the cores. In a child process the training has
them to itself, and never waits for the server's GIL.

No Streamlit here: the app passes in what it knows about sessions.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import math
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .checkpoint import NAME_PATTERN, save_checkpoint
from .data import DatasetNotFoundError, data_root
from .train import (Progress, TrainConfig, TrainingDiverged, describe_device, history_row, resolve_device,
                    run_metrics, train)

MAX_JOBS_ENV = "VAE_MAX_JOBS"  # global limit on concurrent training jobs
_log = logging.getLogger(__name__)

# What a job may ask for, checked by JobRegistry.start whatever the widgets allowed: field -> (low, high).
# The epochs' upper bound is the registry's max_epochs.
JOB_RANGES = {"latent_dim": (1, 64), "batch_size": (16, 1024), "lr": (1e-5, 0.1), "beta": (0.0, 100.0)}
JOB_CHOICES = {"dataset": ("mnist", "fashion"), "binarize": ("none",), "objective": ("elbo",),
               "device": ("auto", "cpu"),
               "amp": (False,), "compile": (False,), "warmup": (0,), "schedule": ("constant",)}


class BusyError(RuntimeError):
    """No training slot is free, or the session already has a running job; the message says which."""


def default_max_jobs(device: torch.device | str | None = None) -> int:
    """The global limit on concurrent jobs: ``$VAE_MAX_JOBS`` if set, else 1 on a CPU, 2 on a GPU.

    Raises ValueError when ``$VAE_MAX_JOBS`` is not a positive integer.
    """
    value = os.environ.get(MAX_JOBS_ENV)
    if value:
        if not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"{MAX_JOBS_ENV} must be a positive integer, got {value!r}")
        return int(value)
    return 2 if resolve_device(device).type == "cuda" else 1


PACE_WINDOW_S = 60  # seconds of recent steps behind the time-left estimate


@dataclass
class Job:
    """One training run and what the app shows of it. Read its fields from any thread.

    ``state``: "running", then "done", "stopped" (the stop event ended it; the best weights so far are
    saved) or "failed" (``error`` holds one sentence; nothing is saved). ``progress``: the last
    Progress (after every step). ``history``: one row per finished epoch, as in TrainResult.history
    (epoch, seconds, train_recon, train_kl, train_loss, val_recon, val_kl, val_loss; nats per image).
    ``folder``: the saved checkpoint, once done or stopped (None again once the registry has deleted
    it: the session ended, or kept newer models). ``note``: why a run was stopped.
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
    _marks: list = field(default_factory=list, repr=False)  # (steps done, seconds), about one a second
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
        """Estimated seconds to the end of the last epoch, at the pace of the last minute; None until
        two seconds of steady steps have been seen (the first step's start-up cost is left out, so the
        estimate does not swing from far too long to the truth). Validation pauses inside the window
        count, so the pace includes them."""
        p, marks = self.progress, self._marks[1:]  # marks[0]: after the first step, start-up included
        if p is None or len(marks) < 2 or marks[-1][1] - marks[0][1] < 2.0:
            return None
        recent = [m for m in marks if m[1] >= marks[-1][1] - PACE_WINDOW_S] or marks
        (d0, s0), (d1, s1) = recent[0] if len(recent) > 1 else marks[0], marks[-1]
        if d1 <= d0:
            return None
        total = p.epochs * p.steps_per_epoch
        return (total - d1) * (s1 - s0) / (d1 - d0)


class JobRegistry:
    """Thread-safe registry of training jobs, one process-wide instance behind the app.

    Finished models live in ``folder/SESSION/JOB_ID/``. A session's models are deleted once the session
    check given to ``start`` has said "gone" for ``session_grace`` seconds (a daemon thread looks every
    ``sweep_every`` seconds), and beyond the newest ``keep_per_session`` of a session; the registry also
    forgets those sessions' ended jobs, so neither disk nor memory grows with the visitors.

    max_jobs: global limit on running jobs (default ``default_max_jobs()``). folder: the root of the
    saved models (default: a temporary folder, removed at exit). heartbeat_timeout: seconds without
    ``Job.touch`` after which a job stops itself. max_seconds: the time cap of one job. alive_grace:
    seconds the session check may fail before a running job stops. max_epochs: the most epochs a job
    may ask for. keep_per_session: the most models one session keeps (None: all). max_models: the most
    models kept on disk at once, over all sessions, running jobs included (None: no limit).
    session_grace: seconds a session may be gone before its models are deleted; Streamlit keeps a
    disconnected session resumable for ``server.disconnectedSessionTTL`` (120 s by default).
    """

    def __init__(self, max_jobs: int | None = None, folder: str | os.PathLike | None = None,
                 heartbeat_timeout: float = 180.0, max_seconds: float = 1800.0, alive_grace: float = 10.0,
                 data_root: str | os.PathLike | None = None, max_epochs: int = 500,
                 keep_per_session: int | None = None, max_models: int | None = None,
                 session_grace: float = 150.0, sweep_every: float = 10.0):
        self.max_jobs = max_jobs if max_jobs is not None else default_max_jobs()
        self.heartbeat_timeout, self.max_seconds, self.alive_grace = heartbeat_timeout, max_seconds, alive_grace
        self.data_root = data_root
        self.max_epochs, self.keep_per_session, self.max_models = max_epochs, keep_per_session, max_models
        self.session_grace, self.sweep_every = session_grace, sweep_every
        self._folder = Path(folder) if folder is not None else None
        self._jobs: dict[str, Job] = {}
        # session -> [its session check or None, the monotonic time it was first seen gone or None]
        self._sessions: dict[str, list] = {}
        self._janitor: threading.Thread | None = None
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

    def kept(self) -> list[Job]:
        """The ended jobs whose models are still on disk, oldest first."""
        return sorted((j for j in list(self._jobs.values()) if not j.running and j.folder is not None),
                      key=lambda j: j.ended or 0.0)

    def check(self, config: TrainConfig) -> None:
        """Raise ValueError when ``config`` asks for more than a visitor may: epochs beyond
        ``max_epochs``, a field of ``JOB_RANGES`` out of its range, or a field of ``JOB_CHOICES`` (those
        the sidebar does not offer) set otherwise. The sidebar's widgets keep to these already; this
        holds whatever reaches the server."""
        if not 1 <= config.epochs <= self.max_epochs:
            raise ValueError(f"epochs must be from 1 to {self.max_epochs} on this server, got {config.epochs}")
        for name, (low, high) in JOB_RANGES.items():
            if not low <= getattr(config, name) <= high:
                raise ValueError(f"{name} must be from {low:g} to {high:g}, got {getattr(config, name)!r}")
        for name, allowed in JOB_CHOICES.items():
            if getattr(config, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(config, name)!r}")

    def release(self, session: str) -> bool:
        """Delete a session's models and forget its ended jobs; False (nothing done) while one of its
        jobs still runs."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.session == session]
            if any(j.running for j in jobs):
                return False
            for j in jobs:
                del self._jobs[j.id]
                j.folder = None
            self._sessions.pop(session, None)
            root = self._folder
        if root is not None:
            shutil.rmtree(root / session, ignore_errors=True)
        return True

    def sweep(self) -> list[str]:
        """Release every session whose check has said "gone" for ``session_grace`` seconds; returns
        their keys. The janitor thread calls this every ``sweep_every`` seconds."""
        now, gone = time.monotonic(), []
        for session, watch in list(self._sessions.items()):
            alive = watch[0]
            try:
                here = alive is None or alive()
            except Exception:  # a broken check must not stop the sweep
                _log.exception("session check of %s failed", session)
                here = True
            if here:
                watch[1] = None
            elif watch[1] is None:
                watch[1] = now
            elif now - watch[1] >= self.session_grace and self.release(session):
                gone.append(session)
        return gone

    def _sweep_forever(self) -> None:
        """The janitor: sweeps every ``sweep_every`` seconds while any session is watched, then ends
        (``start`` starts another)."""
        while True:
            time.sleep(self.sweep_every)
            try:
                self.sweep()
            except Exception:
                _log.exception("sweeping the session models failed")
            with self._lock:
                if not self._sessions:
                    self._janitor = None
                    return

    def _trim(self, session: str) -> None:
        """Delete a session's oldest models beyond ``keep_per_session``."""
        if self.keep_per_session is None:
            return
        with self._lock:  # against a concurrent release of the same session
            mine = [j for j in self.kept() if j.session == session]
            old = [j for j in mine[:max(0, len(mine) - self.keep_per_session)] if j.folder is not None]
            folders = [j.folder for j in old]
            for j in old:
                j.folder = None
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    def start(self, session: str, config: TrainConfig, alive: Callable[[], bool] | None = None,
              data: tuple[torch.Tensor, torch.Tensor] | None = None) -> Job:
        """Start training ``config`` for ``session`` in a child process; returns the running Job.

        alive: optional session check, called about once a second from the job's watching thread;
        when it has returned False for ``alive_grace`` seconds the job stops itself. data: optional
        (images, labels) instead of the dataset's training split (handed to the child in a
        safetensors file). Raises BusyError when the session already has a running job, ``max_jobs``
        jobs are running or ``max_models`` models are kept; ValueError when ``config`` is out of
        ``check``'s bounds or ``session`` is not a key of 1 to 64 letters, digits, - and _.
        """
        if not NAME_PATTERN.fullmatch(session or ""):  # a session key names a folder, as a saved model's name does
            raise ValueError(f"a session key is 1 to 64 letters, digits, - and _, got {session!r}")
        self.check(config)
        folder = self.folder
        self.sweep()
        with self._lock:
            running = [j for j in self._jobs.values() if j.running]
            mine = next((j for j in running if j.session == session), None)
            if mine is not None:
                raise BusyError(f"This session is already training {mine.name}; stop it or let it finish first.")
            if len(running) >= self.max_jobs:
                lefts = [left for j in running if (left := j.seconds_left()) is not None]
                when = f" The sooner one to end has about {math.ceil(min(lefts) / 60)} min left." if lefts else ""
                raise BusyError(
                    f"The server is busy: {len(running)} training job{'s' if len(running) > 1 else ''} "
                    f"running, as many as this machine allows at once ({self.max_jobs}); try again when one "
                    f"ends.{when}"
                )
            kept = sum(1 for j in self._jobs.values() if j.running or j.folder is not None)
            if self.max_models is not None and kept >= self.max_models:
                raise BusyError(f"The server keeps at most {self.max_models} trained models at once, and holds "
                                "that many; they are deleted as their visitors leave. Try again in a few minutes.")
            watch = self._sessions.setdefault(session, [None, None])
            watch[0] = alive
            if self._janitor is None:
                self._janitor = threading.Thread(target=self._sweep_forever, name="vae-session-janitor", daemon=True)
                self._janitor.start()
            self._runs += 1
            device = resolve_device(config.device)
            job = Job(uuid.uuid4().hex[:12], session,
                      f"{config.dataset}-{config.model}-{config.latent_dim}d · run {self._runs}",
                      config, describe_device(device))
            self._jobs[job.id] = job
        job._thread = threading.Thread(target=self._supervise, args=(job, folder / session / job.id, alive, data),
                                       name=f"vae-train-{job.id}", daemon=True)
        job._thread.start()
        return job

    def _supervise(self, job: Job, folder: Path, alive, data) -> None:
        """The job's thread: start the child, record its progress, check the limits, take its result."""
        data_file = None
        child = None
        try:
            if data is not None:
                from safetensors.torch import save_file

                folder.parent.mkdir(parents=True, exist_ok=True)
                data_file = folder.with_name(f".{folder.name}-data.safetensors")
                save_file({"images": data[0].contiguous(), "labels": data[1].contiguous()}, str(data_file))
            task = {"config": dataclasses.asdict(job.config), "folder": str(folder),
                    "data_root": str(data_root(self.data_root).resolve()),
                    "data": None if data_file is None else str(data_file)}
            child = subprocess.Popen(
                [sys.executable, "-c", "from vae.jobs import child_main; child_main()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                cwd=Path(__file__).resolve().parents[1],  # where `vae` is importable from
            )
            child.stdin.write(json.dumps(task) + "\n")
            child.stdin.flush()
            lines: queue.Queue = queue.Queue()

            def read() -> None:  # a thread of its own, so the limits are checked even while the child is quiet
                for text in child.stdout:
                    lines.put(text)
                lines.put(None)

            threading.Thread(target=read, name=f"vae-train-{job.id}-reader", daemon=True).start()
            outcome, stop_sent, next_check, gone_since = None, False, 0.0, None
            while outcome is None:
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    line = ""
                if line is None:  # the child closed its output: it has exited
                    break
                if line:
                    message = json.loads(line)
                    if "progress" in message:
                        self._record(job, Progress(**message["progress"]))
                    else:
                        outcome = message
                if job._stop.is_set() and not stop_sent:
                    stop_sent = _tell(child, "stop")
                now = time.monotonic()
                if now < next_check or job._stop.is_set():
                    continue
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
            code = child.wait()
            if outcome is None:
                _log.error("training job %s: its process exited with code %s", job.id, code)
                job.error, job.state = f"Training stopped unexpectedly: its process exited with code {code}.", "failed"
            elif "failed" in outcome:
                if outcome.get("traceback"):  # a bug, not the user's doing: keep the traceback in the server log
                    _log.error("training job %s failed:\n%s", job.id, outcome["traceback"])
                job.error, job.state = outcome["failed"], "failed"
            else:
                metrics = outcome["done"]
                job.folder, job.metrics, job.history = folder, metrics, metrics["history"]
                job.ended = time.monotonic()
                job.state = "stopped" if metrics["train"]["stopped"] else "done"
                self._trim(job.session)
        except Exception as err:
            _log.exception("training job %s failed", job.id)
            job.error, job.state = f"Training failed: {err!r}.", "failed"
            if child is not None and child.poll() is None:
                child.kill()
        finally:
            if child is not None and child.stdin is not None:
                try:
                    child.stdin.close()
                except OSError:  # the child is gone and the pipe broken: nothing left to close
                    pass
            if data_file is not None:
                data_file.unlink(missing_ok=True)
            job.ended = time.monotonic()

    @staticmethod
    def _record(job: Job, p: Progress) -> None:
        job.progress = p
        if not job._marks or p.seconds - job._marks[-1][1] >= 1.0:
            job._marks.append(((p.epoch - 1) * p.steps_per_epoch + p.step, p.seconds))
            del job._marks[1:-2 * PACE_WINDOW_S]  # keep the first mark and about two windows
        if p.train is not None:
            job.history.append(history_row(p.epoch, p.seconds, p.train, p.val))


def _tell(child: subprocess.Popen, word: str) -> bool:
    """Write one line to the child's input; False when it has already closed it."""
    try:
        child.stdin.write(word + "\n")
        child.stdin.flush()
        return True
    except (BrokenPipeError, ValueError):
        return False


def child_main() -> None:
    """A job's process: ``python -c "from vae.jobs import child_main; child_main()"``.

    Reads one JSON line from stdin: {"config": TrainConfig fields, "folder": where to save,
    "data_root": the dataset root, "data": a safetensors file of images and labels, or null}.
    Trains, and writes JSON lines to stdout: {"progress": Progress fields} after each epoch and
    after steps at most 20 times a second, then
    {"done": metrics.json} once the checkpoint is saved, or {"failed": one sentence, "traceback":
    text or null}. A later line "stop" on stdin, or stdin closing (the app is gone), ends the run
    after the current step, keeping the best weights so far.
    """
    task = json.loads(sys.stdin.readline())
    stop = threading.Event()

    def listen():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=listen, daemon=True).start()
    out, sys.stdout = sys.stdout, sys.stderr  # stdout carries the messages only; stray prints go to the log

    def send(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    try:
        config = TrainConfig(**task["config"])
        data = None
        if task["data"]:
            from safetensors.torch import load_file

            tensors = load_file(task["data"])
            data = (tensors["images"], tensors["labels"])
        last = 0.0

        def report(p: Progress) -> None:  # every epoch's end, and at most 20 steps a second
            nonlocal last
            now = time.monotonic()
            if p.train is not None or now - last >= 0.05:
                last = now
                send({"progress": dataclasses.asdict(p)})

        result = train(config, report, stop, data=data, data_root=task["data_root"])
        metrics = run_metrics(config, result)
        save_checkpoint(result.model, dataclasses.asdict(config), metrics, task["folder"])
        send({"done": metrics})
    except TrainingDiverged as err:
        send({"failed": f"Training diverged: {err}.", "traceback": None})
    except DatasetNotFoundError as err:
        send({"failed": str(err), "traceback": None})
    except Exception as err:
        send({"failed": f"Training failed: {err!r}.", "traceback": traceback.format_exc()})
