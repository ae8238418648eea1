"""The landing page: what the app is and what a VAE is, where to start, which data it runs on, and the
shipped models in one table."""

import pandas as pd
import streamlit as st

from app import PAGES
from ui.i18n import N_, _
from ui.models import Selection, describe, score_line, shipped_configs, shipped_metrics
from vae.data import DATASET_NAMES, data_root, has_split

TOUR = [  # (page script, what a class does there), in the order a lesson would take them
    ("pages/manifold.py", N_("the whole 2-d latent space as a grid of decoded images: smooth, with holes marked")),
    ("pages/sliders.py", N_("move one coordinate of z at a time and watch the image change")),
    ("pages/reconstruct.py", N_("draw a digit or upload a photo: how the encoder sees it and what comes back")),
    ("pages/interpolate.py", N_("a straight walk in z between two images")),
    ("pages/cvae.py", N_("tell the model the class, keep the style")),
    ("pages/theory.py", N_("the KL term, the reparameterization trick and one image's ELBO, in numbers")),
]
PURPOSE = {  # what each shipped model is for, by name; a model not listed is described by its config alone
    "mnist-vae-2d": N_("the default: a latent space you can see whole"),
    "mnist-ae-2d": N_("a plain autoencoder, for AE vs VAE: no prior, gaps between codes"),
    "mnist-vae-20d": N_("a sharper model: 20 sliders, t-SNE maps of its codes"),
    "mnist-vae-binarized": N_("the field's likelihood protocol (binarized MNIST, 50-d)"),
    "mnist-iwae-binarized": N_("the same, trained on the importance-weighted bound (IWAE)"),
    "mnist-cvae": N_("a CVAE: pick the digit, keep the handwriting"),
    "mnist-cvae-class-prior": N_("a VAE whose prior has one mean per digit"),
    "fashion-vae-2d": N_("a 2-d latent space of clothes"),
    "fashion-cvae": N_("a CVAE for clothes"),
    **{f"mnist-vae-10d-beta{b}": N_("one of four β-VAEs (β = 1, 2, 4, 8; this one {beta}): what a heavier KL "
                                    "weight does to what each dimension means") for b in (1, 2, 4, 8)},
}  # in English; translated where shown (the β-VAEs' with beta=)


def data_line() -> str:
    """Which images the pages use: the full test splits, or the bundled offline samples."""
    full = [DATASET_NAMES[n] for n in DATASET_NAMES if has_split(n, "test")]
    if len(full) == len(DATASET_NAMES):
        return _("**Data:** the full {datasets} test splits, read from {folder}; training from the sidebar uses "
                 "their training splits.").format(datasets=_(" and ").join(full), folder=data_root().resolve())
    offline = _("a bundled offline sample of the test images where a dataset is not on this machine: every page "
                "works on it, but what a page counts over test images is counted over the sample, and training "
                "from the sidebar needs the datasets.")
    if full:
        return _("**Data:** the full {datasets} test split, and {offline}").format(datasets=_(" and ").join(full),
                                                                                  offline=offline)
    return _("**Data:** {offline}").format(offline=offline)


def models_table() -> pd.DataFrame:
    """One row per shipped model: name, what it is, its test score, and what it is for."""
    configs, metrics = shipped_configs(), shipped_metrics()
    rows = []
    order = list(PURPOSE)  # the default model first, then as PURPOSE lists them, then the rest by name
    for name, config in sorted(configs.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])):
        if config.get("dataset") not in DATASET_NAMES:
            continue
        rows.append({_("Model"): name, _("What it is"): describe(config),
                     _("Test score"): score_line(config, metrics.get(name, {})).removeprefix(" · ") or "—",
                     _("What it is for"): _(PURPOSE[name]).format(beta=name.rsplit("beta", 1)[-1]) if name in PURPOSE else ""})
    return pd.DataFrame(rows)


def render(sel: Selection) -> None:
    st.title(_("VAE Latent Space Explorer"))
    st.markdown(_(
        "A **variational autoencoder** (VAE) learns to compress an image x into a few numbers z, its latent "
        "code, and to draw an image back from them. Its encoder gives each image a small cloud of codes, "
        "q(z|x), and training keeps those clouds close to a simple prior p(z) = N(0, I), so that any z near "
        "the centre decodes to a plausible image. This app opens trained VAEs so that you can see, and measure, "
        "what they learned: walk the latent space, move one coordinate at a time, encode your own drawing."))
    st.subheader(_("Where to start"))
    st.caption(_("A tour for a class, one page after the other; the sidebar has every page and the model picker."))
    titles = {path: (title, icon) for path, title, icon in PAGES}
    for i, (path, what) in enumerate(TOUR):
        if i % 3 == 0:  # a row of three at a time: stacked on a phone, the tour keeps its order
            columns = st.columns(3)
        with columns[i % 3]:
            title, icon = titles[path]
            st.page_link(path, label=f"{i + 1}. {_(title)}", icon=icon)
            st.caption(_(what))
    st.markdown(data_line())
    st.subheader(_("The shipped models"))
    st.dataframe(models_table(), hide_index=True, width="stretch")
    st.caption(_("Picked now: **{model}**. Pick another in the sidebar; every page then shows it. Each model's card "
                 "(pretrained/NAME/README.md) says how it was trained and what it cost.").format(model=sel.name))


if __name__ == "__main__":
    import app

    app.run_page(render)
