"""Reconstruct: an uploaded, drawn or test image, what the model receives, and what it makes of it."""

import plotly.graph_objects as go
import streamlit as st
import torch
from streamlit_drawable_canvas import st_canvas

from ui import health, meaning, policy, state
from ui.charts import class_scatter
from ui.i18n import N_, _, say, sentences
from ui.images import (max_upload_bytes, pick_test_image, picker_settings, preprocess, upload_error,
                       upload_preprocessed)
from ui.models import Selection, loss_name, test_encodings, weights_mtime
from vae.errors import format_size
from vae.latent import tile
from vae.posterior import posterior
from vae.preprocess import ImageError

K_CHOICES = (10, 100, 1000)  # importance samples; metrics.json uses 1000 for the whole test split
# One image's estimate: k decoder passes in one batch (k = 1000: 0.3 to 1.1 s on 2 busy cores), cached per
# image and k; the policy's iwae_max_k bounds k whatever a visitor sends.
N_SAMPLES = 8
N_PLANE = 3000  # test encodings drawn on the latent plane
INPUTS = (N_("Test image"), N_("Upload"), N_("Draw"))  # the stored values (the URL's), shown translated
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
# What one image shows (Selection.thing), each sentence that names it written out for each.
UPLOAD_LABELS = {"digit": N_("Upload an image of one digit (up to {limit})"),
                 "item": N_("Upload an image of one item (up to {limit})"),
                 "image": N_("Upload an image (up to {limit})")}
DRAW_ONE = {"digit": N_("Draw one digit:"), "item": N_("Draw one item:"), "image": N_("Draw one image:")}
# The reconstruction term's help, by config["likelihood"] (vae.losses.LIKELIHOODS): an AE's, a VAE's (k draws).
RECON_HELP_AE = {
    "bernoulli": N_("−log p(x|z) at the code z = f(x): the bernoulli decoder's negative log-likelihood of x."),
    "gaussian": N_("−log p(x|z) at the code z = f(x): the gaussian decoder's negative log-likelihood of x."),
}
RECON_HELP = {
    "bernoulli": N_("−E_q[log p(x|z)]: the bernoulli decoder's negative log-likelihood of x, averaged over {k} draws "
                    "z ~ q(z|x)."),
    "gaussian": N_("−E_q[log p(x|z)]: the gaussian decoder's negative log-likelihood of x, averaged over {k} draws "
                   "z ~ q(z|x)."),
}
# The first line of the framing steps: by dataset (a folder's for any other), and whether dark ink was inverted.
RECEIVES = {
    ("mnist", False): N_("**What the model receives**: {source}; then framed as MNIST's digits were:"),
    ("mnist", True): N_("**What the model receives**: {source}, dark ink inverted; then framed as MNIST's digits were:"),
    ("fashion", False): N_("**What the model receives**: {source}; then framed as Fashion-MNIST's images were:"),
    ("fashion", True): N_("**What the model receives**: {source}, dark ink inverted; then framed as Fashion-MNIST's "
                          "images were:"),
    (None, False): N_("**What the model receives**: {source}; then its centre square resized as the training images "
                      "were, colours and background kept:"),
    (None, True): N_("**What the model receives**: {source}, dark ink inverted; then its centre square resized as the "
                     "training images were, colours and background kept:"),
}
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
    st.subheader(_("What the model makes of it"))
    post, k = reconstruction(sel, x, label)
    scores(sel, post, k)
    # Is it like the training data? (issue 27): the likelihood alone cannot say (Nalisnick et al., 2019).
    health.ood_section(sel, x, "upload" if how == "Upload" else "drawing" if how == "Draw" else "test image")
    latent_charts(sel, post)
    meaning.digit_section(sel, x, post.mu, label, label_is_true=how == "Test image")  # issue 26: its measurements


def intro(sel: Selection) -> None:
    st.html(CSS)
    st.title(_("Reconstruct an image"))
    st.markdown(_("Give the model one image: it encodes it into the posterior q(z|x) = N(μ, σ²), decodes μ back "
                  "into its **reconstruction**, and scores it with the ELBO."))


def choose_input(sel: Selection):
    """The input picker and the chosen input's widgets. Returns (how, Preprocessed or None, x float
    (1, C, H, W) in [0, 1] or None, label or None)."""
    framed = (_("A test image works offline; an upload or a drawing is framed as {dataset} framed its images.").format(
        dataset=sel.dataset_title) if sel.builtin else
        _("A test image works offline; an upload or a drawing is centre-cropped and resized as the model's training "
          "images were."))
    # The options' words looked up now, not in format_func: AppTest calls it again after the run, where _ is English.
    words = {v: _(v) for v in INPUTS}
    how = st.segmented_control(_("Input"), INPUTS, required=True, key=S.bind("input"), format_func=words.get, help=framed)
    if how == "Test image":
        x, label, _index = pick_test_image(sel, "", page_state=S, caption=True)
        return how, None, x, label
    thing = sel.thing
    if how == "Upload":
        done = upload_preprocessed(UPLOADER, style=sel.preprocess_style,
                                   label=_(UPLOAD_LABELS[thing]).format(limit=format_size(max_upload_bytes())))
    else:
        done = drawing(sel, thing)
    if done is None:
        return how, None, None, None
    label = None
    if sel.conditional:
        names = sel.class_names
        label = st.selectbox(_("Which class is it? (the label y: the CVAE's encoder and decoder take it)") if sel.label_decoder
                             else _("Which class is it? (the label y: its prior mean μ_y enters the KL)"), range(len(names)),
                             format_func=lambda c: names[c], key=S.bind("label", hi=len(names) - 1))
    return how, done, done.image, label


def drawing(sel: Selection, thing: str):
    """The canvas, kept for the session (the page left and revisited draws it again with the last
    drawing), and a button that clears it. Returns the drawing's Preprocessed, or None."""
    # Short: the canvas's toolbar shows over the right of the line above it while a mouse is over it.
    st.caption(_(DRAW_ONE[thing]))
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
    row.button(_("Clear drawing"), icon=":material/ink_eraser:", on_click=clear_drawing, disabled=kept is None)
    row.caption(_("With a finger or the mouse, read when you lift it. A mouse also finds a toolbar over the canvas "
                  "(undo), which touch does not show."))
    if kept is None:
        return None
    try:
        return preprocess(kept["png"], sel.preprocess_style)
    except ImageError as err:
        st.error(upload_error(err))
        return None


def clear_drawing() -> None:
    st.session_state[CLEARINGS] = st.session_state.get(CLEARINGS, 0) + 1
    st.session_state.pop(DRAWING, None)


def framing_steps(sel: Selection, how: str, done) -> None:
    """What the model receives: the steps from an upload or a drawing to the model's input, in one row (on
    a phone, one that scrolls sideways)."""
    c, h, w = sel.image_shape
    size = (f"{h}×{w}" if sel.builtin else _("{h}×{w} grey") if c == 1 else _("{h}×{w} colour")).format(h=h, w=w)
    if done is not None:
        dataset = sel.config["dataset"] if sel.builtin else None
        st.markdown(_(RECEIVES[dataset, bool(done.inverted)]).format(source=say(done.source)))
        row = st.container(horizontal=True, key="reconstruct-steps")
        for caption, step in done.steps:
            show(step, say(caption), container=row)
        for doubt in done.warnings if how == "Upload" else ():  # why the ink found may not be one digit (a drawing is one)
            st.warning(say(doubt), icon=":material/crop:")
    elif how == "Test image":
        st.markdown(_("**What the model receives**: a test image is already in the dataset's {size} format, so it goes "
                      "in as it is.").format(size=size))
    elif not (how == "Upload" and st.session_state.get(UPLOADER) is not None):  # not beside an upload's error
        st.info((_("Upload an image: the steps that turn it into the model's {size} input appear here.") if how == "Upload"
                 else _("Draw: the steps that turn it into the model's {size} input appear here.")).format(size=size))


def reconstruction(sel: Selection, x: torch.Tensor, label: int | None):
    """The input, its reconstruction and draws from q(z|x), in one row (on a phone, the first two side
    by side), then the k picker. Returns (the posterior, k)."""
    model, zoom = sel.model, state.zoom()
    row = st.container(horizontal=True, gap="small")
    k = 1
    if model.variational:
        choices = [c for c in K_CHOICES if c <= policy().iwae_max_k]
        k = st.select_slider(_("Draws z ~ q(z|x) behind the estimates (k)"), choices, width=320,
                             key=S.bind("k", options=tuple(choices), default=min(choices, key=lambda c: abs(c - 100))),
                             help=_("More draws: a tighter IWAE bound and steadier numbers, and a slower page."))
    post = measure(sel.folder, weights_mtime(sel.folder), x.contiguous().numpy().tobytes(), label, k, sel)
    show(x, _("input x, {h}×{w}").format(h=x.shape[-2], w=x.shape[-1]), IMAGE_PX, row)
    show(post.recon_image, _("reconstruction: the decoder's mean at z = {code}").format(
        code="μ" if model.variational else "f(x)"), IMAGE_PX, row)
    if model.variational:
        grid = tile(post.samples, nrow=N_SAMPLES // 2, padding=2, scale=3 * zoom)
        row.image(grid, width=grid.shape[1], output_format="PNG",
                  caption=_("{n} draws z ~ q(z|x), each decoded to its mean image").format(n=N_SAMPLES))
    return post, k


def scores(sel: Selection, post, k: int) -> None:
    """The reconstruction term, KL, -ELBO and IWAE estimate of this image, and what to compare them with."""
    config, test = sel.config, sel.metrics.get("test")
    m = st.container(horizontal=True)  # four in a row, or two by two on a phone
    if not sel.model.variational:
        m.metric(_("Reconstruction"), f"{post.recon_nll:.1f} nats", help=_(RECON_HELP_AE[config["likelihood"]]))
        plain = _("A plain autoencoder maps x to one point z = f(x) and has no prior: it defines no likelihood p(x), so "
                  "there is no KL, ELBO or IWAE estimate to show. The AE vs VAE page shows what that costs.")
        st.caption(sentences(plain, _("Test split mean: {value:.1f} nats.").format(value=test["recon"])) if test else plain)
        return
    kl_help = (_("KL(q(z|x) ‖ p(z)), in closed form against N(μ_y, I), the prior of its class, summed over the latent "
                 "dimensions.") if sel.class_prior else
               _("KL(q(z|x) ‖ p(z)), in closed form against the prior N(0, I), summed over the latent dimensions."))
    m.metric(_("Reconstruction"), f"{post.recon_nll:.1f} nats", help=_(RECON_HELP[config["likelihood"]]).format(k=k))
    m.metric("KL", f"{post.kl:.2f} nats", help=kl_help)
    m.metric("−ELBO", f"{post.neg_elbo:.1f} nats", help=_(
        "Reconstruction + KL, for this one image (the model was trained on {loss}).").format(loss=loss_name(config)))
    m.metric(f"IWAE NLL (k = {k})", f"{post.iwae_nll:.1f} nats", help=_(
        "The importance-weighted estimate of −log p(x) with k draws (Burda et al., 2016); at most −ELBO in expectation."))
    gaussian = config["likelihood"] == "gaussian"
    note = ((_("These are differential nats of a Gaussian decoder, not a normalized likelihood of the image: compare "
               "them with each other, not with published MNIST numbers (those binarize the digits).") if gaussian else
             _("These are grey levels scored as Bernoulli targets, not a normalized likelihood of the image: compare "
               "them with each other, not with published MNIST numbers (those binarize the digits).")) if sel.builtin else
            _("These are differential nats of a Gaussian decoder, not a normalized likelihood of the image: compare "
              "them with each other.") if gaussian else
            _("These are grey levels scored as Bernoulli targets, not a normalized likelihood of the image: compare "
              "them with each other."))
    if test:
        st.caption(sentences(_("For comparison, the test split's means: −ELBO {neg_elbo:.1f} nats, IWAE NLL {iwae_nll:.1f} "
                               "nats (k = {k}).").format(neg_elbo=test["neg_elbo"], iwae_nll=test["iwae_nll"],
                                                         k=test.get("k", 1000)), note))
    elif sel.metrics.get("test_binarized"):
        st.caption(sentences(_("This model was trained and scored on binarized digits (pixels 0 or 1), so its numbers "
                               "for a grey-level image here are not comparable with its test scores."), note))


def latent_charts(sel: Selection, post) -> None:
    """μ ± σ per dimension; for a 2-d model, beside where μ lands among the test encodings."""
    bars = mu_sigma_figure(post, sel.model.latent_dim)
    if sel.model.latent_dim != 2:
        st.plotly_chart(bars, key="rec_mu", config=PLOT)
        st.caption(_("Dimensions whose μ sits near 0 with σ near 1 carry nothing about this image: they are the prior."))
        return
    fig, count, source = plane_figure(sel, post)
    left, right = st.columns([3, 2], gap="large")
    left.plotly_chart(fig, key="rec_plane", config=PLOT)
    left.caption((_("{count:,} test images from {source}, coloured by class; for a CVAE, z holds the style and the label "
                    "y the class, so the classes overlap.") if sel.label_decoder else
                  _("{count:,} test images from {source}, coloured by class; each class gathers around its own prior "
                    "mean μ_y (black crosses).") if sel.class_prior else
                  _("{count:,} test images from {source}, coloured by class.")).format(count=count, source=say(source)))
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
                       title=dict(text=_("μ ± σ of q(z|x) per dimension<br>grey: prior ±1") if zoom > 1
                                  else _("μ ± σ of q(z|x) per dimension; grey: prior ±1"), font_size=14 * zoom))
    return bars


def plane_figure(sel: Selection, post):
    """Where μ lands among N_PLANE test encodings, with the ellipse μ ± 2σ (a 2-d model). Returns
    (figure, the number of test encodings drawn, their source in words)."""
    model, names = sel.model, sel.class_names
    _images, all_labels, _indices, source = sel.test_images()
    pick = torch.randperm(len(all_labels), generator=torch.Generator().manual_seed(0))[:N_PLANE].sort().values
    fig = class_scatter(test_encodings(sel)[0][pick], all_labels[pick], names, size=4, opacity=0.55)
    t = torch.linspace(0, 2 * torch.pi, 60)
    mu, sd = post.mu, post.sigma
    # WebGL traces draw above SVG ones: the ellipse and the star are WebGL too, added last, so on top.
    if model.variational:
        fig.add_trace(go.Scattergl(x=(mu[0] + 2 * sd[0] * t.cos()).tolist(), y=(mu[1] + 2 * sd[1] * t.sin()).tolist(),
                                   mode="lines", line=dict(color="black", width=2, dash="dot"), name="μ ± 2σ",
                                   hoverinfo="name"))
    fig.add_trace(go.Scattergl(x=[float(mu[0])], y=[float(mu[1])], mode="markers", name=_("this image"),
                               marker=dict(symbol="star", size=26, color="gold", line=dict(color="black", width=2)),
                               hovertemplate=_("this image: μ = (%{x:.2f}, %{y:.2f})") + "<extra></extra>"))
    if sel.class_prior:
        means = model.class_means.detach().cpu()
        fig.add_trace(go.Scattergl(x=means[:, 0].tolist(), y=means[:, 1].tolist(), mode="markers+text", name="μ_y",
                                   text=names, textposition="top center", customdata=names,
                                   marker=dict(symbol="x", size=12, color="black"),
                                   hovertemplate=_("prior mean of %{customdata}: (%{x:.2f}, %{y:.2f})") + "<extra></extra>"))
    zoom = state.zoom()
    fig.update_layout(height=460 * zoom, dragmode=False, margin=dict(l=10, r=10, t=30 * zoom, b=10), xaxis_title="z[0]",
                      yaxis_title="z[1]", title=dict(text=_("Where it lands among the test encodings (μ of each)"), font_size=14 * zoom),
                      font_size=12 * zoom, legend=dict(itemsizing="constant"))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig, len(pick), source


if __name__ == "__main__":
    import app

    app.run_page(render)
