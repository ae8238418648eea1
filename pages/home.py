"""The landing page: what the app is and what a VAE is, where to start, which data it runs on, and the
shipped models in one table."""

import pandas as pd
import streamlit as st

from app import PAGES
from ui.models import Selection, describe, score_line, shipped_configs, shipped_metrics
from vae.data import DATASET_NAMES, data_root, has_split

TOUR = [  # (page script, what a class does there), in the order a lesson would take them
    ("pages/manifold.py", "the whole 2-d latent space as a grid of decoded images: smooth, with holes marked"),
    ("pages/sliders.py", "move one coordinate of z at a time and watch the image change"),
    ("pages/reconstruct.py", "draw a digit or upload a photo: how the encoder sees it and what comes back"),
    ("pages/interpolate.py", "a straight walk in z between two images"),
    ("pages/cvae.py", "tell the model the class, keep the style"),
    ("pages/theory.py", "the KL term, the reparameterization trick and one image's ELBO, in numbers"),
]
PURPOSE = {  # what each shipped model is for, by name; a model not listed is described by its config alone
    "mnist-vae-2d": "the default: a latent space you can see whole",
    "mnist-ae-2d": "a plain autoencoder, for AE vs VAE: no prior, gaps between codes",
    "mnist-vae-20d": "a sharper model: 20 sliders, t-SNE maps of its codes",
    "mnist-vae-binarized": "the field's likelihood protocol (binarized MNIST, 50-d)",
    "mnist-iwae-binarized": "the same, trained on the importance-weighted bound (IWAE)",
    "mnist-cvae": "a CVAE: pick the digit, keep the handwriting",
    "mnist-cvae-class-prior": "a VAE whose prior has one mean per digit",
    "fashion-vae-2d": "a 2-d latent space of clothes",
    "fashion-cvae": "a CVAE for clothes",
    **{f"mnist-vae-10d-beta{b}": f"one of four β-VAEs (β = 1, 2, 4, 8; this one {b}): what a heavier KL weight does "
       "to what each dimension means" for b in (1, 2, 4, 8)},
}


def data_line() -> str:
    """Which images the pages use: the full test splits, or the bundled offline samples."""
    full = [DATASET_NAMES[n] for n in DATASET_NAMES if has_split(n, "test")]
    if len(full) == len(DATASET_NAMES):
        return (f"**Data:** the full {' and '.join(full)} test splits, read from {data_root().resolve()}; "
                "training from the sidebar uses their training splits.")
    return ("**Data:** " + (f"the full {' and '.join(full)} test split, and " if full else "")
            + "a bundled offline sample of the test images where a dataset is not on this machine: every page "
            "works on it, but what a page counts over test images is counted over the sample, and training "
            "from the sidebar needs the datasets.")


def models_table() -> pd.DataFrame:
    """One row per shipped model: name, what it is, its test score, and what it is for."""
    configs, metrics = shipped_configs(), shipped_metrics()
    rows = []
    order = list(PURPOSE)  # the default model first, then as PURPOSE lists them, then the rest by name
    for name, config in sorted(configs.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])):
        if config.get("dataset") not in DATASET_NAMES:
            continue
        rows.append({"Model": name, "What it is": describe(config),
                     "Test score": score_line(config, metrics.get(name, {})).removeprefix(" · ") or "—",
                     "What it is for": PURPOSE.get(name, "")})
    return pd.DataFrame(rows)


def render(sel: Selection) -> None:
    st.title("VAE Latent Space Explorer")
    st.markdown(
        "A **variational autoencoder** (VAE) learns to compress an image x into a few numbers z, its latent "
        "code, and to draw an image back from them. Its encoder gives each image a small cloud of codes, "
        "q(z|x), and training keeps those clouds close to a simple prior p(z) = N(0, I), so that any z near "
        "the centre decodes to a plausible image. This app opens trained VAEs so that you can see, and measure, "
        "what they learned: walk the latent space, move one coordinate at a time, encode your own drawing.")
    st.subheader("Where to start")
    st.caption("A tour for a class, one page after the other; the sidebar has every page and the model picker.")
    titles = {path: (title, icon) for path, title, icon in PAGES}
    columns = st.columns(3)
    for i, (path, what) in enumerate(TOUR):
        with columns[i % 3]:
            title, icon = titles[path]
            st.page_link(path, label=f"{i + 1}. {title}", icon=icon)
            st.caption(what)
    st.markdown(data_line())
    st.subheader("The shipped models")
    st.dataframe(models_table(), hide_index=True, width="stretch")
    st.caption(f"Picked now: **{sel.name}**. Pick another in the sidebar; every page then shows it. Each model's card "
               "(pretrained/NAME/README.md) says how it was trained and what it cost.")


if __name__ == "__main__":
    import app

    app.run_page(render)
