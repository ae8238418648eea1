"""What a visitor may start, and how much of the machine it may take: one Policy, public or not.

Where it sits: the limits and bounds of the app's background work. ``vae.jobs`` (training) and
``vae.map_jobs`` (new t-SNE and UMAP maps) take their limits from one Policy; ``vae.runner`` runs
the child processes they start. The app builds the Policy once, from the environment
(``Policy.from_env``): ``VAE_PUBLIC=1`` is a server that strangers share (a public Space on 2 vCPUs).
No Streamlit here.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from .errors import UserError

PUBLIC_ENV = "VAE_PUBLIC"  # "1" (or any value but "", 0, false, no): public mode
MAX_JOBS_ENV = "VAE_MAX_JOBS"  # global limit on concurrent training jobs
SESSION_GRACE_ENV = "VAE_SESSION_GRACE_S"  # seconds a closed session's models are kept (tests shorten it)

# What a training job may ask for, checked by ``Policy.check_training`` whatever the widgets allowed:
# field -> (low, high). The epochs' upper bound is the policy's max_epochs.
JOB_RANGES = {"latent_dim": (1, 64), "batch_size": (16, 1024), "lr": (1e-5, 0.1), "beta": (0.0, 100.0)}
JOB_CHOICES = {"binarize": ("none",), "objective": ("elbo",),
               "device": ("auto", "cpu"),
               "amp": (False,), "compile": (False,), "warmup": (0,), "schedule": ("constant",)}


class BusyError(UserError, RuntimeError):
    """No slot is free for this job (the server's or the session's); the message (a ``vae.errors.Message``)
    says which."""


@dataclass(frozen=True)
class Policy:
    """Every bound on the work a visitor can start. Times in seconds; None: no limit.

    Training (``vae.jobs.JobRegistry``): max_jobs concurrent jobs over the server, one per session;
    max_epochs per job; max_seconds of wall time per job; a job stops itself after heartbeat_timeout
    without its page showing it, or alive_grace after its session check says "gone"; a session keeps
    its newest keep_per_session models, the server max_models in all; a gone session's models are
    deleted after session_grace (checked every sweep_every).
    Stopping (both kinds): a child asked to stop (or past a limit) that has not exited stop_grace
    later is killed (SIGTERM, then SIGKILL), and its slot is free again.
    Maps (``vae.map_jobs.MapJobs``): map_slots new t-SNE/UMAP maps computed at once over the server
    (None: one per session, no server limit; a session's new request replaces its older one); at
    most map_max_n images in a new map; map_max_seconds of wall time; a map nobody's page has polled
    for map_heartbeat is cancelled. Other on-demand numbers: at most iwae_max_k importance samples
    for one image's IWAE estimate.
    Your own images (the training panel's zip upload): a zip of at most upload_max_mib MiB (the
    server's ``server.maxUploadSize``, Streamlit's "megabytes" of 2**20 bytes, must allow it), at most upload_max_images images (None: no
    limit beyond ``vae.folders.Limits``), resized to one of upload_sizes pixels.
    A model as a web page (``vae.web``, the sidebar's download): web_slots builds at once over the server,
    each in a child process for at most web_max_seconds; the newest web_keep zips are kept for everyone.
    """

    public: bool = False
    max_jobs: int = 1
    max_epochs: int = 500
    max_seconds: float = 1800.0
    heartbeat_timeout: float = 180.0
    alive_grace: float = 10.0
    keep_per_session: int | None = None
    max_models: int | None = None
    session_grace: float = 150.0
    sweep_every: float = 10.0
    stop_grace: float = 30.0
    map_slots: int | None = None
    map_max_n: int | None = None
    map_max_seconds: float = 900.0
    map_heartbeat: float = 30.0
    iwae_max_k: int = 1000
    upload_max_mib: int = 200
    upload_max_images: int | None = None
    upload_sizes: tuple[int, ...] = (28, 32, 64)
    web_slots: int = 2
    web_max_seconds: float = 300.0
    web_keep: int = 8

    @classmethod
    def for_public(cls, **changes) -> Policy:
        """A public server's bounds: one training job at a time of at most 20 epochs (an MLP VAE's epoch
        takes about 3 s on a 2-core CPU) and 10 minutes; a session's newest 3 models, 24 in all; one
        new map at a time over the server, of at most 2,000 images (t-SNE: about 8 s on 2 cores), for
        at most 2 minutes; an uploaded zip of images of at most 20 MiB and 10,000 images, 28 or 32 px,
        kept with the session's models and deleted with them; one web page built at a time (about 15 s), for at
        most 2 minutes, the newest 4 kept. ``changes``: fields to set otherwise."""
        return cls(**{**dict(public=True, max_jobs=1, max_epochs=20, max_seconds=600.0, keep_per_session=3,
                             max_models=24, map_slots=1, map_max_n=2000, map_max_seconds=120.0,
                             upload_max_mib=20, upload_max_images=10_000, upload_sizes=(28, 32),
                             web_slots=1, web_max_seconds=120.0, web_keep=4), **changes})

    @classmethod
    def from_env(cls, environ=None) -> Policy:
        """The policy ``environ`` (default ``os.environ``) asks for: ``$VAE_PUBLIC`` picks ``for_public``;
        ``$VAE_MAX_JOBS`` sets max_jobs (else 1 on a CPU, 2 on a GPU; public mode: 1);
        ``$VAE_SESSION_GRACE_S`` sets session_grace (at least 1 s; the janitor sweeps every
        min(10, grace) s). Raises ValueError for a value that is not a positive integer or a number."""
        env = os.environ if environ is None else environ
        public = env.get(PUBLIC_ENV, "").strip().lower() not in ("", "0", "false", "no")
        changes = {}
        if env.get(MAX_JOBS_ENV) or not public:
            changes["max_jobs"] = default_max_jobs(environ=env)
        if env.get(SESSION_GRACE_ENV):
            try:
                grace = max(1.0, float(env[SESSION_GRACE_ENV]))
            except ValueError:
                raise ValueError(f"{SESSION_GRACE_ENV} must be a number of seconds, got {env[SESSION_GRACE_ENV]!r}") from None
            changes.update(session_grace=grace, sweep_every=min(10.0, grace))
        return cls.for_public(**changes) if public else cls(**changes)

    def replace(self, **changes) -> Policy:
        return dataclasses.replace(self, **changes)

    def check_training(self, config) -> None:
        """Raise ValueError when a TrainConfig asks for more than a visitor may: epochs beyond
        ``max_epochs``, a field of ``JOB_RANGES`` out of its range, a field of ``JOB_CHOICES`` (those
        the sidebar does not offer) set otherwise, or a dataset that is neither MNIST, Fashion-MNIST nor
        a decoded upload (a ``.safetensors`` file of ``vae.folders``, of one of ``upload_sizes``). The
        sidebar's widgets keep to these already; this holds whatever reaches the server."""
        if not 1 <= config.epochs <= self.max_epochs:
            raise ValueError(f"epochs must be from 1 to {self.max_epochs} on this server, got {config.epochs}")
        for name, (low, high) in JOB_RANGES.items():
            if not low <= getattr(config, name) <= high:
                raise ValueError(f"{name} must be from {low:g} to {high:g}, got {getattr(config, name)!r}")
        for name, allowed in JOB_CHOICES.items():
            if getattr(config, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(config, name)!r}")
        if config.dataset not in ("mnist", "fashion"):
            if not (str(config.dataset).endswith(".safetensors") and os.path.isfile(config.dataset)):
                raise ValueError(f"dataset must be mnist, fashion or an uploaded zip's decoded images, got {config.dataset!r}")
            if int(config.image_shape[1]) not in self.upload_sizes:
                raise ValueError(f"images must be {' or '.join(map(str, self.upload_sizes))} px on this server, "
                                 f"got {config.image_shape[1]}")

    def check_map(self, n: int) -> None:
        """Raise ValueError when a new map of ``n`` images is more than ``map_max_n`` allows."""
        if self.map_max_n is not None and n > self.map_max_n:
            raise ValueError(f"a new map holds at most {self.map_max_n:,} images on this server, not {n:,}")


def default_max_jobs(device=None, environ=None) -> int:
    """The global limit on concurrent training jobs: ``$VAE_MAX_JOBS`` if set, else 1 on a CPU, 2 on a GPU.

    Raises ValueError when ``$VAE_MAX_JOBS`` is not a positive integer.
    """
    value = (os.environ if environ is None else environ).get(MAX_JOBS_ENV)
    if value:
        if not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"{MAX_JOBS_ENV} must be a positive integer, got {value!r}")
        return int(value)
    from .train import resolve_device  # torch, only when asked

    return 2 if resolve_device(device).type == "cuda" else 1
