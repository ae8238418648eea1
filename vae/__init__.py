"""The VAE engine behind the explorer. It never imports Streamlit or Plotly.

One module per job, imported by name (``from vae.models import VAE``):
models (VAE, ConvVAE, CVAE), losses (ELBO, KL, IWAE), data (MNIST, Fashion-MNIST), train (trainer
and CLI), evaluate (test metrics and CLI), checkpoint (safetensors + JSON folders), latent (grids).
"""
