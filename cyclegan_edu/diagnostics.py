"""Training dynamics, measured: what the discriminator says, whether it overpowers the generator, and
whether the generator collapsed (chapters 5 and 6).

GAN losses do not fall as a classifier's does, so a run's health is read from other numbers:

* :func:`discriminator_scores`, :func:`discriminator_heatmaps`: D's output map on real images and on
  translations, one score per patch (the PatchGAN's map, chapter 5);
* :class:`DScoreMonitor`: D's mean score on a fixed set every ``k`` steps, and :func:`oscillation`, how
  far it swings (the image pool's effect, Shrivastava et al. 2017);
* :func:`detect_d_overpowering`: a verdict from a run's loss history;
* :class:`ModeCollapseMonitor`: the diversity of the outputs relative to the inputs' own
  (:func:`~cyclegan_edu.metrics.output_diversity`, the book's one diversity measure), with a warning
  when it falls below :data:`COLLAPSE_THRESHOLD`;
* :func:`generator_gradients`: the gradient each GAN loss passes to G for a given D score (LSGAN,
  Mao et al. 2017, against the log loss).

The monitors are :class:`~cyclegan_edu.train.Trainer` callbacks: ``trainer.add_callback(monitor,
every=k)``. They translate and score without changing anything a training step uses (networks in eval
mode, no gradients, no random numbers), so a monitored run trains exactly as an unmonitored one. Each
writes its numbers into the step's history record (kept when the step is logged: choose ``every`` as a
multiple of ``log_every``) and keeps them in its own ``values``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .losses import GANLoss
from .metrics import output_diversity
from .models import CycleGAN
from .networks import run_at_test_time

# A generator whose outputs are less than a quarter as diverse as its inputs is reported as collapsed.
# Healthy CycleGAN runs on the shapes task at the ci scale measured 0.47-0.83 (2 seeds, both generators,
# every 50 of 300 steps, initialisation included); a generator that gives every input one output scores 0.
# A target domain that is less varied than the source by nature (photos → label maps) can score low
# without a collapse: the warning is a prompt to look at the samples, not a verdict. The live dashboard
# and the training film (chapter 7) use the same threshold.
COLLAPSE_THRESHOLD = 0.25

# D's loss (with the official factor 0.5) and G's adversarial loss when D outputs "1/2" everywhere, the
# balanced game: LSGAN 0.5·((½ − 1)² + ½²) = (½ − 1)² = 0.25; the log loss 0.5·2·log 2 = log 2.
EQUILIBRIUM_LOSS = {"lsgan": 0.25, "vanilla": math.log(2)}

# (discriminator loss, adversarial loss of the generator it judges) in a history: CycleGAN's two, pix2pix's one
GAN_PAIRS = (("D_B", "G_AB_gan"), ("D_A", "G_BA_gan"), ("D", "G_gan"))


class ModeCollapseWarning(UserWarning):
    """The outputs of a generator became much less diverse than its inputs (see :class:`ModeCollapseMonitor`)."""


def _judge_of(model, direction: str):
    """The discriminator that judges ``model.translate(x, direction)``'s outputs, and whether it judges
    (input, output) pairs (pix2pix's conditional D)."""
    if isinstance(model, CycleGAN):               # translate uses G_AB (judged by D_B) for the trained direction
        return (model.D_B if direction == model.config.direction else model.D_A), False
    return model.D, True


@torch.no_grad()
def score_map(model, images: torch.Tensor, direction: str = "AtoB", inputs: torch.Tensor | None = None) -> torch.Tensor:
    """The output maps (N, h, w) of the discriminator that judges ``direction`` translations, on ``images``
    (real images of the target domain, or translations): pix2pix's conditional D judges them beside their
    ``inputs``. Read as the loss reads them: LSGAN's raw score, the log loss's sigmoid. D runs in eval mode
    without gradients; nothing in the model changes."""
    D, conditional = _judge_of(model, direction)
    judged = model._prepare(images)
    if conditional:
        if inputs is None:
            raise ValueError("pix2pix's discriminator judges (input, output) pairs: pass the inputs too")
        judged = torch.cat([model._prepare(inputs), judged], 1)
    with model._autocast():
        scores = run_at_test_time(D, judged, eval_mode=True).float()[:, 0]
    return (torch.sigmoid(scores) if model.gan_loss.mode == "vanilla" else scores).cpu()


@torch.no_grad()
def discriminator_scores(model, source: torch.Tensor, target: torch.Tensor,
                         direction: str = "AtoB", eval_mode: bool = True) -> dict[str, torch.Tensor]:
    """The score maps (N, h, w) of the discriminator that judges the ``direction`` translations:
    ``"real"`` on the real images ``target``, ``"fake"`` on ``model.translate(source, direction)``, made
    in the generator's test-time mode ``eval_mode`` (:func:`~cyclegan_edu.networks.set_test_time_mode`).

    ``source`` and ``target`` are (N, C, H, W) images of the dataset's source and target domain of
    ``direction``, in [-1, 1], at the size the model trained at. For CycleGAN they need not correspond;
    pix2pix's D judges pairs, so there ``target`` must be the true counterparts of ``source``.

    Each cell is D's belief that one receptive-field-sized patch is real
    (:func:`~cyclegan_edu.networks.receptive_field`), read as its loss reads it: the raw score for LSGAN
    (trained towards 1 on real and 0 on fake patches), the sigmoid of the logit for the log loss. D runs in
    eval mode (with spectral normalisation, no power iteration; with batch norm, its running statistics), once
    on real and fake together; nothing in the model changes.
    """
    if source.dim() != 4 or target.dim() != 4 or len(source) != len(target):
        raise ValueError(f"discriminator_scores takes two (N, C, H, W) batches of the same length, "
                         f"got {tuple(source.shape)} and {tuple(target.shape)}")
    fake = model.translate(source, direction, eval_mode=eval_mode)
    scores = score_map(model, torch.cat([target.to(fake.device), fake]), direction, torch.cat([source, source]))
    return {"real": scores[:len(target)], "fake": scores[len(target):]}


def discriminator_heatmaps(model, source_image: torch.Tensor, target_image: torch.Tensor,
                           direction: str = "AtoB") -> dict[str, np.ndarray]:
    """D's output map for one image, as (h, w) arrays to draw as heat-maps: ``"real"`` for the real
    ``target_image``, ``"fake"`` for the translation of ``source_image`` (both (C, H, W); see
    :func:`discriminator_scores` for how the cells read). Each cell scores a patch of
    :func:`~cyclegan_edu.networks.receptive_field` pixels; the patches are spread evenly over the image,
    so a map stretched over it (``imshow(..., extent=...)``) puts each cell roughly over the centre of
    its patch and shows which parts D finds real."""
    if source_image.dim() != 3 or target_image.dim() != 3:
        raise ValueError(f"discriminator_heatmaps takes one (C, H, W) image each, "
                         f"got {tuple(source_image.shape)} and {tuple(target_image.shape)}")
    maps = discriminator_scores(model, source_image[None], target_image[None], direction)
    return {name: scores[0].numpy() for name, scores in maps.items()}


def oscillation(values: Sequence[float]) -> float:
    """How far a series swings around its trend: the variance of its residuals from the least-squares
    line through it (equally spaced points). A steady drift (D getting better) adds nothing; step-to-step
    swings of D's score (a D chasing the latest generator, what the image pool damps) do."""
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 1 or len(y) < 3:
        raise ValueError(f"oscillation needs a series of at least 3 values, got {len(y)}")
    x = np.arange(len(y), dtype=np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    return float(np.mean((y - (slope * x + intercept)) ** 2))


class DScoreMonitor:
    """A Trainer callback that records D's mean score on fixed real images (``target``) and on the
    translations of fixed inputs (``source``), as ``D_real_<direction>`` and ``D_fake_<direction>`` in
    the history record (see :func:`discriminator_scores`).

    >>> monitor = DScoreMonitor(test_A[:16], test_B[:16])            # doctest: +SKIP
    >>> trainer.add_callback(monitor, every=10); trainer.fit()      # doctest: +SKIP
    >>> monitor.oscillation()                                       # doctest: +SKIP
    """

    def __init__(self, source: torch.Tensor, target: torch.Tensor, direction: str = "AtoB"):
        self.source, self.target, self.direction = source, target, direction
        self.keys = {"real": f"D_real_{direction}", "fake": f"D_fake_{direction}"}
        self.values: list[dict] = []        # {"step", "real", "fake"} per call

    def __call__(self, trainer, record: dict) -> None:
        scores = discriminator_scores(trainer.model, self.source, self.target, self.direction)
        means = {name: float(maps.mean()) for name, maps in scores.items()}
        self.values.append({"step": trainer.step, **means})
        record.update({self.keys[name]: value for name, value in means.items()})

    def oscillation(self, since_step: int = 0) -> dict[str, float]:
        """:func:`oscillation` of the recorded mean scores on real and on fake images, from ``since_step`` on."""
        kept = [v for v in self.values if v["step"] >= since_step]
        return {name: oscillation([v[name] for v in kept]) for name in ("real", "fake")}


class ModeCollapseMonitor:
    """A Trainer callback that detects mode collapse: every call it translates the fixed inputs, records
    ``output_diversity(outputs) / output_diversity(inputs)`` as ``diversity_ratio_<direction>`` in the
    history record, and warns once, with a :class:`ModeCollapseWarning`, the first time the ratio falls
    below ``threshold`` (:data:`COLLAPSE_THRESHOLD`, a quarter).

    The inputs play the role of DCGAN's noise vector z: a generator that maps many different inputs to one
    output has collapsed, whatever the output looks like. The ratio is about 1 when the outputs differ as
    much as the inputs (at the scale of 4×4 blocks: :func:`~cyclegan_edu.metrics.output_diversity`) and 0
    when every input gets the same output. A translation may legitimately make images more alike (a target
    domain with less variety): compare with the ratio of the real images of both domains before reading a
    low value as collapse. ``warned_at`` is the step of the warning (None before it); later calls keep
    recording without warning again.

    >>> monitor = ModeCollapseMonitor(test_A[:16])                    # doctest: +SKIP
    >>> trainer.add_callback(monitor, every=25); trainer.fit()       # doctest: +SKIP
    """

    def __init__(self, inputs: torch.Tensor, direction: str = "AtoB", threshold: float = COLLAPSE_THRESHOLD):
        self.input_diversity = output_diversity(inputs)
        if self.input_diversity == 0:
            raise ValueError("ModeCollapseMonitor needs inputs that differ from each other: these are all the same")
        if not 0 < threshold < 1:
            raise ValueError(f"threshold={threshold}: give a fraction of the inputs' diversity between 0 and 1")
        self.inputs, self.direction, self.threshold = inputs, direction, threshold
        self.key = f"diversity_ratio_{direction}"
        self.values: list[tuple[int, float]] = []       # (step, ratio) per call
        self.warned_at: int | None = None

    def __call__(self, trainer, record: dict) -> None:
        ratio = output_diversity(trainer.model.translate(self.inputs, self.direction)) / self.input_diversity
        self.values.append((trainer.step, ratio))
        record[self.key] = ratio
        if ratio < self.threshold and self.warned_at is None:
            self.warned_at = trainer.step
            warnings.warn(f"step {trainer.step}: the {self.direction} outputs are {ratio:.2f} times as diverse as "
                          f"their inputs (below {self.threshold}): the generator may have collapsed to a few "
                          "outputs (mode collapse); look at the translations of different inputs",
                          ModeCollapseWarning, stacklevel=2)


@dataclass(frozen=True)
class OverpoweringVerdict:
    """What :func:`detect_d_overpowering` found; ``str(verdict)`` is its message. When ``overpowered``,
    ``step`` ends the first window where the rule held, and ``d_loss``/``g_loss`` are that window's means."""

    overpowered: bool
    message: str
    step: int | None = None
    discriminator: str | None = None
    generator: str | None = None
    d_loss: float | None = None
    g_loss: float | None = None

    def __str__(self) -> str:
        return self.message


def detect_d_overpowering(history: Sequence[dict], gan_mode: str = "lsgan", window: int = 50,
                          d_fraction: float = 0.2, g_factor: float = 2.0) -> OverpoweringVerdict:
    """Read from a run's loss history whether a discriminator overpowered its generator.

    The rule, for each discriminator and the generator it judges (CycleGAN: ``D_B`` with ``G_AB_gan``,
    ``D_A`` with ``G_BA_gan``; pix2pix: ``D`` with ``G_gan``): over ``window`` consecutive logged records,
    D's loss averages below ``d_fraction`` times its value in the balanced game (:data:`EQUILIBRIUM_LOSS`:
    0.25 for LSGAN, log 2 for the log loss; with the defaults 0.05 and 0.139), so D tells real from fake
    almost always, **and** G's adversarial loss averages above ``g_factor`` times its balanced value (0.5
    and 1.39): it has risen from where a balanced game keeps it and stays there, so G is losing. A run
    where D is merely good (its loss low for a few steps) or G merely struggles is not flagged; both for a
    sustained window is. The remedies: a lower learning rate or capacity for D (``ndf``, ``n_layers_D``),
    spectral normalisation (``spectral_norm=True``), the image pool.
    """
    if gan_mode not in EQUILIBRIUM_LOSS:
        raise ValueError(f"gan_mode={gan_mode!r}: choose one of {sorted(EQUILIBRIUM_LOSS)}")
    if window < 1:
        raise ValueError(f"window={window}: must be at least 1")
    balanced = EQUILIBRIUM_LOSS[gan_mode]
    d_limit, g_limit = d_fraction * balanced, g_factor * balanced
    pairs = [(d, g) for d, g in GAN_PAIRS if any(d in r and g in r for r in history)]
    if not pairs:
        raise ValueError(f"the history holds no discriminator and generator losses (looked for {GAN_PAIRS})")
    longest = 0
    for d_key, g_key in pairs:
        records = [r for r in history if d_key in r and g_key in r]
        longest = max(longest, len(records))
        if len(records) < window:
            continue
        d_means = np.convolve([r[d_key] for r in records], np.ones(window) / window, mode="valid")
        g_means = np.convolve([r[g_key] for r in records], np.ones(window) / window, mode="valid")
        hits = np.flatnonzero((d_means < d_limit) & (g_means > g_limit))
        if len(hits):
            i = int(hits[0])
            step = records[i + window - 1].get("step", i + window)
            return OverpoweringVerdict(
                True, f"{d_key} overpowers its generator from step {step}: over the {window} logged steps up to it, "
                      f"{d_key}'s loss averaged {d_means[i]:.3f} (below {d_limit:.3f}: it tells real from fake almost "
                      f"always) while {g_key} averaged {g_means[i]:.3f} (above {g_limit:.3f}: the generator is "
                      "losing). Lower D's learning rate or capacity, or use spectral_norm=True",
                step, d_key, g_key, float(d_means[i]), float(g_means[i]))
    if longest < window:
        return OverpoweringVerdict(False, f"cannot tell: the history has {longest} logged steps, the rule "
                                          f"needs a window of {window}")
    names = " and ".join(d for d, _ in pairs)
    return OverpoweringVerdict(False, f"no sign of D overpowering G: in no window of {window} logged steps was "
                                      f"{names}'s loss below {d_limit:.3f} while the generator's adversarial "
                                      f"loss was above {g_limit:.3f}")


def generator_gradients(scores: Sequence[float]) -> dict[str, list[float]]:
    """The size of the gradient each adversarial loss passes back to G, ``|∂L_G/∂s|``, for each raw
    discriminator score ``s`` given to a generated image (everything G learns from D flows through it).

    * ``"lsgan"``: ``(s − 1)²`` (the paper's, Mao et al. 2017): ``2|s − 1|``, growing with the distance
      from "real", so a fake that D scores as confidently fake (``s`` near 0 or below) still gets a
      strong push;
    * ``"vanilla"``: ``−log σ(s)`` (the package's log loss, the non-saturating form the official code
      uses): ``1 − σ(s)``, about 1 while D rejects the fake, but vanishing for a fake D already calls real
      (``s`` ≫ 0) however far it is from the real images: Mao et al.'s reason for least squares;
    * ``"minimax"``: ``log(1 − σ(s))`` (Eq. 1 as written, the generator minimising it): ``σ(s)``, which
      vanishes exactly when a confident D rejects the fakes (``s`` ≪ 0), early in training (Goodfellow
      et al. 2014, why the non-saturating form is used).

    The first two are computed by autograd through :class:`~cyclegan_edu.losses.GANLoss`, so they are the
    gradients training uses (per score; GANLoss averages over a map's cells).
    """
    s = torch.tensor([float(v) for v in scores], dtype=torch.float64, requires_grad=True)
    gradients = {}
    for mode in ("lsgan", "vanilla"):
        (grad,) = torch.autograd.grad(GANLoss(mode)(s, True) * len(s), s)
        gradients[mode] = grad.abs().tolist()
    (grad,) = torch.autograd.grad(-torch.nn.functional.softplus(s).sum(), s)     # log(1 − σ(s)) = −softplus(s)
    gradients["minimax"] = grad.abs().tolist()
    return gradients
