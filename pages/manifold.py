"""The 2-D latent manifold: a grid of decoded images spanning a plane of the latent space; one click
away, a grid of samples from the prior and test images beside their reconstructions (the two figures
of PyTorch's VAE example)."""

import math
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
from PIL import Image, ImageDraw

from ui import health, i18n, meaning, state
from ui.i18n import N_, _, say
from ui.charts import CLASS_COLORS
from ui.images import download_png, font_of, show_image
from ui.models import Selection, open_in_sliders_page, test_encodings, test_metrics
from vae.conditional import class_decode, prior_styles
from vae.latent import (GRID_SPACINGS, decode_images, encode_images, grid_coordinates, manifold_grid, plane_pixel,
                        tile)

VIEWS = (N_("Manifold"), N_("Prior samples"), N_("Reconstructions"))  # stored values (the URL's), English; shown through _
MARGIN = (58, 40)  # pixels left of and under the grid for the z ticks and the axis names (the vertical one turned)
TICK_FONT_PX = 13  # the ticks' and axis names' size (times state.zoom() in projector mode)
N_OVERLAY = 2000  # test encodings drawn over the grid
GRID_COLUMN_PX = 595  # the grid's column at a 1400 px window with the sidebar open (measured in Chromium)
OTHERS = (N_("the prior mean (0)"), N_("a random draw"))
SPACING_NAMES = {"quantile": N_("quantile"), "linear": N_("linear")}  # GRID_SPACINGS as shown
# Where the columns stack (a phone), the grid's column comes before the controls' column: the picture is on
# the first screen, the controls under it.
GRID_FIRST_ON_A_PHONE = ("<style>@media (max-width: 640px) {[data-testid=stColumn]:has(.st-key-manifold_picture) "
                         "{order: -1;}}</style>")
S = state.PageState("manifold", [
    state.Setting("view", str, VIEWS[0], options=VIEWS), state.Setting("grid", int, 15, 5, 30),
    state.Setting("span", float, 2.0, 0.5, 4.0), state.Setting("spacing", str, GRID_SPACINGS[0], options=GRID_SPACINGS),
    state.Setting("x", int, 0, 0), state.Setting("y", int, 1, 0), state.Setting("others", str, OTHERS[0], options=OTHERS),
    state.Setting("seed", int, 0, 0, 10_000), state.Setting("label", int, 0, 0), state.Setting("centre", int, None, 0),
    state.Setting("overlay", bool, False), state.Setting("holes", bool, False),
    state.Setting("samples", int, 64, options=(16, 36, 64, 100)), state.Setting("samples_class", int, None, 0),
    state.Setting("pairs", int, 4, options=(1, 2, 4, 6)),
])


def mark_means(picture: np.ndarray, means: torch.Tensor, names: list[str], centre: tuple[float, float], n: int,
               cell: int, span: float, spacing: str) -> np.ndarray:
    """The class means (C, 2) drawn on the tiled grid as labelled red crosses, where they fall inside it."""
    image = Image.fromarray(picture).convert("RGB")
    draw = ImageDraw.Draw(image)
    size = n * cell
    for (mx, my), name in zip(means.tolist(), names):
        if abs(mx - centre[0]) > span or abs(my - centre[1]) > span:
            continue  # off the plane shown
        px = plane_pixel(mx - centre[0], n, cell, span, spacing)
        py = size - plane_pixel(my - centre[1], n, cell, span, spacing)  # z grows upwards, pixels downwards
        r = max(6, int(cell // 4))
        for width, colour in ((5, (0, 0, 0)), (3, (255, 60, 60))):  # a dark outline: readable on any cell
            draw.line([(px - r, py - r), (px + r, py + r)], fill=colour, width=width)
            draw.line([(px - r, py + r), (px + r, py - r)], fill=colour, width=width)
        draw.text((px + r + 1, py - r), name, fill=(255, 60, 60), **font_of(name, max(16, int(cell // 2))), anchor="lm",
                  stroke_width=2, stroke_fill=(0, 0, 0))
    return np.asarray(image)


def ticks(span: float) -> list[float]:
    """Round z values to label within ±span, at most 9 of them: whole numbers, or halves for a small span,
    or a step of 2, 5, 10, ... for a wide one (an autoencoder's plane may span ±14: ticks one apart ran
    together)."""
    least = 1.0 if span >= 1.5 else 0.5
    step = next(s * 10**e for e in range(-1, 6) for s in (1, 2, 5) if s * 10**e >= least and 2 * span / (s * 10**e) <= 8)
    k = int(span / step + 1e-9)
    return [i * step for i in range(-k, k + 1)]


def with_axes(picture: np.ndarray, n: int, cell: int, span: float, spacing: str, centre: tuple[float, float],
              dims: tuple[int, int], tracks: tuple[str | None, str | None] = (None, None)) -> np.ndarray:
    """The grid with z ticks in latent units left of it and under it (as in the Keras VAE example's
    figure); a tick sits at the centre of the cell whose z it names, through ``plane_pixel``. Each axis
    is named "z[j]", with what the dimension tracks when ``tracks`` says ("z[3]: slant, rho = 0.81");
    the vertical name runs up the left edge."""
    h, w = picture.shape[:2]
    zoom = state.zoom()
    left, bottom = MARGIN[0] * zoom, MARGIN[1] * zoom
    font = TICK_FONT_PX * zoom
    image = Image.new("RGB", (w + left, h + bottom), (255, 255, 255))
    image.paste(Image.fromarray(picture).convert("RGB"), (left, 0))
    draw = ImageDraw.Draw(image)
    grey = (90, 90, 90)
    for t in ticks(span):
        x = left + plane_pixel(t, n, cell, span, spacing)
        y = h - plane_pixel(t, n, cell, span, spacing)
        draw.line([(x, h), (x, h + 4 * zoom)], fill=grey, width=zoom)
        draw.text((x, h + 6 * zoom), f"{round(t + centre[0], 2):g}", fill=grey, anchor="ma", font_size=font)
        draw.line([(left - 4 * zoom, y), (left, y)], fill=grey, width=zoom)
        draw.text((left - 6 * zoom, y), f"{round(t + centre[1], 2):g}", fill=grey, anchor="rm", font_size=font)
    names = [_("z[{j}]: {track}").format(j=j, track=t) if t else f"z[{j}]" for j, t in zip(dims, tracks)]
    draw.text((left + w // 2, h + bottom - 1), names[0], fill=grey, anchor="md", **font_of(names[0], font))
    turned = Image.new("RGB", (max(h, 1), font + 4), (255, 255, 255))  # the vertical name, drawn flat, then turned
    ImageDraw.Draw(turned).text((h // 2, (font + 4) // 2), names[1], fill=grey, anchor="mm",
                                  **font_of(names[1], font))
    image.paste(turned.rotate(90, expand=True), (1, 0))
    return np.asarray(image)


def overlay_codes(picture: np.ndarray, codes: torch.Tensor, labels: torch.Tensor, n: int, cell: int, span: float,
                  spacing: str, centre: tuple[float, float]) -> np.ndarray:
    """Test encodings (N, 2), relative to the plane, as dots in their class's colour where they fall."""
    image = Image.fromarray(picture).convert("RGB")
    draw = ImageDraw.Draw(image)
    size = n * cell
    codes = codes - torch.tensor(centre)
    on = (codes.abs() <= span).all(1)  # off the plane shown: not drawn (quantile spacing would pile them on its edge)
    codes, labels = codes[on], labels[on]
    xs = plane_pixel(codes[:, 0], n, cell, span, spacing).tolist()  # all at once
    ys = (size - plane_pixel(codes[:, 1], n, cell, span, spacing)).tolist()
    r = 2 * state.zoom()
    for px, py, c in zip(xs, ys, labels.tolist()):
        if 0 <= px < size and 0 <= py < size:
            draw.ellipse([px - r, py - r, px + r, py + r], fill=CLASS_COLORS[c % len(CLASS_COLORS)])
    return np.asarray(image)


def with_legend(picture: np.ndarray, names: list[str]) -> np.ndarray:
    """A row of the overlay's classes (a dot in each class's colour and its name) under the picture,
    wrapped to its width."""
    zoom = state.zoom()
    font, r, gap = TICK_FONT_PX * zoom, 4 * zoom, 14 * zoom
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widths = [2 * r + 4 * zoom + int(probe.textlength(name, **font_of(name, font))) + gap for name in names]
    h, w = picture.shape[:2]
    rows, x = [[]], 0
    for i, width in enumerate(widths):
        if rows[-1] and x + width > w:
            rows.append([])
            x = 0
        rows[-1].append((i, x))
        x += width
    line = font + 8 * zoom
    image = Image.new("RGB", (w, h + line * len(rows) + 4 * zoom), (255, 255, 255))
    image.paste(Image.fromarray(picture).convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(image)
    for k, row in enumerate(rows):
        y = h + 4 * zoom + line * k + line // 2
        for i, x in row:
            draw.ellipse([x, y - r, x + 2 * r, y + r], fill=CLASS_COLORS[i % len(CLASS_COLORS)])
            draw.text((x + 2 * r + 4 * zoom, y), names[i], fill=(60, 60, 60), anchor="lm", **font_of(names[i], font))
    return np.asarray(image)


@dataclass
class Plane:
    """The plane the grid shows: n cells per side over ±span around ``centre`` in dimensions ``dims``,
    the other dimensions at ``base`` (None: 0); a CVAE's label; a class-prior model's means (C, 2 dims)."""

    n: int
    span: float
    spacing: str
    dims: tuple[int, int] = (0, 1)
    base: torch.Tensor | None = None
    label: int | None = None
    means: torch.Tensor | None = None

    @property
    def centre(self) -> tuple[float, float]:
        return (0.0, 0.0) if self.base is None else (float(self.base[self.dims[0]]), float(self.base[self.dims[1]]))


def render(sel: Selection) -> None:
    st.title(_("Latent manifold"))
    kind = st.segmented_control(_("Show"), VIEWS, required=True, key=S.bind("view"), format_func=i18n.shown(VIEWS),
                                help=_("The decoded plane; samples from the prior; test images beside their "
                                       "reconstructions (the two figures pytorch/examples' VAE saves)."))
    if kind == VIEWS[1]:
        return prior_samples(sel)
    if kind == VIEWS[2]:
        return reconstructions(sel)
    manifold_view(sel)


def manifold_view(sel: Selection) -> None:
    """The decoded plane with its controls on the left: grid, span, spacing, the plane's dimensions,
    the overlay and the holes, the download and the hand-off to the sliders."""
    model = sel.model
    st.markdown(
        _("Each cell is the decoder's mean image p(x|z) for one point z of the latent plane; the prior "
          "p(z) = N(0, I) puts most of its mass within two standard deviations of the centre. "
          "Smooth change from cell to cell is what the KL term buys.") if model.variational else
        _("Each cell is the decoder's image for one point z of the latent plane. This plain autoencoder has no "
          "prior and no KL term: the plane spans its test codes (95% of their coordinates by default), evenly "
          "spaced, and nothing keeps it smooth or free of gaps (see the AE vs VAE page).")
    )
    controls, view = st.columns([1, 2], gap="large")
    with controls:
        plane = plane_controls(sel)
        overlay = st.toggle(_("Overlay the test encodings"), key=S.bind("overlay"),
                            help=_("The means μ(x) of {n:,} test images, one dot each in its class's colour, "
                                   "where they fall on this plane (the other dimensions are ignored).").format(n=N_OVERLAY))
        holes, threshold = False, None
        if health.has_standard_prior(sel):
            holes = st.toggle(_("Mark the holes"), key=S.bind("holes"),
                              help=_("Where the prior p(z) = N(0, I) puts mass but the aggregate posterior q(z), the mixture "
                                     "of the test images' q(z|x), puts almost none: prior draws there decode to images "
                                     "the model never learned to make (Hoffman & Johnson, 2016)."))
            if holes:
                threshold = health.threshold_picker("manifold_hole_threshold")
    images = manifold_grid(model, plane.n, plane.span, plane.spacing, plane.dims, plane.base, plane.label)
    plain = tile(images, nrow=plane.n)
    picture, cell = fit_grid(plain, plane.n)
    if overlay:
        codes = test_encodings(sel)[0]
        labels = sel.test_images()[1]
        pick = torch.randperm(len(codes), generator=torch.Generator().manual_seed(0))[:N_OVERLAY]
        picture = overlay_codes(picture, codes[pick][:, list(plane.dims)], labels[pick], plane.n, cell, plane.span,
                                plane.spacing, plane.centre)
    if plane.means is not None:
        picture = mark_means(picture, plane.means[:, list(plane.dims)], sel.class_names, plane.centre, plane.n, cell,
                             plane.span, plane.spacing)
    hole_cells = None
    if holes:
        hole_cells = health.grid_holes(sel, grid_coordinates(plane.n, plane.span, plane.spacing), plane.dims,
                                       plane.centre, threshold)
        picture = health.mark_holes(picture, hole_cells, cell,
                                    prior_outline(plane.n, cell, plane.span, plane.spacing, plane.centre))
    labels_of_dims = meaning.slider_labels(sel)
    tracks = tuple(labels_of_dims[j] for j in plane.dims)  # what each axis tracks (issue 26), or None
    picture = with_axes(picture, plane.n, cell, plane.span, plane.spacing, plane.centre, plane.dims, tracks)
    if overlay:
        picture = with_legend(picture, sel.class_names)
    with controls:
        download_png(plain, f"{sel.name}-manifold-{plane.n}x{plane.n}", "manifold_png")
        cell_to_sliders(sel, plane)
    show_image(view.container(key="manifold_picture"), picture, caption=grid_caption(sel, plane, overlay, tracks))
    st.html(GRID_FIRST_ON_A_PHONE)
    if hole_cells is not None:
        show_holes(sel, images, hole_cells, plane.dims, threshold)


def plane_controls(sel: Selection) -> Plane:
    """Grid size, span and spacing; for d > 2 the two dimensions (by KL) and what holds the others; a
    CVAE's class; a class-prior model's centre. Stops the page when the two dimensions are the same."""
    model, d = sel.model, sel.model.latent_dim
    n = st.slider(_("Grid size (cells per side)"), 5, 30, key=S.bind("grid"))
    if model.variational:
        span = st.slider(_("Span (± standard deviations)"), 0.5, 4.0, step=0.25, key=S.bind("span"))
    else:  # an AE's codes are not on the prior's scale: span them
        reach = float(test_encodings(sel)[0].abs().quantile(0.95))
        top = float(max(4, math.ceil(reach * 2)))
        span = st.slider(_("Span (± z)"), 0.5, top, step=0.5, key=S.bind("span", default=round(reach * 2) / 2, hi=top))
    spacing = st.radio(
        _("Spacing"), GRID_SPACINGS, horizontal=True, format_func=i18n.shown(GRID_SPACINGS, SPACING_NAMES.get),
        key=S.bind("spacing", default=GRID_SPACINGS[0] if model.variational else GRID_SPACINGS[1]),
        help=_("quantile: equal prior mass per cell (through the normal's inverse CDF, as in the VAE "
               "paper's figures); linear: equal steps in z."),
    )
    plane = Plane(n, span, spacing)
    if d > 2:
        dimension_controls(sel, plane)
    if sel.label_decoder:
        names = sel.class_names
        plane.label = st.segmented_control(_("Class (the CVAE's label y)"), range(len(names)), wrap=True,
                                           format_func=lambda i: names[i], required=True,
                                           key=S.bind("label", hi=len(names) - 1))
    if sel.class_prior:  # the prior's ten means, marked on the plane; the grid can centre on one
        names, plane.means = sel.class_names, model.class_means.detach().cpu()
        centres = {None: _("the origin"), **{i: _("μ of class {name}").format(name=n) for i, n in enumerate(names)}}
        centre = st.selectbox(_("Centre the plane on"), list(centres), key=S.bind("centre", hi=len(names) - 1),
                              format_func=centres.get,
                              help=_("Each class's prior is N(μ_y, I): centre on μ_y to see that class's cloud."))
        if plane.base is not None:  # a random draw: the other dimensions' offsets from the centre
            plane.base[list(plane.dims)] = 0.0
        if centre is not None:  # the plane through μ_y, in every dimension
            plane.base = plane.means[centre].clone() + (0.0 if plane.base is None else plane.base)
        elif plane.base is None:
            plane.base = torch.zeros(d)
    elif plane.base is not None:
        plane.base[list(plane.dims)] = 0.0  # the plane through the origin; the draw holds the other dimensions
    return plane


def dimension_controls(sel: Selection, plane: Plane) -> None:
    """The plane's two dimensions, most informative first (mean KL per dimension on the test split, from
    metrics.json), and the other dimensions' values: 0, or a seeded draw from the prior (into ``plane``)."""
    d = sel.model.latent_dim
    kl = test_metrics(sel.metrics).get("kl_per_dim")
    order = sorted(range(d), key=lambda i: -kl[i]) if kl else list(range(d))
    track = meaning.slider_labels(sel)
    label_of = lambda i: f"z[{i}]" + (f" · KL {kl[i]:.2f}" if kl else "") + (f" · {track[i]}" if track[i] else "")
    c1, c2 = st.columns(2)
    dx = c1.selectbox(_("Horizontal dimension"), order, format_func=label_of, key=S.bind("x", default=order[0], hi=d - 1),
                      help=_("Ordered by mean KL on the test split (nats): near 0 means inactive."))
    dy = c2.selectbox(_("Vertical dimension"), order, format_func=label_of, key=S.bind("y", default=order[1], hi=d - 1))
    others = st.radio(_("Other dimensions held at"), OTHERS, horizontal=True, key=S.bind("others"), format_func=i18n.shown(OTHERS))
    if dx == dy:
        st.warning(_("Pick two different dimensions."))
        st.stop()
    plane.dims = (dx, dy)
    if others == OTHERS[1]:
        seed = st.number_input(_("Seed of the draw"), 0, 10_000, key=S.bind("seed"))
        plane.base = torch.randn(d, generator=torch.Generator().manual_seed(int(seed)))


def fit_grid(plain: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """The tiled grid (n * S pixels a side for S x S images, grey or colour) at the size of its column,
    and a cell's size in pixels.

    Enlarged by an integer pixel repetition where it fits (the browser never resamples it: crisp); a grid
    wider than the column (30 cells of 28 px are 840 px) is reduced by box averaging here instead, so that
    it fits the column and a 900 px window. Projector mode (``state.zoom``) doubles the room."""
    side, s = (GRID_COLUMN_PX - MARGIN[0]) * state.zoom(), plain.shape[0] // n
    if n * s <= side:
        scale = side // (n * s)
        return plain.repeat(scale, 0).repeat(scale, 1), float(s * scale)
    image = Image.fromarray(plain).resize((side, side), Image.Resampling.BOX)
    return np.asarray(image), side / n


def cell_to_sliders(sel: Selection, plane: Plane) -> None:
    """A popover that opens one cell's z in the Latent sliders (``ui.models.open_in_sliders_page``)."""
    n, dims = plane.n, plane.dims
    with st.popover(_("Open a cell in the sliders"), icon=":material/tune:", width="stretch"):
        c1, c2 = st.columns(2)
        column = c1.number_input(_("Column (from the left)"), 1, n, (n + 1) // 2, key="manifold_cell_col")
        row = c2.number_input(_("Row (from the top)"), 1, n, (n + 1) // 2, key="manifold_cell_row")
        if st.button(_("Open in the sliders"), key="manifold_cell_open", type="primary"):
            coords = grid_coordinates(n, plane.span, plane.spacing)
            z = torch.zeros(sel.model.latent_dim) if plane.base is None else plane.base.clone()
            z[dims[0]] = z[dims[0]] + coords[int(column) - 1]
            z[dims[1]] = z[dims[1]] + coords[n - int(row)]  # the top row holds the largest value
            open_in_sliders_page(sel.name, z.tolist(),
                                 _("the manifold cell ({column}, {row})").format(column=int(column), row=int(row)),
                                 plane.label)


def grid_caption(sel: Selection, plane: Plane, overlay: bool, tracks: tuple) -> str:
    (cx, cy), span, dims = plane.centre, plane.span, plane.dims
    return (_("{name}: horizontal z[{dx}] from {x0:g} (left) to {x1:g} (right); "
              "vertical z[{dy}] from {y0:g} (bottom) to {y1:g} (top)").format(
                name=sel.name, dx=dims[0], dy=dims[1], x0=round(cx - span, 2), x1=round(cx + span, 2),
                y0=round(cy - span, 2), y1=round(cy + span, 2))
            + (_("; the crosses mark each class's prior mean μ_y") if plane.means is not None else "")
            + (_("; dots: test encodings, coloured by class (legend under the grid)") if overlay else "")
            + ("" if sel.model.latent_dim == 2 else
               _("; other dimensions 0") if plane.base is None else _("; other dimensions from a random draw"))
            + (_(". Axis names: the Morpho-MNIST measurement ({source}) each dimension tracks most over the test "
                 "split, when |Spearman ρ| ≥ 0.5 (What the dimensions mean)").format(source=_(meaning.SOURCE))
               if any(tracks) else ""))


def prior_outline(n: int, cell: int, span: float, spacing: str, centre: tuple[float, float]) -> list[tuple[float, float] | None]:
    """The prior's central 95% circle as pixel points on the tiled grid (through ``plane_pixel``, so it
    bends with quantile spacing as the cells do); None where it runs off the plane shown."""
    t = torch.linspace(0, 2 * math.pi, 145, dtype=torch.float64)
    r = health.prior_radius(2)
    x, y = r * t.cos() - centre[0], r * t.sin() - centre[1]
    on = ((x.abs() <= span) & (y.abs() <= span)).tolist()
    size = n * cell
    px, py = plane_pixel(x, n, cell, span, spacing).tolist(), (size - plane_pixel(y, n, cell, span, spacing)).tolist()
    return [(a, b) if keep else None for a, b, keep in zip(px, py, on)]


def show_holes(sel: Selection, images: torch.Tensor, hole_cells: np.ndarray, dims: tuple[int, int], threshold: float) -> None:
    """Under the grid: the holes in numbers, and the images decoded in up to 12 hole cells."""
    n = hole_cells.shape[0]
    st.caption(_("Red cells: holes. {details}").format(
        details=health.hole_caption(sel, dims, threshold, (int(hole_cells.sum()), n * n))))
    picks = np.flatnonzero(hole_cells.ravel())
    if picks.size:
        shown = picks[np.linspace(0, picks.size - 1, min(12, picks.size)).round().astype(int)]
        strip = tile(images[torch.from_numpy(shown)], nrow=len(shown), padding=2, scale=2)
        show_image(st, strip, caption=_("Decoded in {shown} of the {total} hole cells: what a prior draw "
                                        "there gives. No test image is encoded near them; across a narrow gap the decoder may still draw "
                                        "a plausible image, and deep in a wide hole it draws a blur.").format(
                                            shown=len(shown), total=picks.size))


def prior_samples(sel: Selection) -> None:
    """A grid of decoded draws from the prior (PyTorch's example saves 64 of them after each epoch)."""
    model, names = sel.model, sel.class_names
    if not model.variational:
        st.info(_("{name} is a plain autoencoder: it has no prior to draw from. The AE vs VAE page decodes "
                  "draws from N(0, I) with it anyway, to show what that gives.").format(name=sel.name))
        return
    st.markdown(_("Draws z from the prior, each decoded to the decoder's mean image p(x|z): what the model "
                  "generates.") + (_(" For the CVAE, z ~ N(0, I) decoded with the class picked.") if sel.label_decoder else "")
                + (_(" For the class-prior VAE, z = μ_y + ε, ε ~ N(0, I), for the class picked (or any class).")
                   if sel.class_prior else ""))
    c1, c2, c3 = st.columns([1, 2, 1], vertical_alignment="bottom")
    count = c1.select_slider(_("Samples"), [16, 36, 64, 100], key=S.bind("samples"))
    label = None
    if sel.conditional:
        options = [None, *range(len(names))] if sel.class_prior else list(range(len(names)))
        label = c2.selectbox(_("Class"), options, key=S.bind("samples_class", hi=len(names) - 1,
                                                         default=None if sel.class_prior else 0),
                             format_func={None: _("any class (the prior's mixture)"), **dict(enumerate(names))}.get)
    seed = st.session_state.setdefault("manifold_samples_seed", 0)
    c3.button(_("New samples"), icon=":material/casino:", key="manifold_new_samples",
              on_click=lambda: st.session_state.update(manifold_samples_seed=int(torch.randint(100_000, ()).item())))
    eps = prior_styles(count, model.latent_dim, seed)
    if sel.conditional:
        y = (torch.randint(len(names), (count,), generator=torch.Generator().manual_seed(seed))
             if label is None else torch.full((count,), int(label)))
        images = class_decode(model, eps, y)
    else:
        images = decode_images(model, eps)
    side = int(count**0.5)
    plain = tile(images.cpu(), nrow=side, padding=2)
    scale = max(1, 928 // plain.shape[1])
    show_image(st, plain.repeat(scale, 0).repeat(scale, 1),
               caption=_("{name}: {count} draws from the prior (seed {seed}), decoder means").format(
                   name=sel.name, count=count, seed=seed))
    download_png(plain, f"{sel.name}-samples-{count}", "manifold_samples_png")


def pairs_caption(indices: torch.Tensor, source: str) -> str:
    """Which test images the pairs show: their count and numbers in the test split (a bundled sample holds
    every tenth or so image, so the numbers of its consecutive images are not consecutive)."""
    first, last, count = int(indices[0]), int(indices[-1]), len(indices)
    numbers = (_("numbers {first:,} to {last:,}").format(first=first, last=last) if last - first + 1 == count
               else _("{count} images numbered between {first:,} and {last:,} in the full test split").format(
                   count=count, first=first, last=last))
    return _("{count} test images from {source} ({numbers}), each over its reconstruction").format(
        count=count, source=say(source), numbers=numbers)


def reconstructions(sel: Selection) -> None:
    """Test images beside their reconstructions, row by row (PyTorch's example saves 8 pairs)."""
    model = sel.model
    images, labels, indices, source = sel.test_images()
    st.markdown(_("Test images (odd rows) and, under each, its reconstruction: the decoder's mean at the encoder's "
                  "mean code z = μ(x).") if model.variational else
                _("Test images (odd rows) and, under each, its reconstruction: the decoder's mean at the encoder's "
                  "mean code z = μ(x) (z = f(x) for this autoencoder)."))
    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    per_row = 8
    rows = c1.select_slider(_("Pairs of rows"), [1, 2, 4, 6], key=S.bind("pairs"))
    start = st.session_state.setdefault("manifold_recon_start", 0)
    c2.button(_("Other test images"), icon=":material/casino:", key="manifold_recon_new",
              on_click=lambda: st.session_state.update(
                  manifold_recon_start=int(torch.randint(max(1, len(labels) - per_row * 6), ()).item())))
    x, y = images[start : start + per_row * rows], labels[start : start + per_row * rows]
    mu = encode_images(model, x, y if sel.conditional else None)[0]
    recon = decode_images(model, mu, y if sel.label_decoder else None).cpu()
    pairs = torch.cat([torch.stack([x[r * per_row:(r + 1) * per_row], recon[r * per_row:(r + 1) * per_row]])
                       for r in range(rows)]).reshape(-1, *x.shape[1:])
    plain = tile(pairs, nrow=per_row, padding=2)
    scale = max(1, 600 * state.zoom() // plain.shape[1])
    show_image(st, plain.repeat(scale, 0).repeat(scale, 1), caption=_("{name}: {what}").format(
        name=sel.name, what=pairs_caption(indices[start : start + len(x)], source)))
    download_png(plain, f"{sel.name}-reconstructions", "manifold_recon_png")


if __name__ == "__main__":
    import app

    app.run_page(render)
