"""The perceptual cycle loss (Config.cycle_loss="perceptual"): its value on known inputs equals a hand
computation, the fixed random features are the same everywhere and cost nothing to checkpoint, and the
default (pixel L1, the paper's Eq. 2) is the very function it always was."""
from __future__ import annotations

import math

import pytest
import torch

from cyclegan_edu.config import get_preset
from cyclegan_edu.losses import cycle_loss
from cyclegan_edu.models import CycleGAN
from cyclegan_edu.perceptual import FEATURE_WIDTHS, PerceptualLoss, RandomFeatures


def test_loss_with_known_features_equals_the_hand_computation():
    real = torch.zeros(1, 1, 1, 2)
    reconstructed = torch.tensor([[[[1.0, -3.0]]]])           # pixel L1: (1 + 3) / 2 = 2

    def features(x):                                          # layer 1: 2x (L1 4); layer 2: x + 1 (L1 2)
        return [2 * x, x + 1]

    assert float(PerceptualLoss(0.0, features)(real, reconstructed)) == (4 + 2) / 2
    assert float(PerceptualLoss(0.5, features)(real, reconstructed)) == (4 + 2) / 2 + 0.5 * 2


def test_random_features_first_layer_by_hand():
    net = RandomFeatures(widths=(4, 8))
    image = torch.full((1, 3, 6, 6), 0.5)
    first, second = net(image)
    assert first.shape == (1, 4, 6, 6) and second.shape == (1, 8, 3, 3)
    # away from the zero padding every 3×3 window is the constant 0.5: relu(0.5 · Σ weights) per channel
    expected = (0.5 * net.weight0.sum(dim=(1, 2, 3))).clamp(min=0)
    assert torch.allclose(first[0, :, 2, 2], expected, atol=1e-6)
    # a grey image is compared as RGB with three equal channels
    grey = torch.rand(2, 1, 8, 8)
    for a, b in zip(net(grey), net(grey.expand(-1, 3, -1, -1))):
        assert torch.equal(a, b)


def test_random_features_are_fixed_he_scaled_and_out_of_the_state_dict():
    state = torch.random.get_rng_state()
    a, b = RandomFeatures(), RandomFeatures()
    assert torch.equal(torch.random.get_rng_state(), state)        # the caller's random stream is untouched
    for i, width in enumerate(FEATURE_WIDTHS):
        wa, wb = getattr(a, f"weight{i}"), getattr(b, f"weight{i}")
        assert torch.equal(wa, wb) and not wa.requires_grad
        fan_in = wa.shape[1] * 9
        assert abs(float(wa.std()) / math.sqrt(2 / fan_in) - 1) < 0.2, i
    assert a.state_dict() == {} and list(a.parameters()) == []


def test_loss_is_zero_for_equal_images_and_trains_the_reconstruction_only():
    loss_fn = PerceptualLoss(pixel_weight=1.0)
    real = torch.rand(2, 3, 16, 16) * 2 - 1
    assert float(loss_fn(real, real.clone())) == 0.0
    reconstructed = (real + 0.1 * torch.randn_like(real)).requires_grad_()
    loss = loss_fn(real, reconstructed)
    loss.backward()
    assert float(loss.detach()) > 0 and reconstructed.grad.abs().sum() > 0


def test_default_cycle_loss_is_the_pixel_l1_and_adds_nothing_to_the_state():
    default = CycleGAN(get_preset("ci"))
    assert default.reconstruction_loss is cycle_loss
    perceptual = CycleGAN(get_preset("ci", cycle_loss="perceptual"))
    assert perceptual.state_dict().keys() == default.state_dict().keys()


def test_cyclegan_step_logs_the_perceptual_distance_of_its_reconstructions():
    config = get_preset("ci", cycle_loss="perceptual", perceptual_pixel_weight=0.25, precision="fp32",
                        device="cpu", lambda_identity=0.0)
    torch.manual_seed(0)
    model = CycleGAN(config).setup()
    real_A, real_B = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():                                   # the weights the step's generator update starts from
        expected_A = PerceptualLoss(0.25)(real_A, model.G_BA(model.G_AB(real_A)))
        expected_B = PerceptualLoss(0.25)(real_B, model.G_AB(model.G_BA(real_B)))
    losses = model.step(real_A, real_B)
    assert losses["cycle_A"] == pytest.approx(float(expected_A), rel=1e-5)
    assert losses["cycle_B"] == pytest.approx(float(expected_B), rel=1e-5)
    assert losses["cycle_A_weighted"] == pytest.approx(10 * losses["cycle_A"])


def test_a_run_trains_with_the_perceptual_cycle_loss_at_the_default_precision(tiny_folder, tmp_path):
    from cyclegan_edu.train import Trainer
    trainer = Trainer(get_preset("ci", cycle_loss="perceptual", iters=2, iters_decay=1, batch_size=2),
                      tiny_folder, out=tmp_path / "run", progress=False)
    history = trainer.fit()
    assert len(history) == 2 and all(math.isfinite(r["cycle_A"]) and r["cycle_A"] > 0 for r in history)


def test_bad_cycle_loss_settings_name_the_field():
    with pytest.raises(ValueError, match="cycle_loss='vgg'"):
        get_preset("ci", cycle_loss="vgg")
    with pytest.raises(ValueError, match="perceptual_pixel_weight=-1.0"):
        get_preset("ci", perceptual_pixel_weight=-1.0)
