"""Notebook explorers: static explorers that work on the site (a sweep of trained results, a recorded
training film, the PatchGAN's receptive field), a retrain panel and the live training dashboard.

Two kinds of interactivity, because the book is read in two ways:

* :func:`sweep_explorer`, :func:`training_film` and :func:`patchgan_explorer` are plain HTML with
  their frames embedded (one mechanism, :func:`_explorer`): their sliders (and the film's play button)
  switch precomputed images and numbers in any browser, on the published site with no kernel, in
  Colab and in Jupyter. (An ipywidgets slider saved into a page is drawn, but moves nothing without a
  kernel.)
* :func:`real_or_fake_quiz` is plain HTML too: the paper's perceptual study (§5.1.1) in miniature, a
  sequence of real/fake pairs to click through, with the reader's fooling rate kept by its buttons.
* :func:`retrain_panel` and :func:`live_dashboard` (:mod:`~cyclegan_edu.dashboard`) are ipywidgets
  that call the trainer, for a reader with a running kernel. Only core widgets are used, so they work
  on ipywidgets 7 (Colab) and 8. ipywidgets is imported inside them only: training code (and the
  film recorder, which uses :func:`figure_png`) never imports it.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from numbers import Integral, Number, Real
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

MIN_DPI = 100   # below this, a figure's 9-point labels become unreadable (about 6 px at 60 dpi)
PALETTE = 256   # the colours of the training film's and the PatchGAN explorer's many frames (png_bytes)


def png_bytes(fig: Figure, dpi: int = MIN_DPI, colors: int | None = None) -> bytes:
    """A figure as PNG bytes at ``dpi`` (at least :data:`MIN_DPI`). ``colors``: a palette PNG of at most
    that many colours (256 keeps figures and small images faithful to the eye at about a third of
    the size, what the many frames of a static explorer need). A pyplot figure is closed; a figure
    made without pyplot (``matplotlib.figure.Figure``, safe in a thread) never touches pyplot."""
    try:
        if dpi < MIN_DPI:
            raise ValueError(f"dpi={dpi}: use {MIN_DPI} or more, so that titles and labels stay readable; "
                             "make the figure smaller instead (figsize, or fewer panels)")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        if fig.canvas.manager is not None:
            plt.close(fig)
    if colors is None:
        return buffer.getvalue()
    from PIL import Image
    buffer.seek(0)
    palette = Image.open(buffer).convert("RGB").quantize(colors)
    small = io.BytesIO()
    palette.save(small, format="PNG", optimize=True, dpi=(dpi, dpi))
    return small.getvalue()


def figure_png(fig: Figure, dpi: int = MIN_DPI, colors: int | None = None) -> str:
    """A figure as a base64 PNG string (see :func:`png_bytes`)."""
    return base64.b64encode(png_bytes(fig, dpi, colors)).decode("ascii")


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
    if not isinstance(figure, (str, Figure)):
        raise TypeError(f"sweep_explorer frame {i}: 'figure' must be a matplotlib Figure or a base64 PNG "
                        f"string, not {type(figure).__name__}")
    value = frame["value"]
    return _frame(f"{name} = {value:g}" if isinstance(value, Number) else f"{name} = {value}",
                  figure if isinstance(figure, str) else figure_png(figure, dpi),
                  frame.get("metrics", {}), frame.get("caption", ""))


def _frame(label: str, png: str, metrics: dict, caption: str = "") -> dict:
    """One frame of a static explorer: its label, base64 PNG, numbers (as an HTML table) and caption,
    every text escaped for the page."""
    return {"label": label, "png": png, "metrics": _metrics_html(metrics), "caption": html.escape(str(caption))}


# The static explorers' one mechanism (sweep explorer, training film, PatchGAN explorer): every frame
# is embedded as JSON in the explorer's data attribute, one range slider per axis of the frames, and
# this runs in the browser when a slider moves: the frame at the sliders' row-major index replaces the
# label, the image, the numbers and the caption. No library, no kernel.
_UPDATE_JS = ("var d=this.closest('.cg-explorer'),i=0;"
              "d.querySelectorAll('.cg-slider').forEach(function(s){i=i*(+s.max+1)+(+s.value);});"
              "var f=(d.cgFrames=d.cgFrames||JSON.parse(d.dataset.frames))[i];"
              "d.querySelector('.cg-value').textContent=f.label;"
              "d.querySelector('.cg-figure').src='data:image/png;base64,'+f.png;"
              "d.querySelector('.cg-metrics').innerHTML=f.metrics;"
              "d.querySelector('.cg-caption').innerHTML=f.caption;")

# The play button: step the (first) slider forward every ``{ms}`` milliseconds, from the start again
# when it is at its end, until the last frame or a second click.
_PLAY_JS = ("var b=this,s=b.closest('.cg-explorer').querySelector('.cg-slider');"
            "function show(v){{s.value=v;s.dispatchEvent(new Event('input'));}}"
            "function halt(){{clearInterval(b.cgTimer);b.cgTimer=null;b.textContent='▶ play';}}"
            "if(b.cgTimer){{halt();return;}}"
            "if(+s.value>=+s.max)show(0);"
            "b.textContent='❚❚ pause';"
            "b.cgTimer=setInterval(function(){{if(+s.value>=+s.max)halt();else show(+s.value+1);}},{ms});")


def _explorer(frames: Sequence[dict], axes: Sequence[tuple[str, int, str]], start: Sequence[int], title: str,
              play_ms: int | None = None):
    """A self-contained HTML explorer over ``frames`` (from :func:`_frame`), laid out row-major over
    ``axes``: one slider per ``(name, number of values, note)``, starting at the indices ``start``;
    ``play_ms``: a play button that steps the first slider. Returns an ``IPython.display.HTML``."""
    from IPython.display import HTML
    sizes = [n for _, n, _ in axes]
    if len(frames) != math.prod(sizes):
        raise ValueError(f"{len(frames)} frames do not fill {' × '.join(map(str, sizes))} slider positions")
    for (name, n, _), k in zip(axes, start):
        if not 0 <= k < n:
            raise ValueError(f"start={k} for {name}: must be an index between 0 and {n - 1}")
    shown = frames[sum(k * math.prod(sizes[i + 1:]) for i, k in enumerate(start))]
    update = html.escape(_UPDATE_JS, quote=True)
    play = (f"<button class='cg-play' type='button' style='margin-right:1em' "
            f"onclick=\"{html.escape(_PLAY_JS.format(ms=int(play_ms)), quote=True)}\">▶ play</button>"
            if play_ms else "")
    sliders = "".join(
        f"<label style='margin-right:1.5em;white-space:nowrap'>{html.escape(name)} "
        f"<input class='cg-slider' type='range' min='0' max='{n - 1}' step='1' value='{k}' "
        f"style='width:{min(40, 8 + 3 * n)}ch;vertical-align:middle' aria-label='{html.escape(name)}' "
        f"oninput=\"{update}\"></label>"
        for (name, n, _), k in zip(axes, start))
    notes = " · ".join(html.escape(note) for _, _, note in axes if note)
    return HTML(
        f"<div class='cg-explorer' data-frames=\"{html.escape(json.dumps(list(frames)), quote=True)}\" "
        "style='border:1px solid #ccc;padding:8px;border-radius:6px;max-width:100%'>"
        + (f"<div style='font-weight:bold'>{html.escape(title)}</div>" if title else "")
        + f"<div>{play}{sliders}<b class='cg-value'>{html.escape(shown['label'])}</b></div>"
        + (f"<div style='color:#777;font-size:85%'>{notes}</div>" if notes else "")
        + "<div style='display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap;margin-top:6px'>"
        f"<img class='cg-figure' alt='{html.escape(title or axes[0][0])}' style='max-width:100%' "
        f"src='data:image/png;base64,{shown['png']}'>"
        f"<div class='cg-metrics'>{shown['metrics']}</div></div>"
        f"<div class='cg-caption' style='font-size:90%;color:#444'>{shown['caption']}</div></div>")


def sweep_explorer(frames: Sequence[dict], name: str = "λ", title: str = "", start: int | None = None,
                   dpi: int = MIN_DPI):
    """A self-contained HTML slider over precomputed results (e.g. one trained model per λ).

    Each frame is ``{"value": v, "figure": matplotlib Figure or base64 PNG, "metrics": {name: number},
    "caption": text}`` (metrics and caption optional); ``start`` is the index of the frame shown first
    (default: the middle one). Figures are encoded as PNG at ``dpi`` and closed. Every frame is
    embedded in the page (keep them small), so the slider works wherever the HTML is shown, with or
    without a kernel. Returns an ``IPython.display.HTML`` object: make it a cell's last expression.
    """
    if not frames:
        raise ValueError("sweep_explorer needs at least one frame")
    data = [_frame_data(frame, i, name, dpi) for i, frame in enumerate(frames)]
    values = " · ".join(d["label"].split(" = ", 1)[1] for d in data)
    return _explorer(data, [(name, len(data), f"values: {values}")],
                     [len(data) // 2 if start is None else start], title)


def training_film(film, title: str = "Training, recorded", start: int = 0, play_ms: int = 600):
    """Play a recorded training film (:class:`~cyclegan_edu.film.FilmRecorder`, or its ``to_dict()``
    loaded from JSON) with a step slider and a play button, in plain HTML/JS that needs no kernel.

    Each frame shows the loss curves up to its step beside the sample grid, the step's numbers (the
    learning rate, the diversity readout, the losses drawn by default) and the diversity line, with
    the collapse warning where it applies. ``start``: the frame shown first; ``play_ms``: the time
    per frame when playing.
    """
    from .film import FILM_FORMAT
    from .monitor import CURVES, diversity_line
    film = film.to_dict() if hasattr(film, "to_dict") else film
    if not isinstance(film, dict) or film.get("format") != FILM_FORMAT:
        raise ValueError(f"training_film takes a FilmRecorder or its to_dict() ({FILM_FORMAT}); "
                         "record one with cyclegan_edu.film.FilmRecorder(...).attach(trainer)")
    frames = film["frames"]
    if not frames:
        raise ValueError("this film has no frames: train at least `every` steps with the recorder attached")
    data = [_frame(f"step {f['step']}", f["png"],
                   {"learning rate": f"{f['lr']:.2e}", "diversity ÷ inputs'": f["diversity"],
                    **{k: v for k, v in f["losses"].items() if k in CURVES}},
                   diversity_line(f["diversity"])) for f in frames]
    note = f"{len(frames)} snapshots, every {film['every']} steps, from step {frames[0]['step']} to {frames[-1]['step']}"
    return _explorer(data, [("step", len(data), note)], [start], title, play_ms=play_ms)


PATCHGAN_CHOICES = ("pixel", 1, 2, 3, 4, "image")   # 1×1 PixelGAN, PatchGANs with n_layers 1…4, ImageGAN


def _patchgan_name(choice) -> str:
    if choice == "pixel":
        return "PixelGAN (1×1)"
    if choice == "image":
        return "ImageGAN (whole image)"
    if not isinstance(choice, Integral) or not 1 <= choice <= 4:
        raise ValueError(f"choice {choice!r}: choose among {PATCHGAN_CHOICES} ('pixel', n_layers 1 to 4, 'image')")
    return f"PatchGAN, n_layers={choice}"


def _discriminator(choice, size: int) -> torch.nn.Module:
    """A discriminator of the kind ``choice`` (see :data:`PATCHGAN_CHOICES`) for ``size`` px images, with
    4 filters: the field and the output map do not depend on the width."""
    from .config import min_image_size
    from .networks import FullImageDiscriminator, NLayerDiscriminator, PixelDiscriminator
    _patchgan_name(choice)                              # a known choice
    if choice == "pixel":
        return PixelDiscriminator(3, ndf=4)
    if choice == "image":
        return FullImageDiscriminator(3, ndf=4, image_size=size)
    if size < min_image_size(choice):
        raise ValueError(f"image size {size} px is too small for the PatchGAN with n_layers={choice}: "
                         f"it needs at least {min_image_size(choice)} px")
    return NLayerDiscriminator(3, ndf=4, n_layers=choice)


def _first_unit_and_jump(net: torch.nn.Module) -> tuple[float, int]:
    """Where the centre of output unit 0 falls in the input (pixel centres at 0, 1, …) and the
    distance between neighbouring units' centres: ``c ← c + ((k − 1)/2 − p)·j``, ``j ← j·s`` per conv.
    With :func:`~cyclegan_edu.networks.receptive_field`, unit i sees the square of that side centred
    at ``c + i·j``."""
    centre, jump = 0.0, 1
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            centre += ((m.kernel_size[0] - 1) / 2 - m.padding[0]) * jump
            jump *= m.stride[0]
    return centre, jump


def _patchgan_frame(choice, size: int, image: torch.Tensor, dpi: int) -> dict:
    """One frame of :func:`patchgan_explorer`: the fields over the image, the output map, the numbers."""
    from matplotlib.patches import Rectangle

    from .networks import receptive_field
    from .viz import to_numpy_image
    net, name = _discriminator(choice, size), _patchgan_name(choice)
    with torch.no_grad():
        out = net(torch.zeros(1, 3, size, size)).shape[-1]
    field, (centre, jump) = receptive_field(net), _first_unit_and_jump(net)
    shown = torch.nn.functional.interpolate(image[None].float(), size=(size, size), mode="bilinear",
                                            antialias=True, align_corners=False)[0]
    fig = Figure(figsize=(6.4, 3.0), layout="constrained")
    image_ax, map_ax = fig.subplots(1, 2)
    image_ax.imshow(to_numpy_image(shown), extent=(-0.5, size - 0.5, size - 0.5, -0.5))
    cells = torch.full((out, out, 3), 0.85)                      # D's output map, light grey
    units = [(out // 2, "-", (0.91, 0.07, 0.18))] + [(0, "--", (1.0, 0.83, 0.0))] * (out > 1)
    for unit, style, colour in units:                            # the centre score, the corner score
        at = centre + unit * jump - field / 2
        image_ax.add_patch(Rectangle((at, at), field, field, fill=False, lw=2, ls=style, ec=colour))
        cells[unit, unit] = torch.tensor(colour)
    image_ax.set(xlim=(-0.5, size - 0.5), ylim=(size - 0.5, -0.5), xticks=[0, size - 1], yticks=[0, size - 1])
    image_ax.set_title(f"{size}×{size} input, field {field}×{field}", fontsize=9)
    map_ax.imshow(cells.numpy(), interpolation="nearest")
    map_ax.set(xticks=[], yticks=[])
    if out <= 32:                                                # the scores' cells
        map_ax.set_xticks(torch.arange(out + 1) - 0.5, minor=True)
        map_ax.set_yticks(torch.arange(out + 1) - 0.5, minor=True)
        map_ax.grid(which="minor", color="white", lw=0.5)
        map_ax.tick_params(which="minor", length=0)
    map_ax.set_title(f"D's output: {out}×{out} score{'s' if out > 1 else ''}", fontsize=9)
    fig.suptitle(name, fontsize=10)
    seen = min(field, size)
    padded = centre - field / 2 < -0.5                           # the corner score's field passes the border
    caption = (f"Each of D's {out * out} scores judges a {seen}×{seen} px window ({seen / size:.0%} of the side); "
               "solid: the centre score's window" + (", dashed: the corner score's" if out > 1 else "")
               + (", which reaches into the zero padding." if padded else ".")) if out > 1 else (
        f"D's one score judges the whole {size}×{size} px image (its field, {field} px, reaches into the zero padding).")
    return _frame(f"{name}, {size} px", figure_png(fig, dpi, PALETTE),
                  {"receptive field": f"{field}×{field} px", "output map": f"{out}×{out}",
                   "scores per image": out * out, "field ÷ image side": f"{min(field / size, 1):.0%}"}, caption)


def patchgan_explorer(image: torch.Tensor, sizes: Sequence[int] = (64, 128, 256),
                      choices: Sequence = PATCHGAN_CHOICES, start: tuple[int, int] | None = None,
                      title: str = "What one score of D sees", dpi: int = MIN_DPI):
    """A static explorer of the discriminator's patch (Isola et al. 2017, §3.2.2; chapter 5): a slider
    over ``choices`` (:data:`PATCHGAN_CHOICES`) and one over image ``sizes``. Each frame draws the
    receptive field of D's centre score (solid) and of its corner score (dashed) over ``image``
    ((3, H, W) in [-1, 1], resized to the size), beside D's output map, with the numbers: the field
    (:func:`~cyclegan_edu.networks.receptive_field`: 1, 16, 34, 70, 142) and the output map's size,
    measured by running the discriminator on a zero image of that size. Everything is precomputed;
    the sliders work with no kernel. ``start``: (choice, size) indices, by default the paper's 70×70
    PatchGAN at the middle size.
    """
    if image.dim() == 4:
        image = image[0]
    if image.dim() != 3:
        raise ValueError(f"patchgan_explorer takes one image (3, H, W), got shape {tuple(image.shape)}")
    if not sizes or not choices:
        raise ValueError("patchgan_explorer needs at least one size and one choice")
    frames = [_patchgan_frame(choice, size, image, dpi) for choice in choices for size in sizes]
    names = " · ".join(_patchgan_name(c).split(" (")[0].replace("PatchGAN, ", "") for c in choices)
    axes = [("discriminator", len(choices), names), ("image size", len(sizes), " · ".join(f"{s} px" for s in sizes))]
    if start is None:
        start = (list(choices).index(3) if 3 in choices else 0, len(sizes) // 2)
    return _explorer(frames, axes, start, title)


# --- the real-or-fake quiz (the paper's perceptual study, in miniature) -------------------------

QUIZ_MIN_PX = 128   # the quiz draws each image at least this many pixels wide on screen

# The quiz's one mechanism, the quiz's click handler: every pair is a ``cg-trial`` in the page, its
# fake's side in ``data-fake`` and the reader's pick, once made, in ``data-picked``. A click on an
# image sets it, a click on restart clears them all; then the quiz is redrawn from those attributes
# alone: the first unpicked pair is shown, the others hidden; the line about the last pick; the tally
# (and the judge's over the same pairs, where its picks are given); at the end the summary. No
# library, no kernel.
_QUIZ_JS = (
    "var b=event.target.closest('.cg-pick,.cg-restart');if(!b)return;"
    "var q=this,ts=[].slice.call(q.querySelectorAll('.cg-trial')),n=ts.length;"
    "if(b.classList.contains('cg-restart'))ts.forEach(function(t){delete t.dataset.picked;});"
    "else b.closest('.cg-trial').dataset.picked=b.dataset.side;"
    "var done=ts.filter(function(t){return t.dataset.picked;}),d=done.length,judged='judge' in q.dataset,"
    "fooled=done.filter(function(t){return t.dataset.picked===t.dataset.fake;}).length,"
    "judge=done.filter(function(t){return t.dataset.judge==='1';}).length,last=done[d-1];"
    "function pct(k,m){return m?(100*k/m).toFixed(1)+' %':'–';}"
    "ts.forEach(function(t,i){t.style.display=i===d?'':'none';});"
    "q.querySelector('.cg-feedback').textContent=last?'Pair '+d+': '+(last.dataset.picked===last.dataset.fake"
    "?'fooled, the '+last.dataset.picked+' image was the fake.':'right, the '+last.dataset.picked+' image was real.')"
    "+(judged?(last.dataset.judge==='1'?' The judge was fooled by this pair.':' The judge was not fooled by it.'):''):'';"
    "q.querySelector('.cg-tally').textContent=d+' of '+n+' pairs done · fooled on '+fooled"
    "+' · your fooling rate '+pct(fooled,d)+(judged?' · the judge on the same pairs: fooled on '+judge"
    "+', '+pct(judge,d):'');"
    "var s=q.querySelector('.cg-summary');s.style.display=d<n?'none':'';"
    "s.textContent=d<n?'':'Done. You were fooled on '+fooled+' of '+n+' pairs ('+pct(fooled,n)+')'"
    "+(judged?'; the judge on '+judge+' of '+n+' ('+pct(judge,n)+')':'')"
    "+'. Picking at random is fooled on half the pairs on average (50 %).';")


def _image_png(image: torch.Tensor) -> str:
    """One (C, H, W) image in [-1, 1] as a base64 PNG of its own pixels (8 bits per channel)."""
    from .data import to_image
    buffer = io.BytesIO()
    to_image(image).save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _check_quiz_images(name: str, images) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3) \
            or len(images) == 0:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name}: need a (N, C, H, W) tensor of N >= 1 images in [-1, 1] with C = 1 or 3, got {shape}")
    return images


def quiz_order(n: int, seed: int = 0) -> list[bool]:
    """Which side holds the fake in each of the ``n`` pairs of :func:`real_or_fake_quiz` with ``seed``:
    True for the left. A fair coin per pair, the same for the same ``n`` and ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n,), generator=generator).bool().tolist()


def real_or_fake_quiz(real: torch.Tensor, fake: torch.Tensor, judge_picks=None,
                      title: str = "Real or fake? Click the image you think is real", seed: int = 0,
                      px: int = 160):
    """The paper's perceptual study in miniature, in plain HTML/JS that needs no kernel (Zhu et al. 2017,
    §5.1.1, "AMT perceptual studies": participants see a sequence of pairs, one real image and one
    generated, side by side in random order, and click the one they think is real; the *fooling rate*
    is the share of pairs in which they picked the fake).

    Pair i puts ``real[i]`` beside ``fake[i]`` ((N, C, H, W) tensors in [-1, 1], the same shape), the
    fake on the side that ``seed`` draws (:func:`quiz_order`). The reader clicks an image; the quiz says
    whether it was the real one, shows the next pair and keeps the tally: pairs done, times fooled,
    the fooling rate; at the end it compares it with chance (50 %) and, if ``judge_picks`` is given (N
    booleans: did an automatic judge pick pair i's *fake* as the real one?), with the judge's fooling
    rate on the same pairs. A restart button starts again. The images are drawn ``px`` pixels wide,
    small ones enlarged without smoothing. (The page holds the answers: a quiz to learn from, not an exam.)
    Returns an ``IPython.display.HTML``: make it a cell's last expression.
    """
    from IPython.display import HTML
    real, fake = _check_quiz_images("real", real), _check_quiz_images("fake", fake)
    if fake.shape != real.shape:
        raise ValueError(f"fake: must have the shape of real, {tuple(real.shape)} (pair i is real[i] beside "
                         f"fake[i]), got {tuple(fake.shape)}")
    n = len(real)
    if judge_picks is not None:
        try:
            picks = torch.as_tensor(judge_picks)
        except (TypeError, ValueError, RuntimeError):
            picks = None
        if picks is None or picks.dtype != torch.bool or picks.shape != (n,):
            got = f"{picks.dtype} of shape {tuple(picks.shape)}" if picks is not None else type(judge_picks).__name__
            raise ValueError(f"judge_picks: need {n} booleans, one per pair (True where the judge picked the fake "
                             f"as real), got {got}")
        judge_picks = picks.tolist()
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise ValueError(f"seed={seed!r}: need a whole number (it draws which side holds the fake)")
    if isinstance(px, bool) or not isinstance(px, Integral) or px < QUIZ_MIN_PX:
        raise ValueError(f"px={px!r}: draw the images at least {QUIZ_MIN_PX} pixels wide, so that they can be judged")
    height = round(px * real.shape[2] / real.shape[3])
    style = f"width:{px}px;height:{height}px;image-rendering:pixelated;display:block"
    trials = []
    for i, fake_left in enumerate(quiz_order(n, seed)):
        shown = zip(("left", "right"), (fake[i], real[i]) if fake_left else (real[i], fake[i]))
        buttons = "".join(
            f"<button class='cg-pick' type='button' data-side='{side}' aria-label='the {side} image is real' "
            f"style='padding:2px;border:1px solid #bbb;background:none;cursor:pointer'>"
            f"<img alt='{side} image' style='{style}' src='data:image/png;base64,{_image_png(image)}'></button>"
            for side, image in shown)
        judge = "" if judge_picks is None else f" data-judge='{int(judge_picks[i])}'"
        hidden = "" if i == 0 else " style='display:none'"
        trials.append(f"<div class='cg-trial' data-fake='{'left' if fake_left else 'right'}'{judge}{hidden}>"
                      f"<div style='color:#555'>Pair {i + 1} of {n}</div>"
                      f"<div style='display:flex;gap:12px;flex-wrap:wrap'>{buttons}</div></div>")
    # before any click: what the script draws with no pick made
    tally = f"0 of {n} pairs done · fooled on 0 · your fooling rate –"
    if judge_picks is not None:
        tally += " · the judge on the same pairs: fooled on 0, –"
    return HTML(
        f"<div class='cg-quiz'{'' if judge_picks is None else ' data-judge'} "
        f"onclick=\"{html.escape(_QUIZ_JS, quote=True)}\" style='border:1px solid #ccc;padding:8px;border-radius:6px;max-width:100%'>"
        + (f"<div style='font-weight:bold'>{html.escape(title)}</div>" if title else "")
        + "".join(trials)
        + "<div class='cg-feedback' style='min-height:1.4em;margin-top:6px'></div>"
        f"<div class='cg-tally' style='font-size:90%'>{tally}</div>"
        "<div class='cg-summary' style='display:none;font-weight:bold'></div>"
        "<button class='cg-restart' type='button' style='margin-top:6px'>restart</button></div>")


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


def live_dashboard(trainer, images: torch.Tensor, every: int = 25, direction: str = "AtoB", keys=None,
                   checkpoint=None):
    """The live training dashboard of ``trainer`` on the test ``images``: start / pause / stop, the loss
    weight sliders, save checkpoint, and the curves, samples, diversity readout and D's output map
    refreshed every ``every`` steps. A :class:`~cyclegan_edu.dashboard.LiveDashboard` (see there for
    how it trains without blocking the notebook); make it a cell's last expression to show it.
    """
    from .dashboard import LiveDashboard
    return LiveDashboard(trainer, images, every=every, direction=direction, keys=keys, checkpoint=checkpoint)
