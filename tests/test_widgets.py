"""The notebook explorers: the static explorers' HTML (sweep, training film, PatchGAN field), the
retrain panel and the live dashboard.

The static explorers must carry every frame inside their HTML (the published site has no kernel),
with the sliders' ranges matching the frames and every piece of text escaped; their scripts are run
in a headless Chromium here (slow), and chapter 3's on the built site in ``tests/test_site.py``. The
retrain panel must not train when it is built, and must train (here with a fake training function)
when its button is clicked. The dashboard's every control is driven headlessly (``.click()``,
``.value = …``) on a real Trainer training in the dashboard's thread.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from cyclegan_edu import widgets  # noqa: E402
from cyclegan_edu.config import Config  # noqa: E402
from cyclegan_edu.data import UnpairedImageFolder, load_folder  # noqa: E402
from cyclegan_edu.film import FILM_FORMAT, FilmRecorder  # noqa: E402
from cyclegan_edu.train import Trainer, read_checkpoint  # noqa: E402

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
    # the shared hook: the frame at the sliders' index, from the frames embedded in the explorer
    assert "JSON.parse(d.dataset.frames)" in slider["oninput"] and ".cg-slider" in slider["oninput"]
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


# --- the live dashboard -------------------------------------------------------------------------

def tiny(**changes) -> Config:
    """Seconds-fast nets (a step takes a few hundredths of a second)."""
    return Config(image_size=32, load_size=36, ngf=4, ndf=4, n_blocks=1, batch_size=4, pool_size=10,
                  iters=200, iters_decay=0, device="cpu", precision="fp32").replace(**changes)


def wait_until(condition, what: str, timeout: float = 60.0):
    """Poll ``condition()`` until it is truthy (the dashboard trains in its own thread)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.01)


def used_weight(record: dict, term: str = "cycle_A") -> float:
    """The weight a step actually gave ``term`` in G_total (the logged weighted term over the unweighted)."""
    return record[f"{term}_weighted"] / record[term]


@pytest.fixture
def test_A(tiny_folder):
    return load_folder(tiny_folder / "testA", 32)


def test_dashboard_start_pause_sliders_save_resume_and_stop(tiny_folder, test_A, tmp_path):
    import ipywidgets as w
    trainer = Trainer(tiny(), tiny_folder, out=tmp_path / "run", progress=True)
    dashboard = widgets.live_dashboard(trainer, test_A, every=3)
    assert isinstance(dashboard.widget, w.VBox) and dashboard.state == "ready" and trainer.step == 0
    assert set(dashboard.sliders) == {"lambda_cycle", "lambda_identity"}
    assert (dashboard.sliders["lambda_cycle"].value, dashboard.sliders["lambda_identity"].value) == (10.0, 0.5)
    assert dashboard.pause_button.disabled and dashboard.stop_button.disabled

    dashboard.start_button.click()                                  # start trains, in its own thread
    wait_until(lambda: trainer.step >= 4, "the dashboard to train 4 steps")
    assert dashboard.thread.is_alive() and dashboard.state == "running" and dashboard.start_button.disabled
    assert trainer.progress is False
    dashboard.pause_button.click()                                  # pause: waits after the step in flight
    wait_until(lambda: dashboard.state == "paused", "the pause")
    paused_at = trainer.step
    time.sleep(0.3)
    assert trainer.step == paused_at and dashboard.thread.is_alive()
    assert f"paused after step {paused_at}" in dashboard.note.value and "resume" in dashboard.start_button.description
    assert all(used_weight(r) == pytest.approx(10) for r in trainer.history)

    dashboard.sliders["lambda_cycle"].value = 1.0                   # the sliders: from the next step on
    dashboard.sliders["lambda_identity"].value = 2.0
    assert trainer.model.config.lambda_cycle == 10.0 and "λ_id = 2 from the next step on" in dashboard.note.value
    dashboard.save_button.click()                                   # saved by the paused training thread
    wait_until(lambda: "saved" in dashboard.note.value, "the checkpoint")
    assert read_checkpoint(tmp_path / "run")["step"] == paused_at

    dashboard.start_button.click()                                  # resume
    wait_until(lambda: trainer.step >= paused_at + 2, "two more steps")
    assert (trainer.model.config.lambda_cycle, trainer.model.config.lambda_identity) == (1.0, 2.0)
    after = [r for r in trainer.history if r["step"] > paused_at]
    assert [used_weight(r) for r in after[:2]] == pytest.approx([1, 1])
    assert [used_weight(r, "idt_A") for r in after[:2]] == pytest.approx([2, 2])     # λ·λ_id
    assert trainer.loss_weight_changes[0] == {"step": paused_at + 1, "lambda_cycle": 1.0, "lambda_identity": 2.0}

    dashboard.stop_button.click()                                   # stop: the thread ends, with a checkpoint
    dashboard.join(60)
    assert not dashboard.thread.is_alive() and dashboard.state == "stopped" and dashboard.error is None
    stopped_at = trainer.step
    assert read_checkpoint(tmp_path / "run")["step"] == stopped_at < trainer.total_steps
    assert f"stopped after step {stopped_at}; checkpoint saved" in dashboard.note.value
    assert f"step <b>{stopped_at}</b> of 200" in dashboard.status.value
    assert dashboard.stop_button.disabled and not dashboard.start_button.disabled
    assert trainer.progress is True                     # no progress bar while the dashboard trained, then restored

    # the displays: refreshed every 3 steps, PNGs of the curves, the samples and D's map
    assert dashboard.last_samples.step % 3 == 0 and dashboard.last_samples.reconstructed is not None
    assert all(image.value[:8] == PNG_MAGIC for image in (dashboard.curves, dashboard.samples, dashboard.critic))
    assert "diversity of the outputs:" in dashboard.diversity.value
    plt.close("all")


def test_dashboard_wait_for_step_returns_at_the_step_or_when_it_cannot_come(tiny_folder, test_A):
    trainer = Trainer(tiny(iters=12), tiny_folder, progress=False)
    dashboard = widgets.live_dashboard(trainer, test_A, every=50)
    assert dashboard.wait_for_step(3, timeout=1) is False             # not started: it cannot come
    dashboard.start_button.click()
    assert dashboard.wait_for_step(3, timeout=60) is True and trainer.step >= 3
    dashboard.pause_button.click()
    wait_until(lambda: dashboard.state == "paused", "the pause")
    assert dashboard.wait_for_step(trainer.total_steps, timeout=60) is False      # paused: returns at once
    dashboard.start_button.click()
    assert dashboard.wait_for_step(trainer.total_steps, timeout=60) is True
    dashboard.join(60)
    assert dashboard.wait_for_step(trainer.total_steps + 1) is False and dashboard.state == "finished"
    plt.close("all")


def test_dashboard_saves_where_asked_when_idle_and_not_without_a_destination(tiny_folder, test_A, tmp_path):
    trainer = Trainer(tiny(), tiny_folder, progress=False)
    assert widgets.live_dashboard(trainer, test_A).save_button.disabled          # no run directory, no path
    dashboard = widgets.live_dashboard(trainer, test_A, checkpoint=tmp_path / "saved" / "dash.pt")
    dashboard.save_button.click()                                                # not training: saved at once
    assert read_checkpoint(tmp_path / "saved" / "dash.pt")["step"] == 0
    assert "checkpoint of step 0 saved" in dashboard.note.value


def test_dashboard_refuses_a_weight_the_model_cannot_take_and_puts_the_slider_back(tiny_folder, test_A):
    grey = Trainer(tiny(input_nc=1, lambda_identity=0.0), tiny_folder, progress=False)
    dashboard = widgets.live_dashboard(grey, test_A[:, :1])
    dashboard.sliders["lambda_identity"].value = 0.5
    assert dashboard.sliders["lambda_identity"].value == 0.0
    assert "λ_id stays 0: the identity loss feeds B images to G_AB" in dashboard.note.value
    assert grey.state_dict()["loss_weight_changes"] == [] and grey.model.config.lambda_identity == 0.0


def test_dashboard_of_pix2pix_has_the_l1_slider(tiny_folder, test_A):
    data = UnpairedImageFolder(tiny_folder, image_size=32, load_size=36)
    trainer = Trainer(tiny(lambda_identity=0.0, lambda_l1=30.0), data, model="pix2pix", progress=False)
    dashboard = widgets.live_dashboard(trainer, test_A)
    assert list(dashboard.sliders) == ["lambda_l1"] and dashboard.sliders["lambda_l1"].value == 30.0
    assert 30.0 in dashboard.sliders["lambda_l1"].options                     # the current value is a position


def test_dashboard_reports_a_failure_and_a_finished_schedule(tiny_folder, test_A, monkeypatch):
    trainer = Trainer(tiny(iters=2), tiny_folder, progress=False)
    dashboard = widgets.live_dashboard(trainer, test_A, every=5)
    dashboard.start_button.click()
    dashboard.join(60)
    assert dashboard.state == "finished" and trainer.step == 2
    assert dashboard.last_samples.step == 2                 # refreshed at the last step too
    dashboard.start_button.click()
    assert dashboard.state == "finished" and "nothing left to train" in dashboard.note.value

    def out_of_memory(real_A, real_B):
        raise RuntimeError("out of memory")

    failing = Trainer(tiny(), tiny_folder, progress=False)
    monkeypatch.setattr(failing.model, "train_step", out_of_memory)
    broken = widgets.live_dashboard(failing, test_A)
    broken.start_button.click()
    broken.join(60)
    assert broken.state == "failed" and isinstance(broken.error, RuntimeError)
    assert "RuntimeError: out of memory" in broken.note.value and not broken.start_button.disabled
    plt.close("all")


def test_one_trainer_trains_in_one_dashboard_at_a_time(tiny_folder, test_A):
    trainer = Trainer(tiny(), tiny_folder, progress=False)
    first, second = widgets.live_dashboard(trainer, test_A, every=50), widgets.live_dashboard(trainer, test_A)
    first.start_button.click()
    second.start_button.click()
    assert second.thread is None and "training in another dashboard" in second.note.value
    first.stop_button.click()
    first.join(60)
    assert first.state == "stopped"


def test_training_code_never_imports_ipywidgets():
    modules = "cyclegan_edu.train, cyclegan_edu.monitor, cyclegan_edu.film, cyclegan_edu.widgets, cyclegan_edu.dashboard"
    code = f"import sys, {modules}; print('ipywidgets' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "False", result.stderr


# --- the recorded training film ------------------------------------------------------------------

def png_dpi(encoded: str) -> float:
    """The resolution a PNG declares (its pHYs chunk, pixels per metre), in dots per inch."""
    data = base64.b64decode(encoded)
    at = data.index(b"pHYs") + 4
    per_metre = int.from_bytes(data[at:at + 4], "big")
    assert data[at + 8] == 1, "the pHYs chunk is not in metres"
    return per_metre * 0.0254


@pytest.fixture(scope="module")
def film(tiny_folder):
    trainer = Trainer(tiny(iters=7), tiny_folder, progress=False)
    recorder = FilmRecorder(load_folder(tiny_folder / "testA", 32), every=3).attach(trainer)
    trainer.fit()
    return trainer, recorder


def test_the_recorder_keeps_a_frame_every_n_steps_as_plain_json(film):
    trainer, recorder = film
    recorded = json.loads(json.dumps(recorder.to_dict()))            # plain JSON, unchanged by a round trip
    assert recorded == recorder.to_dict() and recorded["format"] == FILM_FORMAT and recorded["every"] == 3
    assert [f["step"] for f in recorded["frames"]] == [3, 6]
    by_step = {r["step"]: r for r in trainer.history}
    for frame in recorded["frames"]:
        record = by_step[frame["step"]]
        assert frame["lr"] == record["lr"] and frame["losses"]["cycle_A"] == record["cycle_A"]
        assert frame["diversity"] > 0 and frame["collapsed"] is False
        assert base64.b64decode(frame["png"])[:8] == PNG_MAGIC
        assert round(png_dpi(frame["png"])) >= widgets.MIN_DPI
        assert base64.b64decode(frame["png"])[25] == 3                 # a palette PNG (IHDR colour type 3): small


def test_recording_a_film_does_not_change_the_run(film, tiny_folder):
    """The recorder translates in eval mode and draws no random numbers: the same losses as without it."""
    filmed, _ = film
    plain = Trainer(tiny(iters=7), tiny_folder, progress=False)
    plain.fit()
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in plain.history] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in filmed.history]


def test_training_film_embeds_every_frame_with_a_slider_and_a_play_button(film):
    _, recorder = film
    page = widgets.training_film(recorder, title="tiny run").data
    parsed = Elements(page)
    embedded = json.loads(parsed.first("div", "cg-explorer")["data-frames"])
    assert [f["label"] for f in embedded] == ["step 3", "step 6"]
    assert [f["png"] for f in embedded] == [f["png"] for f in recorder.frames]
    assert all("diversity of the outputs" in f["caption"] and "cycle_A_weighted" in f["metrics"] for f in embedded)
    slider = parsed.first("input", "cg-slider")
    assert (slider["min"], slider["max"], slider["value"]) == ("0", "1", "0")
    assert "JSON.parse(d.dataset.frames)" in slider["oninput"]
    play = parsed.first("button", "cg-play")["onclick"]
    assert "setInterval" in play and "dispatchEvent(new Event('input'))" in play and ",600);" in play
    assert parsed.first("img", "cg-figure")["src"].endswith(recorder.frames[0]["png"])


def test_training_film_warns_of_a_collapse_and_refuses_what_is_not_a_film(film):
    _, recorder = film
    collapsed = recorder.to_dict()
    collapsed["frames"] = [dict(collapsed["frames"][0], diversity=0.1)]
    page = widgets.training_film(collapsed).data
    assert "below 0.25: possible mode collapse" in page
    with pytest.raises(ValueError, match="training_film takes a FilmRecorder"):
        widgets.training_film({"frames": []})
    with pytest.raises(ValueError, match="no frames"):
        widgets.training_film(dict(collapsed, frames=[]))
    with pytest.raises(ValueError, match="every=0"):
        FilmRecorder(recorder.monitor.images, every=0)
    with pytest.raises(ValueError, match="dpi=60: use 100 or more"):
        FilmRecorder(recorder.monitor.images, every=5, dpi=60)


# --- the PatchGAN explorer -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def patchgan_page(tiny_folder):
    image = load_folder(tiny_folder / "testB", 32)[0]
    return widgets.patchgan_explorer(image).data


def test_patchgan_explorer_shows_the_fields_and_the_output_maps_at_64_128_256(patchgan_page):
    parsed = Elements(patchgan_page)
    frames = json.loads(parsed.first("div", "cg-explorer")["data-frames"])
    sizes, choices = (64, 128, 256), widgets.PATCHGAN_CHOICES
    assert len(frames) == len(choices) * len(sizes)
    fields = {"pixel": 1, 1: 16, 2: 34, 3: 70, 4: 142}
    for c, choice in enumerate(choices):
        for s, size in enumerate(sizes):
            frame = frames[c * len(sizes) + s]                      # row-major: choice, then size
            assert frame["label"].endswith(f", {size} px")
            # one score per pixel; S/2^n − 2 for the PatchGAN (4×4 convs, padding 1); one for the ImageGAN
            out = size if choice == "pixel" else 1 if choice == "image" else size // 2 ** choice - 2
            assert f"<b>{out}×{out}</b>" in frame["metrics"] and f"<b>{out * out}</b>" in frame["metrics"]
            if choice in fields:
                assert f"<b>{fields[choice]}×{fields[choice]} px</b>" in frame["metrics"]
    assert "<b>30×30</b>" in frames[3 * 3 + 2]["metrics"]           # the paper's 70×70 PatchGAN at 256 px
    assert "n_layers=3, 128 px" in frames[3 * 3 + 1]["label"]
    sliders = [attrs for tag, attrs in parsed.tags if tag == "input"]
    assert [(s["aria-label"], s["max"], s["value"]) for s in sliders] == [("discriminator", "5", "3"),
                                                                          ("image size", "2", "1")]
    assert "n_layers=3, 128 px" in patchgan_page.split("cg-value'>")[1][:60]     # shown before any script
    assert all(round(png_dpi(f["png"])) >= widgets.MIN_DPI and base64.b64decode(f["png"])[25] == 3 for f in frames)


def test_patchgan_explorer_refuses_sizes_its_discriminators_cannot_take():
    image = torch.zeros(3, 16, 16)
    with pytest.raises(ValueError, match="image size 16 px is too small for the PatchGAN with n_layers=3: "
                                         "it needs at least 24 px"):
        widgets.patchgan_explorer(image, sizes=(16,), choices=(3,))
    with pytest.raises(ValueError, match="choose among"):
        widgets.patchgan_explorer(image, sizes=(64,), choices=(5,))
    with pytest.raises(ValueError, match="one image"):
        widgets.patchgan_explorer(torch.zeros(16, 16))


# --- the real-or-fake quiz ----------------------------------------------------------------------

def quiz_images(n: int = 5, channels: int = 3, side: int = 8, seed: int = 0):
    """``n`` real and ``n`` fake images, every one different, on the 8-bit grid (they round-trip a PNG)."""
    g = torch.Generator().manual_seed(seed)
    levels = torch.randint(0, 256, (2, n, channels, side, side), generator=g).float() / 127.5 - 1
    return levels[0], levels[1]


def quiz_trials(page: str) -> list[dict]:
    """Each pair of a quiz page: its attributes and the images of its left and right buttons, decoded."""
    import io

    from PIL import Image

    from cyclegan_edu.data import to_tensor
    trials = []
    for tag, attrs in Elements(page).tags:
        if tag == "div" and "cg-trial" in attrs.get("class", "").split():
            trials.append({"attrs": attrs, "images": []})
        elif tag == "img":
            encoded = attrs["src"].removeprefix("data:image/png;base64,")
            with Image.open(io.BytesIO(base64.b64decode(encoded))) as img:
                trials[-1]["images"].append(to_tensor(img.copy()))
            trials[-1].setdefault("img attrs", []).append(attrs)
    return trials


def test_quiz_shows_each_pair_once_with_the_fake_on_the_side_its_seed_draws():
    real, fake = quiz_images(5)
    page = widgets.real_or_fake_quiz(real, fake, seed=3).data
    trials = quiz_trials(page)
    order = widgets.quiz_order(5, seed=3)
    assert [t["attrs"]["data-fake"] for t in trials] == ["left" if left else "right" for left in order]
    assert 0 < sum(order) < 5                                       # both sides occur in this draw
    for i, (trial, fake_left) in enumerate(zip(trials, order)):
        left, right = trial["images"]
        assert torch.equal(left, fake[i] if fake_left else real[i])  # bit-exact: 8-bit PNGs of the tensors
        assert torch.equal(right, real[i] if fake_left else fake[i])
        assert [a["alt"] for a in trial["img attrs"]] == ["left image", "right image"]   # the alt tells nothing
        assert all("width:160px" in a["style"] and "image-rendering:pixelated" in a["style"] for a in trial["img attrs"])
    sources = [a["src"] for t in trials for a in t["img attrs"]]
    assert len(set(sources)) == 10 and all(page.count(src) == 1 for src in sources)   # every image, once
    # before any click: the first pair shows, the others wait
    assert "style" not in trials[0]["attrs"] and all(t["attrs"]["style"] == "display:none" for t in trials[1:])
    assert "0 of 5 pairs done · fooled on 0 · your fooling rate –<" in page
    assert "data-judge" not in Elements(page).first("div", "cg-quiz") and not any("data-judge" in t["attrs"] for t in trials)


def test_quiz_order_is_fixed_by_the_seed():
    real, fake = quiz_images(8)
    assert widgets.real_or_fake_quiz(real, fake, seed=1).data == widgets.real_or_fake_quiz(real, fake, seed=1).data
    orders = {seed: [t["attrs"]["data-fake"] for t in quiz_trials(widgets.real_or_fake_quiz(real, fake, seed=seed).data)]
              for seed in (0, 1)}
    assert orders[0] != orders[1]
    assert widgets.quiz_order(8, 0) == widgets.quiz_order(8, 0) != widgets.quiz_order(8, 1)


def test_quiz_carries_the_judges_picks_and_escapes_its_title():
    real, fake = quiz_images(3, channels=1)
    page = widgets.real_or_fake_quiz(real, fake, judge_picks=[True, False, True],
                                     title="<script>alert('real')</script> & co", px=200).data
    parsed = Elements(page)
    quiz = parsed.first("div", "cg-quiz")
    assert "data-judge" in quiz and "event.target.closest('.cg-pick,.cg-restart')" in quiz["onclick"]
    assert [t["attrs"]["data-judge"] for t in quiz_trials(page)] == ["1", "0", "1"]
    assert [tuple(image.shape) for image in quiz_trials(page)[0]["images"]] == [(1, 8, 8)] * 2   # grey stays grey
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;real&#x27;)&lt;/script&gt; &amp; co" in page
    assert "width:200px;height:200px" in page
    assert "· the judge on the same pairs: fooled on 0, –<" in page
    assert widgets.real_or_fake_quiz(real, fake, judge_picks=torch.tensor([True, False, True])).data == \
        widgets.real_or_fake_quiz(real, fake, judge_picks=[True, False, True]).data


@pytest.mark.parametrize("changes, message", [
    ({"real": torch.zeros(3, 8, 8)}, r"real: need a \(N, C, H, W\) tensor .* got \(3, 8, 8\)"),
    ({"real": torch.zeros(0, 3, 8, 8), "fake": torch.zeros(0, 3, 8, 8)}, "real: need .* N >= 1"),
    ({"fake": [[0.0]]}, "fake: need a .* got list"),
    ({"fake": torch.zeros(4, 3, 8, 8)}, r"fake: must have the shape of real, \(3, 3, 8, 8\) .* got \(4, 3, 8, 8\)"),
    ({"fake": torch.zeros(3, 3, 16, 16)}, "fake: must have the shape of real"),
    ({"judge_picks": [True, False]}, r"judge_picks: need 3 booleans, .* got torch.bool of shape \(2,\)"),
    ({"judge_picks": [1, 0, 1]}, "judge_picks: need 3 booleans, .* got torch.int64"),
    ({"judge_picks": "yes"}, "judge_picks: need 3 booleans, .* got str"),
    ({"px": 64}, "px=64: draw the images at least 128 pixels wide"),
    ({"seed": 0.5}, "seed=0.5: need a whole number")])
def test_quiz_refuses_bad_inputs_with_one_clear_line(changes, message):
    real, fake = quiz_images(3)
    args = {"real": real, "fake": fake} | changes
    with pytest.raises(ValueError, match=message):
        widgets.real_or_fake_quiz(**args)


# --- the static explorers' scripts, in a browser ------------------------------------------------

@pytest.mark.slow
def test_the_static_explorers_respond_in_a_browser_with_no_kernel(browser, tmp_path, frames, film, patchgan_page):
    """Chromium opens a page holding a sweep explorer, a training film and the PatchGAN explorer: every
    slider shows the frame at its (row-major) index, and the film's play button steps to the end."""
    from selenium.webdriver.support.ui import WebDriverWait
    _, recorder = film
    parts = [widgets.sweep_explorer(frames, start=0).data, widgets.training_film(recorder, play_ms=100).data,
             patchgan_page]
    page = tmp_path / "explorers.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>" + "".join(parts)
                    + "</body></html>", encoding="utf-8")
    browser.get(page.as_uri())
    shown = browser.execute_script("""
        const [sweep, film, field] = document.querySelectorAll('.cg-explorer');
        function show(box, values) {
            box.querySelectorAll('.cg-slider').forEach((s, k) => {
                s.value = values[k]; s.dispatchEvent(new Event('input', {bubbles: true})); });
            return [box.querySelector('.cg-value').textContent, box.querySelector('img.cg-figure').src,
                    box.querySelector('.cg-metrics').textContent, box.querySelector('.cg-caption').textContent];
        }
        return {sweep: [0, 1, 2].map(i => show(sweep, [i])), field: show(field, [4, 2]),
                pixel: show(field, [0, 0]), film: show(film, [1])};""")
    embedded = json.loads(Elements(patchgan_page).first("div", "cg-explorer")["data-frames"])
    assert [label for label, *_ in shown["sweep"]] == ["λ = 0", "λ = 10", "λ = 100"]
    assert len({src for _, src, *_ in shown["sweep"]}) == 3 and "0.750" in shown["sweep"][1][2]
    label, src, metrics, _ = shown["field"]                        # n_layers = 4 (index 4) at 256 px (index 2)
    assert label == "PatchGAN, n_layers=4, 256 px" and src.endswith(embedded[4 * 3 + 2]["png"])
    assert "142×142 px" in metrics and "14×14" in metrics
    assert shown["pixel"][0] == "PixelGAN (1×1), 64 px" and "64×64" in shown["pixel"][2]
    assert shown["film"][0] == "step 6" and "diversity of the outputs" in shown["film"][3]

    browser.execute_script("""const f = document.querySelectorAll('.cg-explorer')[1];
        f.querySelector('.cg-slider').value = 0; f.querySelector('.cg-slider').dispatchEvent(new Event('input'));
        f.querySelector('.cg-play').click();""")
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        "const f = document.querySelectorAll('.cg-explorer')[1];"
        "return f.querySelector('.cg-slider').value === '1' && f.querySelector('.cg-play').textContent === '▶ play'"
        " && f.querySelector('.cg-value').textContent === 'step 6';"))


@pytest.mark.slow
def test_the_quiz_keeps_the_readers_fooling_rate_in_a_browser_with_no_kernel(browser, tmp_path):
    """Chromium clicks through a quiz of 6 pairs, always on the left image: the tally, the line after each
    pick and the summary follow from the known order (fooled where the fake was on the left) and the
    judge's picks; restart starts again, and always clicking right is fooled on the other pairs."""
    real, fake = quiz_images(6)
    judge = [True, True, False, False, False, True]
    order = widgets.quiz_order(6, seed=3)        # True: the fake is on the left (here 2 of 6; the judge: 3 of 6)
    page = tmp_path / "quiz.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
                    + widgets.real_or_fake_quiz(real, fake, judge_picks=judge, seed=3).data + "</body></html>",
                    encoding="utf-8")
    browser.get(page.as_uri())

    def text(css: str) -> str:
        return browser.find_element("css selector", f".cg-quiz {css}").text

    def visible_pairs() -> list[int]:
        return browser.execute_script("return [...document.querySelectorAll('.cg-trial')].flatMap("
                                      "(t, i) => t.offsetParent === null ? [] : [i]);")

    def click_through(side: str) -> list[str]:
        lines = []
        for i in range(6):
            assert visible_pairs() == [i]
            image = browser.find_elements("css selector", f".cg-trial .cg-pick[data-side='{side}'] img")[i]
            assert image.size["width"] >= widgets.QUIZ_MIN_PX
            image.click()                                          # a real click, on the image shown
            lines.append(text(".cg-feedback"))
        return lines

    def rate(k: int, n: int) -> str:
        return f"{100 * k / n:.1f} %"

    initial = text(".cg-tally")
    lines = click_through("left")
    fooled, judged = sum(order), sum(judge)
    assert len({fooled, 6 - fooled, judged}) == 3                 # three different counts to tell apart
    assert lines[0] == f"Pair 1: {'fooled, the left image was the fake' if order[0] else 'right, the left image was real'}." \
        + " The judge was fooled by this pair."
    assert lines[2].endswith("The judge was not fooled by it.")
    assert visible_pairs() == []
    assert text(".cg-tally") == (f"6 of 6 pairs done · fooled on {fooled} · your fooling rate {rate(fooled, 6)}"
                                 f" · the judge on the same pairs: fooled on {judged}, {rate(judged, 6)}")
    assert text(".cg-summary") == (f"Done. You were fooled on {fooled} of 6 pairs ({rate(fooled, 6)}); the judge on "
                                   f"{judged} of 6 ({rate(judged, 6)}). Picking at random is fooled on half the pairs "
                                   "on average (50 %).")
    browser.find_element("css selector", ".cg-restart").click()
    assert text(".cg-tally") == initial and text(".cg-feedback") == "" and not \
        browser.find_element("css selector", ".cg-summary").is_displayed()
    click_through("right")
    assert text(".cg-tally").startswith(f"6 of 6 pairs done · fooled on {6 - fooled} · your fooling rate {rate(6 - fooled, 6)}")
