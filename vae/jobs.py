"""Training jobs in the background: the per-session registry of jobs and their model folders, and its janitor.

Where it sits: the app's Train button calls ``JobRegistry.start``; the bounds come from a
``vae.policy.Policy`` (public or not); ``vae.runner`` runs each job in a child process of its own
(``train_task`` there, the ``vae.train.train`` the command line uses), watched by a daemon thread of
the app's process that records its progress for the app to poll and checks its limits. The child
saves the result as a checkpoint folder (``model.safetensors`` + ``config.json`` + ``metrics.json``).

Nothing runs forever: a job stops itself, keeping the best weights so far, when its session is gone
(no heartbeat for ``heartbeat_timeout``, or the session check says so for ``alive_grace``) or when its
``max_seconds`` pass; a child that has not obeyed ``stop_grace`` seconds after a stop is killed, and
its slot is free again. The janitor deletes the models of sessions that are gone.

No Streamlit here: the app passes in what it knows about sessions.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import runner
from .checkpoint import NAME_PATTERN, save_checkpoint
from .data import DatasetNotFoundError, data_root
from .errors import N_, Message
from .folders import FolderDatasetError
from .policy import BusyError, Policy
from .train import (Progress, TrainConfig, TrainingDiverged, describe_device, history_row, resolve_device,
                    run_metrics, train)

_log = logging.getLogger(__name__)
__all__ = ["BusyError", "Job", "JobRegistry", "train_task"]


PACE_WINDOW_S = 60  # seconds of recent steps behind the time-left estimate


@dataclass
class Job:
    """One training run and what the app shows of it. Read its fields from any thread.

    ``state``: "running", then "done", "stopped" (the stop event ended it; the best weights so far are
    saved), "killed" (it had not obeyed a stop ``Policy.stop_grace`` seconds later; ``error`` says so;
    nothing is saved) or "failed" (``error`` holds one sentence; nothing is saved). ``progress``: the last
    Progress (after every step). ``history``: one row per finished epoch, as in TrainResult.history
    (epoch, seconds, train_recon, train_kl, train_loss, val_recon, val_kl, val_loss; nats per image; and
    val_kl_per_dim, latent_dim floats, for a variational model: ``vae.train.history_row``).
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

    def stop(self, reason: str = Message(N_("stopped from the sidebar"))) -> None:
        """End the run after the current step; the best weights so far are kept and saved. A child that
        has not ended ``Policy.stop_grace`` seconds later is killed (the job's state: "killed")."""
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

    policy: the limits (``vae.policy.Policy``; default ``Policy.from_env()``): max_jobs running at once,
    one per session, max_epochs, max_seconds, heartbeat_timeout, alive_grace, stop_grace,
    keep_per_session, max_models, session_grace, sweep_every. ``policy`` may be replaced between jobs.
    folder: the root of the saved models (default: a temporary folder, removed at exit). data_root: the
    datasets' root (default ``vae.data.data_root``'s). Streamlit keeps a disconnected session
    resumable for ``server.disconnectedSessionTTL`` (120 s by default): a session_grace longer than
    that never deletes the models of a session that comes back.
    """

    def __init__(self, policy: Policy | None = None, folder: str | os.PathLike | None = None,
                 data_root: str | os.PathLike | None = None):
        self.policy = policy if policy is not None else Policy.from_env()
        self.data_root = data_root
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
            elif now - watch[1] >= self.policy.session_grace and self.release(session):
                gone.append(session)
        return gone

    def _sweep_forever(self) -> None:
        """The janitor: sweeps every ``sweep_every`` seconds while any session is watched, then ends
        (``start`` starts another)."""
        while True:
            time.sleep(self.policy.sweep_every)
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
        keep = self.policy.keep_per_session
        if keep is None:
            return
        with self._lock:  # against a concurrent release of the same session
            mine = [j for j in self.kept() if j.session == session]
            old = [j for j in mine[:max(0, len(mine) - keep)] if j.folder is not None]
            folders = [j.folder for j in old]
            for j in old:
                j.folder = None
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    def watch(self, session: str, alive: Callable[[], bool] | None) -> Path:
        """Watch ``session`` with its check ``alive`` (as ``start`` does): once it has said "gone" for the
        policy's session_grace, ``release`` deletes ROOT/SESSION, its models and what else it holds (an
        upload's decoded images). Returns ROOT/SESSION, not created. Raises ValueError for a session key
        that is not 1 to 64 letters, digits, - and _."""
        if not NAME_PATTERN.fullmatch(session or ""):  # a session key names a folder, as a saved model's name does
            raise ValueError(f"a session key is 1 to 64 letters, digits, - and _, got {session!r}")
        folder = self.folder
        with self._lock:
            self._sessions.setdefault(session, [None, None])[0] = alive
            if self._janitor is None:
                self._janitor = threading.Thread(target=self._sweep_forever, name="vae-session-janitor", daemon=True)
                self._janitor.start()
        return folder / session

    def start(self, session: str, config: TrainConfig, alive: Callable[[], bool] | None = None,
              data: tuple[torch.Tensor, torch.Tensor] | None = None, card: dict | None = None) -> Job:
        """Start training ``config`` for ``session`` in a child process; returns the running Job.

        alive: optional session check, called about once a second from the job's watching thread;
        when it has returned False for the policy's ``alive_grace`` seconds the job stops itself. data:
        optional (images float32 (N, 1, 28, 28), labels int64 (N,)) instead of the dataset's training
        split (handed to the child in a safetensors file). card: the data card of a folder or zip of
        images (``vae.folders``) that ``config.dataset`` names, kept in the model's metrics.json as
        "data" (its class names, what was skipped). Raises BusyError when the session already has
        a running job, ``max_jobs`` jobs are running or ``max_models`` models are kept; ValueError when
        ``config`` is out of ``Policy.check_training``'s bounds or ``session`` is not a key of 1 to 64
        letters, digits, - and _.
        """
        if not NAME_PATTERN.fullmatch(session or ""):  # a session key names a folder, as a saved model's name does
            raise ValueError(f"a session key is 1 to 64 letters, digits, - and _, got {session!r}")
        policy = self.policy
        policy.check_training(config)
        folder = self.folder
        self.sweep()
        with self._lock:
            running = [j for j in self._jobs.values() if j.running]
            mine = next((j for j in running if j.session == session), None)
            if mine is not None:
                raise BusyError(N_("This session is already training {name}; stop it or let it finish first."),
                                name=mine.name)
            if len(running) >= policy.max_jobs:
                lefts = [left for j in running if (left := j.seconds_left()) is not None]
                busy = Message(N_("The server is busy: {running} training job running, as many as this machine allows "
                                  "at once ({limit}); try again when one ends.") if len(running) == 1 else
                               N_("The server is busy: {running} training jobs running, as many as this machine "
                                  "allows at once ({limit}); try again when one ends."),
                               running=len(running), limit=policy.max_jobs)
                if lefts:
                    busy += Message(N_(" The sooner one to end has about {minutes} min left."),
                                    minutes=math.ceil(min(lefts) / 60))
                raise BusyError(busy)
            kept = sum(1 for j in self._jobs.values() if j.running or j.folder is not None)
            if policy.max_models is not None and kept >= policy.max_models:
                raise BusyError(N_("The server keeps at most {limit} trained models at once, and holds that many; they "
                                   "are deleted as their visitors leave. Try again in a few minutes."),
                                limit=policy.max_models)
            self._runs += 1
            device = resolve_device(config.device)
            about = config.dataset if card is None else card.get("name") or "images"
            job = Job(uuid.uuid4().hex[:12], session, f"run {self._runs} · {about} {config.model} {config.latent_dim}-d",
                      config, describe_device(device))
            self._jobs[job.id] = job
        self.watch(session, alive)
        job._thread = threading.Thread(target=self._supervise, args=(job, folder / session / job.id, alive, data, policy, card),
                                       name=f"vae-train-{job.id}", daemon=True)
        job._thread.start()
        return job

    def _supervise(self, job: Job, folder: Path, alive, data, policy: Policy, card: dict | None = None) -> None:
        """The job's thread: run the child (``vae.runner.run``), record its progress, check the limits,
        take its result."""
        try:
            task = {"config": dataclasses.asdict(job.config), "folder": str(folder),
                    "data_root": str(data_root(self.data_root).resolve()), "card": card}
            arrays = None if data is None else {"images": data[0].numpy(), "labels": data[1].numpy()}
            outcome = runner.run(self.target, task, arrays=arrays, grace=policy.stop_grace, name=f"train-{job.id}",
                                 on_message=lambda m: self._record(job, Progress(**m["progress"])),
                                 should_stop=self._limits(job, alive, policy))
            if outcome.killed:
                job.error = Message(N_("The training process did not stop within {seconds:g} s of being asked to "
                                       "({reason}), so it was ended; nothing was saved."),
                                    seconds=policy.stop_grace, reason=outcome.stop_reason)
                job.state = "killed"
            elif outcome.result is None:
                if outcome.traceback:  # a bug, not the user's doing: keep the traceback in the server log
                    _log.error("training job %s failed:\n%s", job.id, outcome.traceback)
                    job.error = Message(N_("Training failed: {error}."), error=outcome.error)
                elif outcome.error.startswith("its process exited"):
                    _log.error("training job %s: %s", job.id, outcome.error)
                    job.error = Message(N_("Training stopped unexpectedly: {error}."), error=outcome.error)
                else:
                    job.error = outcome.error
                job.state = "failed"
            else:
                metrics = outcome.result
                job.folder, job.metrics, job.history = folder, metrics, metrics["history"]
                job.ended = time.monotonic()
                job.state = "stopped" if metrics["train"]["stopped"] else "done"
                self._trim(job.session)
        except Exception as err:
            _log.exception("training job %s failed", job.id)
            job.error, job.state = f"Training failed: {err!r}.", "failed"
        finally:
            job.ended = time.monotonic()

    target = "vae.jobs:train_task"  # what the child runs ("module:function"); tests put another here

    @staticmethod
    def _limits(job: Job, alive, policy: Policy):
        """The job's ``should_stop`` for the runner: the reason to stop once a stop was asked for or a
        limit passed (the time cap, the heartbeat, the session check), else None."""
        gone_since = None

        def should_stop() -> str | None:
            nonlocal gone_since
            now = time.monotonic()
            if not job._stop.is_set():
                if now - job.started > policy.max_seconds:
                    job.stop(Message(N_("stopped at the time cap of {minutes:g} min"), minutes=policy.max_seconds / 60))
                elif now - job.heartbeat > policy.heartbeat_timeout:
                    job.stop(Message(N_("stopped: its browser session showed no sign of life for {seconds:g} s"),
                                     seconds=policy.heartbeat_timeout))
                elif alive is not None:
                    if alive():
                        gone_since = None
                    elif gone_since is None:
                        gone_since = now
                    elif now - gone_since > policy.alive_grace:
                        job.stop(Message(N_("stopped: its browser session is gone")))
            return job.note if job._stop.is_set() else None

        return should_stop

    @staticmethod
    def _record(job: Job, p: Progress) -> None:
        job.progress = p
        if not job._marks or p.seconds - job._marks[-1][1] >= 1.0:
            job._marks.append(((p.epoch - 1) * p.steps_per_epoch + p.step, p.seconds))
            del job._marks[1:-2 * PACE_WINDOW_S]  # keep the first mark and about two windows
        if p.train is not None:
            job.history.append(history_row(p.epoch, p.seconds, p.train, p.val))


def train_task(task: dict, arrays: dict, send: Callable[[dict], None], stop: threading.Event) -> dict:
    """A training job's work, in its child process (``vae.runner.child_main`` calls it).

    task: {"config": TrainConfig fields, "folder": where to save, "data_root": the dataset root, "card": a
    folder dataset's data card or None};
    arrays: {"images", "labels"} instead of the training split, or empty. Sends {"progress": Progress
    fields} after each epoch and after steps at most 20 times a second; returns metrics.json once the
    checkpoint is saved. ``stop`` ends the run after the current step, keeping the best weights so far.
    Raises TaskFailed (one sentence) when the loss diverges or the dataset is missing.
    """
    config = TrainConfig(**task["config"])
    data = None
    if arrays:
        data = (torch.from_numpy(arrays["images"]), torch.from_numpy(arrays["labels"]))
    last = 0.0

    def report(p: Progress) -> None:  # every epoch's end, and at most 20 steps a second
        nonlocal last
        now = time.monotonic()
        if p.train is not None or now - last >= 0.05:
            last = now
            send({"progress": dataclasses.asdict(p)})

    try:
        result = train(config, report, stop, data=data, data_root=task["data_root"])
    except TrainingDiverged as err:
        raise runner.TaskFailed(Message(N_("Training diverged: {error}."), error=err.message)) from None
    except FolderDatasetError as err:
        raise runner.TaskFailed(err.message) from None
    except DatasetNotFoundError as err:
        raise runner.TaskFailed(str(err)) from None
    metrics = run_metrics(config, result)
    if task.get("card") is not None:  # a folder's or zip's data card, as python -m vae.train keeps it
        metrics["data"] = task["card"]
    save_checkpoint(result.model, dataclasses.asdict(config), metrics, task["folder"])
    return metrics
