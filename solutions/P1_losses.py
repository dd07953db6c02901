"""Answers to problem set 1 (notebooks/problems/P1_losses.ipynb): the LSGAN, cycle and identity losses.

Instructor's file: keep it out of what you hand out. See book/problem_sets.md.
"""


def lsgan_loss(scores, target_is_real):
    """Least squares to the target (paper §4): mean((D - 1)^2) for real, mean(D^2) for fake."""
    target = 1.0 if target_is_real else 0.0
    return ((scores - target) ** 2).mean()


def cycle_loss(real, reconstructed):
    """One direction of Eq. 2: the mean absolute error between an image and its reconstruction."""
    return (reconstructed - real).abs().mean()


def identity_loss(G, F, x, y):
    """§5.2: each generator, fed an image already in its output domain, should return it unchanged."""
    return (G(y) - y).abs().mean() + (F(x) - x).abs().mean()
