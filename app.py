"""VAE Latent Space Explorer: the frame every page shares. Run with `streamlit run app.py`."""

import streamlit as st

import ui

st.set_page_config(page_title="VAE Latent Space Explorer", page_icon="🧭", layout="wide")

page = st.navigation([st.Page("pages/manifold.py", title="Latent manifold", icon="🗺️", default=True)])
ui.sidebar()
page.run()
