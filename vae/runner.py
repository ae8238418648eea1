"""Run one function in a child Python process: a message channel of its own, a stop, a hard kill.

Where it sits: the runner under the app's background jobs. ``vae.jobs`` (training) and
``vae.map_jobs`` (new maps) call ``run`` from a thread of their own; ``vae.policy`` says how long a
child may take to obey a stop. No Streamlit here.

Why a process and not a thread: on a 2-core CPU, ``train`` in a second thread of a process took 1.7
times as long per epoch as in its main thread, and 1.1 to 1.8 times as long in the app's server as on
the command line (bench/ui_vs_cli_epoch.py): each thread that calls into torch gets an OpenMP thread
team of its own, and the teams compete for the cores; a t-SNE in a thread of the server held the GIL
of every session's script. In a child process the work has the cores to itself, and can be killed.

The channel: the child writes JSON lines to a pipe of its own (a file descriptor passed to it
alone), never to its stdout, so whatever a library writes to file descriptor 1 (a warning from C, a
CUDA banner) goes to the server's log and cannot corrupt a message. Its stdin carries the task (one
JSON line) and then "stop". No pickle: messages are JSON, arrays a safetensors file.

Nothing runs forever: a child asked to stop (by the caller's ``should_stop``) that has not exited
``grace`` seconds later is killed (SIGTERM, then SIGKILL a second later); a child whose parent is
gone (its stdin closes) stops, and exits hard ``grace`` seconds later if it has not ended by then.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import errors

ROOT = Path(__file__).resolve().parents[1]  # where `vae` is importable from
_log = logging.getLogger(__name__)


class TaskFailed(Exception):
    """Raised by a target for an error a person can act on (a missing dataset, a diverged loss): the
    run fails with this sentence (a str or a ``vae.errors.Message``, which reaches the parent as one)
    and no traceback."""


@dataclass
class Outcome:
    """How a child ended. result: what the target returned (JSON-able), when it returned. error: one
    sentence when it raised or its process died; traceback: the text, for a bug (None for TaskFailed).
    stop_reason: what ``should_stop`` said, when the child was asked to stop. killed: True when it had
    not exited ``grace`` seconds after that and was killed. code: the process's exit code."""

    result: dict | None = None
    error: str | None = None
    traceback: str | None = None
    stop_reason: str | None = None
    killed: bool = False
    code: int | None = None


def run(target: str, task: dict, *, arrays: dict | None = None, on_message: Callable[[dict], None] | None = None,
        should_stop: Callable[[], str | None] | None = None, grace: float = 10.0, check_every: float = 0.5,
        name: str = "job") -> Outcome:
    """Run ``target(task, arrays, send, stop)`` in a child process and wait for it to end; call it from a
    thread of your own (it blocks).

    target: "module:function", importable in the child (the repository root and this process's
    sys.path are on its path). task: a JSON-able dict. arrays: name -> numpy array, handed over in a
    temporary safetensors file (the child gets name -> numpy array). The target calls ``send(dict)``
    for progress (each dict reaches ``on_message``, in this thread), checks ``stop`` (a
    threading.Event) if it can, and returns a JSON-able dict. should_stop: called about every
    ``check_every`` seconds; a sentence (not None) asks the child to stop; ``grace`` seconds later it is
    killed if still running. Returns an Outcome; raises OSError only when no process can be started.
    """
    arrays_file = None
    if arrays:
        from safetensors.numpy import save_file

        fd, arrays_file = tempfile.mkstemp(prefix=f"vae-{name}-", suffix=".safetensors")
        os.close(fd)
        import numpy as np

        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, arrays_file)
    read_fd, write_fd = os.pipe()
    try:
        child = subprocess.Popen([sys.executable, "-c", "from vae.runner import child_main; child_main()"],
                                 stdin=subprocess.PIPE, text=True, pass_fds=(write_fd,), cwd=ROOT)
    except OSError:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # the child holds the only write end: the channel closes when it exits
    try:
        header = {"target": target, "task": task, "arrays": arrays_file, "fd": write_fd, "grace": grace,
                  "path": [p for p in sys.path if p]}
        _tell(child, json.dumps(header))
        return _watch(child, read_fd, on_message, should_stop, grace, check_every, name)
    finally:
        if child.poll() is None:  # only after an error in this thread
            _kill(child)
        if child.stdin is not None:
            try:
                child.stdin.close()
            except OSError:  # the child is gone and the pipe broken: nothing left to close
                pass
        if arrays_file is not None:
            Path(arrays_file).unlink(missing_ok=True)


def _watch(child, read_fd, on_message, should_stop, grace, check_every, name) -> Outcome:
    """Read the channel until it closes, asking for a stop when told and killing after the grace."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:  # a thread of its own, so the limits are checked even while the child is quiet
        with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as channel:
            for text in channel:
                lines.put(text)
        lines.put(None)

    threading.Thread(target=read, name=f"vae-{name}-reader", daemon=True).start()
    outcome, stop_at, next_check = Outcome(), None, 0.0
    while True:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            line = ""
        if line is None:  # the child closed its channel: it has exited
            break
        if line:
            try:
                message = json.loads(line)
            except ValueError:  # only our own child writes here; never fatal all the same
                _log.warning("%s: an unreadable message %r", name, line[:200])
                message = {}
            if "done" in message:
                outcome.result = message["done"]
            elif "failed" in message:
                outcome.error = errors.from_json(message.get("message", message["failed"]))
                outcome.traceback = message.get("traceback")
            elif on_message is not None and message:
                on_message(message)
        now = time.monotonic()
        if stop_at is None and should_stop is not None and now >= next_check:
            next_check = now + check_every
            reason = should_stop()
            if reason:
                outcome.stop_reason, stop_at = reason, now
                _tell(child, "stop")
        if stop_at is not None and now - stop_at > grace and child.poll() is None:
            if grace > 0:  # else killing is the way it stops
                _log.warning("%s did not stop %g s after it was asked to (%s): killed", name, grace, outcome.stop_reason)
            _kill(child)
            outcome.killed = True
            break
    try:
        outcome.code = child.wait(timeout=max(grace, 1.0))
    except subprocess.TimeoutExpired:  # it closed its channel and hangs: it is of no use any more
        outcome.code = _kill(child)
    if outcome.result is None and outcome.error is None and not outcome.killed:
        outcome.error = f"its process exited with code {outcome.code}"
    return outcome


def _kill(child: subprocess.Popen) -> int:
    """SIGTERM, then SIGKILL a second later; returns the exit code."""
    child.terminate()
    try:
        return child.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()


def _tell(child: subprocess.Popen, line: str) -> bool:
    """Write one line to the child's stdin; False when it has already closed it."""
    try:
        child.stdin.write(line + "\n")
        child.stdin.flush()
        return True
    except (BrokenPipeError, ValueError, OSError):
        return False


def child_main() -> None:
    """A child's process: ``python -c "from vae.runner import child_main; child_main()"``.

    Reads one JSON line from stdin: {"target": "module:function", "task": dict, "arrays": a
    safetensors file or null, "fd": the channel's file descriptor, "grace": seconds, "path": the
    parent's sys.path}. Calls the target and writes {"done": its result} to the channel, or
    {"failed": one sentence, "message": the same as ``vae.errors.to_json`` keeps it (a TaskFailed), "traceback":
    text or null}; whatever the target sends comes before.
    A later line "stop" sets the stop event; stdin closing (the parent is gone) sets it too, and
    ends the process ``grace`` seconds later if the target has not returned by then.
    """
    header = json.loads(sys.stdin.readline())
    sys.path[:0] = [p for p in header["path"] if p not in sys.path]
    channel = os.fdopen(header["fd"], "w", encoding="utf-8")
    lock, stop = threading.Lock(), threading.Event()

    def send(message: dict) -> None:
        with lock:
            try:
                channel.write(json.dumps(message) + "\n")
                channel.flush()
            except BrokenPipeError:  # the parent is gone (its server stopped): nobody to tell, nothing kept
                os._exit(70)

    def listen() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                stop.set()
        stop.set()  # stdin closed: the parent is gone
        time.sleep(header["grace"])
        os._exit(70)

    threading.Thread(target=listen, name="stop-listener", daemon=True).start()
    try:
        module, function = header["target"].split(":")
        target = getattr(importlib.import_module(module), function)
        arrays = {}
        if header["arrays"]:
            from safetensors.numpy import load_file

            arrays = load_file(header["arrays"])
        send({"done": target(header["task"], arrays, send, stop)})
    except TaskFailed as err:
        send({"failed": str(err), "message": errors.to_json(err.args[0] if err.args else ""), "traceback": None})
    except Exception as err:  # noqa: BLE001 - a bug: the parent logs the traceback
        send({"failed": repr(err), "traceback": traceback.format_exc()})
    channel.close()
