"""The sidebar's "Train a model" panel under AppTest: the Train button's real path, Stop, errors, limits.

These tests run app.py, whose default page is the manifold. A fragment's run_every does not tick under AppTest: the tests poll the job registry and rerun.
"""


import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, open_app, rerun, wait_for
import ui
from ui import training
from ui.charts import history_figure, kl_heatmap
from ui.maps import map_jobs
from ui.models import MODEL_KEY, SESSION_MODELS_KEY
from vae.checkpoint import load_checkpoint
from vae.data import load_dataset
from vae.jobs import JobRegistry
from vae.policy import Policy
from vae.latent import ACTIVE_KL_THRESHOLD
from vae.models import build_model
from vae.train import (TrainConfig, active_units_per_epoch, collapse_warning, evaluate_loss, history_row,
                       kl_per_dim_history)

pytestmark = pytest.mark.slow  # most tests here train in a child process

TRAIN = "FormSubmitter:train_form-Train"


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch, tmp_path):
    """A registry of our own (limit 1), and a user models folder in tmp_path."""
    monkeypatch.setattr(ui, "POLICY", Policy(max_jobs=1))
    monkeypatch.setenv("VAE_USER_MODELS", str(tmp_path / "user_models"))
    training.job_registry.clear()
    yield
    for job in training.job_registry().running():
        job.stop("end of test")
        job.wait(60)
    training.job_registry.clear()


def app() -> AppTest:
    return open_app()


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def press_train(at: AppTest, epochs: int = 1) -> AppTest:
    """Set the epochs (the rest at their defaults: MNIST, VAE, 2-d, batch 128) and press Train."""
    at.sidebar.number_input(key="train_epochs").set_value(epochs)
    return ok(at.sidebar.button(key=TRAIN).click().run())


def job_of(at: AppTest):
    return training.job_registry().job(at.session_state["train_job_id"])


def manifold_caption(at: AppTest) -> str:
    return at.get("image")[0].proto.imgs[0].caption


def test_the_real_app_shows_the_training_form_and_device():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    labels = [w.label for w in (*at.sidebar.selectbox, *at.sidebar.radio, *at.sidebar.number_input)]
    assert {"Model", "Dataset", "Model type", "Latent dim.", "Epochs", "Batch size", "Learning rate", "Beta",
            "Likelihood"} <= set(labels)
    assert at.sidebar.button(key=TRAIN).label == "Train"
    assert at.sidebar.radio(key="train_model").options == ["VAE", "ConvVAE", "CVAE", "class-prior VAE", "AE"]
    assert any(c.value.startswith("Device: CPU (") or c.value.startswith("Device: CUDA: ") for c in at.sidebar.caption)


def test_train_button_trains_and_the_model_joins_the_picker(tmp_path):
    at = app()
    assert at.sidebar.selectbox[0].value == "mnist-vae-2d"
    press_train(at, epochs=1)
    job = job_of(at)
    assert job.config.epochs == 1 and job.config.dataset == "mnist" and job.config.model == "vae"
    assert job.config.hidden == [400] and job.config.device == "auto"  # the CLI's defaults
    if job.running:  # the live part: progress, chart, Stop
        assert [b.label for b in at.sidebar.button] == ["Stop", "Train"] and at.sidebar.button[1].disabled
        assert any(c.value.startswith(f"Training **{job.name}** on ") for c in at.sidebar.caption)
    assert job.wait(120) and job.state == "done", job.error

    ok(at.run())
    picker = at.sidebar.selectbox[0]
    assert picker.value == job.name and f"session: {job.name}" in picker.options
    assert manifold_caption(at).startswith(f"{job.name}: horizontal z[0]")  # the page uses the new model
    assert "Trained **run 1 · mnist vae 2-d**: 1 epoch in" in at.sidebar.success[0].value
    assert any("validation -ELBO" in c.value for c in at.sidebar.caption)
    download = next(b for b in at.get("download_button") if b.proto.label.endswith(".zip"))
    assert download.label == "Download run-1-mnist-vae-2-d.zip"
    chart, strip = at.sidebar.get("plotly_chart")  # the history, then the per-dimension KL
    assert "validation -ELBO" in chart.proto.spec and "after epoch 1" in chart.proto.spec
    assert "active units" in strip.proto.spec and len(job.history[0]["val_kl_per_dim"]) == 2
    assert not at.sidebar.warning  # beta = 1 on the whole split: no collapse

    # Back to a shipped model and again to the trained one: the picker keeps it for the session.
    ok(picker.select("mnist-vae-2d").run())
    assert manifold_caption(at).startswith("mnist-vae-2d: ")
    ok(at.sidebar.selectbox[0].select(job.name).run())
    assert manifold_caption(at).startswith(job.name)

    # Save it for every session; names are checked and nothing is overwritten.
    save = f"FormSubmitter:train_save_{job.id}-Save to user models"
    at.sidebar.text_input[0].set_value("mnist-vae-2d")
    ok(at.sidebar.button(key=save).click().run())
    assert "taken by a shipped model" in at.sidebar.error[0].value
    at.sidebar.text_input[0].set_value("my-first-vae")
    ok(at.sidebar.button(key=save).click().run())
    folder = tmp_path / "user_models" / "my-first-vae"
    assert load_checkpoint(folder)[1]["epochs"] == 1
    assert "user: my-first-vae" in at.sidebar.selectbox[0].options and not at.sidebar.error
    assert at.sidebar.success[-1].value.startswith("Saved as *user: my-first-vae*")
    other = ok(app())  # another session sees the saved model, not the session one
    assert "user: my-first-vae" in other.sidebar.selectbox[0].options
    assert not any(o.startswith("session: ") for o in other.sidebar.selectbox[0].options)


def test_stop_button_keeps_the_best_weights_so_far():
    at = press_train(app(), epochs=200)
    job = job_of(at)
    wait_for(lambda: job.progress is not None and job.progress.step >= 2)
    ok(at.run())
    ok(at.sidebar.button(key="train_stop").click().run())
    assert job.wait(120) and job.state == "stopped" and job.note == "stopped from the sidebar"
    ok(at.run())
    assert at.sidebar.info[0].value.startswith(f"Stopped from the sidebar in epoch {job.progress.epoch}, step ")
    assert at.sidebar.selectbox[0].value == job.name and manifold_caption(at).startswith(job.name)
    assert len(job.history) == job.progress.epoch < 200
    p = job.progress  # stopped inside an epoch (422 steps each): the summary says that epoch was partial
    assert p.step < p.steps_per_epoch
    assert (f"{p.epoch - 1} full epoch" in at.sidebar.info[0].value
            and f"{p.step} of {p.steps_per_epoch} steps of epoch {p.epoch}" in at.sidebar.info[0].value)


def test_a_nan_loss_shows_an_error_and_keeps_the_model_in_use(monkeypatch):
    images, labels = load_dataset("mnist", "test")
    images = images[:500].clone()
    images[:, 0, 10, 10] = float("nan")  # in every image, so in both the training and validation parts
    at = app()
    registry, start = training.job_registry(), training.job_registry().start  # the button's path, with these images
    monkeypatch.setattr(registry, "start", lambda *args, **kwargs: start(*args, **kwargs, data=(images, labels[:500])))
    ok(at.sidebar.selectbox[0].select("mnist-vae-20d").run())
    before = manifold_caption(at)
    press_train(at, epochs=3)
    job = job_of(at)
    assert job.wait(120) and job.state == "failed"
    ok(at.run())
    assert [e.value for e in at.sidebar.error] == [job.error]
    assert job.error.startswith("Training diverged: the loss became nan in epoch 1")
    assert at.sidebar.selectbox[0].value == "mnist-vae-20d" and manifold_caption(at) == before
    assert not any(o.startswith("session: ") for o in at.sidebar.selectbox[0].options)
    assert not at.sidebar.button(key=TRAIN).disabled  # the session can train again


def test_two_sessions_respect_the_limit():
    first, second = app(), app()
    press_train(first, epochs=200)
    job = job_of(first)
    assert job.running
    press_train(second, epochs=1)
    assert "train_job_id" not in second.session_state
    assert second.sidebar.warning[0].value.startswith("The server is busy: 1 training job running")
    assert training.job_registry().running() == [job]
    job.stop()
    assert job.wait(120)
    press_train(second, epochs=1)  # the slot is free again
    assert job_of(second).session != job.session and job_of(second).wait(120)


def test_history_figure_draws_both_parts_and_splits():
    rows = [{"epoch": e, "train_recon": 300 - 3 * e, "val_recon": 298 - 2 * e, "train_kl": 7 + e / 10,
             "val_kl": 7.2 + e / 12, "val_loss": 305 - e} for e in range(1, 13)]
    fig = history_figure(rows, "loss (β = 4)")
    assert [(t.name, t.yaxis) for t in fig.data] == [("train", "y"), ("validation", "y"), ("train", "y2"),
                                                     ("validation", "y2")]
    assert list(fig.data[1].y) == [298 - 2 * e for e in range(1, 13)] and list(fig.data[2].y) == [7 + e / 10 for e in range(1, 13)]
    assert fig.layout.title.text == "validation loss (β = 4) 293.0 after epoch 12"
    single = history_figure(rows[:1])  # one epoch: points, and a title
    assert len(single.data[0].x) == 1 and "-ELBO 304.0 after epoch 1" in single.layout.title.text


# ---------------------------------------------------------------- posterior collapse: the per-dimension KL


def rows(kl_per_dim, recon=None, key=True):
    """A hand-made history: one row per epoch from each epoch's per-dimension KL (nats) and reconstruction."""
    recon = recon or [200.0] * len(kl_per_dim)
    out = []
    for e, (kl, r) in enumerate(zip(kl_per_dim, recon), 1):
        row = {"epoch": e, "seconds": e, "train_recon": r, "train_kl": sum(kl), "train_loss": r + sum(kl),
               "val_recon": r, "val_kl": sum(kl), "val_loss": r + sum(kl)}
        if key:
            row["val_kl_per_dim"] = kl
        out.append(row)
    return out


def test_collapse_warning_and_active_units_on_histories_with_known_answers():
    healthy = rows([[3.0, 2.5], [3.5, 3.0], [4.0, 3.2]], recon=[180, 160, 150])
    assert active_units_per_epoch(healthy) == [2, 2, 2] and collapse_warning(healthy) is None

    # 10-d, four dimensions in use and six at the prior: the usual, partly collapsed VAE, and no warning
    partial = rows([[5.0, 4.0, 3.0, 2.0] + [0.002] * 6] * 3, recon=[120, 110, 105])
    assert active_units_per_epoch(partial) == [4, 4, 4] and collapse_warning(partial) is None
    assert active_units_per_epoch(rows([[ACTIVE_KL_THRESHOLD, 0.0099]])) == [1]  # at the threshold is active

    # rule 1: every dimension under 0.01 nats, even after one epoch
    collapsed = rows([[0.5, 0.3], [0.004, 0.002]])
    assert active_units_per_epoch(collapsed) == [2, 0]
    message = collapse_warning(collapsed, beta=50)
    assert message.startswith("Posterior collapse: after epoch 2, all 2 latent dimensions carry under 0.01 nats "
                              "of KL on the validation images (0.006 in all).")
    assert "decoder ignores z" in message and "Lower beta (now 50)" in message
    assert "--warmup" in message and "weaker decoder" in message and len(message.split()) < 70  # a sidebar's worth
    assert collapse_warning(rows([[0.003, 0.001]])) is not None

    # rule 2: the total KL falls under 0.5 nats, 92% below its peak, while the reconstruction stays put
    falling = rows([[2.5, 2.5], [1.0, 1.0], [0.2, 0.2]], recon=[200.0, 199.0, 198.0])
    assert active_units_per_epoch(falling) == [2, 2, 2]
    message = collapse_warning(falling)
    assert message.startswith("Posterior collapse under way: the validation KL fell to 0.40 nats after epoch 3, "
                              "92% below its peak of 5.00 in epoch 1")
    assert "(200.0 to 198.0 nats)" in message and "Lower beta, warm" in message and len(message.split()) < 70
    # ... but not when the reconstruction improved by 2% or more, the KL is still 0.5 nats or more, or
    # it fell by 80% or less
    assert collapse_warning(rows([[2.5, 2.5], [0.2, 0.2]], recon=[200.0, 196.0])) is None
    assert collapse_warning(rows([[2.5, 2.5], [0.25, 0.25]], recon=[200.0, 200.0])) is None
    assert collapse_warning(rows([[1.0, 1.0], [0.2, 0.2]], recon=[200.0, 200.0])) is None  # down 80%, not more
    assert collapse_warning(rows([[0.2, 0.2]])) is None  # one epoch: no peak before the last
    assert collapse_warning(rows([[0.1, 0.1], [0.2, 0.2]])) is None  # rising

    # a plain autoencoder (no KL) and a history from before the per-dimension KL was kept: nothing
    for old in (rows([[0.0, 0.0]] * 2, key=False), rows([[0.001, 0.001]] * 2, key=False)):
        assert kl_per_dim_history(old) is None and active_units_per_epoch(old) is None
        assert collapse_warning(old) is None
    assert kl_per_dim_history([]) is None and collapse_warning([]) is None


def test_history_rows_keep_the_validation_kl_of_each_dimension():
    val = {"recon": 150.0, "kl": 3.0, "loss": 153.0, "kl_per_dim": [1.23456789, 1.76543211]}
    row = history_row(2, 1.23456, {"recon": 151.0, "kl": 3.1, "loss": 154.1}, val)
    assert row["val_kl_per_dim"] == [1.2346, 1.7654] and row["val_kl"] == 3.0
    assert set(row) == {"epoch", "seconds", "train_recon", "train_kl", "train_loss", "val_recon", "val_kl",
                        "val_loss", "val_kl_per_dim"}
    assert "val_kl_per_dim" not in history_row(1, 1.0, {"recon": 1.0, "kl": 0.0, "loss": 1.0},
                                               {"recon": 1.0, "kl": 0.0, "loss": 1.0})
    images, labels = load_dataset("mnist", "test")
    x, y = images[:64], labels[:64]
    for kind, d in (("vae", 3), ("cvae", 3), ("ae", 3)):
        config = TrainConfig(model=kind, latent_dim=d, hidden=[32])
        m = evaluate_loss(build_model(config).eval(), x, y, config, per_dim=True)
        if kind == "ae":  # no KL, so no per-dimension KL
            assert "kl_per_dim" not in m and m["kl"] == 0.0
        else:
            assert len(m["kl_per_dim"]) == d and sum(m["kl_per_dim"]) == pytest.approx(m["kl"], rel=1e-9)
        assert "kl_per_dim" not in evaluate_loss(build_model(config).eval(), x, y, config)


def test_kl_heatmap_draws_epochs_by_dimensions_under_the_active_units():
    kl = [[3.0, 0.001, 1.0], [3.5, 0.002, 0.5], [4.0, 0.001, 0.004]]
    fig = kl_heatmap([1, 2, 3], kl, [2, 2, 1], ACTIVE_KL_THRESHOLD)
    strip, heat = fig.data
    assert list(strip.x) == [1, 2, 3] and list(strip.y) == [2, 2, 1]
    assert heat.type == "heatmap" and list(heat.x) == [1, 2, 3] and list(heat.y) == [0, 1, 2]
    assert [list(r) for r in heat.z] == [[3.0, 3.5, 4.0], [0.001, 0.002, 0.001], [1.0, 0.5, 0.004]]  # (D, E)
    assert heat.zmin == 0 and heat.zmax == 4.0 and "nats" in heat.hovertemplate
    assert list(fig.layout.yaxis2.ticktext) == ["z[0]", "z[1]", "z[2]"]
    assert [a.text for a in fig.layout.annotations] == ["active units (KL ≥ 0.01 nats) of 3",
                                                         "validation KL per dimension (nats)"]
    dark = kl_heatmap([1], [[0.003, 0.001]], [0], ACTIVE_KL_THRESHOLD)
    assert dark.data[1].zmax == 1.0  # a collapsed run is dark, not stretched to its own tiny range
    wide = kl_heatmap(list(range(1, 21)), [[0.5] * 64] * 20, [64] * 20, ACTIVE_KL_THRESHOLD)
    assert len(wide.layout.yaxis2.ticktext) == 8 and wide.layout.height <= 300  # fits the sidebar
    assert dark.layout.height < wide.layout.height


def _history_panel(history, beta):
    """history_chart alone, under AppTest.from_function."""
    from ui.training import history_chart
    from vae.train import TrainConfig

    history_chart(history, TrainConfig(beta=beta))


@pytest.mark.parametrize("case", ["collapsed", "healthy", "old", "ae"])
def test_the_history_panel_shows_the_strip_and_the_warning_only_where_they_apply(case):
    history = {"collapsed": rows([[0.5, 0.3], [0.004, 0.002]]), "healthy": rows([[3.0, 2.0], [3.5, 0.001]]),
               "old": rows([[3.0, 2.0]] * 2, key=False), "ae": rows([[0.0, 0.0]] * 2, key=False)}[case]
    at = AppTest.from_function(_history_panel, args=(history, 50.0 if case == "collapsed" else 1.0)).run()
    assert not at.exception, [e.value for e in at.exception]
    charts = at.get("plotly_chart")
    if case in ("old", "ae"):
        assert len(charts) == 1 and not at.warning and not at.caption  # the history chart alone
        return
    assert len(charts) == 2 and "active units" in charts[1].proto.spec
    active = 0 if case == "collapsed" else 1
    assert at.caption[0].value.startswith(f"Active units after epoch 2: **{active} of 2**")
    if case == "collapsed":
        assert at.warning[0].value.startswith("Posterior collapse: after epoch 2") and "(now 50)" in at.warning[0].value
    else:
        assert not at.warning


@pytest.mark.parametrize("beta, collapses", [(100.0, True), (1.0, False)])
def test_a_real_run_with_a_large_beta_shows_the_collapse_warning(monkeypatch, beta, collapses):
    """Two epochs (64 steps) of the 2-d VAE on 2,000 training images, batch 64, through the Train
    button: beta = 100 (the widget's largest) pays 100 nats per nat of KL, so the encoder gives z up
    (both dimensions at 0.001 to 0.002 nats after epoch 2, seeds 0 to 2); beta = 1 keeps both active
    (0.2 nats and more)."""
    # One intra-op thread in the training process: a run this small gains nothing from a second, and on a
    # machine whose cores are busy OpenMP's waiting threads made it 40 times slower (12 s instead of 0.3 s).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    images, labels = load_dataset("mnist", "train")
    data = (images[:2000].clone(), labels[:2000].clone())
    at = app()
    registry, start = training.job_registry(), training.job_registry().start
    monkeypatch.setattr(registry, "start", lambda *args, **kwargs: start(*args, **kwargs, data=data))
    at.sidebar.number_input(key="train_beta").set_value(beta)
    at.sidebar.selectbox(key="train_batch_size").set_value(64)
    press_train(at, epochs=2)
    job = job_of(at)
    assert job.config.beta == beta and job.wait(120) and job.state == "done", job.error
    ok(at.run())
    history = load_checkpoint(job.folder)[2]["history"]  # metrics.json keeps it for later
    assert history == job.history and all(len(h["val_kl_per_dim"]) == 2 for h in history)
    assert sum(history[-1]["val_kl_per_dim"]) == pytest.approx(history[-1]["val_kl"], abs=1e-3)
    active = active_units_per_epoch(history)
    strip = at.sidebar.get("plotly_chart")[1]
    assert "active units" in strip.proto.spec
    assert any(c.value.startswith(f"Active units after epoch 2: **{active[-1]} of 2**") for c in at.sidebar.caption)
    warnings = [w.value for w in at.sidebar.warning]
    if collapses:
        assert active[-1] == 0 and len(warnings) == 1 and warnings[0].startswith("Posterior collapse")
        assert "Lower beta (now 100)" in warnings[0]
    else:
        assert active[-1] == 2 and not warnings


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch model of each type but the ConvVAE, trained once for all pages by a registry of their own."""
    # nothing touches their heartbeats here: a slow machine must not stop them at the 180 s default
    registry = JobRegistry(Policy(max_jobs=4, heartbeat_timeout=3600), folder=tmp_path_factory.mktemp("session-models"))
    jobs = {kind: registry.start(f"pages-{kind}".replace("_", "-"),
                                 TrainConfig(model=kind, epochs=1, latent_dim=2, hidden=[64]))
            for kind in ("vae", "cvae", "cvae_class_prior", "ae")}
    for job in jobs.values():
        job.wait(300)
    assert {k: (j.state, j.error) for k, j in jobs.items()} == {k: ("done", None) for k in jobs}
    return jobs


@pytest.mark.parametrize("page", ["manifold", "reconstruct", "sliders", "interpolate", "cvae", "embeddings",
                                  "ae_vs_vae", "theory"])
@pytest.mark.parametrize("kind", ["vae", "cvae", "cvae_class_prior", "ae"])
def test_pages_work_with_a_model_trained_in_the_session(page, kind, trained):
    """Every page gets the picked model from the sidebar's one Selection, so a session model works there too."""
    job = trained[kind]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[SESSION_MODELS_KEY] = {job.name: str(job.folder)}
    at.session_state[MODEL_KEY] = job.name
    rerun(at)
    at.switch_page(f"pages/{page}.py")
    rerun(at)
    assert at.sidebar.selectbox[0].value == job.name and not at.error
    if page == "embeddings":  # no stored maps: a 2,000-image map is computed, not one of the whole test split
        assert at.slider(key=f"embeddings/{job.name}/n").value == 2000
        assert at.info[0].value.startswith("Computing a t-SNE map of 2,000 test images in the background")
        wait_for(lambda: [j.touch() for j in map_jobs().running()] == [], timeout=180)  # the page's poll, by hand
        rerun(at)
        what = "codes" if kind == "ae" else "means"  # a plain autoencoder has codes z = f(x), not means of q(z|x)
        assert any(c.value.startswith(f"t-SNE of the {what} of 2,000 test images") for c in at.caption)


@pytest.fixture
def public(monkeypatch):
    """The app as VAE_PUBLIC=1 makes it (the policy is built once, at import, so the test sets it there)."""
    monkeypatch.setattr(ui, "POLICY", Policy.for_public())
    training.job_registry.clear()
    yield
    for job in training.job_registry().running():  # before fresh_registry's teardown, which would see a new registry
        job.stop("end of test")
        job.wait(60)
    training.job_registry.clear()


def test_public_mode_caps_training_and_saves_nothing(public, tmp_path):
    at = app()
    epochs = at.sidebar.number_input(key="train_epochs")
    assert epochs.max == 20 and "At most 20" in epochs.help
    bounds = training.job_registry().policy
    assert (bounds.max_jobs, bounds.max_epochs, bounds.keep_per_session, bounds.max_models,
            bounds.max_seconds) == (1, 20, 3, 24, 600.0)
    press_train(at, epochs=1)
    job = job_of(at)
    assert job.wait(120) and job.state == "done", job.error
    ok(at.run())
    assert at.sidebar.selectbox[0].value == job.name  # the model is the visitor's for the session
    assert any(b.proto.label.endswith(".zip") for b in at.get("download_button"))  # and downloads
    assert not [b for b in at.sidebar.button if "Save" in b.label] and not at.sidebar.text_input
    assert any("download the zip to keep this one" in c.value for c in at.sidebar.caption)
    with pytest.raises(PermissionError, match="public server"):  # the server's check, whatever the page shows
        training.save_to_user_models(job.folder, "mine")
    assert not (tmp_path / "user_models").exists()


def test_an_epoch_count_beyond_the_cap_never_reaches_a_job(public):
    """A value the widget would not offer (sent as a forged message would) does not start a 500-epoch
    job: Streamlit puts an out-of-range number back to the widget's default, and the registry refuses
    anything beyond its bounds (tests/test_jobs.py) whatever reaches it."""
    at = app()
    at.sidebar.number_input(key="train_epochs").set_value(500)
    ok(at.sidebar.button(key=TRAIN).click().run())
    assert at.sidebar.number_input(key="train_epochs").value == 10
    assert job_of(at).config.epochs == 10
    with pytest.raises(ValueError, match="epochs must be from 1 to 20 on this server"):
        training.job_registry().policy.check_training(TrainConfig(epochs=500))
