"""Theory: the KL term as a curve and a heat map, the reparameterization trick, and one image's ELBO."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from ui import health, state
from ui.i18n import _
from ui.charts import CLASS_COLORS
from ui.images import pick_test_image, show_image
from ui.models import Selection
from vae.latent import tile
from vae.losses import kl_divergence
from vae.posterior import posterior

MU_RANGE, SIGMA_RANGE = (-3.0, 3.0), (0.05, 3.0)
S = state.PageState("theory", [state.Setting("mu", float, 1.0, *MU_RANGE), state.Setting("sigma", float, 0.5, *SIGMA_RANGE)])


def kl_normal(mu, sigma):
    """KL(N(mu, sigma^2) || N(0, 1)) in nats, elementwise over NumPy arrays or floats: the package's own
    ``vae.losses.kl_divergence`` (per dimension, logvar = 2 log sigma)."""
    mu, sigma = np.broadcast_arrays(np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64))
    kl = kl_divergence(torch.as_tensor(mu), torch.as_tensor(2 * np.log(sigma)), per_dim=True).numpy()
    kl = kl + 0.0  # -0.0 (the closed form at mu = 0, sigma = 1) prints as 0
    return kl if kl.ndim else float(kl)


def normal_pdf(x, mu, sigma):
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))


def kl_figures(mu: float, sigma: float) -> tuple[go.Figure, go.Figure, go.Figure]:
    """(the KL as μ varies, as σ varies, through the current point: two figures, side by side on a wide
    screen and one above the other on a phone; the heat map over μ and σ with the point)."""
    mus = np.linspace(*MU_RANGE, 241)
    sigmas = np.linspace(*SIGMA_RANGE, 240)
    here = float(kl_normal(mu, sigma))
    curves = []
    for xs, ys, x, name, title, colour in (
            (mus, kl_normal(mus, sigma), mu, "μ", _("KL as μ varies (σ = {sigma:.2f})").format(sigma=sigma), 0),
            (sigmas, kl_normal(mu, sigmas), sigma, "σ", _("KL as σ varies (μ = {mu:.2f})").format(mu=mu), 1)):
        fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=CLASS_COLORS[colour]),
                                   hovertemplate=name + " %{x:.2f}: %{y:.3f} nats<extra></extra>"))
        fig.add_trace(go.Scatter(x=[x], y=[here], mode="markers", marker=dict(size=11, color="black"),
                                 hovertemplate=_("here: {value:.3f} nats").format(value=here) + "<extra></extra>"))
        fig.update_xaxes(title_text=name)
        fig.update_yaxes(title_text=_("nats"), rangemode="tozero")
        fig.update_layout(height=280, dragmode=False, showlegend=False, margin=dict(l=10, r=10, t=40, b=10),
                          title=dict(text=title, font_size=14))
        curves.append(fig)

    grid = kl_normal(mus[None, :], sigmas[:, None])
    heat = go.Figure(go.Heatmap(
        x=mus, y=sigmas, z=np.log10(grid + 1e-3), colorscale="Viridis", customdata=grid,
        colorbar=dict(title=_("nats"), tickvals=[-2, -1, 0, 1], ticktext=["0.01", "0.1", "1", "10"]),
        hovertemplate="μ %{x:.2f}, σ %{y:.2f}: %{customdata:.3f} nats<extra></extra>",
    ))
    heat.add_trace(go.Scatter(x=[0], y=[1], mode="markers", marker=dict(symbol="x", size=12, color="white"),
                              name=_("minimum: μ = 0, σ = 1 (KL = 0)"), hoverinfo="name"))
    heat.add_trace(go.Scatter(x=[mu], y=[sigma], mode="markers", name=_("here: {value:.3f} nats").format(value=here),
                              marker=dict(size=12, color="white", line=dict(color="black", width=2)), hoverinfo="name"))
    heat.update_layout(height=380, dragmode=False, xaxis_title="μ", yaxis_title="σ", margin=dict(l=10, r=10, t=30, b=10),
                       legend=dict(orientation="h", y=-0.2), title=dict(text=_("KL over μ and σ (log colour scale)"),
                                                                      font_size=14))
    return curves[0], curves[1], heat


def reparameterization_figure(mu: float, sigma: float, n: int, seed: int) -> tuple[go.Figure, np.ndarray]:
    """Histograms of eps ~ N(0, 1) and z = mu + sigma * eps for n seeded draws, with both densities."""
    eps = np.random.default_rng(seed).standard_normal(n)
    z = mu + sigma * eps
    xs = np.linspace(-6, 6, 400)
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=eps, histnorm="probability density", name="ε ~ N(0, 1)", opacity=0.45,
                               marker_color=CLASS_COLORS[7], xbins=dict(start=-6, end=6, size=0.2)))
    fig.add_trace(go.Histogram(x=z, histnorm="probability density", name="z = μ + σ ε", opacity=0.55,
                               marker_color=CLASS_COLORS[0], xbins=dict(start=-6, end=6, size=0.2)))
    fig.add_trace(go.Scatter(x=xs, y=normal_pdf(xs, 0, 1), mode="lines", name=_("prior N(0, 1)"),
                             line=dict(color="black", dash="dot")))
    fig.add_trace(go.Scatter(x=xs, y=normal_pdf(xs, mu, sigma), mode="lines", name=f"q = N({mu:.2f}, {sigma:.2f}²)",
                             line=dict(color=CLASS_COLORS[0])))
    fig.update_layout(barmode="overlay", height=320, dragmode=False, xaxis_title=_("value"), yaxis_title=_("density"),
                      margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(range=[-6, 6])
    return fig, z


def render(sel: Selection) -> None:
    st.title(_("Theory: the KL term and the ELBO"))
    st.markdown(_(
        "A VAE's encoder gives each image a Gaussian q(z|x) = N(μ, σ²) per latent dimension, and the ELBO "
        "charges it the KL divergence from the prior N(0, 1). For one dimension the KL has a closed form:"
    ))
    st.latex(r"\begin{aligned}&\mathrm{KL}\big(\mathcal{N}(\mu,\sigma^2)\,\|\,\mathcal{N}(0,1)\big)\\"  # 3 short lines: a phone
             r"&\quad= -\log\sigma + \frac{\sigma^2+\mu^2}{2} - \frac{1}{2}\\"
             r"&\quad= \frac{\mu^2}{2} + \frac{1}{2}\left(\sigma^2 - 1 - \log\sigma^2\right)\end{aligned}")
    st.caption(_("Kingma & Welling (2014), *Auto-Encoding Variational Bayes*, Appendix B, summed over dimensions "
                 "there as −½ Σ (1 + log σ² − μ² − σ²); `vae.losses.kl_divergence` computes it."))

    c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
    mu = c1.slider("μ", *MU_RANGE, step=0.05, key=S.bind("mu"))
    sigma = c2.slider("σ", *SIGMA_RANGE, step=0.05, key=S.bind("sigma"))
    c3.metric("KL", f"{kl_normal(mu, sigma):.3f} nats")
    by_mu, by_sigma, heat = kl_figures(mu, sigma)
    a, b = st.columns(2)
    a.plotly_chart(by_mu, key="theory_curve_mu", config={"displayModeBar": False})
    b.plotly_chart(by_sigma, key="theory_curve_sigma", config={"displayModeBar": False})
    left, right = st.columns([3, 2], gap="large")
    left.plotly_chart(heat, key="theory_heat", config={"displayModeBar": False})
    right.markdown(
        _("**Why it is never negative.** The first term μ²/2 is at least 0. The second is ½(t − 1 − log t) "
          "with t = σ², and t − 1 ≥ log t for every t > 0, with equality only at t = 1 (the tangent of the log "
          "at 1 lies above it). So KL ≥ 0, and KL = 0 only at **μ = 0, σ = 1**: when q is the prior itself.")
        + "\n\n"
        + _("**What it pulls towards.** A large |μ| costs μ²/2; a σ far below 1 costs −log σ, which grows without "
            "bound as σ → 0. The encoder is charged for moving a code away from the centre and for pinning it "
            "down precisely; the reconstruction term pays it back for both. An autoencoder pays neither: σ = 0 "
            "everywhere, an infinite KL that it never computes.")
    )

    st.subheader(_("The reparameterization trick"))
    st.latex(r"z = \mu + \sigma\,\varepsilon,\qquad \varepsilon \sim \mathcal{N}(0, 1)")
    st.caption(_("Kingma & Welling (2014), Sec. 2.4, Eq. 10; `vae.losses.reparameterize`."))
    n = st.select_slider(_("Draws of ε"), [100, 1000, 10_000], value=1000, key="theory_draws")
    fig, z = reparameterization_figure(mu, sigma, n, seed=0)
    left, right = st.columns([3, 2], gap="large")
    left.plotly_chart(fig, key="theory_reparam", config={"displayModeBar": False})
    right.markdown(
        _("The noise ε comes from N(0, 1), fixed and outside the network; the code z = {mu:.2f} + {sigma:.2f} ε "
          "is then a deterministic, differentiable function of μ and σ, so the gradient of the reconstruction "
          "term flows back through z into the encoder: ∂z/∂μ = 1, ∂z/∂σ = ε. Sampling z ~ N(μ, σ²) directly "
          "would give the same distribution and no gradient.").format(mu=mu, sigma=sigma)
        + "\n\n"
        + _("Here, {n:,} draws: mean of z {mean:.3f} (μ = {mu:.2f}), standard deviation {std:.3f} "
            "(σ = {sigma:.2f}).").format(n=n, mean=z.mean(), mu=mu, std=z.std(), sigma=sigma)
    )

    st.subheader(_("One image's ELBO, with {model}").format(model=sel.name))
    st.latex(r"\begin{aligned}&\log p(x) \;\ge\; \mathrm{ELBO}(x)\\"  # 3 short lines: a phone shows them whole
             r"&\quad= \mathbb{E}_{q(z|x)}\big[\log p(x|z)\big]\\"
             r"&\quad\phantom{=}\;{} - \mathrm{KL}\big(q(z|x)\,\|\,p(z)\big)\end{aligned}")
    st.caption(_("Kingma & Welling (2014), Eq. 3; the first term is estimated with draws z = μ + σ ε, the second "
                 "is the closed form above summed over the latent dimensions."))
    if not sel.model.variational:
        st.info(_("{model} is a plain autoencoder: it has no q(z|x) and no prior, so there is no ELBO to split. "
                  "Pick a VAE in the sidebar.").format(model=sel.name))
        return
    left, right = st.columns([2, 3], gap="large")
    with left:
        x, label, index = pick_test_image(sel, "theory_image")
        post = posterior(sel.model, x, label if sel.conditional else None, sel.config["likelihood"],
                         sel.config.get("sigma", 0.1), k=100)
        a, b = st.columns(2)
        show_image(a, tile(x, nrow=1, scale=4), caption=_("test image #{index}, a {label}").format(index=index, label=sel.class_names[label]))
        show_image(b, tile(post.recon_image, nrow=1, scale=4), caption=_("reconstruction at z = μ"))
    with right:
        parts = go.Figure(go.Bar(
            y=["−ELBO", "KL", _("reconstruction")], x=[post.neg_elbo, post.kl, post.recon_nll], orientation="h",
            marker_color=["#555555", CLASS_COLORS[1], CLASS_COLORS[0]], text=[f"{v:.1f}" for v in
                                                                              (post.neg_elbo, post.kl, post.recon_nll)],
            textposition="auto", hovertemplate="%{y}: %{x:.2f} nats<extra></extra>"))
        parts.update_layout(height=200, dragmode=False, margin=dict(l=10, r=10, t=10, b=10), xaxis_title=_("nats"))
        st.plotly_chart(parts, key="theory_parts", config={"displayModeBar": False})
        st.caption(_("−ELBO = reconstruction −E_q[log p(x|z)] ({recon:.1f} nats, {k} draws) + KL ({kl:.2f} nats) = "
                     "{total:.1f} nats. The KL is the price of this image's code; the reconstruction term is what the "
                     "decoder still cannot explain.").format(recon=post.recon_nll, k=post.k, kl=post.kl,
                                                            total=post.neg_elbo))
    d = sel.model.latent_dim
    shown = sorted(range(d), key=lambda j: -float(post.kl_per_dim[j]))[:4]
    xs = np.linspace(-5, 5, 300)
    prior_mean = None
    if sel.class_prior:
        prior_mean = sel.model.class_means[label].detach().cpu().numpy()
    cols = min(len(shown), 2)  # two per row: four titles side by side ran together on a phone
    rows = -(-len(shown) // cols)
    fig = make_subplots(rows=rows, cols=cols, vertical_spacing=0.25, subplot_titles=[
        f"z[{j}]: KL {float(post.kl_per_dim[j]):.2f} nats" for j in shown])
    for i, j in enumerate(shown):
        r, c = i // cols + 1, i % cols + 1
        m0 = 0.0 if prior_mean is None else float(prior_mean[j])
        fig.add_trace(go.Scatter(x=xs + m0, y=normal_pdf(xs, 0, 1), mode="lines", name=_("prior"),
                                 line=dict(color="black", dash="dot"), showlegend=i == 0), row=r, col=c)
        m, s = float(post.mu[j]), float(post.sigma[j])
        qx = np.linspace(m - 5 * s, m + 5 * s, 300)
        fig.add_trace(go.Scatter(x=qx, y=normal_pdf(qx, m, s), mode="lines", name="q(z|x)",
                                 line=dict(color=CLASS_COLORS[0]), showlegend=i == 0), row=r, col=c)
    fig.update_layout(height=60 + 200 * rows, dragmode=False, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
    st.plotly_chart(fig, key="theory_dims", config={"displayModeBar": False})
    if sel.class_prior:
        st.caption(_("This image's q(z_j|x) beside the prior of its class, N(μ_y, 1), for the {n} dimensions with the "
                     "largest KL: a narrow q far from the prior costs the most.").format(n=len(shown)))
    else:
        st.caption(_("This image's q(z_j|x) beside the prior for the {n} dimensions with the largest KL: a narrow q "
                     "far from the prior costs the most.").format(n=len(shown)))
    health.surgery_section(sel)


if __name__ == "__main__":
    import app

    app.run_page(render)
