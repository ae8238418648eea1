"""The sidebar's "Train a model" panel under AppTest: the Train button's real path, Stop, errors, limits.

These tests run app.py, whose default page is the manifold. A fragment's run_every does not tick under AppTest: the tests poll the job registry and rerun.
"""


import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, open_app, rerun, wait_for
import ui
from ui import training
from ui.charts import history_figure
from ui.maps import map_jobs
from ui.models import MODEL_KEY, SESSION_MODELS_KEY
from vae.checkpoint import load_checkpoint
from vae.data import load_dataset
from vae.jobs import JobRegistry
from vae.policy import Policy
from vae.train import TrainConfig

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
    assert "Trained **mnist-vae-2d · run 1**: 1 epoch in" in at.sidebar.success[0].value
    assert any("validation -ELBO" in c.value for c in at.sidebar.caption)
    download = next(b for b in at.get("download_button") if b.proto.label.endswith(".zip"))
    assert download.label == "Download mnist-vae-2d-run-1.zip"
    (chart,) = at.sidebar.get("plotly_chart")
    assert "validation -ELBO" in chart.proto.spec and "after epoch 1" in chart.proto.spec

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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch model of each type but the ConvVAE, trained once for all pages by a registry of their own."""
    registry = JobRegistry(Policy(max_jobs=4), folder=tmp_path_factory.mktemp("session-models"))
    jobs = {kind: registry.start(f"pages-{kind}".replace("_", "-"),
                                 TrainConfig(model=kind, epochs=1, latent_dim=2, hidden=[64]))
            for kind in ("vae", "cvae", "cvae_class_prior", "ae")}
    assert all(job.wait(120) and job.state == "done" for job in jobs.values())
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
        assert at.slider(key="emb_n_new").value == 2000
        assert at.info[0].value.startswith("Computing a t-SNE map of 2,000 test images in the background")
        wait_for(lambda: [j.touch() for j in map_jobs().running()] == [], timeout=180)  # the page's poll, by hand
        rerun(at)
        assert any(c.value.startswith("t-SNE of the means of 2,000 test images") for c in at.caption)


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
