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
``paper``  256         64   9       1      the paper's full 200-epoch schedule
=========  ==========  ===  ======  =====  ============================================

``CYCLEGAN_EDU_PRESET`` names the preset every notebook uses; without it, ``gpu`` when CUDA is
available and ``cpu`` otherwise.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

PRESET_ENV = "CYCLEGAN_EDU_PRESET"

UPSAMPLE_CHOICES = ("deconv", "resize")
GAN_MODES = ("lsgan", "vanilla")
PREPROCESS_CHOICES = ("resize_and_crop", "crop", "scale_width_and_crop", "resize", "none")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class Config:
    """All settings of one run. Field names follow the official options where one exists."""

    # networks (paper §4, appendix 7.2)
    image_size: int = 256          # crop size fed to the networks (official --crop_size)
    load_size: int = 286           # images are resized to this before the random crop (--load_size)
    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64                  # generator filters in the first layer
    ndf: int = 64                  # discriminator filters in the first layer
    n_blocks: int = 9              # residual blocks: 9 at 256 px, 6 at 128 px (appendix 7.2)
    n_layers_D: int = 3            # 3 = the 70×70 PatchGAN
    norm: str = "instance"
    upsample: str = "deconv"       # "resize" = bilinear ×2 + conv, free of checkerboard artifacts
    dropout: bool = False

    # objective (paper Eq. 1-3 and §5.2)
    gan_mode: str = "lsgan"
    lambda_gan: float = 1.0        # 0 trains with the cycle (and identity) loss alone
    lambda_cycle: float = 10.0     # λ in Eq. 3
    lambda_identity: float = 0.5   # identity weight relative to λ: the loss is weighted λ·λ_id
    cycle_forward: bool = True     # x → G(x) → F(G(x)) ≈ x
    cycle_backward: bool = True    # y → F(y) → G(F(y)) ≈ y
    pool_size: int = 50            # history of generated images shown to D (Shrivastava et al.)

    # optimisation (paper §4)
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 1
    n_epochs: int = 100            # epochs at the initial learning rate
    n_epochs_decay: int = 100      # epochs of linear decay to zero
    iters: int | None = None       # if set: train this many steps instead of epochs ...
    iters_decay: int = 0           # ... and decay linearly to zero over the last `iters_decay` of them
    init_gain: float = 0.02

    # data
    preprocess: str = "resize_and_crop"
    flip: bool = True
    num_workers: int = 0

    # runtime
    device: str = "auto"           # "auto": cuda, then mps, then cpu
    precision: str = "auto"        # "auto": bf16/fp16 on CUDA, bf16 on CPUs with native bf16, else fp32
    seed: int = 0
    deterministic: bool = False
    channels_last: bool = False
    compile: bool = False
    log_every: int = 1             # record the losses every k steps
    checkpoint_every: int = 0      # 0: off (a run also saves at its end, when stopped, and every checkpoint_minutes)

    # keeping a run safe
    checkpoint_minutes: float = field(default=10.0, metadata={
        "help": "also save a checkpoint when this many minutes passed since the last one (0 = off)"})
    skip_bad: bool = field(default=False, metadata={
        "help": "skip unreadable training images with a warning instead of stopping the run"})

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
        need(self.image_size >= 16 and self.image_size % 4 == 0,
             f"image_size={self.image_size}: use a multiple of 4 of at least 16 "
             "(the generator halves the size twice and doubles it twice)")
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
        need(self.norm in ("instance", "batch", "none"), f"norm={self.norm!r}: choose instance, batch or none")
        for name in ("lambda_gan", "lambda_cycle", "lambda_identity", "lr"):
            need(getattr(self, name) >= 0, f"{name}={getattr(self, name)}: must not be negative")
        need(self.pool_size >= 0, f"pool_size={self.pool_size}: must be 0 (no pool) or more")
        need(self.iters is None or self.iters >= 1, f"iters={self.iters}: must be at least 1")
        need(0 <= self.iters_decay and (self.iters is None or self.iters_decay <= self.iters),
             f"iters_decay={self.iters_decay}: must lie between 0 and iters={self.iters}")
        need(self.n_epochs >= 0 and self.n_epochs_decay >= 0, "n_epochs and n_epochs_decay must not be negative")
        need(self.iters is not None or self.n_epochs + self.n_epochs_decay >= 1,
             f"n_epochs={self.n_epochs} and n_epochs_decay={self.n_epochs_decay}: nothing to train; "
             "train at least one epoch (or set iters)")
        need(self.checkpoint_minutes >= 0, f"checkpoint_minutes={self.checkpoint_minutes}: must be 0 (off) or more")

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
    def from_dict(cls, values: dict) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


PRESETS: dict[str, Config] = {
    "ci": Config(image_size=32, load_size=36, ngf=16, ndf=16, n_blocks=3, batch_size=8,
                 iters=300, iters_decay=150),
    "cpu": Config(image_size=64, load_size=72, ngf=32, ndf=32, n_blocks=6, batch_size=4,
                  iters=1500, iters_decay=750),
    "gpu": Config(image_size=256, load_size=286, ngf=64, ndf=64, n_blocks=9, batch_size=1,
                  n_epochs=10, n_epochs_decay=10, num_workers=4),
    "paper": Config(image_size=256, load_size=286, ngf=64, ndf=64, n_blocks=9, batch_size=1,
                    n_epochs=100, n_epochs_decay=100, num_workers=4),
}


def default_preset_name() -> str:
    """The preset named by ``CYCLEGAN_EDU_PRESET``, else ``gpu`` with CUDA and ``cpu`` without."""
    name = os.environ.get(PRESET_ENV, "").strip()
    if name:
        if name not in PRESETS:
            raise ValueError(f"{PRESET_ENV}={name!r} is not a preset; choose one of {sorted(PRESETS)}")
        return name
    import torch
    return "gpu" if torch.cuda.is_available() else "cpu"


def get_preset(name: str | None = None, **overrides) -> Config:
    """The preset ``name`` (default: :func:`default_preset_name`), with fields overridden."""
    name = name or default_preset_name()
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides)
