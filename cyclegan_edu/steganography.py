"""What the cycle hides: a probe of the near-invisible signal through which ``F`` reads ``x`` back
out of ``G(x)`` (Chu, Zhmoginov and Sandler 2017, "CycleGAN, a Master of Steganography", NIPS
workshop on machine learning for creativity and design).

The cycle loss (Zhu et al. 2017, Eq. 2) asks for ``F(G(x)) ≈ x`` even where the target domain has
no room for what ``x`` holds (an aerial photo's details on a flat map tile). Chu et al. show that
CycleGAN then *encodes* ``x`` into ``G(x)`` as a low-amplitude, high-frequency signal: ``G(x)``
looks right, and ``F`` decodes the signal to rebuild ``x`` in detail it could not have guessed.
Their tests, reproduced here at our scale: perturb ``G(x)`` slightly, by

* Gaussian noise of standard deviation ``std`` (in the images' [-1, 1] units, clamped to that range),
* JPEG re-encoding at ``quality`` (PIL, in memory, its default 4:2:0 chroma subsampling; this also
  rounds to 8 bits, as saving any image does),
* a Gaussian blur of standard deviation ``sigma`` pixels (a low-pass filter),

and watch ``F(G(x))``. An honest pair changes its reconstruction about as much as ``G(x)`` changed;
a hiding pair's reconstruction collapses while ``G(x)`` barely moves (:func:`probe`). The hidden
signal itself is what a smoothing removes: :func:`amplified_residual` shows ``G(x) − blur(G(x))``,
magnified until it is visible.
"""
from __future__ import annotations

import io
import math
from typing import Callable

import torch
from torch.nn import functional
from PIL import Image

from .data import to_image, to_tensor

Translate = Callable[[torch.Tensor], torch.Tensor]
PERTURBATIONS = ("noise", "jpeg", "blur")
GREY_LEVEL = 2 / 255          # one step of an 8-bit image, in the [-1, 1] units of the networks


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x`` (N, C, H, W) blurred by a Gaussian of standard deviation ``sigma`` pixels: a separable
    kernel of radius ⌈3σ⌉, normalised to sum 1, with reflected borders (replicated for images smaller
    than the kernel). ``sigma=0`` returns ``x``."""
    if sigma < 0 or not math.isfinite(sigma):
        raise ValueError(f"blur sigma={sigma}: must be 0 or a positive number of pixels")
    if sigma == 0:
        return x
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = (kernel / kernel.sum()).to(x.dtype)
    channels = x.shape[1]
    mode = "reflect" if radius < min(x.shape[-2:]) else "replicate"
    x = functional.pad(x, (radius, radius, radius, radius), mode=mode)
    x = functional.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return functional.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """``x`` (N, 3 or 1, H, W) in [-1, 1], each image encoded as a JPEG of ``quality`` (1-100) in
    memory with PIL and decoded again."""
    if not 1 <= quality <= 100:
        raise ValueError(f"jpeg quality={quality}: choose an integer from 1 (worst) to 100 (best)")
    decoded = []
    for image in x:
        buffer = io.BytesIO()
        to_image(image).save(buffer, format="JPEG", quality=int(quality))
        buffer.seek(0)
        with Image.open(buffer) as reread:
            decoded.append(to_tensor(reread))
    return torch.stack(decoded).to(device=x.device, dtype=x.dtype)


def add_noise(x: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """``x`` plus Gaussian noise of standard deviation ``std`` (drawn from ``seed``, on the CPU, so the
    same on every device), clamped to [-1, 1] as an image must stay."""
    if std < 0 or not math.isfinite(std):
        raise ValueError(f"noise std={std}: must be 0 or a positive number")
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return (x + std * noise.to(device=x.device, dtype=x.dtype)).clamp(-1, 1)


def perturb(y: torch.Tensor, kind: str, strength: float, seed: int = 0) -> torch.Tensor:
    """``y`` changed by one of :data:`PERTURBATIONS`: ``"noise"`` (``strength`` = std), ``"jpeg"``
    (quality) or ``"blur"`` (sigma in pixels)."""
    if kind == "noise":
        return add_noise(y, strength, seed)
    if kind == "jpeg":
        return jpeg(y, int(strength))
    if kind == "blur":
        return gaussian_blur(y, strength)
    raise ValueError(f"perturbation {kind!r}: choose one of {PERTURBATIONS}")


def _l1(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().mean())


@torch.no_grad()
def probe(G: Translate, F: Translate, x: torch.Tensor, noise: tuple[float, ...] = (0.01, 0.03),
          jpeg_quality: tuple[int, ...] = (95, 75), blur: tuple[float, ...] = (0.5, 1.0),
          seed: int = 0) -> list[dict]:
    """How ``F(G(x))`` degrades when ``G(x)`` is perturbed (Chu et al. 2017). ``G`` and ``F`` are any
    callables from a batch (N, C, H, W) in [-1, 1] to its translation (:func:`cycle_of` gives a
    CycleGAN's); ``x`` is a batch of the source domain.

    One row (a dict) per perturbation, after a first row ``"none"`` for ``G(x)`` itself. Every
    distance is a mean absolute difference per pixel and channel, in the images' [-1, 1] units:

    * ``G_change``: ``|G̃ − G(x)|``, how much the perturbation changed the translation;
    * ``reconstruction_error``: ``|F(G̃) − x|``, the cycle's error after it;
    * ``error_ratio``: that error over the unperturbed one ``|F(G(x)) − x|`` (1 for ``"none"``; ∞
      when only the perturbed reconstruction has an error);
    * ``reconstruction_change``: ``|F(G̃) − F(G(x))|``;
    * ``amplification``: ``reconstruction_change / G_change``, how much ``F`` magnifies a change of its
      input (about 1 or less for an honest pair; large when ``F`` reads a hidden signal; NaN for ``"none"``).
    """
    y = G(x)
    x = x.to(y.device)
    clean = F(y)
    clean_error = _l1(clean, x)
    settings = ([("none", 0.0)] + [("noise", s) for s in noise] + [("jpeg", q) for q in jpeg_quality]
                + [("blur", s) for s in blur])
    rows = []
    for kind, strength in settings:
        perturbed = y if kind == "none" else perturb(y, kind, strength, seed)
        rebuilt = clean if kind == "none" else F(perturbed)
        error, change, moved = _l1(rebuilt, x), _l1(rebuilt, clean), _l1(perturbed, y)
        ratio = error / clean_error if clean_error > 0 else (math.inf if error > 0 else 1.0)
        rows.append({"perturbation": kind, "strength": strength, "G_change": moved,
                     "reconstruction_error": error, "error_ratio": ratio, "reconstruction_change": change,
                     "amplification": change / moved if moved > 0 else math.nan})
    return rows


def checkerboard_code(amplitude: float = 0.02) -> tuple[Translate, Translate]:
    """A hand-made pair ``(G, F)`` that hides its input: the probe's positive control (chapter 8).

    ``G`` turns each image into a flat grey of the image's mean brightness and writes the image's
    deviation from that mean into it, multiplied by ``amplitude`` and by a ±1 checkerboard, so ``G(x)``
    is flat to within ``amplitude`` (0.02 is under three grey levels of 255). ``F`` demodulates:
    multiply by the checkerboard again, divide by ``amplitude``, add the mean back. Untouched, the pair
    has a near-zero cycle error; it is exactly the kind of code Chu et al. found, a signal too faint to see
    that carries everything the way back needs."""
    if not 0 < amplitude <= 1 or not math.isfinite(amplitude):
        raise ValueError(f"amplitude={amplitude}: choose a number in (0, 1], e.g. 0.02 (under three grey levels)")

    def signs(t: torch.Tensor) -> torch.Tensor:
        i, j = torch.meshgrid(torch.arange(t.shape[-2], device=t.device), torch.arange(t.shape[-1], device=t.device),
                              indexing="ij")
        return (1.0 - 2.0 * ((i + j) % 2)).to(t.dtype)

    def hide(x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return mean + amplitude * signs(x) * (x - mean)

    def reveal(y: torch.Tensor) -> torch.Tensor:
        mean = y.mean(dim=(1, 2, 3), keepdim=True)
        return (signs(y) * (y - mean) / amplitude + mean).clamp(-1, 1)

    return hide, reveal


def cycle_of(model, source: str = "A") -> tuple[Translate, Translate]:
    """``(G, F)`` of a trained two-way model (a CycleGAN) as callables, for images of the dataset's
    domain ``source``: ``"A"`` gives (A → B, B → A), ``"B"`` the other way round."""
    if source not in ("A", "B"):
        raise ValueError(f"source={source!r}: choose 'A' or 'B' (the dataset's domain of the images)")
    if getattr(model, "one_way_name", None):
        raise ValueError(f"the probe needs F as well as G: this {model.one_way_name} learned G alone; "
                         "probe a CycleGAN, or pass your own G and F to probe()")
    forward, backward = ("AtoB", "BtoA") if source == "A" else ("BtoA", "AtoB")
    return (lambda t: model.translate(t, forward)), (lambda t: model.translate(t, backward))


@torch.no_grad()
def amplified_residual(y: torch.Tensor, sigma: float = 1.0, gain: float | None = None) -> torch.Tensor:
    """The high frequencies of ``y`` (N, C, H, W), ``y − blur(y)`` (:func:`gaussian_blur` with
    ``sigma``), magnified for display: times ``gain`` and clamped to [-1, 1], or with ``gain=None``
    scaled per image so that its largest magnitude is 1, magnified at most 127.5 times (one 8-bit grey
    level to full scale), so the float rounding of a flat image stays invisible. Zero is mid-grey when
    shown as an image (:func:`cyclegan_edu.data.to_image`); where a generator hides a code, it is the
    code one sees."""
    residual = y.float() - gaussian_blur(y.float(), sigma)
    if gain is not None:
        return (gain * residual).clamp(-1, 1)
    peak = residual.abs().amax(dim=(1, 2, 3), keepdim=True)
    return residual / peak.clamp(min=GREY_LEVEL)
