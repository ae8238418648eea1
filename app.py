"""VAE Latent Space Explorer: the frame every page shares. Run with `streamlit run app.py`."""

import streamlit as st

import ui

st.set_page_config(page_title="VAE Latent Space Explorer", page_icon="🧭", layout="wide")

page = st.navigation(
    [
        st.Page("pages/manifold.py", title="Latent manifold", icon=":material/grid_on:", default=True),
        st.Page("pages/reconstruct.py", title="Reconstruct an image", icon=":material/image_search:"),
        st.Page("pages/sliders.py", title="Latent sliders", icon=":material/tune:"),
        st.Page("pages/interpolate.py", title="Interpolation", icon=":material/swap_horiz:"),
        st.Page("pages/cvae.py", title="CVAE: class and style", icon=":material/pin:"),
        st.Page("pages/embeddings.py", title="Embeddings (t-SNE, PCA)", icon=":material/scatter_plot:"),
    ]
)
ui.sidebar()
page.run()
