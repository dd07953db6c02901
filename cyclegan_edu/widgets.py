"""Notebook explorers: a sweep explorer that works on the static site, a retrain panel and a live
training dashboard.

Two kinds of interactivity, because the book is read in two ways:

* :func:`sweep_explorer` is plain HTML with its frames embedded: its slider switches precomputed
  images and numbers in any browser, on the published site with no kernel, in Colab and in Jupyter.
  (An ipywidgets slider saved into a page is drawn, but moves nothing without a kernel.)
* :func:`retrain_panel` and :func:`live_dashboard` are ipywidgets that call the trainer, for a
  reader with a running kernel. Only core widgets are used, so they work on ipywidgets 7 (Colab)
  and 8. Training code never imports this module.
"""
from __future__ import annotations

import base64
import html
import io
import json
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import torch

from .viz import image_grid, plot_history


def figure_png(fig: plt.Figure, dpi: int = 80) -> str:
    """A figure as a base64 PNG string (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _metrics_html(metrics: dict[str, float]) -> str:
    cells = "".join(f"<tr><td style='padding:0 1em 0 0'>{html.escape(k)}</td><td><b>{v:.3f}</b></td></tr>"
                    for k, v in metrics.items())
    return f"<table style='font-size:90%'>{cells}</table>"


def sweep_explorer(frames: Sequence[dict], name: str = "λ", title: str = "", start: int | None = None):
    """A self-contained HTML slider over precomputed results.

    Each frame is ``{"value": v, "figure": matplotlib Figure or base64 PNG, "metrics": {name: number}}``.
    Returns an ``IPython.display.HTML`` object: display it (or make it a cell's last expression).
    """
    from IPython.display import HTML
    if not frames:
        raise ValueError("sweep_explorer needs at least one frame")
    data = [{"label": f"{name} = {frame['value']:g}",
             "png": frame["figure"] if isinstance(frame["figure"], str) else figure_png(frame["figure"]),
             "metrics": _metrics_html(frame.get("metrics", {}))} for frame in frames]
    k = len(data) // 2 if start is None else start
    update = ("var d=this.closest('.cg-explorer');var f=JSON.parse(d.dataset.frames)[this.value];"
              "d.querySelector('img').src='data:image/png;base64,'+f.png;"
              "d.querySelector('.cg-value').textContent=f.label;"
              "d.querySelector('.cg-metrics').innerHTML=f.metrics;")
    return HTML(
        f"<div class='cg-explorer' data-frames=\"{html.escape(json.dumps(data), quote=True)}\" "
        "style='border:1px solid #ccc;padding:8px;border-radius:6px;max-width:100%'>"
        + (f"<div style='font-weight:bold'>{html.escape(title)}</div>" if title else "")
        + f"<input type='range' min='0' max='{len(data) - 1}' step='1' value='{k}' "
        f"style='width:60%' aria-label='{html.escape(name)}' oninput=\"{html.escape(update, quote=True)}\"> "
        f"<span class='cg-value'>{html.escape(data[k]['label'])}</span>"
        f"<div style='display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap'>"
        f"<img alt='{html.escape(title or name)}' style='max-width:100%' src='data:image/png;base64,{data[k]['png']}'>"
        f"<div class='cg-metrics'>{data[k]['metrics']}</div></div></div>")


def retrain_panel(train: Callable[[float], object], show: Callable[[object], None], values: Sequence[float],
                  name: str = "λ", start: float | None = None):
    """A slider over ``values`` and a button that calls ``train(value)`` and then ``show(result)``
    inside an output area: the "live retrain on request" half of an explorer."""
    import ipywidgets as w
    slider = w.SelectionSlider(options=list(values), value=start if start is not None else values[len(values) // 2],
                               description=name, continuous_update=False)
    button = w.Button(description=f"train with this {name}", button_style="primary")
    out = w.Output()

    def on_click(_):
        button.disabled = True
        with out:
            out.clear_output(wait=True)
            try:
                show(train(slider.value))
                plt.show()
            finally:
                button.disabled = False
    button.on_click(on_click)
    return w.VBox([w.HBox([slider, button]), out])


def live_dashboard(test_A: torch.Tensor, direction: str = "AtoB", keys: Sequence[str] | None = None):
    """An output area that redraws the loss curves and the current translations of ``test_A`` while
    a :class:`~cyclegan_edu.train.Trainer` runs. Returns ``(widget, callback)``:

    >>> widget, callback = live_dashboard(test_A)            # doctest: +SKIP
    >>> display(widget); trainer.add_callback(callback, every=25); trainer.fit()   # doctest: +SKIP
    """
    import ipywidgets as w
    status = w.HTML("waiting for the first steps…")
    out = w.Output()

    def callback(trainer, record):
        status.value = f"step <b>{record['step']}</b> of {trainer.total_steps}, lr {record['lr']:.2e}"
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(7, 3))
            plot_history(trainer.history, keys=keys, smooth=5, ax=ax, title="losses so far")
            plt.show()
            fake = trainer.model.translate(test_A, direction)
            image_grid([test_A, fake], ["input", "translated"], title=f"step {record['step']}")
            plt.show()
    return w.VBox([status, out]), callback
