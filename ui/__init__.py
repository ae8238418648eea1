"""Streamlit helpers shared by app.py and the pages, one module per job.

models: the model registry, the sidebar's picker and the one Selection per rerun, cached loading and
test encodings; training: the sidebar's training panel; images: test images, uploads and their
preprocessing; charts: the class palette and the Plotly figures the pages share.
Imports point one way: app.py and pages/ -> ui -> vae.
"""

from pathlib import Path

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"  # the shipped models and the offline samples
