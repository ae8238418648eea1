"""Reconstruct: an uploaded, drawn or test image, what the model receives, and what it makes of it."""

import plotly.graph_objects as go
import streamlit as st
import torch
from streamlit_drawable_canvas import st_canvas

from ui import health, meaning, policy
from ui.charts import class_scatter
from ui.images import max_upload_bytes, pick_test_image, preprocess, test_images, upload_preprocessed
from ui.models import Selection, loss_name, test_encodings, weights_mtime
from vae.latent import tile
from vae.posterior import posterior
from vae.preprocess import ImageError

K_CHOICES = (10, 100, 1000)  # importance samples; metrics.json uses 1000 for the whole test split
# One image's estimate: k decoder passes in one batch (k = 1000: 0.3 to 1.1 s on 2 busy cores), cached per
# image and k; the policy's iwae_max_k bounds k whatever a visitor sends.
N_SAMPLES = 8
N_PLANE = 3000  # test encodings drawn on the latent plane


@st.cache_data(show_spinner=False, max_entries=64)
def measure(folder: str, version: float, pixels: bytes, label: int | None, k: int, _sel: Selection):
    """posterior() of the float32 28x28 image in ``pixels``, cached per model (folder and weights'
    version), image, label and k."""
    if k > policy().iwae_max_k:
        raise ValueError(f"k = {k} importance samples is more than this server computes ({policy().iwae_max_k})")
    image = torch.frombuffer(bytearray(pixels), dtype=torch.float32).view(1, 1, 28, 28)
    return posterior(_sel.model, image, label, _sel.config["likelihood"], _sel.config["sigma"], k=k,
                     n_samples=N_SAMPLES)


def show(image, caption, size=96, container=st):
    """A grey uint8 array or a (1, 1, H, W) tensor, enlarged by pixel repetition to at most ``size`` a side."""
    t = image if isinstance(image, torch.Tensor) else torch.tensor(image).float().div(255)[None, None]
    a = tile(t, 1, scale=max(1, size // max(t.shape[-2:])))
    container.image(a, caption=caption, width=a.shape[1], output_format="PNG")  # its own size: never resampled


def render(sel: Selection) -> None:
    model, config, metrics, names, style = sel.model, sel.config, sel.metrics, sel.class_names, sel.preprocess_style
    st.title("Reconstruct an image")
    st.markdown(
        "Give the model one image: it encodes it into the posterior q(z|x) = N(μ, σ²), decodes μ back "
        "into its **reconstruction**, and scores it with the ELBO. An upload or a drawing is first "
        "framed the way MNIST's digits were: light ink on black, cropped, scaled into a 20-pixel box, "
        "centred on its centre of mass in 28×28."
        + (" For this Fashion-MNIST model, as Fashion-MNIST was: a 28-pixel box, centred." if style == "fashion" else "")
    )

    source_col, steps_col = st.columns([2, 3], gap="large")
    with source_col:
        how = st.segmented_control("Input", ["Test image", "Upload", "Draw"], default="Test image", required=True,
                                   key="rec_input", help="A test image works offline; an upload or a drawing is framed as MNIST was.")
        done, x, label = None, None, None
        if how == "Upload":
            done = upload_preprocessed("rec_upload", style=style, label=f"Upload an image of one {'item' if style == 'fashion' else 'digit'} "
                                          f"(up to {max_upload_bytes() // 2**20} MB)")
        elif how == "Draw":
            st.caption("Draw one " + ("item" if style == "fashion" else "digit") + " with the mouse or a finger; hover over the canvas for its toolbar, whose bin icon clears it.")
            canvas = st_canvas(stroke_width=18, stroke_color="#000000", background_color="#ffffff", height=280, width=280,
                               return_image_data=True, key="rec_canvas")
            if canvas.json_data and canvas.json_data.get("objects") and canvas.image_bytes:
                try:
                    done = preprocess(canvas.image_bytes, style)
                except ImageError as err:
                    st.error(str(err))
        else:
            x, label, index = pick_test_image(config["dataset"], "rec_gallery")
            st.caption(f"Test image #{index:,}, a {names[label]}.")
        if done is not None:
            x = done.image
            if sel.conditional:
                label = st.selectbox("Which class is it? (the label y: " + ("the CVAE's encoder and decoder take it)" if sel.label_decoder
                                     else "its prior mean μ_y enters the KL)"), range(len(names)),
                                     format_func=lambda c: names[c], key="rec_label")

    with steps_col:
        if done is not None:
            st.markdown(f"**What the model receives**: {done.source}" + (", dark ink inverted" if done.inverted else ""))
            for col, (caption, step) in zip(st.columns(len(done.steps)), done.steps):
                show(step, caption, container=col)
            for doubt in done.warnings if how == "Upload" else ():  # why the ink found may not be one digit (a drawing is one)
                st.warning(doubt, icon=":material/crop:")
        elif how == "Test image":
            st.markdown("**What the model receives**: a test image is already in the dataset's 28×28 format, so it goes in as it is.")
        elif not (how == "Upload" and st.session_state.get("rec_upload") is not None):  # not beside an upload's error
            st.info(("Upload an image" if how == "Upload" else "Draw") + ": the steps that turn it into the model's 28×28 input appear here.")

    if x is None:
        st.stop()

    st.subheader("What the model makes of it")
    k = 1
    if model.variational:
        # persist_state="page": the Upload input without a file stops the page before this is drawn.
        k = st.select_slider("Draws z ~ q(z|x) behind the estimates (k)",
                             [c for c in K_CHOICES if c <= policy().iwae_max_k], value=100, key="rec_k",
                             persist_state="page", width=320,
                             help="More draws: a tighter IWAE bound and steadier numbers, and a slower page.")
    post = measure(sel.folder, weights_mtime(sel.folder), x.contiguous().numpy().tobytes(), label, k, sel)
    c1, c2, c3 = st.columns([1, 1, 2])
    show(x, "input x, 28×28", 168, c1)
    show(post.recon_image, "reconstruction: the decoder's mean at z = " + ("μ" if model.variational else "f(x)"), 168, c2)
    if model.variational:
        grid = tile(post.samples, nrow=N_SAMPLES // 2, padding=2, scale=3)
        c3.image(grid, width=grid.shape[1], output_format="PNG",
                 caption=f"{N_SAMPLES} draws z ~ q(z|x), each decoded to its mean image")
    test = metrics.get("test")
    if not model.variational:
        m = st.columns(4)
        m[0].metric("Reconstruction", f"{post.recon_nll:.1f} nats", help=f"−log p(x|z) at the code z = f(x): the {config['likelihood']} decoder's negative log-likelihood of x.")
        st.caption("A plain autoencoder maps x to one point z = f(x) and has no prior: it defines no likelihood "
                   "p(x), so there is no KL, ELBO or IWAE estimate to show. The AE vs VAE page shows what that costs."
                   + (f" Test split mean: {test['recon']:.1f} nats." if test else ""))
    else:
        prior = "N(μ_y, I), the prior of its class" if sel.class_prior else "the prior N(0, I)"
        m = st.columns(4)
        m[0].metric("Reconstruction", f"{post.recon_nll:.1f} nats", help=f"−E_q[log p(x|z)]: the {config['likelihood']} decoder's negative log-likelihood of x, averaged over {k} draws z ~ q(z|x).")
        m[1].metric("KL", f"{post.kl:.2f} nats", help=f"KL(q(z|x) ‖ p(z)), in closed form against {prior}, summed over the latent dimensions.")
        m[2].metric("−ELBO", f"{post.neg_elbo:.1f} nats", help=f"Reconstruction + KL, for this one image (the model was trained on {loss_name(config)}).")
        m[3].metric(f"IWAE NLL (k = {k})", f"{post.iwae_nll:.1f} nats", help="The importance-weighted estimate of −log p(x) with k draws (Burda et al., 2016); at most −ELBO in expectation.")
        kind = ("differential nats of a Gaussian decoder" if config["likelihood"] == "gaussian" else
                "grey levels scored as Bernoulli targets")
        note = (f" These are {kind}, not a normalized likelihood of the image: compare them with each other, "
                "not with published MNIST numbers (those binarize the digits).")
        if test:
            st.caption(f"For comparison, the test split's means: −ELBO {test['neg_elbo']:.1f} nats, IWAE NLL "
                       f"{test['iwae_nll']:.1f} nats (k = {test.get('k', 1000)})." + note)
        elif metrics.get("test_binarized"):
            st.caption("This model was trained and scored on binarized digits (pixels 0 or 1), so its numbers for a "
                       "grey-level image here are not comparable with its test scores." + note)

    # Is it like the training data? (issue 27): the likelihood alone cannot say (Nalisnick et al., 2019).
    health.ood_section(sel, x, "upload" if how == "Upload" else "drawing" if how == "Draw" else "test image")

    d = model.latent_dim
    dims = [f"z[{i}]" for i in range(d)]
    bars = go.Figure(go.Scatter(
        x=dims, y=post.mu.tolist(), mode="markers", marker=dict(size=9),
        error_y=dict(type="data", array=post.sigma.tolist(), thickness=1.5), name="μ ± σ",
        customdata=torch.stack([post.sigma, post.kl_per_dim], 1).tolist(),
        hovertemplate="%{x}: μ %{y:.2f}, σ %{customdata[0]:.2f}, KL %{customdata[1]:.2f} nats<extra></extra>",
    ))
    bars.add_hrect(y0=-1, y1=1, line_width=0, fillcolor="gray", opacity=0.15)
    bars.update_layout(height=340, dragmode=False, margin=dict(l=10, r=10, t=30, b=10), yaxis_title="z", showlegend=False,
                       title=dict(text="μ ± σ of q(z|x) per dimension; grey: prior ±1", font_size=14))

    if d == 2:
        _, all_labels, _, source = test_images(config["dataset"])
        pick = torch.randperm(len(all_labels), generator=torch.Generator().manual_seed(0))[:N_PLANE].sort().values
        labels = all_labels[pick]
        fig = class_scatter(test_encodings(sel)[0][pick], labels, names, size=4, opacity=0.55)
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
        fig.update_layout(height=460, dragmode=False, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="z[0]", yaxis_title="z[1]",
                          title=dict(text="Where it lands among the test encodings (μ of each)", font_size=14),
                          legend=dict(itemsizing="constant"))
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
        left, right = st.columns([3, 2], gap="large")
        left.plotly_chart(fig, key="rec_plane")
        left.caption(f"{len(labels):,} test images from {source}, coloured by class"
                     + ("; for a CVAE, z holds the style and the label y the class, so the classes overlap." if sel.label_decoder else "; each class gathers around its own prior mean μ_y (black crosses)." if sel.class_prior else "."))
        right.plotly_chart(bars, key="rec_mu")
    else:
        st.plotly_chart(bars, key="rec_mu")
        st.caption("Dimensions whose μ sits near 0 with σ near 1 carry nothing about this image: they are the prior.")

    meaning.digit_section(sel, x, post.mu, label, label_is_true=how == "Test image")  # issue 26: its measurements


if __name__ == "__main__":
    import app

    app.run_page(render)
