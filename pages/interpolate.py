"""Interpolation: images decoded along a path between the encodings of two images, linear or slerp."""

import plotly.graph_objects as go
import streamlit as st
import torch

from ui.charts import class_scatter
from ui.images import download_png, label_tiles, path_gif, pick_test_image, show_image, test_images, upload_image
from ui.models import Selection, test_encodings
from vae.latent import INTERPOLATIONS, decode_images, encode_images, interpolate, tile

SOURCES = ("a test image", "an upload")
STRIP_PX = 928  # the main column at a 1400 px window with the sidebar open (measured in Chromium)


def render(sel: Selection) -> None:
    model, config, names = sel.model, sel.config, sel.class_names
    st.title("Interpolation")
    st.markdown(
        "Encode two images, walk a straight line (linear) or a great-circle arc (slerp) between their "
        "encodings mu, and decode each point. In d dimensions, draws from the prior N(0, I) lie near the "
        "sphere of radius √d: the centre has the highest density, yet almost no draw lands near it, so codes "
        "there are atypical rather than improbable. A straight line between two typical codes passes closer "
        "to the centre than they are, shortest at its middle; the arc keeps a typical length (White, 2016). "
        "In 2 dimensions 90% of draws lie at radii 0.3 to 2.4, so a straight line between two of them stays among typical radii and the two paths differ little."
    )

    st.session_state.setdefault("interp_end_number", 1)  # the two ends start on different test images
    ends = []
    for col, key, title in zip(st.columns(2, gap="large"), ("interp_start", "interp_end"), ("Start", "End")):
        with col:
            source = st.radio(f"**{title}**: from", SOURCES, horizontal=True, key=f"{key}_source")
            if source == SOURCES[0]:
                x, label, index = pick_test_image(config["dataset"], key)
                what = f"test image {index} (a {names[label]})"
            else:
                x = upload_image(f"{key}_upload", label=f"The {title.lower()} image", style=sel.preprocess_style)
                label = (st.selectbox("Its class (the CVAE's label y)", range(len(names)), key=f"{key}_label",
                                      format_func=lambda i: names[i]) if sel.label_decoder else 0)
                what = "your upload"
            if x is not None:  # the chosen end, small, so both ends are in view while choosing
                show_image(st, tile(x, nrow=1, scale=3), caption=what)
            ends.append((x, label, what))
    if any(x is None for x, _, _ in ends):
        st.info("Upload an image for each end set to an upload, or pick a test image.")
        st.stop()

    c1, c2, c3 = st.columns(3)
    # persist_state="page": a run that stops early (an upload end with no file yet) does not draw these,
    # and they must come back with the values the strip was drawn with, not their defaults.
    method = c1.radio("Interpolation", INTERPOLATIONS, horizontal=True, key="interp_method", persist_state="page",
                      format_func=lambda m: {"linear": "linear", "slerp": "spherical (slerp)"}[m],
                      help="linear: (1 - t) z0 + t z1. slerp: along the great circle from z0's direction to "
                      "z1's at constant angular speed (Shoemake 1985; White 2016, 'Sampling Generative "
                      "Networks'), the length going linearly from |z0| to |z1|.")
    n = c2.slider("Images between the ends", 1, 20, 8, key="interp_n", persist_state="page")
    y_path = None
    if sel.label_decoder:
        of = c3.radio("Decode the path with the class of", ("the start", "the end"), horizontal=True,
                      key="interp_of", persist_state="page",
                      help="The CVAE's z holds the style; the label y picks the class.")
        y_path = ends[0 if of == "the start" else 1][1]

    x = torch.cat([ends[0][0], ends[1][0]])
    y = torch.tensor([ends[0][1], ends[1][1]])
    mu, _ = encode_images(model, x, y if sel.label_decoder else None)
    path = interpolate(mu[0], mu[1], n + 2, method)  # t = 0, 1/(n+1), ..., 1
    recon = decode_images(model, mu, y).cpu()  # the decoder's mean at each end's mu: its reconstruction
    strip = torch.cat([x[:1], recon[:1], decode_images(model, path[1:-1], y_path).cpu(), recon[1:], x[1:]])
    # Integer scales that fit the page's 928 px (at a 1400 px window): one row while the images can be
    # at least twice their size, else two rows, so each image stays 56 px or more and is never resampled.
    per_row = n + 4 if (n + 4) * 29 * 2 <= STRIP_PX else (n + 5) // 2
    scale = max(1, min(4, STRIP_PX // (per_row * 29 + 1)))
    norms = path.norm(dim=1)
    t = [f"{i / (n + 1):.2f}" for i in range(1, n + 1)]
    labels = ["image", "t = 0", *t, "t = 1", "image"]
    show_image(st, label_tiles(tile(strip, nrow=per_row, padding=1, scale=scale), labels, per_row, 28 * scale + scale),
               caption=f"Left to right{'' if per_row == n + 4 else ', then the second row'}: {ends[0][2]}, its reconstruction, {n} images decoded at t = 1/{n + 1} ... "
        f"{n}/{n + 1} of the {method} path, the reconstruction of {ends[1][2]}, and that image"
        + (f"; path decoded with y = {names[y_path]}" if sel.label_decoder else "") + ".")
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    with c1:
        download_png(label_tiles(tile(strip, nrow=n + 4, padding=1), labels, n + 4, 29, font=9), "interpolation",
                     "interp_png")
    c2.download_button("Download GIF", lambda: path_gif(recon, decode_images(model, path[1:-1], y_path).cpu()),
                       "interpolation.gif", "image/gif", key="interp_gif", icon=":material/animated_images:",
                       help="The path as an animation, there and back, 4x.")
    st.caption(f"|z| along the path: {norms[0]:.2f} at the start, {norms[-1]:.2f} at the end, lowest "
               f"{norms.min():.2f}. Latent dimension {model.latent_dim}; a prior draw has |z| near "
               f"{model.latent_dim ** 0.5:.2f} (the square root of the dimension).")

    if model.latent_dim == 2:
        _, labels, _, source = test_images(config["dataset"])
        fig = class_scatter(test_encodings(sel)[0], labels, names, size=3, opacity=0.4)
        p = path.numpy()
        # WebGL traces draw over SVG ones, so the path is WebGL too, after the encodings: on top.
        fig.add_trace(go.Scattergl(x=p[:, 0], y=p[:, 1], mode="lines+markers", name=f"{method} path",
                                   line={"color": "black", "width": 3},
                                   marker={"size": 8, "color": "black", "line": {"color": "white", "width": 1}}))
        fig.add_trace(go.Scattergl(x=p[[0, -1], 0], y=p[[0, -1], 1], mode="markers+text", text=["start", "end"],
                                   textposition="top center", textfont={"size": 14, "color": "black"},
                                   showlegend=False, marker={"size": 16, "symbol": ["star", "square"], "color": "black",
                                                             "line": {"color": "white", "width": 2}}))
        fig.update_layout(height=560, dragmode=False, margin={"l": 0, "r": 0, "t": 30, "b": 0}, xaxis_title="z[0]",
                          yaxis_title="z[1]", yaxis={"scaleanchor": "x"})
        st.plotly_chart(fig)
        st.caption(f"The path over the encodings mu of {source}, coloured by class"
                   + (", each encoded with its own label y." if sel.label_decoder else "."))


if __name__ == "__main__":
    import app

    app.run_page(render)
