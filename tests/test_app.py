"""AppTest runs of app.py and its pages: no exception, and the main widgets change what is shown."""

import pytest
from conftest import ROOT, SHIPPED, open_app, shown

from ui.models import loss_name, score_line
from vae.checkpoint import load_checkpoint


def test_shipped_models_are_there():
    assert {"mnist-vae-2d", "mnist-vae-20d", "mnist-cvae", "fashion-vae-2d"} <= set(SHIPPED)


def test_app_opens_on_the_landing_page():
    """Issue 25: the app says what it is, where to start, which data it uses and what each model is for."""
    at = open_app(None)
    assert at.title[0].value == "VAE Latent Space Explorer" and not at.error
    assert "variational autoencoder" in at.markdown[0].value
    assert any(m.value.startswith("**Data:**") for m in at.markdown)
    table = at.dataframe[0].value
    assert set(SHIPPED) <= set(table["Model"]) and table["What it is for"].str.len().min() > 0


def test_the_manifold_of_the_2d_model():
    at = open_app()
    assert at.sidebar.selectbox[0].value == "mnist-vae-2d"
    assert at.title[0].value == "Latent manifold"
    assert len(shown(at)) == 1 and shown(at)[0].endswith(".png")
    assert "z[0]" in at.get("image")[0].proto.imgs[0].caption
    assert not at.error


def test_grid_size_span_and_spacing_change_the_grid():
    at = open_app()
    seen = {shown(at)[0]}
    at.slider[0].set_value(8).run()
    seen.add(shown(at)[0])
    at.slider[1].set_value(3.0).run()
    seen.add(shown(at)[0])
    at.radio[0].set_value("linear").run()
    seen.add(shown(at)[0])
    assert not at.exception and len(seen) == 4
    assert "from -3 (left) to 3 (right)" in at.get("image")[0].proto.imgs[0].caption


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_shows_its_manifold(name):
    at = open_app(model=name)
    assert len(shown(at)) == 1 and not at.error


def test_larger_latent_space_picks_two_dimensions():
    at = open_app(model="mnist-vae-20d")
    kl = load_checkpoint(ROOT / "pretrained" / "mnist-vae-20d")[2]["test"]["kl_per_dim"]
    order = sorted(range(20), key=lambda j: -kl[j])  # the pickers' order: most informative first
    before = shown(at)[0]
    horizontal, vertical = at.selectbox[0], at.selectbox[1]
    assert horizontal.label == "Horizontal dimension" and vertical.label == "Vertical dimension"
    assert (horizontal.value, vertical.value) == (order[0], order[1])
    third = order[2]  # active too, so the grid changes along it
    horizontal.select(third).run()
    assert shown(at)[0] != before and f"z[{third}]" in at.get("image")[0].proto.imgs[0].caption
    at.radio[1].set_value("a random draw").run()
    assert "random draw" in at.get("image")[0].proto.imgs[0].caption
    at.selectbox[1].select(third).run()
    assert at.warning and "two different" in at.warning[0].value and not shown(at)


def test_cvae_class_picker_changes_the_grid():
    at = open_app(model="mnist-cvae")
    control = at.get("button_group")[1]  # after the view picker
    before = shown(at)[0]
    control.set_value(7).run()
    assert not at.exception and shown(at)[0] != before


def test_manifold_views_ticks_overlay_and_png_download():
    """Issue 14's additions: z ticks, the test encodings over the grid, the prior samples and the
    reconstructions one click away, and a PNG of each at a chosen scale."""
    import io

    import numpy as np
    from PIL import Image

    from ui.images import png_bytes

    at = open_app()
    grid = at.get("image")[0]
    assert "z[0]" in grid.proto.imgs[0].caption and at.get("download_button")
    before = shown(at)[0]
    at.toggle(key="manifold/overlay").set_value(True).run()
    assert not at.exception and shown(at)[0] != before and "dots: test encodings" in at.get("image")[0].proto.imgs[0].caption
    view = at.get("button_group")[0]
    view.set_value("Prior samples").run()
    assert not at.exception and "64 draws from the prior" in at.get("image")[0].proto.imgs[0].caption
    first = shown(at)[0]
    at.button(key="manifold_new_samples").click().run()
    assert shown(at)[0] != first
    at.get("button_group")[0].set_value("Reconstructions").run()
    assert not at.exception and "each over its reconstruction" in at.get("image")[0].proto.imgs[0].caption
    assert at.get("download_button")[0].proto.label == "Download PNG"
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    image = Image.open(io.BytesIO(png_bytes(pixels, 4)))
    assert image.size == (16, 12) and np.array_equal(np.asarray(image)[::4, ::4], pixels)

def test_the_sidebar_names_the_number_it_shows():
    assert loss_name({"beta": 1.0}) == "-ELBO"
    assert loss_name({"beta": 4.0}) == "loss (β = 4)"  # not an ELBO: the KL weighs 4 times
    assert loss_name({"beta": 1.0, "objective": "iwae", "iwae_k": 5}) == "-L_k (IWAE, k = 5)"
    run = {"train": {"best_epoch": 2}, "history": [{"val_loss": 300.0}, {"val_loss": 250.04}]}
    assert score_line({"beta": 4.0}, run) == " · validation loss (β = 4) 250.0 nats"
    assert score_line({"beta": 1.0}, {**run, "test": {"neg_elbo": 101.26}}) == " · test -ELBO 101.3 nats"
    binarized = {"test_binarized": {"neg_elbo": 90.0, "protocol": "binarized"}}
    assert score_line({"beta": 1.0}, binarized) == " · test -ELBO (binarized) 90.0 nats"
    assert score_line({"beta": 1.0}, {}) == ""


@pytest.mark.parametrize("page", ["reconstruct", "sliders", "interpolate", "embeddings", "ae_vs_vae", "theory"])
def test_no_chart_takes_a_swipe_for_a_drag(page):
    """Issue 14, item 7: on a phone, a vertical swipe over a Plotly chart drew a lasso (or zoomed)
    instead of scrolling. Every chart opens with no drag mode; its toolbar offers zoom and selection."""
    import json

    at = open_app(page)
    charts, vega = at.get("plotly_chart"), at.get("vega_lite_chart")
    assert len(charts) + len(vega) > 0
    for chart in charts:
        assert json.loads(chart.proto.spec)["layout"].get("dragmode") is False, (page, chart.proto.id)
    for chart in vega:  # Vega-Lite (the Embeddings page): a click selects; no drag selection, zoom or pan
        params = [q for layer in json.loads(chart.proto.spec).get("layer", []) for q in layer.get("params", [])]
        params += json.loads(chart.proto.spec).get("params", [])
        assert params and all(q["select"]["type"] == "point" and "bind" not in q for q in params), (page, params)


def test_a_manifold_cell_opens_in_the_sliders():
    """Issue 14: a cell of the grid loads its z into the sliders."""
    from vae.latent import grid_coordinates

    at = open_app()
    at.number_input(key="manifold_cell_col").set_value(15)  # the right column
    at.number_input(key="manifold_cell_row").set_value(1)  # the top row
    at.button(key="manifold_cell_open").click().run()
    assert not at.exception and at.title[0].value == "Latent sliders"
    top = float(grid_coordinates(15, 2.0, "quantile")[-1])
    z = [at.slider(key=f"sliders/mnist-vae-2d/z{j}").value for j in range(2)]
    assert z == [round(top, 2), round(top, 2)]
    assert "the manifold cell (15, 1)" in at.get("image")[0].proto.imgs[0].caption


def test_ui_imports_what_plotly_imports_lazily():
    """Issue 18: Plotly reads pandas from sys.modules while a concurrent first visit may still be
    importing it; importing ui (which every page and app.py do first) completes pandas beforehand."""
    import subprocess
    import sys

    code = ("import sys; import ui; m = sys.modules.get('pandas'); "
            "assert m is not None and hasattr(m, 'Series') and hasattr(m, 'DataFrame'), 'pandas not imported by ui'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_every_cache_is_bounded():
    """Issue 18: memory levels off however many visitors and models pass: every st.cache_data and
    st.cache_resource under app.py, ui/ and pages/ has max_entries, except the one job registry
    (a function without arguments: one entry)."""
    import ast

    unbounded, found = [], 0
    for path in [ROOT / "app.py", *sorted((ROOT / "ui").glob("*.py")), *sorted((ROOT / "pages").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for d in node.decorator_list:
                call = d if isinstance(d, ast.Call) else None
                name = ast.unparse(call.func if call else d)
                if name in ("st.cache_data", "st.cache_resource"):
                    found += 1
                    bounded = call is not None and any(k.arg == "max_entries" for k in call.keywords)
                    if not bounded and (node.args.args or node.args.kwonlyargs):
                        unbounded.append(f"{path.name}:{node.name}")
    assert found >= 15 and unbounded == []  # 15 cached functions when this test was written


def test_the_model_cache_keeps_its_bound(tmp_path, monkeypatch):
    """Loading more models than ui.models keeps (16) evicts the least recent: the first is loaded again."""
    import shutil

    from ui import models

    loads = []
    real = models.load_checkpoint
    monkeypatch.setattr(models, "load_checkpoint", lambda folder, device: loads.append(folder) or real(folder, device))
    models._load.clear()
    folders = []
    for i in range(17):
        folders.append(shutil.copytree(ROOT / "pretrained" / "mnist-vae-2d", tmp_path / f"m{i}"))
        models.load_model(str(folders[-1]))
    models.load_model(str(folders[-1]))  # still cached
    assert len(loads) == 17
    models.load_model(str(folders[0]))  # evicted by the 17th
    assert len(loads) == 18
    models._load.clear()
