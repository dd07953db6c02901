"""DistanceGAN (Benaim and Wolf 2017, "One-Sided Unsupervised Domain Mapping", NIPS): learn
``G: A → B`` alone, without ``F`` and without a cycle, by keeping distances between images.

The observation behind it (the paper's Fig. 1): for mappings learned by CycleGAN, the distance
between two images ``|x_i − x_j|`` and the distance between their translations ``|G(x_i) − G(x_j)|``
are highly correlated. So ask for that directly. The **distance loss** (§3.1) over pairs of images:

.. math::

    \\mathcal{L}_{distance}(G, \\hat p_A) = \\mathbb{E}_{x_i, x_j \\sim \\hat p_A}
        \\left| \\frac{\\|x_i - x_j\\|_1 - \\mu_A}{\\sigma_A} - \\frac{\\|G(x_i) - G(x_j)\\|_1 - \\mu_B}{\\sigma_B} \\right|

where ``μ_A, σ_A`` (``μ_B, σ_B``) are the mean and standard deviation of the pairwise distances of
the training images of A (of B), computed once from the data, each domain on its own. Here the pairs
are those of a batch (every ``i < j``), as in the official code, so it needs ``batch_size >= 2``.

The **self-distance loss** (§3.2) works one image at a time (``batch_size = 1``, the paper's
setting for CycleGAN's architecture): the distance is the one between the left half ``L(x)`` and
the right half ``R(x)`` of the same image,

.. math::

    \\mathcal{L}_{self}(G, \\hat p_A) = \\mathbb{E}_{x \\sim \\hat p_A}
        \\left| \\frac{\\|L(x) - R(x)\\|_1 - \\mu_A}{\\sigma_A} - \\frac{\\|L(G(x)) - R(G(x))\\|_1 - \\mu_B}{\\sigma_B} \\right|

with ``μ, σ`` now those of the half-to-half distances of each domain's training images. (The
official code splits into top and bottom halves; we follow the paper's text.)

The one-sided objective (§3.3, the full objective with every term of ``G_BA`` and the cycle
weighted 0) is ``λ_GAN · L_GAN(G, D_B) + λ_distance · L_distance`` (or ``L_self``):
``Config.lambda_gan``, ``Config.lambda_distance`` (the official default 1) and
``Config.distance_mode`` (``"pairs"`` or ``"self"``).

``‖·‖_1`` is computed, as in the official code, as the *mean* absolute difference per element.
After the normalisation this changes nothing (the distance and its ``μ, σ`` all scale by the number
of elements); it makes the raw distances of :func:`pair_distances` comparable across image sizes.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch

from .config import Config
from .losses import GANLoss
from .models import TranslationModel, set_requires_grad
from .networks import ResnetGenerator, add_spectral_norm, build_discriminator, init_weights, run_at_test_time
from .pool import ImagePool

# How many training images of each domain the normalisation statistics are measured on. 256 images
# give 32,640 pairs, which pins the mean and spread of the distances down to well under a percent;
# the official code uses up to 900 (its --max_items).
STAT_IMAGES = 256


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """``mean |x_i − x_j|`` for every pair ``i < j`` of the images ``x`` (N, C, H, W), as a flat
    (N(N−1)/2,) float32 tensor in the order (0, 1), (0, 2), …, (1, 2), …. One image against all later
    ones at a time, so memory stays at N images, not N² / 2 pairs."""
    flat = x.float().flatten(1)
    if len(flat) < 2:
        return flat.new_zeros(0)
    return torch.cat([(flat[i + 1:] - flat[i]).abs().mean(1) for i in range(len(flat) - 1)])


def half_distances(x: torch.Tensor) -> torch.Tensor:
    """``mean |L(x) − R(x)|`` for each image of ``x`` (N, C, H, W): the distance between its left and
    right halves (§3.2; the middle column of an odd width belongs to neither), float32 (N,)."""
    half = x.shape[-1] // 2
    left, right = x[..., :half].float(), x[..., x.shape[-1] - half:].float()
    return (left - right).abs().flatten(1).mean(1)


DISTANCES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"pairs": pairwise_distances,
                                                                 "self": half_distances}


class DistanceStats(NamedTuple):
    """The normalisation of the distance losses: mean and standard deviation of the distances
    between training images of A and of B (pairs of images, or halves of one image)."""
    mu_A: float
    sigma_A: float
    mu_B: float
    sigma_B: float


def distance_statistics(images_A: torch.Tensor, images_B: torch.Tensor, mode: str = "pairs") -> DistanceStats:
    """``μ`` and ``σ`` (the population standard deviation, as the official code) of the distances within
    ``images_A`` and within ``images_B``: every pair of images (``mode="pairs"``, §3.1) or the two
    halves of every image (``"self"``, §3.2)."""
    if mode not in DISTANCES:
        raise ValueError(f"distance_mode={mode!r}: choose one of {tuple(DISTANCES)}")
    stats = []
    for name, images in (("A", images_A), ("B", images_B)):
        if mode == "pairs" and len(images) < 2:
            raise ValueError(f"the distance statistics of domain {name} need at least 2 images, got {len(images)}")
        d = DISTANCES[mode](images)
        mu, sigma = float(d.mean()), float(d.std(correction=0))
        if not sigma > 0:
            raise ValueError(f"the training images of domain {name} all lie at the same distance ({mu:.4g}) "
                             f"{'from each other' if mode == 'pairs' else 'between their halves'}: DistanceGAN "
                             "normalises by the spread of these distances; give it varied images")
        stats += [mu, sigma]
    return DistanceStats(*stats)


def distance_loss(real: torch.Tensor, fake: torch.Tensor, stats: DistanceStats, mode: str = "pairs") -> torch.Tensor:
    """The distance loss (§3.1, ``mode="pairs"``) or the self-distance loss (§3.2, ``"self"``) of
    ``fake = G(real)``: the mean over pairs (or images) of
    ``|(d(real) − μ_A) / σ_A − (d(fake) − μ_B) / σ_B|``. A batch of one image has no pair: the
    pairwise loss is then 0 (no term that step)."""
    if mode == "pairs" and len(real) < 2:
        return fake.new_zeros((), dtype=torch.float32)
    distance = DISTANCES[mode]
    source = (distance(real) - stats.mu_A) / stats.sigma_A
    target = (distance(fake) - stats.mu_B) / stats.sigma_B
    return (source - target).abs().mean()


class DistanceGAN(TranslationModel):
    """One generator ``G: A → B`` (:class:`~cyclegan_edu.networks.ResnetGenerator`) and one PatchGAN
    ``D_B``, trained with ``λ_GAN · L_GAN(G, D_B) + λ_distance · L_distance`` (or ``L_self``): the
    one-sided DistanceGAN (see the module docstring). There is no ``F``, so it translates
    ``Config.direction`` only.

    The normalisation ``μ, σ`` comes from the training data: :meth:`measure_data` (the Trainer calls it
    before the first step of a new run) measures it on up to :data:`STAT_IMAGES` training items, and it
    is saved with the weights (``state_dict``) so a resumed or loaded model keeps it. ``step`` logs
    ``G_AB_gan``, ``distance`` (unweighted), ``distance_weighted``, ``G_total`` and ``D_B``.
    """

    one_way_name = "one-sided DistanceGAN"
    loss_weights = ("lambda_gan", "lambda_distance")

    def __init__(self, config: Config):
        super().__init__(config)
        c = config
        if c.distance_mode == "pairs" and c.batch_size < 2:
            raise ValueError(f"distance_mode='pairs' compares the images of a batch, so it needs batch_size >= 2 "
                             f"(got {c.batch_size}); use a larger batch_size or distance_mode='self' "
                             "(distances between the halves of each image, Benaim & Wolf §3.2)")
        self.G = init_weights(ResnetGenerator(c.input_nc, c.output_nc, c.ngf, c.n_blocks, c.norm, c.dropout,
                                              c.upsample), "normal", c.init_gain)
        self.D_B = init_weights(build_discriminator(c.netD, c.output_nc, c.ndf, c.n_layers_D, c.norm_D, c.image_size),
                                "normal", c.init_gain)
        if c.spectral_norm:
            add_spectral_norm(self.D_B)
        self.gan_loss = GANLoss(c.gan_mode)
        self.pools = {"fake_B": ImagePool(c.pool_size)}
        self.stats: DistanceStats | None = None

    def parameter_groups(self):
        return {"G": list(self.G.parameters()), "D": list(self.D_B.parameters())}

    def get_extra_state(self) -> dict:
        return {"distance_stats": None if self.stats is None else self.stats._asdict()}

    def set_extra_state(self, state: dict) -> None:
        saved = state["distance_stats"]
        self.stats = None if saved is None else DistanceStats(**saved)

    @torch.no_grad()
    def measure_data(self, dataset) -> None:
        """Set ``μ, σ`` of both domains from the first :data:`STAT_IMAGES` items of ``dataset`` (dicts
        with ``"A"`` and ``"B"`` images, as the training loader sees them: cropped and flipped)."""
        items = [dataset[i] for i in range(min(len(dataset), STAT_IMAGES))]
        images_A = torch.stack([item["A"] for item in items]).to(self.device)
        images_B = torch.stack([item["B"] for item in items]).to(self.device)
        self.stats = distance_statistics(images_A, images_B, self.config.distance_mode)

    def train_step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """One iteration in CycleGAN's order: G (D frozen), then D_B on the pooled fakes. The losses as
        tensors (:meth:`read_losses`: as floats, with the weighted distance term)."""
        if self.stats is None:
            raise ValueError("DistanceGAN needs the distance statistics of its training data before its first "
                             "step: call model.measure_data(dataset) (the Trainer does)")
        c = self.config
        real_A, real_B = self._prepare(real_A), self._prepare(real_B)
        opt_G, opt_D = self.optimizers["G"], self.optimizers["D"]
        G, D_B = self._nets("G", "D_B")
        losses: dict[str, torch.Tensor] = {}

        set_requires_grad((self.D_B,), False)
        opt_G.zero_grad(set_to_none=True)
        with self._autocast():
            fake_B = G(real_A)
            losses["G_AB_gan"] = self.gan_loss(D_B(fake_B), True)
            losses["distance"] = distance_loss(real_A, fake_B, self.stats, c.distance_mode)
            total = c.lambda_gan * losses["G_AB_gan"] + c.lambda_distance * losses["distance"]
        losses["G_total"] = total
        self._backward(total, opt_G)

        set_requires_grad((self.D_B,), True)
        opt_D.zero_grad(set_to_none=True)
        with self._autocast():
            losses["D_B"] = self._discriminator_loss(D_B, real_B, self.pools["fake_B"].query(fake_B))
        self._backward(losses["D_B"], opt_D)
        if self.scaler is not None:
            self.scaler.update()
        return {name: value.detach() for name, value in losses.items()}

    def read_losses(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        """Every loss as a float, and the distance term as weighted in ``G_total``."""
        logged = super().read_losses(losses)
        logged["distance_weighted"] = self.config.lambda_distance * logged["distance"]
        return logged

    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str | None = None, eval_mode: bool = True) -> torch.Tensor:
        """``G(x)`` without gradients; ``direction`` (default: the learned one) must be ``Config.direction``."""
        self.check_direction(direction)
        with self._autocast():
            out = run_at_test_time(self.G, self._prepare(x), eval_mode)
        return out.float()


class PairDistances(NamedTuple):
    """The distances of :func:`pair_distances`: one entry per pair ``i < j`` of the images."""
    source: np.ndarray        # mean |x_i − x_j|
    translated: np.ndarray    # mean |G(x_i) − G(x_j)|
    correlation: float        # Pearson's r between the two


@torch.no_grad()
def pair_distances(model, x: torch.Tensor, direction: str = "AtoB", batch_size: int = 50) -> PairDistances:
    """The motivating plot of DistanceGAN (the paper's Fig. 1): the distance ``|x_i − x_j|`` of every
    pair of images ``x`` (N, C, H, W) against the distance ``|G(x_i) − G(x_j)|`` of their translations,
    and the correlation between the two.

    ``model`` is a trained model (its ``translate(x, direction)`` gives ``G``) or any callable from a
    batch to its translation. Distances are mean absolute differences per element (see the module
    docstring). Translates ``batch_size`` images at a time.
    """
    if len(x) < 3:
        raise ValueError(f"pair_distances needs at least 3 images for a correlation, got {len(x)}")
    translate = (lambda t: model.translate(t, direction)) if hasattr(model, "translate") else model
    fake = torch.cat([translate(x[i:i + batch_size]).float().cpu() for i in range(0, len(x), batch_size)])
    source, translated = pairwise_distances(x.cpu()).numpy(), pairwise_distances(fake).numpy()
    return PairDistances(source, translated, float(np.corrcoef(source, translated)[0, 1]))
