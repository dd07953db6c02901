"""Notebook explorers: a sweep explorer that works on the static site, a retrain panel and a live
training dashboard.

Two kinds of interactivity, because the book is read in two ways:

* :func:`sweep_explorer` is plain HTML with its frames embedded: its slider switches precomputed
  images and numbers in any browser, on the published site with no kernel, in Colab and in Jupyter.
  (An ipywidgets slider saved into a page is drawn, but moves nothing without a kernel.)
* :func:`retrain_panel` and :func:`live_dashboard` are ipywidgets that call the trainer, for a
  reader with a running kernel. Only core widgets are used, so they work on ipywidgets 7 (Colab)
  and 8, and figures are drawn with matplotlib's inline backend inside a ``widgets.Output``.
  Training code never imports this module; these widgets call the training code.
"""
from __future__ import annotations

import base64
import html
import io
import json
import time
from numbers import Integral, Number, Real
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import torch

from .viz import image_grid, plot_history


MIN_DPI = 100   # below this, a figure's 9-point labels become unreadable (about 6 px at 60 dpi)


def figure_png(fig: plt.Figure, dpi: int = MIN_DPI) -> str:
    """A figure as a base64 PNG string at ``dpi`` (at least :data:`MIN_DPI`; the figure is closed)."""
    if dpi < MIN_DPI:
        plt.close(fig)
        raise ValueError(f"dpi={dpi}: use {MIN_DPI} or more, so that titles and labels stay readable; "
                         "make the figure smaller instead (figsize, or fewer panels)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _format(value) -> str:
    """A metric for display: floats with three decimals, anything else as text."""
    if isinstance(value, Real) and not isinstance(value, Integral):
        return f"{float(value):.3f}"
    return str(value)


def _metrics_html(metrics: dict) -> str:
    cells = "".join(f"<tr><td style='padding:0 1em 0 0'>{html.escape(str(k))}</td>"
                    f"<td style='text-align:right'><b>{html.escape(_format(v))}</b></td></tr>"
                    for k, v in metrics.items())
    return f"<table style='font-size:90%'>{cells}</table>"


def _frame_data(frame: dict, i: int, name: str, dpi: int) -> dict:
    if not isinstance(frame, dict) or "value" not in frame or "figure" not in frame:
        raise ValueError(f"sweep_explorer frame {i} must be a dict with keys 'value' and 'figure' "
                         "(and optionally 'metrics' and 'caption')")
    figure = frame["figure"]
    if not isinstance(figure, (str, plt.Figure)):
        raise TypeError(f"sweep_explorer frame {i}: 'figure' must be a matplotlib Figure or a base64 PNG "
                        f"string, not {type(figure).__name__}")
    value = frame["value"]
    return {"label": f"{name} = {value:g}" if isinstance(value, Number) else f"{name} = {value}",
            "png": figure if isinstance(figure, str) else figure_png(figure, dpi),
            "metrics": _metrics_html(frame.get("metrics", {})),
            "caption": html.escape(str(frame.get("caption", "")))}


# Runs in the browser when the slider moves: read the frames from the explorer's data attribute and
# swap the label, the image, the numbers and the caption. No library, no kernel.
_UPDATE_JS = ("var d=this.closest('.cg-explorer');var f=JSON.parse(d.dataset.frames)[this.value];"
              "d.querySelector('.cg-value').textContent=f.label;"
              "d.querySelector('.cg-figure').src='data:image/png;base64,'+f.png;"
              "d.querySelector('.cg-metrics').innerHTML=f.metrics;"
              "d.querySelector('.cg-caption').innerHTML=f.caption;")


def sweep_explorer(frames: Sequence[dict], name: str = "λ", title: str = "", start: int | None = None,
                   dpi: int = MIN_DPI):
    """A self-contained HTML slider over precomputed results (e.g. one trained model per λ).

    Each frame is ``{"value": v, "figure": matplotlib Figure or base64 PNG, "metrics": {name: number},
    "caption": text}`` (metrics and caption optional); ``start`` is the index of the frame shown first
    (default: the middle one). Figures are encoded as PNG at ``dpi`` and closed. Every frame is
    embedded in the page (keep them small), so the slider works wherever the HTML is shown, with or
    without a kernel. Returns an ``IPython.display.HTML`` object: make it a cell's last expression.
    """
    from IPython.display import HTML
    if not frames:
        raise ValueError("sweep_explorer needs at least one frame")
    data = [_frame_data(frame, i, name, dpi) for i, frame in enumerate(frames)]
    k = len(data) // 2 if start is None else start
    if not 0 <= k < len(data):
        raise ValueError(f"start={start}: must be a frame index between 0 and {len(data) - 1}")
    values = " · ".join(html.escape(d["label"].split(" = ", 1)[1]) for d in data)
    return HTML(
        f"<div class='cg-explorer' data-frames=\"{html.escape(json.dumps(data), quote=True)}\" "
        "style='border:1px solid #ccc;padding:8px;border-radius:6px;max-width:100%'>"
        + (f"<div style='font-weight:bold'>{html.escape(title)}</div>" if title else "")
        + f"<input class='cg-slider' type='range' min='0' max='{len(data) - 1}' step='1' value='{k}' "
        f"style='width:50%;vertical-align:middle' aria-label='{html.escape(name)}' "
        f"oninput=\"{html.escape(_UPDATE_JS, quote=True)}\"> "
        f"<b class='cg-value'>{html.escape(data[k]['label'])}</b> "
        f"<span style='color:#777;font-size:85%'>(values: {values})</span>"
        "<div style='display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap;margin-top:6px'>"
        f"<img class='cg-figure' alt='{html.escape(title or name)}' style='max-width:100%' "
        f"src='data:image/png;base64,{data[k]['png']}'>"
        f"<div class='cg-metrics'>{data[k]['metrics']}</div></div>"
        f"<div class='cg-caption' style='font-size:90%;color:#444'>{data[k]['caption']}</div></div>")


def retrain_panel(train: Callable[[float], object], show: Callable[[object], None], values: Sequence[float],
                  name: str = "λ", start: float | None = None, note: str = ""):
    """A slider over ``values`` and a button that calls ``train(value)`` and then ``show(result)``
    inside an output area: the "live retrain on request" half of an explorer.

    Nothing is trained until the button is clicked (so executing the notebook never trains here).
    ``show`` may draw matplotlib figures: they appear inside the panel. ``note`` is a line of text
    above the slider (say what one training costs). Returns an ``ipywidgets.VBox``.
    """
    import ipywidgets as w
    values = list(values)
    if not values:
        raise ValueError("retrain_panel needs at least one value to choose from")
    start = values[len(values) // 2] if start is None else start
    if start not in values:
        raise ValueError(f"start={start!r} is not one of values={values}")
    slider = w.SelectionSlider(options=values, value=start, description=name, continuous_update=False)
    button = w.Button(description=f"train with this {name}", button_style="primary",
                      layout=w.Layout(width="auto"))
    status = w.HTML(html.escape(note))
    out = w.Output()

    def on_click(_):
        button.disabled = True
        value = slider.value
        status.value = f"training with {html.escape(name)} = {value}…"
        started = time.perf_counter()
        try:
            with out:
                out.clear_output(wait=True)
                show(train(value))
                plt.show()
            status.value = f"{html.escape(name)} = {value}: done in {time.perf_counter() - started:.0f} s"
        except Exception as err:
            status.value = f"{html.escape(name)} = {value}: failed: {html.escape(f'{type(err).__name__}: {err}')}"
            raise
        finally:
            button.disabled = False
    button.on_click(on_click)
    return w.VBox([w.HBox([slider, button]), status, out])


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
