"""The VAE engine behind the explorer. It never imports Streamlit or Plotly.

One module per job, imported by name (``from vae.models import VAE``):
- models: VAE, ConvVAE, CVAE and ``build_model``;       - losses: ELBO, KL, the IWAE bound and objective;
- data: MNIST, Fashion-MNIST, binarization, samples;   - train: the trainer and its CLI;
- evaluate: test metrics under both protocols, cards;  - checkpoint: safetensors + JSON folders, zips, saving;
- latent: encoding, grids, traversals, interpolation;  - posterior: one image's q(z|x) and its numbers;
- conditional: CVAE styles and sample accuracy;        - embeddings: t-SNE and PCA maps of the encodings;
- preprocess: an uploaded photo into MNIST's format;   - jobs: training in a child process for the app.
"""
