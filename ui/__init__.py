"""Streamlit helpers shared by app.py and the pages, one module per job.

models: the model registry, the sidebar's picker and the one Selection per rerun, cached loading and
test encodings; training: the sidebar's training panel; images: test images, their hover thumbnails,
uploads and their preprocessing; charts: the class palette and the Plotly figures the pages share.
Imports point one way: app.py and pages/ -> ui -> vae.
"""

import os
from pathlib import Path

# Plotly imports pandas lazily and, when serializing a figure, reads it from sys.modules without
# waiting for an import in progress: two sessions' first scripts drawing charts at once on a cold
# server could see a half-initialized pandas ("partially initialized module 'pandas' has no attribute
# 'Series'", 2 of 54 page loads with 8 visitors). Importing it here, through the import system (which
# makes a second thread wait for the first), completes it before any page draws a chart: every page
# and app.py import ui first.
import pandas  # noqa: F401

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"  # the shipped models and the offline samples

# Public mode (`VAE_PUBLIC=1`, set in the Dockerfile): a server that strangers share. Nothing a visitor
# does is saved for other visitors, and what one visitor's training costs is capped.
PUBLIC = os.environ.get("VAE_PUBLIC", "").strip().lower() not in ("", "0", "false", "no")
PUBLIC_MAX_EPOCHS = 20  # per training job (an MLP VAE's epoch takes about 3 s on a 2-core CPU)
PUBLIC_MAX_MINUTES = 10  # wall time of one training job
PUBLIC_MODELS_PER_SESSION = 3  # a session's newest trained models kept; older ones are deleted
PUBLIC_MAX_MODELS = 24  # trained models on disk at once, over all sessions
