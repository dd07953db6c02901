"""The loss terms on inputs small enough to compute by hand (paper Eq. 1-3, §5.2)."""
from __future__ import annotations

import math

import pytest
import torch

from cyclegan_edu.losses import GANLoss, cycle_loss, identity_loss

SCORES = torch.tensor([[[[0.0, 1.0], [3.0, -2.0]]]])       # a 1×1×2×2 PatchGAN map


def test_lsgan_real_and_fake_targets():
    loss = GANLoss("lsgan")
    # real: mean((s - 1)^2) = (1 + 0 + 4 + 9) / 4
    assert float(loss(SCORES, True)) == pytest.approx(14 / 4)
    # fake: mean(s^2) = (0 + 1 + 9 + 4) / 4
    assert float(loss(SCORES, False)) == pytest.approx(14 / 4)
    assert float(loss(torch.tensor([0.5, 2.0]), True)) == pytest.approx((0.25 + 1.0) / 2)
    assert float(loss(torch.tensor([0.5, 2.0]), False)) == pytest.approx((0.25 + 4.0) / 2)


def test_lsgan_is_zero_at_its_target():
    loss = GANLoss("lsgan")
    assert float(loss(torch.ones(1, 1, 3, 3), True)) == 0
    assert float(loss(torch.zeros(1, 1, 3, 3), False)) == 0


def test_vanilla_is_cross_entropy_on_logits():
    loss = GANLoss("vanilla")
    s = [0.0, 1.0, 3.0, -2.0]
    sigmoid = [1 / (1 + math.exp(-v)) for v in s]
    real = sum(-math.log(p) for p in sigmoid) / 4
    fake = sum(-math.log(1 - p) for p in sigmoid) / 4
    assert float(loss(SCORES, True)) == pytest.approx(real, rel=1e-6)
    assert float(loss(SCORES, False)) == pytest.approx(fake, rel=1e-6)
    assert float(loss(torch.zeros(5), True)) == pytest.approx(math.log(2), rel=1e-6)


def test_vanilla_is_stable_for_large_logits():
    loss = GANLoss("vanilla")
    assert float(loss(torch.tensor([100.0]), False)) == pytest.approx(100.0)
    assert float(loss(torch.tensor([-100.0]), False)) == pytest.approx(0.0, abs=1e-30)


def test_gan_loss_gradient_points_to_the_target():
    scores = torch.tensor([0.25], requires_grad=True)
    GANLoss("lsgan")(scores, True).backward()
    assert float(scores.grad) == pytest.approx(2 * (0.25 - 1))


def test_unknown_gan_mode():
    with pytest.raises(ValueError, match="wgan"):
        GANLoss("wgan")


def test_cycle_loss_is_mean_absolute_error():
    x = torch.zeros(1, 3, 2, 2)
    rec = torch.tensor([0.5, -0.5, 1.0, 0.0] * 3).reshape(1, 3, 2, 2)
    assert float(cycle_loss(x, rec)) == pytest.approx(2.0 / 4)
    assert float(cycle_loss(rec, rec)) == 0


def test_identity_loss_is_mean_absolute_error():
    y = torch.full((2, 3, 4, 4), 0.25)
    mapped = torch.full((2, 3, 4, 4), -0.5)
    assert float(identity_loss(y, mapped)) == pytest.approx(0.75)
    mapped[0] = y[0]
    assert float(identity_loss(y, mapped)) == pytest.approx(0.375)
