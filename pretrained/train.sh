#!/usr/bin/env bash
# Re-creates every shipped model: train, then evaluate on the full test split and write its card,
# then precompute the t-SNE map the Embeddings page opens with (embedding.safetensors).
# Usage: VAE_DATA_DIR=../shared/data bash pretrained/train.sh [NAME ...]   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
declare -A ARGS=(
  [mnist-vae-2d]="--dataset mnist --model vae --latent-dim 2 --hidden 400 --epochs 300"
  [mnist-vae-20d]="--dataset mnist --model conv --latent-dim 20 --hidden 256 --epochs 120"
  [mnist-cvae]="--dataset mnist --model cvae --latent-dim 2 --hidden 400 --epochs 300"
  [fashion-vae-2d]="--dataset fashion --model vae --latent-dim 2 --hidden 400 --epochs 60"
  [fashion-cvae]="--dataset fashion --model cvae --latent-dim 2 --hidden 400 --epochs 100"
)
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(mnist-vae-2d mnist-vae-20d mnist-cvae fashion-vae-2d fashion-cvae)
for name in "${names[@]}"; do
  # shellcheck disable=SC2086
  $PY -m vae.train ${ARGS[$name]} --out "pretrained/$name"
  $PY -m vae.evaluate "pretrained/$name" --k 1000 --write
  $PY -m vae.embeddings "pretrained/$name"
done
