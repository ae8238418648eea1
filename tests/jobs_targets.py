"""Child-process targets for tests/test_jobs.py (``vae.runner.run``'s "module:function"): a child that
ignores the stop, one that keeps a map's CPU busy until it is killed, and one that writes to file descriptor 1 as C libraries do. Not collected by pytest."""

import os
import time

from vae.jobs import train_task
from vae.projection import project_task


def ignore_stop(task, arrays, send, stop):
    """Sends one progress message (step 1 of 1), then sleeps for an hour whatever the stop event says."""
    send({"progress": {"epoch": 1, "step": 1, "steps_per_epoch": 1, "epochs": 1, "seconds": 0.0}})
    time.sleep(3600)
    return {}


def noisy_train(task, arrays, send, stop):
    """``train_task``, after writing what is not JSON to file descriptor 1 (and print, and stderr)."""
    os.write(1, b"garbage on fd 1 {not json\n")
    print("a print to stdout", flush=True)
    os.write(2, b"and a warning on fd 2\n")
    result = train_task(task, arrays, send, stop)
    os.write(1, b"\x00\xff more garbage, no newline")
    return result


def project_until_killed(task, arrays, send, stop):
    """``project_task`` again and again, whatever the stop event says: a map that never ends by itself."""
    while True:
        project_task(task, arrays, send, stop)
