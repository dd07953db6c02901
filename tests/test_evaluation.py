"""The scores of evaluation.evaluate on a task, with a stand-in judge (the judges have their own tests)."""
from __future__ import annotations

import pytest
import torch

from cyclegan_edu import domains, evaluation, experiments, judges, metrics
from cyclegan_edu.data import load_folder
from cyclegan_edu.domains import procedural


class Identity:
    def translate(self, x, direction):
        return x.clone()


class Oracle:
    """Translates each test image into its truth (both directions)."""
    def __init__(self, folder, size):
        self.pairs = {way: (load_folder(folder / f"test{way[0]}", size), load_folder(folder / f"test{way[0]}_gt", size))
                      for way in ("AtoB", "BtoA")}

    def translate(self, x, direction):
        source, truth = self.pairs[direction]
        return torch.stack([truth[(source - xi).abs().flatten(1).sum(1).argmin()] for xi in x])


class MeanColourJudge:
    def features(self, x):
        return x.mean((2, 3)).double()


@pytest.fixture(scope="module", params=evaluation.COLOUR_TASKS)
def colour_task(request, tmp_path_factory):
    """A colour task (seasons, tint) generated tiny: each is scored by drift, change and identity path."""
    return request.param, domains.generate(request.param, tmp_path_factory.mktemp(request.param) / "s", size=32,
                                           n_train=1, n_test=6, seed=1)


def test_colour_tasks_score_the_change_and_the_identity_path(colour_task, monkeypatch):
    task, folder = colour_task
    monkeypatch.setattr(judges, "domain_judge", lambda *a, **k: MeanColourJudge())
    x, y = load_folder(folder / "testA", 32), load_folder(folder / "testB", 32)
    copy = evaluation.evaluate(Identity(), folder, task, 32)
    assert copy["G change"] == 0 and copy["F change"] == 0              # a copier changes nothing
    assert copy["G identity L1"] == 0 and copy["F identity L1"] == 0    # and leaves its own domain alone
    truth = evaluation.evaluate(Oracle(folder, 32), folder, task, 32)
    needed = metrics.input_change(load_folder(folder / "testA_gt", 32), x)
    assert truth["G change"] == pytest.approx(needed) and needed > 0.05
    assert truth["G hue drift"] == pytest.approx(0, abs=1e-6) and truth["G L1 to truth"] == 0
    # the oracle fed its own output domain maps each image to its nearest test truth: not the identity
    assert truth["G identity L1"] == pytest.approx(metrics.l1(Oracle(folder, 32).translate(y, "AtoB"), y))


def test_a_task_score_change_makes_only_that_tasks_runs_stale():
    assert evaluation.version("seasons") == evaluation.TASK_VERSIONS["seasons"] != evaluation.VERSION
    assert evaluation.version("labels") == evaluation.TASK_VERSIONS["labels"] != evaluation.VERSION
    assert evaluation.version("shapes") == evaluation.TASK_VERSIONS["shapes"] != evaluation.VERSION
    assert evaluation.version("sneaker2boot") == evaluation.VERSION
    seasons = experiments.get("ch4-identity")
    record = {"experiment": seasons.name, "variant": seasons.variants[0].key, "seed": 0, "preset": "cpu",
              "model": "cyclegan", "evaluation_version": evaluation.VERSION,
              "config": seasons.config("cpu", seasons.variants[0], 0).to_dict()}
    assert "evaluation version 1, now 2" in experiments.stale_reason(record)
    record["evaluation_version"] = evaluation.version("seasons")
    assert experiments.stale_reason(record) is None


class FixedSegmenter:
    def score(self, images, labels):
        return {"pixel_acc": 0.5, "class_acc": 0.5, "class_iou": 0.5}


def test_labels_runs_are_probed_for_a_hidden_signal(monkeypatch, tmp_path):
    from cyclegan_edu import steganography
    folder = domains.generate("labels", tmp_path / "labels", size=32, n_train=1, n_test=6, seed=1)
    monkeypatch.setattr(judges, "domain_judge", lambda *a, **k: MeanColourJudge())
    monkeypatch.setattr(judges, "labels_segmenter", lambda *a, **k: FixedSegmenter())
    scores = evaluation.evaluate(Identity(), folder, "labels", 32)
    x, y = load_folder(folder / "testA", 32), load_folder(folder / "testB", 32)
    # an honest pair (here: copying both ways) passes the noise straight through: the error is the noise's
    assert scores["G cycle L1"] == 0 and scores["F cycle L1"] == 0
    assert scores["G cycle L1, noisy"] == pytest.approx(metrics.l1(steganography.add_noise(x, evaluation.PROBE_NOISE), x))
    assert scores["F cycle L1, noisy"] == pytest.approx(metrics.l1(steganography.add_noise(y, evaluation.PROBE_NOISE), y))
    assert 0.01 < scores["G cycle L1, noisy"] < evaluation.PROBE_NOISE
    assert "G cycle L1, noisy" not in evaluation.evaluate(Identity(), folder, "labels", 32, model_kind="pix2pix")


def test_texture_tasks_score_sharpness_and_checkerboard_against_the_truth(monkeypatch, tmp_path):
    """An oracle is exactly as detailed as the truth (sharpness 1) and has the truth's checkerboard energy;
    a blur of it is less detailed; a copier of the input has the input's detail."""
    folder = domains.generate("shapes", tmp_path / "shapes", size=32, n_train=1, n_test=6, seed=1)
    monkeypatch.setattr(judges, "domain_judge", lambda *a, **k: MeanColourJudge())
    oracle = Oracle(folder, 32)
    scores = evaluation.evaluate(oracle, folder, "shapes", 32)
    truth = load_folder(folder / "testA_gt", 32)
    assert scores["G sharpness"] == pytest.approx(1.0) and scores["F sharpness"] == pytest.approx(1.0)
    assert scores["G checkerboard"] == pytest.approx(metrics.checkerboard_energy(truth))
    x = load_folder(folder / "testA", 32)
    assert scores["G distance corr"] == pytest.approx(metrics.distance_correlation(x, truth))

    class Blurred(Oracle):
        def translate(self, x, direction):
            out = super().translate(x, direction)
            return torch.nn.functional.avg_pool2d(out, 3, stride=1, padding=1, count_include_pad=False)
    assert evaluation.evaluate(Blurred(folder, 32), folder, "shapes", 32)["G sharpness"] < 0.8
    x = load_folder(folder / "testA", 32)
    copier = evaluation.evaluate(Identity(), folder, "shapes", 32)
    assert copier["G sharpness"] == pytest.approx(metrics.detail_energy(x) / metrics.detail_energy(truth))


def test_reshape_scores_whose_outline_the_outputs_have(monkeypatch, tmp_path):
    """The truth changes the objects' outline: the oracle has the truth's (IoU 1) and not the input's; a
    copier, like a translator that only recolours, has the input's (IoU 1) and about half the truth's."""
    folder = domains.generate("reshape", tmp_path / "reshape", size=32, n_train=1, n_test=6, seed=1)
    monkeypatch.setattr(judges, "domain_judge", lambda *a, **k: MeanColourJudge())
    truth = evaluation.evaluate(Oracle(folder, 32), folder, "reshape", 32)
    copier = evaluation.evaluate(Identity(), folder, "reshape", 32)
    for name in ("G", "F"):
        assert truth[f"{name} mask IoU"] == 1 and truth[f"{name} mask IoU to input"] < 0.6
        assert copier[f"{name} mask IoU to input"] == 1 and copier[f"{name} mask IoU"] < 0.6
    assert copier["G mask IoU"] == pytest.approx(truth["G mask IoU to input"])       # the same two outlines

    class Recolour(Identity):            # the ground made the target's: the colours right, the outline not
        def translate(self, x, direction):
            ground = ~procedural.reshape_mask(x)[:, None]
            target = load_folder(folder / f"test{direction[0]}_gt", 32).mean((0, 2, 3))[:, None, None]
            return torch.where(ground, target, x)
    recoloured = evaluation.evaluate(Recolour(), folder, "reshape", 32)
    assert recoloured["G L1 to truth"] < copier["G L1 to truth"]
    assert recoloured["G mask IoU"] == pytest.approx(copier["G mask IoU"])


def stripes_everywhere(images: torch.Tensor) -> torch.Tensor:
    """Black and white stripes 2 px wide, as the zebras' at 32 px, over the whole of each image."""
    stripes = (torch.arange(images.shape[-1]) // 2 % 2).float() * 1.8 - 0.9
    return stripes.expand_as(images).clone()


def test_distractor_scores_what_G_does_to_the_rock(monkeypatch, tmp_path):
    """The truth leaves the rock as it is (change 0, its own faint texture); a translator that stripes the
    rock changes it and stripes it like a zebra; F, from B where no rock is, gets no such score. Striped:
    metrics.detail_energy over the 4×4 blocks inside the rock, over the true zebras'."""
    folder = domains.generate("distractor", tmp_path / "distractor", size=32, n_train=1, n_test=8, seed=1)
    parts = procedural.read_parts(folder / "testA_parts", 32)
    assert 2 <= int((parts == procedural.ROCK).flatten(1).any(1).sum()) <= 6      # test images with and without
    monkeypatch.setattr(judges, "domain_judge", lambda *a, **k: MeanColourJudge())
    truth = evaluation.evaluate(Oracle(folder, 32), folder, "distractor", 32)
    assert truth["G distractor change"] == 0 and truth["G distractor striped"] < 0.05
    assert truth["G animals striped"] == 1 and "F distractor change" not in truth
    truth_A = load_folder(folder / "testA_gt", 32)                # striped: the one detail energy, in a region
    assert truth["G distractor striped"] == (metrics.detail_energy(truth_A, mask=parts == procedural.ROCK)
                                             / metrics.detail_energy(truth_A, mask=parts == procedural.ANIMAL))

    class StripeTheRock(Oracle):         # the right translation, and stripes on the rock as well
        def translate(self, x, direction):
            out = super().translate(x, direction)
            rock = (out == x).all(1, keepdim=True)            # the pixels the truth does not change
            return torch.where(rock, stripes_everywhere(out), out)
    striped = evaluation.evaluate(StripeTheRock(folder, 32), folder, "distractor", 32)
    assert striped["G distractor change"] > 0.5 and striped["G distractor striped"] > 0.5
    assert striped["G animals striped"] == 1
    copier = evaluation.evaluate(Identity(), folder, "distractor", 32)
    assert copier["G distractor change"] == 0 and copier["G animals striped"] < 0.05


class BrightnessJudge(MeanColourJudge):
    """Calls an image domain B when its mean is above 0."""
    def score_B(self, x):
        return float((x.mean((1, 2, 3)) > 0).float().mean())


def test_translation_scores_of_any_generator_by_hand():
    """Chapter 10 scores an official generator's outputs: each score equals its hand computation."""
    torch.manual_seed(0)
    inputs = torch.rand(6, 3, 8, 8) * 2 - 1
    real = torch.rand(6, 3, 8, 8) * 0.5 + 0.2                          # all bright: judged B
    translated = torch.cat([real[:4], -real[4:]])                      # 4 of 6 bright
    scores = evaluation.translation_scores(translated, inputs, real, BrightnessJudge(), truth=translated)
    assert scores["judged target"] == pytest.approx(4 / 6)
    kid, se = metrics.kernel_inception_distance(translated.mean((2, 3)).double(), real.mean((2, 3)).double())
    assert (scores["KID"], scores["KID se"]) == (kid, se)
    assert scores["diversity ratio"] == pytest.approx(metrics.output_diversity(translated) / metrics.output_diversity(inputs))
    assert scores["L1 to truth"] == 0
    assert "Inception FID" not in scores
    with pytest.raises(ValueError, match="one translation per input"):
        evaluation.translation_scores(translated[:5], inputs, real, BrightnessJudge())


def test_translation_scores_with_an_inception_network():
    net = judges.inception_network(weights=None)                        # random weights: no download
    torch.manual_seed(1)
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    scores = evaluation.translation_scores(images, images.flip(0), images, BrightnessJudge(), inception=net)
    assert scores["Inception FID"] == pytest.approx(0, abs=1e-3)         # the same images on both sides
    assert {"Inception KID", "Inception KID se"} <= scores.keys()


def test_eval_mode_false_scores_batch_norm_generators_as_the_official_test_py(tmp_path, monkeypatch):
    """A batch-norm generator whose running statistics are off: eval mode (the default) uses them, the
    official test.py's mode normalises each test image with its own, as it did in training (chapter 5).
    Every translation of evaluate and samples, the cycle's way back included, goes through the mode asked for."""
    from cyclegan_edu.config import Config
    from cyclegan_edu.models import CycleGAN
    folder = domains.generate("shapes", tmp_path / "shapes", size=32, n_train=1, n_test=4, seed=0)
    monkeypatch.setattr(judges, "domain_judge", lambda *a, **k: MeanColourJudge())
    torch.manual_seed(0)
    model = CycleGAN(Config(image_size=32, ngf=8, n_blocks=1, norm="batch", device="cpu", precision="fp32")).setup()
    for net in (model.G_AB, model.G_BA):
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.fill_(3.0)             # as if training had ended far from the test images
    x = load_folder(folder / "testA", 32)
    own = torch.cat([model.translate(image[None], "AtoB", eval_mode=False) for image in x])
    assert not torch.allclose(own, model.translate(x, "AtoB"), atol=1e-3)
    scores = {mode: evaluation.evaluate(model, folder, "shapes", 32, eval_mode=mode) for mode in (True, False)}
    truth = load_folder(folder / "testA_gt", 32)
    assert scores[False]["G L1 to truth"] == pytest.approx(metrics.l1(own, truth))
    assert scores[True]["G L1 to truth"] == pytest.approx(metrics.l1(model.translate(x, "AtoB"), truth))
    back = torch.cat([model.translate(image[None], "BtoA", eval_mode=False) for image in own])
    assert scores[False]["G cycle L1"] == pytest.approx(metrics.l1(x, back))
    rows = evaluation.samples(model, folder, 32, n=2, eval_mode=False)
    assert torch.allclose(rows["G(x)"], own[:2]) and torch.allclose(rows["F(G(x))"], back[:2])


def test_a_judge_trained_on_first_use_shows_its_progress_only_when_asked(monkeypatch, tmp_path, capsys):
    """Scoring in a fresh cache trains the judges first (minutes at 128 px): ``results run`` shows that
    bar instead of looking hung; a notebook's quiet call stays quiet, and a cached judge is only loaded."""
    folder = domains.generate("shapes", tmp_path / "shapes", size=32, n_train=4, n_test=4, seed=0)
    real_judge = judges.domain_judge
    monkeypatch.setattr(judges, "domain_judge", lambda *a, **k: real_judge(*a, **{**k, "steps": 3}))
    monkeypatch.setattr(judges, "judges_root", lambda: tmp_path / "quiet")
    evaluation.evaluate(Identity(), folder, "shapes", 32)
    assert "domain judge" not in capsys.readouterr().err and list((tmp_path / "quiet").glob("domain_*.pt"))
    monkeypatch.setattr(judges, "judges_root", lambda: tmp_path / "shown")
    evaluation.evaluate(Identity(), folder, "shapes", 32, progress=True)
    assert "domain judge shapes 32px" in capsys.readouterr().err
    evaluation.evaluate(Identity(), folder, "shapes", 32, progress=True)
    assert "domain judge" not in capsys.readouterr().err
