"""The three terms of the CycleGAN objective (Zhu et al. 2017, Eq. 1-3 and §5.2).

.. math::

    \\mathcal{L}(G, F, D_X, D_Y) = \\mathcal{L}_{GAN}(G, D_Y, X, Y) + \\mathcal{L}_{GAN}(F, D_X, Y, X)
        + \\lambda\\,\\mathcal{L}_{cyc}(G, F) \\; [+\\; \\lambda\\,\\lambda_{id}\\,\\mathcal{L}_{identity}(G, F)]
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class GANLoss(nn.Module):
    """The adversarial loss of Eq. 1, read from the discriminator's raw scores.

    * ``"lsgan"`` (the paper's choice, §4; Mao et al. 2017): least squares to the target,
      ``mean((D(x) - 1)^2)`` for "real" and ``mean(D(x)^2)`` for "fake". It gives a stable,
      non-vanishing gradient to samples that are on the right side of the boundary but far from it.
    * ``"vanilla"``: the original cross-entropy (Goodfellow et al. 2014), computed from logits with
      ``binary_cross_entropy_with_logits`` for numerical stability.

    ``loss(scores, target_is_real)`` averages over every patch of a PatchGAN's output map.
    """

    def __init__(self, mode: str = "lsgan", real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        if mode not in ("lsgan", "vanilla"):
            raise ValueError(f"gan_mode={mode!r}: choose 'lsgan' or 'vanilla'")
        self.mode = mode
        self.real_label, self.fake_label = real_label, fake_label

    def forward(self, scores: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        target = torch.full_like(scores, self.real_label if target_is_real else self.fake_label)
        if self.mode == "lsgan":
            return F.mse_loss(scores, target)
        return F.binary_cross_entropy_with_logits(scores, target)


def cycle_loss(real: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
    """One direction of Eq. 2: ``E ||F(G(x)) - x||_1``, the mean absolute error per pixel."""
    return F.l1_loss(reconstructed, real)


def identity_loss(real: torch.Tensor, mapped: torch.Tensor) -> torch.Tensor:
    """One direction of the identity loss (§5.2, after Taigman et al. 2017): ``E ||G(y) - y||_1``.
    A generator fed an image of its own output domain should return it unchanged, which keeps
    colour composition fixed where the GAN and cycle losses leave it free."""
    return F.l1_loss(mapped, real)
