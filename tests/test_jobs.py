"""The training job registry behind the sidebar's Train button: real (short) runs, no Streamlit."""

import io
import json
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors

from conftest import wait_for
from ui.training import format_seconds
from vae.checkpoint import ModelNameError, load_checkpoint, save_user_model, zip_folder
from vae.data import load_dataset
from vae import runner
from vae.jobs import BusyError, Job, JobRegistry
from vae.map_jobs import MapJobs, MapKey
from vae.policy import Policy, default_max_jobs
from vae.train import Progress, TrainConfig

pytestmark = pytest.mark.slow  # every test here trains in a child process

SMALL = dict(latent_dim=2, hidden=[64], device="cpu")


@pytest.fixture(scope="module")
def test_split():
    return load_dataset("mnist", "test")


@pytest.fixture
def registry(tmp_path):
    reg = JobRegistry(Policy(max_jobs=1), folder=tmp_path / "session-models")
    yield reg
    for job in reg.running():
        job.stop("end of test")
        job.wait(60)


def test_a_short_run_reports_progress_and_saves_a_loadable_model(registry):
    seen = []
    job = registry.start("session-a", TrainConfig(epochs=2, **SMALL))  # the training split, as the button does
    assert job.running and registry.running() == [job] and job.name == "run 1 · mnist vae 2-d"
    while job.running:
        if job.progress is not None:
            seen.append((job.progress.epoch, job.progress.step))
        time.sleep(0.005)
    assert job.wait(60) and job.state == "done" and job.error is None and job.note is None
    assert seen == sorted(seen) and seen[-1][0] == 2 and len(set(seen)) > 2  # progress moved while it ran
    p = job.progress
    assert (p.epoch, p.step, p.epochs) == (2, p.steps_per_epoch, 2) and job.fraction() == 1.0
    assert [h["epoch"] for h in job.history] == [1, 2]
    assert job.history[1]["val_loss"] == pytest.approx(job.history[1]["val_recon"] + job.history[1]["val_kl"])
    assert job.history[1]["train_loss"] < job.history[0]["train_loss"]

    model, config, metrics = load_checkpoint(job.folder)
    assert config["epochs"] == 2 and config["hidden"] == [64] and metrics["history"] == job.history
    assert metrics["train"]["epochs"] == 2 and metrics["train"]["stopped"] is False
    assert metrics["train"]["n_train"] + metrics["train"]["n_val"] == load_dataset("mnist", "train")[1].shape[0]
    assert torch.isfinite(model.sample(3)).all()

    archive = zipfile.ZipFile(io.BytesIO(zip_folder(job.folder, "my-vae")))
    assert sorted(archive.namelist()) == ["my-vae/config.json", "my-vae/metrics.json", "my-vae/model.safetensors"]
    weights = load_safetensors(archive.read("my-vae/model.safetensors"))
    assert weights.keys() == model.state_dict().keys()
    assert torch.equal(weights["fc_mu.weight"], model.state_dict()["fc_mu.weight"])
    assert json.loads(archive.read("my-vae/config.json")) == config


def test_stop_mid_run_keeps_a_usable_model(registry):
    job = registry.start("session-a", TrainConfig(epochs=50, **SMALL))
    wait_for(lambda: job.progress is not None and job.progress.step >= 3)
    job.stop()
    assert job.wait(60) and job.state == "stopped" and job.note == "stopped from the sidebar"
    # Stopped mid-epoch: the epochs begun are in the history, the last one validated after its last step.
    assert len(job.history) == job.progress.epoch and job.fraction() < 0.1
    model, _, metrics = load_checkpoint(job.folder)
    assert metrics["train"]["stopped"] is True and 1 <= metrics["train"]["best_epoch"] <= len(job.history)
    assert torch.isfinite(model.sample(4)).all()


def test_a_nan_loss_fails_with_one_sentence_and_frees_the_slot(registry, test_split):
    images, labels = test_split[0][:300].clone(), test_split[1][:300]
    images[5, 0, 3, 3] = float("nan")
    job = registry.start("session-a", TrainConfig(epochs=1, **SMALL), data=(images, labels))
    assert job.wait(60) and job.state == "failed" and job.folder is None and job.metrics is None
    assert job.error.startswith("Training diverged: the loss became nan") and "learning rate" in job.error
    assert "Traceback" not in job.error and job.error.count(". ") == 0
    again = registry.start("session-a", TrainConfig(epochs=1, **SMALL), data=(test_split[0][:300], labels))
    assert again.wait(60) and again.state == "done"


def test_the_global_limit_and_one_job_per_session(registry, test_split):
    data = (test_split[0][:2000], test_split[1][:2000])
    long = TrainConfig(epochs=500, **SMALL)
    a = registry.start("session-a", long, data=data)
    with pytest.raises(BusyError, match="busy: 1 training job running"):
        registry.start("session-b", long, data=data)
    with pytest.raises(BusyError, match="This session is already training run 1 · mnist vae 2-d"):
        registry.start("session-a", long, data=data)
    assert registry.running() == [a]
    a.stop()
    assert a.wait(60) and a.state == "stopped"
    b = registry.start("session-b", long, data=data)  # the slot is free again
    registry.policy = registry.policy.replace(max_jobs=2)
    c = registry.start("session-c", long, data=data)
    with pytest.raises(BusyError, match="busy: 2 training jobs"):
        registry.start("session-d", long, data=data)
    assert {j.id for j in registry.running()} == {b.id, c.id} and b.name.startswith("run 2 ") and c.name.startswith("run 3 ")


@pytest.mark.parametrize("limits, alive, note", [
    (dict(heartbeat_timeout=0.3), None, "no sign of life for 0.3 s"),
    (dict(max_seconds=0.3), None, "time cap of 0.005 min"),
    (dict(alive_grace=0.2), lambda: False, "its browser session is gone"),
])
def test_a_job_whose_session_is_gone_stops_itself(tmp_path, test_split, limits, alive, note):
    registry = JobRegistry(Policy(max_jobs=1, **limits), folder=tmp_path)
    job = registry.start("session-a", TrainConfig(epochs=500, **SMALL), alive=alive,
                         data=(test_split[0][:2000], test_split[1][:2000]))
    # Issue 37, item 7: this asserted that it stopped within 10 s of starting; a loaded machine took 10.8 s.
    # The mechanism instead: its own limit stopped it (the state, the note), before its 500 epochs ran out
    # (unstopped, it would end "done"). The wait is a bound on a hang, not a measurement.
    assert job.wait(300), "the job did not stop itself"
    assert job.state == "stopped" and note in job.note and job.error is None
    train = load_checkpoint(job.folder)[2]["train"]
    assert train["stopped"] is True and train["epochs"] == len(job.history) < 500 and job.fraction() < 1


def test_a_touched_job_keeps_running(tmp_path, test_split):
    registry = JobRegistry(Policy(max_jobs=1, heartbeat_timeout=0.5), folder=tmp_path)
    job = registry.start("session-a", TrainConfig(epochs=500, **SMALL), alive=lambda: True,
                         data=(test_split[0][:2000], test_split[1][:2000]))
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.5:
        job.touch()
        time.sleep(0.1)
    assert job.running and job.note is None
    job.stop()
    job.wait(60)


def test_default_limit_from_the_environment(monkeypatch):
    monkeypatch.delenv("VAE_MAX_JOBS", raising=False)
    assert default_max_jobs("cpu") == 1 and default_max_jobs("cuda") == 2
    monkeypatch.setenv("VAE_MAX_JOBS", "3")
    assert default_max_jobs("cpu") == 3 and JobRegistry().policy.max_jobs == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("VAE_MAX_JOBS", bad)
        with pytest.raises(ValueError, match="VAE_MAX_JOBS must be a positive integer"):
            default_max_jobs()


def test_saving_a_user_model_never_overwrites(tmp_path, registry, test_split):
    job = registry.start("session-a", TrainConfig(epochs=1, **SMALL), data=(test_split[0][:300], test_split[1][:300]))
    assert job.wait(60) and job.state == "done"
    shipped, users = tmp_path / "pretrained", tmp_path / "user_models"
    (shipped / "mnist-vae-2d").mkdir(parents=True)
    for bad in ("", "../evil", "a b", "é", "x" * 65, ".hidden"):
        with pytest.raises(ModelNameError, match="not a usable name"):
            save_user_model(job.folder, bad, users, reserved=(shipped,))
    with pytest.raises(ModelNameError, match="taken by a shipped model"):
        save_user_model(job.folder, "mnist-vae-2d", users, reserved=(shipped,))
    saved = save_user_model(job.folder, "my_vae-1", users, reserved=(shipped,))
    assert saved == users / "my_vae-1" and load_checkpoint(saved)[1] == load_checkpoint(job.folder)[1]
    before = (saved / "model.safetensors").read_bytes()
    with pytest.raises(ModelNameError, match="taken by a saved model"):
        save_user_model(job.folder, "my_vae-1", users, reserved=(shipped,))
    assert (saved / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in users.iterdir()) == ["my_vae-1"]  # no temporary folder left behind
    assert not list((shipped / "mnist-vae-2d").iterdir())


def test_format_seconds():
    assert [format_seconds(s) for s in (None, float("nan"), 0.4, 42, 185, 3725)] == \
        ["?", "?", "0 s", "42 s", "3 min 05 s", "1 h 02 min"]


def test_jobs_never_import_streamlit():
    code = ("import sys, vae.jobs; bad = [m for m in sys.modules if m.split('.')[0] in ('streamlit', 'plotly')];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_time_left_leaves_out_the_start_up_and_follows_the_recent_pace():
    """Issue 14, item 8: the estimate once swung from 21 to 3 minutes, as a slow first step weighed on
    the mean pace of the whole run. Here: a 30 s first step, then 1 s per step, then 0.5 s per step."""
    job = Job("j", "s", "n", TrainConfig(epochs=1), "cpu")
    JobRegistry._record(job, Progress(1, 1, 1000, 1, 30.0))
    assert job.seconds_left() is None  # nothing steady seen yet
    for i in range(2, 60):
        JobRegistry._record(job, Progress(1, i, 1000, 1, 30.0 + (i - 1)))
    assert job.seconds_left() == pytest.approx(1000 - 59)  # the mean pace would say 88 * 941 / 59 = 1403 s
    for i in range(60, 260):  # the pace doubles for 100 s, longer than the 60 s window: the estimate follows
        JobRegistry._record(job, Progress(1, i, 1000, 1, 88.0 + (i - 59) * 0.5))
    assert job.seconds_left() == pytest.approx((1000 - 259) * 0.5)


def test_the_server_holds_the_bounds_whatever_the_widgets_sent(tmp_path):
    """What a visitor's job may ask for is checked by the registry, not only by the sidebar's widgets."""
    registry = JobRegistry(Policy(max_jobs=1, max_epochs=20), folder=tmp_path)
    for bad, match in ((dict(epochs=21), "epochs must be from 1 to 20"), (dict(latent_dim=65), "latent_dim"),
                       (dict(batch_size=4096), "batch_size"), (dict(lr=1.0), "lr"), (dict(beta=1e6), "beta"),
                       (dict(dataset="../../etc"), "dataset"), (dict(compile=True), "compile"),
                       (dict(device="cuda:7"), "device")):
        with pytest.raises(ValueError, match=match):
            registry.start("session-a", TrainConfig(**{**SMALL, **bad}))
    for bad_session in ("", "../up", "a/b", "x" * 65):
        with pytest.raises(ValueError, match="session key"):
            registry.start(bad_session, TrainConfig(epochs=1, **SMALL))
    assert registry.running() == [] and not any(tmp_path.iterdir())  # nothing started, nothing written


def test_a_session_keeps_its_newest_models_and_loses_them_when_it_is_gone(tmp_path, test_split):
    """Models live in ROOT/SESSION/JOB: the oldest beyond keep_per_session are deleted as new ones
    finish, all of a session's once its check has said "gone" for session_grace seconds, and the
    server refuses a job while max_models models are kept."""
    here = {"a": True, "b": True}
    registry = JobRegistry(Policy(max_jobs=1, keep_per_session=2, max_models=3, session_grace=0.5, sweep_every=0.2),
                           folder=tmp_path)
    data = (test_split[0][:300], test_split[1][:300])
    jobs = []
    for i in range(3):
        jobs.append(registry.start("session-a", TrainConfig(epochs=1, seed=i, **SMALL), alive=lambda: here["a"],
                                   data=data))
        assert jobs[-1].wait(60) and jobs[-1].state == "done"
    assert jobs[0].folder is None and [j.folder.parent for j in jobs[1:]] == [tmp_path / "session-a"] * 2
    assert sorted(p.name for p in (tmp_path / "session-a").iterdir()) == sorted(j.id for j in jobs[1:])
    b = registry.start("session-b", TrainConfig(epochs=1, **SMALL), alive=lambda: here["b"], data=data)
    assert b.wait(60) and b.state == "done" and len(registry.kept()) == 3
    with pytest.raises(BusyError, match="at most 3 trained models"):
        registry.start("session-c", TrainConfig(epochs=1, **SMALL), data=data)
    here["a"] = False  # session a closes its tab: after the grace its models go, and the janitor does it
    wait_for(lambda: not (tmp_path / "session-a").exists(), timeout=120)  # a bound on a hang, not a measurement
    assert all(j.folder is None for j in jobs) and registry.job(jobs[2].id) is None  # forgotten too
    assert (tmp_path / "session-b" / b.id / "model.safetensors").is_file() and registry.kept() == [b]
    c = registry.start("session-c", TrainConfig(epochs=1, **SMALL), data=data)  # room again
    assert c.wait(60) and c.state == "done"


def test_a_busy_server_says_how_long_the_wait_is(tmp_path, test_split):
    registry = JobRegistry(Policy(max_jobs=1), folder=tmp_path)
    data = (test_split[0][:2000], test_split[1][:2000])
    a = registry.start("session-a", TrainConfig(epochs=500, **SMALL), data=data)
    wait_for(lambda: a.seconds_left() is not None, timeout=30)
    with pytest.raises(BusyError, match=r"as many as this machine allows at once \(1\).*about \d+ min left"):
        registry.start("session-b", TrainConfig(epochs=1, **SMALL), data=data)
    a.stop()
    assert a.wait(60)


# ---------------------------------------------------------------- the runner: its channel, the hard kill


def test_a_child_that_ignores_the_stop_is_killed_within_the_grace_and_the_slot_is_free(tmp_path, monkeypatch):
    """Issue 24, item 4: stopping was only cooperative, so a wedged child held the only slot forever.
    Issue 37, item 7: "within the grace" on the runner's own clock (each pass of its watch loop reads it
    once), not as wall time this machine decides: asked to stop, then killed at the first pass more than
    the grace later, and not before."""
    clock, told, killed = [], [], []  # the runner's readings; (line, [last reading]) told the child; [reading] at kills

    class Clock:  # vae.runner's time module, its readings kept
        @staticmethod
        def monotonic() -> float:
            clock.append(time.monotonic())
            return clock[-1]

        sleep = staticmethod(time.sleep)

    tell, kill = runner._tell, runner._kill
    monkeypatch.setattr(runner, "time", Clock)
    monkeypatch.setattr(runner, "_tell", lambda child, line: told.append((line, clock[-1:])) or tell(child, line))
    monkeypatch.setattr(runner, "_kill", lambda child: killed.append(clock[-1:]) or kill(child))
    registry = JobRegistry(Policy(max_jobs=1, stop_grace=1.0), folder=tmp_path)
    monkeypatch.setattr(registry, "target", "jobs_targets:ignore_stop")
    job = registry.start("session-a", TrainConfig(epochs=1, **SMALL))
    wait_for(lambda: job.progress is not None or not job.running, timeout=60)  # the child has started
    with pytest.raises(BusyError):
        registry.start("session-b", TrainConfig(epochs=1, **SMALL))
    job.stop()
    assert job.wait(120) and job.state == "killed" and job.folder is None  # the wait: a bound on a hang
    [[asked]] = [at for line, at in told if line == "stop"]
    [[kill_at]] = killed
    assert kill_at - asked > 1.0  # not before the grace
    assert kill_at == min(t for t in clock if t - asked > 1.0)  # at the first pass after it
    assert "did not stop within 1 s" in job.error and "stopped from the sidebar" in job.error
    assert registry.running() == []
    monkeypatch.setattr(registry, "target", "vae.jobs:train_task")
    again = registry.start("session-b", TrainConfig(epochs=1, **SMALL), data=(torch.rand(300, 1, 28, 28),
                                                                              torch.randint(0, 10, (300,))))
    assert again.wait(60) and again.state == "done"


def test_a_child_past_its_time_cap_that_ignores_the_stop_is_killed(tmp_path, monkeypatch):
    registry = JobRegistry(Policy(max_jobs=1, max_seconds=0.5, stop_grace=0.5), folder=tmp_path)
    monkeypatch.setattr(registry, "target", "jobs_targets:ignore_stop")
    job = registry.start("session-a", TrainConfig(epochs=1, **SMALL))
    assert job.wait(30) and job.state == "killed" and "time cap" in job.error


def test_writes_to_file_descriptor_1_do_not_break_the_job(tmp_path, monkeypatch, test_split, capfd):
    """Issue 24, item 4: the messages went over the child's stdout, so a C library's write to fd 1 failed the job."""
    registry = JobRegistry(Policy(max_jobs=1), folder=tmp_path)
    monkeypatch.setattr(registry, "target", "jobs_targets:noisy_train")
    job = registry.start("session-a", TrainConfig(epochs=1, **SMALL), data=(test_split[0][:300], test_split[1][:300]))
    assert job.wait(60) and job.state == "done", job.error
    assert load_checkpoint(job.folder)[2]["train"]["epochs"] == 1 and job.history
    assert "garbage on fd 1" in capfd.readouterr().out  # it went to the server's log, not to the channel


def test_the_runner_reports_a_bug_with_its_traceback_and_a_dead_child_with_its_code():
    out = runner.run("vae.nonexistent_module:f", {}, grace=1.0)
    assert out.result is None and "ModuleNotFoundError" in out.error and "Traceback" in out.traceback
    out = runner.run("os:_exit", {}, grace=1.0)  # os._exit(task) raises TypeError... with a dict: a bug too
    assert out.result is None and out.error and not out.killed


def test_a_child_whose_parent_is_gone_exits_quietly():
    """A server stopped while a job trains: the child's next message finds the channel closed. It used to
    end in a BrokenPipeError traceback in the server's log (tests/e2e/test_public_server.py saw one)."""
    import os

    read_fd, write_fd = os.pipe()
    os.close(read_fd)  # the parent's end, gone before the child writes
    child = subprocess.Popen([sys.executable, "-c", "from vae.runner import child_main; child_main()"],
                             stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=(write_fd,),
                             cwd=runner.ROOT)
    os.close(write_fd)
    header = {"target": "jobs_targets:ignore_stop", "task": {}, "arrays": None, "fd": write_fd, "grace": 30.0,
              "path": [p for p in sys.path if p]}
    child.stdin.write(json.dumps(header) + "\n")
    child.stdin.flush()
    try:
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 70 and "Traceback" not in err, err


def test_the_policy_from_the_environment():
    assert Policy.from_env({"VAE_PUBLIC": "1"}) == Policy.for_public()
    p = Policy.from_env({"VAE_PUBLIC": "1", "VAE_MAX_JOBS": "2", "VAE_SESSION_GRACE_S": "3"})
    assert (p.public, p.max_jobs, p.max_epochs, p.session_grace, p.sweep_every, p.map_slots, p.map_max_n) == \
        (True, 2, 20, 3.0, 3.0, 1, 2000)
    local = Policy.from_env({"VAE_PUBLIC": "no", "VAE_MAX_JOBS": "3"})
    assert not local.public and local.max_jobs == 3 and local.map_slots is None and local.map_max_n is None
    with pytest.raises(ValueError, match="VAE_SESSION_GRACE_S must be a number of seconds"):
        Policy.from_env({"VAE_SESSION_GRACE_S": "soon"})


def test_map_jobs_one_per_session_shared_by_key_kept_once_done():
    """Outside public mode: no server limit, one map per session (a new request replaces the older), one
    job for one map whoever asks, a finished map kept for the next to ask, a failure in one sentence."""
    jobs = MapJobs(Policy(map_max_n=400))
    mu = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    idx, lab = np.arange(300), np.zeros(300, np.int64)

    def key(perplexity, n=300):
        return MapKey("folder", 1.0, "tsne", n, perplexity, 0)

    a = jobs.request("a", key(10.0), mu, idx, lab)
    assert jobs.request("b", key(10.0), mu, idx, lab) is a and a.sessions == {"a", "b"} and a.state == "running"
    a2 = jobs.request("a", key(20.0), mu, idx, lab)  # session a moves on; b still waits for the first
    assert a.active and a.sessions == {"b"} and a2.state == "running"
    jobs.cancel("a", a2)
    assert a2.wait(120) and a2.state == "cancelled"  # the wait: a bound on a hang (uncancelled, it ends "done")
    assert a.wait(120) and a.state == "done", a.error
    emb = jobs.result(key(10.0))
    assert emb.coords.shape == (300, 2) and emb.method == "tsne" and emb.perplexity == 10.0
    assert torch.equal(emb.indices, torch.arange(300)) and torch.equal(emb.mu, torch.from_numpy(mu))
    again = jobs.request("c", key(10.0), mu, idx, lab)
    assert again.state == "done" and again.result is emb and not jobs.running()
    bad = jobs.request("c", key(350.0), mu, idx, lab)
    assert bad.wait(120) and bad.state == "failed" and "t-SNE of 300 points needs a perplexity above 0 and at most (N - 1) / 3 = 99.7" in bad.error
    with pytest.raises(ValueError, match="at most 400 images"):
        jobs.request("d", key(10.0, n=500), mu, idx, lab)
