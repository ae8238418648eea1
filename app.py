"""VAE Latent Space Explorer: the frame every page shares. Run with `streamlit run app.py`."""

import streamlit as st

import ui

st.set_page_config(page_title="VAE Latent Space Explorer", page_icon="🧭", layout="wide")

page = st.navigation(
    [
        st.Page("pages/manifold.py", title="Latent manifold", icon="🗺️", default=True),
        st.Page("pages/reconstruct.py", title="Reconstruct an image", icon="🖼️"),
        st.Page("pages/sliders.py", title="Latent sliders", icon="🎚️"),
        st.Page("pages/interpolate.py", title="Interpolation", icon="↔️"),
        st.Page("pages/cvae.py", title="CVAE: class and style", icon="🔢"),
        st.Page("pages/embeddings.py", title="Embeddings (t-SNE, PCA)", icon="✨"),
    ]
)
ui.sidebar()
page.run()
