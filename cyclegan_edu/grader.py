"""Graders of the problem sets: one ``check_*`` function per problem, comparing a student's answer with
the package's own implementation on fixed seeds.

The problem sets (``notebooks/problems/P1_losses.ipynb`` … ``P4_training_step.ipynb``, listed in
:data:`PROBLEMS`) ask a student to write, in this order, the LSGAN loss, the cycle and identity losses,
the image pool, a residual block and the ResNet generator, the 70×70 PatchGAN and one training step.
Each problem cell holds a stub that raises ``NotImplementedError``; the check cell after it reads::

    lsgan_loss = grader.solution_or(lsgan_loss)
    grader.check_lsgan_loss(lsgan_loss)

A check runs the answer against the package (values and gradients, parameter counts, the receptive
field, the pool's behaviour, the order of the updates) and prints one ``PASS`` line, or raises
:class:`ProblemFailed`: one line naming the problem, what differs, and a hint. Jupyter shows that line
and no traceback, so "Run all" stops at the first problem still to do. A student's own exception is
caught and reported in that line too: nobody reads a traceback from deep inside torch.

**Solutions.** The instructor's answers are plain Python files, ``solutions/<notebook>.py`` at the
repository root (``solutions/P1_losses.py`` answers ``P1_losses.ipynb``): outside the package, so
installing it never ships them, and outside ``notebooks/``, so handing out the notebooks never carries
them. :func:`solution_or` is a no-op for students; with ``$CYCLEGAN_EDU_SOLUTIONS`` naming that folder it
returns the solution of the same name instead. ``notebooks/conftest.py`` sets the variable, so nbval
runs every problem notebook with its solutions in CI, and ``tests/test_grader.py`` runs them without it
to prove that every check fails on the stubs.
"""
from __future__ import annotations

import copy
import importlib.util
import itertools
import os
import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NoReturn

import numpy as np
import torch
from torch import nn

SOLUTIONS_ENV = "CYCLEGAN_EDU_SOLUTIONS"
RESNET_9BLOCKS_PARAMETERS = 11_378_179     # the official resnet_9blocks generator (appendix 7.2)
PATCHGAN_PARAMETERS = 2_764_737            # the official 70×70 PatchGAN ("basic" netD, 3 layers)
PATCHGAN_RECEPTIVE_FIELD = 70
ATOL = 1e-9                                # the checks run in float64: equal answers agree to ~1e-15


@dataclass(frozen=True)
class Problem:
    number: str      # "1.1": problem set 1, first problem
    name: str        # the function or class the student defines
    notebook: str    # its notebook in notebooks/problems/, and the stem of its solution file


PROBLEMS: dict[str, Problem] = {p.name: p for p in (
    Problem("1.1", "lsgan_loss", "P1_losses"),
    Problem("1.2", "cycle_loss", "P1_losses"),
    Problem("1.3", "identity_loss", "P1_losses"),
    Problem("2.1", "ImagePool", "P2_image_pool"),
    Problem("3.1", "ResidualBlock", "P3_networks"),
    Problem("3.2", "ResnetGenerator", "P3_networks"),
    Problem("3.3", "PatchGAN", "P3_networks"),
    Problem("4.1", "training_step", "P4_training_step"),
)}


class ProblemFailed(Exception):
    """A check's verdict on a wrong answer: one line, ``FAIL Problem N (name): what. Hint: how.``"""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the line is the whole message.
        return [f"\x1b[31m{self}\x1b[0m"]


# ---------------------------------------------------------------- the instructor's solutions

_loaded: dict[Path, object] = {}


def solution_or(answer):
    """``answer`` itself, unless ``$CYCLEGAN_EDU_SOLUTIONS`` names a folder of solution files: then the
    solution with ``answer``'s name, from ``<folder>/<notebook>.py`` (see the module docstring)."""
    folder = os.environ.get(SOLUTIONS_ENV, "").strip()
    if not folder:
        return answer
    name = getattr(answer, "__name__", "")
    if name not in PROBLEMS:
        raise ValueError(f"solution_or({name or repr(answer)}): not a problem's answer; "
                         f"expected one of {list(PROBLEMS)}")
    path = Path(folder) / f"{PROBLEMS[name].notebook}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{SOLUTIONS_ENV}={folder}: no {path.name} there; point it at the folder of the "
                                "solution files (solutions/ in the repository), or unset it to check your own answers")
    path = path.resolve()
    if path not in _loaded:
        spec = importlib.util.spec_from_file_location(f"cyclegan_edu_solutions_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[path] = module
    if not hasattr(_loaded[path], name):
        raise AttributeError(f"{path} defines no {name}; every problem of {path.stem} needs its solution there")
    return getattr(_loaded[path], name)


# ---------------------------------------------------------------- what every check shares

class _Check:
    """One problem's check: its verdict lines and the guard around the student's code."""

    def __init__(self, name: str):
        self.problem = PROBLEMS[name]

    @property
    def title(self) -> str:
        return f"Problem {self.problem.number} ({self.problem.name})"

    def fail(self, what: str, hint: str) -> NoReturn:
        # from None: a plain Python traceback does not chain the student's exception from inside torch either
        raise ProblemFailed(f"FAIL {self.title}: {what}. Hint: {hint}") from None

    def passed(self, what: str) -> None:
        print(f"PASS {self.title}: {what}")

    @contextmanager
    def running(self, call: str, hint: str = "run your code on small tensors in a cell of its own to see where it "
                                              "goes wrong", known: dict[str, str] | None = None) -> Iterator[None]:
        """Report an exception of the student's code (``call``) as one FAIL line, with the hint of the first
        ``known`` fragment its message contains, else ``hint``."""
        try:
            yield
        except ProblemFailed:
            raise
        except NotImplementedError:
            self.fail(f"not written yet ({call} raised NotImplementedError)",
                      "replace the `raise NotImplementedError` in the cell above with your code, run that cell, "
                      "then this one")
        except Exception as err:
            lines = str(err).strip().splitlines()
            message = f": {lines[0][:300]}" if lines else ""
            self.fail(f"{call} raised {type(err).__name__}{message}",
                      next((h for fragment, h in (known or {}).items() if fragment in str(err)), hint))

    def tensor(self, value, call: str, shape: tuple | None = None) -> torch.Tensor:
        """``value`` if it is a tensor (of ``shape``, where given), else a FAIL line saying what it is."""
        if not isinstance(value, torch.Tensor):
            self.fail(f"{call} returned {type(value).__name__}, not a tensor",
                      "return the torch tensor you computed (no .item(), no float())")
        if shape is not None and tuple(value.shape) != tuple(shape):
            self.fail(f"{call} returned shape {tuple(value.shape)}, expected {tuple(shape)}",
                      "follow the shapes through your code one line at a time")
        return value


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed Python's, numpy's and torch's generators, and give the notebook its own states back after."""
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])


def _randn(*shape: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64) * scale + shift


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach().double(), b.detach().double(), rtol=1e-7, atol=ATOL)


def _number(value) -> float:
    """A float from a number or a one-element tensor, without torch's warning about its gradient."""
    return float(value.detach() if isinstance(value, torch.Tensor) else value)


def _known_mistake(got: torch.Tensor, mistakes: dict[str, torch.Tensor]) -> str | None:
    """The name of the first wrong formula whose value ``got`` equals, if any."""
    return next((name for name, value in mistakes.items() if _same(got, value)), None)


def _loss_check(check: _Check, answer: Callable, args: tuple, call: str, expected: torch.Tensor,
                mistakes: dict[str, tuple[torch.Tensor, str]], formula: str, inputs: list[torch.Tensor]) -> None:
    """A loss answer's value, then its gradient with respect to ``inputs``, against ``expected``."""
    with check.running(call):
        got = answer(*args)
    got = check.tensor(got, call)
    if got.numel() != 1:
        check.fail(f"{call} returned shape {tuple(got.shape)}, not one number",
                   "average over every element (.mean()), as the expectation E[...] of the paper asks")
    if not _same(got.reshape(()), expected):
        mistake = _known_mistake(got.reshape(()), {name: value for name, (value, _) in mistakes.items()})
        if mistake:
            check.fail(f"{call} = {_number(got):.6f}, which is {mistake}", mistakes[mistake][1])
        check.fail(f"{call} = {_number(got):.6f}, expected {_number(expected):.6f}", f"compute {formula}")
    if not got.requires_grad:
        check.fail(f"{call} has the right value but no gradient",
                   "build it from the input tensors with torch operations (no .item(), .detach() or torch.no_grad())")
    expected_grads = torch.autograd.grad(expected, inputs)
    got_grads = torch.autograd.grad(got.sum(), inputs, allow_unused=True)
    for got_grad, expected_grad in zip(got_grads, expected_grads):
        if got_grad is None or not _same(got_grad, expected_grad):
            check.fail(f"{call} has the right value but not the right gradient",
                       "compute the loss from the inputs with torch operations only (no .detach() inside)")


# ---------------------------------------------------------------- problem set 1: the losses

def check_lsgan_loss(lsgan_loss: Callable) -> None:
    """Problem 1.1: ``lsgan_loss(scores, target_is_real)`` equals :class:`~cyclegan_edu.losses.GANLoss` in
    ``"lsgan"`` mode (paper §4): ``mean((D − 1)²)`` for real, ``mean(D²)`` for fake, over a whole score map."""
    from .losses import GANLoss
    check = _Check("lsgan_loss")
    scores = _randn(2, 1, 6, 6, seed=11, scale=1.5, shift=0.3).requires_grad_()
    for target_is_real in (True, False):
        target = 1.0 if target_is_real else 0.0
        mistakes = {
            "the log loss of the original GAN (GANLoss('vanilla'))":
                (GANLoss("vanilla")(scores, target_is_real),
                 "the paper trains with least squares instead of the log loss (§4): the squared distance to "
                 "the target, mean((D − 1)²) for real and mean(D²) for fake, on the raw scores (no sigmoid)"),
            "the squared distance to the other target":
                (((scores - (1.0 - target)) ** 2).mean(), "target_is_real=True asks for 1, False for 0"),
            "a sum over the score map, not its mean":
                (((scores - target) ** 2).sum(), "average over every patch of every image: .mean(), not .sum()"),
            "computed on sigmoid(scores)":
                (((torch.sigmoid(scores) - target) ** 2).mean(),
                 "LSGAN reads the discriminator's raw scores; no sigmoid"),
        }
        _loss_check(check, lsgan_loss, (scores, target_is_real), f"lsgan_loss(scores, {target_is_real})",
                    GANLoss("lsgan")(scores, target_is_real), mistakes,
                    "mean((scores - 1)**2) for real, mean(scores**2) for fake", [scores])
    check.passed("mean((D − 1)²) for real and mean(D²) for fake on a 2×1×6×6 score map, with the right gradient")


def check_cycle_loss(cycle_loss: Callable) -> None:
    """Problem 1.2: ``cycle_loss(real, reconstructed)``, one direction of Eq. 2: the mean absolute error."""
    from .losses import cycle_loss as reference
    check = _Check("cycle_loss")
    real = _randn(2, 3, 8, 8, seed=21).tanh()
    reconstructed = _randn(2, 3, 8, 8, seed=22).tanh().requires_grad_()
    difference = reconstructed - real
    mistakes = {
        "the mean squared error (L2)": ((difference ** 2).mean(), "Eq. 2 uses the L1 norm: mean(|F(G(x)) − x|)"),
        "a sum, not a mean": (difference.abs().sum(), "average over every pixel of every image: .mean(), not .sum()"),
        "the mean of the signed difference": (difference.mean(),
                                              "take the absolute value of the difference before averaging"),
    }
    _loss_check(check, cycle_loss, (real, reconstructed), "cycle_loss(real, reconstructed)",
                reference(real, reconstructed), mistakes, "mean(|reconstructed − real|)", [reconstructed])
    check.passed("the mean absolute error (L1) of Eq. 2 on 2×3×8×8 images, with the right gradient")


def _tiny_translator(seed: int) -> nn.Module:
    """A 3 → 3 channel convolution and tanh: a stand-in generator with weights of its own."""
    with _seeded(seed):
        return nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Tanh()).double()


def check_identity_loss(identity_loss: Callable) -> None:
    """Problem 1.3: ``identity_loss(G, F, x, y)`` = ``mean|G(y) − y| + mean|F(x) − x|`` (§5.2): each
    generator is fed an image that is already in its output domain."""
    check = _Check("identity_loss")
    G, F = _tiny_translator(31), _tiny_translator(32)
    x, y = _randn(2, 3, 8, 8, seed=33, scale=0.5, shift=-0.3), _randn(2, 3, 8, 8, seed=34, scale=0.5, shift=0.3)

    def l1(a, b):
        return (a - b).abs().mean()

    mistakes = {
        "‖G(x) − x‖₁ + ‖F(y) − y‖₁ (G fed an image of X)":
            (l1(G(x), x) + l1(F(y), y),
             "G maps X → Y, so the identity loss feeds it an image that is already in Y and asks for it back "
             "unchanged: ‖G(y) − y‖₁ + ‖F(x) − x‖₁"),
        "the cycle loss ‖F(G(x)) − x‖₁ + ‖G(F(y)) − y‖₁":
            (l1(F(G(x)), x) + l1(G(F(y)), y), "the identity loss applies each generator once, to its own output domain"),
        "G's term ‖G(y) − y‖₁ alone": (l1(G(y), y), "add F's term, ‖F(x) − x‖₁"),
        "F's term ‖F(x) − x‖₁ alone": (l1(F(x), x), "add G's term, ‖G(y) − y‖₁"),
        "the mean squared error (L2)": (((G(y) - y) ** 2).mean() + ((F(x) - x) ** 2).mean(),
                                        "the identity loss is an L1 distance, like the cycle loss"),
    }
    parameters = list(G.parameters()) + list(F.parameters())
    _loss_check(check, identity_loss, (G, F, x, y), "identity_loss(G, F, x, y)", l1(G(y), y) + l1(F(x), x),
                mistakes, "mean(|G(y) − y|) + mean(|F(x) − x|)", parameters)
    check.passed("‖G(y) − y‖₁ + ‖F(x) − x‖₁ with two small generators, with the right gradients for both")


# ---------------------------------------------------------------- problem set 2: the image pool

def check_image_pool(ImagePool: type) -> None:
    """Problem 2.1: ``ImagePool(size).query(images)`` behaves as the official pool (§4, Shrivastava et al.):
    while filling, store and return each image; once full, for each image, with probability 0.5 return a
    random stored image and store the new one in its place, else return the new one; ``size=0`` is off.

    Checked by behaviour, whatever random calls the answer makes: which images come back, how often a
    stored one does, that a handed-out image leaves the pool, that stored images are detached."""
    check = _Check("ImagePool")
    size, queries = 5, 200
    images = _randn(size + queries + 4, 3, 4, 4, seed=41)
    images[:, 0, 0, 0] = torch.arange(len(images), dtype=torch.float64)     # image i carries its number
    with _seeded(42):
        with check.running("ImagePool(0).query(batch)"):
            off = ImagePool(0).query(images[:2])
        if not _same(check.tensor(off, "ImagePool(0).query(batch)"), images[:2]):
            check.fail("ImagePool(0) changed the batch", "size 0 switches the pool off: return the batch unchanged")
        with check.running(f"ImagePool({size})"):
            pool = ImagePool(size)
        stored: set[int] = set()         # what a pool of this size holds now, given what it returned so far
        handed_out = 0
        for i in range(size + queries):
            image = images[i:i + 1].clone().requires_grad_()
            call = f"query(image {i})"
            with check.running(call):
                out = pool.query(image)
            returned = _image_number(check.tensor(out, call, (1, 3, 4, 4)), images)
            if i < size:
                if returned != i:
                    check.fail(f"while the pool was filling (query {i + 1} of its first {size}) it returned "
                               f"{_describe(returned)} instead of the new image",
                               "until it holds `size` images, store every new image and return it unchanged")
                stored.add(i)
                continue
            if returned == i:
                continue
            if returned is None or returned not in stored:
                check.fail(f"query {i + 1} returned {_describe(returned)}, which a pool of size {size} that "
                           "keeps only what it has not handed out could not hold",
                           "once full, a stored image you return leaves the pool and the new image takes its place; "
                           "never keep more than `size` images")
            if out.requires_grad:
                check.fail("a stored image came back still attached to the graph that made it",
                           "store image.detach(): a stored image that keeps its graph keeps every old generator "
                           "graph in memory, and D's update would reach into it")
            stored.remove(returned)
            stored.add(i)
            handed_out += 1
        rate = handed_out / queries
        if handed_out == 0:
            check.fail(f"in {queries} queries with a full pool it never returned a stored image",
                       "once full, with probability 0.5 return a randomly chosen stored image and put the new "
                       "image in its place; else return the new image")
        if not 0.35 <= rate <= 0.65:
            check.fail(f"with a full pool it returned a stored image in {rate:.0%} of {queries} queries, "
                       "expected about 50%", "swap in a stored image with probability 0.5 (random.random() < 0.5)")
        batch = images[size + queries:]
        call = "query(a batch of 4 images)"
        with check.running(call):
            out = pool.query(batch)
        for row in range(len(batch)):
            number = _image_number(check.tensor(out, call, tuple(batch.shape))[row:row + 1], images)
            if number != size + queries + row and number not in stored:
                check.fail(f"in a batch of 4, row {row} came back as {_describe(number)}",
                           "decide image by image: each row is either that row's new image or a stored one")
    check.passed(f"fills up to {size}, then hands out a stored image in {rate:.0%} of {queries} queries and keeps "
                 "the new one in its place, detached; size 0 is off; batches image by image")


def _image_number(image: torch.Tensor, images: torch.Tensor) -> int | None:
    """Which of ``images`` ``image`` (1, C, H, W) is, by its number and exact pixels, or None."""
    number = int(round(_number(image[0, 0, 0, 0]))) if image.numel() else -1
    if 0 <= number < len(images) and torch.equal(image.detach().double()[0], images[number]):
        return number
    return None


def _describe(number: int | None) -> str:
    return "an image it was never given" if number is None else f"image {number}"


# ---------------------------------------------------------------- problem set 3: the networks

def _build(check: _Check, build: Callable[[], nn.Module], call: str) -> nn.Module:
    with check.running(call):
        net = build()
    if not isinstance(net, nn.Module):
        check.fail(f"{call} built a {type(net).__name__}, not a torch.nn.Module", "subclass nn.Module")
    return net.double()


def _count(check: _Check, build: Callable[[], nn.Module], call: str) -> int:
    """The parameters of a full-size network, counted without allocating them where possible."""
    with check.running(call):
        try:
            with torch.device("meta"):
                net = build()
        except Exception:
            net = build()       # code that cannot build on the meta device (numpy initialisation, say)
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def _adopt_weights(check: _Check, student: nn.Module, reference: nn.Module, layers: str) -> None:
    """Copy the reference's parameters into the student's network, in order, after checking their shapes."""
    theirs, ours = list(student.named_parameters()), list(reference.named_parameters())
    for i, (mine, paper) in enumerate(itertools.zip_longest(theirs, ours)):
        if mine is None or paper is None or mine[1].shape != paper[1].shape:
            yours = f"`{mine[0]}` of shape {tuple(mine[1].shape)}" if mine else "nothing"
            expected = f"one of shape {tuple(paper[1].shape)}" if paper else "nothing"
            check.fail(f"parameter #{i + 1} in your network's order is {yours}, the paper's network has {expected} "
                       f"({len(theirs)} parameter tensors against {len(ours)})",
                       f"build the layers in the order they run: {layers}")
    with torch.no_grad():
        for (_, mine), (_, paper) in zip(theirs, ours):
            mine.copy_(paper)


def _compare_outputs(check: _Check, student: nn.Module, reference: nn.Module, x: torch.Tensor, call: str,
                     layers: str, mistakes: dict[str, tuple[torch.Tensor, str]]) -> None:
    expected = reference(x)
    with check.running(call):
        got = student(x)
    got = check.tensor(got, call, tuple(expected.shape))
    if not _same(got, expected):
        mistake = _known_mistake(got, {name: value for name, (value, _) in mistakes.items()})
        if mistake:
            check.fail(f"with the paper's weights, {call} computes {mistake}", mistakes[mistake][1])
        check.fail(f"with the paper's weights copied in, {call} differs from the paper's network by up to "
                   f"{_number((got - expected).abs().max()):.3g}", f"check each layer against {layers}")


def _with_layers_replaced(net: nn.Module, kind: type, make: Callable[[nn.Module], nn.Module]) -> nn.Module:
    """A copy of ``net`` with every ``kind`` module replaced by ``make(module)``."""
    net = copy.deepcopy(net)
    for module in list(net.modules()):
        for name, child in module.named_children():
            if isinstance(child, kind):
                setattr(module, name, make(child))
    return net


BLOCK_LAYERS = ("reflection pad 1, 3×3 conv, instance norm, ReLU, reflection pad 1, 3×3 conv, instance norm, "
                "then add the input")
GENERATOR_LAYERS = ("c7s1-ngf (reflection pad 3, 7×7 conv, instance norm, ReLU), d2ngf and d4ngf (3×3 conv, stride 2, "
                    "padding 1, instance norm, ReLU), n_blocks × R4ngf, u2ngf and ungf (3×3 transposed conv, stride 2, "
                    "padding 1, output_padding 1, instance norm, ReLU), c7s1-3 (reflection pad 3, 7×7 conv, tanh); "
                    "instance norm without affine parameters, every conv with a bias")
PATCHGAN_LAYERS = ("C64 (4×4 conv stride 2, no norm, LeakyReLU 0.2), C128, C256 (4×4 conv stride 2, instance norm, "
                   "LeakyReLU 0.2), C512 (4×4 conv stride 1, instance norm, LeakyReLU 0.2), a 4×4 conv stride 1 to "
                   "1 channel; padding 1 everywhere, every conv with a bias, no sigmoid")


def check_residual_block(ResidualBlock: type) -> None:
    """Problem 3.1: ``ResidualBlock(dim)`` computes ``x + conv_block(x)`` as the official ``ResnetBlock``
    (appendix 7.2, "R256"), checked with the package's weights copied in."""
    from .networks import ResnetBlock
    check = _Check("ResidualBlock")
    block = _build(check, lambda: ResidualBlock(8), "ResidualBlock(8)")
    with _seeded(51):
        reference = ResnetBlock(8).double()
    _adopt_weights(check, block, reference, BLOCK_LAYERS)
    x = _randn(2, 8, 12, 12, seed=52)
    zero_padded = _with_layers_replaced(reference, nn.ReflectionPad2d, lambda pad: nn.ZeroPad2d(pad.padding))
    mistakes = {
        "conv_block(x), without the skip connection": (reference.conv_block(x), "return x + conv_block(x)"),
        "relu(x + conv_block(x))": (torch.relu(reference(x)),
                                    "CycleGAN's block ends with the sum: no ReLU after adding the input"),
        "zero padding instead of reflection padding": (zero_padded(x),
                                                       "pad with nn.ReflectionPad2d(1) before each 3×3 conv (padding=0)"),
    }
    _compare_outputs(check, block, reference, x, "ResidualBlock(8)(x)", BLOCK_LAYERS, mistakes)
    check.passed("x + conv_block(x) with reflection padding and instance norm, equal to the paper's block "
                 "on a 2×8×12×12 input")


def check_resnet_generator(ResnetGenerator: type) -> None:
    """Problem 3.2: ``ResnetGenerator(input_nc, output_nc, ngf, n_blocks)`` is the official generator: the
    default ``ResnetGenerator()`` has 11,378,179 parameters, and a small one computes the package's
    function with the package's weights."""
    from .networks import ResnetGenerator as Reference
    check = _Check("ResnetGenerator")
    net = _build(check, lambda: ResnetGenerator(3, 3, ngf=8, n_blocks=2), "ResnetGenerator(3, 3, ngf=8, n_blocks=2)")
    with _seeded(61):
        reference = Reference(3, 3, ngf=8, n_blocks=2).double()
    _adopt_weights(check, net, reference, GENERATOR_LAYERS)
    x = _randn(1, 3, 32, 32, seed=62).tanh()
    mistakes = {
        "the paper's output without the final tanh": (
            reference.model[:-1](x), "end with nn.Tanh(): images live in [-1, 1]"),
        "zero padding instead of reflection padding": (
            _with_layers_replaced(reference, nn.ReflectionPad2d, lambda pad: nn.ZeroPad2d(pad.padding))(x),
            "pad with nn.ReflectionPad2d before the 7×7 convs and inside each residual block"),
    }
    _compare_outputs(check, net, reference, x, "ResnetGenerator(3, 3, ngf=8, n_blocks=2)(x)", GENERATOR_LAYERS,
                     mistakes)
    count = _count(check, ResnetGenerator, "ResnetGenerator()")
    if count != RESNET_9BLOCKS_PARAMETERS:
        check.fail(f"ResnetGenerator() has {count:,} parameters, the paper's resnet_9blocks has "
                   f"{RESNET_9BLOCKS_PARAMETERS:,}", "the defaults are input_nc=3, output_nc=3, ngf=64, n_blocks=9")
    check.passed(f"equal to the paper's generator with its weights (ngf=8, 2 blocks, 32×32), and ResnetGenerator() "
                 f"has {RESNET_9BLOCKS_PARAMETERS:,} parameters")


def _receptive_field(net: nn.Module, channels: int, side: int = 192) -> int:
    """The side of the input square that the central output value depends on, measured with its gradient.

    Normalisation layers are removed first: instance norm makes every output depend a little on every
    pixel of its image, which is not what "receptive field" means."""
    norms = (nn.modules.instancenorm._InstanceNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
    probe = _with_layers_replaced(net, norms, lambda _: nn.Identity()).eval()
    x = _randn(1, channels, side, side, seed=71).requires_grad_()
    out = probe(x)
    out[0, 0, out.shape[-2] // 2, out.shape[-1] // 2].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    return int(rows.max() - rows.min() + 1)


def check_patchgan(PatchGAN: type) -> None:
    """Problem 3.3: ``PatchGAN(input_nc, ndf)`` is the 70×70 PatchGAN (§4): 2,764,737 parameters with the
    defaults, a receptive field of 70 pixels, a 30×30 score map for a 256×256 image, and the package's
    function with the package's weights."""
    from .networks import NLayerDiscriminator
    check = _Check("PatchGAN")
    count = _count(check, PatchGAN, "PatchGAN()")
    if count != PATCHGAN_PARAMETERS:
        check.fail(f"PatchGAN() has {count:,} parameters, the paper's 70×70 PatchGAN has {PATCHGAN_PARAMETERS:,}",
                   f"{PATCHGAN_LAYERS}; the defaults are input_nc=3, ndf=64")
    net = _build(check, lambda: PatchGAN(3, ndf=8), "PatchGAN(3, ndf=8)")
    with check.running("PatchGAN(3, ndf=8) on a 1×3×192×192 image"):
        field = _receptive_field(net, 3)
    if field != PATCHGAN_RECEPTIVE_FIELD:
        check.fail(f"each output value sees {field}×{field} input pixels, the paper's PatchGAN sees 70×70",
                   "kernels 4×4 throughout with strides 2, 2, 2, 1, 1: r = 1 + 3·(1 + 2 + 4 + 8 + 8) = 70 "
                   "(every stride multiplies how far apart the next layer's kernel taps are)")
    image = _randn(1, 3, 256, 256, seed=72).tanh()
    call = "PatchGAN(3, ndf=8) on a 256×256 image"
    with check.running(call):
        scores = net(image)
    scores = check.tensor(scores, call)
    if tuple(scores.shape) != (1, 1, 30, 30):
        check.fail(f"{call} outputs shape {tuple(scores.shape)}, the paper's outputs (1, 1, 30, 30): one score per "
                   "overlapping 70×70 patch", "padding=1 in every 4×4 conv, one output channel")
    with _seeded(73):
        reference = NLayerDiscriminator(3, 8).double()
    _adopt_weights(check, net, reference, PATCHGAN_LAYERS)
    mistakes = {"sigmoid(scores)": (torch.sigmoid(reference(image)),
                                    "return raw scores: the loss (LSGAN) reads them, no sigmoid at the end")}
    _compare_outputs(check, net, reference, image, call, PATCHGAN_LAYERS, mistakes)
    check.passed(f"{PATCHGAN_PARAMETERS:,} parameters, a {PATCHGAN_RECEPTIVE_FIELD}×{PATCHGAN_RECEPTIVE_FIELD} "
                 "receptive field, a 30×30 map for a 256×256 image, equal to the paper's with its weights")


# ---------------------------------------------------------------- problem set 4: one training step

class _ReplayPool:
    """A pool without randomness, for checking a training step: each query returns the batch with its
    first image swapped for the oldest stored image, which the new one replaces at the back."""

    def __init__(self, history: torch.Tensor):
        self.images = list(history.detach().clone())
        self.last: torch.Tensor | None = None

    def query(self, images: torch.Tensor) -> torch.Tensor:
        out = images.detach().clone()
        out[0] = self.images.pop(0)
        self.images.append(images[0].detach().clone())
        self.last = out
        return out


class _PassThroughPool:
    """An image pool switched off (``size=0``): the fakes come back as they are, still attached to G's graph."""

    def __init__(self):
        self.last: torch.Tensor | None = None

    def query(self, images: torch.Tensor) -> torch.Tensor:
        self.last = images
        return images


def _tiny_cyclegan(seed: int):
    """The reference: the package's CycleGAN with tiny networks, in float64 on the CPU."""
    from .config import Config
    from .models import CycleGAN
    config = Config(image_size=32, load_size=32, ngf=4, ndf=4, n_blocks=1, batch_size=2, precision="fp32",
                    device="cpu")
    with _seeded(seed):
        model = CycleGAN(config).double()
    return model.setup("cpu")


class _StudentRun:
    """Copies of the reference's networks, optimizers and pools for the student's step, with a log of the
    optimizer steps and of what each discriminator was shown."""

    def __init__(self, reference, pools: dict[str, object]):
        c = reference.config
        self.nets = {"G": copy.deepcopy(reference.G_AB), "F": copy.deepcopy(reference.G_BA),
                     "D_X": copy.deepcopy(reference.D_A), "D_Y": copy.deepcopy(reference.D_B)}
        self.log: list[tuple] = []
        self.optimizers = {
            "G": torch.optim.Adam(itertools.chain(self.nets["G"].parameters(), self.nets["F"].parameters()),
                                  lr=c.lr, betas=(c.beta1, c.beta2)),
            "D": torch.optim.Adam(itertools.chain(self.nets["D_X"].parameters(), self.nets["D_Y"].parameters()),
                                  lr=c.lr, betas=(c.beta1, c.beta2))}
        for name, optimizer in self.optimizers.items():
            optimizer.register_step_pre_hook(lambda *_, name=name: self.log.append(("step", name)))
        for name in ("D_X", "D_Y"):
            self.nets[name].register_forward_pre_hook(lambda _, args, name=name: self.log.append(("D", name, args[0])))
        self.pools = pools

    def arguments(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        n, o, p = self.nets, self.optimizers, self.pools
        return n["G"], n["F"], n["D_X"], n["D_Y"], o["G"], o["D"], p["X"], p["Y"], x, y, 10.0, 0.5


STEP_CALL = "training_step(G, F, D_X, D_Y, opt_G, opt_D, pool_X, pool_Y, x, y)"
STEP_HINTS = {
    "backward through the graph a second time":
        "D's loss reached back into G's graph, which G's update had already used and freed: show D "
        "pool.query(fake.detach()) or fake.detach(), never the fake itself",
    "does not require grad":
        "a loss came out without a gradient: are D's parameters still frozen (requires_grad False) when you "
        "update D, or did you compute a loss under torch.no_grad()?",
}


def _run_step(check: _Check, training_step: Callable, run: _StudentRun, x, y) -> tuple[float, float]:
    run.log.clear()
    with check.running(STEP_CALL, known=STEP_HINTS):
        result = training_step(*run.arguments(x, y))
    try:
        loss_G, loss_D = (_number(value) for value in result)
    except (TypeError, ValueError):
        check.fail(f"{STEP_CALL} returned {type(result).__name__}, not (loss_G, loss_D)",
                   "return G's total loss and the sum of the two discriminators' losses, as numbers")
    return loss_G, loss_D


def _check_order(check: _Check, run: _StudentRun) -> None:
    steps = [event[1] for event in run.log if event[0] == "step"]
    if steps == ["D", "G"]:
        check.fail("it updated the discriminators before the generators",
                   "first G and F (opt_G.step()) against D as it is, then D_X and D_Y (opt_D.step()) on the "
                   "pooled fakes; updating D first judges this step's fakes with tomorrow's D")
    if steps != ["G", "D"]:
        check.fail(f"it called the optimizers' step() in the order {steps or 'never'}, expected "
                   "opt_G.step() once, then opt_D.step() once", "one update of G and F, then one of D_X and D_Y")
    after_g = run.log[next(i for i, event in enumerate(run.log) if event == ("step", "G")):]
    for name, pool in (("D_X", "X"), ("D_Y", "Y")):
        shown = [event[2] for event in after_g if event[0] == "D" and event[1] == name]
        if any(image.requires_grad for image in shown):
            check.fail(f"after G's update, {name} was shown an image still attached to G's graph",
                       "D's loss must not reach the generators: use fake.detach() (the pool's output when the "
                       "pool is off is the fake itself)")
        last = run.pools[pool].last
        if last is None or not any(image.shape == last.shape and torch.equal(image, last) for image in shown):
            check.fail(f"{name} was not trained on pool_{pool}.query(...)'s output",
                       f"show {name} the pooled fakes, pool_{pool}.query(fake), not the fresh fakes: the pool "
                       "keeps D from forgetting older generators' mistakes (§4)")


def _compare_step(check: _Check, run: _StudentRun, reference, losses: tuple[float, float], logged: dict,
                  step: int) -> None:
    loss_G, loss_D = losses
    expected_D = logged["D_A"] + logged["D_B"]
    if abs(loss_D - 2 * expected_D) < 1e-9 * max(1.0, abs(expected_D)):
        check.fail(f"loss_D = {loss_D:.6f}, twice the paper's {expected_D:.6f}",
                   "each discriminator's loss is halved: 0.5·[(D(real) − 1)² + D(fake)²] (§4)")
    nets = {"G": reference.G_AB, "F": reference.G_BA, "D_X": reference.D_A, "D_Y": reference.D_B}
    differ = [name for name, net in nets.items()
              if not all(_same(a, b) for a, b in zip(run.nets[name].parameters(), net.parameters()))]
    if differ:
        hint = ("G's loss is lsgan(D_Y(G(x)), real) + lsgan(D_X(F(y)), real) + λ·[cycle(x, F(G(x))) + "
                "cycle(y, G(F(y)))] + λ·λ_id·identity_loss(G, F, x, y), with λ = 10 and λ_id = 0.5, after "
                "opt_G.zero_grad()" if {"G", "F"} & set(differ) else
                "each D's loss is 0.5·[lsgan(D(real), real) + lsgan(D(pooled fake), fake)], after opt_D.zero_grad() "
                "(or freeze D while G updates)")
        check.fail(f"after step {step}, the weights of {', '.join(differ)} differ from the paper's step", hint)
    if abs(loss_G - logged["G_total"]) > 1e-7 * max(1.0, abs(logged["G_total"])):
        check.fail(f"loss_G = {loss_G:.6f}, expected {logged['G_total']:.6f}",
                   "return G's total loss, every term weighted")
    if abs(loss_D - expected_D) > 1e-7 * max(1.0, abs(expected_D)):
        check.fail(f"loss_D = {loss_D:.6f}, expected {expected_D:.6f}", "return loss of D_X + loss of D_Y")
    for name, net in (("G", reference.G_AB), ("F", reference.G_BA)):
        for mine, paper in zip(run.nets[name].parameters(), net.parameters()):
            if mine.grad is not None and mine.grad.abs().sum() > 0 and not _same(mine.grad, paper.grad):
                check.fail(f"after the step, {name}'s gradients hold more than G's loss",
                           "D's loss reached the generators: show D fake.detach()")


def check_training_step(training_step: Callable) -> None:
    """Problem 4.1: one CycleGAN iteration equals :meth:`CycleGAN.step <cyclegan_edu.models.CycleGAN.step>`:
    G and F first, against D as it is; then D_X and D_Y on the pooled, detached fakes.

    Checked on tiny networks in float64 over two steps, with a pool whose answers are fixed (so the order
    of the pool queries does not matter), then one step with the pool off, whose fakes are not detached."""
    check = _Check("training_step")
    x, y = _randn(2, 2, 3, 32, 32, seed=81).tanh(), _randn(2, 2, 3, 32, 32, seed=82).tanh()
    reference = _tiny_cyclegan(83)
    history = {"X": _randn(4, 3, 32, 32, seed=84).tanh(), "Y": _randn(4, 3, 32, 32, seed=85).tanh()}
    reference.pools = {"fake_A": _ReplayPool(history["X"]), "fake_B": _ReplayPool(history["Y"])}
    run = _StudentRun(reference, {name: _ReplayPool(images) for name, images in history.items()})
    for step in (1, 2):
        losses = _run_step(check, training_step, run, x[step - 1], y[step - 1])
        _check_order(check, run)
        _compare_step(check, run, reference, losses, reference.step(x[step - 1], y[step - 1]), step)
    reference = _tiny_cyclegan(86)
    reference.pools = {"fake_A": _PassThroughPool(), "fake_B": _PassThroughPool()}
    run = _StudentRun(reference, {"X": _PassThroughPool(), "Y": _PassThroughPool()})
    losses = _run_step(check, training_step, run, x[0], y[0])
    _check_order(check, run)
    _compare_step(check, run, reference, losses, reference.step(x[0], y[0]), 1)
    check.passed("G and F first, then D_X and D_Y on the pooled, detached fakes: the paper's weights and losses "
                 "after two steps with a pool, and one with the pool off")


CHECKS: dict[str, Callable[[object], None]] = {
    "lsgan_loss": check_lsgan_loss, "cycle_loss": check_cycle_loss, "identity_loss": check_identity_loss,
    "ImagePool": check_image_pool, "ResidualBlock": check_residual_block, "ResnetGenerator": check_resnet_generator,
    "PatchGAN": check_patchgan, "training_step": check_training_step,
}
"""Each problem's check, by the name the student defines (the keys of :data:`PROBLEMS`)."""
