"""The VAE engine behind the explorer. It never imports Streamlit or Plotly.

One module per job, imported by name (``from vae.models import VAE``):
- models: the MODELS registry, ModelConfig, ``build_model``;  - losses: ELBO, KL, the IWAE bound, Objective;
- data: MNIST, Fashion-MNIST, binarization, samples;           - train: the trainer and its CLI;
- folders: a folder or .zip of your own images as a dataset, decoded once and cached;
- evaluate: ``score``, test metrics under both protocols, cards; - device: which device to compute on;
- checkpoint: safetensors + JSON folders, zips, saving;        - posterior: one image's q(z|x) and its numbers;
- latent: encoding, grids, traversals, interpolation;          - conditional: CVAE styles, the pixel classifier;
- embeddings: stored maps of the encodings, placing new points; - projection: t-SNE, UMAP and PCA to 2-D;
- preprocess: an uploaded photo into MNIST's format;
- morphometry: Morpho-MNIST's measurements of a digit;         - disentanglement: MIG, SAP, DCI, MI, Spearman;
- attributes: what each dimension tracks, attribute directions, the traversal score;
- policy, runner, jobs, map_jobs: the app's background work (its bounds, the child process, training
  jobs, new maps).
"""
