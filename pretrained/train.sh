#!/usr/bin/env bash
# Re-creates every shipped model: train, then evaluate on the full test split and write its card,
# then precompute the t-SNE map the Embeddings page opens with (embedding.safetensors).
# Usage: VAE_DATA_DIR=../shared/data bash pretrained/train.sh [NAME ...]   (from the repository root)
# --amp (bfloat16 autocast) made a CPU epoch 1.5 to 1.8x faster on the AVX-512 machine that trained
# them; drop it on a CPU without bfloat16 support. Each model's card says what its training cost.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
# NAME -> "training arguments | how it is scored". Scored on grey levels (k = 1000; 500 for the beta sweep, 250 for the
# convolutional model, whose decoder costs about 30 min per 10^7 decodes on a 2-core CPU), or by the
# literature's binarized protocol (k = 5000).
declare -A RUNS=(
  [mnist-vae-2d]="--dataset mnist --model vae --latent-dim 2 --hidden 512 256 --epochs 150 --schedule cosine --amp | --protocol grey --k 1000"
  [mnist-cvae]="--dataset mnist --model cvae --latent-dim 2 --hidden 512 256 --epochs 150 --schedule cosine --amp | --protocol grey --k 1000"
  [mnist-ae-2d]="--dataset mnist --model ae --latent-dim 2 --hidden 512 256 --epochs 150 --schedule cosine --amp | --protocol grey"
  [mnist-cvae-class-prior]="--dataset mnist --model cvae_class_prior --latent-dim 2 --hidden 512 256 --epochs 150 --schedule cosine --amp | --protocol grey --k 1000"
  [mnist-vae-20d]="--dataset mnist --model conv --latent-dim 20 --conv-channels 32 64 --hidden 512 --epochs 60 --schedule cosine --amp | --protocol grey --k 250"
  [mnist-vae-binarized]="--dataset mnist --model vae --latent-dim 50 --hidden 512 512 --binarize dynamic --warmup 20 --epochs 300 --schedule cosine --amp | --protocol binarized --k 5000"
  [mnist-iwae-binarized]="--dataset mnist --model vae --latent-dim 50 --hidden 512 512 --binarize dynamic --objective iwae --k 5 --epochs 80 --schedule cosine --amp | --protocol binarized --k 5000"
  [mnist-vae-10d-beta1]="--dataset mnist --model vae --latent-dim 10 --hidden 512 256 --beta 1 --epochs 60 --schedule cosine | --protocol grey --k 500"
  [mnist-vae-10d-beta2]="--dataset mnist --model vae --latent-dim 10 --hidden 512 256 --beta 2 --epochs 60 --schedule cosine | --protocol grey --k 500"
  [mnist-vae-10d-beta4]="--dataset mnist --model vae --latent-dim 10 --hidden 512 256 --beta 4 --epochs 60 --schedule cosine | --protocol grey --k 500"
  [mnist-vae-10d-beta8]="--dataset mnist --model vae --latent-dim 10 --hidden 512 256 --beta 8 --epochs 60 --schedule cosine | --protocol grey --k 500"
  [fashion-vae-2d]="--dataset fashion --model vae --latent-dim 2 --hidden 400 --epochs 60 | --protocol grey --k 1000"
  [fashion-cvae]="--dataset fashion --model cvae --latent-dim 2 --hidden 400 --epochs 100 | --protocol grey --k 1000"
)
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(mnist-vae-2d mnist-cvae mnist-ae-2d mnist-cvae-class-prior mnist-vae-20d mnist-vae-binarized mnist-iwae-binarized fashion-vae-2d fashion-cvae
  mnist-vae-10d-beta1 mnist-vae-10d-beta2 mnist-vae-10d-beta4 mnist-vae-10d-beta8)
for name in "${names[@]}"; do
  run=${RUNS[$name]}
  # shellcheck disable=SC2086
  $PY -m vae.train ${run%%|*} --out "pretrained/$name"
  # shellcheck disable=SC2086
  $PY -m vae.evaluate "pretrained/$name" ${run#*|} --write
  $PY -m vae.embeddings "pretrained/$name"
  $PY -m vae.embeddings "pretrained/$name" --method umap
done
