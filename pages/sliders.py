"""Latent sliders: one slider per latent dimension, the decoded image, each dimension's KL, traversals."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from ui import health, meaning
from ui.charts import class_scatter, kl_bars
from ui.images import download_png, pick_test_image, show_image, test_images
from ui.models import Selection, sliders_prefix, start_sliders, test_encodings, test_metrics
from vae.data import DATASET_NAMES
from vae.latent import (ACTIVE_KL_THRESHOLD, decode_images, encode_images, prior_means, rank_dimensions, tile,
                        traversal_grid)
from vae.losses import kl_divergence

SPAN = 4.0  # slider range in prior standard deviations: N(0, 1) puts 99.99% of each coordinate inside
PAD_POINTS = 41  # clickable points per side of the latent pad
PAD_CODES = 1500  # test encodings drawn under it


def pad_click(prefix: str, key: str) -> None:
    """Apply a new click on the latent pad (the chart under ``key``) to the sliders, before they are
    drawn: the chart's selection is read at the top of the run, and each new one is applied once."""
    event = st.session_state.get(key) or {}
    points = [(round(float(p["x"]), 2), round(float(p["y"]), 2))
              for p in (event.get("selection") or {}).get("points", []) if "x" in p and "y" in p]
    seen = f"{key}_seen"
    if points and points != st.session_state.get(seen):
        x, y = points[-1]
        start_sliders(prefix, [x, y], f"a click on the latent pad at ({x:g}, {y:g})")
    st.session_state[seen] = points


def pad_figure(lo: list[float], hi: list[float], z: list[float], codes, labels, names: list[str]) -> go.Figure:
    """The latent pad of a 2-d model: the test encodings (by class), a grid of clickable points over
    the sliders' ranges, and the current z as a star."""
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], PAD_POINTS), np.linspace(lo[1], hi[1], PAD_POINTS))
    fig = class_scatter(codes, labels, names, size=3, opacity=0.35, webgl=False)
    fig.add_trace(go.Scatter(x=gx.ravel(), y=gy.ravel(), mode="markers", name="pad", showlegend=False,
                             marker=dict(size=9, color="rgba(0,0,0,0.02)"),
                             hovertemplate="z = (%{x:.2f}, %{y:.2f}): click to decode<extra></extra>"))
    fig.add_trace(go.Scatter(x=[z[0]], y=[z[1]], mode="markers", name="z of the sliders",
                             marker=dict(symbol="star", size=18, color="gold", line=dict(color="black", width=1.5)),
                             hovertemplate="the sliders' z: (%{x:.2f}, %{y:.2f})<extra></extra>"))
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="z[0]", yaxis_title="z[1]",
                      legend=dict(orientation="h", y=-0.25, title=None), clickmode="event+select")
    fig.update_xaxes(range=[lo[0], hi[0]])
    fig.update_yaxes(range=[lo[1], hi[1]], scaleanchor="x", scaleratio=1)
    return fig


def render(sel: Selection) -> None:
    model, config, name = sel.model, sel.config, sel.name
    d = model.latent_dim
    prefix = sliders_prefix(name)
    st.session_state.setdefault(f"{prefix}start", ([0.0] * d, "the prior's mean", None))
    test = test_metrics(sel.metrics)
    lo, hi = [-SPAN] * d, [SPAN] * d  # each slider's range
    if sel.class_prior:  # a class-prior model: every class's prior N(mu_y, I) within reach
        means = model.class_means.detach().cpu()
        lo = [round(v - SPAN, 1) for v in means.min(0).values.tolist()]
        hi = [round(v + SPAN, 1) for v in means.max(0).values.tolist()]
    if not model.variational:  # an AE: no KL; its codes' spread orders the dimensions and sets the ranges
        mu, _ = test_encodings(sel)
        kl = mu.var(0).tolist()
        lo, hi = [round(v - 0.5, 1) for v in mu.min(0).values.tolist()], [round(v + 0.5, 1) for v in mu.max(0).values.tolist()]
        source = f"the codes of {len(mu):,} {DATASET_NAMES[config['dataset']]} test images"
    elif len(test.get("kl_per_dim") or []) == d:  # measured by vae.evaluate over the whole test split
        kl = test["kl_per_dim"]
        binarized = ", binarized" if test.get("protocol") == "binarized" else ""
        source = f"the {DATASET_NAMES[config['dataset']]} test split ({test['n_images']:,} images{binarized}, metrics.json)"
    else:
        mu, logvar = test_encodings(sel)
        _, labels, _, _ = test_images(config["dataset"])
        kl = kl_divergence(mu.double(), logvar.double(), per_dim=True,
                           prior_mu=prior_means(model, labels[: len(mu)])).mean(0).tolist()
        source = f"{len(mu):,} {DATASET_NAMES[config['dataset']]} test images"
    if d == 2:
        pad_click(prefix, f"{prefix}pad")
    for j in range(d):  # every slider's value inside its range, whatever a button set
        key = f"{prefix}z{j}"
        st.session_state[key] = min(hi[j], max(lo[j], float(st.session_state.get(key, 0.0))))
    active, inactive = rank_dimensions(kl) if model.variational else (sorted(range(d), key=lambda j: -kl[j]), [])
    names = sel.class_names

    st.title("Latent sliders")
    st.markdown(
        (f"Set z by hand, one slider per latent dimension (± {SPAN:g} prior standard deviations), and see "
         "the decoder's mean image p(x|z). Dimensions the encoder never uses (KL near 0: collapsed to the "
         "prior) change nothing." if model.variational else
         "Set z by hand, one slider per latent dimension, and see the decoder's image.")
        + (" For this CVAE the label y joins the sliders: y picks the class, z the style." if sel.label_decoder else "")
        + (" This class-prior VAE's decoder never sees a label: each class's prior N(μ_y, I) sits at its own "
           "mean μ_y, so start at a class mean and move away from it." if sel.class_prior else "")
        + (" This is a plain autoencoder: it has no prior and no KL, so each slider spans the range of the "
           "test images' codes instead." if not model.variational else "")
    )

    # The decoded image, then the sliders, in one column: on a phone the columns stack, and the image must
    # stay in view while the sliders move. The starting points and the KL chart go in the other.
    left, right = st.columns([2, 3], gap="large")
    view = left.container()
    with left:
        y = None
        if sel.label_decoder:
            st.session_state.setdefault(f"{prefix}y", 0)
            y = st.segmented_control("Class y", range(len(names)), wrap=True, format_func=lambda i: names[i],
                                     required=True, key=f"{prefix}y")
        ncols = min(d, 2 if d <= 8 else 3)
        cols = st.columns(ncols)
        tracks = meaning.slider_labels(sel)  # "slant, rho = 0.81", or None (issue 26)
        z = torch.tensor([
            cols[j % ncols].slider(
                f"z[{j}]" + (f": {tracks[j]}" if tracks[j] else "") + ("" if j not in inactive else " · inactive"),
                lo[j], hi[j], step=0.01,
                format="%.2f", key=f"{prefix}z{j}",
                help=(f"Mean KL {kl[j]:.3f} nats over the test images ("
                      + ("active)" if kl[j] >= ACTIVE_KL_THRESHOLD else f"below {ACTIVE_KL_THRESHOLD} nats: inactive)"))
                if model.variational else f"Variance of the test codes along z[{j}]: {kl[j]:.2f}",
            )
            for j in range(d)
        ])
        if meaning.digits(sel):
            if any(tracks):
                st.caption(f"A slider's name says which Morpho-MNIST measurement ({meaning.SOURCE}) it tracks most "
                           "over the test split, when |Spearman ρ| ≥ 0.5; the page *What the dimensions mean* has them all.")
            with st.expander("Attribute sliders: thicker, slanted, wider, taller", expanded=True):
                attribute_move = meaning.attribute_sliders(sel, f"{prefix}attr")
        else:
            attribute_move = None
    with right:
        st.markdown("**Start from**")
        row = st.container(horizontal=True)
        row.button("Prior mean", on_click=start_sliders, args=(prefix, [0.0] * d, "the prior's mean"),
                   help="z = 0, the mean of p(z) = N(0, I)")
        row.button("Random draw", on_click=lambda: start_sliders(prefix, torch.randn(d).tolist(), "a draw from the prior"),
                   help="z ~ N(0, I)")
        row.button("Reset", on_click=lambda: start_sliders(prefix, *st.session_state[f"{prefix}start"]),
                   help="Back to the last starting point")
        if sel.class_prior:
            means = model.class_means.detach().cpu()
            c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
            cls = c1.selectbox("Class", range(len(names)), format_func=lambda i: names[i], key=f"{prefix}mean_of")
            c2.button("Class mean μ_y", on_click=start_sliders,
                      args=(prefix, means[cls].tolist(), f"the prior mean of class {names[cls]}"),
                      help="z = μ_y, the centre of the class's prior N(μ_y, I)")
        x, label, index = pick_test_image(config["dataset"], key="sliders_pick")
        t1, t2 = st.columns([1, 3], vertical_alignment="center")
        show_image(t1, tile(x, nrow=1, scale=3))
        t2.button("Start from its encoding (mu)", help="The mean of q(z|x) for this test image; values "
                  "beyond the sliders' range are clipped.",
                  on_click=lambda: start_sliders(prefix, encode_images(model, x, torch.tensor([label]))[0][0],
                                              f"the encoding of test image {index} (a {names[label]})",
                                              label if sel.label_decoder else None))

        if d == 2:
            st.markdown("**Latent pad**: click a point of the plane to decode it")
            codes, _ = test_encodings(sel)
            _, labels, _, _ = test_images(config["dataset"])
            pick = torch.randperm(len(codes), generator=torch.Generator().manual_seed(0))[:PAD_CODES]
            fig = pad_figure(lo, hi, z.tolist(), codes[pick], labels[pick], names)
            density = health.has_standard_prior(sel) and st.toggle(
                "Shade q(z) against p(z); outline the holes", False, key="sliders_pad_holes",
                help="Blue: the aggregate posterior q(z) (the mixture of the test images' q(z|x)) puts more mass there "
                     "than the prior N(0, I); red: less. Red line: the holes, q/p below the threshold inside the prior's 95% circle.")
            if density:
                threshold = health.threshold_picker("sliders_pad_threshold")
                health.density_layer(fig, sel, lo, hi, threshold)  # under the clickable points
                fig.update_layout(height=420)
            st.plotly_chart(fig, key=f"{prefix}pad", on_select="rerun", selection_mode="points",
                            config={"displayModeBar": False})
            if density:
                st.caption("Shading: log10 q(z)/p(z), blue where the encoder puts more mass than the prior, red where "
                           "less, saturated at a factor of 1,000; dashed circle: the prior's central 95%; red lines: the "
                           "holes' edges. " + health.hole_caption(sel, (0, 1), threshold))
        if model.variational:
            st.plotly_chart(kl_bars(kl, ACTIVE_KL_THRESHOLD), config={"displayModeBar": False}, key="sliders_kl")
            st.caption(f"Mean KL(q(z_j|x) ‖ p(z_j)) of each dimension over {source}: {len(active)} of {d} "
                       f"dimensions active, {len(inactive)} inactive (below {ACTIVE_KL_THRESHOLD} nats).")
        else:
            st.caption(f"Slider ranges: {source}, ± 0.5.")

    _, how, _ = st.session_state[f"{prefix}start"]
    decoded = decode_images(model, z[None], y)
    asked = ""
    if attribute_move is not None and attribute_move.asked:  # moved along the attribute directions, then measured
        moved = decode_images(model, attribute_move.apply(z)[None], y)
        attribute_move.show_measured(decoded, moved)
        decoded, asked = moved, f", moved along {attribute_move.asked}"
    elif attribute_move is not None:
        attribute_move.show_measured(decoded, decoded)
    show_image(view, tile(decoded, nrow=1, scale=12),
               caption=f"{name}: decoded from the sliders' z{asked}" + (f" with y = {names[y]}" if sel.label_decoder else "")
        + f" (last start: {how}).")

    st.subheader("Traversals")
    st.caption("Row by row, one dimension swept across its range with the others held at the sliders' z; "
               "rows ordered by mean KL, most informative first.")
    c1, c2, c3 = st.columns(3, vertical_alignment="bottom")
    steps = c1.slider("Images per row", 5, 15, 9)
    if model.variational:
        span = c2.slider("Traversal span (± standard deviations)", 1.0, SPAN, 3.0, 0.5)
    else:  # an AE: no prior's standard deviations; its codes' reach instead
        reach = max(1.5, float(max(max(map(abs, lo)), max(map(abs, hi)))))
        span = c2.slider("Traversal span (± z)", 1.0, float(round(reach)), round(reach) / 2, 0.5)
    show_inactive = c3.toggle(f"Show the {len(inactive)} inactive dimensions" if inactive else "No inactive dimensions",
                              False, disabled=not inactive)
    rows = active + (inactive if show_inactive else [])
    scale = max(1, 700 // (steps * 29))
    traversals = traversal_grid(model, z, rows, steps, span, y)
    grid = tile(traversals, nrow=steps, padding=1, scale=scale)
    h = 29 * scale  # one row of the tiled grid: a 28-pixel image and a 1-pixel white line, scaled
    for r, j in enumerate(rows):
        c1, c2 = st.columns([1, 8], vertical_alignment="center")
        c1.markdown(f"**z[{j}]**  \n" + (f"{kl[j]:.2f} nats" if model.variational else f"var {kl[j]:.2f}")
                    + (f"  \n{tracks[j].split(',')[0]}" if tracks[j] else ""))  # what it tracks (issue 26)
        show_image(c2, grid[r * h : (r + 1) * h + scale])
    st.caption(f"Each row from z[j] = -{span:g} (left) to +{span:g} (right)."
               + ("" if show_inactive or not inactive else f" {len(inactive)} inactive dimensions folded away."))
    download_png(tile(traversals, nrow=steps, padding=1), f"{name}-traversals",
                 "sliders_png", container=st.columns([1, 2])[0])


if __name__ == "__main__":
    import app

    app.run_page(render)
