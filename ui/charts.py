"""The charts the pages share: one class palette; in Plotly the latent-plane scatter, the training history
and the per-dimension KL bars; in Altair (Vega-Lite) the Embeddings page's map, selectable by mouse and
by touch."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .i18n import N_, _

CLASS_COLORS = qualitative.D3  # Tableau's 10 (matplotlib's tab10): class c is CLASS_COLORS[c] on every page
SPLIT_COLORS = {"train": CLASS_COLORS[0], "validation": CLASS_COLORS[1]}
ACTIVE_COLORS = {"active": CLASS_COLORS[0], "inactive": "#c7c7c7"}
SPLIT_NAMES = {"train": N_("train"), "validation": N_("validation")}  # the legend's words for each split
ACTIVE_NAMES = {"active": N_("active"), "inactive": N_("inactive")}  # the bars' hover words


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
    fig.update_layout(legend=dict(itemsizing="constant", title=_("class")), margin=dict(l=10, r=10, t=30, b=10),
                      dragmode=False)
    return fig


def history_figure(history: list[dict], loss_name: str = "-ELBO", height: int = 260) -> go.Figure:
    """The run's reconstruction term and KL per epoch (nats per image), train and validation, in two
    panels; the title names the loss. history: rows as in ``vae.train.history_row``."""
    epochs = [h["epoch"] for h in history]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.16,
                        subplot_titles=(_("reconstruction (nats)"), _("KL (nats)")))
    for row, part in ((1, "recon"), (2, "kl")):
        for split, key in (("train", "train"), ("validation", "val")):
            fig.add_trace(go.Scatter(x=epochs, y=[h[f"{key}_{part}"] for h in history], name=_(SPLIT_NAMES[split]),
                                     mode="lines+markers" if len(history) <= 40 else "lines",
                                     line=dict(color=SPLIT_COLORS[split], width=1.5), marker=dict(size=4),
                                     showlegend=row == 1, legendgroup=split), row=row, col=1)
    last = history[-1]
    fig.update_layout(height=height, dragmode=False, margin=dict(l=0, r=0, t=40, b=0), font=dict(size=10),
                      legend=dict(orientation="h", y=-0.12, x=0), title=dict(
                          text=_("validation {loss} {value:.1f} after epoch {epoch}").format(
                              loss=loss_name, value=last["val_loss"], epoch=last["epoch"]),
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
        customdata=[_(ACTIVE_NAMES[s]) for s in state],
        hovertemplate=_("%{x}: %{y:.3f} nats (%{customdata})") + "<extra></extra>",
    ))
    fig.update_layout(height=height, dragmode=False, margin=dict(l=0, r=0, t=10, b=0), yaxis_title=_("mean KL (nats)"),
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
                        subplot_titles=(_("active units (KL ≥ {threshold:g} nats) of {d}").format(
                                            threshold=threshold, d=d),
                                        _("validation KL per dimension (nats)")))
    fig.add_trace(go.Scatter(x=epochs, y=active, mode="lines+markers", line=dict(color=ACTIVE_COLORS["active"], width=1.5),
                             marker=dict(size=4), showlegend=False,
                             hovertemplate=_("epoch %{x}: %{y} active") + "<extra></extra>"), row=1, col=1)
    step = max(1, int(np.ceil(d / 8)))  # at most about 8 labels down the map
    fig.add_trace(go.Heatmap(
        x=epochs, y=list(range(d)), z=z, zmin=0.0, zmax=max(1.0, float(z.max()) if z.size else 1.0),
        colorscale="Viridis", xgap=1 if len(epochs) <= 40 else 0, ygap=1 if d <= 32 else 0,
        colorbar=dict(thickness=8, len=map_px / plot_px, y=0, yanchor="bottom", x=1.0, xpad=4,
                      tickfont=dict(size=9), outlinewidth=0),
        hovertemplate=_("epoch %{x}, z[%{y}]: %{z:.3f} nats") + "<extra></extra>",
    ), row=2, col=1)
    fig.update_yaxes(row=1, col=1, range=[-0.3, d + 0.3], nticks=3, tickformat="d", rangemode="tozero")
    fig.update_yaxes(row=2, col=1, autorange="reversed", tickvals=list(range(0, d, step)),
                     ticktext=[f"z[{j}]" for j in range(0, d, step)])
    fig.update_xaxes(tickformat="d", dtick=max(1, round(len(epochs) / 4)))
    fig.update_xaxes(row=2, col=1, title=dict(text=_("epoch"), standoff=2))
    fig.update_layout(height=top_px + plot_px + bottom_px + 16, dragmode=False, font=dict(size=10),
                      margin=dict(l=0, r=0, t=top_px, b=bottom_px), showlegend=False)
    fig.update_annotations(font_size=11)
    return fig


# ---------------------------------------------------------------- the Embeddings page's map (Altair)

# A tap selects a point. Vega's canvas handler knows which point is under the pointer from pointermove
# events alone, and a tap sends none: its click went to no point (or to the last one hovered), and so
# selected nothing on a phone. Touch events carry their own point (picked at touchstart), so a tap is a
# touchend; one that follows a pointercancel (the browser took the touch for a scroll) selects nothing,
# and the click that follows a tap (pointerType "touch") is left out, as it would clear the selection.
SELECT_ON = "click[event.pointerType !== 'touch'], [touchstart, pointercancel] > touchend"
# A box is drawn by a drag of the mouse, or of a finger (Vega-Lite's default follows the pointer events,
# whose start, like a tap's click, has no point under it for a finger, so the box never began); a finger's
# drag scrolls the page unless the chart's CSS says touch-action: none (the page does, with Box select on).
BOX_ON = "[pointerdown, window:pointerup] > window:pointermove!, [touchstart, touchend] > touchmove"
# Vega calls preventDefault on every event it listens to, save "wheel" (its default config): a listened
# touchstart would stop a swipe over the map from scrolling the page, so touches are let through too.
TOUCH_EVENTS = {"defaults": {"allow": ["wheel", "touchstart", "touchmove", "touchend"]}}
STAR = "M0,-1L0.24,-0.31L0.95,-0.31L0.38,0.12L0.59,0.81L0,0.4L-0.59,0.81L-0.38,0.12L-0.95,-0.31L-0.24,-0.31Z"
FEW = 40  # a selection of at most this many points is drawn large (the page shows that many images at once)


class TouchLayer(alt.LayerChart):
    """A layered chart whose Vega view lets touches through (``TOUCH_EVENTS``). Vega-Lite passes a config's
    "events" on to Vega, but Altair's schema has no such field, so it is added to the finished spec.

    Serialized without Altair's JSON-schema validation (``validate=False`` unless asked): the charts are
    made by this module's code alone, and the tests render them; validating 10,000 points' spec on every
    rerun was about a sixth of the Embeddings page's server time under load (py-spy, 32 visitors of
    bench/load_protocol.py), inside the lock Streamlit holds around every Altair conversion."""

    def to_dict(self, *args, **kwargs) -> dict:
        if not args:
            kwargs.setdefault("validate", False)
        spec = super().to_dict(*args, **kwargs)
        spec.setdefault("config", {})["events"] = TOUCH_EVENTS
        return spec


def map_chart(xy, indices, labels, names: list[str], images: list[str] | str, axes: tuple[str, str], *,
              square: bool = False, values=None, value_name: str = "", picked=(), box: bool = False,
              placed=None, zoom: int = 1) -> TouchLayer:
    """A map's points as a Vega-Lite chart: hover shows the test image, its index and class (and the value
    it is coloured by); a click or a tap selects a point, shift-click adds one, a click on empty space
    (or a double-click) clears; with ``box`` a drag selects a rectangle (off by default: a swipe over
    the chart then scrolls the page on a phone). Coloured by class, or by ``values`` (N,) with a colour
    bar over their 1st to 99th percentile (so a few outliers do not wash out the rest).

    xy: (N, 2) positions; indices, labels: int (N,) test indices and classes; images: each point's PNG
    data URL, or the URL of a folder of PNGs named by test index, fetched by the browser when a point is
    first hovered (the field "image" either way); picked: the map positions selected (on this chart or
    the other one), drawn over the rest with a dark outline, the others fainter: much fainter when
    coloured by class, a little when coloured by a value, so that the colour bar still reads; placed:
    (2,) your image's position, a gold star; zoom: 2 in projector mode (larger fonts and points).
    The selection parameter is "points" (field: pos, the map position) or "box" (fields: x, y). The
    spec does not change with the selection (only the data), so the browser keeps the chart's view.
    """
    xy = np.asarray(xy, dtype=np.float64)
    data = map_points(xy, indices, labels, names, images)
    # projector mode: ticks, titles and the legend half as large again (the charts' own size is kept); set on
    # the axes and the legend themselves, as Streamlit's theme overrides a chart's config
    fonts = {"labelFontSize": 16, "titleFontSize": 18} if zoom > 1 else {}
    color, tooltip = map_colour(data, names, values, value_name, fonts)
    data = with_picked(data, picked, faded=0.12 if values is None else 0.55, small=(28 if len(xy) <= 3000 else 10) * zoom,
                       large=90 * zoom)
    selection = (alt.selection_interval(name="box", encodings=["x", "y"], fields=["x", "y"], on=BOX_ON) if box
                 else alt.selection_point(name="points", fields=["pos"], on=SELECT_ON, clear="dblclick"))
    extent = xy if placed is None else np.vstack([xy, np.asarray(placed, dtype=np.float64).reshape(1, 2)])
    lo_hi = [float(extent.min()), float(extent.max())]  # the plane: one domain for both axes, your image in it
    scale = alt.Scale(domain=lo_hi, nice=True) if square else alt.Scale(zero=False, nice=True)
    # The data on the layer, not on the points' chart: given to a sub-chart, Altair's LayerChart hashes that
    # chart by dumping it to JSON, the 10,000-row DataFrame's repr included (3% of the server's time under load)
    points = alt.Chart().mark_circle(strokeWidth=2 * zoom).encode(
        x=alt.X("x:Q", title=axes[0], scale=scale, axis=alt.Axis(**fonts)),
        y=alt.Y("y:Q", title=axes[1], scale=scale, axis=alt.Axis(**fonts)), color=color,
        opacity=alt.Opacity("alpha:Q", scale=None), size=alt.Size("size:Q", scale=None),
        stroke=alt.when("datum.picked").then(alt.value("black")).otherwise(alt.value(None)), tooltip=tooltip,
    ).add_params(selection)
    layers = [points] if placed is None else [points, star(placed, zoom)]
    # The plane's plot is about as tall as it is wide at a 1400 px window (its column leaves about 340 px
    # of plot beside the axis and legend); Vega-Lite has no fixed aspect ratio for a chart that
    # stretches, so on other widths, a phone's included, a unit of z[0] and of z[1] differ on screen.
    # Drawn on a canvas: as SVG each point is a DOM element, and 10,000 of them made a click's redraw
    # take about 2 s in Chromium (bench/embeddings_browser.py). Streamlit picks the canvas itself only
    # for data it counts in the spec, not for the Arrow table this chart is sent with.
    return TouchLayer(layer=layers, data=data).properties(height=420 if square else 560,  # fits a 1080 px projector too
                                               usermeta={"embedOptions": {"renderer": "canvas"}})


def map_points(xy: np.ndarray, indices, labels, names: list[str], images: list[str] | str) -> pd.DataFrame:
    """The chart's rows: pos (the map position), x, y, test image, class (a category) and image (its URL)."""
    # 32-bit numbers and the class as a category: 10,000 points are about 0.2 MB of Arrow (0.7 MB with
    # their pictures' URLs), sent again with every change of the chart
    data = pd.DataFrame({"pos": np.arange(len(xy), dtype=np.int32), "x": xy[:, 0].astype(np.float32),
                         "y": xy[:, 1].astype(np.float32), "test image": np.asarray(indices, dtype=np.int32),
                         "class": pd.Categorical([names[c] for c in np.asarray(labels).tolist()], categories=names)})
    # The picture's URL, FOLDER/TEST_INDEX.png, sent with the chart (about 50 bytes a point): made in the
    # browser by a Vega expression instead, it cost 0.4 to 0.9 s a redraw of 10,000 points, as Streamlit
    # interprets Vega's expressions (bench/embeddings_browser.py).
    data["image"] = [f"{images}{i}.png" for i in data["test image"].tolist()] if isinstance(images, str) else images
    return data


def map_colour(data: pd.DataFrame, names: list[str], values, value_name: str, fonts: dict | None = None):
    """(colour encoding, tooltip fields): by class in the class palette, or by ``values`` (N,) (added to
    ``data`` as "value") on viridis over their 1st to 99th percentile, with a colour bar. fonts: the
    legend's labelFontSize and titleFontSize, if not the theme's."""
    fonts = fonts or {}
    # "image" keeps its name: Vega's tooltip shows the picture of a field called image
    tooltip = ["image:N", alt.Tooltip("test image:Q", title=_("test image")), alt.Tooltip("class:N", title=_("class"))]
    if values is None:
        palette = [class_color(c) for c in range(len(names))]
        return alt.Color("class:N", scale=alt.Scale(domain=names, range=palette), sort=names,
                         legend=alt.Legend(title=None, orient="right", **fonts,
                                            **({"symbolSize": 120} if fonts else {}))), tooltip
    data["value"] = np.asarray(values, dtype=np.float32)
    title = _("{name} (nats)").format(name=value_name)
    lo, hi = np.percentile(data["value"], [1, 99])
    color = alt.Color("value:Q", scale=alt.Scale(scheme="viridis", domain=[float(lo), float(hi)], clamp=True),
                      legend=alt.Legend(title=title, orient="right", gradientLength=300, **fonts))
    return color, [*tooltip, alt.Tooltip("value:Q", title=title, format=".1f")]


def star(placed, zoom: int = 1) -> alt.Chart:
    """Your image at ``placed`` (2,): a gold star."""
    where = pd.DataFrame({"x": [float(placed[0])], "y": [float(placed[1])], "what": [_("your image")]})
    return alt.Chart(where).mark_point(shape=STAR, size=500 * zoom, filled=True, fill="gold", stroke="black",
                                       strokeWidth=1.5, opacity=1).encode(
        x="x:Q", y="y:Q", tooltip=[alt.Tooltip("what:N", title=_("what"))])


def with_picked(data: pd.DataFrame, picked, faded: float, small: float, large: float) -> pd.DataFrame:
    """The map's rows with each point's look: "picked" (bool), "alpha" (its opacity: 0.8 with nothing
    picked, else 0.95 picked and ``faded`` not) and "size" (in square pixels: ``large`` for a few picked
    points, at most ``FEW``, else ``small``), the picked rows last, so drawn over the others."""
    data["picked"] = data["pos"].isin(list(picked))
    some = bool(data["picked"].any())
    data["alpha"] = np.where(data["picked"], 0.95, faded if some else 0.8).astype(np.float32)
    few = some and int(data["picked"].sum()) <= FEW
    data["size"] = np.where(data["picked"] & few, large, small).astype(np.float32)
    return data.sort_values("picked", kind="stable")
