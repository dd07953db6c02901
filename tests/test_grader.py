"""The problem sets' graders (cyclegan_edu.grader) and notebooks (notebooks/problems/).

The graders pass the package's own implementations and the instructor's solutions, and fail known-wrong
answers with one line that names the mistake. Each problem notebook, run without the solutions, fails
every check on its stub with one line; with them, every check passes. (nbval runs the notebooks with
the solutions in a kernel; here their cells are run with ``exec``, up to the last check.)
"""
from __future__ import annotations

import json
import random
import re
import types
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from cyclegan_edu import grader
from cyclegan_edu.losses import GANLoss, cycle_loss, identity_loss
from cyclegan_edu.networks import NLayerDiscriminator, ResnetBlock, ResnetGenerator, count_parameters
from cyclegan_edu.pool import ImagePool

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"
NOTEBOOKS = sorted((REPO / "notebooks" / "problems").glob("*.ipynb"))


def check(name: str, answer) -> str:
    """Run problem ``name``'s check on ``answer``; its FAIL line, or "" after a PASS."""
    try:
        grader.CHECKS[name](answer)
    except grader.ProblemFailed as verdict:
        return str(verdict)
    return ""


def solution(name: str, monkeypatch):
    monkeypatch.setenv(grader.SOLUTIONS_ENV, str(SOLUTIONS))
    return grader.solution_or(types.SimpleNamespace(__name__=name))


def test_one_check_per_problem_in_the_order_of_the_issue():
    assert list(grader.CHECKS) == list(grader.PROBLEMS) == [
        "lsgan_loss", "cycle_loss", "identity_loss", "ImagePool", "ResidualBlock", "ResnetGenerator", "PatchGAN",
        "training_step"]
    assert [p.number for p in grader.PROBLEMS.values()] == ["1.1", "1.2", "1.3", "2.1", "3.1", "3.2", "3.3", "4.1"]


# ---------------------------------------------------------------- what passes

PACKAGE = {
    "lsgan_loss": GANLoss("lsgan"),
    "cycle_loss": cycle_loss,
    "identity_loss": lambda G, F, x, y: identity_loss(y, G(y)) + identity_loss(x, F(x)),
    "ImagePool": ImagePool,
    "ResidualBlock": ResnetBlock,
    "ResnetGenerator": ResnetGenerator,
    "PatchGAN": NLayerDiscriminator,
}


@pytest.mark.parametrize("name", list(PACKAGE))
def test_the_package_passes_its_own_checks(name, capsys):
    assert check(name, PACKAGE[name]) == ""
    assert capsys.readouterr().out.startswith(f"PASS Problem {grader.PROBLEMS[name].number} ({name}): ")


@pytest.mark.parametrize("name", list(grader.PROBLEMS))
def test_the_solutions_pass(name, monkeypatch, capsys):
    assert check(name, solution(name, monkeypatch)) == ""
    assert capsys.readouterr().out.startswith(f"PASS Problem {grader.PROBLEMS[name].number} ({name}): ")


def test_the_graders_know_the_papers_parameter_counts():
    with torch.device("meta"):
        assert count_parameters(ResnetGenerator()) == grader.RESNET_9BLOCKS_PARAMETERS == 11_378_179
        assert count_parameters(NLayerDiscriminator()) == grader.PATCHGAN_PARAMETERS == 2_764_737


# ---------------------------------------------------------------- known-wrong answers

class NoSkipBlock(ResnetBlock):
    def forward(self, x):
        return self.conv_block(x)


class NoTanhGenerator(ResnetGenerator):
    def forward(self, x):
        return self.model[:-1](x)


def patchgan(stride_last: int = 1, padding: int = 1, norm=nn.InstanceNorm2d, sigmoid: bool = False):
    """A PatchGAN class built like the paper's but for the stride of C512, the padding, the norm layers
    or a sigmoid at the end."""
    class PatchGAN(nn.Module):
        def __init__(self, input_nc=3, ndf=64):
            super().__init__()
            layers, channels = [], [input_nc, ndf, 2 * ndf, 4 * ndf, 8 * ndf]
            for i, stride in enumerate((2, 2, 2, stride_last)):
                layers += [nn.Conv2d(channels[i], channels[i + 1], 4, stride, padding),
                           *([norm(channels[i + 1])] if i else []), nn.LeakyReLU(0.2)]
            layers += [nn.Conv2d(8 * ndf, 1, 4, 1, padding), *([nn.Sigmoid()] if sigmoid else [])]
            self.model = nn.Sequential(*layers)

        def forward(self, x):
            return self.model(x)
    return PatchGAN


class BrokenPatchGAN(patchgan()):
    """The right layers, fed the image with its axes mixed up: torch raises deep inside a convolution."""

    def forward(self, x):
        return self.model(x.transpose(1, 2))


def pool(stores_new: bool = True, replaces: bool = True, detaches: bool = True):
    """An image pool right but for one thing: it never hands out stored images (``stores_new=False``
    stores only while filling and always returns the new image), it does not put the new image in the
    place of the one it hands out, or it keeps stored images attached to their graph."""
    class Pool:
        def __init__(self, size):
            self.size, self.images = size, []

        def query(self, images):
            if self.size == 0:
                return images
            out = []
            for image in images if not detaches else images.detach():
                image = image.unsqueeze(0)
                if len(self.images) < self.size:
                    self.images.append(image)
                    out.append(image)
                elif stores_new and random.random() < 0.5:
                    i = random.randrange(self.size)
                    out.append(self.images[i])
                    if replaces:
                        self.images[i] = image
                else:
                    out.append(image)
            return torch.cat(out)
    return Pool


def training_step(detach: bool = True, generators_first: bool = True, pooled: bool = True, halve: bool = True):
    """The solution's training step but for one thing: D shown fakes still attached to G's graph, D
    updated before G, D shown the fresh fakes instead of the pool's, or D's loss not halved."""
    lsgan = GANLoss("lsgan")

    def step(G, F, D_X, D_Y, opt_G, opt_D, pool_X, pool_Y, x, y, lambda_cyc=10.0, lambda_id=0.5):
        fake_y, fake_x = G(x), F(y)

        def update_generators():
            opt_G.zero_grad()
            loss = (lsgan(D_Y(fake_y), True) + lsgan(D_X(fake_x), True)
                    + lambda_cyc * (cycle_loss(x, F(fake_y)) + cycle_loss(y, G(fake_x)))
                    + lambda_cyc * lambda_id * (identity_loss(y, G(y)) + identity_loss(x, F(x))))
            loss.backward()
            opt_G.step()
            return loss

        def update_discriminators():
            opt_D.zero_grad()
            shown = [fake.detach() if detach else fake for fake in (fake_x, fake_y)]
            if pooled:
                shown = [pool_X.query(shown[0]), pool_Y.query(shown[1])]
            loss = sum((0.5 if halve else 1.0) * (lsgan(D(real), True) + lsgan(D(fake), False))
                       for D, real, fake in ((D_X, x, shown[0]), (D_Y, y, shown[1])))
            loss.backward()
            opt_D.step()
            return loss

        if generators_first:
            loss_G, loss_D = update_generators(), update_discriminators()
        else:
            loss_D, loss_G = update_discriminators(), update_generators()
        return loss_G.item(), loss_D.item()
    return step


WRONG = {
    "lsgan with the log loss": ("lsgan_loss", GANLoss("vanilla"), ["which is the log loss of the original GAN",
                                                                   "Hint: the paper trains with least squares"]),
    "lsgan summed": ("lsgan_loss", lambda s, real: ((s - float(real)) ** 2).sum(),
                     ["a sum over the score map", ".mean()"]),
    "lsgan as a float": ("lsgan_loss", lambda s, real: float(((s.detach() - float(real)) ** 2).mean()),
                         ["returned float, not a tensor"]),
    "lsgan without a gradient": ("lsgan_loss", lambda s, real: ((s.detach() - float(real)) ** 2).mean(),
                                 ["has the right value but no gradient"]),
    "cycle loss squared": ("cycle_loss", lambda real, rec: ((rec - real) ** 2).mean(),
                           ["the mean squared error (L2)", "the L1 norm"]),
    "identity loss with G(x) against x": ("identity_loss", lambda G, F, x, y: cycle_loss(x, G(x)) + cycle_loss(y, F(y)),
                                          ["which is ‖G(x) − x‖₁ + ‖F(y) − y‖₁",
                                           "already in Y and asks for it back unchanged: ‖G(y) − y‖₁ + ‖F(x) − x‖₁"]),
    "identity loss with G's term alone": ("identity_loss", lambda G, F, x, y: cycle_loss(y, G(y)),
                                          ["G's term ‖G(y) − y‖₁ alone", "add F's term"]),
    "pool that never returns stored images": ("ImagePool", pool(stores_new=False),
                                              ["in 200 queries with a full pool it never returned a stored image",
                                               "with probability 0.5 return a randomly chosen stored image"]),
    "pool that keeps what it hands out": ("ImagePool", pool(replaces=False),
                                          ["which a pool of size 5 that keeps only what it has not handed out could "
                                           "not hold", "leaves the pool"]),
    "pool that stores attached images": ("ImagePool", pool(detaches=False),
                                         ["came back still attached to the graph", "store image.detach()"]),
    "block without the skip": ("ResidualBlock", NoSkipBlock, ["computes conv_block(x), without the skip connection",
                                                              "return x + conv_block(x)"]),
    "generator without tanh": ("ResnetGenerator", NoTanhGenerator, ["without the final tanh", "nn.Tanh()"]),
    "PatchGAN with stride 2 in C512": ("PatchGAN", patchgan(stride_last=2),
                                       ["each output value sees 94×94 input pixels, the paper's PatchGAN sees 70×70",
                                        "strides 2, 2, 2, 1, 1"]),
    "PatchGAN without padding": ("PatchGAN", patchgan(padding=0),
                                 ["outputs shape (1, 1, 24, 24), the paper's outputs (1, 1, 30, 30)", "padding=1"]),
    "PatchGAN with batch norm": ("PatchGAN", patchgan(norm=nn.BatchNorm2d),
                                 ["PatchGAN() has 2,766,529 parameters, the paper's 70×70 PatchGAN has 2,764,737"]),
    "PatchGAN with a sigmoid": ("PatchGAN", patchgan(sigmoid=True), ["computes sigmoid(scores)", "no sigmoid"]),
    "PatchGAN that torch rejects": ("PatchGAN", BrokenPatchGAN,
                                    ["PatchGAN(3, ndf=8) on a 1×3×192×192 image raised RuntimeError: "]),
    "step without detach": ("training_step", training_step(detach=False),
                            ["raised RuntimeError: Trying to backward through the graph a second time",
                             "Hint: D's loss reached back into G's graph", "fake.detach()"]),
    "step updating D first": ("training_step", training_step(generators_first=False),
                              ["it updated the discriminators before the generators", "first G and F"]),
    "step without the pool": ("training_step", training_step(pooled=False),
                              ["D_X was not trained on pool_X.query(...)'s output", "the pooled fakes"]),
    "step with D's loss not halved": ("training_step", training_step(halve=False),
                                      ["twice the paper's", "each discriminator's loss is halved"]),
}


@pytest.mark.parametrize("wrong", list(WRONG))
def test_a_known_wrong_answer_fails_with_one_line_naming_the_mistake(wrong, capsys):
    name, answer, fragments = WRONG[wrong]
    line = check(name, answer)
    assert line.startswith(f"FAIL Problem {grader.PROBLEMS[name].number} ({name}): ") and "\n" not in line
    assert ". Hint: " in line
    for fragment in fragments:
        assert fragment in line
    assert "PASS" not in capsys.readouterr().out


def test_a_failure_shows_one_line_in_jupyter_and_no_chained_traceback():
    with pytest.raises(grader.ProblemFailed) as verdict:
        grader.check_patchgan(BrokenPatchGAN)
    assert verdict.value.__suppress_context__ and verdict.value.__cause__ is None
    [line] = verdict.value._render_traceback_()
    assert str(verdict.value) in line and "\n" not in line


def test_a_training_step_that_does_not_freeze_D_passes():
    """Freezing D during G's update saves work but changes no number: the solution freezes it, the step
    above does not, and both pass."""
    assert check("training_step", training_step()) == ""


# ---------------------------------------------------------------- solution_or

def test_solution_or_returns_the_students_answer_unless_told_where_the_solutions_are(monkeypatch):
    def lsgan_loss(scores, target_is_real):
        raise NotImplementedError

    monkeypatch.delenv(grader.SOLUTIONS_ENV, raising=False)
    assert grader.solution_or(lsgan_loss) is lsgan_loss
    monkeypatch.setenv(grader.SOLUTIONS_ENV, str(SOLUTIONS))
    answer = grader.solution_or(lsgan_loss)
    assert answer is not lsgan_loss and answer.__module__ == "cyclegan_edu_solutions_P1_losses"
    assert float(answer(torch.zeros(1, 1, 2, 2), True)) == 1.0


def test_solution_or_says_in_one_line_when_the_folder_has_no_solutions(monkeypatch, tmp_path):
    monkeypatch.setenv(grader.SOLUTIONS_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError) as error:
        grader.solution_or(types.SimpleNamespace(__name__="PatchGAN"))
    assert str(error.value) == (f"{grader.SOLUTIONS_ENV}={tmp_path}: no P3_networks.py there; point it at the folder "
                                "of the solution files (solutions/ in the repository), or unset it to check your own "
                                "answers")
    with pytest.raises(ValueError, match=r"solution_or\(helper\): not a problem's answer"):
        grader.solution_or(types.SimpleNamespace(__name__="helper"))


# ---------------------------------------------------------------- the notebooks

def code_cells(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
            if c["cell_type"] == "code"]


def test_every_problem_has_its_notebook_in_the_toc_and_its_solution_file():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    part = next(p for p in toc["parts"] if p["caption"] == "Problem sets")
    assert [c["file"] for c in part["chapters"]] == \
        ["book/problem_sets"] + [f"notebooks/problems/{path.stem}" for path in NOTEBOOKS]
    assert [path.stem for path in NOTEBOOKS] == sorted({p.notebook for p in grader.PROBLEMS.values()})
    assert sorted(path.stem for path in SOLUTIONS.glob("*.py")) == [path.stem for path in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_problem_notebooks_are_committed_without_outputs(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_problem_notebook_fails_each_check_on_its_stub_and_passes_it_with_the_solution(path, monkeypatch, capsys):
    """Run top to bottom without the solutions, every cell before the first check runs and the first check
    fails with "not written yet"; each later check too, once the solutions filled in the earlier problems."""
    cells = code_cells(path)
    checks = [i for i, source in enumerate(cells) if "grader.check_" in source]
    expected = [p.name for p in grader.PROBLEMS.values() if p.notebook == path.stem]
    namespace: dict = {}
    checked = []
    for source in cells[:checks[-1] + 1]:
        if "grader.check_" in source:
            [name] = re.findall(r"^(\w+) = grader\.solution_or\(\1\)$", source, re.MULTILINE)
            monkeypatch.delenv(grader.SOLUTIONS_ENV, raising=False)
            with pytest.raises(grader.ProblemFailed) as verdict:
                exec(source, namespace)
            number = grader.PROBLEMS[name].number
            assert str(verdict.value).startswith(f"FAIL Problem {number} ({name}): not written yet (")
            assert "raised NotImplementedError). Hint: replace the `raise NotImplementedError`" in str(verdict.value)
            monkeypatch.setenv(grader.SOLUTIONS_ENV, str(SOLUTIONS))
            checked.append(name)
        exec(source, namespace)
    assert checked == expected
    passes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("PASS")]
    assert [line.split(" (")[1].split(")")[0] for line in passes] == expected
