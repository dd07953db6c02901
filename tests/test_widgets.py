"""The notebook explorers: the static sweep explorer's HTML, the retrain panel and the live dashboard.

The sweep explorer must carry every frame inside its HTML (the published site has no kernel), with
the slider's range matching the frames and every piece of text escaped. The retrain panel must not
train when it is built, and must train (here with a fake training function) when its button is
clicked. The browser half (moving the slider swaps the image) is in ``tests/test_site.py``.
"""
from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from cyclegan_edu import widgets  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Elements(HTMLParser):
    """Every start tag of a fragment with its attributes (entities decoded), in document order."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def first(self, tag: str, css_class: str | None = None) -> dict:
        for name, attrs in self.tags:
            if name == tag and (css_class is None or css_class in attrs.get("class", "").split()):
                return attrs
        raise AssertionError(f"no <{tag} class={css_class}> in the explorer")


def tiny_figure(level: float) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.imshow(torch.full((4, 4), level).numpy(), vmin=0, vmax=1)
    return fig


@pytest.fixture
def frames():
    png = widgets.figure_png(tiny_figure(0.5))
    return [{"value": 0, "figure": tiny_figure(0.0), "metrics": {"realism": 0.25, "cycle L1": 0.5}},
            {"value": 10, "figure": png, "metrics": {"realism": 0.75, "cycle L1": 0.0625}, "caption": "the paper's λ"},
            {"value": 100, "figure": tiny_figure(1.0), "metrics": {"<score & 'co'>": 1, "note": 'a "quoted" <b>'}}]


def test_figure_png_is_a_base64_png_and_closes_the_figure():
    fig = tiny_figure(0.3)
    encoded = widgets.figure_png(fig)
    assert base64.b64decode(encoded)[:8] == PNG_MAGIC
    assert not plt.fignum_exists(fig.number)


def test_sweep_explorer_embeds_every_frame_and_a_matching_slider(frames):
    given_png = frames[1]["figure"]
    page = widgets.sweep_explorer(frames, name="λ", title="cycle weight", start=1).data
    parsed = Elements(page)
    embedded = json.loads(parsed.first("div", "cg-explorer")["data-frames"])

    assert [f["label"] for f in embedded] == ["λ = 0", "λ = 10", "λ = 100"]
    assert all(base64.b64decode(f["png"])[:8] == PNG_MAGIC for f in embedded)
    assert embedded[1]["png"] == given_png                     # a base64 frame is embedded as given
    assert len({f["png"] for f in embedded}) == 3              # three different images
    assert "0.250" in embedded[0]["metrics"] and "0.062" in embedded[1]["metrics"]
    assert embedded[1]["caption"] == "the paper&#x27;s λ"

    slider = parsed.first("input", "cg-slider")
    assert (slider["type"], slider["min"], slider["max"], slider["value"]) == ("range", "0", "2", "1")
    assert "JSON.parse(d.dataset.frames)[this.value]" in slider["oninput"]
    # what shows before any script runs is the start frame
    assert parsed.first("img", "cg-figure")["src"] == "data:image/png;base64," + given_png
    assert "0.750" in page and "λ = 10" in page


def png_width(encoded: str) -> int:
    return int.from_bytes(base64.b64decode(encoded)[16:20], "big")   # the IHDR chunk's width field


def test_sweep_explorer_encodes_figures_at_the_given_dpi():
    pages = {dpi: widgets.sweep_explorer([{"value": 1, "figure": tiny_figure(0.5)}], dpi=dpi).data for dpi in (100, 200)}
    widths = {dpi: png_width(json.loads(Elements(page).first("div", "cg-explorer")["data-frames"])[0]["png"])
              for dpi, page in pages.items()}
    assert 1.8 < widths[200] / widths[100] < 2.2


def test_figures_below_100_dpi_are_refused():
    """Chapter 3's explorer frames were saved at 60 dpi, where 9-point labels are about 6 pixels high."""
    with pytest.raises(ValueError, match="dpi=60: use 100 or more"):
        widgets.sweep_explorer([{"value": 1, "figure": tiny_figure(0.5)}], dpi=60)


def test_sweep_explorer_starts_in_the_middle_and_closes_figures(frames):
    figure = frames[0]["figure"]
    page = widgets.sweep_explorer(frames).data
    assert Elements(page).first("input", "cg-slider")["value"] == "1"
    assert not plt.fignum_exists(figure.number)


def test_sweep_explorer_escapes_names_metrics_and_captions(frames):
    frames[2]["caption"] = "<script>alert(1)</script>"
    page = widgets.sweep_explorer(frames, name="λ<cyc>", title='the "title" & <i>', start=2).data
    assert "<script>" not in page and "<cyc>" not in page and "<i>" not in page and '"quoted"' not in page
    parsed = Elements(page)
    assert parsed.first("input", "cg-slider")["aria-label"] == "λ<cyc>"      # decoded back intact
    last = json.loads(parsed.first("div", "cg-explorer")["data-frames"])[2]
    assert "&lt;score &amp; &#x27;co&#x27;&gt;" in last["metrics"]            # escaped for innerHTML
    assert "<b>1</b>" in last["metrics"]                                      # an integer stays an integer
    assert last["caption"] == "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.mark.parametrize("bad, message", [([], "at least one frame"),
                                          ([{"value": 1}], "keys 'value' and 'figure'"),
                                          ([{"value": 1, "figure": 3}], "matplotlib Figure or a base64")])
def test_sweep_explorer_rejects_bad_frames(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        widgets.sweep_explorer(bad)


def test_sweep_explorer_rejects_a_start_outside_the_frames(frames):
    with pytest.raises(ValueError, match="start=3"):
        widgets.sweep_explorer(frames, start=3)


def widgets_of(widget, kind):
    """Every widget of class ``kind`` in a widget tree, depth first."""
    found = [widget] if isinstance(widget, kind) else []
    for child in getattr(widget, "children", ()):
        found += widgets_of(child, kind)
    return found


def test_retrain_panel_trains_only_when_its_button_is_clicked():
    import ipywidgets as w
    trained, shown = [], []

    def fake_train(value):
        trained.append(value)
        return {"model for": value}

    panel = widgets.retrain_panel(fake_train, shown.append, [0, 1, 10, 100], name="λ", note="about a minute")
    assert trained == [] and shown == []                       # building trains nothing
    (slider,), (button,) = widgets_of(panel, w.SelectionSlider), widgets_of(panel, w.Button)
    assert list(slider.options) == [0, 1, 10, 100] and slider.value == 10
    assert "about a minute" in widgets_of(panel, w.HTML)[0].value

    slider.value = 100
    button.click()                                              # runs the on_click handlers
    assert trained == [100] and shown == [{"model for": 100}]
    assert not button.disabled
    assert "done" in widgets_of(panel, w.HTML)[0].value


def test_retrain_panel_reenables_its_button_when_training_fails():
    import ipywidgets as w

    def failing_train(value):
        raise RuntimeError("out of memory")

    panel = widgets.retrain_panel(failing_train, print, [1, 2])
    (button,) = widgets_of(panel, w.Button)
    button.click()                      # ipywidgets logs the callback's exception (a kernel shows it)
    assert not button.disabled
    assert "failed: RuntimeError: out of memory" in widgets_of(panel, w.HTML)[0].value


def test_retrain_panel_rejects_a_start_not_among_the_values():
    with pytest.raises(ValueError, match="start=5"):
        widgets.retrain_panel(print, print, [1, 2, 3], start=5)
    with pytest.raises(ValueError, match="at least one value"):
        widgets.retrain_panel(print, print, [])


def test_live_dashboard_callback_reports_the_step():
    import ipywidgets as w

    class FakeModel:
        def translate(self, x, direction):
            return -x

    class FakeTrainer:
        total_steps = 20
        model = FakeModel()
        history = [{"step": s, "lr": 2e-4, "G_total": 1.0 / s, "D_A": 0.25} for s in range(1, 11)]

    widget, callback = widgets.live_dashboard(torch.zeros(2, 3, 8, 8), keys=["G_total", "D_A"])
    callback(FakeTrainer(), FakeTrainer.history[-1])
    status = widgets_of(widget, w.HTML)[0].value
    assert "<b>10</b> of 20" in status and "2.00e-04" in status
    plt.close("all")
