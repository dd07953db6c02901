"""What the live dashboard and the recorded training film show of a model while it trains.

* the sample grid: test inputs ``x``, their translations ``G(x)`` and, for CycleGAN, the way back
  ``F(G(x))`` (what the cycle loss of Eq. 2 compares with ``x``);
* the diversity readout: :func:`~cyclegan_edu.metrics.output_diversity` of ``G(x)`` (4×4 block means)
  divided by that of the inputs ``x``, with a warning below :data:`COLLAPSE_THRESHOLD`;
* the loss curves so far, and D's output map for one translated image.

Every figure here is a ``matplotlib.figure.Figure`` made without pyplot, so that the dashboard can
draw in its training thread: pyplot's figure list is global and not thread-safe, and the notebook's
inline backend would show a pyplot figure in whichever cell happens to be running. Nothing here
imports ipywidgets (training code and the film recorder use it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from matplotlib.figure import Figure

from .config import DIRECTIONS
from .diagnostics import COLLAPSE_THRESHOLD, score_map
from .metrics import output_diversity
from .models import CycleGAN, TranslationModel
from .viz import image_grid, plot_history, to_numpy_image



def diversity_line(ratio: float) -> str:
    """The readout, one line: the outputs' diversity as a multiple of the inputs', and the warning."""
    line = f"diversity of the outputs: {ratio:.2f} × the inputs'"
    if ratio < COLLAPSE_THRESHOLD:
        line += (f" — below {COLLAPSE_THRESHOLD:g}: possible mode collapse (many inputs, one output); "
                 "look at the samples")
    return line


@dataclass
class Samples:
    """One look at a model: its translations of the monitor's inputs and their relative diversity."""

    step: int
    inputs: torch.Tensor
    translated: torch.Tensor
    reconstructed: torch.Tensor | None          # None for pix2pix, which learns one direction
    diversity: float                            # output_diversity(translated) / output_diversity(inputs)

    @property
    def collapsed(self) -> bool:
        return self.diversity < COLLAPSE_THRESHOLD


class SampleMonitor:
    """Translates a fixed batch of test images (at least two different ones, sides a multiple of 4)
    and draws what the dashboard and the film show of them. ``direction`` is the dataset direction
    of the images: ``"AtoB"`` for images of the dataset's A (``testA``)."""

    def __init__(self, images: torch.Tensor, direction: str = "AtoB"):
        if direction not in DIRECTIONS:
            raise ValueError(f"direction={direction!r}: choose 'AtoB' or 'BtoA'")
        if images.dim() != 4 or len(images) < 2:
            raise ValueError(f"the monitored images must be a batch (N, C, H, W) of at least 2, "
                             f"got shape {tuple(images.shape)}")
        self.images = images.detach().cpu()
        self.direction = direction
        self.input_diversity = output_diversity(self.images)
        if self.input_diversity == 0:
            raise ValueError("the monitored images are all the same: pass different test images, so that the "
                             "outputs' diversity can be compared with theirs")
        x, y = ("x", "y") if direction == "AtoB" else ("y", "x")
        G, F = ("G", "F") if direction == "AtoB" else ("F", "G")
        self.row_titles = (x, f"{G}({x})", f"{F}({G}({x}))")

    def look(self, model: TranslationModel, step: int) -> Samples:
        """Translate the images there (and back, for CycleGAN): two generator passes, no gradients."""
        translated = model.translate(self.images, self.direction).cpu()
        back = "BtoA" if self.direction == "AtoB" else "AtoB"
        reconstructed = model.translate(translated, back).cpu() if isinstance(model, CycleGAN) else None
        return Samples(step, self.images, translated, reconstructed,
                       output_diversity(translated) / self.input_diversity)

    def sample_figure(self, samples: Samples, figure: Figure | None = None, scale: float = 1.0) -> Figure:
        """The grid: a row of inputs, their translations and (CycleGAN) reconstructions."""
        rows = [samples.inputs, samples.translated] + ([samples.reconstructed] if samples.reconstructed is not None else [])
        if figure is None:
            figure = Figure(figsize=(scale * len(samples.inputs) + 1.0, scale * len(rows) + 0.4), layout="constrained")
        return image_grid(rows, self.row_titles[:len(rows)], title=f"step {samples.step}", figure=figure)

    def discriminator_scores(self, model: TranslationModel, samples: Samples) -> torch.Tensor:
        """The output map (h, w) of the discriminator that judges the first translated image: D_Y on
        G(x) (D_X on F(y) the other way); pix2pix's conditional D on the pair (x, G(x)). Scores as the
        loss reads them: LSGAN's raw score (target 1 = real, 0 = fake), the cross-entropy's sigmoid.
        In eval mode without gradients, so batch norm's running statistics are not touched."""
        return score_map(model, samples.translated[:1], self.direction, samples.inputs[:1])[0]

    def discriminator_figure(self, model: TranslationModel, samples: Samples) -> Figure:
        """The first translated image beside D's output map on it (one score per patch)."""
        scores = self.discriminator_scores(model, samples)
        figure = Figure(figsize=(5.2, 2.4), layout="constrained")
        image_ax, map_ax = figure.subplots(1, 2)
        image_ax.imshow(to_numpy_image(samples.translated[0]), interpolation="nearest")
        image_ax.set_title(self.row_titles[1], fontsize=9)
        image_ax.set_axis_off()
        shown = map_ax.imshow(scores.numpy(), cmap="RdYlGn", vmin=0, vmax=1, interpolation="nearest")
        h, w = scores.shape
        map_ax.set_title(f"D's output: {h}×{w} scores", fontsize=9)
        map_ax.set_xticks([]), map_ax.set_yticks([])
        figure.colorbar(shown, ax=map_ax, label="1 = real, 0 = fake", shrink=0.9)
        return figure


# the curves shown by default: the terms G_total adds up (weighted, so a changed λ shows) and D's losses
CURVES = ("G_AB_gan", "G_BA_gan", "cycle_A_weighted", "cycle_B_weighted", "D_A", "D_B",   # CycleGAN
          "G_gan", "G_L1", "D")                                                           # pix2pix


def loss_figure(history: Sequence[dict], keys: Sequence[str] | None = None, smooth: int = 5,
                size: tuple[float, float] = (5.5, 2.6), figure: Figure | None = None) -> Figure:
    """The loss curves so far (:func:`~cyclegan_edu.viz.plot_history`; by default those of
    :data:`CURVES` that the history holds) on a pyplot-free figure, or on ``figure``."""
    if keys is None and history:
        keys = [k for k in CURVES if k in history[0]]
    if figure is None:
        figure = Figure(figsize=size, layout="constrained")
    plot_history(history, keys=keys, smooth=smooth, ax=figure.subplots(), title="losses so far")
    return figure
