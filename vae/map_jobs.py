"""New t-SNE and UMAP maps in the background: one child process per map, queued for the policy's slots.

Where it sits: the Embeddings page asks ``MapJobs.request`` for a map no model folder stores; the
bounds come from a ``vae.policy.Policy`` (public: one map at a time over the server, at most 2,000
images; else one per session); ``vae.runner`` runs ``vae.projection.project_task`` in a child
process, so neither the GIL nor OpenMP's thread teams of the server's scripts wait for it, and a
Cancel kills it. Finished maps are kept (the newest ``keep``) for every session that asks again.

Nothing runs forever: a map is cancelled when every session that asked for it cancels or asks for
another, when no page has polled it (``MapJob.touch``) for ``map_heartbeat`` seconds, or when it has
run ``map_max_seconds``; its process is killed at once (neither library can be interrupted).
No Streamlit here.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch

from . import runner
from .errors import N_, Message
from .embeddings import Embedding
from .policy import Policy

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MapKey:
    """What identifies a map: the model (folder and weights' version) and the settings."""

    folder: str
    version: float
    method: str  # "tsne" or "umap"
    n: int
    perplexity: float
    seed: int


@dataclass
class MapJob:
    """One requested map. ``state``: "waiting" (for a slot), "running", then "done" (``result`` holds
    the Embedding), "failed" (``error``: one sentence) or "cancelled" (``error`` says why).
    ``sessions``: the sessions waiting for it. Times are ``time.monotonic()`` seconds."""

    id: str
    key: MapKey
    sessions: set = field(default_factory=set)
    state: str = "waiting"
    result: Embedding | None = None
    error: str | None = None
    requested: float = field(default_factory=time.monotonic)
    started: float | None = None
    ended: float | None = None
    heartbeat: float = field(default_factory=time.monotonic)
    _arrays: tuple | None = field(default=None, repr=False)  # (mu, indices, labels) until it starts
    _cancel: str | None = field(default=None, repr=False)  # why it was cancelled, once it is
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def active(self) -> bool:
        return self.state in ("waiting", "running")

    def touch(self) -> None:
        """The heartbeat: a page that shows the job calls this on every poll."""
        self.heartbeat = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since it started running (0 while it waits)."""
        return 0.0 if self.started is None else (self.ended or time.monotonic()) - self.started

    def wait(self, timeout: float | None = None) -> bool:
        """Block until it has ended (or ``timeout`` seconds pass); True when it has."""
        return self._done.wait(timeout)


class MapJobs:
    """Thread-safe queue and cache of new maps, one process-wide instance behind the app.

    policy: ``map_slots`` maps run at once (None: as many as sessions ask for, one each),
    ``map_max_n``, ``map_max_seconds``, ``map_heartbeat``. keep: finished maps kept (the oldest used
    goes first), 32 by default.
    """

    def __init__(self, policy: Policy | None = None, keep: int = 32):
        self.policy = policy if policy is not None else Policy.from_env()
        self.keep = keep
        self._done: OrderedDict[MapKey, Embedding] = OrderedDict()
        self._active: dict[MapKey, MapJob] = {}  # waiting or running, in the order they were asked for
        self._mine: dict[str, MapJob] = {}  # session -> its latest request
        self._lock = threading.Lock()

    target = "vae.projection:project_task"  # what the child runs ("module:function"); tests put another here

    def result(self, key: MapKey) -> Embedding | None:
        """The finished map for ``key``, or None."""
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key]
        return None

    def running(self) -> list[MapJob]:
        return [j for j in list(self._active.values()) if j.state == "running"]

    def waiting(self) -> list[MapJob]:
        return [j for j in list(self._active.values()) if j.state == "waiting"]

    def ahead(self, job: MapJob) -> int:
        """How many waiting maps were asked for before ``job`` (0 once it runs)."""
        queue = self.waiting()
        return queue.index(job) if job in queue else 0

    def request(self, session: str, key: MapKey, mu: np.ndarray, indices: np.ndarray, labels: np.ndarray) -> MapJob:
        """Ask for the map ``key`` for ``session``; returns its job (a finished one when it is kept, the
        same job when another session asked for it first). The session's earlier request, if for
        another map, is cancelled: a session waits for one map at a time.

        mu float32 (n, latent_dim): the encoder's means of the map's n images in map order; indices,
        labels int64 (n,): their test-split indices and labels. Raises ValueError when n is more than
        the policy's ``map_max_n`` or does not match ``key.n``.
        """
        self.policy.check_map(key.n)
        if not len(mu) == len(indices) == len(labels) == key.n:
            raise ValueError(f"a map of N = {key.n} needs {key.n} means, indices and labels")
        with self._lock:
            mine = self._mine.get(session)
            if mine is not None and mine.key != key:
                self._drop(mine, session, Message(N_("another map was asked for")))
            if key in self._done:
                job = MapJob(uuid.uuid4().hex[:12], key, {session}, "done", self._done[key])
                job._done.set()
                return job
            job = self._active.get(key)
            if job is None:
                job = MapJob(uuid.uuid4().hex[:12], key, _arrays=(np.asarray(mu, np.float32), np.asarray(indices),
                                                                  np.asarray(labels)))
                self._active[key] = job
            job.sessions.add(session)
            job.touch()
            self._mine[session] = job
            self._advance()
        return job

    def cancel(self, session: str, job: MapJob, reason: str = "cancelled") -> None:
        """``session`` no longer waits for ``job``; once no session does, it is cancelled (a running
        map's process is killed)."""
        with self._lock:
            self._drop(job, session, reason)
            self._advance()

    def _drop(self, job: MapJob, session: str, reason: str) -> None:
        """Under the lock: forget a session's interest; cancel the job when nobody waits for it."""
        job.sessions.discard(session)
        if self._mine.get(session) is job:
            del self._mine[session]
        if not job.sessions and job.active:
            job._cancel = reason
            if job.state == "waiting":
                self._end(job, "cancelled", reason)

    def _end(self, job: MapJob, state: str, error: str | None = None) -> None:
        """Under the lock: the job has ended; keep its map, free its place."""
        job.state, job.error, job.ended, job._arrays = state, error, time.monotonic(), None
        if self._active.get(job.key) is job:
            del self._active[job.key]
        if state == "done":
            self._done[job.key] = job.result
            while len(self._done) > self.keep:
                self._done.popitem(last=False)
        for session in [s for s, j in self._mine.items() if j is job]:
            del self._mine[session]
        job._done.set()

    def _advance(self) -> None:
        """Under the lock: cancel waiting maps nobody polls any more, start waiting maps while slots are free."""
        now, slots = time.monotonic(), self.policy.map_slots
        for job in self.waiting():
            if now - job.heartbeat > self.policy.map_heartbeat:
                self._end(job, "cancelled", Message(N_("nobody asked for it for {seconds:g} s"),
                                                    seconds=self.policy.map_heartbeat))
        for job in self.waiting():
            if slots is not None and len(self.running()) >= slots:
                break
            job.state, job.started = "running", time.monotonic()
            threading.Thread(target=self._supervise, args=(job, self.policy), name=f"vae-map-{job.id}",
                             daemon=True).start()

    def _supervise(self, job: MapJob, policy: Policy) -> None:
        """The map's thread: run the projection in a child process, build the Embedding, start the next."""
        mu, indices, labels = job._arrays
        key = job.key

        def should_stop() -> str | None:
            if job._cancel:
                return job._cancel
            if time.monotonic() - job.started > policy.map_max_seconds:
                return Message(N_("it ran past the time cap of {seconds:g} s"), seconds=policy.map_max_seconds)
            if time.monotonic() - job.heartbeat > policy.map_heartbeat:
                return Message(N_("nobody asked for it for {seconds:g} s"), seconds=policy.map_heartbeat)
            return None

        state, error = "failed", None
        try:
            out = runner.run(self.target, {"method": key.method, "perplexity": key.perplexity,
                                                             "seed": key.seed}, arrays={"mu": mu},
                             should_stop=should_stop, grace=0.0, check_every=0.25, name=f"map-{job.id}")
            if out.stop_reason:
                state = "failed" if out.stop_reason.startswith("it ran past") else "cancelled"
                error = out.stop_reason
            elif out.result is None:
                if out.traceback:
                    _log.error("map job %s failed:\n%s", job.id, out.traceback)
                error = out.error
            else:
                r = out.result
                job.result = Embedding(np.asarray(r["coords"], dtype=np.float32).reshape(-1, 2),
                                       torch.from_numpy(indices).to(torch.int64), torch.from_numpy(labels).to(torch.int64),
                                       torch.from_numpy(mu), key.method, float(key.perplexity), int(key.seed),
                                       round(float(r["seconds"]), 2), info=r["info"])
                state = "done"
        except Exception as err:  # noqa: BLE001 - a bug here must not hold the slot
            _log.exception("map job %s failed", job.id)
            error = repr(err)
        with self._lock:
            self._end(job, state, error)
            self._advance()
