"""Embeddings: a t-SNE or PCA map of the encoder's means for test images; select points to see them."""

import os

import plotly.graph_objects as go
import streamlit as st
import torch

from ui.charts import class_scatter
from ui.images import show_image, test_images
from ui.models import Selection, test_encodings, weights_version
from vae.embeddings import (EMBEDDING, METHODS, EmbeddingError, compute_embedding, load_embedding, match_positions,
                            sample_indices, sample_path, weights_sha256)
from vae.latent import decode_images, tile

MAX_SHOWN = 40  # selected images shown with their reconstructions


@st.cache_data(show_spinner=False, max_entries=16)
def precomputed(folder: str, mtime: float, version: float):
    """The folder's embedding.safetensors if its weights still match, else None; (map or None, note)."""
    try:
        emb = load_embedding(folder)
    except EmbeddingError as err:
        return None, f"The stored map is unusable ({err}); computing instead."
    if emb is not None and emb.weights_sha256 != weights_sha256(folder):
        return None, "The stored map is from other weights; computing instead."
    return emb, ""


@st.cache_data(show_spinner=False, max_entries=32)
def computed(folder: str, version: float, method: str, n: int, perplexity: float, seed: int, _sel: Selection):
    """Project the test encodings, once per model (folder and weights' version) and settings; the map
    and the positions of its images."""
    images, labels, indices, _ = test_images(_sel.config["dataset"])
    emb = compute_embedding(_sel.model, images, labels, indices, n, method, perplexity, seed,
                            sample_indices(sample_path(folder, _sel.config["dataset"])), mu=test_encodings(_sel)[0])
    return emb, match_positions(emb, indices)


def scatter(coords, labels, test_indices, names, axes, square=False) -> go.Figure:
    """The map's points by class (SVG, so a click or lasso selects them), the test index in the hover text."""
    fig = class_scatter(coords, labels, names, size=5 if len(labels) <= 3000 else 3, opacity=0.75, webgl=False,
                        customdata=test_indices.numpy(), hovertemplate="test image %{customdata}<extra>%{fullData.name}</extra>")
    # No drag mode: a swipe scrolls the page on a phone; click, box and lasso selection are in the toolbar.
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=10, b=10), dragmode=False,
                      xaxis_title=axes[0], yaxis_title=axes[1])
    if square:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def selected(labels, n_classes: int, event) -> list[int]:
    """Positions in the map of the points selected in one chart, in the order given.

    Each chart has one trace per class, in class order, so a point is (curve_number = class,
    point_index = its rank among that class's points in the map).
    """
    members = [(labels == c).nonzero().flatten().tolist() for c in range(n_classes)]
    seen: dict[int, None] = {}
    for point in (event or {}).get("selection", {}).get("points", []):
        c, i = point.get("curve_number"), point.get("point_index")
        if isinstance(c, int) and isinstance(i, int) and 0 <= c < len(members) and 0 <= i < len(members[c]):
            seen[members[c][i]] = None
    return list(seen)


def latest_selection(events: dict) -> str | None:
    """The key of the chart whose selection changed last (a new selection replaces the other chart's),
    or None when it was cleared. events: chart key -> its selection event, this run."""
    seen = st.session_state.setdefault("emb_seen", {})
    for key, event in events.items():
        points = tuple((p.get("curve_number"), p.get("point_index"))
                       for p in (event or {}).get("selection", {}).get("points", []))
        if seen.get(key) != points:
            seen[key] = points
            st.session_state.pop("emb_page", None)  # a new selection opens on its first page
            if points:
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
        "class. t-SNE (van der Maaten & Hinton, 2008) keeps near neighbours near and says little about "
        "distances between clusters; PCA is the linear projection on the two directions of largest variance."
    )
    if "sample" in source:
        st.info(f"Using {source}.")
    if sel.label_decoder:
        st.caption("This CVAE encodes q(z|x, y) given the label, so z holds the style and need not separate the classes.")

    c1, c2, c3, c4 = st.columns([2, 3, 3, 2], vertical_alignment="bottom")
    method = c1.segmented_control("Method", list(METHODS), default="tsne", format_func=METHODS.get,
                                  required=True, key="emb_method")
    n_max = len(indices)
    n = c2.slider("Test images (N)", min(500, n_max), n_max, min(2000, n_max), 500 if n_max >= 1000 else 1,
                  key="emb_n", help="The bundled sample's images first, then the rest of the test split in "
                  "order. t-SNE time grows a little faster than N.")
    perplexity, seed = 30.0, 0
    if method == "tsne":
        perplexity = float(c3.slider("Perplexity", 5, 100, 30, key="emb_perplexity",
                                     help="Roughly the number of neighbours each point keeps close; 5 to 50 is usual."))
        seed = int(c4.number_input("Seed", 0, 10_000, 0, key="emb_seed"))

    stored = os.path.join(folder, EMBEDDING)
    emb, note = precomputed(folder, os.path.getmtime(stored) if os.path.exists(stored) else 0.0,
                            weights_version(folder))
    positions = None
    if emb is not None and (emb.method, emb.n, emb.perplexity, emb.seed) == (method, n, perplexity, seed):
        positions = match_positions(emb, indices)
        if positions is None:
            note = "The stored map uses test images that are not in the bundled sample; computing on the sample instead."
    if positions is not None:
        how = (f"precomputed by `python -m vae.embeddings` in {emb.seconds:g} s with scikit-learn "
               f"{emb.sklearn_version}")
    else:
        if note:
            st.caption(note)
        what = f"t-SNE (perplexity {perplexity:g}, seed {seed})" if method == "tsne" else "PCA"
        try:
            with st.spinner(f"Encoding {n:,} test images and running {what}. On a 2-core CPU t-SNE takes "
                            "about 8 s for 2,000 images and 26 s for 5,000 (bench/tsne_speed.py)...", show_time=True):
                emb, positions = computed(folder, weights_version(folder), method, n, perplexity, seed, sel)
        except EmbeddingError as err:
            st.error(f"Cannot compute this map: {err}.")
            st.stop()
        how = f"computed in {emb.seconds:g} s, cached for this model and these settings"

    if method == "tsne":
        axes, detail = ("t-SNE 1", "t-SNE 2"), f"perplexity {emb.perplexity:g}, seed {emb.seed}"
        if "kl_divergence" in emb.info:
            detail += f", final KL {float(emb.info['kl_divergence']):.2f}"
    else:
        ratios = emb.info.get("explained_variance_ratio", [0.0, 0.0])
        axes = (f"PC 1 ({100 * ratios[0]:.0f}% of variance)", f"PC 2 ({100 * ratios[1]:.0f}%)")
        detail = f"the two axes hold {100 * sum(ratios):.0f}% of the variance of mu"

    modes = ("points", "box", "lasso")
    events, where = {}, {"emb_map": f"the {METHODS[method]} map", "emb_plane": "the latent plane"}
    two_d = model.latent_dim == 2
    left, right = st.columns(2) if two_d else (st.container(), None)
    with left:
        fig = scatter(emb.coords, emb.labels, emb.indices, names, axes)
        events["emb_map"] = st.plotly_chart(fig, key="emb_map", on_select="rerun", selection_mode=modes)
        st.caption(f"{METHODS[method]} of the means of {emb.n:,} test images ({detail}); {how}.")
    if two_d:
        with right:
            fig = scatter(emb.mu.numpy(), emb.labels, emb.indices, names, ("z[0]", "z[1]"), square=True)
            events["emb_plane"] = st.plotly_chart(fig, key="emb_plane", on_select="rerun", selection_mode=modes)
            st.caption("The raw latent plane: mu(x) itself, no projection. The prior N(0, I) is centred at the origin.")

    source = latest_selection(events)
    picked = selected(emb.labels, len(names), events[source]) if source else []
    if not picked:
        st.info("Select points (click, shift-click, box or lasso in the chart's toolbar) to see those test "
                "images and their reconstructions.")
        st.stop()
    # A fair sample of the selection, page by page: the selection in a seeded random order.
    order = [picked[i] for i in torch.randperm(len(picked), generator=torch.Generator().manual_seed(0)).tolist()]
    pages = (len(order) + MAX_SHOWN - 1) // MAX_SHOWN
    st.subheader(f"{len(picked):,} selected on {where[source]}")
    counts = torch.bincount(emb.labels[torch.tensor(picked)], minlength=len(names))
    st.caption("Classes: " + ", ".join(f"{names[c]} × {int(k)}" for c, k in enumerate(counts) if k))
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


if __name__ == "__main__":
    import app

    app.run_page(render)
