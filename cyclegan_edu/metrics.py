"""Numbers for translations: errors against a ground truth, the paper's segmentation scores, and
what a generator does to its inputs.

Images are (N, 3, H, W) float tensors in [-1, 1], the generators' tanh range. The paper scores its
results with perceptual studies and with segmentation scores (§5.1.1: per-pixel accuracy, per-class
accuracy and class IoU, of an FCN run on generated photos in Tables 2 and 4, of the photo→labels
outputs themselves in Tables 3 and 5). Our procedural domains have the exact right answer for every
test image, so we can also measure plain distances to it:

* :func:`l1`, :func:`psnr`, :func:`ssim`: distance to the ground truth;
* :func:`mask_iou`, :func:`segmentation_scores`: geometry kept (object masks, label maps);
* :func:`success_rate`: the share of outputs a classifier judges to be of the target class;
* :func:`cycle_error`, :func:`output_diversity`, :func:`color_drift`: what the losses do: cycle
  consistency (Eq. 2), mode collapse (the problem the cycle loss addresses, §1 and §3.2), hue
  changes (the identity loss, §5.2);
* :func:`checkerboard_energy`, :func:`detail_energy`: the checkerboard artifacts of transposed
  convolutions and the detail finer than a few pixels (sharpness), against the truth's (chapter 5);
* :func:`region_change`, :func:`detail_energy` with a ``mask``: what a translation does inside one region
  (the distractor task's rock, chapter 8);
* :func:`frechet_distance`: the distance between two Gaussians fitted to features (the idea of FID);
* :func:`score_against_truth`: all the ground-truth numbers for a model on a task folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import list_images, load_folder


def _check_pair(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if x.shape != y.shape:
        raise ValueError(f"{what} needs two batches of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{what} takes (N, 3, H, W) images in [-1, 1], got shape {tuple(x.shape)}")


def _unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] → [0, 1], as float64 on the CPU (the scores should not depend on the device)."""
    return (x.detach().cpu().double() + 1) / 2


def l1(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean absolute difference per pixel and channel, in [-1, 1] units (0 = identical, 2 = black
    against white; multiply by 127.5 for 8-bit grey levels). The distance of the cycle loss, Eq. 2."""
    _check_pair(x, y, "l1")
    return float((x.detach().cpu().double() - y.detach().cpu().double()).abs().mean())


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB on [0, 1] images: ``10·log10(1 / MSE)`` per image, then the
    mean over images. Higher is better; identical images are capped at 100 dB (MSE floored at 1e-10)."""
    _check_pair(x, y, "psnr")
    mse = ((_unit(x) - _unit(y)) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1 / mse)).mean())


def ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """Structural similarity (Wang et al. 2004) on [0, 1] images: local means, variances and covariance
    under an 11×11 Gaussian window (σ = 1.5, no padding), constants C1 = 0.01², C2 = 0.03², averaged over
    positions, channels and images. 1 = identical; needs images of at least 11×11 pixels."""
    _check_pair(x, y, "ssim")
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"ssim needs images of at least 11×11 pixels (its window), got {tuple(x.shape[-2:])}")
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5 ** 2))
    g = g / g.sum()

    def blur(z: torch.Tensor) -> torch.Tensor:   # the 2-D Gaussian is separable: rows, then columns
        return (z.unfold(-1, 11, 1) @ g).unfold(-2, 11, 1) @ g
    a, b = _unit(x), _unit(y)
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    score = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return float(score.mean())


def mask_iou(pred_mask: torch.Tensor, gt_mask: torch.Tensor) -> float:
    """Intersection over union of boolean masks (N, H, W), per image, averaged over images. An image
    where both masks are empty counts as 1 (they agree)."""
    if pred_mask.shape != gt_mask.shape:
        raise ValueError(f"mask_iou needs masks of the same shape, "
                         f"got {tuple(pred_mask.shape)} and {tuple(gt_mask.shape)}")
    if pred_mask.dim() < 2:
        raise ValueError(f"mask_iou takes (N, H, W) or (H, W) masks, got shape {tuple(pred_mask.shape)}")
    p, g = pred_mask.bool().cpu(), gt_mask.bool().cpu()
    if p.dim() == 2:
        p, g = p[None], g[None]
    inter = (p & g).flatten(1).sum(1).double()
    union = (p | g).flatten(1).sum(1).double()
    return float(torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).mean())


def segmentation_scores(pred: torch.Tensor, gt: torch.Tensor, n_classes: int) -> dict[str, float]:
    """The three score columns of the paper's Tables 2–5 (§5.1.1) from label maps (N, H, W) of class indices.

    One confusion matrix over all pixels of all images, then
    ``pixel_acc`` = correct pixels / all pixels;
    ``class_acc`` = mean over classes of (correct pixels of the class / pixels of the class in gt);
    ``class_iou`` = mean over classes of |pred ∩ gt| / |pred ∪ gt|;
    the class means run over the classes present in ``gt`` (as the Cityscapes evaluation).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"segmentation_scores needs label maps of the same shape, "
                         f"got {tuple(pred.shape)} and {tuple(gt.shape)}")
    pred, gt = pred.long().cpu().flatten(), gt.long().cpu().flatten()
    for name, labels in (("pred", pred), ("gt", gt)):
        if labels.numel() and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"{name} holds class {int(labels.min())}..{int(labels.max())}, outside 0..{n_classes - 1} "
                             f"(n_classes={n_classes})")
    if gt.numel() == 0:
        raise ValueError("segmentation_scores got empty label maps")
    confusion = torch.bincount(gt * n_classes + pred, minlength=n_classes ** 2).reshape(n_classes, n_classes).double()
    correct, in_gt, in_pred = confusion.diag(), confusion.sum(1), confusion.sum(0)
    present = in_gt > 0
    return {"pixel_acc": float(correct.sum() / confusion.sum()),
            "class_acc": float((correct[present] / in_gt[present]).mean()),
            "class_iou": float((correct[present] / (in_gt + in_pred - correct)[present]).mean())}


def success_rate(pred_classes: torch.Tensor, target: int | torch.Tensor) -> float:
    """The share of predictions equal to ``target`` (one class index, or one per prediction): e.g. the
    share of translated sneakers a judge calls "ankle boot"."""
    pred_classes = torch.as_tensor(pred_classes).cpu()
    if pred_classes.numel() == 0:
        raise ValueError("success_rate got no predictions")
    target = torch.as_tensor(target).cpu()
    if target.dim() and target.shape != pred_classes.shape:
        raise ValueError(f"target holds {tuple(target.shape)} classes for {tuple(pred_classes.shape)} predictions")
    return float((pred_classes == target).double().mean())


def _translate(model, x: torch.Tensor, direction: str, batch_size: int = 64) -> torch.Tensor:
    """``model.translate`` over a batch in chunks, the result back on the CPU."""
    return torch.cat([model.translate(x[i:i + batch_size], direction).cpu() for i in range(0, len(x), batch_size)])


def cycle_error(model, x: torch.Tensor, direction: str = "AtoB") -> float:
    """The cycle-consistency error of Eq. 2 measured on images ``x``: ``l1(x, F(G(x)))`` for "AtoB"
    (x from A), ``l1(x, G(F(x)))`` for "BtoA", in [-1, 1] units."""
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction={direction!r}: choose 'AtoB' or 'BtoA'")
    back = "BtoA" if direction == "AtoB" else "AtoB"
    return l1(x, _translate(model, _translate(model, x, direction), back))


def output_diversity(images: torch.Tensor, block: int = 4) -> float:
    """Mean L1 distance ([-1, 1] units) over all pairs of outputs made from different inputs, measured
    on ``block``×``block`` block means (the book's one diversity measure, chapter 0).

    A generator that has collapsed to one output (mode collapse, §1 and §3.2) scores about 0; compare with
    the diversity of the real images of the target domain. The block means matter: per-pixel noise (the
    speckle of a briefly trained generator) differs in every output even when the content is the same, and
    per pixel it would rate near-identical outputs as diverse. ``block=1`` gives the per-pixel version.
    """
    if images.dim() != 4 or len(images) < 2:
        raise ValueError(f"output_diversity takes (N, C, H, W) outputs with N >= 2, got shape {tuple(images.shape)}")
    if block < 1 or images.shape[-1] % block or images.shape[-2] % block:
        raise ValueError(f"block={block}: must be at least 1 and divide the image size {tuple(images.shape[-2:])}")
    images = images.detach().cpu().double()
    if block > 1:
        images = torch.nn.functional.avg_pool2d(images, block)
    flat = images.flatten(1)
    distances = torch.cdist(flat, flat, p=1) / flat.shape[1]
    n = len(flat)
    return float(distances.sum() / (n * (n - 1)))


def input_change(outputs: torch.Tensor, inputs: torch.Tensor, block: int = 4) -> float:
    """How far a translation moves its inputs: the mean L1 distance ([-1, 1] units) between each output
    and its own input on ``block``×``block`` block means, so that pixel noise does not count as change.
    Compare it with the change the true translation makes: a *conservative* generator (the identity
    loss's price, §5.2) changes its inputs less than the truth does. Chapter 4."""
    _check_pair(outputs, inputs, "input_change")
    return l1(torch.nn.functional.avg_pool2d(outputs.detach().cpu().float(), block),
              torch.nn.functional.avg_pool2d(inputs.detach().cpu().float(), block))


def _hue_and_chroma(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pixel's hue (radians) and chroma on the colour wheel of the opponent plane (see color_drift)."""
    rgb = _unit(images)
    u = rgb[:, 0] - (rgb[:, 1] + rgb[:, 2]) / 2
    v = (3 ** 0.5 / 2) * (rgb[:, 1] - rgb[:, 2])
    return torch.atan2(v, u), torch.hypot(u, v)


def hue_histogram(images: torch.Tensor, bins: int = 36) -> torch.Tensor:
    """The distribution of hues of a set of images: ``bins`` equal sectors of the colour wheel, starting at
    red (0°), each pixel weighted by its chroma (greys do not count), summing to 1. Two sets with the same
    colours have the same histogram; a rotation of every hue by a multiple of 360°/``bins`` shifts it.
    Chapter 4 compares the hues of domain Y with those of T(Y)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"hue_histogram takes (N, 3, H, W) images in [-1, 1], got shape {tuple(images.shape)}")
    hue, chroma = _hue_and_chroma(images)
    index = ((hue % (2 * torch.pi)) / (2 * torch.pi) * bins).long().clamp(max=bins - 1)
    counts = torch.zeros(bins, dtype=torch.float64).index_add_(0, index.flatten(), chroma.flatten())
    if counts.sum() == 0:
        raise ValueError("hue_histogram: no pixel has any colour (all grey)")
    return counts / counts.sum()


def checkerboard_energy(images: torch.Tensor, period: int = 4) -> float:
    """The share of an image's variation that repeats exactly every ``period`` pixels: the checkerboard
    artifacts of transposed convolutions (Odena, Dumoulin and Olah 2016, "Deconvolution and Checkerboard
    Artifacts"). Chapter 5.

    A stride-2 transposed convolution whose kernel size is not a multiple of 2 (the paper's ``u128``, ``u64``:
    3×3, stride 2) overlaps unevenly, so some output pixels get more kernel taps than their neighbours: a
    pattern with period 2, and with period 4 after the second such layer. In the 2-D Fourier spectrum this is
    energy at the stride frequencies, the multiples of ``H/period`` down and ``W/period`` across. The score is
    that energy over all the energy except the mean (DC), per image and summed over channels, then averaged
    over images. It is computed without a transform: the pattern with period ``p`` is the mean ``p``×``p``
    tile of the image (the average of all its ``p``×``p`` blocks) repeated, and by Parseval its energy per
    pixel is the mean square of that tile (after removing each channel's mean) — exactly the spectral energy
    at those frequencies.

    ``period=4`` (default: the ResNet generator's two upsamplings) includes the period-2 components. A pure
    checkerboard scores 1, a smooth ramp nearly 0 (``(p² − 1)/(S² − 1)`` for a linear ramp over ``S`` pixels:
    0.015 at 32 px), white noise about ``p²/(H·W)``, a flat image 0. Compare an output's score with the
    score of the true image, which has some energy at those frequencies too. Images are (N, C, H, W);
    ``H`` and ``W`` must be multiples of ``period``.
    """
    if images.dim() != 4:
        raise ValueError(f"checkerboard_energy takes (N, C, H, W) images, got shape {tuple(images.shape)}")
    if period < 2 or images.shape[-2] % period or images.shape[-1] % period:
        raise ValueError(f"period={period}: must be at least 2 and divide the image size {tuple(images.shape[-2:])}")
    x = images.detach().cpu().double()
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    tile = x.unflatten(-1, (-1, period)).unflatten(-3, (-1, period)).mean(dim=(-4, -2))   # (N, C, p, p)
    periodic = (tile ** 2).flatten(1).sum(1) / period ** 2
    total = (x ** 2).flatten(1).sum(1) / (x.shape[-2] * x.shape[-1])
    return float(torch.where(total > 0, periodic / total.clamp_min(1e-300), torch.zeros_like(total)).mean())


def detail_energy(images: torch.Tensor, block: int = 4, mask: torch.Tensor | None = None) -> float:
    """The energy of the detail finer than ``block`` pixels: the mean square ([-1, 1] units) of each image
    minus its ``block``×``block`` block means, averaged over images. Texture, edges and speckle count; a
    flat or smoothly shaded region does not. Its ratio to the true images' (``sharpness`` in
    :func:`cyclegan_edu.evaluation.evaluate`) says whether outputs are as detailed as the truth (1),
    blurrier (below) or noisier (above): the sharpness that a PatchGAN buys over an L1 loss alone (Isola et
    al. 2017, §3.1.2; chapter 5). A pattern constant on every block (stripes exactly ``block`` pixels wide
    on the block grid) has none. Images are (N, C, H, W) with sides that ``block`` divides.

    With a ``mask`` ((N, H, W) bool) the same measure inside a region: the mean over the pixels of the
    blocks that lie wholly inside it (every image's, every channel), so that the region's outline against
    its surroundings does not count; NaN when no block does. Chapter 8 asks whether the distractor task's
    rock is striped like the zebras: at 64 px each rock holds 2 to 9 whole 4×4 blocks (87 pixels on
    average), and the plain rock's energy is about 1% of the zebras' while a rock painted with zebra stripes
    (period 7 to 10 px, any tilt) has 67% to 114% of it."""
    if images.dim() != 4:
        raise ValueError(f"detail_energy takes (N, C, H, W) images, got shape {tuple(images.shape)}")
    if block < 2 or images.shape[-2] % block or images.shape[-1] % block:
        raise ValueError(f"block={block}: must be at least 2 and divide the image size {tuple(images.shape[-2:])}")
    x = images.detach().cpu().double()
    means = torch.nn.functional.avg_pool2d(x, block)
    smooth = means.repeat_interleave(block, -2).repeat_interleave(block, -1)
    energy = (x - smooth) ** 2
    if mask is None:
        return float(energy.mean())
    mask = _check_region(images, mask, "detail_energy")
    inside = torch.nn.functional.avg_pool2d(mask[:, None].double(), block)[:, 0] == 1     # all of the block
    counted = inside.repeat_interleave(block, -2).repeat_interleave(block, -1)
    return float(energy.mean(1)[counted].mean()) if counted.any() else float("nan")


def _check_region(images: torch.Tensor, mask: torch.Tensor, what: str) -> torch.Tensor:
    if images.dim() != 4 or mask.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"{what} takes (N, C, H, W) images and an (N, H, W) mask, got shapes "
                         f"{tuple(images.shape)} and {tuple(mask.shape)}")
    return mask.detach().cpu().bool()


def region_change(outputs: torch.Tensor, inputs: torch.Tensor, mask: torch.Tensor) -> float:
    """How far a translation moves its inputs inside a region: the mean absolute difference ([-1, 1]
    units, over the region's pixels of every image and the channels) where ``mask`` ((N, H, W) bool) is
    True. The distractor task's rock, which the true translation leaves exactly as it is (chapter 8).
    NaN when the region is empty."""
    _check_pair(outputs, inputs, "region_change")
    mask = _check_region(outputs, mask, "region_change")
    difference = (outputs.detach().cpu().double() - inputs.detach().cpu().double()).abs().mean(1)
    return float(difference[mask].mean()) if mask.any() else float("nan")


def distance_correlation(inputs: torch.Tensor, outputs: torch.Tensor) -> float:
    """Pearson's correlation between the distances of every pair of inputs, ``mean |x_i − x_j|``, and the
    distances of their outputs, ``mean |G(x_i) − G(x_j)|``: DistanceGAN's observation (Benaim and Wolf
    2017, Fig. 1) that a good translation keeps which images are close to which. 1: the outputs' distances
    are an increasing linear function of the inputs'; 0: unrelated (a collapsed or shuffling generator).
    Chapter 9."""
    from .distancegan import pairwise_distances
    if len(inputs) != len(outputs) or len(inputs) < 3:
        raise ValueError(f"distance_correlation needs the same number (at least 3) of inputs and outputs, "
                         f"got {len(inputs)} and {len(outputs)}")
    a = pairwise_distances(inputs.detach().cpu().float()).double()
    b = pairwise_distances(outputs.detach().cpu().float()).double()
    a, b = a - a.mean(), b - b.mean()
    denominator = float(a.norm() * b.norm())
    return float((a * b).sum()) / denominator if denominator > 0 else 0.0


def color_drift(x: torch.Tensor, gt: torch.Tensor) -> float:
    """How far the colours turned, in degrees on the colour wheel (0–180).

    Each pixel's hue is its angle in the opponent plane ``(R − (G + B)/2, √3/2·(G − B))`` and its
    chroma the length there (0 for greys). The score is the angle between the hues of ``x`` and
    ``gt``, averaged over all pixels with weight chroma(x)·chroma(gt), so pixels without colour do
    not count. The right colours score about 0, darker or brighter ones too; rotating every hue
    (the day→sunset drift of §5.2 that the identity loss prevents; RGB → BRG is exactly 120°) scores
    the rotation. NaN when no pixel has colour in both.
    """
    _check_pair(x, gt, "color_drift")
    (hue_x, chroma_x), (hue_gt, chroma_gt) = _hue_and_chroma(x), _hue_and_chroma(gt)
    turn = (hue_x - hue_gt).abs()
    turn = torch.minimum(turn, 2 * torch.pi - turn)
    weight = chroma_x * chroma_gt
    if weight.sum() == 0:
        return float("nan")
    return float(torch.rad2deg((weight * turn).sum() / weight.sum()))


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D):
    ``|μa − μb|² + tr(Σa + Σb − 2 (Σa Σb)^½)``. With Inception features this is FID (Heusel et al.
    2017); with a small judge's features it is a cheap stand-in that needs no download."""
    if feats_a.dim() != 2 or feats_b.dim() != 2 or feats_a.shape[1] != feats_b.shape[1]:
        raise ValueError(f"frechet_distance takes two (N, D) feature sets with the same D, "
                         f"got {tuple(feats_a.shape)} and {tuple(feats_b.shape)}")
    if len(feats_a) < 2 or len(feats_b) < 2:
        raise ValueError("frechet_distance needs at least two feature vectors per set (for a covariance)")
    a, b = feats_a.detach().cpu().double(), feats_b.detach().cpu().double()
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)

    def sqrt_psd(m: torch.Tensor) -> torch.Tensor:
        values, vectors = torch.linalg.eigh(m)
        return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    root_a = sqrt_psd(cov_a)
    # tr((Σa Σb)^½) = tr((Σa^½ Σb Σa^½)^½), a symmetric matrix whose eigenvalues are real
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


def kernel_inception_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): the unbiased squared MMD between two feature sets (N, D) under the
    cubic polynomial kernel ``k(a, b) = (a·b / D + 1)³``, and its standard error. Chapter 3.

    Unlike the Fréchet distance, whose estimate from 100 images is biased upwards by an amount that depends
    on the sample (it fits a D×D covariance to N < D points), this estimator is unbiased at any N ≥ 2: two
    samples of one distribution score about 0 (and can score below 0). The standard error is the two-sample
    delete-one jackknife, so a difference between two models counts only when it exceeds a few of them.
    With Inception features this is the published KID; with a small judge's features the numbers are
    relative (which model is closer to the real images in what that judge sees), not comparable to papers.
    """
    if feats_a.dim() != 2 or feats_b.dim() != 2 or feats_a.shape[1] != feats_b.shape[1]:
        raise ValueError(f"kernel_inception_distance takes two (N, D) feature sets with the same D, "
                         f"got {tuple(feats_a.shape)} and {tuple(feats_b.shape)}")
    m, n = len(feats_a), len(feats_b)
    if m < 3 or n < 3:
        raise ValueError("kernel_inception_distance needs at least three feature vectors per set")
    a, b = feats_a.detach().cpu().double(), feats_b.detach().cpu().double()
    dim = a.shape[1]
    k_aa = (a @ a.T / dim + 1) ** 3
    k_bb = (b @ b.T / dim + 1) ** 3
    k_ab = (a @ b.T / dim + 1) ** 3
    row_aa = k_aa.sum(1) - k_aa.diagonal()          # Σ_{j≠i} k(a_i, a_j)
    row_bb = k_bb.sum(1) - k_bb.diagonal()
    s_aa, s_bb, s_ab = row_aa.sum(), row_bb.sum(), k_ab.sum()

    def mmd(s_aa, s_bb, s_ab, m, n):
        return s_aa / (m * (m - 1)) + s_bb / (n * (n - 1)) - 2 * s_ab / (m * n)

    estimate = mmd(s_aa, s_bb, s_ab, m, n)
    # the estimate without a_i (for every i), then without b_j: each sum loses that point's terms
    without_a = mmd(s_aa - 2 * row_aa, s_bb, s_ab - k_ab.sum(1), m - 1, n)
    without_b = mmd(s_aa, s_bb - 2 * row_bb, s_ab - k_ab.sum(0), m, n - 1)
    variance = ((m - 1) / m * ((without_a - without_a.mean()) ** 2).sum()
                + (n - 1) / n * ((without_b - without_b.mean()) ** 2).sum())
    return float(estimate), float(variance.sqrt())


def _load_maps(folder: Path, size: int, limit: int | None) -> torch.Tensor:
    """Single-channel truth maps (masks, class indices) as (N, S, S) long, resized with nearest
    neighbours so that no value is invented."""
    maps = []
    for path in list_images(folder)[:limit]:
        with Image.open(path) as img:
            maps.append(np.asarray(img.convert("L").resize((size, size), Image.NEAREST)))
    return torch.from_numpy(np.stack(maps)).long()


def score_against_truth(model, task_folder: str | os.PathLike, direction: str = "AtoB", size: int = 32,
                        limit: int | None = None) -> dict[str, float]:
    """Translate the test images of a procedural (or emoji) task and compare with their ground truth.

    "AtoB" translates ``testA`` and compares with ``testA_gt``; "BtoA" does ``testB`` against
    ``testB_gt``. Returns ``l1``, ``psnr``, ``ssim`` and ``color_drift``, plus ``mask_iou`` where the
    folder has object masks (shapes: :func:`cyclegan_edu.domains.procedural.object_mask` of the
    outputs against ``test{A,B}_mask``), plus ``pixel_acc``, ``class_acc`` and ``class_iou`` when
    translating scenes into label maps (labels, "BtoA": nearest palette colour of each output pixel
    against ``testB_labels``, the photo→labels scores of Table 3).
    """
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction={direction!r}: choose 'AtoB' or 'BtoA'")
    folder = Path(task_folder)
    source, target = direction[0], direction[-1]
    inputs_dir, truth_dir = folder / f"test{source}", folder / f"test{source}_gt"
    if not truth_dir.is_dir():
        raise FileNotFoundError(f"{truth_dir} does not exist: score_against_truth needs a task with ground truth "
                                "(procedural tasks, emoji); see python -m cyclegan_edu toy --list")
    names_in = [p.name for p in list_images(inputs_dir)[:limit]]
    names_gt = [p.name for p in list_images(truth_dir)[:limit]]
    if names_in != names_gt:
        raise ValueError(f"{inputs_dir} and {truth_dir} hold different files; rebuild the task folder")
    x, gt = load_folder(inputs_dir, size, limit), load_folder(truth_dir, size, limit)
    fake = _translate(model, x, direction)
    scores = {"l1": l1(fake, gt), "psnr": psnr(fake, gt), "ssim": ssim(fake, gt), "color_drift": color_drift(fake, gt)}
    masks = folder / f"test{source}_mask"
    if masks.is_dir():
        from .domains.procedural import object_mask
        scores["mask_iou"] = mask_iou(object_mask(fake, target), _load_maps(masks, size, limit) > 127)
    labels = folder / f"test{source}_labels"
    if labels.is_dir() and target == "A":
        from .domains.procedural import LABEL_CLASSES, colors_to_labels
        scores.update(segmentation_scores(colors_to_labels(fake), _load_maps(labels, size, limit), len(LABEL_CLASSES)))
    return scores
