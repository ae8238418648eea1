"""Embeddings: a t-SNE, UMAP or PCA map of the encoder's means for test images; hover, select, compare."""

import os
import threading
import time

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
import torch

from ui import health, policy
from ui.charts import class_color
from ui.images import png_data_urls, show_image, test_images, thumbnails_url, upload_image
from ui.maps import new_map
from ui.models import Selection, test_encodings, weights_mtime
from vae.embeddings import (METHODS, STORED, UMAP_SETTINGS, EmbeddingError, Placer, compute_embedding, embedding_csv,
                            embedding_file, load_embedding, match_positions, restrict, sample_indices, sample_path,
                            weights_sha256)
from vae.evaluate import per_image
from vae.latent import decode_images, encode_images, tile

MAX_SHOWN = 40  # selected images shown with their reconstructions


@st.cache_data(show_spinner=False, max_entries=16)
def precomputed(folder: str, mtime: float, version: float, method: str = "tsne"):
    """The folder's stored map for ``method`` if its weights still match, else None; (map or None, note)."""
    try:
        emb = load_embedding(folder, method)
    except EmbeddingError as err:
        return None, f"The stored map is unusable ({err}); computing instead."
    if emb is not None and emb.weights_sha256 != weights_sha256(folder):
        return None, "The stored map is from other weights; computing instead."
    return emb, ""


@st.cache_data(show_spinner=False, max_entries=32)
def computed(folder: str, version: float, n: int, _sel: Selection):
    """The PCA map of the first n test encodings (milliseconds, so on the script thread), once per model
    (folder and weights' version) and n; the map and the positions of its images. New t-SNE and UMAP
    maps are background jobs (``ui.maps``)."""
    images, labels, indices, _ = test_images(_sel.config["dataset"])
    emb = compute_embedding(_sel.model, images, labels, indices, n, "pca",
                            first=sample_indices(sample_path(folder, _sel.config["dataset"])), mu=test_encodings(_sel)[0])
    return emb, match_positions(emb, indices)


@st.cache_data(show_spinner="Scoring each image...", max_entries=8)
def image_parts(folder: str, version: float, test_indices: bytes, _sel: Selection, _x, _y) -> dict:
    """Each map image's ELBO parts (``vae.evaluate.per_image``), once per model, weights and image set."""
    device = next(_sel.model.parameters()).device
    return per_image(_sel.model, _x.to(device), _y.to(device), _sel.config["likelihood"],
                     _sel.config.get("sigma", 0.1))


class BuildingPlacer:
    """A map's Placer, built in a background thread from the moment the map is shown, so that the first
    upload does not wait for it (1 to 2 s for 10,000 points, and openTSNE's import the first time)."""

    def __init__(self, emb):
        self._placer: Placer | None = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._build, args=(emb,), name="placer", daemon=True)
        self._thread.start()

    def _build(self, emb) -> None:
        try:
            self._placer = Placer(emb)
        except Exception as err:  # noqa: BLE001 - raised again, in the script, by get()
            self._error = err

    def get(self) -> Placer:
        """The Placer, once built (waits for the thread); raises what building it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._placer


@st.cache_resource(show_spinner=False, max_entries=4)
def placer(folder: str, version: float, method: str, n: int, perplexity: float, seed: int, _emb) -> BuildingPlacer:
    """The map's Placer, once per map, its building started now (``BuildingPlacer``)."""
    return BuildingPlacer(_emb)


@st.cache_data(show_spinner="Placing your image...", max_entries=32)
def place_image(folder: str, version: float, method: str, n: int, perplexity: float, seed: int, pixels: bytes,
                label: int | None, _sel: Selection, _emb):
    """(mu (1, latent_dim), map position (1, 2), milliseconds it took) of one 28x28 image, once per map
    and image."""
    t0 = time.perf_counter()
    x = torch.frombuffer(bytearray(pixels), dtype=torch.float32).view(1, 1, 28, 28)
    mu, _ = encode_images(_sel.model, x, None if label is None else torch.tensor([label]))
    where = placer(folder, version, method, n, perplexity, seed, _emb).get().place(mu)
    return mu, where, 1000 * (time.perf_counter() - t0)


STAR = "M0,-1L0.24,-0.31L0.95,-0.31L0.38,0.12L0.59,0.81L0,0.4L-0.59,0.81L-0.38,0.12L-0.95,-0.31L-0.24,-0.31Z"


@st.cache_data(show_spinner=False, max_entries=8)
def thumbnails(dataset: str, test_indices: bytes, _images) -> list[str]:
    """Each map image as a PNG data URL, carried in the charts themselves when Streamlit serves no
    static file (``ui.images.thumbnails_url`` is None). Once per dataset and image set."""
    return png_data_urls(_images)


def scatter(xy, emb, names: list[str], images: list[str] | str, axes: tuple[str, str], *, square: bool = False,
            values=None, value_name: str = "", highlight: list[int] | None = None, box: bool = False,
            placed=None) -> alt.LayerChart:
    """The map's points as a Vega-Lite chart (Altair): hover shows the test image, its index and class
    (and the value it is coloured by); a click selects a point, shift-click adds one, a click on empty
    space clears, and with ``box`` a drag selects a rectangle (off by default: a swipe over the chart
    then scrolls the page on a phone). Coloured by class, or by ``values`` (N,) with a colour bar over
    their 1st to 99th percentile (so a few outliers do not wash out the rest).

    xy: (N, 2) positions; images: each point's PNG data URL, or the URL of a folder of PNGs named by
    test index (``ui.images.thumbnails_url``), fetched by the browser when a point is first hovered
    (the field "image" either way); highlight: map positions selected in the other chart, drawn bright and the
    rest faded, so both charts show the same images; placed: (2,) your image's position, a gold star.
    The selection parameter is "points" (fields: pos, the map position) or "box" (fields: x, y)."""
    xy = np.asarray(xy, dtype=np.float64)
    # 32-bit numbers and the class as a category: 10,000 points are about 0.2 MB of Arrow (0.7 MB with
    # their pictures' URLs), sent again with every change of the chart
    data = pd.DataFrame({"pos": np.arange(len(xy), dtype=np.int32), "x": xy[:, 0].astype(np.float32),
                         "y": xy[:, 1].astype(np.float32), "test image": emb.indices.numpy().astype(np.int32),
                         "class": pd.Categorical([names[c] for c in emb.labels.tolist()], categories=names)})
    # The picture's URL, FOLDER/TEST_INDEX.png, sent with the chart (about 50 bytes a point): made in the
    # browser by a Vega expression instead, it cost 0.4 to 0.9 s a redraw of 10,000 points, as Streamlit
    # interprets Vega's expressions (bench/embeddings_browser.py).
    data["image"] = [f"{images}{i}.png" for i in emb.indices.tolist()] if isinstance(images, str) else images
    tooltip = ["image:N", "test image:Q", "class:N"]
    if values is None:
        palette = [class_color(c) for c in range(len(names))]
        color = alt.Color("class:N", scale=alt.Scale(domain=names, range=palette), sort=names,
                          legend=alt.Legend(title=None, orient="right"))
    else:
        data["value"] = np.asarray(values, dtype=np.float32)
        lo, hi = np.percentile(data["value"], [1, 99])
        color = alt.Color("value:Q", scale=alt.Scale(scheme="viridis", domain=[float(lo), float(hi)], clamp=True),
                          legend=alt.Legend(title=f"{value_name} (nats)", orient="right", gradientLength=300))
        tooltip.append(alt.Tooltip("value:Q", title=f"{value_name} (nats)", format=".1f"))
    selection = (alt.selection_interval(name="box", encodings=["x", "y"], fields=["x", "y"]) if box
                 else alt.selection_point(name="points", fields=["pos"], on="click", clear="dblclick"))
    # A few selected points are drawn larger too: one point among 10,000 at full opacity is hard to find.
    small = 28 if len(xy) <= 3000 else 10
    if highlight:
        data["picked"] = data["pos"].isin(highlight)
        data = data.sort_values("picked", kind="stable")  # drawn last, over the others
        opacity = alt.condition("datum.picked", alt.value(0.95), alt.value(0.1))
        size = alt.condition("datum.picked", alt.value(90 if len(highlight) <= MAX_SHOWN else small), alt.value(small))
    else:
        opacity = alt.condition(selection, alt.value(0.8), alt.value(0.12))
        size = alt.value(small) if box else alt.when(selection, empty=False).then(alt.value(90)).otherwise(alt.value(small))
    extent = xy if placed is None else np.vstack([xy, np.asarray(placed, dtype=np.float64).reshape(1, 2)])
    lo_hi = [float(extent.min()), float(extent.max())]  # the plane: one domain for both axes, your image in it
    x_scale = alt.Scale(domain=lo_hi, nice=True) if square else alt.Scale(zero=False, nice=True)
    y_scale = alt.Scale(domain=lo_hi, nice=True) if square else alt.Scale(zero=False, nice=True)
    points = alt.Chart(data).mark_circle().encode(
        x=alt.X("x:Q", title=axes[0], scale=x_scale), y=alt.Y("y:Q", title=axes[1], scale=y_scale),
        color=color, opacity=opacity, size=size, tooltip=tooltip,
    ).add_params(selection)
    layers = [points]
    if placed is not None:
        star = pd.DataFrame({"x": [float(placed[0])], "y": [float(placed[1])], "what": ["your image"]})
        layers.append(alt.Chart(star).mark_point(shape=STAR, size=500, filled=True, fill="gold", stroke="black",
                                                 strokeWidth=1.5, opacity=1).encode(x="x:Q", y="y:Q", tooltip=["what:N"]))
    # The plane's plot is about as tall as it is wide at a 1400 px window (its column leaves about 340 px
    # of plot beside the axis and legend); Vega-Lite has no fixed aspect ratio for a chart that
    # stretches, so on other widths, a phone's included, a unit of z[0] and of z[1] differ on screen.
    # Drawn on a canvas: as SVG each point is a DOM element, and 10,000 of them made a click's redraw
    # take about 2 s in Chromium (bench/embeddings_browser.py). Streamlit picks the canvas itself only
    # for data it counts in the spec, not for the Arrow table this chart is sent with.
    return alt.layer(*layers).properties(height=420 if square else 560,
                                         usermeta={"embedOptions": {"renderer": "canvas"}})


def selected(event, xy) -> list[int]:
    """Map positions of the points selected in one chart (``scatter``'s "points" or "box"), in the order
    given; an empty list when nothing is selected. xy: that chart's (N, 2) positions."""
    chosen = (event or {}).get("selection", {})
    seen: dict[int, None] = {}
    for point in chosen.get("points") or []:
        p = point.get("pos") if isinstance(point, dict) else None
        if isinstance(p, (int, float)) and 0 <= int(p) < len(xy):
            seen[int(p)] = None
    box = chosen.get("box") or {}
    if isinstance(box.get("x"), list) and isinstance(box.get("y"), list) and len(box["x"]) == len(box["y"]) == 2:
        xy = torch.as_tensor(np.asarray(xy, dtype=np.float64))
        (x0, x1), (y0, y1) = sorted(map(float, box["x"])), sorted(map(float, box["y"]))
        inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
        seen.update(dict.fromkeys(inside.nonzero().flatten().tolist()))
    return list(seen)


def latest_selection(events: dict) -> str | None:
    """The key of the chart whose selection changed last (a new selection replaces the other chart's),
    or None when it was cleared. events: chart key -> its selection event, this run."""
    seen = st.session_state.setdefault("emb_seen", {})
    for key, event in events.items():
        chosen = (event or {}).get("selection", {})
        state = repr(sorted((k, repr(v)) for k, v in chosen.items() if v))
        if seen.get(key) != state:
            seen[key] = state
            st.session_state.pop("emb_page", None)  # a new selection opens on its first page
            if any(chosen.values()):
                st.session_state["emb_source"] = key
            elif st.session_state.get("emb_source") == key:
                st.session_state["emb_source"] = None
    source = st.session_state.get("emb_source")
    return source if source in events else None


def render(sel: Selection) -> None:
    model, config, folder, names = sel.model, sel.config, sel.folder, sel.class_names
    images, labels, indices, source = test_images(config["dataset"])

    st.title("Embeddings")
    st.markdown(
        "Each point is one test image x, placed by the encoder's mean mu(x) of q(z|x) and coloured by its "
        "class (or by its -ELBO, reconstruction term or KL). Hover a point to see the image; click points to see "
        "them, or one to see its nearest neighbours in the latent space. t-SNE (van der Maaten & Hinton, 2008) "
        "and UMAP (McInnes et al., 2018) keep near neighbours near and say little about distances between "
        "clusters; PCA is the linear projection on the two directions of largest variance."
    )
    if "sample" in source:
        st.info(f"Using {source}.")
    if sel.label_decoder:
        st.caption("This CVAE encodes q(z|x, y) given the label, so z holds the style and need not separate the classes.")

    c1, c2, c3, c4 = st.columns([3, 3, 3, 2], vertical_alignment="bottom")
    method = c1.segmented_control("Method", list(METHODS), default="tsne", format_func=METHODS.get,
                                  required=True, key="emb_method")
    n_max = len(indices)

    def stored_map(m: str):
        """The model folder's stored map for method m if its weights still match (else None), and a note."""
        path = os.path.join(folder, embedding_file(m))
        return precomputed(folder, os.path.getmtime(path) if os.path.exists(path) else 0.0, weights_mtime(folder), m)

    # N: every image the stored maps hold (all at hand, for a shipped model), else 2,000, a map to compute
    # (t-SNE takes 8 s at 2,000 and 60 s at 10,000); a slider each, so a model without maps never
    # inherits a shipped model's 10,000.
    stored_tsne = stored_map("tsne")
    maps = None if stored_tsne[0] is None else restrict(stored_tsne[0], indices)
    n_top = n_max if maps is not None or policy().map_max_n is None else min(n_max, policy().map_max_n)
    n = c2.slider("Test images (N)", min(500, n_max), n_top, min(2000, n_max) if maps is None else maps.n,
                  500 if n_max >= 1000 else 1, key="emb_n" if maps is not None else "emb_n_new",
                  help="By default every test image the model's stored maps hold (a shipped model's: all 10,000, "
                  "or offline the bundled sample's 2,000), else 2,000. Another N computes a new map of the "
                  "bundled sample's images first, then the rest of the test split in order (so online N = 2,000 "
                  "is a map of its own, not the offline part of the stored one); t-SNE time grows a little "
                  "faster than N." + (f" This public server computes new maps of at most {policy().map_max_n:,} "
                                      "images." if policy().map_max_n is not None else ""))
    perplexity, seed = 30.0, 0
    if method == "tsne":
        perplexity = float(c3.slider("Perplexity", 5, 100, 30, key="emb_perplexity",
                                     help="Roughly the number of neighbours each point keeps close; 5 to 50 is usual."))
    elif method == "umap":
        c3.caption(f"UMAP with umap-learn's defaults: {UMAP_SETTINGS}.")
    if method != "pca":
        seed = int(c4.number_input("Seed", 0, 10_000, 0, key="emb_seed"))

    emb, note, positions = None, "", None
    if method in STORED:
        emb, note = stored_tsne if method == "tsne" else stored_map(method)
    if emb is not None and emb.seed == seed and (method != "tsne" or emb.perplexity == perplexity):
        part = restrict(emb, indices)  # offline: the bundled sample's part of a map of the whole test split
        if part is not None and part.n == n:
            emb, positions = part, match_positions(part, indices)
    if positions is not None:
        how = (f"precomputed by `python -m vae.embeddings` in {emb.seconds:g} s with "
               + (f"umap-learn {emb.info.get('umap_version', '')}" if method == "umap"
                  else f"scikit-learn {emb.sklearn_version}"))
        if "of" in emb.info:
            how = (f"the {emb.n:,} images at hand of a map of {int(emb.info['of']):,} test images " + how
                   + " (its places on the whole map)")
    elif method == "pca":  # milliseconds: on the script thread
        emb, positions = computed(folder, weights_mtime(folder), n, sel)
        how = f"computed in {emb.seconds:g} s, cached for this model and N"
    else:  # a new t-SNE or UMAP map: a background job (ui.maps), the stored map meanwhile
        if note:
            st.caption(note)
        stored = None if emb is None else restrict(emb, indices)  # the method's stored map, if any
        ready = new_map(sel, method, n, perplexity, seed)
        if ready is not None:
            emb, positions = ready
            how = f"computed in {emb.seconds:g} s in the background, kept for this model and these settings"
        elif stored is not None:
            emb, positions = stored, match_positions(stored, indices)
            st.caption(f"Meanwhile, the stored {METHODS[method]} map ({stored.n:,} images, perplexity "
                       f"{stored.perplexity:g}, seed {stored.seed}):" if method == "tsne" else
                       f"Meanwhile, the stored {METHODS[method]} map ({stored.n:,} images, seed {stored.seed}):")
            how = "the stored map, shown until the new one is ready"
        else:
            st.stop()

    if method == "tsne":
        axes, detail = ("t-SNE 1", "t-SNE 2"), f"perplexity {emb.perplexity:g}, seed {emb.seed}"
        if "kl_divergence" in emb.info:
            detail += f", final KL {float(emb.info['kl_divergence']):.2f}"
    elif method == "umap":
        axes, detail = ("UMAP 1", "UMAP 2"), f"{UMAP_SETTINGS}, seed {emb.seed}"
    else:
        ratios = emb.info.get("explained_variance_ratio", [0.0, 0.0])
        axes = (f"PC 1 ({100 * ratios[0]:.0f}% of variance)", f"PC 2 ({100 * ratios[1]:.0f}%)")
        detail = f"the two axes hold {100 * sum(ratios):.0f}% of the variance of mu"

    # Colour by class, or by each image's ELBO parts: the images a model finds hard stand out.
    parts_names = {"neg_elbo": "-ELBO", "recon": "reconstruction", "kl": "KL"}
    if not model.variational:  # an autoencoder: no KL, no ELBO
        parts_names = {"recon": "reconstruction"}

    def parts() -> dict:  # computed (and cached) only when a colouring or a CSV asks for them
        return image_parts(folder, weights_mtime(folder), emb.indices.numpy().tobytes(), sel,
                           images[positions], emb.labels)

    options = ["class", *parts_names]
    c1, c2, c3 = st.columns([3, 1, 2], vertical_alignment="bottom")
    colour = c1.segmented_control("Colour by", options, default="class", required=True, key="emb_colour",
                                  format_func=lambda k: "class" if k == "class" else parts_names[k],
                                  help="Each image's -ELBO, reconstruction term or KL in nats (one draw z ~ "
                                  "q(z|x) each): the outliers a model finds hard stand out.")
    values = None if colour == "class" else parts()[colour].numpy()

    def extra() -> dict:  # each image's ELBO parts, as CSV columns
        return {name: parts()[k] for k, name in parts_names.items()}

    c3.download_button("Download the map (CSV)", lambda: embedding_csv(emb, extra=extra()),  # made on a click
                       file_name=f"{sel.name}-{method}-map.csv", mime="text/csv", key="emb_csv", icon=":material/download:",
                       help="Every point: test index, label, x, y, method, perplexity, seed and its ELBO parts.")

    two_d = model.latent_dim == 2
    box = c2.toggle("Box select", key="emb_box", help="Drag a rectangle to select (on a phone a swipe then "
                    "draws one instead of scrolling). Off: click a point, shift-click to add, double-click to clear.")
    # The charts' keys change with the selection tool (its state has another shape); a colouring keeps
    # the selection, which names points by their map position.
    suffix = "_box" if box else ""
    keys = {"map": f"emb_map{suffix}", "plane": f"emb_plane{suffix}"}
    where = {keys["map"]: f"the {METHODS[method]} map", keys["plane"]: "the latent plane"}
    coords = {keys["map"]: emb.coords, keys["plane"]: emb.mu}
    # The last selection is known before the charts are drawn (a chart's state arrives with the rerun),
    # so the other chart can show the same images (linked views).
    source = latest_selection({k: st.session_state.get(k) for k in keys.values() if two_d or k == keys["map"]})
    picked = selected(st.session_state.get(source), coords[source]) if source else []
    # Your own image, placed on the stored map without recomputing it (and on the plane: its mu).
    with st.expander("Place your own image on the map", icon=":material/add_location_alt:",
                     expanded=st.session_state.get("emb_upload") is not None):
        yours = upload_image("emb_upload", label="An image of one " + ("item" if sel.preprocess_style == "fashion"
                                                                        else "digit"), style=sel.preprocess_style)
        your_label = None
        if yours is not None and sel.conditional:
            your_label = st.selectbox("Its class (the label y the encoder or the prior needs)", range(len(names)),
                                      format_func=lambda c: names[c], key="emb_upload_label")
    if emb.method != "umap":  # the map's placer is built in the background now: a first upload need not wait
        placer(folder, weights_mtime(folder), emb.method, emb.n, emb.perplexity, emb.seed, emb)
    placed = None
    if yours is not None and emb.method == "umap":
        st.caption("Your image is placed on t-SNE and PCA maps (a stored UMAP map keeps no model to place it "
                   "with); pick one of those above.")
        yours = None
    if yours is not None:
        your_mu, placed, placed_ms = place_image(folder, weights_mtime(folder), emb.method, emb.n, emb.perplexity,
                                                 emb.seed, yours.numpy().tobytes(), your_label, sel, emb)
    left, right = st.columns(2) if two_d else (st.container(), None)
    label = "" if values is None else parts_names[colour]
    pictures = thumbnails_url(config["dataset"]) or thumbnails(config["dataset"], emb.indices.numpy().tobytes(),
                                                               images[positions])
    with left:
        chart = scatter(emb.coords, emb, names, pictures, axes, values=values, value_name=label, box=box,
                        highlight=picked if source != keys["map"] else None,
                        placed=None if placed is None else placed[0])
        st.altair_chart(chart, key=keys["map"], on_select="rerun", width="stretch")
        st.caption(f"{METHODS[method]} of the means of {emb.n:,} test images ({detail}); {how}. Hover a point to "
                   "see its image.")
    if two_d:
        with right:
            chart = scatter(emb.mu.numpy(), emb, names, pictures, ("z[0]", "z[1]"), square=True, values=values,
                            value_name=label, box=box, highlight=picked if source != keys["plane"] else None,
                            placed=None if placed is None else your_mu[0].numpy())
            st.altair_chart(chart, key=keys["plane"], on_select="rerun", width="stretch")
            st.caption("The raw latent plane: mu(x) itself, no projection. The prior N(0, I) is centred at the origin."
                       + (" The images selected on the map are drawn bright here." if picked and source == keys["map"]
                          else ""))
    if placed is not None:
        where_placed = (f"at ({placed[0, 0]:.1f}, {placed[0, 1]:.1f}) on the {METHODS[emb.method]} map, placed in "
                        f"{placed_ms:.0f} ms without recomputing it" + (" (openTSNE's transform)" if emb.method == "tsne" else ""))
        health.ood_section(sel, yours, "upload")  # placed anyway: say when the place means little
        neighbours(sel, emb, images, positions, your_mu[0], yours, f"Your image, {where_placed}", None)
    if not picked:
        if placed is None:
            st.info("Hover a point to see its image; click one (shift-click to add more, or turn on Box select "
                    "and drag) to see those test images and their reconstructions, or one's nearest neighbours.")
        st.stop()
    # A fair sample of the selection, page by page: the selection in a seeded random order.
    order = [picked[i] for i in torch.randperm(len(picked), generator=torch.Generator().manual_seed(0)).tolist()]
    pages = (len(order) + MAX_SHOWN - 1) // MAX_SHOWN
    if len(picked) == 1:
        p = picked[0]
        return neighbours(sel, emb, images, positions, emb.mu[p], images[positions[[p]]],
                          f"Test image #{int(emb.indices[p]):,} ({names[int(emb.labels[p])]}), picked on {where[source]}",
                          p, label=int(emb.labels[p]))
    st.subheader(f"{len(picked):,} selected on {where[source]}")
    counts = torch.bincount(emb.labels[torch.tensor(picked)], minlength=len(names))
    st.caption("Classes: " + ", ".join(f"{names[c]} × {int(k)}" for c, k in enumerate(counts) if k))
    st.download_button("Download the selection (CSV)", lambda: embedding_csv(emb, picked, extra()), f"{sel.name}-selection.csv",
                       "text/csv", key="emb_selection_csv", icon=":material/download:")
    page = 1
    if pages > 1:
        page = st.number_input(f"Page (of {pages}; {MAX_SHOWN} images each, in a random order)", 1, pages, 1,
                               key="emb_page", width=280)
    shown = torch.tensor(order[(page - 1) * MAX_SHOWN : page * MAX_SHOWN])
    x, y = images[positions[shown]], emb.labels[shown]
    recon = decode_images(model, emb.mu[shown], y if sel.label_decoder else None).cpu()
    here = torch.bincount(y, minlength=len(names))
    nrow = min(len(shown), 7)  # 7 images at scale 2 fit half the page (450 px at a 1400 px window)
    o, r = st.columns(2)
    show_image(o, tile(x, nrow, padding=2, scale=2),
               caption=f"Test images: {len(shown)} of the selection (" + ", ".join(
                f"{names[c]} × {int(k)}" for c, k in enumerate(here) if k) + ")")
    show_image(r, tile(recon, nrow, padding=2, scale=2), caption="Reconstructions: the decoder's mean at z = mu(x)")


def neighbours(sel: Selection, emb, images, positions, query_mu, query_image, title: str, exclude: int | None,
               label: int | None = None) -> None:
    """An image's k nearest neighbours among the map's images, Euclidean on mu (the encoder's means,
    in the latent space itself, not on the 2-D map), with their distances, and its reconstruction.
    exclude: the image's own map position, when it is one of the map's."""
    names = sel.class_names
    st.subheader(f"{title}: its nearest neighbours")
    k = st.slider("Neighbours (k)", 4, 24, 8, key=f"emb_k_{'picked' if exclude is not None else 'yours'}")
    distance = torch.cdist(torch.as_tensor(query_mu).double().reshape(1, -1), emb.mu.double())[0]
    if exclude is not None:
        distance[exclude] = float("inf")
    near = torch.topk(distance, min(k, emb.n - (exclude is not None)), largest=False).indices
    y = None if label is None or not sel.label_decoder else torch.tensor([label])
    recon = decode_images(sel.model, torch.as_tensor(query_mu).float().reshape(1, -1), y).cpu()
    c1, c2 = st.columns([1, 4])
    show_image(c1, tile(torch.cat([query_image.cpu(), recon]), nrow=1, padding=2, scale=3),
               caption="the image, over its reconstruction at z = mu(x)")
    show_image(c2, tile(images[positions[near]], nrow=min(len(near), 8), padding=2, scale=2),
               caption=f"its {len(near)} nearest of the {emb.n:,} map images, by Euclidean distance between the "
               f"encoder's means mu in the {sel.model.latent_dim}-d latent space (not on the 2-D map): "
               + ", ".join(f"#{int(emb.indices[q])} ({names[int(emb.labels[q])]}) {float(distance[q]):.2f}"
                           for q in near))


if __name__ == "__main__":
    import app

    app.run_page(render)
