"""Streamlit helpers shared by app.py and the pages, one module per job.

models: the model registry, the sidebar's picker and the one Selection per rerun, cached loading and
test encodings; training: the sidebar's training panel; maps: the Embeddings page's new maps (background
jobs, their status and Cancel); images: test images, their hover thumbnails,
uploads and their preprocessing; charts: the class palette and the Plotly figures the pages share.
Imports point one way: app.py and pages/ -> ui -> vae.
"""

from pathlib import Path

# Plotly imports pandas lazily and, when serializing a figure, reads it from sys.modules without
# waiting for an import in progress: two sessions' first scripts drawing charts at once on a cold
# server could see a half-initialized pandas ("partially initialized module 'pandas' has no attribute
# 'Series'", 2 of 54 page loads with 8 visitors). Importing it here, through the import system (which
# makes a second thread wait for the first), completes it before any page draws a chart: every page
# and app.py import ui first.
import pandas  # noqa: F401

from vae.policy import Policy

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"  # the shipped models and the offline samples

# Public mode (`VAE_PUBLIC=1`, set in the Dockerfile): a server that strangers share. Nothing a visitor
# does is saved for other visitors, and what a visitor's training or new map costs is capped: one
# Policy (vae.policy) bounds every background job. Read it with policy(), at call time, so that a test
# can put another in POLICY.
POLICY = Policy.from_env()


def policy() -> Policy:
    """The server's bounds on what a visitor may start (``vae.policy.Policy``), built once from the environment."""
    return POLICY
