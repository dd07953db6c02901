"""Every knob of a CycleGAN run in one dataclass, and the named presets.

The defaults are the paper's (Zhu et al. 2017, §4 "Implementation" and appendix 7.1) and the
official implementation's: a 9-block ResNet generator with 64 filters, the 70×70 PatchGAN, the
least-squares GAN loss, λ = 10 for the cycle loss and 0.5·λ for the identity loss, a history of
50 generated images, Adam(2e-4, β1 = 0.5) and a learning rate that is constant for 100 epochs and
then decays linearly to zero over 100 more.

The presets shrink the same model so that it trains where the reader is:

=========  ==========  ===  ======  =====  ============================================
preset     image size  ngf  blocks  batch  for
=========  ==========  ===  ======  =====  ============================================
``ci``     32          16   3       8      continuous integration: any chapter in seconds
``cpu``    64          32   6       4      a laptop CPU: a chapter's training in minutes
``gpu``    256         64   9       1      the paper's networks on a GPU (Colab)
``paper``  256         64   9       1      the paper's full 200-epoch schedule, in fp32
=========  ==========  ===  ======  =====  ============================================

Presets are immutable: ``get_preset(name, **changes)`` (or ``config.replace(**changes)``) makes a
changed copy. ``get_preset(name, model="pix2pix")`` gives pix2pix's own settings
(:data:`PIX2PIX_DEFAULTS`) on the preset's sizes, ``model="distancegan"`` DistanceGAN's
(:data:`DISTANCEGAN_DEFAULTS`). The one-image batches of ``gpu`` and ``paper`` suit DistanceGAN's
``distance_mode="self"``; its default ``"pairs"`` needs ``batch_size >= 2``.

``CYCLEGAN_EDU_PRESET`` names the preset every notebook uses; without it, ``gpu`` when CUDA is
available and ``cpu`` otherwise.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

PRESET_ENV = "CYCLEGAN_EDU_PRESET"

UPSAMPLE_CHOICES = ("deconv", "resize")
NET_D_CHOICES = ("n_layers", "pixel", "image")
GAN_MODES = ("lsgan", "vanilla")
NORMS = ("instance", "batch", "none")
PREPROCESS_CHOICES = ("resize_and_crop", "crop", "scale_width_and_crop", "resize", "none")
DIRECTIONS = ("AtoB", "BtoA")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MODELS = ("cyclegan", "pix2pix", "distancegan")
CYCLE_LOSSES = ("l1", "perceptual")
DISTANCE_MODES = ("pairs", "self")


def _setting(default, help: str, choices: tuple | None = None):
    """A Config field with its help text and allowed values: ``cyclegan-edu train`` makes its
    ``--field-name`` option from them, so the dataclass is the one place a setting is declared."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class Config:
    """All settings of one run, immutable (change one with :meth:`replace`). Field names follow the
    official options where one exists; each field's help text is also its command-line help."""

    # networks (paper §4, appendix 7.2)
    image_size: int = _setting(256, "crop size fed to the networks (official --crop_size)")
    load_size: int = _setting(286, "images are resized to this before the random crop (official --load_size)")
    input_nc: int = _setting(3, "channels of the model's A images")
    output_nc: int = _setting(3, "channels of the model's B images")
    ngf: int = _setting(64, "generator filters in the first layer")
    ndf: int = _setting(64, "discriminator filters in the first layer")
    n_blocks: int = _setting(9, "residual blocks of the generator: 9 at 256 px, 6 at 128 px (appendix 7.2)")
    netD: str = _setting("n_layers", "discriminator: n_layers (the PatchGAN with n_layers_D layers), pixel (1×1 "
                                     "PixelGAN) or image (one score per image)", NET_D_CHOICES)
    n_layers_D: int = _setting(3, "stride-2 layers of the discriminator: 3 = the 70×70 PatchGAN")
    spectral_norm: bool = _setting(False, "spectral normalisation of the discriminators' weights, which then have "
                                          "no normalisation layers (Miyato et al. 2018)")
    norm: str = _setting("instance", "normalisation layers: instance (CycleGAN), batch (pix2pix) or none", NORMS)
    upsample: str = _setting("deconv", "generator upsampling: deconv (transposed convolutions, the paper's) or "
                                       "resize (bilinear ×2 + conv, free of checkerboard artifacts)", UPSAMPLE_CHOICES)
    dropout: bool = _setting(False, "dropout in the generator (pix2pix's U-Net uses it, CycleGAN does not)")

    # objective (paper Eq. 1-3 and §5.2; pix2pix Eq. 4)
    gan_mode: str = _setting("lsgan", "adversarial loss: lsgan (least squares, the paper's) or vanilla "
                                      "(cross-entropy, pix2pix's)", GAN_MODES)
    lambda_gan: float = _setting(1.0, "weight of the GAN terms; 0 trains with the cycle (and identity) loss alone")
    lambda_cycle: float = _setting(10.0, "λ in Eq. 3: the weight of the cycle loss")
    lambda_identity: float = _setting(0.5, "identity weight relative to λ: the loss is weighted λ·λ_id (0 = off)")
    lambda_l1: float = _setting(100.0, "pix2pix: the weight of its L1 term (Isola et al. 2017, Eq. 4)")
    cycle_forward: bool = _setting(True, "the forward cycle x → G(x) → F(G(x)) ≈ x")
    cycle_backward: bool = _setting(True, "the backward cycle y → F(y) → G(F(y)) ≈ y")
    cycle_loss: str = _setting("l1", "how the cycle compares x with F(G(x)): l1 (pixels, the paper's Eq. 2) or "
                                     "perceptual (features of a fixed random network, cyclegan_edu.perceptual)",
                               CYCLE_LOSSES)
    perceptual_pixel_weight: float = _setting(0.0, "with cycle_loss=perceptual: weight of the pixel L1 added to "
                                                   "the feature distance (0 = features alone)")
    pool_size: int = _setting(50, "history of generated images shown to D (Shrivastava et al.; 0 = off)")
    lambda_distance: float = _setting(1.0, "DistanceGAN: the weight of its distance loss (Benaim & Wolf 2017; "
                                           "the official default 1)")
    distance_mode: str = _setting("pairs", "DistanceGAN: pairs (distances between the images of a batch, §3.1; "
                                           "needs batch_size >= 2) or self (between the halves of each image, §3.2)",
                                  DISTANCE_MODES)

    # optimisation (paper §4)
    lr: float = _setting(2e-4, "Adam's initial learning rate")
    lr_D: float | None = _setting(None, "the discriminators' initial learning rate, if not lr (the paper uses one "
                                        "rate for all networks; chapter 6 gives G a tenth of D's)")
    beta1: float = _setting(0.5, "Adam's β1")
    beta2: float = _setting(0.999, "Adam's β2")
    batch_size: int = _setting(1, "images of each domain per step")
    n_epochs: int = _setting(100, "epochs at the initial learning rate")
    n_epochs_decay: int = _setting(100, "epochs of linear decay to zero")
    iters: int | None = _setting(None, "if set: train this many steps instead of n_epochs + n_epochs_decay epochs")
    iters_decay: int = _setting(0, "with iters: decay the learning rate linearly to zero over the last "
                                   "iters_decay steps")
    init_gain: float = _setting(0.02, "standard deviation of the normal initialisation of the weights")

    # data
    preprocess: str = _setting("resize_and_crop", "the official preprocessing of training images: "
                               "resize_and_crop resizes to load_size and crops image_size at random",
                               PREPROCESS_CHOICES)
    flip: bool = _setting(True, "random horizontal flips of training images")
    num_workers: int = _setting(0, "DataLoader worker processes")
    direction: str = _setting("AtoB", "AtoB: the dataset's A (trainA, pix2pix: left halves) is the model's A; "
                                      "BtoA swaps the domains (official --direction)", DIRECTIONS)

    # runtime
    device: str = _setting("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    precision: str = _setting("auto", "auto: bf16 on CUDA cards of compute capability 8.0+ and on CPUs with "
                                      "native bf16, fp16 with loss scaling on older CUDA cards, else fp32", PRECISIONS)
    seed: int = _setting(0, "seed of the weights, the data order, the crops and the pool")
    deterministic: bool = _setting(False, "ask torch for deterministic kernels (slower)")
    channels_last: bool = _setting(False, "channels-last memory layout (faster on recent GPUs)")
    compile: bool = _setting(False, "torch.compile the networks")
    log_every: int = _setting(1, "record the losses every k steps")
    checkpoint_every: int = _setting(0, "also save a checkpoint every k steps (0 = off; a run also saves at its "
                                        "end, when stopped, and every checkpoint_minutes)")

    # keeping a run safe
    checkpoint_minutes: float = _setting(10.0, "also save a checkpoint when this many minutes passed since the "
                                               "last one (0 = off)")
    skip_bad: bool = _setting(False, "skip unreadable training images with a warning instead of stopping the run")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field and what to do for any setting that cannot work."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            need(not isinstance(value, float) or math.isfinite(value),
                 f"{f.name}={value}: must be a finite number")
        need(self.image_size % 4 == 0,
             f"image_size={self.image_size}: use a multiple of 4 "
             "(the generator halves the size twice and doubles it twice)")
        need(self.netD in NET_D_CHOICES, f"netD={self.netD!r}: choose one of {NET_D_CHOICES}")
        smallest = min_image_size(self.n_layers_D, self.norm, self.netD)
        need(self.image_size >= smallest,
             f"image_size={self.image_size} is too small: with n_layers_D={self.n_layers_D} it must be at least "
             f"{smallest} (the generator's 4× smaller feature map and the PatchGAN's last one must be at least "
             "2×2)")
        need(self.netD != "image" or (self.image_size & (self.image_size - 1)) == 0,
             f"image_size={self.image_size}: netD='image' (one score per image) needs a power of two "
             "(its stride-2 layers halve the image down to 4×4)")
        need(self.load_size >= self.image_size or self.preprocess in ("resize", "none"),
             f"load_size={self.load_size} is smaller than image_size={self.image_size}: "
             "the random crop needs load_size >= image_size")
        for name in ("ngf", "ndf", "input_nc", "output_nc", "batch_size"):
            need(getattr(self, name) >= 1, f"{name}={getattr(self, name)}: must be at least 1")
        need(self.n_blocks >= 0, f"n_blocks={self.n_blocks}: must be 0 or more")
        need(self.n_layers_D >= 0, f"n_layers_D={self.n_layers_D}: must be 0 or more")
        need(self.upsample in UPSAMPLE_CHOICES, f"upsample={self.upsample!r}: choose one of {UPSAMPLE_CHOICES}")
        need(self.gan_mode in GAN_MODES, f"gan_mode={self.gan_mode!r}: choose one of {GAN_MODES}")
        need(self.preprocess in PREPROCESS_CHOICES,
             f"preprocess={self.preprocess!r}: choose one of {PREPROCESS_CHOICES}")
        need(self.precision in PRECISIONS, f"precision={self.precision!r}: choose one of {PRECISIONS}")
        need(self.norm in NORMS, f"norm={self.norm!r}: choose one of {NORMS}")
        need(self.direction in DIRECTIONS, f"direction={self.direction!r}: choose one of {DIRECTIONS}")
        need(self.cycle_loss in CYCLE_LOSSES, f"cycle_loss={self.cycle_loss!r}: choose one of {CYCLE_LOSSES}")
        need(self.distance_mode in DISTANCE_MODES,
             f"distance_mode={self.distance_mode!r}: choose one of {DISTANCE_MODES}")
        for name in ("lambda_gan", "lambda_cycle", "lambda_identity", "lambda_l1", "perceptual_pixel_weight",
                     "lambda_distance", "lr"):
            need(getattr(self, name) >= 0, f"{name}={getattr(self, name)}: must not be negative")
        need(self.lr_D is None or self.lr_D > 0, f"lr_D={self.lr_D}: must be positive (or unset: the same as lr)")
        need(self.pool_size >= 0, f"pool_size={self.pool_size}: must be 0 (no pool) or more")
        need(self.iters is None or self.iters >= 1, f"iters={self.iters}: must be at least 1")
        need(0 <= self.iters_decay and (self.iters is None or self.iters_decay <= self.iters),
             f"iters_decay={self.iters_decay}: must lie between 0 and iters={self.iters}")
        need(self.n_epochs >= 0 and self.n_epochs_decay >= 0, "n_epochs and n_epochs_decay must not be negative")
        need(self.iters is not None or self.n_epochs + self.n_epochs_decay >= 1,
             f"n_epochs={self.n_epochs} and n_epochs_decay={self.n_epochs_decay}: nothing to train; "
             "train at least one epoch (or set iters)")
        need(self.checkpoint_minutes >= 0, f"checkpoint_minutes={self.checkpoint_minutes}: must be 0 (off) or more")

    @property
    def norm_D(self) -> str:
        """The discriminators' normalisation layers: ``norm``, or none with ``spectral_norm``. Spectral
        normalisation bounds how much each layer can amplify a change of its input; an instance (or batch)
        norm after it would rescale the features to unit variance again and undo the bound (the D of Miyato
        et al. 2018 has no normalisation layers). Chapter 6."""
        return "none" if self.spectral_norm else self.norm

    def replace(self, **changes) -> "Config":
        """A copy with some fields changed (and checked again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown Config field(s) {sorted(unknown)}; known fields: "
                             f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, model: str = "cyclegan") -> "Config":
        """The Config of :meth:`to_dict`'s ``values`` for a ``model`` run. Fields added since the values
        were saved take their defaults; a pix2pix run saved before ``lambda_l1`` existed was trained with
        :data:`PIX2PIX_DEFAULTS` whatever its config said, so it gets them."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        if model == "pix2pix" and "lambda_l1" not in values:
            values.update(PIX2PIX_DEFAULTS)
        return cls(**values)


# The ResnetGenerator's smallest input side: its two stride-2 convolutions leave a 4× smaller map,
# which the residual blocks' reflection padding and instance norm need at least 2×2.
GENERATOR_MIN_SIZE = 8

# `translate` translates images with a side longer than this in tiles (cyclegan_edu.inference); a
# 2048×2048 image through the paper's generator needs about 3 GB in fp32 (its first layer's output: 1 GB)
TRANSLATE_TILE = 2048


def min_image_size(n_layers_D: int = 3, norm: str = "instance", netD: str = "n_layers") -> int:
    """The smallest ``image_size`` (a multiple of 4) that both networks of a run accept.

    The generator needs ``GENERATOR_MIN_SIZE`` (8 px), which the PixelGAN and the full-image
    discriminator (``netD`` "pixel" and "image") also accept. For the PatchGAN
    (:class:`~cyclegan_edu.networks.NLayerDiscriminator`) the requirement is carried back from its
    output through its 4×4 convolutions with padding 1 (``out = (in - 2) // stride + 1``, so
    ``out >= r`` takes ``in >= (r - 1)·stride + 2``): stride 2 for the first ``n_layers_D``, stride 1
    for the last C-layer and the output conv. Every map must be at least 1×1, and a normalised one
    at least 2×2 (instance norm needs more than one spatial element). That gives 8, 12, 24 and 48 px
    for 1 to 4 layers: 24 for the 70×70 PatchGAN.
    """
    if netD != "n_layers":
        return GENERATOR_MIN_SIZE
    # (stride, is the output normalised) of each conv, first to last
    layers = [(2, False)] + [(2, norm != "none")] * (n_layers_D - 1) + [(1, norm != "none")] * (n_layers_D > 0)
    needed = 1                                   # the output conv's map: at least 1×1
    for stride, normalised in reversed(layers + [(1, False)]):
        needed = (max(needed, 2 if normalised else 1) - 1) * stride + 2
    return max(GENERATOR_MIN_SIZE, -(-needed // 4) * 4)


PRESETS: Mapping[str, Config] = MappingProxyType({
    "ci": Config(image_size=32, load_size=36, ngf=16, ndf=16, n_blocks=3, batch_size=8,
                 iters=300, iters_decay=150),
    "cpu": Config(image_size=64, load_size=72, ngf=32, ndf=32, n_blocks=6, batch_size=4,
                  iters=1500, iters_decay=750),
    "gpu": Config(image_size=256, load_size=286, ngf=64, ndf=64, n_blocks=9, batch_size=1,
                  n_epochs=10, n_epochs_decay=10, num_workers=4),
    "paper": Config(image_size=256, load_size=286, ngf=64, ndf=64, n_blocks=9, batch_size=1,
                    n_epochs=100, n_epochs_decay=100, num_workers=4, precision="fp32"),
})

# pix2pix's own settings (Isola et al. 2017, and the official pix2pix model's option defaults): batch
# norm, dropout in the U-Net, the cross-entropy GAN loss, no image pool; and no identity loss, which is
# CycleGAN's. ``get_preset(model="pix2pix")`` applies them.
PIX2PIX_DEFAULTS: Mapping[str, object] = MappingProxyType(
    {"norm": "batch", "dropout": True, "gan_mode": "vanilla", "pool_size": 0, "lambda_identity": 0.0})

# DistanceGAN's (Benaim & Wolf 2017): its objective has no identity term (it has no F, nor a cycle).
# ``get_preset(model="distancegan")`` applies them.
DISTANCEGAN_DEFAULTS: Mapping[str, object] = MappingProxyType({"lambda_identity": 0.0})

# each model's own settings, applied over a preset by get_preset
MODEL_DEFAULTS: Mapping[str, Mapping[str, object]] = MappingProxyType(
    {"cyclegan": MappingProxyType({}), "pix2pix": PIX2PIX_DEFAULTS, "distancegan": DISTANCEGAN_DEFAULTS})


def default_preset_name() -> str:
    """The preset named by ``CYCLEGAN_EDU_PRESET``, else ``gpu`` with CUDA and ``cpu`` without."""
    name = os.environ.get(PRESET_ENV, "").strip()
    if name:
        if name not in PRESETS:
            raise ValueError(f"{PRESET_ENV}={name!r} is not a preset; choose one of {sorted(PRESETS)}")
        return name
    import torch
    return "gpu" if torch.cuda.is_available() else "cpu"


def get_preset(name: str | None = None, model: str = "cyclegan", **overrides) -> Config:
    """The preset ``name`` (default: :func:`default_preset_name`) for ``model``, with fields overridden:
    ``model="pix2pix"`` applies :data:`PIX2PIX_DEFAULTS` first (``"distancegan"``:
    :data:`DISTANCEGAN_DEFAULTS`), so ``overrides`` win over them."""
    name = name or default_preset_name()
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    if model not in MODELS:
        raise ValueError(f"model={model!r}: choose one of {MODELS}")
    return PRESETS[name].replace(**{**MODEL_DEFAULTS[model], **overrides})
