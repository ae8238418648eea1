"""The models: an MLP `VAE`, a convolutional `ConvVAE`, a conditional `CVAE`, a `ClassPriorVAE`
(one learned prior mean per class), and a plain autoencoder `AE` to set beside them.

All share one interface (Kingma & Welling, 2014, "Auto-Encoding Variational Bayes", Sec. 2.4 and
Appendix C; CVAE: Sohn, Lee & Yan, 2015, "Learning Structured Output Representation using Deep
Conditional Generative Models"):

- ``encode(x, y=None) -> (mu, logvar)``: the encoder q_phi(z|x[, y]) = N(mu, diag(exp(logvar)));
  x is float (B, C, H, W) in [0, 1], y int64 (B,); mu and logvar are float (B, latent_dim). (C, H, W) is
  the model's ``image_shape``, from its config: (1, 28, 28) for MNIST and Fashion-MNIST, the default, and
  for a folder of images (``vae.folders``) 1 or 3 channels of 28, 32 or 64 pixels square.
- ``reparameterize(mu, logvar) -> z``: z = mu + sigma * eps, eps ~ N(0, I).
- ``decode(z, y=None) -> logits``: float (B, C, H, W); ``torch.sigmoid(logits)`` is the pixel mean.
- ``forward(x, y=None) -> (logits, mu, logvar)``.
- ``sample(n, y=None) -> images``: decoder means for z ~ p(z[|y]), float (n, C, H, W) in [0, 1].
- ``prior_mean(y) -> (B, D) or None``: the mean of the prior p(z|y) = N(prior_mean, I); None when the
  prior is N(0, I), as for every model but ``ClassPriorVAE``.

``MODELS`` is the one registry (model type -> class, description, short name, the app's default
widths); ``ModelConfig`` holds the architecture fields that ``build_model`` reads from a config.

Unconditional models accept ``y`` and ignore it, so generic code can always pass labels; the CVAE
raises ``ValueError`` without them. The ``AE`` is not variational (``variational = False``): its
``encode`` returns ``(z, None)``, a point code and no variance, and it has no prior to sample from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .losses import LIKELIHOODS, reparameterize

# MNIST's and Fashion-MNIST's (C, H, W), the default of every model and of a config written before
# ``image_shape`` existed; a model's own shape is ``model.image_shape`` (``ModelConfig.image_shape``).
IMAGE_SHAPE = (1, 28, 28)
N_PIXELS = 28 * 28  # values per image of IMAGE_SHAPE (a model's own: ``math.prod(model.image_shape)``)
IMAGE_SIZES = (28, 32, 64)  # the square sizes every model takes (the ConvVAE's two stride-2 steps need H % 4 == 0)
IMAGE_CHANNELS = (1, 3)  # grey, or RGB


def check_image_shape(image_shape) -> tuple[int, int, int]:
    """(C, H, W) as a tuple of ints; raises ValueError unless C is 1 or 3 and H = W is 28, 32 or 64."""
    shape = tuple(int(v) for v in image_shape)
    if len(shape) != 3 or shape[0] not in IMAGE_CHANNELS or shape[1] != shape[2] or shape[1] not in IMAGE_SIZES:
        raise ValueError(f"image_shape must be (C, S, S) with C in {IMAGE_CHANNELS} and S in {IMAGE_SIZES}, "
                         f"got {list(image_shape)}")
    return shape


def label_tensor(y: torch.Tensor | int | None, n: int, device: torch.device | str) -> torch.Tensor | None:
    """Labels as int64 (n,) on ``device``: an int becomes n copies, a tensor is moved, None stays None."""
    if y is None:
        return None
    if isinstance(y, int):
        return torch.full((n,), y, dtype=torch.long, device=device)
    return y.to(device=device, dtype=torch.long)


class _Autoencoder(nn.Module):
    """What every model shares; subclasses define ``encode`` and ``decode``."""

    conditional = False  # True: the model takes labels y (the CVAE's encoder and decoder; the class-prior VAE's prior)
    variational = True  # False for the AE: a point code, no q(z|x) variance, no prior
    latent_dim: int
    image_shape: tuple[int, int, int] = IMAGE_SHAPE  # (C, H, W) of the images it encodes and decodes

    @classmethod
    def from_config(cls, config: "ModelConfig") -> "_Autoencoder":
        """The model a ``ModelConfig`` describes: latent_dim, hidden and image_shape (the conditional
        models add n_classes, the ConvVAE channels)."""
        return cls(config.latent_dim, tuple(config.hidden), image_shape=tuple(config.image_shape))

    def prior_mean(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The prior's mean for labels y (B,): None here, where p(z) = N(0, I)."""
        return None

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with sigma = exp(logvar / 2), eps ~ N(0, I) (Kingma & Welling, Eq. 10).

        Shapes: mu, logvar, z all (B, latent_dim). ``vae.losses.reparameterize`` is the definition.
        """
        return reparameterize(mu, logvar)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        mu, logvar = self.encode(x, y)
        z = self.reparameterize(mu, logvar)
        return self.decode(z, y), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """Decode n draws from the prior N(0, I); returns pixel means (n, C, H, W) in [0, 1].

        For a CVAE, ``y`` is an int (every sample that class) or int64 (n,).
        """
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, device=device)
        return torch.sigmoid(self.decode(z, label_tensor(y, n, device)))


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them and after the last (the hidden trunk)."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class VAE(_Autoencoder):
    """MLP VAE; the default is the classic 784-400-latent_dim of pytorch/examples' ``vae/main.py``.

    image_shape (C, H, W): the encoder's input is the C * H * W values flattened (channel-major), the
    decoder's last layer gives as many logits. Raises ValueError for a shape ``check_image_shape`` refuses.
    """

    def __init__(self, latent_dim: int = 20, hidden: tuple[int, ...] = (400,), n_classes: int = 0,
                 image_shape: tuple[int, int, int] = IMAGE_SHAPE):
        super().__init__()
        self.latent_dim, self.n_classes = latent_dim, n_classes
        self.image_shape = check_image_shape(image_shape)
        n_values = math.prod(self.image_shape)
        hidden = list(hidden)
        self.encoder = _mlp([n_values + n_classes, *hidden])
        self.fc_mu = nn.Linear(hidden[-1], latent_dim)
        self.fc_logvar = nn.Linear(hidden[-1], latent_dim)
        self.decoder = nn.Sequential(
            _mlp([latent_dim + n_classes, *hidden[::-1]]), nn.Linear(hidden[0], n_values)
        )

    def _with_label(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if not self.n_classes:
            return h
        if y is None:
            raise ValueError("this conditional model needs labels y, int64 of shape (B,)")
        return torch.cat([h, F.one_hot(y, self.n_classes).to(h.dtype)], dim=1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        h = self.encoder(self._with_label(x.flatten(1), y))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self._with_label(z, y)).view(-1, *self.image_shape)


class CVAE(VAE):
    """Conditional VAE: the one-hot label joins the encoder's input and the decoder's z (Sohn et al., 2015)."""

    conditional = True

    def __init__(self, latent_dim: int = 2, hidden: tuple[int, ...] = (400,), n_classes: int = 10,
                 image_shape: tuple[int, int, int] = IMAGE_SHAPE):
        super().__init__(latent_dim, hidden, n_classes, image_shape)

    @classmethod
    def from_config(cls, config: "ModelConfig") -> "CVAE":
        return cls(config.latent_dim, tuple(config.hidden), n_classes=config.n_classes,
                   image_shape=tuple(config.image_shape))


class ClassPriorVAE(VAE):
    """A VAE whose prior has a learned mean per class: p(z|y) = N(mu_y, I), y in 0..n_classes-1.

    Encoder and decoder are the MLP VAE's and never see the label; the label enters only the KL
    term, KL(N(mu, sigma^2) || N(mu_y, I)) (``vae.losses.kl_divergence`` with ``prior_mu``), so the
    codes of each class gather around their own mean mu_y and a class is drawn by decoding
    z ~ N(mu_y, I). ``class_means`` (n_classes, latent_dim) are parameters trained with the rest,
    initialised N(0, I) from the global seed. This is the simplest conditional VAE of the Keras and
    PyTorch tutorials' family in which the prior, not the networks, carries the class.
    """

    conditional = True

    def __init__(self, latent_dim: int = 2, hidden: tuple[int, ...] = (400,), n_classes: int = 10,
                 image_shape: tuple[int, int, int] = IMAGE_SHAPE):
        super().__init__(latent_dim, hidden, image_shape=image_shape)  # the networks take no label
        self.n_classes = n_classes
        self.class_means = nn.Parameter(torch.randn(n_classes, latent_dim))

    @classmethod
    def from_config(cls, config: "ModelConfig") -> "ClassPriorVAE":
        return cls(config.latent_dim, tuple(config.hidden), n_classes=config.n_classes,
                   image_shape=tuple(config.image_shape))

    def _with_label(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return h

    def prior_mean(self, y: torch.Tensor | None) -> torch.Tensor:
        """mu_y for labels y int64 (B,): float (B, latent_dim). Raises ValueError without labels."""
        if y is None:
            raise ValueError("the class-prior VAE needs labels y, int64 of shape (B,)")
        return self.class_means[y]

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """Decode n draws z ~ N(mu_y, I); without y, y is drawn uniformly (the prior's mixture)."""
        device = self.class_means.device
        y = label_tensor(y, n, device)
        if y is None:
            y = torch.randint(self.n_classes, (n,), device=device)
        z = self.class_means[y] + torch.randn(n, self.latent_dim, device=device)
        return torch.sigmoid(self.decode(z))


class AE(VAE):
    """A plain autoencoder, to show why it cannot generate: the MLP VAE's encoder and decoder, but
    the encoder gives one point z = f(x) (its mean head; there is no variance head) and training
    minimizes the reconstruction term alone, with no KL. ``encode`` returns ``(z, None)``."""

    variational = False

    def __init__(self, latent_dim: int = 2, hidden: tuple[int, ...] = (400,),
                 image_shape: tuple[int, int, int] = IMAGE_SHAPE):
        super().__init__(latent_dim, hidden, image_shape=image_shape)
        del self.fc_logvar

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        return self.fc_mu(self.encoder(x.flatten(1))), None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        z, _ = self.encode(x)
        return self.decode(z), z, None

    def sample(self, n: int, y=None):
        raise NotImplementedError("an autoencoder has no prior to sample from; decode chosen codes instead")


class ConvVAE(_Autoencoder):
    """Convolutional VAE: two stride-2 convolutions down (S -> S/2 -> S/4: 28 -> 14 -> 7, 32 -> 8,
    64 -> 16), transposed convolutions up.

    Each step is a 4x4 kernel, stride 2, padding 1, which halves a side exactly when it is even and
    whose transpose doubles it exactly, so every size divisible by 4 comes back to itself: 28, 32 and
    64 alike (an odd stride pattern, 3x3 kernels or three steps, would lose 28 or 32 to rounding).
    ``channels`` are the two convolutions' widths; ``hidden`` is one width, the fully connected layer
    between the (S/4)x(S/4) feature map and (mu, logvar), mirrored in the decoder; image_shape (C, S, S)
    sets the first convolution's input and the last one's output channels. Raises ValueError for more
    than one hidden width, a number of channels other than two, or a shape ``check_image_shape`` refuses.
    """

    def __init__(
        self, latent_dim: int = 20, hidden: tuple[int, ...] = (256,), channels: tuple[int, int] = (32, 64),
        image_shape: tuple[int, int, int] = IMAGE_SHAPE,
    ):
        super().__init__()
        if len(hidden) != 1 or len(channels) != 2:
            raise ValueError(f"ConvVAE takes one hidden width and two channel widths, got hidden={list(hidden)}, "
                             f"channels={list(channels)}")
        self.latent_dim = latent_dim
        self.image_shape = check_image_shape(image_shape)
        c_in, size = self.image_shape[0], self.image_shape[1]
        m = size // 4  # the feature map's side: 7 for 28, 8 for 32, 16 for 64
        c1, c2 = channels
        width = hidden[0]
        self.encoder = nn.Sequential(
            nn.Conv2d(c_in, c1, 4, stride=2, padding=1), nn.ReLU(),  # (B, c1, S/2, S/2)
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),  # (B, c2, S/4, S/4)
            nn.Flatten(), nn.Linear(c2 * m * m, width), nn.ReLU(),
        )
        self.fc_mu = nn.Linear(width, latent_dim)
        self.fc_logvar = nn.Linear(width, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, width), nn.ReLU(),
            nn.Linear(width, c2 * m * m), nn.ReLU(), nn.Unflatten(1, (c2, m, m)),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),  # (B, c1, S/2, S/2)
            nn.ConvTranspose2d(c1, c_in, 4, stride=2, padding=1),  # (B, C, S, S) logits
        )

    @classmethod
    def from_config(cls, config: "ModelConfig") -> "ConvVAE":
        return cls(config.latent_dim, tuple(config.hidden), tuple(config.channels), tuple(config.image_shape))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z)


@dataclass
class ModelConfig:
    """The architecture: what ``build_model`` needs and what a checkpoint's weights must match. The run
    fields (data, epochs, optimizer, schedule, seed) are ``vae.train.TrainConfig``'s, which adds them to
    these; a checkpoint's ``config.json`` holds both, flat. ``metadata["help"]`` is the command line's."""

    model: str = field(default="vae", metadata={"help": "model type", "choices": "MODELS"})
    latent_dim: int = field(default=2, metadata={"help": "latent dimensions"})
    hidden: list[int] = field(default_factory=lambda: [400], metadata={
        "help": "MLP widths (vae, cvae, ae), or the fully connected width (conv)"})
    channels: list[int] = field(default_factory=lambda: [32, 64], metadata={
        "help": "conv: the two convolutions' widths", "nargs": 2, "flag": "--conv-channels"})
    n_classes: int = field(default=10, metadata={"help": "labels a conditional model takes", "cli": False})
    likelihood: str = field(default="bernoulli", metadata={"help": "the decoder's p(x|z)", "choices": LIKELIHOODS})
    sigma: float = field(default=0.1, metadata={"help": "the Gaussian likelihood's fixed standard deviation"})
    # (C, H, W) of the images: the dataset's (vae.train sets it from a folder's images; --image-size and
    # --channels choose it), MNIST's (1, 28, 28) for configs written before it existed.
    image_shape: list[int] = field(default_factory=lambda: list(IMAGE_SHAPE), metadata={
        "help": "(C, H, W) of the images", "cli": False})

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"unknown model type {self.model!r}; expected one of {', '.join(MODELS)}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be positive, got {self.latent_dim}")
        self.hidden = [int(h) for h in self.hidden]
        self.channels = [int(c) for c in self.channels]
        self.image_shape = list(check_image_shape(self.image_shape))


@dataclass(frozen=True)
class ModelSpec:
    """One entry of ``MODELS``: the class, and the words and widths the app and the cards use."""

    cls: type
    description: str  # for cards: "MLP VAE"
    short_name: str  # for buttons and captions: "VAE"
    default_hidden: tuple[int, ...]  # the widths a model trained from the app gets

MODELS = {  # model type (config.json's "model") -> its spec: the one registry
    "vae": ModelSpec(VAE, "MLP VAE", "VAE", (400,)),
    "conv": ModelSpec(ConvVAE, "convolutional VAE", "ConvVAE", (256,)),
    "cvae": ModelSpec(CVAE, "conditional VAE (MLP)", "CVAE", (400,)),
    "cvae_class_prior": ModelSpec(ClassPriorVAE, "VAE with a learned prior mean per class (MLP)", "class-prior VAE", (400,)),
    "ae": ModelSpec(AE, "plain autoencoder (MLP, not variational)", "AE", (400,)),
}


def model_config(config: dict | ModelConfig) -> ModelConfig:
    """The architecture fields of a config dict (a ``config.json``, a ``TrainConfig``'s ``asdict``), other
    keys ignored; a config written before ``channels``, ``n_classes``, ``sigma`` or ``image_shape`` existed
    gets their defaults (image_shape: MNIST's (1, 28, 28)). Raises ValueError for an unknown model type or
    likelihood, or an image_shape ``check_image_shape`` refuses."""
    if isinstance(config, ModelConfig):
        return ModelConfig(**{f: getattr(config, f) for f in ModelConfig.__dataclass_fields__})
    return ModelConfig(**{k: v for k, v in config.items() if k in ModelConfig.__dataclass_fields__})


def build_model(config: dict | ModelConfig) -> _Autoencoder:
    """An untrained model from its architecture (``model_config``). Raises ValueError for an unknown
    model type or a shape the model refuses."""
    arch = model_config(config)
    return MODELS[arch.model].cls.from_config(arch)
