"""The live training dashboard (chapter 7): train in the notebook, watch the run and steer it.

Controls: **start** (and resume after a pause), **pause**, **stop**, one slider per loss weight the
model reads at every step (λ and λ_id for CycleGAN, λ_L1 for pix2pix; a change takes effect at the
next step, through :meth:`~cyclegan_edu.train.Trainer.set_loss_weights`) and **save checkpoint**.
Displays, refreshed every ``every`` steps (:mod:`~cyclegan_edu.monitor`): the loss curves, the sample
grid (x, G(x), F(G(x))), the diversity readout with its collapse warning, and D's output map for one
image. The status line counts the steps.

**Why a background thread** (and not the loop run in chunks from the widgets' callbacks). A widget
callback runs on the kernel's main thread, inside the handler of the click's message; until it
returns, the kernel reads no other message, so pause and stop would do nothing while a chunk trains,
and the next chunk must be scheduled on the kernel's event loop, which differs between kernels
(Colab's, with ipywidgets 7.7.1, and Jupyter's with ipywidgets 8). Chunks would also re-enter
:meth:`~cyclegan_edu.train.Trainer.fit` each time (a new data iterator, and with a run directory a
checkpoint at the end of every chunk). Here ``fit`` runs once, in a daemon thread. Each click sets a
``threading.Event`` at once on the main thread, and the training thread reads the events between
two steps, in a Trainer callback: pause waits there, stop raises there (so ``fit`` saves a checkpoint
of whole steps when the trainer has a run directory, and the thread ends), save checkpoint is done
there (never half-way through a step). The notebook is never blocked by training: at most one step
passes before a click is acted on. Widget values set from the thread are sent through ipykernel's
thread-safe output channel (ipywidgets 7 and 8); the figures are drawn without pyplot
(:mod:`~cyclegan_edu.monitor`), so no figure leaks into whichever cell happens to run. Caveats: a
kernel interrupt (Ctrl-C, ■) reaches the main thread only (use the stop button), and other cells
share the CPU or GPU with the training thread while it runs.

Only core widgets (Button, SelectionSlider, HTML, Image, boxes) are used, which exist in ipywidgets 7
and 8. Training code never imports this module.
"""
from __future__ import annotations

import html
import os
import threading
import weakref
from pathlib import Path

import torch

from .monitor import SampleMonitor, diversity_line, loss_figure
from .widgets import png_bytes

# the sliders: the model's loss weights that have one, with their label and positions (the current value
# is added when it is not among them)
WEIGHT_SLIDERS = {
    "lambda_cycle": ("λ", (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)),
    "lambda_identity": ("λ_id", (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)),
    "lambda_l1": ("λ_L1", (0.0, 1.0, 10.0, 100.0, 1000.0)),
}
# a trainer that a dashboard's thread is training: another dashboard must not train it at the same time
_TRAINING: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class _StopRequested(Exception):
    """Raised between two steps in the training thread when the stop button was clicked."""


class LiveDashboard:
    """The dashboard of ``trainer`` (see the module docstring), watching the test ``images`` (a few,
    say 4 to 8, of the dataset's A for ``direction="AtoB"``).

    >>> dashboard = live_dashboard(trainer, test_A, every=25)     # doctest: +SKIP
    >>> dashboard          # the cell's last expression shows it; then click "start"   # doctest: +SKIP

    ``checkpoint``: where "save checkpoint" writes (default: the trainer's own run directory; without
    either the button is disabled). The controls are attributes (``start_button``, ``pause_button``,
    ``stop_button``, ``save_button``, ``sliders[name]``), so a script or a test can drive them with
    ``.click()`` and ``.value = …``; ``state`` is "ready", "running", "paused", "stopped",
    "finished" or "failed", and ``thread`` the training thread (``join`` waits for it).
    """

    def __init__(self, trainer, images: torch.Tensor, every: int = 25, direction: str = "AtoB", keys=None,
                 checkpoint: str | os.PathLike | None = None):
        import ipywidgets as w
        if every < 1:
            raise ValueError(f"every={every}: must be at least 1 (refresh every this many steps)")
        self.trainer, self.every, self.keys = trainer, every, keys
        self.monitor = SampleMonitor(images, direction)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.last_samples = None            # what the last refresh showed (monitor.Samples)
        self.state = "ready"
        self._pause, self._stop, self._save, self._wake = (threading.Event() for _ in range(4))
        self._reverting = False

        def button(description, style, tooltip):
            return w.Button(description=description, button_style=style, tooltip=tooltip,
                            layout=w.Layout(width="auto"))
        self.start_button = button("▶ start", "success", "train (or go on after a pause)")
        self.pause_button = button("❚❚ pause", "warning", "wait after the current step")
        self.stop_button = button("■ stop", "danger", "end training after the current step")
        self.save_button = button("save checkpoint", "", "write everything needed to continue")
        self.sliders = {}
        for name in trainer.model.loss_weights:
            if name in WEIGHT_SLIDERS:
                label, positions = WEIGHT_SLIDERS[name]
                current = getattr(trainer.model.config, name)
                slider = w.SelectionSlider(options=sorted({*positions, current}), value=current,
                                           description=label, continuous_update=False)
                slider.observe(lambda change, name=name: self._on_weight(name, change), names="value")
                self.sliders[name] = slider
        self.status, self.note, self.diversity = w.HTML(), w.HTML(), w.HTML()
        self.curves, self.samples, self.critic = (w.Image(format="png") for _ in range(3))
        self.start_button.on_click(self._on_start)
        self.pause_button.on_click(self._on_pause)
        self.stop_button.on_click(self._on_stop)
        self.save_button.on_click(self._on_save)
        if self.checkpoint is None and trainer.out is None:
            self.save_button.disabled = True
            self.save_button.tooltip = "give the Trainer a run directory (out=…) or the dashboard checkpoint=…"
        self.widget = w.VBox([
            w.HBox([self.start_button, self.pause_button, self.stop_button, self.save_button]),
            w.HBox(list(self.sliders.values())), self.status, self.note, self.diversity,
            w.HBox([self.curves, self.critic]), self.samples])
        trainer.add_callback(self._after_step)
        self._show("ready")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    # --- the main thread: clicks and slider moves ------------------------------------------------
    def _on_start(self, _button=None) -> None:
        if self.thread is not None and self.thread.is_alive():
            if self._pause.is_set():
                self._pause.clear()
                self._wake.set()
                self._show("running")
            return
        if self.trainer.step >= self.trainer.total_steps:
            self._show("finished", "the schedule is complete: nothing left to train")
            return
        other = _TRAINING.get(self.trainer)
        if other is not None and other.is_alive():
            self._show(self.state, "this trainer is training in another dashboard: stop that one first")
            return
        self._pause.clear()
        self._stop.clear()
        self.error = None
        self.thread = threading.Thread(target=self._train, name="cyclegan_edu dashboard", daemon=True)
        _TRAINING[self.trainer] = self.thread
        self._show("running")
        self.thread.start()

    def _on_pause(self, _button=None) -> None:
        if self.state == "running":
            self._pause.set()
            self._show("running", "pausing after this step…")

    def _on_stop(self, _button=None) -> None:
        if self.thread is not None and self.thread.is_alive():
            self._stop.set()
            self._wake.set()
            self._show(self.state, "stopping after this step…")

    def _on_save(self, _button=None) -> None:
        if self.thread is not None and self.thread.is_alive():
            self._save.set()                      # done by the training thread, between two steps
            self._wake.set()
            self._show(self.state, "saving after this step…")
        else:
            self._save_checkpoint()

    def _on_weight(self, name: str, change: dict) -> None:
        if self._reverting:
            return
        label = WEIGHT_SLIDERS[name][0]
        try:
            self.trainer.set_loss_weights(**{name: change["new"]})
        except ValueError as err:
            self._show(self.state, f"{label} stays {change['old']:g}: {err}")
            self._reverting = True
            try:
                self.sliders[name].value = change["old"]
            finally:
                self._reverting = False
            return
        self._show(self.state, f"{label} = {change['new']:g} from the next step on")

    def join(self, timeout: float | None = None) -> None:
        """Wait for the training thread to end (``timeout`` in seconds)."""
        if self.thread is not None:
            self.thread.join(timeout)

    def wait_for_step(self, step: int, timeout: float | None = None) -> bool:
        """Wait until the trainer has done ``step`` steps (True), or its thread has ended or ``timeout``
        seconds have passed first (False): for scripts and notebooks that drive the dashboard from code."""
        import time
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.trainer.step < step:
            if self.thread is None or not self.thread.is_alive() or self._pause.is_set():
                return self.trainer.step >= step
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # --- the training thread ---------------------------------------------------------------------
    def _train(self) -> None:
        trainer = self.trainer
        progress, trainer.progress = trainer.progress, False     # the status line is the progress bar
        try:
            self._refresh()
            trainer.fit()
            state, note = "finished", "the schedule is complete"
        except _StopRequested:
            saved = trainer.out is not None and trainer.checkpoint_step == trainer.step
            state, note = "stopped", f"stopped after step {trainer.step}" + (
                f"; checkpoint saved in {trainer.out}" if saved else "")
        except Exception as err:            # shown in the dashboard: a thread's traceback goes nowhere visible
            self.error = err
            state, note = "failed", f"{type(err).__name__}: {err}"
        finally:
            trainer.progress = progress
        self._show(state, note)

    def _after_step(self, trainer, record: dict) -> None:
        """A Trainer callback after every step: refresh every ``every`` steps and, in the dashboard's
        own thread, act on the clicks. (With ``trainer.fit()`` run in a cell instead, the displays
        still refresh; the buttons cannot act until the cell ends.)"""
        if record["step"] % self.every == 0 or trainer.step >= trainer.total_steps:
            self._refresh()
        if threading.current_thread() is not self.thread:
            return
        self._show_status()
        while True:
            if self._save.is_set():
                self._save.clear()
                self._save_checkpoint()
            if self._stop.is_set():
                raise _StopRequested
            if not self._pause.is_set():
                if self.state == "paused":
                    self._show("running")
                return
            if self.state != "paused":
                self._show("paused", f"paused after step {trainer.step}")
            self._wake.wait()
            self._wake.clear()              # then look at every flag again: none is lost

    def _save_checkpoint(self) -> None:
        try:
            path = self.trainer.save_checkpoint(self.checkpoint)
        except (OSError, ValueError) as err:
            self._show(self.state, f"not saved: {err}")
            return
        self._show(self.state, f"checkpoint of step {self.trainer.step} saved: {path}")

    def _refresh(self) -> None:
        """Draw the curves, the samples, D's map and the diversity line for the model as it is now."""
        trainer = self.trainer
        samples = self.monitor.look(trainer.model, trainer.step)
        if trainer.history:
            self.curves.value = png_bytes(loss_figure(trainer.history, self.keys))
        self.samples.value = png_bytes(self.monitor.sample_figure(samples))
        self.critic.value = png_bytes(self.monitor.discriminator_figure(trainer.model, samples))
        colour = "#b00020" if samples.collapsed else "#1b5e20"
        self.diversity.value = f"<span style='color:{colour}'>{html.escape(diversity_line(samples.diversity))}</span>"
        self.last_samples = samples

    # --- what the widgets show -------------------------------------------------------------------
    def _show(self, state: str, note: str = "") -> None:
        self.state = state
        running = state in ("running", "paused")
        self.start_button.disabled = state in ("running", "finished")
        self.start_button.description = "▶ resume" if state == "paused" else "▶ start"
        self.pause_button.disabled = state != "running"
        self.stop_button.disabled = not running
        self.note.value = html.escape(note)
        self._show_status()

    def _show_status(self) -> None:
        t = self.trainer
        self.status.value = (f"<b>{self.state}</b> · step <b>{t.step}</b> of {t.total_steps} · "
                             f"lr {t.learning_rate():.2e} · refreshed every {self.every} steps")
