"""The 2-D latent manifold: a grid of decoded images spanning a plane of the latent space."""

import numpy as np
import streamlit as st
import torch
from PIL import Image, ImageDraw

from ui.images import show_image
from ui.models import Selection, test_metrics
from vae.latent import GRID_SPACINGS, manifold_grid, plane_pixel, tile

GRID_COLUMN_PX = 595  # the grid's column at a 1400 px window with the sidebar open (measured in Chromium)


def mark_means(picture: np.ndarray, means: torch.Tensor, names: list[str], centre: tuple[float, float], n: int,
               cell: int, span: float, spacing: str) -> np.ndarray:
    """The class means (C, 2) drawn on the tiled grid as labelled red crosses, where they fall inside it."""
    image = Image.fromarray(picture).convert("RGB")
    draw = ImageDraw.Draw(image)
    size = n * cell
    for (mx, my), name in zip(means.tolist(), names):
        px = plane_pixel(mx - centre[0], n, cell, span, spacing)
        py = size - plane_pixel(my - centre[1], n, cell, span, spacing)  # z grows upwards, pixels downwards
        if 0 <= px < size and 0 <= py < size:
            r = max(6, cell // 4)
            draw.line([(px - r, py - r), (px + r, py + r)], fill=(230, 30, 30), width=3)
            draw.line([(px - r, py + r), (px + r, py - r)], fill=(230, 30, 30), width=3)
            draw.text((px + r + 2, py - 2 * r), name, fill=(230, 30, 30), font_size=max(12, cell // 2))
    return np.asarray(image)


def render(sel: Selection) -> None:
    model, d = sel.model, sel.model.latent_dim
    st.title("Latent manifold")
    st.markdown(
        "Each cell is the decoder's mean image p(x|z) for one point z of the latent plane; the prior "
        "p(z) = N(0, I) puts most of its mass within two standard deviations of the centre. "
        "Smooth change from cell to cell is what the KL term buys."
    )

    controls, view = st.columns([1, 2], gap="large")
    with controls:
        n = st.slider("Grid size (cells per side)", 5, 30, 15)
        span = st.slider("Span (± standard deviations)", 0.5, 4.0, 2.0, 0.25)
        spacing = st.radio(
            "Spacing", GRID_SPACINGS, horizontal=True,
            help="quantile: equal prior mass per cell (through the normal's inverse CDF, as in the VAE "
            "paper's figures); linear: equal steps in z.",
        )
        dims, base, label = (0, 1), None, None
        if d > 2:
            # Most informative dimensions first: mean KL per dimension on the test split, from metrics.json.
            kl = test_metrics(sel.metrics).get("kl_per_dim")
            order = sorted(range(d), key=lambda i: -kl[i]) if kl else list(range(d))
            label_of = (lambda i: f"z[{i}] · KL {kl[i]:.2f}") if kl else (lambda i: f"z[{i}]")
            c1, c2 = st.columns(2)
            dx = c1.selectbox("Horizontal dimension", order, index=0, format_func=label_of,
                              help="Ordered by mean KL on the test split (nats): near 0 means inactive.")
            dy = c2.selectbox("Vertical dimension", order, index=1, format_func=label_of)
            others = st.radio("Other dimensions held at", ["the prior mean (0)", "a random draw"], horizontal=True)
            if dx == dy:
                st.warning("Pick two different dimensions.")
                st.stop()
            dims = (dx, dy)
            if others == "a random draw":
                seed = st.number_input("Seed of the draw", 0, 10_000, 0)
                base = torch.randn(d, generator=torch.Generator().manual_seed(int(seed)))
        if sel.label_decoder:
            names = sel.class_names
            label = st.segmented_control("Class (the CVAE's label y)", range(len(names)), default=0, wrap=True,
                                         format_func=lambda i: names[i], required=True)
        means = None
        if sel.class_prior:  # the prior's ten means, marked on the plane; the grid can centre on one
            names, means = sel.class_names, model.class_means.detach().cpu()
            centre = st.selectbox("Centre the plane on", [None, *range(len(names))], key="manifold_centre",
                                  format_func=lambda i: "the origin" if i is None else f"μ of class {names[i]}",
                                  help="Each class's prior is N(μ_y, I): centre on μ_y to see that class's cloud.")
            base = (torch.zeros(d) if base is None else base.clone())
            base[list(dims)] = 0.0 if centre is None else means[centre, list(dims)]

    if base is not None and not sel.class_prior:
        base[list(dims)] = 0.0  # the plane through the origin; the draw holds the other dimensions
    images = manifold_grid(model, n, span, spacing, dims, base, label)
    # An integer scale by pixel repetition that fits the grid's column (595 px at a 1400 px window), so
    # the browser never resamples it: crisp at every grid size.
    scale = max(1, GRID_COLUMN_PX // (n * 28))
    picture = tile(images, nrow=n, scale=scale)
    centre = (0.0, 0.0) if base is None else (float(base[dims[0]]), float(base[dims[1]]))
    if means is not None:
        picture = mark_means(picture, means[:, list(dims)], names, centre, n, 28 * scale, span, spacing)
    show_image(view, picture,
               caption=f"{sel.name}: horizontal z[{dims[0]}] from {round(centre[0] - span, 2):g} (left) to {round(centre[0] + span, 2):g} (right); "
        f"vertical z[{dims[1]}] from {round(centre[1] - span, 2):g} (bottom) to {round(centre[1] + span, 2):g} (top)"
        + ("; the crosses mark each class's prior mean μ_y" if means is not None else "")
        + ("" if d == 2 else "; other dimensions " + ("0" if base is None else "from a random draw")))


if __name__ == "__main__":
    import app

    app.run_page(render)
