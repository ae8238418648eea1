"""The charts the pages share, all Plotly: one class palette, the latent-plane scatter, the training
history and the per-dimension KL bars."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

CLASS_COLORS = qualitative.D3  # Tableau's 10 (matplotlib's tab10): class c is CLASS_COLORS[c] on every page
SPLIT_COLORS = {"train": CLASS_COLORS[0], "validation": CLASS_COLORS[1]}
ACTIVE_COLORS = {"active": CLASS_COLORS[0], "inactive": "#c7c7c7"}


def class_color(c: int) -> str:
    return CLASS_COLORS[c % len(CLASS_COLORS)]


def class_scatter(points, labels, names: list[str], *, size: float = 4, opacity: float = 0.6, webgl: bool = True,
                  customdata=None, hovertemplate: str | None = None) -> go.Figure:
    """Points (N, 2) coloured by class, one trace per class in class order, every class even when
    empty (a selection names a point by its trace and its rank within it).

    labels: int (N,); customdata: optional (N,) values for the hover text. WebGL traces (``webgl``)
    draw thousands of points fast and always above SVG traces: add overlays as WebGL too.
    """
    points, labels = np.asarray(points), np.asarray(labels)
    trace = go.Scattergl if webgl else go.Scatter
    fig = go.Figure()
    for c, name in enumerate(names):
        keep = np.flatnonzero(labels == c)
        fig.add_trace(trace(
            x=points[keep, 0], y=points[keep, 1], mode="markers", name=name,
            marker=dict(size=size, color=class_color(c), opacity=opacity),
            customdata=None if customdata is None else np.asarray(customdata)[keep],
            hovertemplate=hovertemplate or f"{name}<extra></extra>",
        ))
    # dragmode False: a swipe over the chart scrolls the page on a phone (zoom and selection tools stay
    # in the toolbar).
    fig.update_layout(legend=dict(itemsizing="constant", title="class"), margin=dict(l=10, r=10, t=30, b=10),
                      dragmode=False)
    return fig


def history_figure(history: list[dict], loss_name: str = "-ELBO", height: int = 260) -> go.Figure:
    """The run's reconstruction term and KL per epoch (nats per image), train and validation, in two
    panels; the title names the loss. history: rows as in ``vae.train.history_row``."""
    epochs = [h["epoch"] for h in history]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.16,
                        subplot_titles=("reconstruction (nats)", "KL (nats)"))
    for row, part in ((1, "recon"), (2, "kl")):
        for split, key in (("train", "train"), ("validation", "val")):
            fig.add_trace(go.Scatter(x=epochs, y=[h[f"{key}_{part}"] for h in history], name=split,
                                     mode="lines+markers" if len(history) <= 40 else "lines",
                                     line=dict(color=SPLIT_COLORS[split], width=1.5), marker=dict(size=4),
                                     showlegend=row == 1, legendgroup=split), row=row, col=1)
    last = history[-1]
    fig.update_layout(height=height, dragmode=False, margin=dict(l=0, r=0, t=40, b=0), font=dict(size=10),
                      legend=dict(orientation="h", y=-0.12, x=0), title=dict(
                          text=f"validation {loss_name} {last['val_loss']:.1f} after epoch {last['epoch']}",
                          font=dict(size=12)))
    fig.update_xaxes(tickformat="d", dtick=max(1, round(len(history) / 4)))  # whole epochs on the x axis
    fig.update_annotations(font_size=11)
    return fig


def kl_bars(kl_per_dim: list[float], threshold: float, height: int = 170) -> go.Figure:
    """Mean KL of each latent dimension (nats) as bars, active and inactive (below ``threshold``) coloured apart."""
    d = len(kl_per_dim)
    state = ["active" if v >= threshold else "inactive" for v in kl_per_dim]
    fig = go.Figure(go.Bar(
        x=[f"z[{j}]" for j in range(d)], y=kl_per_dim, marker_color=[ACTIVE_COLORS[s] for s in state],
        customdata=state, hovertemplate="%{x}: %{y:.3f} nats (%{customdata})<extra></extra>",
    ))
    fig.update_layout(height=height, dragmode=False, margin=dict(l=0, r=0, t=10, b=0), yaxis_title="mean KL (nats)",
                      xaxis=dict(tickangle=0 if d <= 10 else -90), showlegend=False)
    return fig


def kl_heatmap(epochs: list[int], kl_per_dim: list[list[float]], active: list[int], threshold: float,
               latent_dim: int | None = None) -> go.Figure:
    """The per-epoch KL of each latent dimension as a heat map (epochs on x, z[0] .. z[D-1] down y,
    colour = mean validation KL in nats per image, from 0), under a strip of the number of active
    units per epoch (dimensions with a KL of at least ``threshold`` nats).

    epochs: E ints; kl_per_dim: E rows of D floats (``vae.train.kl_per_dim_history``); active: E ints
    (``vae.train.active_units_per_epoch``). The colour scale runs from 0 to at least 1 nat, so that a
    collapsed run (every value near 0) reads as dark rather than stretched to a full range. Its
    height grows with D (about 12 px a dimension, 40 to 160 px for the map) to fit a sidebar.
    """
    d = latent_dim or (len(kl_per_dim[0]) if kl_per_dim else 0)
    z = np.asarray(kl_per_dim, dtype=float).T if kl_per_dim else np.zeros((d, 0))  # (D, E)
    map_px, strip_px, gap_px, top_px, bottom_px = int(np.clip(12 * d, 40, 160)), 44, 34, 22, 24
    plot_px = strip_px + gap_px + map_px
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[strip_px / plot_px, map_px / plot_px],
                        vertical_spacing=gap_px / plot_px,
                        subplot_titles=(f"active units (KL ≥ {threshold:g} nats) of {d}",
                                        "validation KL per dimension (nats)"))
    fig.add_trace(go.Scatter(x=epochs, y=active, mode="lines+markers", line=dict(color=ACTIVE_COLORS["active"], width=1.5),
                             marker=dict(size=4), showlegend=False,
                             hovertemplate="epoch %{x}: %{y} active<extra></extra>"), row=1, col=1)
    step = max(1, int(np.ceil(d / 8)))  # at most about 8 labels down the map
    fig.add_trace(go.Heatmap(
        x=epochs, y=list(range(d)), z=z, zmin=0.0, zmax=max(1.0, float(z.max()) if z.size else 1.0),
        colorscale="Viridis", xgap=1 if len(epochs) <= 40 else 0, ygap=1 if d <= 32 else 0,
        colorbar=dict(thickness=8, len=map_px / plot_px, y=0, yanchor="bottom", x=1.0, xpad=4,
                      tickfont=dict(size=9), outlinewidth=0),
        hovertemplate="epoch %{x}, z[%{y}]: %{z:.3f} nats<extra></extra>",
    ), row=2, col=1)
    fig.update_yaxes(row=1, col=1, range=[-0.3, d + 0.3], nticks=3, tickformat="d", rangemode="tozero")
    fig.update_yaxes(row=2, col=1, autorange="reversed", tickvals=list(range(0, d, step)),
                     ticktext=[f"z[{j}]" for j in range(0, d, step)])
    fig.update_xaxes(tickformat="d", dtick=max(1, round(len(epochs) / 4)))
    fig.update_xaxes(row=2, col=1, title=dict(text="epoch", standoff=2))
    fig.update_layout(height=top_px + plot_px + bottom_px + 16, dragmode=False, font=dict(size=10),
                      margin=dict(l=0, r=0, t=top_px, b=bottom_px), showlegend=False)
    fig.update_annotations(font_size=11)
    return fig
