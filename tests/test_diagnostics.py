"""Training diagnostics on constructed cases: a collapsed and an identity generator, synthetic loss
histories, D's score maps computed by hand, and gradients worked out by hand."""
from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from cyclegan_edu import diagnostics
from cyclegan_edu.config import Config, get_preset
from cyclegan_edu.diagnostics import (DScoreMonitor, ModeCollapseMonitor, ModeCollapseWarning,
                                      detect_d_overpowering, discriminator_heatmaps, discriminator_scores,
                                      generator_gradients, oscillation)
from cyclegan_edu.models import build_model
from cyclegan_edu.networks import output_map_size
from cyclegan_edu.train import Trainer


def images(n: int = 6, seed: int = 0) -> torch.Tensor:
    """Different inputs: each a flat grey with one bright 8×8 block at its own place."""
    x = torch.full((n, 3, 32, 32), -0.5)
    for i in range(n):
        x[i, :, 4 * i:4 * i + 8, 8:16] = 0.8
    return x


class FixedGenerator:
    """A model whose translate is a given function of its input (what the monitor calls)."""

    def __init__(self, fn):
        self.fn = fn

    def translate(self, x, direction="AtoB"):
        return self.fn(x)


def trainer_at(model, step: int):
    return SimpleNamespace(model=model, step=step)


# --- mode collapse -----------------------------------------------------------------------------

def test_a_collapsed_generator_is_reported_once():
    collapsed = FixedGenerator(lambda x: torch.zeros_like(x) + 0.3)       # every input → the same output
    monitor = ModeCollapseMonitor(images())
    records = [{"step": s} for s in (10, 20, 30)]
    with pytest.warns(ModeCollapseWarning, match="step 10: the AtoB outputs are 0.00 times as diverse") as caught:
        for record in records:
            monitor(trainer_at(collapsed, record["step"]), record)
    assert len([w for w in caught if issubclass(w.category, ModeCollapseWarning)]) == 1
    assert monitor.warned_at == 10
    assert monitor.values == [(10, 0.0), (20, 0.0), (30, 0.0)]
    assert [r["diversity_ratio_AtoB"] for r in records] == [0.0, 0.0, 0.0]


def test_an_identity_generator_is_not_reported():
    monitor = ModeCollapseMonitor(images(), direction="BtoA")
    record = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                      # any warning fails the test
        for step in (5, 10):
            monitor(trainer_at(FixedGenerator(lambda x: x), step), record)
    assert monitor.warned_at is None and record == {"diversity_ratio_BtoA": 1.0}


def test_the_threshold_decides():
    half = FixedGenerator(lambda x: 0.3 * x)                                # diversity × 0.3
    quiet = ModeCollapseMonitor(images(), threshold=0.25)
    quiet(trainer_at(half, 1), {})
    assert quiet.values[0][1] == pytest.approx(0.3) and quiet.warned_at is None
    strict = ModeCollapseMonitor(images(), threshold=0.5)
    with pytest.warns(ModeCollapseWarning):
        strict(trainer_at(half, 1), {})
    assert diagnostics.COLLAPSE_THRESHOLD == 0.25


def test_mode_collapse_monitor_refuses_inputs_that_cannot_show_diversity():
    with pytest.raises(ValueError, match="inputs that differ from each other"):
        ModeCollapseMonitor(torch.zeros(4, 3, 32, 32))
    with pytest.raises(ValueError, match="N >= 2"):
        ModeCollapseMonitor(images(1))
    with pytest.raises(ValueError, match="threshold=1.5"):
        ModeCollapseMonitor(images(), threshold=1.5)


# --- D overpowering G --------------------------------------------------------------------------

def history(d_losses, g_losses, keys=("D_B", "G_AB_gan")):
    return [{"step": i + 1, keys[0]: d, keys[1]: g} for i, (d, g) in enumerate(zip(d_losses, g_losses))]


def noisy(level: float, n: int, seed: int, spread: float = 0.02) -> np.ndarray:
    return level + spread * np.random.default_rng(seed).standard_normal(n)


def test_overpowering_fires_on_a_d_that_wins_for_a_sustained_window():
    d = np.concatenate([noisy(0.22, 100, 0), np.full(100, 0.01)])           # D wins from step 101 on ...
    g = np.concatenate([noisy(0.30, 100, 1), np.linspace(0.4, 0.95, 100)])   # ... and G's loss climbs
    verdict = detect_d_overpowering(history(d, g), window=20)
    assert verdict.overpowered and (verdict.discriminator, verdict.generator) == ("D_B", "G_AB_gan")
    # D's 20-record mean is below 0.05 in windows starting at step 101 or later; G's in the window starting
    # at step 101 + k is 0.4 + 0.55/99·(k + 9.5), above 0.5 first for k = 9: the window of steps 110-129
    assert verdict.step == 129
    assert verdict.d_loss == pytest.approx(0.01) and verdict.g_loss > 0.5
    assert str(verdict).startswith("D_B overpowers its generator from step 129")


def test_overpowering_does_not_fire_on_a_healthy_run_or_a_short_spike():
    healthy = history(noisy(0.22, 300, 0, 0.05), noisy(0.35, 300, 1, 0.1))
    verdict = detect_d_overpowering(healthy, window=20)
    assert not verdict.overpowered and str(verdict).startswith("no sign of D overpowering G")
    d, g = noisy(0.22, 300, 0), noisy(0.35, 300, 1)
    d[100:110], g[100:110] = 0.0, 1.0                                        # 10 bad steps: not sustained
    assert not detect_d_overpowering(history(d, g), window=20).overpowered
    d[100:200] = 0.0                                                         # a strong D alone is not overpowering
    assert not detect_d_overpowering(history(d, noisy(0.35, 300, 1)), window=20).overpowered


def test_overpowering_reads_both_cyclegan_pairs_pix2pix_and_the_log_loss():
    balanced, winning = np.full(60, math.log(2)), np.full(60, 0.05)
    cyclegan = [{**a, **b} for a, b in zip(history(np.full(60, 0.25), np.full(60, 0.25)),
                                           history(winning, np.full(60, 2.0), keys=("D_A", "G_BA_gan")))]
    verdict = detect_d_overpowering(cyclegan, gan_mode="vanilla", window=10)
    assert verdict.overpowered and verdict.discriminator == "D_A" and verdict.step == 10
    assert not detect_d_overpowering(history(balanced, balanced, keys=("D", "G_gan")), "vanilla", 10).overpowered
    # 0.05 is below the log loss's limit 0.2·log 2 = 0.139 but not LSGAN's 0.2·0.25 = 0.05
    assert detect_d_overpowering(history(winning, np.full(60, 2.0), ("D", "G_gan")), "vanilla", 10).overpowered
    assert not detect_d_overpowering(history(winning, np.full(60, 2.0), ("D", "G_gan")), "lsgan", 10).overpowered


def test_overpowering_needs_enough_history_and_the_loss_columns():
    short = detect_d_overpowering(history(np.zeros(5), np.ones(5)), window=50)
    assert not short.overpowered and str(short) == "cannot tell: the history has 5 logged steps, the rule needs a window of 50"
    with pytest.raises(ValueError, match="no discriminator and generator losses"):
        detect_d_overpowering([{"step": 1, "G_total": 1.0}])
    with pytest.raises(ValueError, match="gan_mode='wgan'"):
        detect_d_overpowering(history([0.1], [0.1]), gan_mode="wgan")


# --- gradients through the GAN losses ------------------------------------------------------------

def test_generator_gradients_equal_the_hand_computation():
    s = -4.0                                              # D confidently rejects the fake (σ(−4) = 0.018)
    sigma = 1 / (1 + math.exp(-s))
    gradients = generator_gradients([s, 0.0])
    assert gradients["lsgan"] == pytest.approx([2 * abs(s - 1), 2.0], abs=1e-12)         # d/ds (s − 1)²
    assert gradients["vanilla"] == pytest.approx([1 - sigma, 0.5], abs=1e-12)           # d/ds −log σ(s)
    assert gradients["minimax"] == pytest.approx([sigma, 0.5], abs=1e-12)               # d/ds log(1 − σ(s))
    assert gradients["minimax"][0] == pytest.approx(0.0179862100, abs=1e-10)
    # a fake D already calls real, far from the target: the log loss's gradient vanishes, LSGAN's does not
    far = generator_gradients([8.0])
    assert far["vanilla"][0] == pytest.approx(1 / (1 + math.exp(8)), abs=1e-12) and far["lsgan"][0] == 14.0


# --- D's score maps --------------------------------------------------------------------------------

def tiny(**changes) -> Config:
    return Config(image_size=32, load_size=32, ngf=4, ndf=4, n_blocks=1, batch_size=2, device="cpu",
                  precision="fp32").replace(**changes)


def state(model) -> list[torch.Tensor]:
    return [v.clone() for v in model.state_dict().values()]


@pytest.mark.parametrize("direction, judge", [("AtoB", "D_B"), ("BtoA", "D_A")])
def test_discriminator_scores_are_the_judging_d_on_real_and_translated_images(direction, judge):
    torch.manual_seed(0)
    model = build_model("cyclegan", tiny(spectral_norm=True, n_layers_D=1)).setup()
    model.step(images(2), images(2, 1).flip(-1))                          # spectral norm's u, v set by training
    before = state(model)
    source, target = images(3), images(3).flip(-1)
    scores = discriminator_scores(model, source, target, direction)
    D = getattr(model, judge).eval()
    with torch.no_grad():                 # D runs once on the real and the translated images together
        expected = D(torch.cat([target, model.translate(source, direction)]))[:, 0]
    D.train()
    assert torch.equal(torch.cat([scores["real"], scores["fake"]]), expected)
    assert scores["real"].shape == (3,) + (output_map_size(D, 32),) * 2 == (3, 14, 14)
    assert all(torch.equal(a, b) for a, b in zip(before, state(model)))   # nothing in the model changed


def test_pix2pix_scores_are_read_as_probabilities_and_judge_pairs():
    torch.manual_seed(0)
    model = build_model("pix2pix", get_preset("ci", model="pix2pix", ngf=4, ndf=4, device="cpu",
                                              precision="fp32")).setup()
    a, b = images(2), images(2).flip(-1)
    model.step(a, b)                                                       # batch norm's running statistics set
    before = state(model)
    maps = discriminator_heatmaps(model, a[0], b[0])
    model.D.eval()
    with torch.no_grad():                 # D runs once on the real and the fake pair together
        pairs = torch.cat([torch.cat([a[:1], b[:1]], 1), torch.cat([a[:1], model.translate(a[:1])], 1)])
        expected = torch.sigmoid(model.D(pairs))[:, 0].numpy()
    assert isinstance(maps["real"], np.ndarray) and maps["real"].shape == maps["fake"].shape == (2, 2)
    np.testing.assert_array_equal(maps["real"], expected[0])
    np.testing.assert_array_equal(maps["fake"], expected[1])
    model.D.train()
    assert all(torch.equal(x, y) for x, y in zip(before, state(model)))
    with pytest.raises(ValueError, match="one \\(C, H, W\\) image each"):
        discriminator_heatmaps(model, a, b)


def test_oscillation_is_the_variance_around_the_trend():
    assert oscillation([0, 1, 0, 1, 0]) == pytest.approx(0.24, abs=1e-12)
    assert oscillation([3 * i + v for i, v in enumerate([0, 1, 0, 1, 0])]) == pytest.approx(0.24, abs=1e-12)
    assert oscillation([0.5, 0.7, 0.9, 1.1]) == pytest.approx(0.0, abs=1e-20)
    with pytest.raises(ValueError, match="at least 3 values"):
        oscillation([1.0, 2.0])


# --- the monitors in a real run ---------------------------------------------------------------------

def test_monitors_record_into_the_history_and_leave_training_unchanged(tiny_folder):
    config = get_preset("ci", batch_size=4, ngf=8, ndf=8, n_blocks=1, iters=3, iters_decay=0, spectral_norm=True,
                        device="cpu", precision="fp32")
    plain = Trainer(config, tiny_folder, progress=False)
    plain.fit()
    monitored = Trainer(config, tiny_folder, progress=False)
    collapse, scores = ModeCollapseMonitor(images(4)), DScoreMonitor(images(4), images(4).flip(-1))
    monitored.add_callback(collapse, every=1)
    monitored.add_callback(scores, every=1)
    monitored.fit()
    for ours, theirs in zip(monitored.history, plain.history):
        assert {k: v for k, v in ours.items() if k != "seconds" and k in theirs} == \
               {k: v for k, v in theirs.items() if k != "seconds"}
    assert all(torch.equal(a, b) for a, b in zip(state(monitored.model), state(plain.model)))
    assert [r["step"] for r in monitored.history] == [1, 2, 3]
    assert all({"diversity_ratio_AtoB", "D_real_AtoB", "D_fake_AtoB"} <= set(r) for r in monitored.history)
    assert [v["step"] for v in scores.values] == [1, 2, 3] and set(scores.oscillation()) == {"real", "fake"}
