"""A perceptual (feature) cycle loss: compare ``x`` and ``F(G(x))`` through a fixed network's features
instead of pixel by pixel (``Config.cycle_loss="perceptual"``; the default ``"l1"`` is the paper's Eq. 2).

A perceptual loss (Johnson et al. 2016) measures a distance between the activations of a fixed
network, usually VGG trained on ImageNet. Those weights need a download, which the book must run
without, so the features here come from :class:`RandomFeatures`: four 3×3 convolutions with ReLU
whose weights are drawn once from a fixed seed (He initialisation) and never trained. Random
convolutional features are a known, usable image representation: shallow random networks already
capture texture statistics well enough to synthesise textures (Ustyuzhaninov et al. 2017) and to
invert images from (He, Wang and Hopcroft 2016). They are the same on every machine and for every
task, cost no training and no file, and take any image size.

Why not one of the package's judges (:mod:`cyclegan_edu.judges`)? Each is trained for one purpose
on one task: the domain judge is fitted to a task's folder (which a model does not know when it is
built) and pools its features to 4×4, so it keeps little of where things are; the Fashion-MNIST
classifier sees grey clothing only; the labels segmenter knows only the procedural street scenes.
A cycle loss has to compare any two images of one domain, pixel layout included.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn
import torch.nn.functional as F

FEATURE_SEED = 0                        # the one seed of the fixed random weights
FEATURE_WIDTHS = (32, 64, 128, 256)     # output channels of the four convolutions


class RandomFeatures(nn.Module):
    """A fixed random feature extractor: ``len(widths)`` 3×3 convolutions (stride 1, then 2) with
    ReLU, He-initialised (std √(2 / fan_in), so each layer keeps the scale of its input) from a private
    generator seeded with ``seed``. Building it leaves torch's global random state untouched.

    The weights are non-persistent buffers: they move with ``.to(device)``, get no gradient, and stay
    out of ``state_dict`` (and so out of checkpoints), being a function of ``seed`` alone. Calling it
    returns the activations of every layer; grey (1-channel) images are compared as RGB with three
    equal channels.
    """

    def __init__(self, widths: Sequence[int] = FEATURE_WIDTHS, seed: int = FEATURE_SEED):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.n_layers = len(widths)
        for i, (c_in, c_out) in enumerate(zip((3, *widths), widths)):
            weight = torch.randn(c_out, c_in, 3, 3, generator=generator) * math.sqrt(2 / (c_in * 9))
            self.register_buffer(f"weight{i}", weight, persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        features = []
        for i in range(self.n_layers):
            weight = getattr(self, f"weight{i}")
            x = F.relu(F.conv2d(x, weight.to(x.dtype), stride=1 if i == 0 else 2, padding=1))
            features.append(x)
        return features


class PerceptualLoss(nn.Module):
    """``mean over layers l of mean |φ_l(reconstructed) − φ_l(real)|  +  pixel_weight · mean |reconstructed − real|``.

    ``φ`` is ``features`` (default :class:`RandomFeatures`), any callable from a batch to a list of
    activations. Each layer's term is a mean absolute difference, as the pixel L1 of Eq. 2 is, so the
    loss keeps the scale λ = 10 was chosen for. The features of ``real`` (a target, never trained
    through) are computed without gradients. ``pixel_weight`` > 0 adds the paper's pixel L1.
    """

    def __init__(self, pixel_weight: float = 0.0,
                 features: Callable[[torch.Tensor], list[torch.Tensor]] | None = None):
        super().__init__()
        self.pixel_weight = pixel_weight
        self.features = RandomFeatures() if features is None else features

    def forward(self, real: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            targets = self.features(real)
        outputs = self.features(reconstructed)
        loss = sum(F.l1_loss(out, target) for out, target in zip(outputs, targets)) / len(outputs)
        if self.pixel_weight > 0:
            loss = loss + self.pixel_weight * F.l1_loss(reconstructed, real)
        return loss
