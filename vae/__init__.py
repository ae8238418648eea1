"""The VAE engine behind the explorer. It never imports Streamlit or Plotly.

One module per job, imported by name (``from vae.models import VAE``):
- models: the MODELS registry, ModelConfig, ``build_model``; - losses: ELBO, KL, the IWAE bound, Objective;
- data: MNIST, Fashion-MNIST, binarization, samples;   - train: the trainer and its CLI;
- evaluate: test metrics under both protocols, cards;  - checkpoint: safetensors + JSON folders, zips, saving;
- latent: encoding, grids, traversals, interpolation;  - posterior: one image's q(z|x) and its numbers;
- conditional: CVAE styles and sample accuracy;        - embeddings: t-SNE and PCA maps of the encodings;
- preprocess: an uploaded photo into MNIST's format;   - jobs: training in a child process for the app.
- policy, runner, jobs, map_jobs: the app's background work (its bounds, the child process,
  training jobs, new maps);                            - projection: t-SNE, UMAP and PCA to 2-D.
"""
