"""A recorded training film: what the live dashboard shows, snapshotted every N steps of a run.

A :class:`FilmRecorder` is a Trainer callback. Every ``every`` steps it keeps one frame: the step,
the learning rate, the step's losses, the diversity readout (:mod:`~cyclegan_edu.monitor`) and one
figure, the loss curves so far beside the sample grid (x, G(x), F(G(x))), as a base64 palette PNG
(at the ``cpu`` preset's 64 px with 4 images, about 100 kB a frame while the outputs are still noise,
less once they are smooth: keep a film to some 10 to 20 frames).
:meth:`FilmRecorder.to_dict` is plain JSON (numbers, strings), small enough to commit with a run's
results; :func:`cyclegan_edu.widgets.training_film` plays it with a slider and a play button in any
browser, with no kernel (the static site, nbval). No ipywidgets here.
"""
from __future__ import annotations

import torch
from matplotlib.figure import Figure

from .monitor import SampleMonitor, loss_figure
from .widgets import MIN_DPI, PALETTE, figure_png

FILM_FORMAT = "cyclegan_edu.film/1"


class FilmRecorder:
    """Record a film of a run on the test ``images`` (see the module docstring).

    >>> film = FilmRecorder(test_A, every=100).attach(trainer)      # doctest: +SKIP
    >>> trainer.fit(); json.dump(film.to_dict(), open("film.json", "w"))   # doctest: +SKIP

    Each frame costs two generator passes over ``images`` and one PNG (keep ``images`` to a few,
    say 4 to 6: they are drawn in every frame). ``keys`` are the loss curves drawn (default:
    :data:`~cyclegan_edu.monitor.CURVES`), ``dpi`` the PNGs' resolution (at least
    :data:`~cyclegan_edu.widgets.MIN_DPI`).
    """

    def __init__(self, images: torch.Tensor, every: int, direction: str = "AtoB", keys=None, dpi: int = MIN_DPI):
        if every < 1:
            raise ValueError(f"every={every}: must be at least 1 (a frame every this many steps)")
        if dpi < MIN_DPI:
            raise ValueError(f"dpi={dpi}: use {MIN_DPI} or more, so that the film's labels stay readable")
        self.monitor = SampleMonitor(images, direction)
        self.every, self.keys, self.dpi = every, keys, dpi
        self.frames: list[dict] = []

    def attach(self, trainer) -> "FilmRecorder":
        """Record ``trainer``'s run from its next step on (a frame every ``every`` steps); returns self."""
        trainer.add_callback(self, every=self.every)
        return self

    def __call__(self, trainer, record: dict) -> None:
        samples = self.monitor.look(trainer.model, trainer.step)
        figure = Figure(figsize=(10.5, 3.2), layout="constrained")
        curves, grid = figure.subfigures(1, 2, width_ratios=(1, 1.1))
        if trainer.history:
            loss_figure(trainer.history, self.keys, figure=curves)
        else:                                   # log_every longer than the film's interval
            curves.text(0.5, 0.5, "no losses logged yet", ha="center", va="center")
        self.monitor.sample_figure(samples, figure=grid)
        self.frames.append({
            "step": trainer.step, "lr": record["lr"],
            "losses": {k: v for k, v in record.items() if k not in ("step", "epoch", "lr", "seconds")},
            "diversity": samples.diversity, "collapsed": samples.collapsed,
            "png": figure_png(figure, self.dpi, PALETTE)})

    def to_dict(self) -> dict:
        """The film as plain JSON: ``{"format", "every", "direction", "frames": [...]}``."""
        return {"format": FILM_FORMAT, "every": self.every, "direction": self.monitor.direction,
                "frames": list(self.frames)}
