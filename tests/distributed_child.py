"""Run by tests/test_distributed.py under torchrun: trains one small model with `vae.train.train` and
prints, per rank, the SHA-256 of its weights and the noise eps of its first reparameterization.

    torchrun --standalone --nproc-per-node 2 tests/distributed_child.py MODEL OBJECTIVE [--bypass]

--bypass replaces DistributedDataParallel with the bare module: no gradient all-reduce, so the
ranks' weights must then differ (the check that the test can fail).
"""

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import vae.losses  # noqa: E402
import vae.models  # noqa: E402
import vae.train as vt  # noqa: E402
from vae.data import load_dataset  # noqa: E402

FIRST_EPS: list[float] = []


def recording(mu, logvar, k=None, generator=None):
    """vae.losses.reparameterize, keeping the first draw's eps = (z - mu) / sigma."""
    z = REPARAMETERIZE(mu, logvar, k) if generator is None else REPARAMETERIZE(mu, logvar, k, generator)
    if not FIRST_EPS:
        FIRST_EPS.extend(((z - mu) / torch.exp(0.5 * logvar)).detach().flatten()[:4].tolist())
    return z


REPARAMETERIZE = vae.losses.reparameterize


def main() -> None:
    model, objective = sys.argv[1], sys.argv[2]
    vae.losses.reparameterize = vae.models.reparameterize = recording  # the IWAE's and the ELBO's draws
    if "--bypass" in sys.argv:
        vt.DistributedDataParallel = lambda module, **kwargs: module
    images, labels = load_dataset("mnist", "train")
    config = vt.TrainConfig(model=model, objective=objective, iwae_k=3, latent_dim=2, hidden=[32], epochs=1,
                            batch_size=64, device="cpu")
    result = vt.train(config, data=(images[:1280], labels[:1280]))
    weights = torch.cat([p.detach().flatten() for p in result.model.state_dict().values()])
    digest = hashlib.sha256(weights.numpy().tobytes()).hexdigest()
    noise = ",".join(f"{e:.6f}" for e in FIRST_EPS)
    print(f"rank {dist.get_rank()} weights {digest} noise {noise}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
