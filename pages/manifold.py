"""The 2-D latent manifold: a grid of decoded images spanning a plane of the latent space."""

import math

import streamlit as st
import torch

from ui.models import Selection, test_metrics
from vae.latent import GRID_SPACINGS, manifold_grid, tile


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
        if sel.conditional:
            names = sel.class_names
            label = st.segmented_control("Class (the CVAE's label y)", range(len(names)), default=0,
                                         format_func=lambda i: names[i], required=True)

    images = manifold_grid(model, n, span, spacing, dims, base, label)
    scale = max(1, math.ceil(720 / (n * 28)))  # upscale by repeating pixels: crisp, never blurred
    view.image(
        tile(images, nrow=n, scale=scale),
        caption=f"{sel.name}: horizontal z[{dims[0]}] from {-span:g} (left) to {span:g} (right); "
        f"vertical z[{dims[1]}] from {-span:g} (bottom) to {span:g} (top)"
        + ("" if d == 2 else "; other dimensions " + ("0" if base is None else "from a random draw")),
        width="content",
        output_format="PNG",
    )


if __name__ == "__main__":
    import app

    app.run_page(render)
