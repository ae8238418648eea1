"""Latent sliders: one slider per latent dimension, the decoded image, each dimension's KL, traversals."""

import re
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from ui import health, meaning, state
from ui.i18n import N_, _
from ui.charts import class_scatter, kl_bars
from ui.images import download_png, pick_test_image, picker_settings, show_image
from ui.models import Selection, sliders_state, start_sliders, test_encodings, test_metrics
from vae.latent import (ACTIVE_KL_THRESHOLD, decode_images, encode_images, prior_means, rank_dimensions, tile,
                        traversal_grid)
from vae.losses import kl_divergence

SPAN = 4.0  # slider range in prior standard deviations: N(0, 1) puts 99.99% of each coordinate inside
PAD_POINTS = 41  # clickable points per side of the latent pad
PAD_CODES = 1500  # test encodings drawn under it
PRIOR_MEAN = N_("the prior's mean")  # a start's "how", kept in this run's language: _(PRIOR_MEAN)
S = state.PageState("sliders", [  # the page's own settings; z and a CVAE's y are the model's (ui.models.sliders_state)
    *picker_settings(), state.Setting("mean_of", int, 0, 0), state.Setting("holes", bool, False),
    state.Setting("steps", int, 9, 5, 15), state.Setting("span", float, 3.0, 1.0, SPAN), state.Setting("inactive", bool, False),
])
# Plotly selects a tapped point from its last hover (gd._hoverdata) before it works out the tap's own hover
# (plots/cartesian/dragbox.js: selectOnClick, then fx.click). A mouse hovers before it clicks; a finger does
# not, so under touch each tap selected the previous tap's point. On a touch on the pad, hover there first.
PAD_TOUCH = """<script>
if (!window.vaePadTouchHover) {
  window.vaePadTouchHover = true;
  document.addEventListener("touchstart", (e) => {
    const target = e.target, touch = e.changedTouches && e.changedTouches[0];
    if (!touch || !target.closest || !target.closest(".st-key-latent_pad") || !target.classList.contains("nsewdrag")) return;
    target.dispatchEvent(new MouseEvent("mousemove", {clientX: touch.clientX, clientY: touch.clientY, bubbles: true}));
  }, {capture: true, passive: true});
}
</script>"""


@dataclass(frozen=True)
class Dimensions:
    """What the page knows of the latent dimensions: each slider's range [lo, hi], each dimension's mean
    KL in nats (an autoencoder's: the variance of its test codes), where that was measured, and the
    dimensions split by ``rank_dimensions`` into active and inactive, each by decreasing KL."""

    lo: list[float]
    hi: list[float]
    kl: list[float]
    source: str
    active: list[int]
    inactive: list[int]


def dimensions(sel: Selection) -> Dimensions:
    """The sliders' ranges (± SPAN prior standard deviations; every class mean within reach for a
    class-prior model; an autoencoder's test codes ± 0.5) and the KL that orders them."""
    model, d = sel.model, sel.model.latent_dim
    lo, hi = [-SPAN] * d, [SPAN] * d
    if sel.class_prior:  # a class-prior model: every class's prior N(mu_y, I) within reach
        means = model.class_means.detach().cpu()
        lo = [round(v - SPAN, 1) for v in means.min(0).values.tolist()]
        hi = [round(v + SPAN, 1) for v in means.max(0).values.tolist()]
    test, data = test_metrics(sel.metrics), sel.dataset_title
    if not model.variational:  # an AE: no KL; its codes' spread orders the dimensions and sets the ranges
        mu = test_encodings(sel)[0]
        lo, hi = [round(v - 0.5, 1) for v in mu.min(0).values.tolist()], [round(v + 0.5, 1) for v in mu.max(0).values.tolist()]
        kl, source = mu.var(0).tolist(), _("the codes of {n:,} {data} test images").format(n=len(mu), data=data)
        return Dimensions(lo, hi, kl, source, sorted(range(d), key=lambda j: -kl[j]), [])
    if len(test.get("kl_per_dim") or []) == d:  # measured by vae.evaluate over the whole test split
        kl = test["kl_per_dim"]
        source = (_("the {data} test split ({n:,} images, binarized, metrics.json)") if test.get("protocol") == "binarized"
                  else _("the {data} test split ({n:,} images, metrics.json)")).format(data=data, n=test["n_images"])
    else:
        mu, logvar = test_encodings(sel)
        labels = sel.test_images()[1]
        kl = kl_divergence(mu.double(), logvar.double(), per_dim=True,
                           prior_mu=prior_means(model, labels[: len(mu)])).mean(0).tolist()
        source = _("{n:,} {data} test images").format(n=len(mu), data=data)
    return Dimensions(lo, hi, kl, source, *rank_dimensions(kl))


def read_z(sel: Selection, sliders: state.PageState, dims: Dimensions) -> list[float]:
    """The sliders' z before they are drawn: each slider's own value once it has one, else the state's
    (a link's on its first run, a hand-off's, the session's, else 0), clipped to the slider's range, put
    under the sliders' keys and written back to the state and the URL (``z=1.5,-0.75``)."""
    d = sel.model.latent_dim
    kept = sliders.get("z", default=(0.0,) * d, length=d)
    z = []
    for j in range(d):
        key = f"{sliders.key('z')}{j}"
        value = min(dims.hi[j], max(dims.lo[j], float(st.session_state.get(key, kept[j]))))
        st.session_state[key] = value
        z.append(value)
    if tuple(z) != tuple(kept):
        sliders.set("z", tuple(z))
        sliders.get("z", default=(0.0,) * d, length=d)  # and into the URL
    return z


def pad_click(name: str, sliders: state.PageState) -> str:
    """Apply a tap or click on the latent pad to the sliders, before they are drawn (a chart's selection
    is in its state at the top of the run); returns the pad's key for this run. Each applied click gives
    the pad a new key, a chart with no selection: a later click on the same point is a new selection,
    and a slider's move is never undone by the old one."""
    count = st.session_state.get(sliders.key("pad_count"), 0)
    event = st.session_state.get(f"{sliders.key('pad')}{count}") or {}
    points = [(round(float(p["x"]), 2), round(float(p["y"]), 2))
              for p in (event.get("selection") or {}).get("points", []) if "x" in p and "y" in p]
    if points:
        x, y = points[-1]
        start_sliders(name, [x, y], _("a click on the latent pad at ({x:g}, {y:g})").format(x=x, y=y))
        count += 1
        st.session_state[sliders.key("pad_count")] = count
    return f"{sliders.key('pad')}{count}"


def intro(sel: Selection) -> None:
    model = sel.model
    st.title(_("Latent sliders"))
    st.markdown(
        (_("Set z by hand, one slider per latent dimension (± {span:g} prior standard deviations), and see "
           "the decoder's mean image p(x|z). Dimensions the encoder never uses (KL near 0: collapsed to the "
           "prior) change nothing.").format(span=SPAN) if model.variational else
         _("Set z by hand, one slider per latent dimension, and see the decoder's image."))
        + (_(" For this CVAE the label y joins the sliders: y picks the class, z the style.") if sel.label_decoder else "")
        + (_(" This class-prior VAE's decoder never sees a label: each class's prior N(μ_y, I) sits at its own "
             "mean μ_y, so start at a class mean and move away from it.") if sel.class_prior else "")
        + (_(" This is a plain autoencoder: it has no prior and no KL, so each slider spans the range of the "
             "test images' codes instead.") if not model.variational else "")
    )


def z_sliders(sel: Selection, sliders: state.PageState, dims: Dimensions) -> tuple[torch.Tensor, int | None]:
    """A CVAE's label y, then one slider per dimension, most informative first (a 2-d model's in index
    order), a row at a time so that a phone stacks them in that order; the inactive ones folded away in
    an expander. Returns (z float (latent_dim,), y or None)."""
    d, names = sel.model.latent_dim, sel.class_names
    y = None
    if sel.label_decoder:
        y = st.segmented_control(_("Class y"), range(len(names)), wrap=True, format_func=lambda i: names[i],
                                 required=True, key=sliders.bind("y", hi=len(names) - 1))
    tracks = meaning.slider_labels(sel)  # "slant, rho = 0.81", or None (issue 26)
    order = list(range(d)) if d <= 2 else dims.active
    ncols = min(d, 2 if d <= 8 else 3)

    def rows(js: list[int]) -> None:
        for start in range(0, len(js), ncols):
            for col, j in zip(st.columns(ncols, vertical_alignment="bottom"), js[start:start + ncols]):
                one_slider(col, sel, sliders, dims, j, tracks[j])

    rows(order)
    folded = [j for j in dims.inactive if j not in order]
    if folded:
        with st.expander(_("{n} inactive dimensions (KL below {threshold} nats): they change "
                           "little or nothing").format(n=len(folded), threshold=ACTIVE_KL_THRESHOLD)):
            rows(folded)
    return torch.tensor([float(st.session_state[f"{sliders.key('z')}{j}"]) for j in range(d)]), y


def one_slider(col, sel: Selection, sliders: state.PageState, dims: Dimensions, j: int, track: str | None) -> None:
    kl = dims.kl[j]
    col.slider(
        (_("z[{j}]: {track}").format(j=j, track=track) if track else f"z[{j}]") + ("" if j not in dims.inactive else _(" · inactive")),
        dims.lo[j], dims.hi[j], step=0.01, format="%.2f", key=f"{sliders.key('z')}{j}",
        help=(_("Mean KL {kl:.3f} nats over the test images (active)") if kl >= ACTIVE_KL_THRESHOLD else
              _("Mean KL {kl:.3f} nats over the test images (below {threshold} nats: inactive)")).format(
                  kl=kl, threshold=ACTIVE_KL_THRESHOLD)
        if sel.model.variational else _("Variance of the test codes along z[{j}]: {var:.2f}").format(j=j, var=kl),
    )


def attribute_section(sel: Selection, sliders: state.PageState):
    """Issue 26's attribute sliders (thicker, slanted, ...) for an MNIST model, else None."""
    if not meaning.digits(sel):
        return None
    if any(meaning.slider_labels(sel)):
        st.caption(_("A slider's name says which Morpho-MNIST measurement ({source}) it tracks most "
                     "over the test split, when |Spearman ρ| ≥ 0.5; the page *What the dimensions mean* has them all.")
                   .format(source=_(meaning.SOURCE)))
    with st.expander(_("Attribute sliders: thicker, slanted, wider, taller"), expanded=True):
        return meaning.attribute_sliders(sel, sliders.key("attr"))


def start_from(sel: Selection, d: int) -> None:
    """The starting points: the prior's mean, a draw, the last start, a class mean, a test image's encoding."""
    model, name, names = sel.model, sel.name, sel.class_names
    st.markdown(_("**Start from**"))
    row = st.container(horizontal=True)
    row.button(_("Prior mean"), on_click=start_sliders, args=(name, [0.0] * d, _(PRIOR_MEAN)),
               help=_("z = 0, the mean of p(z) = N(0, I)"))
    row.button(_("Random draw"), on_click=lambda: start_sliders(name, torch.randn(d).tolist(), _("a draw from the prior")),
               help="z ~ N(0, I)")
    row.button(_("Reset"), on_click=lambda: start_sliders(name, *st.session_state[sliders_state(name).key("start")]),
               help=_("Back to the last starting point"))
    if sel.class_prior:
        means = model.class_means.detach().cpu()
        c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
        cls = c1.selectbox(_("Class"), range(len(names)), format_func=lambda i: names[i],
                           key=S.bind("mean_of", hi=len(names) - 1))
        c2.button(_("Class mean μ_y"), on_click=start_sliders,
                  args=(name, means[cls].tolist(), _("the prior mean of class {name}").format(name=names[cls])),
                  help=_("z = μ_y, the centre of the class's prior N(μ_y, I)"))
    x, label, index = pick_test_image(sel, "", page_state=S)
    t1, t2 = st.columns([1, 3], vertical_alignment="center")
    show_image(t1, tile(x, nrow=1, scale=3 * state.zoom()))
    t2.button(_("Start from its encoding (mu)"), help=_("The mean of q(z|x) for this test image; values "
                                                        "beyond the sliders' range are clipped."),
              on_click=lambda: start_sliders(name, encode_images(model, x, torch.tensor([label]))[0][0].tolist(),
                                             _("the encoding of test image {index} (a {name})").format(
                                                 index=index, name=names[label]),
                                             label if sel.label_decoder else None))


def pad_figure(lo: list[float], hi: list[float], z: list[float], codes, labels, names: list[str]) -> go.Figure:
    """The latent pad of a 2-d model: the test encodings (by class), a grid of clickable points over
    the sliders' ranges, and the current z as a star; the plane square and fixed (a swipe neither
    zooms nor pans it), its class legend one row wide on a phone."""
    zoom = state.zoom()
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], PAD_POINTS), np.linspace(lo[1], hi[1], PAD_POINTS))
    fig = class_scatter(codes, labels, names, size=3 * zoom, opacity=0.35, webgl=False)
    fig.add_trace(go.Scatter(x=gx.ravel(), y=gy.ravel(), mode="markers", name="pad", showlegend=False,
                             marker=dict(size=9 * zoom, color="rgba(0,0,0,0.02)"),
                             hovertemplate=_("z = (%{x:.2f}, %{y:.2f}): tap or click to decode<extra></extra>")))
    fig.add_trace(go.Scatter(x=[z[0]], y=[z[1]], mode="markers", name="z of the sliders", showlegend=False,
                             marker=dict(symbol="star", size=18 * zoom, color="gold", line=dict(color="black", width=1.5)),
                             hovertemplate=_("the sliders' z: (%{x:.2f}, %{y:.2f})<extra></extra>")))
    fig.update_layout(height=420 if zoom == 1 else 640, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="z[0]", yaxis_title="z[1]",
                      legend=dict(orientation="h", y=-0.18, title=None, entrywidth=32 * zoom, font=dict(size=12 * zoom)),
                      clickmode="event+select", font=dict(size=12 * zoom))
    fig.update_xaxes(range=[lo[0], hi[0]], constrain="domain", fixedrange=True)
    fig.update_yaxes(range=[lo[1], hi[1]], scaleanchor="x", scaleratio=1, constrain="domain", fixedrange=True)
    fig.update_xaxes(tickfont_size=12 * zoom, title_font_size=14 * zoom)  # over the theme's own sizes
    fig.update_yaxes(tickfont_size=12 * zoom, title_font_size=14 * zoom)
    return fig


def latent_pad(sel: Selection, key: str, dims: Dimensions, z: list[float]) -> None:
    """A 2-d model's latent pad, with the q(z)/p(z) shading on request; a tap or click sets the sliders."""
    st.markdown(_("**Latent pad**: tap or click a point of the plane to decode it (star: the sliders' z)"))
    codes = test_encodings(sel)[0]
    labels = sel.test_images()[1]
    pick = torch.randperm(len(codes), generator=torch.Generator().manual_seed(0))[:PAD_CODES]
    fig = pad_figure(dims.lo, dims.hi, z, codes[pick], labels[pick], sel.class_names)
    density = health.has_standard_prior(sel) and st.toggle(
        _("Shade q(z) against p(z); outline the holes"), key=S.bind("holes"),
        help=_("Blue: the aggregate posterior q(z) (the mixture of the test images' q(z|x)) puts more mass there "
               "than the prior N(0, I); red: less. Red line: the holes, q/p below the threshold inside the prior's 95% circle."))
    if density:
        threshold = health.threshold_picker("sliders_pad_threshold")
        health.density_layer(fig, sel, dims.lo, dims.hi, threshold)  # under the clickable points
    st.html(PAD_TOUCH, unsafe_allow_javascript=True)
    with st.container(key="latent_pad"):  # the touch fix's scope (PAD_TOUCH)
        st.plotly_chart(fig, key=key, on_select="rerun", selection_mode="points", config={"displayModeBar": False})
    if density:
        st.caption(_("Shading: log10 q(z)/p(z), blue where the encoder puts more mass than the prior, red where "
                     "less, saturated at a factor of 1,000; dashed circle: the prior's central 95%; red lines: the "
                     "holes' edges. {details}").format(details=health.hole_caption(sel, (0, 1), threshold)))


def kl_summary(sel: Selection, dims: Dimensions) -> None:
    d = sel.model.latent_dim
    if not sel.model.variational:
        st.caption(_("Slider ranges: {source}, ± 0.5.").format(source=dims.source))
        return
    fig = kl_bars(dims.kl, ACTIVE_KL_THRESHOLD)
    if state.zoom() > 1:
        fig.update_layout(height=170 * state.zoom())
        fig.update_xaxes(tickfont_size=12 * state.zoom())
        fig.update_yaxes(tickfont_size=12 * state.zoom(), title_font_size=14 * state.zoom())
    st.plotly_chart(fig, config={"displayModeBar": False}, key="sliders_kl")
    st.caption(_("Mean KL(q(z_j|x) ‖ p(z_j)) of each dimension over {source}: {active} of {d} "
                 "dimensions active, {inactive} inactive (below {threshold} nats).").format(
                     source=dims.source, active=len(dims.active), d=d, inactive=len(dims.inactive),
                     threshold=ACTIVE_KL_THRESHOLD))


def show_decoded(sel: Selection, view, z: torch.Tensor, y: int | None, attribute_move, how: str) -> None:
    """The decoder's mean image at the sliders' z (moved along the attribute directions when asked), in ``view``."""
    decoded = decode_images(sel.model, z[None], y)
    asked = ""
    if attribute_move is not None and attribute_move.asked:  # moved along the attribute directions, then measured
        moved = decode_images(sel.model, attribute_move.apply(z)[None], y)
        attribute_move.show_measured(decoded, moved)
        decoded, asked = moved, _(", moved along {what}").format(what=attribute_move.asked)
    elif attribute_move is not None:
        attribute_move.show_measured(decoded, decoded)
    label = _(" with y = {name}").format(name=sel.class_names[y]) if sel.label_decoder else ""
    show_image(view, tile(decoded, nrow=1, scale=12 * state.zoom()),
               caption=_("{name}: decoded from the sliders' z{moved}{label} (last start: {how}).").format(
                   name=sel.name, moved=asked, label=label, how=how))


def traversals(sel: Selection, z: torch.Tensor, y: int | None, dims: Dimensions) -> None:
    """Row by row, each dimension swept across its range with the others at the sliders' z, by KL."""
    model, tracks, inactive = sel.model, meaning.slider_labels(sel), dims.inactive
    st.subheader(_("Traversals"))
    st.caption(_("Row by row, one dimension swept across its range with the others held at the sliders' z; "
                 "rows ordered by mean KL, most informative first."))
    c1, c2, c3 = st.columns(3, vertical_alignment="bottom")
    steps = c1.slider(_("Images per row"), 5, 15, key=S.bind("steps"))
    if model.variational:
        span = c2.slider(_("Traversal span (± standard deviations)"), 1.0, SPAN, step=0.5, key=S.bind("span"))
    else:  # an AE: no prior's standard deviations; its codes' reach instead
        reach = float(round(max(1.5, max(map(abs, dims.lo)), max(map(abs, dims.hi)))))
        span = c2.slider(_("Traversal span (± z)"), 1.0, reach, step=0.5, key=S.bind("span", default=reach / 2, hi=reach))
    show_inactive = c3.toggle(_("Show the {n} inactive dimensions").format(n=len(inactive)) if inactive
                              else _("No inactive dimensions"),
                              key=S.bind("inactive"), disabled=not inactive)
    rows = dims.active + (inactive if show_inactive else [])
    if not rows:  # every dimension at the prior (a model trained too briefly): nothing to sweep until they are shown
        st.info(_("No dimension is active: the encoder leaves every one at the prior. Show the inactive dimensions to "
                  "sweep them anyway."))
        return
    grid = traversal_grid(model, z, rows, steps, span, y)
    side = grid.shape[-2] + 1  # one row of the tiled grid: an image (28 px for MNIST) and a 1-pixel white line
    scale = max(1, 700 // (steps * side)) * state.zoom()
    tiled = tile(grid, nrow=steps, padding=1, scale=scale)
    h = side * scale
    for r, j in enumerate(rows):
        c1, c2 = st.columns([1, 8], vertical_alignment="center")
        c1.markdown(f"**z[{j}]**  \n" + (f"{dims.kl[j]:.2f} nats" if model.variational else _("var {value:.2f}").format(value=dims.kl[j]))
                    + (f"  \n{re.split('[,，]', tracks[j])[0]}" if tracks[j] else ""))  # what it tracks (issue 26)
        show_image(c2, tiled[r * h : (r + 1) * h + scale])
    st.caption(_("Each row from z[j] = -{span:g} (left) to +{span:g} (right).").format(span=span)
               + ("" if show_inactive or not inactive else
                  _(" {n} inactive dimensions folded away.").format(n=len(inactive))))
    download_png(tile(grid, nrow=steps, padding=1), f"{sel.name}-traversals", "sliders_png",
                 container=st.columns([1, 2])[0])


def render(sel: Selection) -> None:
    d, sliders = sel.model.latent_dim, sliders_state(sel.name)
    dims = dimensions(sel)
    pad_key = pad_click(sel.name, sliders) if d == 2 else None
    z = read_z(sel, sliders, dims)
    start = st.session_state.setdefault(sliders.key("start"), (z, _("the link's z") if any(z) else _(PRIOR_MEAN), None))
    intro(sel)
    # The decoded image stays in view while z moves: for a 2-d model right beside the pad (under it on a
    # phone, where columns stack), then the sliders; else above the sliders. The rest goes beside or below.
    if d == 2:
        pad_column, left = st.columns([3, 2], gap="large")
        with pad_column:
            latent_pad(sel, pad_key, dims, z)
    else:
        left, right = st.columns([2, 3], gap="large")
    view = left.container()
    with left:
        z_now, y = z_sliders(sel, sliders, dims)
    if d == 2:
        left, right = st.columns([2, 3], gap="large")
    with left:
        attribute_move = attribute_section(sel, sliders)
    with right:
        start_from(sel, d)
        kl_summary(sel, dims)
    show_decoded(sel, view, z_now, y, attribute_move, start[1])
    traversals(sel, z_now, y, dims)


if __name__ == "__main__":
    import app

    app.run_page(render)
