"""DistanceGAN (Benaim & Wolf 2017): the distance and self-distance losses equal a hand computation,
their normalisation comes from the data and travels with the weights, the one-sided model trains from
Config and the command line, translates the direction it learned and refuses the other in one line."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cyclegan_edu.cli import main
from cyclegan_edu.config import DISTANCEGAN_DEFAULTS, PRESETS, get_preset
from cyclegan_edu.distancegan import (DistanceGAN, DistanceStats, distance_loss, distance_statistics,
                                      half_distances, pair_distances, pairwise_distances)
from cyclegan_edu.models import build_model
from cyclegan_edu.train import Trainer, load_model, read_checkpoint


def images(*rows) -> torch.Tensor:
    """One (1, 1, W) image per row of pixel values."""
    return torch.tensor(rows, dtype=torch.float32)[:, None, None, :]


# a = [0, 0], b = [1, 3], c = [-1, 5]: mean |a−b| = 2, |a−c| = 3, |b−c| = (2 + 2) / 2 = 2
ABC = images([0, 0], [1, 3], [-1, 5])


def test_pairwise_and_half_distances_by_hand():
    assert pairwise_distances(ABC).tolist() == [2.0, 3.0, 2.0]                 # (a, b), (a, c), (b, c)
    assert pairwise_distances(ABC[:1]).numel() == 0                            # one image: no pair
    # left [1, 2] against right [5, 3]: (4 + 1) / 2; an odd width's middle column belongs to neither half
    assert half_distances(images([1, 2, 5, 3], [1, 2, 9, 5])).tolist() == [2.5, 5.5]
    assert half_distances(torch.tensor([1.0, 2, 9, 5, 3])[None, None, None]).tolist() == [2.5]


def test_statistics_by_hand_and_per_domain():
    stats = distance_statistics(ABC, 2 * ABC)
    sigma = math.sqrt(((2 - 7 / 3) ** 2 * 2 + (3 - 7 / 3) ** 2) / 3)           # population std of [2, 3, 2]
    assert stats.mu_A == pytest.approx(7 / 3) and stats.sigma_A == pytest.approx(sigma)
    assert stats.mu_B == pytest.approx(14 / 3) and stats.sigma_B == pytest.approx(2 * sigma)
    halves = distance_statistics(images([1, 2, 5, 3], [0, 0, 1, 1]), images([0, 0, 0, 4], [0, 0, 0, 0]), "self")
    assert halves == DistanceStats(1.75, 0.75, 1.0, 1.0)                      # halves: [2.5, 1] and [2, 0]


def test_distance_loss_by_hand():
    stats = DistanceStats(mu_A=1.0, sigma_A=0.5, mu_B=2.0, sigma_B=1.0)
    # source (d − 1) / 0.5 = [2, 4, 2]; G = 3x: d = [6, 9, 6], target (d − 2) / 1 = [4, 7, 4]
    assert float(distance_loss(ABC, 3 * ABC, stats)) == pytest.approx((2 + 3 + 2) / 3)
    # self: d(x) = 2.5, source 3; G = 2x: d = 5, target 3: no loss
    assert float(distance_loss(images([1, 2, 5, 3]), images([2, 4, 10, 6]), stats, "self")) == 0.0
    assert float(distance_loss(ABC[:1], 3 * ABC[:1], stats)) == 0.0             # a batch of one has no pair


@pytest.mark.parametrize("mode", ["pairs", "self"])
def test_a_map_that_keeps_the_normalised_distances_has_no_distance_loss(mode):
    x = torch.rand(6, 3, 8, 8) * 2 - 1
    stats = distance_statistics(x, 0.5 * x - 0.2, mode)        # domain B: the images of A, halved and shifted
    assert float(distance_loss(x, 0.5 * x - 0.2, stats, mode)) == pytest.approx(0.0, abs=1e-5)
    assert float(distance_loss(x, x.flip(0), stats, mode)) > 0.5


def test_statistics_refuse_images_without_spread_in_one_line():
    same = torch.zeros(4, 3, 8, 8)
    with pytest.raises(ValueError, match="domain B all lie at the same distance") as err:
        distance_statistics(torch.rand(4, 3, 8, 8), same)
    assert "\n" not in str(err.value)


def test_presets_and_config_expose_distancegan():
    config = get_preset("ci", model="distancegan")
    assert config == PRESETS["ci"].replace(**DISTANCEGAN_DEFAULTS) and config.lambda_identity == 0.0
    assert (config.lambda_distance, config.distance_mode) == (1.0, "pairs")
    with pytest.raises(ValueError, match="distance_mode='triplets'"):
        get_preset("ci", model="distancegan", distance_mode="triplets")
    with pytest.raises(ValueError, match="lambda_distance=-1.0"):
        get_preset("ci", lambda_distance=-1.0)


def test_pairs_need_a_batch_and_self_works_at_batch_size_one():
    with pytest.raises(ValueError, match="needs batch_size >= 2 .*distance_mode='self'"):
        build_model("distancegan", get_preset("ci", model="distancegan", batch_size=1))
    model = build_model("distancegan", get_preset("ci", model="distancegan", batch_size=1, distance_mode="self",
                                                  device="cpu")).setup()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    model.measure_data([{"A": a, "B": -a} for a in x])
    assert math.isfinite(model.step(x[:1], -x[:1])["distance"])


def fp32_model(**changes) -> DistanceGAN:
    torch.manual_seed(0)
    config = get_preset("ci", model="distancegan", precision="fp32", device="cpu", **changes)
    return build_model("distancegan", config).setup()


def test_step_is_one_sided_and_logs_its_terms():
    model = fp32_model(lambda_distance=2.0)
    assert {name for name, net in model.named_children() if list(net.parameters())} == {"G", "D_B"}   # no F, D_A
    real_A, real_B = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1
    with pytest.raises(ValueError, match="measure_data"):
        model.step(real_A, real_B)
    model.measure_data([{"A": a, "B": b} for a, b in zip(real_A, real_B)])
    with torch.no_grad():                                 # G's weights before the step's update
        expected = distance_loss(real_A, model.G(real_A), model.stats)
    losses = model.step(real_A, real_B)
    assert losses["distance"] == pytest.approx(float(expected), rel=1e-5)
    assert losses["distance_weighted"] == pytest.approx(2 * losses["distance"])
    assert losses["G_total"] == pytest.approx(losses["G_AB_gan"] + 2 * losses["distance"], rel=1e-5)
    assert set(losses) == {"G_AB_gan", "distance", "distance_weighted", "G_total", "D_B"}


def test_translates_the_learned_direction_only():
    model = fp32_model()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert model.translate(x).shape == (2, 3, 32, 32)
    assert torch.equal(model.translate(x, "AtoB"), model.translate(x))
    with pytest.raises(ValueError, match="one-sided DistanceGAN learned AtoB only") as err:
        model.translate(x, "BtoA")
    assert "\n" not in str(err.value)


def test_the_statistics_travel_with_the_weights_and_a_resumed_run_keeps_them(tiny_folder, tmp_path, monkeypatch):
    run = tmp_path / "run"
    config = get_preset("ci", model="distancegan", iters=2, iters_decay=1, batch_size=4, device="cpu")
    trainer = Trainer(config, tiny_folder, out=run, model="distancegan", progress=False)
    measured = trainer.model.stats
    assert measured is not None and measured.sigma_A > 0 and measured.sigma_B > 0
    trainer.fit(steps=1)
    assert load_model(run, device="cpu").stats == measured
    monkeypatch.setattr(DistanceGAN, "measure_data", lambda self, dataset: pytest.fail("measured again"))
    resumed = Trainer(config, tiny_folder, out=run, model="distancegan", resume=True, progress=False)
    assert resumed.model.stats == measured and resumed.step == 1
    resumed.fit()
    assert read_checkpoint(run)["step"] == 2


def run_cli(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit:
        code = exit.code
    return (code, *capsys.readouterr())


def test_cli_trains_and_translates_a_distancegan(tiny_folder, tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "out"
    code, stdout, err = run_cli(capsys, "train", "--model", "distancegan", "--data", tiny_folder, "--out", run,
                                "--preset", "ci", "--iters", 2, "--batch-size", 4, "--no-progress")
    assert code == 0, err
    assert "training distancegan" in stdout and "distance " in stdout.split("done:")[1]
    state = read_checkpoint(run)
    assert state["model_kind"] == "distancegan" and state["step"] == 2
    assert state["config"]["lambda_identity"] == 0.0 and "distance" in state["history"][-1]
    code, stdout, err = run_cli(capsys, "translate", "--run", run, "--input", tiny_folder / "testA", "--output", out)
    assert code == 0 and "wrote 4 image(s)" in stdout, err
    code, stdout, err = run_cli(capsys, "translate", "--run", run, "--direction", "BtoA",
                                "--input", tiny_folder / "testB", "--output", tmp_path / "other")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "learned AtoB only" in err
    assert not (tmp_path / "other").exists()                     # refused before any output was written


def test_cli_refuses_pairs_at_batch_size_one_in_one_line(tiny_folder, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--model", "distancegan", "--data", tiny_folder, "--out",
                           tmp_path / "run", "--preset", "ci", "--batch-size", 1, "--no-progress")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "batch_size >= 2" in err and "distance_mode='self'" in err
    assert not (tmp_path / "run").exists()


def test_pair_distances_for_the_motivating_plot():
    x = torch.rand(5, 3, 8, 8) * 2 - 1
    kept = pair_distances(lambda t: 0.5 * t, x)                 # distances halved: perfectly correlated
    assert len(kept.source) == 10 and np.allclose(kept.translated, kept.source / 2, atol=1e-6)
    assert kept.correlation == pytest.approx(1.0)
    model = fp32_model()
    assert len(pair_distances(model, torch.rand(4, 3, 32, 32) * 2 - 1, batch_size=3).translated) == 6
    with pytest.raises(ValueError, match="at least 3 images"):
        pair_distances(model, x[:2])


def test_the_discriminator_follows_netD_and_spectral_norm():
    from torch.nn.utils import parametrize
    from cyclegan_edu.networks import NLayerDiscriminator, PixelDiscriminator
    config = get_preset("ci", model="distancegan")
    assert isinstance(DistanceGAN(config).D_B, NLayerDiscriminator)
    model = DistanceGAN(config.replace(netD="pixel", spectral_norm=True))
    assert isinstance(model.D_B, PixelDiscriminator)
    convs = [m for m in model.D_B.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(parametrize.is_parametrized(m, "weight") for m in convs)
    assert not any(parametrize.is_parametrized(m) for m in model.G.modules())
