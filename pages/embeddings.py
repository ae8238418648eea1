"""Embeddings: a t-SNE or PCA map of the encoder's means for test images; select points to see them."""

import os
import time

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from ui.charts import class_scatter
from ui.images import show_image, test_images, upload_image
from ui.models import Selection, test_encodings, weights_version
from vae.embeddings import (EMBEDDING, METHODS, EmbeddingError, Placer, compute_embedding, embedding_csv,
                            load_embedding, match_positions, sample_indices, sample_path, weights_sha256)
from vae.evaluate import per_image
from vae.latent import decode_images, encode_images, tile

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


@st.cache_data(show_spinner="Scoring each image...", max_entries=8)
def image_parts(folder: str, version: float, test_indices: bytes, _sel: Selection, _x, _y) -> dict:
    """Each map image's ELBO parts (``vae.evaluate.per_image``), once per model, weights and image set."""
    device = next(_sel.model.parameters()).device
    return per_image(_sel.model, _x.to(device), _y.to(device), _sel.config["likelihood"],
                     _sel.config.get("sigma", 0.1))


@st.cache_resource(show_spinner=False, max_entries=4)
def placer(folder: str, version: float, method: str, n: int, perplexity: float, seed: int, _emb) -> Placer:
    """The map's Placer (its t-SNE affinities, built once per map: about 0.25 s for 2,000 points)."""
    return Placer(_emb)


@st.cache_data(show_spinner="Placing your image...", max_entries=32)
def place_image(folder: str, version: float, method: str, n: int, perplexity: float, seed: int, pixels: bytes,
                label: int | None, _sel: Selection, _emb):
    """(mu (1, latent_dim), map position (1, 2), milliseconds it took) of one 28x28 image, once per map
    and image."""
    t0 = time.perf_counter()
    x = torch.frombuffer(bytearray(pixels), dtype=torch.float32).view(1, 1, 28, 28)
    mu, _ = encode_images(_sel.model, x, None if label is None else torch.tensor([label]))
    where = placer(folder, version, method, n, perplexity, seed, _emb).place(mu)
    return mu, where, 1000 * (time.perf_counter() - t0)


def mark(fig: go.Figure, xy, text: str) -> None:
    """Your image on a chart: a gold star with a black edge, above every point (added last)."""
    fig.add_trace(go.Scatter(x=[float(xy[0])], y=[float(xy[1])], mode="markers", name="your image",
                             marker=dict(symbol="star", size=22, color="gold", line=dict(color="black", width=2)),
                             hovertemplate=f"{text}<extra></extra>", showlegend=False))


def scatter(coords, labels, test_indices, names, axes, square=False, color=None, color_name="",
            highlight: list[int] | None = None) -> go.Figure:
    """The map's points (SVG, so a click or lasso selects them), the test index in the hover text: one
    trace per class, or, with ``color`` (N,) values, one trace coloured by them with a colour bar
    (its range the 1st to 99th percentile, so a few outliers do not wash out the rest).
    highlight: map positions selected in the other chart, drawn as Plotly draws a selection (the rest
    faded), so both charts show the same images."""
    if color is not None:
        lo, hi = np.percentile(color, [1, 99])
        fig = go.Figure(go.Scatter(
            x=coords[:, 0], y=coords[:, 1], mode="markers", name=color_name,
            marker=dict(size=5 if len(labels) <= 3000 else 3, color=color, colorscale="Viridis", cmin=lo, cmax=hi,
                        colorbar=dict(title=dict(text=f"{color_name}<br>(nats)", side="top"), thickness=12)),
            customdata=np.stack([test_indices.numpy(), labels.numpy(), color], 1),
            hovertemplate="test image %{customdata[0]:.0f}, class %{customdata[1]:.0f}: "
                          f"{color_name} %{{customdata[2]:.1f}} nats<extra></extra>",
        ))
        fig.update_layout(showlegend=False)
    else:
        fig = class_scatter(coords, labels, names, size=5 if len(labels) <= 3000 else 3, opacity=0.75, webgl=False,
                            customdata=test_indices.numpy(),
                            hovertemplate="test image %{customdata}<extra>%{fullData.name}</extra>")
    if highlight:
        if color is not None:
            fig.data[0].selectedpoints = list(highlight)
        else:  # per class: each trace's points are ranked within their class
            rank = torch.zeros(len(labels), dtype=torch.long)
            for c in range(len(names)):
                members = (labels == c).nonzero().flatten()
                rank[members] = torch.arange(len(members))
            chosen = torch.tensor(highlight)
            for c, trace in enumerate(fig.data):
                trace.selectedpoints = rank[chosen[labels[chosen] == c]].tolist()
        fig.update_traces(unselected=dict(marker=dict(opacity=0.12)))
    # No drag mode: a swipe scrolls the page on a phone; click, box and lasso selection are in the toolbar.
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=10, b=10), dragmode=False,
                      xaxis_title=axes[0], yaxis_title=axes[1])
    if square:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def selected(labels, n_classes: int, event, per_class: bool = True) -> list[int]:
    """Positions in the map of the points selected in one chart, in the order given.

    per_class: the chart has one trace per class, in class order, so a point is (curve_number = class,
    point_index = its rank among that class's points in the map); else one trace of every point in map
    order (colour by a number), so point_index is the position itself.
    """
    members = ([(labels == c).nonzero().flatten().tolist() for c in range(n_classes)] if per_class
               else [list(range(len(labels)))])
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
        "class (or by its -ELBO, reconstruction term or KL). Select points to see them; click one to see its "
        "nearest neighbours in the latent space. t-SNE (van der Maaten & Hinton, 2008) keeps near neighbours near and says little about "
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

    # Colour by class, or by each image's ELBO parts: the images a model finds hard stand out.
    parts_names = {"neg_elbo": "-ELBO", "recon": "reconstruction", "kl": "KL"}
    if not model.variational:  # an autoencoder: no KL, no ELBO
        parts_names = {"recon": "reconstruction"}

    def parts() -> dict:  # computed (and cached) only when a colouring or a CSV asks for them
        return image_parts(folder, weights_version(folder), emb.indices.numpy().tobytes(), sel,
                           images[positions], emb.labels)

    options = ["class", *parts_names]
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    colour = c1.segmented_control("Colour by", options, default="class", required=True, key="emb_colour",
                                  format_func=lambda k: "class" if k == "class" else parts_names[k],
                                  help="Each image's -ELBO, reconstruction term or KL in nats (one draw z ~ "
                                  "q(z|x) each): the outliers a model finds hard stand out.")
    values = None if colour == "class" else parts()[colour].numpy()

    def extra() -> dict:  # each image's ELBO parts, as CSV columns
        return {name: parts()[k] for k, name in parts_names.items()}

    c2.download_button("Download the map (CSV)", lambda: embedding_csv(emb, extra=extra()),  # made on a click
                       file_name=f"{sel.name}-{method}-map.csv", mime="text/csv", key="emb_csv", icon=":material/download:",
                       help="Every point: test index, label, x, y, method, perplexity, seed and its ELBO parts.")

    modes = ("points", "box", "lasso")
    two_d = model.latent_dim == 2
    # The charts' keys change with the colouring: a selection's (trace, point) numbers mean other
    # points once the traces change, so each colouring keeps its own selections.
    suffix = "" if values is None else "_by_value"
    keys = {"map": f"emb_map{suffix}", "plane": f"emb_plane{suffix}"}
    where = {keys["map"]: f"the {METHODS[method]} map", keys["plane"]: "the latent plane"}
    # The last selection is known before the charts are drawn (a chart's state arrives with the rerun),
    # so the other chart can show the same images (linked views).
    source = latest_selection({k: st.session_state.get(k) for k in keys.values() if two_d or k == keys["map"]})
    picked = (selected(emb.labels, len(names), st.session_state.get(source), per_class=values is None)
              if source else [])
    # Your own image, placed on the stored map without recomputing it (and on the plane: its mu).
    with st.expander("Place your own image on the map", icon=":material/add_location_alt:",
                     expanded=st.session_state.get("emb_upload") is not None):
        yours = upload_image("emb_upload", label="An image of one " + ("item" if sel.preprocess_style == "fashion"
                                                                        else "digit"), style=sel.preprocess_style)
        your_label = None
        if yours is not None and sel.conditional:
            your_label = st.selectbox("Its class (the label y the encoder or the prior needs)", range(len(names)),
                                      format_func=lambda c: names[c], key="emb_upload_label")
    placed = None
    if yours is not None:
        your_mu, placed, placed_ms = place_image(folder, weights_version(folder), emb.method, emb.n, emb.perplexity,
                                                 emb.seed, yours.numpy().tobytes(), your_label, sel, emb)
    left, right = st.columns(2) if two_d else (st.container(), None)
    label = "" if values is None else parts_names[colour]
    with left:
        fig = scatter(emb.coords, emb.labels, emb.indices, names, axes, color=values, color_name=label,
                      highlight=picked if source != keys["map"] else None)
        if placed is not None:
            mark(fig, placed[0], "your image, placed on this map")
        st.plotly_chart(fig, key=keys["map"], on_select="rerun", selection_mode=modes)
        st.caption(f"{METHODS[method]} of the means of {emb.n:,} test images ({detail}); {how}.")
    if two_d:
        with right:
            fig = scatter(emb.mu.numpy(), emb.labels, emb.indices, names, ("z[0]", "z[1]"), square=True,
                          color=values, color_name=label, highlight=picked if source != keys["plane"] else None)
            if placed is not None:
                mark(fig, your_mu[0], "your image: its mu")
            st.plotly_chart(fig, key=keys["plane"], on_select="rerun", selection_mode=modes)
            st.caption("The raw latent plane: mu(x) itself, no projection. The prior N(0, I) is centred at the origin."
                       + (" The images selected on the map are drawn bright here." if picked and source == keys["map"]
                          else ""))
    if placed is not None:
        where_placed = (f"at ({placed[0, 0]:.1f}, {placed[0, 1]:.1f}) on the {METHODS[emb.method]} map, placed in "
                        f"{placed_ms:.0f} ms without recomputing it" + (" (openTSNE's transform)" if emb.method == "tsne" else ""))
        neighbours(sel, emb, images, positions, your_mu[0], yours, f"Your image, {where_placed}", None)
    if not picked:
        if placed is None:
            st.info("Select points (click, shift-click, box or lasso in the chart's toolbar) to see those test "
                    "images and their reconstructions.")
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
