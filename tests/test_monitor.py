"""What the dashboard and the film show of a model: the diversity readout and its collapse warning,
the samples (x, G(x), F(G(x))), the discriminator that judges them, and figures drawn without pyplot
(the dashboard draws in its training thread)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from cyclegan_edu.config import Config  # noqa: E402
from cyclegan_edu.metrics import output_diversity  # noqa: E402
from cyclegan_edu.models import build_model  # noqa: E402
from cyclegan_edu.monitor import COLLAPSE_THRESHOLD, SampleMonitor, diversity_line, loss_figure  # noqa: E402
from cyclegan_edu.networks import run_at_test_time  # noqa: E402


def tiny(**changes) -> Config:
    return Config(image_size=32, load_size=36, ngf=4, ndf=4, n_blocks=1, device="cpu", precision="fp32").replace(**changes)


@pytest.fixture
def images():
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_the_collapse_warning_starts_below_the_documented_threshold():
    assert COLLAPSE_THRESHOLD == 0.25
    assert diversity_line(0.25) == "diversity of the outputs: 0.25 × the inputs'"
    assert "below 0.25: possible mode collapse" in diversity_line(0.249)


def test_the_readout_is_the_outputs_diversity_over_the_inputs(images):
    class Halving:                                      # a "model" whose outputs are half as diverse
        def translate(self, x, direction):
            return x / 2
    samples = SampleMonitor(images).look(Halving(), step=7)
    assert samples.step == 7 and samples.reconstructed is None            # not a CycleGAN: no way back
    assert samples.diversity == pytest.approx(output_diversity(images / 2) / output_diversity(images))
    assert samples.diversity == pytest.approx(0.5) and not samples.collapsed


@pytest.mark.parametrize("bad, message", [(lambda x: x[:1], "at least 2"), (lambda x: x[0], "at least 2"),
                                          (lambda x: x[:1].repeat(3, 1, 1, 1), "all the same"),
                                          (lambda x: x[..., :30], "divide the image size")])
def test_the_monitor_refuses_inputs_it_cannot_compare(images, bad, message):
    with pytest.raises(ValueError, match=message):
        SampleMonitor(bad(images))


@pytest.mark.parametrize("direction, judge, titles", [("AtoB", "D_B", ("x", "G(x)", "F(G(x))")),
                                                      ("BtoA", "D_A", ("y", "F(y)", "G(F(y))"))])
def test_cyclegan_samples_go_there_and_back_and_the_right_d_judges_them(images, direction, judge, titles):
    model = build_model("cyclegan", tiny()).setup("cpu")
    monitor = SampleMonitor(images, direction)
    samples = monitor.look(model, step=0)
    back = "BtoA" if direction == "AtoB" else "AtoB"
    assert torch.equal(samples.reconstructed, model.translate(samples.translated, back))
    assert monitor.row_titles == titles
    with torch.no_grad():
        expected = getattr(model, judge)(samples.translated[:1])[0, 0]
    assert torch.allclose(monitor.discriminator_scores(model, samples), expected)
    before = plt.get_fignums()
    figures = [monitor.sample_figure(samples), monitor.discriminator_figure(model, samples),
               loss_figure([{"step": s, "G_AB_gan": 1.0, "D_A": 0.5, "lr": 1.0} for s in (1, 2, 3)])]
    assert plt.get_fignums() == before                   # drawn without pyplot: safe in a thread
    assert len(figures[0].axes) == 3 * len(images) and figures[2].axes[0].get_legend_handles_labels()[1] == [
        "G_AB_gan", "D_A"]


def test_pix2pix_d_judges_the_pair_as_probabilities_and_keeps_its_batch_statistics(images):
    model = build_model("pix2pix", tiny(norm="batch", gan_mode="vanilla", lambda_identity=0.0)).setup("cpu")
    model.train()
    monitor = SampleMonitor(images)
    samples = monitor.look(model, step=0)
    running = [m.running_mean.clone() for m in model.D.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    scores = monitor.discriminator_scores(model, samples)
    with torch.no_grad():
        pair = torch.cat([images[:1], samples.translated[:1]], 1)
        expected = torch.sigmoid(run_at_test_time(model.D, pair)[0, 0])
    assert torch.allclose(scores, expected) and 0 <= scores.min() and scores.max() <= 1
    assert all(torch.equal(a, m.running_mean) for a, m in
               zip(running, [m for m in model.D.modules() if isinstance(m, torch.nn.BatchNorm2d)]))
    assert model.D.training                                              # its mode is restored
