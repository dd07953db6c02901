"""The steganography probe (Chu et al. 2017) on hand-made pairs: a pair that hides x in a faint
checkerboard under a flat grey G(x) collapses under noise, JPEG and blur while G(x) barely changes;
honest pairs do not. The perturbations and the residual view equal hand computations."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cyclegan_edu.config import get_preset
from cyclegan_edu.models import build_model
from cyclegan_edu.steganography import (add_noise, amplified_residual, checkerboard_code, cycle_of, gaussian_blur,
                                        jpeg, perturb, probe)

EPS = 0.02       # the hidden code's amplitude: under 3 grey levels of 255


def smooth_images(n: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Random smooth images in [-0.8, 0.8]: 4×4 noise, bilinearly enlarged."""
    coarse = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)


def checkerboard(x: torch.Tensor) -> torch.Tensor:
    i, j = torch.meshgrid(torch.arange(x.shape[-2]), torch.arange(x.shape[-1]), indexing="ij")
    return 1.0 - 2.0 * ((i + j) % 2).float()


hide, reveal = checkerboard_code(EPS)          # G: flat grey of x's mean carrying x in a faint checkerboard


def rows_by_kind(rows):
    return {(row["perturbation"], row["strength"]): row for row in rows}


def test_the_hand_made_encoder_works_when_untouched():
    x = smooth_images()
    assert (hide(x) - hide(x).mean(dim=(1, 2, 3), keepdim=True)).abs().max() <= EPS   # G(x): flat to 3 levels
    assert (reveal(hide(x)) - x).abs().mean() < 0.01                                 # F reads x back
    # by hand: G(x) = mean + EPS · (±1 checkerboard) · (x − mean)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    assert torch.allclose(hide(x), mean + EPS * checkerboard(x) * (x - mean))
    with pytest.raises(ValueError, match="amplitude=0"):
        checkerboard_code(0)


def test_hiding_pair_collapses_while_its_translation_barely_changes():
    x = smooth_images()
    rows = rows_by_kind(probe(hide, reveal, x, noise=(0.01,), jpeg_quality=(90,), blur=(1.0,)))
    clean = rows[("none", 0.0)]
    assert clean["G_change"] == 0 and clean["reconstruction_change"] == 0 and clean["error_ratio"] == 1.0
    assert math.isnan(clean["amplification"]) and clean["reconstruction_error"] < 0.01
    for key in (("noise", 0.01), ("jpeg", 90), ("blur", 1.0)):
        row = rows[key]
        assert row["G_change"] < 0.01, key                                 # about a grey level of change ...
        assert row["reconstruction_error"] > 0.2, key                      # ... and x is gone
        assert row["error_ratio"] > 20 and row["amplification"] > 20, key


def test_honest_pairs_do_not_collapse():
    x = smooth_images()
    identity = lambda t: t
    # identity maps: the reconstruction moves by exactly what G(x) moved
    for row in probe(identity, identity, x)[1:]:
        assert row["reconstruction_change"] == pytest.approx(row["G_change"], rel=1e-6)
        assert row["amplification"] == pytest.approx(1.0, rel=1e-6)
    # a lossy but honest translation (contrast halved), read back as it is: the error hardly moves
    for row in probe(lambda t: 0.5 * t, identity, x)[1:]:
        assert row["error_ratio"] < 1.2, row


def test_amplification_by_hand():
    x = smooth_images() * 0.4                       # F(y) = 2y never leaves [-1, 1] here: nothing clamps
    for row in probe(lambda t: t, lambda t: 2 * t, x, noise=(0.01,), jpeg_quality=(75,), blur=(1.0,))[1:]:
        assert row["amplification"] == pytest.approx(2.0, rel=1e-5), row


def test_gaussian_blur_of_an_impulse_is_the_normalised_kernel():
    impulse = torch.zeros(1, 1, 15, 15)
    impulse[..., 7, 7] = 1.0
    k = torch.exp(-torch.arange(-3.0, 4.0) ** 2 / 2)         # sigma 1: radius 3
    k = k / k.sum()
    expected = torch.zeros(15, 15)
    expected[4:11, 4:11] = k[:, None] * k[None, :]
    assert torch.allclose(gaussian_blur(impulse, 1.0)[0, 0], expected, atol=1e-7)
    flat = torch.full((2, 3, 5, 5), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0), flat)        # replicated borders for a small image
    assert gaussian_blur(flat, 0) is flat


def test_jpeg_and_noise_by_hand():
    level = 100 / 127.5 - 1                                      # exactly grey level 100
    flat = torch.full((2, 3, 16, 16), level)
    assert torch.allclose(jpeg(flat, 75), flat, atol=1e-6)      # a flat image survives JPEG
    grey = torch.full((1, 1, 16, 16), level)
    assert jpeg(grey, 50).shape == (1, 1, 16, 16)
    noisy = add_noise(torch.zeros(1, 3, 64, 64), 0.1, seed=3)
    assert torch.equal(noisy, add_noise(torch.zeros(1, 3, 64, 64), 0.1, seed=3))
    assert float(noisy.abs().mean()) == pytest.approx(0.1 * math.sqrt(2 / math.pi), rel=0.05)
    assert add_noise(torch.ones(1, 1, 4, 4), 0.5).max() <= 1.0  # an image stays in [-1, 1]


@pytest.mark.parametrize("call, fragment", [
    (lambda: perturb(torch.zeros(1, 3, 8, 8), "crop", 1), "perturbation 'crop'"),
    (lambda: jpeg(torch.zeros(1, 3, 8, 8), 0), "jpeg quality=0"),
    (lambda: gaussian_blur(torch.zeros(1, 3, 8, 8), -1.0), "blur sigma=-1.0"),
    (lambda: add_noise(torch.zeros(1, 3, 8, 8), float("nan")), "noise std=nan"),
])
def test_bad_perturbations_say_what_to_do_in_one_line(call, fragment):
    with pytest.raises(ValueError, match=fragment) as err:
        call()
    assert "\n" not in str(err.value)


def test_amplified_residual_shows_the_hidden_code():
    x = smooth_images()
    code = checkerboard(x) * (x - x.mean(dim=(1, 2, 3), keepdim=True))
    shown = amplified_residual(hide(x), sigma=1.0)
    assert torch.allclose(shown.abs().amax(dim=(1, 2, 3)), torch.ones(4))
    assert F.cosine_similarity(shown.flatten(1), code.flatten(1)).min() > 0.9
    flat = amplified_residual(torch.full((1, 3, 8, 8), 0.5))       # float rounding is not magnified
    assert float(flat.abs().max()) < 1e-4
    assert float(amplified_residual(hide(x), gain=10).abs().max()) <= 1.0


def test_probe_of_a_cyclegan_and_refusal_of_a_one_sided_model():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    model = build_model("cyclegan", get_preset("ci", device="cpu")).setup()
    rows = probe(*cycle_of(model, "B"), x, noise=(0.02,), jpeg_quality=(), blur=())
    assert [row["perturbation"] for row in rows] == ["none", "noise"]
    assert all(math.isfinite(row["reconstruction_error"]) for row in rows)
    one_sided = build_model("distancegan", get_preset("ci", model="distancegan", device="cpu"))
    with pytest.raises(ValueError, match="needs F as well as G"):
        cycle_of(one_sided)
    with pytest.raises(ValueError, match="source='C'"):
        cycle_of(model, "C")
