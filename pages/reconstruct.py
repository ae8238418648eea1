"""Reconstruct: an uploaded, drawn or test image, what the model receives, and what it makes of it."""

import plotly.graph_objects as go
import streamlit as st
import torch
from streamlit_drawable_canvas import st_canvas

from ui import health, meaning, policy, state
from ui.charts import class_scatter
from ui.images import (max_upload_bytes, pick_test_image, picker_settings, preprocess,
                       upload_preprocessed)
from ui.models import Selection, loss_name, test_encodings, weights_mtime
from vae.latent import tile
from vae.posterior import posterior
from vae.preprocess import ImageError

K_CHOICES = (10, 100, 1000)  # importance samples; metrics.json uses 1000 for the whole test split
# One image's estimate: k decoder passes in one batch (k = 1000: 0.3 to 1.1 s on 2 busy cores), cached per
# image and k; the policy's iwae_max_k bounds k whatever a visitor sends.
N_SAMPLES = 8
N_PLANE = 3000  # test encodings drawn on the latent plane
INPUTS = ("Test image", "Upload", "Draw")
S = state.PageState("reconstruct", [
    state.Setting("input", str, INPUTS[0], options=INPUTS), *picker_settings(),
    state.Setting("k", int, 100, options=K_CHOICES), state.Setting("label", int, 0, 0),
])
UPLOADER = S.key("upload")
CANVAS = S.key("canvas")  # + "-N" after N clearings: a new key draws an empty canvas
CLEARINGS = state.STORE + "reconstruct/clearings"
DRAWING = state.STORE + "reconstruct/drawing"  # the last drawing: {"json": Fabric.js JSON, "png": bytes}
DRAWN_AT_MOUNT = state.STORE + "reconstruct/drawing-at-mount"  # what the canvas was last mounted with
STEP_PX = 96  # the framing steps' longer side, times state.zoom()
IMAGE_PX = 168  # the input's and the reconstruction's side (6x): two fit side by side on a 390 px phone
PLOT = {"displayModeBar": False}  # Plotly's toolbar covered the charts' titles on a phone (nothing to zoom: dragmode off)
# On a narrow screen the framing steps are one row that scrolls sideways, not five images stacked above the result.
CSS = ("<style>@media (max-width: 640px) {.st-key-reconstruct-steps {flex-wrap: nowrap; overflow-x: auto}"
       " .st-key-reconstruct-steps > div {flex-shrink: 0}}</style>")


@st.cache_data(show_spinner=False, max_entries=64)
def measure(folder: str, version: float, pixels: bytes, label: int | None, k: int, _sel: Selection):
    """posterior() of the image in ``pixels`` (float32 bytes of the model's image_shape), cached per model
    (folder and weights' version), image, label and k."""
    if k > policy().iwae_max_k:
        raise ValueError(f"k = {k} importance samples is more than this server computes ({policy().iwae_max_k})")
    image = torch.frombuffer(bytearray(pixels), dtype=torch.float32).view(1, *_sel.image_shape)
    return posterior(_sel.model, image, label, _sel.config["likelihood"], _sel.config["sigma"], k=k,
                     n_samples=N_SAMPLES)


def show(image, caption, size=STEP_PX, container=st):
    """A uint8 array (H, W) grey or (H, W, 3) colour, or a (1, C, H, W) tensor, enlarged by pixel
    repetition to at most ``size`` (times ``state.zoom()``) a side."""
    if not isinstance(image, torch.Tensor):
        a = torch.tensor(image).float().div(255)
        image = a[None, None] if a.ndim == 2 else a.permute(2, 0, 1)[None]
    t = image
    a = tile(t, 1, scale=max(1, size * state.zoom() // max(t.shape[-2:])))
    container.image(a, caption=caption, width=a.shape[1], output_format="PNG")  # its own size: never resampled


def render(sel: Selection) -> None:
    intro(sel)
    source_col, steps_col = st.columns([2, 3], gap="medium")
    with source_col:
        how, done, x, label = choose_input(sel)
    with steps_col:
        framing_steps(sel, how, done)
    if x is None:
        st.stop()
    st.subheader("What the model makes of it")
    post, k = reconstruction(sel, x, label)
    scores(sel, post, k)
    # Is it like the training data? (issue 27): the likelihood alone cannot say (Nalisnick et al., 2019).
    health.ood_section(sel, x, "upload" if how == "Upload" else "drawing" if how == "Draw" else "test image")
    latent_charts(sel, post)
    meaning.digit_section(sel, x, post.mu, label, label_is_true=how == "Test image")  # issue 26: its measurements


def intro(sel: Selection) -> None:
    st.html(CSS)
    st.title("Reconstruct an image")
    st.markdown("Give the model one image: it encodes it into the posterior q(z|x) = N(μ, σ²), decodes μ back "
                "into its **reconstruction**, and scores it with the ELBO.")


def choose_input(sel: Selection):
    """The input picker and the chosen input's widgets. Returns (how, Preprocessed or None, x float
    (1, C, H, W) in [0, 1] or None, label or None)."""
    framed = (f"framed as {sel.dataset_title} framed its images" if sel.builtin
              else "centre-cropped and resized as the model's training images were")
    how = st.segmented_control("Input", INPUTS, required=True, key=S.bind("input"),
                               help=f"A test image works offline; an upload or a drawing is {framed}.")
    if how == "Test image":
        x, label, _ = pick_test_image(sel, "", page_state=S, caption=True)
        return how, None, x, label
    thing = sel.thing
    if how == "Upload":
        done = upload_preprocessed(UPLOADER, style=sel.preprocess_style,
                                   label=f"Upload an image of one {thing} (up to {max_upload_bytes() // 2**20} MB)")
    else:
        done = drawing(sel, thing)
    if done is None:
        return how, None, None, None
    label = None
    if sel.conditional:
        names = sel.class_names
        label = st.selectbox("Which class is it? (the label y: " + ("the CVAE's encoder and decoder take it)" if sel.label_decoder
                             else "its prior mean μ_y enters the KL)"), range(len(names)),
                             format_func=lambda c: names[c], key=S.bind("label", hi=len(names) - 1))
    return how, done, done.image, label


def drawing(sel: Selection, thing: str):
    """The canvas, kept for the session (the page left and revisited draws it again with the last
    drawing), and a button that clears it. Returns the drawing's Preprocessed, or None."""
    # Short: the canvas's toolbar shows over the right of the line above it while a mouse is over it.
    st.caption(f"Draw one {thing}:")
    key = f"{CANVAS}-{st.session_state.get(CLEARINGS, 0)}"
    kept = st.session_state.get(DRAWING)
    if key not in st.session_state:  # the canvas is mounted now: with the last drawing
        st.session_state[DRAWN_AT_MOUNT] = kept["json"] if kept else None
    canvas = st_canvas(stroke_width=18, stroke_color="#000000", background_color="#ffffff", height=280, width=280,
                       initial_drawing=st.session_state.get(DRAWN_AT_MOUNT), return_image_data=True, key=key)
    if canvas.image_bytes:  # a stroke sent by the canvas (before any, it returns the drawing it was given)
        kept = {"json": canvas.json_data, "png": canvas.image_bytes} if canvas.json_data.get("objects") else None
        st.session_state[DRAWING] = kept
    row = st.container(horizontal=True, vertical_alignment="center")
    row.button("Clear drawing", icon=":material/ink_eraser:", on_click=clear_drawing, disabled=kept is None)
    row.caption("With a finger or the mouse, read when you lift it. A mouse also finds a toolbar over the canvas "
                "(undo), which touch does not show.")
    if kept is None:
        return None
    try:
        return preprocess(kept["png"], sel.preprocess_style)
    except ImageError as err:
        st.error(str(err))
        return None


def clear_drawing() -> None:
    st.session_state[CLEARINGS] = st.session_state.get(CLEARINGS, 0) + 1
    st.session_state.pop(DRAWING, None)


def framing_steps(sel: Selection, how: str, done) -> None:
    """What the model receives: the steps from an upload or a drawing to the model's input, in one row (on
    a phone, one that scrolls sideways)."""
    c, h, w = sel.image_shape
    size = f"{h}×{w}" + ("" if sel.builtin else " grey" if c == 1 else " colour")
    if done is not None:
        like = {"mnist": "framed as MNIST's digits were", "fashion": "framed as Fashion-MNIST's images were"}.get(
            sel.config["dataset"], "its centre square resized as the training images were, colours and background kept")
        st.markdown(f"**What the model receives**: {done.source}" + (", dark ink inverted" if done.inverted else "")
                    + f"; then {like}:")
        row = st.container(horizontal=True, key="reconstruct-steps")
        for caption, step in done.steps:
            show(step, caption, container=row)
        for doubt in done.warnings if how == "Upload" else ():  # why the ink found may not be one digit (a drawing is one)
            st.warning(doubt, icon=":material/crop:")
    elif how == "Test image":
        st.markdown(f"**What the model receives**: a test image is already in the dataset's {size} format, so it goes in as it is.")
    elif not (how == "Upload" and st.session_state.get(UPLOADER) is not None):  # not beside an upload's error
        st.info(("Upload an image" if how == "Upload" else "Draw") + f": the steps that turn it into the model's {size} input appear here.")


def reconstruction(sel: Selection, x: torch.Tensor, label: int | None):
    """The input, its reconstruction and draws from q(z|x), in one row (on a phone, the first two side
    by side), then the k picker. Returns (the posterior, k)."""
    model, zoom = sel.model, state.zoom()
    row = st.container(horizontal=True, gap="small")
    k = 1
    if model.variational:
        choices = [c for c in K_CHOICES if c <= policy().iwae_max_k]
        k = st.select_slider("Draws z ~ q(z|x) behind the estimates (k)", choices, width=320,
                             key=S.bind("k", options=tuple(choices), default=min(choices, key=lambda c: abs(c - 100))),
                             help="More draws: a tighter IWAE bound and steadier numbers, and a slower page.")
    post = measure(sel.folder, weights_mtime(sel.folder), x.contiguous().numpy().tobytes(), label, k, sel)
    show(x, f"input x, {x.shape[-2]}×{x.shape[-1]}", IMAGE_PX, row)
    show(post.recon_image, "reconstruction: the decoder's mean at z = " + ("μ" if model.variational else "f(x)"), IMAGE_PX, row)
    if model.variational:
        grid = tile(post.samples, nrow=N_SAMPLES // 2, padding=2, scale=3 * zoom)
        row.image(grid, width=grid.shape[1], output_format="PNG", caption=f"{N_SAMPLES} draws z ~ q(z|x), each decoded to its mean image")
    return post, k


def scores(sel: Selection, post, k: int) -> None:
    """The reconstruction term, KL, -ELBO and IWAE estimate of this image, and what to compare them with."""
    config, test = sel.config, sel.metrics.get("test")
    m = st.container(horizontal=True)  # four in a row, or two by two on a phone
    if not sel.model.variational:
        m.metric("Reconstruction", f"{post.recon_nll:.1f} nats",
                 help=f"−log p(x|z) at the code z = f(x): the {config['likelihood']} decoder's negative log-likelihood of x.")
        st.caption("A plain autoencoder maps x to one point z = f(x) and has no prior: it defines no likelihood "
                   "p(x), so there is no KL, ELBO or IWAE estimate to show. The AE vs VAE page shows what that costs."
                   + (f" Test split mean: {test['recon']:.1f} nats." if test else ""))
        return
    prior = "N(μ_y, I), the prior of its class" if sel.class_prior else "the prior N(0, I)"
    m.metric("Reconstruction", f"{post.recon_nll:.1f} nats", help=f"−E_q[log p(x|z)]: the {config['likelihood']} decoder's negative log-likelihood of x, averaged over {k} draws z ~ q(z|x).")
    m.metric("KL", f"{post.kl:.2f} nats", help=f"KL(q(z|x) ‖ p(z)), in closed form against {prior}, summed over the latent dimensions.")
    m.metric("−ELBO", f"{post.neg_elbo:.1f} nats", help=f"Reconstruction + KL, for this one image (the model was trained on {loss_name(config)}).")
    m.metric(f"IWAE NLL (k = {k})", f"{post.iwae_nll:.1f} nats", help="The importance-weighted estimate of −log p(x) with k draws (Burda et al., 2016); at most −ELBO in expectation.")
    kind = "differential nats of a Gaussian decoder" if config["likelihood"] == "gaussian" else "grey levels scored as Bernoulli targets"
    note = (f" These are {kind}, not a normalized likelihood of the image: compare them with each other"
            + (", not with published MNIST numbers (those binarize the digits)." if sel.builtin else "."))
    if test:
        st.caption(f"For comparison, the test split's means: −ELBO {test['neg_elbo']:.1f} nats, IWAE NLL "
                   f"{test['iwae_nll']:.1f} nats (k = {test.get('k', 1000)})." + note)
    elif sel.metrics.get("test_binarized"):
        st.caption("This model was trained and scored on binarized digits (pixels 0 or 1), so its numbers for a "
                   "grey-level image here are not comparable with its test scores." + note)


def latent_charts(sel: Selection, post) -> None:
    """μ ± σ per dimension; for a 2-d model, beside where μ lands among the test encodings."""
    bars = mu_sigma_figure(post, sel.model.latent_dim)
    if sel.model.latent_dim != 2:
        st.plotly_chart(bars, key="rec_mu", config=PLOT)
        st.caption("Dimensions whose μ sits near 0 with σ near 1 carry nothing about this image: they are the prior.")
        return
    fig, count, source = plane_figure(sel, post)
    left, right = st.columns([3, 2], gap="large")
    left.plotly_chart(fig, key="rec_plane", config=PLOT)
    left.caption(f"{count:,} test images from {source}, coloured by class"
                 + ("; for a CVAE, z holds the style and the label y the class, so the classes overlap." if sel.label_decoder
                    else "; each class gathers around its own prior mean μ_y (black crosses)." if sel.class_prior else "."))
    right.plotly_chart(bars, key="rec_mu", config=PLOT)


def mu_sigma_figure(post, d: int) -> go.Figure:
    dims = [f"z[{i}]" for i in range(d)]
    bars = go.Figure(go.Scatter(
        x=dims, y=post.mu.tolist(), mode="markers", marker=dict(size=9),
        error_y=dict(type="data", array=post.sigma.tolist(), thickness=1.5), name="μ ± σ",
        customdata=torch.stack([post.sigma, post.kl_per_dim], 1).tolist(),
        hovertemplate="%{x}: μ %{y:.2f}, σ %{customdata[0]:.2f}, KL %{customdata[1]:.2f} nats<extra></extra>",
    ))
    bars.add_hrect(y0=-1, y1=1, line_width=0, fillcolor="gray", opacity=0.15)
    zoom = state.zoom()
    lines = 2 if zoom > 1 else 1  # the title's lines: two in projector mode, in a column of 2/5 of the page
    bars.update_layout(height=340 * zoom, dragmode=False, margin=dict(l=10, r=10, t=30 * zoom * lines, b=10), yaxis_title="z",
                       showlegend=False, font_size=12 * zoom,
                       title=dict(text="μ ± σ of q(z|x) per dimension" + ("<br>" if zoom > 1 else "; ") + "grey: prior ±1",
                                  font_size=14 * zoom))
    return bars


def plane_figure(sel: Selection, post):
    """Where μ lands among N_PLANE test encodings, with the ellipse μ ± 2σ (a 2-d model). Returns
    (figure, the number of test encodings drawn, their source in words)."""
    model, names = sel.model, sel.class_names
    _, all_labels, _, source = sel.test_images()
    pick = torch.randperm(len(all_labels), generator=torch.Generator().manual_seed(0))[:N_PLANE].sort().values
    fig = class_scatter(test_encodings(sel)[0][pick], all_labels[pick], names, size=4, opacity=0.55)
    t = torch.linspace(0, 2 * torch.pi, 60)
    mu, sd = post.mu, post.sigma
    # WebGL traces draw above SVG ones: the ellipse and the star are WebGL too, added last, so on top.
    if model.variational:
        fig.add_trace(go.Scattergl(x=(mu[0] + 2 * sd[0] * t.cos()).tolist(), y=(mu[1] + 2 * sd[1] * t.sin()).tolist(),
                                   mode="lines", line=dict(color="black", width=2, dash="dot"), name="μ ± 2σ",
                                   hoverinfo="name"))
    fig.add_trace(go.Scattergl(x=[float(mu[0])], y=[float(mu[1])], mode="markers", name="this image",
                               marker=dict(symbol="star", size=26, color="gold", line=dict(color="black", width=2)),
                               hovertemplate="this image: μ = (%{x:.2f}, %{y:.2f})<extra></extra>"))
    if sel.class_prior:
        means = model.class_means.detach().cpu()
        fig.add_trace(go.Scattergl(x=means[:, 0].tolist(), y=means[:, 1].tolist(), mode="markers+text", name="μ_y",
                                   text=names, textposition="top center", customdata=names,
                                   marker=dict(symbol="x", size=12, color="black"),
                                   hovertemplate="prior mean of %{customdata}: (%{x:.2f}, %{y:.2f})<extra></extra>"))
    zoom = state.zoom()
    fig.update_layout(height=460 * zoom, dragmode=False, margin=dict(l=10, r=10, t=30 * zoom, b=10), xaxis_title="z[0]",
                      yaxis_title="z[1]", title=dict(text="Where it lands among the test encodings (μ of each)", font_size=14 * zoom),
                      font_size=12 * zoom, legend=dict(itemsizing="constant"))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig, len(pick), source


if __name__ == "__main__":
    import app

    app.run_page(render)
