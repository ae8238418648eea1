"""AE vs VAE: why a plain autoencoder cannot generate, shown on the same images, grids and draws."""

import json
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from ui import state
from ui.i18n import _, error_message, say, sentences
from ui.charts import class_scatter
from ui.images import download_png, pick_test_image, show_image
from ui.models import Selection, available_models, selection_of, shipped_configs, test_encodings
from vae.checkpoint import CONFIG, CheckpointError
from vae.conditional import prior_styles
from vae.data import DATASET_NAMES
from vae.latent import decode_images, encode_images, grid_coordinates, interpolate, tile

N_CODES = 2000  # test images on each plane
N_DRAWS = 36  # prior draws decoded by each model
S = state.PageState("ae_vs_vae", [state.Setting("ae", str), state.Setting("vae", str),
                                  state.Setting("span", float, 2.0, 0.5, 6.0)])


def candidates() -> tuple[dict[str, dict], dict[str, str], dict[str, str]]:
    """(name -> config, name -> folder, name -> label) of every model a visitor can pick."""
    folders, labels = available_models()
    configs = dict(shipped_configs())  # read once per server; saved and session models on each visit
    for name, folder in folders.items():
        if name in configs:
            continue
        try:
            configs[name] = json.loads((Path(folder) / CONFIG).read_text())
        except (OSError, ValueError):
            continue
    return configs, folders, labels


def prior_circle(radius: float) -> go.Scatter:
    t = np.linspace(0, 2 * np.pi, 90)
    return go.Scatter(x=radius * np.cos(t), y=radius * np.sin(t), mode="lines", name=_("N(0, I): radius {radius:g}").format(radius=radius),
                      line=dict(color="black", width=1.5, dash="dot"), hoverinfo="name")


def render(sel: Selection) -> None:
    st.title(_("AE vs VAE: why a plain autoencoder cannot generate"))
    st.markdown(_(
        "An **autoencoder** (AE) maps each image to one point z = f(x) and learns only to reconstruct. A "
        "**VAE** maps it to a distribution q(z|x) = N(μ, σ²) and pays a KL term to keep those "
        "distributions near the prior N(0, I). Decode points drawn from N(0, I): the VAE's draws cover every "
        "digit, because its KL term packs all the codes around the origin; the AE's codes fill an arbitrary, "
        "gappy region that nothing ties to the prior, so its draws land wherever that region happens to be, "
        "between and around some classes and far from others."
    ))
    configs, folders, labels = candidates()
    aes = [n for n, c in configs.items() if c.get("model") == "ae"]
    if not aes:
        st.info(_("No autoencoder yet: train one in the sidebar (Model type: AE), or ship `mnist-ae-2d` "
                  "(`bash pretrained/train.sh mnist-ae-2d`)."))
        st.stop()
    c1, c2 = st.columns(2)
    ae_default = sel.name if sel.name in aes else ("mnist-ae-2d" if "mnist-ae-2d" in aes else aes[0])
    ae_name = c1.selectbox(_("Autoencoder"), aes, format_func=labels.get,
                           key=S.bind("ae", default=ae_default, options=tuple(aes)))
    ae_config = configs[ae_name]
    vaes = [n for n, c in configs.items() if c.get("model") in ("vae", "conv") and c["dataset"] == ae_config["dataset"]
            and c["latent_dim"] == ae_config["latent_dim"] and c.get("binarize", "none") == "none"]
    if not vaes:
        st.info(_("No unconditional VAE with a {d}-d latent space on {dataset} to compare with: train one in the "
                  "sidebar.").format(d=ae_config["latent_dim"], dataset=DATASET_NAMES[ae_config["dataset"]]))
        st.stop()
    vae_default = sel.name if sel.name in vaes else ("mnist-vae-2d" if "mnist-vae-2d" in vaes else vaes[0])
    vae_name = c2.selectbox("VAE", vaes, format_func=labels.get, key=S.bind("vae", default=vae_default, options=tuple(vaes)),
                            help=_("Unconditional VAEs on the same data with the same latent size."))
    try:
        ae, vae = selection_of(ae_name, folders[ae_name]), selection_of(vae_name, folders[vae_name])
    except CheckpointError as err:
        st.error(_("Cannot load the model: {error}").format(error=error_message(err)))
        st.stop()
    pair = (("AE", ae), ("VAE", vae))
    d, names = ae.model.latent_dim, ae.class_names
    measured(ae, vae)

    st.subheader(_("Where each puts the test images"))
    _images, labels_all, _indices, source = ae.test_images()
    pick = torch.randperm(len(labels_all), generator=torch.Generator().manual_seed(0))[:N_CODES].sort().values
    codes = {kind: test_encodings(s)[0][pick] for kind, s in pair}
    if d == 2:
        both = torch.cat(list(codes.values()))
        lo, hi = both.min(0).values.tolist(), both.max(0).values.tolist()
        pad = [0.05 * (h - low) for low, h in zip(lo, hi)]
        for col, (kind, s) in zip(st.columns(2, gap="large"), pair):
            fig = class_scatter(codes[kind], labels_all[pick], names, size=4, opacity=0.55)
            fig.add_trace(prior_circle(2.0))
            fig.update_layout(height=460, title=dict(text=_("{kind}: {model}").format(kind=kind, model=s.name), font_size=14),
                              xaxis_title="z[0]", yaxis_title="z[1]", dragmode=False,  # a swipe on a phone scrolls the page
                              legend=dict(orientation="h", y=-0.18, title=None))
            fig.update_xaxes(range=[lo[0] - pad[0], hi[0] + pad[0]])
            fig.update_yaxes(range=[lo[1] - pad[1], hi[1] + pad[1]], scaleanchor="x", scaleratio=1)
            col.plotly_chart(fig, key=f"aevae_codes_{kind}", config={"displayModeBar": False})
        spread = {kind: codes[kind].norm(dim=1).max().item() for kind in codes}  # the farthest code's distance
        st.caption(_("{n:,} test images from {source}, the same ones in both, on the same axes: the AE's codes "
                     "reach {ae:.1f} from the origin and the VAE's {vae:.1f}; the dotted circle is radius 2 of the "
                     "prior. The VAE's KL term packs its codes around the origin; nothing does that for the AE.")
                   .format(n=N_CODES, source=say(source), ae=spread["AE"], vae=spread["VAE"]))
    else:
        st.caption(_("The code plots need a 2-d latent space; these models have {d} dimensions.").format(d=d))

    if d < 2:
        st.info(_("The grids and plots need at least 2 latent dimensions."))
        st.stop()
    st.subheader(_("The decoded grid over the same span"))
    span = st.slider(_("Span of the grid (± z)"), 0.5, 6.0, step=0.5, key=S.bind("span"),
                     help=_("Both grids decode the same evenly spaced points of the plane z[0], z[1] (others 0)."))
    n = 12
    coords = grid_coordinates(n, span, "linear")
    rows, cols = torch.meshgrid(coords.flip(0), coords, indexing="ij")
    z = torch.zeros(n * n, d)
    z[:, 0], z[:, 1] = cols.reshape(-1), rows.reshape(-1)
    for col, (kind, s) in zip(st.columns(2, gap="large"), pair):
        show_image(col, tile(decode_images(s.model, z), nrow=n),
                   caption=_("{kind}: z[0] and z[1] from {low:g} to {high:g}").format(kind=kind, low=-span, high=span))

    st.subheader(_("{n} draws z ~ N(0, I), decoded by each").format(n=N_DRAWS))
    seed = st.session_state.setdefault("aevae_seed", 0)
    draws = prior_styles(N_DRAWS, d, seed)
    decoded = [decode_images(s.model, draws).cpu() for _kind, s in pair]
    for col, (kind, _s), images in zip(st.columns(2, gap="large"), pair, decoded):
        show_image(col, tile(images, nrow=6, padding=2, scale=2), caption=_("{kind}: the same {n} draws (seed {seed})").format(kind=kind, n=N_DRAWS, seed=seed))
    download_png(tile(torch.cat(decoded), nrow=6, padding=2),
                 f"{ae.name}-{vae.name}-prior-draws", "aevae_png", container=st.columns([1, 2])[0])
    st.button(_("New draws"), icon=":material/casino:", key="aevae_new",
              on_click=lambda: st.session_state.update(aevae_seed=int(torch.randint(100_000, ()).item())))

    st.subheader(_("An interpolation between the same two images"))
    c1, c2 = st.columns(2, gap="large")
    with c1:
        x0, y0, i0 = pick_test_image(ae, "aevae_start")
    st.session_state.setdefault("aevae_end_number", 1)
    with c2:
        x1, y1, i1 = pick_test_image(ae, "aevae_end")
    steps = 10
    for kind, s in pair:
        mu, _logvar = encode_images(s.model, torch.cat([x0, x1]))
        path = decode_images(s.model, interpolate(mu[0], mu[1], steps, "linear")).cpu()
        strip = torch.cat([x0, path, x1])
        show_image(st, tile(strip, nrow=len(strip), padding=2, scale=2),
                   caption=_("{kind}: test image {start} ({start_class}), then {steps} points on the straight line "
                             "between the two codes, then test image {end} ({end_class})").format(
                       kind=kind, start=i0, start_class=names[y0], steps=steps, end=i1, end_class=names[y1]))


def measured(ae: Selection, vae: Selection) -> None:
    """The stored figures of ``bench/ae_vs_vae.py`` for this pair, or how to measure them."""
    a, v = ae.metrics.get("prior_samples"), vae.metrics.get("prior_samples")
    if not a or not v or a.get("seed") != v.get("seed") or a.get("n") != v.get("n"):
        st.caption(_("The measured comparison (how many prior draws a classifier reads as a digit) is stored for the "
                     "shipped pair: run `python bench/ae_vs_vae.py AE_FOLDER VAE_FOLDER --write` for these two."))
        return
    m = st.columns(4)
    m[0].metric(_("VAE: classes its draws reach"), _("{n} of 10").format(n=v["classes_drawn"]),
                help=_("{n:,} draws z ~ N(0, I) decoded; a classifier that never saw either model names each one's "
                       "digit; a class counts when at least 1% of the draws are read as it. {classifier}.").format(
                    n=v["n"], classifier=classifier_words(v["classifier"])))
    m[1].metric(_("AE: classes its draws reach"), _("{n} of 10").format(n=a["classes_drawn"]),
                help=_("The same {n:,} draws decoded by the AE, the same classifier.").format(n=a["n"]))
    m[2].metric(_("VAE: test reconstruction"), f"{v['recon_at_code']:.1f} nats",
                help=_("-log p(x|z) at z = μ(x), mean over {n:,} test images; squared error {mse:.4f} per "
                       "pixel.").format(n=v["n_test"], mse=v["mse_per_pixel"]))
    m[3].metric(_("AE: test reconstruction"), f"{a['recon_at_code']:.1f} nats",
                help=_("-log p(x|z) at z = f(x), the same test images; squared error {mse:.4f} per pixel.").format(
                    mse=a["mse_per_pixel"]))
    missing = [str(c) for c, k in enumerate(a["predicted_counts"]) if k < 0.01 * a["n"]]
    top = max(range(10), key=lambda c: a["predicted_counts"][c])
    share = a["predicted_counts"][top] / a["n"]
    if missing:
        ae_reach = _("The AE's reach {classes} classes (never {missing}), and {share:.0%} of them read as {top}: N(0, I) "
                     "only covers the classes whose AE codes happen to lie near the origin.").format(
            classes=a["classes_drawn"], missing=_(" or ").join(missing), share=share, top=top)
    else:
        ae_reach = _("The AE's reach {classes} classes, and {share:.0%} of them read as {top}: N(0, I) only covers the "
                     "classes whose AE codes happen to lie near the origin.").format(
            classes=a["classes_drawn"], share=share, top=top)
    st.caption(sentences(
        _("Measured by `bench/ae_vs_vae.py` (seed {seed}): the same {n:,} draws, read by a classifier.").format(
            seed=v["seed"], n=v["n"]),
        ae_reach,
        _("The VAE's reach {classes}.").format(classes=v["classes_drawn"]),
        _("Both sets mostly look like some digit in two dimensions ({ae_share:.0%} of the AE's and {vae_share:.0%} of "
          "the VAE's are read with confidence {threshold:g} or more; real test digits {real_share:.0%}).").format(
            ae_share=a["confident_share"], vae_share=v["confident_share"], threshold=v["threshold"],
            real_share=v["real_test_confident_share"]),
        _("The AE reconstructs better: it spends nothing on keeping its codes near the prior.")
        if a["recon_at_code"] < v["recon_at_code"] else _("The VAE reconstructs better.")))


# bench/ae_vs_vae.py's description of its classifier (stored in metrics.json), said in the page's language
CLASSIFIER = re.compile(r"PCA 50 \+ RBF SVM with Platt probabilities, fitted on 10,000 (?P<dataset>.+) training images "
                        r"\(seed (?P<seed>\d+), (?P<seconds>\d+) s\); on the real test split it is confident for "
                        r"(?P<share>[\d.]+%)")


def classifier_words(about: str) -> str:
    """``about`` (bench/ae_vs_vae.py's words for its classifier) translated when it has the bench's form;
    else as it is."""
    match = CLASSIFIER.fullmatch(about)
    if not match:
        return about
    return _("PCA 50 + RBF SVM with Platt probabilities, fitted on 10,000 {dataset} training images (seed {seed}, "
             "{seconds} s); on the real test split it is confident for {share}").format(**match.groupdict())


if __name__ == "__main__":
    import app

    app.run_page(render)
