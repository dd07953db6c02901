"""Figures for the book: image grids, loss curves and metric bars, each with a title and labelled axes."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure, SubFigure


def to_numpy_image(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor in [-1, 1] → (H, W, 3) float array in [0, 1] for ``imshow``."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()


def image_grid(rows: Sequence[torch.Tensor], row_titles: Sequence[str] = (), title: str | None = None,
               col_titles: Sequence[str] = (), scale: float = 1.3, figure: Figure | SubFigure | None = None
               ) -> Figure | SubFigure:
    """One row per batch in ``rows`` (each (N, 3, H, W) in [-1, 1]), N columns, titled rows.

    By default a new pyplot figure (shown by the notebook). ``figure`` draws into a given figure or
    subfigure instead, whose size and layout its caller chooses: a ``matplotlib.figure.Figure`` made
    without pyplot is safe to draw in a background thread (the live dashboard's).
    """
    if not rows:
        raise ValueError("image_grid needs at least one row of images")
    n_cols = max(len(r) for r in rows)
    fig = figure if figure is not None else plt.figure(figsize=(scale * n_cols + (1.2 if row_titles else 0), scale * len(rows)))
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([]), ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(row):
                ax.imshow(to_numpy_image(row[c]), interpolation="nearest")
            if c == 0 and r < len(row_titles):
                ax.set_ylabel(row_titles[r], rotation=0, ha="right", va="center", fontsize=9)
            if r == 0 and c < len(col_titles):
                ax.set_title(col_titles[c], fontsize=8)
    if title:
        fig.suptitle(title)
    if figure is None:
        fig.tight_layout()
    return fig


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_history(history: Sequence[dict], keys: Sequence[str] | None = None, smooth: int = 10,
                 title: str = "Training losses", ax: plt.Axes | None = None) -> plt.Axes:
    """Loss curves against the step, each smoothed by a running mean over ``smooth`` records."""
    if not history:
        raise ValueError("the history is empty: train first")
    skip = {"step", "epoch", "lr", "seconds"}
    keys = list(keys) if keys else [k for k in history[0] if k not in skip]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    steps = np.array([h["step"] for h in history])
    for key in keys:
        values = np.array([h.get(key, np.nan) for h in history], dtype=float)
        smoothed = _smooth(values, smooth)
        ax.plot(steps[len(steps) - len(smoothed):], smoothed, label=key)
    ax.set_xlabel("training step")
    ax.set_ylabel("loss" + (f" (running mean of {smooth})" if smooth > 1 else ""))
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=min(3, len(keys)))
    ax.grid(alpha=0.3)
    return ax


def metric_bars(table: dict[str, dict[str, float]], metrics: Sequence[str] | None = None,
                title: str = "", ylabel: str = "score") -> plt.Axes:
    """Grouped bars: one group per row of ``table`` (e.g. an ablation variant), one bar per metric."""
    rows = list(table)
    metrics = list(metrics) if metrics else list(next(iter(table.values())))
    width = 0.8 / len(metrics)
    _, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 3.5))
    x = np.arange(len(rows))
    for i, metric in enumerate(metrics):
        ax.bar(x + (i - (len(metrics) - 1) / 2) * width, [table[r][metric] for r in rows], width, label=metric)
    ax.set_xticks(x, rows, rotation=15)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return ax


def sweep_plot(values: Sequence[float], series: dict[str, Sequence[float]], xlabel: str, title: str,
               log_x: bool = True, spreads: dict[str, Sequence[float]] | None = None) -> plt.Axes:
    """Metrics (one line each) against a swept setting such as λ; λ = 0 is drawn at the left edge.
    ``spreads`` (same keys, e.g. the standard deviations over seeds) are drawn as error bars."""
    _, ax = plt.subplots(figsize=(6, 3.5))
    xs = np.array(values, dtype=float)
    if log_x:
        positive = xs[xs > 0]
        zero_at = positive.min() / 3 if len(positive) else 1e-3
        xs = np.where(xs > 0, xs, zero_at)
        ax.set_xscale("log")
    for name, ys in series.items():
        ax.errorbar(xs, ys, yerr=(spreads or {}).get(name), marker="o", capsize=3, label=name)
    ax.set_xticks(xs, [f"{v:g}" for v in values])
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax



def seed_curves(results, metric: str, variants: Sequence[str] | None = None, ylabel: str | None = None,
                title: str = "", ax: plt.Axes | None = None) -> plt.Axes:
    """A score measured during training (an experiment's ``curve``, e.g. the L1 error against the truth),
    one line per variant: the mean over seeds with a band of ± one standard deviation. ``results`` is an
    :class:`~cyclegan_edu.experiments.Results`. Chapter 1."""
    labels = {v.key: v.label for v in results.experiment.variants}
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for key in variants or [v.key for v in results.variants()]:
        steps, mean, spread = results.curve(metric, key)
        ax.plot(steps, mean, marker="o", markersize=3, label=labels[key])
        ax.fill_between(steps, mean - spread, mean + spread, alpha=0.2)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel or metric)
    ax.set_title(title or f"{metric} during training (mean ± sd over seeds)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def score_map_sheet(results, fake_label: str = "G(x)", image: int = 0, title: str | None = None,
                    scale: float = 1.0) -> Figure:
    """What each variant's final discriminator says, one row per variant: a true image of the target
    domain, D's score map on it, the model's translation of the same input, D's map on that (the maps an
    experiment keeps with ``d_maps``, :meth:`~cyclegan_edu.experiments.Results.d_maps`). Green is "real"
    (1, the LSGAN target), red "fake" (0); each map's title gives its size and mean. ``scale`` multiplies
    the figure's size. Chapter 5."""
    variants = results.variants()
    fig, axes = plt.subplots(len(variants), 4, figsize=(9 * scale, 2.3 * len(variants) * scale), dpi=100, squeeze=False,
                             layout="constrained")
    for row, variant in zip(axes, variants):
        maps, sheet = results.d_maps(variant.key), results.samples(variant.key)
        for ax, label, shown in zip(row[::2], ("true image", fake_label), (sheet["truth of x"], sheet["G(x)"])):
            ax.imshow(to_numpy_image(shown[image]))
            ax.set_title(label, fontsize=8)
        for ax, kind in zip(row[1::2], ("real", "fake")):
            score = maps[kind][image].numpy()
            drawn = ax.imshow(score, cmap="RdYlGn", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"D's {score.shape[0]}×{score.shape[1]} map, mean {score.mean():.2f}", fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(variant.label, fontsize=9)
    fig.colorbar(drawn, ax=axes, shrink=0.5, label="D's score (1 = real, 0 = fake)")
    fig.suptitle(title or f"What each discriminator says about test image {image} and its translation (first seed)")
    return fig
