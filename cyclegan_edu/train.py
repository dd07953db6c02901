"""The training loop: schedule, device, checkpoints, history and callbacks.

Optimisation follows the paper (§4): Adam with lr 2e-4 and β = (0.5, 0.999), the learning rate
constant for ``n_epochs`` and then decayed linearly towards zero over ``n_epochs_decay`` (100 + 100
epochs in the paper). Short runs use the same rule counted in steps (``iters``, ``iters_decay``).

A run directory holds ``config.json``, ``checkpoint.pt`` (everything needed to continue: nets,
optimizers, schedulers, image pools, random states, step, history, and which data it trains on) and
``history.csv``. Resuming gives the same losses and weights as a run that was never interrupted.
Started by torchrun, the same Trainer trains on several processes (:mod:`~cyclegan_edu.distributed`).

Loss weights (λ, λ_id, …) may change between two steps (:meth:`Trainer.set_loss_weights`, the
dashboard's sliders); the changes are logged, checkpointed and replayed on resume.

Nothing a user has is lost. Everything is checked before a file is written, and the run directory
appears with the first checkpoint, which is also when ``force`` replaces an older run: a start that
fails leaves ``out`` as it was. Checkpoints are written whole or not at all. A stop (Ctrl-C, SIGTERM,
SIGHUP) or an error between two steps saves the steps done; a NaN or infinite loss stops the run
without overwriting the last good checkpoint; and a checkpoint is saved every ``checkpoint_minutes``.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import random
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import distributed
from .config import Config
from .data import EpochSampler, PairedImageFolder, UnpairedImageFolder
from .models import TranslationModel, build_model
from .pretrained import load_error
from .devices import select_device

CHECKPOINT, CONFIG, HISTORY = "checkpoint.pt", "config.json", "history.csv"
# settings that may differ when a run is resumed: where and how fast it runs, not what it computes
# (skip_bad only decides what an unreadable image does, which would otherwise have stopped the run)
RESUMABLE_CHANGES = {"device", "num_workers", "checkpoint_every", "checkpoint_minutes", "compile", "channels_last",
                     "skip_bad"}
# on a GPU (or MPS), the losses are read back every this many steps: reading them waits for the device
# to finish, which a read every step would do every step; on the CPU they are read every step
LOSS_READ_EVERY = 20
# stop a run after its current step, with a checkpoint: Ctrl-C, `kill` or a job scheduler, a closed terminal
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """Training was stopped by the signal ``signum`` (a KeyboardInterrupt, as Ctrl-C always was)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite: the weights are lost, the last good checkpoint is kept."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, ...); the previous one is intact."""


def linear_decay(t: int, n_constant: int, n_decay: int) -> float:
    """The official learning-rate factor at epoch (or step) ``t`` counted from 0:
    ``1 - max(0, t + 1 - n_constant) / (n_decay + 1)``: 1 for the first ``n_constant``, then falling
    by ``1/(n_decay + 1)`` each epoch, to ``1/(n_decay + 1)`` in the last one."""
    return 1.0 - max(0, t + 1 - n_constant) / float(n_decay + 1)


def steps_per_epoch(n_items: int, batch_size: int, world_size: int = 1) -> int:
    """Optimizer steps in an epoch of ``n_items``: each of ``world_size`` processes takes its share
    (rounded up, :class:`~cyclegan_edu.data.EpochSampler`) in batches of ``batch_size``, the last one short."""
    return math.ceil(math.ceil(n_items / world_size) / batch_size)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, numpy and torch; optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


class Trainer:
    """Train a CycleGAN (or pix2pix) on a dataset folder.

    >>> trainer = Trainer(get_preset("ci"), "data/shapes", out="runs/shapes")   # doctest: +SKIP
    >>> trainer.fit()                                                             # doctest: +SKIP

    ``data`` is a folder in the official layout (or a Dataset yielding ``{"A", "B"}`` dicts).
    ``out`` (optional) is the run directory; an existing non-empty one is refused unless
    ``resume=True`` (continue it) or ``force=True`` (start again: its files are replaced when the new
    run saves its first checkpoint, so a start that fails keeps them). Nothing is written to ``out``
    before that first checkpoint.
    """

    def __init__(self, config: Config, data: str | os.PathLike | Dataset, out: str | os.PathLike | None = None,
                 model: str = "cyclegan", resume: bool = False, force: bool = False, progress: bool = True):
        self.config, self.kind = config, model
        self.out = Path(out) if out is not None else None
        if self.out is not None:
            _check_run_dir(self.out, resume, force)
        seed_everything(config.seed, config.deterministic)
        self.device = select_device(config.device)
        if self.device.type == "cuda" and not config.deterministic:
            torch.backends.cudnn.benchmark = True    # a step's shapes never change: pick the fastest kernels once
        # this process's place in a multi-process run (torchrun); rank 0 of 1 otherwise
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.progress = progress and self.rank == 0
        self.dataset = data if isinstance(data, Dataset) else self._dataset(Path(data))
        # which images the run trains on, kept in its checkpoint so that resuming on others is refused
        self.data_fingerprint = None if isinstance(data, Dataset) else _data_fingerprint(Path(data), self.dataset)
        self.sampler = EpochSampler(len(self.dataset), config.seed, rank=self.rank, world_size=self.world_size)
        self.loader = DataLoader(self.dataset, batch_size=config.batch_size, sampler=self.sampler,
                                 num_workers=config.num_workers, pin_memory=self.device.type == "cuda",
                                 persistent_workers=False,
                                 # its own generator, so creating a loader never draws from torch's global
                                 # RNG (dropout's): a resumed run then matches an uninterrupted one
                                 generator=torch.Generator().manual_seed(config.seed))
        self.steps_per_epoch = steps_per_epoch(len(self.dataset), config.batch_size, self.world_size)
        self.total_steps = config.iters or (config.n_epochs + config.n_epochs_decay) * self.steps_per_epoch
        self.model: TranslationModel = build_model(model, config).setup(self.device)
        self.schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor)
                           for name, opt in self.model.optimizers.items()}
        self.step = 0
        self.history: list[dict] = []
        # loss weights changed during the run (set_loss_weights): {"step": first step using them, name: value}
        self.loss_weight_changes: list[dict] = []
        self._pending_weights: dict[str, float] = {}
        self._weights_lock = threading.Lock()
        self.callbacks: list[tuple[int, Callable]] = []
        # the step of the checkpoint in ``out``; None until this run saves one (``out`` is untouched till then)
        self.checkpoint_step: int | None = None
        self._between_steps = True        # False while a step updates the state: no checkpoint of half a step
        self._last_save = time.monotonic()
        self._unread: list[_StepLosses] = []  # steps whose losses are still on the device
        self._last_record: dict = {}          # the latest step's record, as callbacks get it
        self._checkpoint_world_size = 1      # the number of processes that wrote the checkpoint loaded or saved last
        self.read_every = 1 if self.device.type == "cpu" else LOSS_READ_EVERY
        if resume and self.out is not None and (self.out / CHECKPOINT).exists():
            self.load_checkpoint(self.out / CHECKPOINT)
            self.checkpoint_step = self.step
        else:
            self.model.measure_data(self.dataset)       # a new run: what the model needs of its data
        if self.rank > 0:
            seed_everything(distributed.rank_seed(config.seed, self.step), config.deterministic)
        distributed.check_same((self.step, len(self.dataset)), "the step to start from and the number of images",
                               "every process must read the same --data and, with --resume, the same --out "
                               "(on several machines: a shared file system)")
        distributed.wrap(self.model)

    def _dataset(self, root: Path) -> Dataset:
        c = self.config
        cls = PairedImageFolder if self.kind == "pix2pix" else UnpairedImageFolder
        return cls(root, "train", c.image_size, c.load_size, c.preprocess, c.flip, c.seed,
                   cache=c.image_size <= 128, skip_bad=c.skip_bad, input_nc=c.input_nc, output_nc=c.output_nc,
                   direction=c.direction)

    def _lr_factor(self, t: int) -> float:
        # LambdaLR counts scheduler.step() calls; with epochs we step once an epoch, with iters once a step.
        c = self.config
        if c.iters:
            return linear_decay(t, c.iters - c.iters_decay, c.iters_decay)
        return linear_decay(t, c.n_epochs, c.n_epochs_decay)

    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch

    def learning_rate(self) -> float:
        return self.model.optimizers["G"].param_groups[0]["lr"]

    def add_callback(self, fn: Callable[["Trainer", dict], None], every: int = 1) -> None:
        """Call ``fn(trainer, record)`` after every ``every``-th step (plots, widgets, evaluation)."""
        if every < 1:
            raise ValueError(f"every={every}: must be at least 1")
        self.callbacks.append((every, fn))

    def set_loss_weights(self, **weights: float) -> None:
        """Change loss weights from the next step on, e.g. ``set_loss_weights(lambda_cycle=1)``: the
        fields the model reads at every step (``model.loss_weights``: λ, λ_id and the GAN weight for
        CycleGAN, λ_L1 for pix2pix). Checked at once (a bad value is a ValueError naming it).

        Safe to call from another thread while :meth:`fit` runs (a notebook widget): the change waits
        for the running step to end, so every step uses one set of weights. The frozen Config is never
        changed in place (presets and the caller's Config are shared objects): ``trainer.config`` stays
        the settings the run started with, which ``config.json`` and the checkpoint's ``"config"``
        record and resume compares, and the model gets a changed copy (``model.config``, what its step
        reads). Each change is logged in ``loss_weight_changes`` with the first step that uses it,
        saved in the checkpoint and replayed on resume, so a resumed run continues with the weights in
        effect when it was saved.
        """
        known = self.model.loss_weights
        unknown = sorted(set(weights) - set(known))
        if unknown:
            raise ValueError(f"set_loss_weights: {self.kind} has no live loss weight {', '.join(unknown)}; "
                             f"choose among {', '.join(known)}")
        with self._weights_lock:
            pending = {**self._pending_weights, **weights}
            config = self.model.config.replace(**pending)          # validated, not applied yet
            self.model.check_config(config)
            self._pending_weights = pending

    def _apply_loss_weights(self) -> None:
        """Between two steps: the weights asked for since the last step take effect."""
        if not self._pending_weights:
            return
        with self._weights_lock:
            changes, self._pending_weights = self._pending_weights, {}
        self.model.config = self.model.config.replace(**changes)
        self.loss_weight_changes.append({"step": self.step + 1, **changes})

    def fit(self, steps: int | None = None, minutes: float | None = None) -> list[dict]:
        """Train until the schedule ends, or for ``steps`` more steps, or for ``minutes`` minutes of
        wall-clock time (the step running when they are up is finished), whichever comes first; returns
        the history. ``minutes`` is a session-sized budget: a Colab session trains for an hour, saves,
        and the next session resumes the same run (chapter 10).

        With a run directory nothing done is lost, so ``resume=True`` continues where it stopped: a
        stop (Ctrl-C, the notebook's stop button, SIGTERM, SIGHUP) waits for the running step to end
        and saves a checkpoint before it is raised as :class:`Stopped` (a second one stops at once,
        without saving); any other error between two steps (an unreadable image, say) saves the steps
        done before it is re-raised; an error inside a step saves nothing, the state being half
        updated. A NaN or infinite loss raises :class:`TrainingDiverged` and keeps the last good
        checkpoint. Checkpoints are also saved every ``checkpoint_every`` steps and
        ``checkpoint_minutes`` minutes.

        On the CPU the losses are read every step; on a GPU every ``read_every`` steps
        (:data:`LOSS_READ_EVERY`), at the last, and before a checkpoint or a callback, so that the GPU
        is not waited for every step: a NaN is then found up to ``read_every`` steps late, never saved.
        """
        if steps is not None and steps < 1:
            raise ValueError(f"fit(steps={steps}): must be at least 1 (or None: to the end of the schedule)")
        if minutes is not None and not minutes > 0:
            raise ValueError(f"fit(minutes={minutes}): must be a positive number of minutes (or None: no time limit)")
        end = self.total_steps if steps is None else min(self.total_steps, self.step + steps)
        deadline = None if minutes is None else time.monotonic() + 60 * minutes
        bar = tqdm(total=end, initial=self.step, desc=f"{self.kind} {self.config.image_size}px",
                   disable=not self.progress, unit="step")
        self._last_save = time.monotonic()
        stop = _StopBetweenSteps()
        with stop:                          # also while saving: a stop then waits for the file to be whole
            try:
                while self.step < end and not _past(deadline):
                    self._run_epoch(end, bar, stop, deadline)
                if self._saves:
                    self.save_checkpoint()
            except BaseException as err:
                if (self._saves and self._between_steps and not stop.forced
                        and not isinstance(err, (CheckpointWriteError, TrainingDiverged))
                        and self.step != (self.checkpoint_step or 0)):
                    self.save_checkpoint()
                raise
            finally:
                bar.close()
        return self.history

    def _run_epoch(self, end: int, bar, stop: "_StopBetweenSteps", deadline: float | None = None) -> None:
        epoch, offset = divmod(self.step, self.steps_per_epoch)
        self.sampler.set_epoch(epoch, start=offset * self.config.batch_size)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        started = time.perf_counter()
        for batch in self.loader:
            stop.check()                    # asked to stop while the batch was loading
            self._apply_loss_weights()
            self._between_steps = False
            step = self.step + 1
            losses = self.model.train_step(batch["A"], batch["B"])
            self._unread.append(_StepLosses(step, epoch, self.learning_rate(), losses, time.perf_counter() - started,
                                            logged=step % self.config.log_every == 0 or step == end))
            # callbacks run on rank 0 only, and need the step's losses
            due = [fn for every, fn in self.callbacks if step % every == 0] if self.rank == 0 else []
            if due or step % self.read_every == 0 or step == end:
                self._read_losses(bar)      # a NaN or infinite loss stops here, before the step counts
            self.step = step
            # the schedule advances every step (iters) or after an epoch's last step, before any
            # callback or checkpoint, so a run interrupted here resumes with the right learning rate
            if self.config.iters or self.step % self.steps_per_epoch == 0:
                self._step_schedulers()
            self._between_steps = True
            bar.update(1)
            for fn in due:
                fn(self, self._last_record)
            if self._saves and self._checkpoint_due():
                self.save_checkpoint()
            stop.check()
            if self.step >= end or _past(deadline):
                break
            started = time.perf_counter()

    def _read_losses(self, bar=None) -> None:
        """Read the losses of the steps not read yet from the device (waiting for it, once), stop at
        a NaN or infinite one, and record them: the history every ``log_every`` steps, the progress bar."""
        unread, self._unread = self._unread, []
        waited = time.perf_counter()
        values = [self.model.read_losses(entry.losses) for entry in unread]
        unread[-1].seconds += time.perf_counter() - waited      # the wait belongs to the step that waited
        for entry, losses in zip(unread, values):
            self._check_finite(entry.step, losses)
            self._last_record = {"step": entry.step, "epoch": entry.epoch, "lr": entry.lr, **losses,
                                 "seconds": entry.seconds}
            if entry.logged:
                self.history.append(self._last_record)
        if bar is not None:
            bar.set_postfix({k: f"{v:.3f}" for k, v in values[-1].items() if k in ("G_total", "D_A", "D_B", "D")})

    def _check_finite(self, step: int, losses: dict[str, float]) -> None:
        """Stop at a NaN or infinite loss of step ``step``."""
        for name, value in losses.items():
            if not math.isfinite(value):
                kept = ("nothing was saved" if self.checkpoint_step is None
                        else f"the last good checkpoint (step {self.checkpoint_step}) is kept")
                raise TrainingDiverged(f"step {step}: loss {name} is {value}; {kept}; "
                                       "start again with a lower learning rate (lr)")

    @property
    def _saves(self) -> bool:
        """Whether this process keeps the run directory: one is given, and it is rank 0 (or alone)."""
        return self.out is not None and self.rank == 0

    def _checkpoint_due(self) -> bool:
        c = self.config
        return bool(c.checkpoint_every and self.step % c.checkpoint_every == 0
                    or c.checkpoint_minutes and time.monotonic() - self._last_save >= 60 * c.checkpoint_minutes)

    def _step_schedulers(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()

    # --- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": "cyclegan_edu.checkpoint/1",
            "model_kind": self.kind,
            "config": self.config.to_dict(),
            "step": self.step,
            "total_steps": self.total_steps,
            "nets": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.model.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "pools": {k: p.state_dict() for k, p in self.model.pools.items()},
            "scaler": self.model.scaler.state_dict() if self.model.scaler is not None else None,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "history": self.history,
            "data": self.data_fingerprint,
            # asked for but not yet applied: they take effect at the next step, after resuming too
            "loss_weight_changes": self.loss_weight_changes + ([{"step": self.step + 1, **self._pending_weights}]
                                                               if self._pending_weights else []),
            "world_size": self.world_size,
        }

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path:
        """Write everything needed to continue, whole or not at all: each file is written under a
        temporary name, then all are renamed over the old ones. The run's own checkpoint also writes
        ``history.csv`` and, the first time, the run directory and ``config.json`` (replacing an older
        run's files, with ``force``). A failed write raises :class:`CheckpointWriteError` and leaves
        the previous files as they were."""
        if path is None:
            if self.out is None:
                raise ValueError("this Trainer has no run directory; pass a path to save_checkpoint")
            path = self.out / CHECKPOINT
        path = Path(path)
        if self._unread:
            self._read_losses()             # the history complete, and no NaN saved
        writers: dict[Path, Callable[[Path], None]] = {path: lambda file: _torch_save(self.state_dict(), file)}
        own = self.out is not None and path == self.out / CHECKPOINT
        if own:
            writers[self.out / HISTORY] = lambda file: _write_csv(self.history, file)
            # a new run's first checkpoint, or the first after resuming on another number of processes
            if self.checkpoint_step is None or self._checkpoint_world_size != self.world_size:
                config = {"model": self.kind, **self.config.to_dict(), "data": self.data_fingerprint,
                          "world_size": self.world_size,
                          "effective_batch_size": self.world_size * self.config.batch_size}
                writers[self.out / CONFIG] = lambda file: file.write_text(json.dumps(config, indent=2))
        created = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()][::-1]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_all(writers)
        except OSError as err:
            for folder in reversed(created):      # only what this save created, empty again
                if folder.exists():
                    folder.rmdir()
            previous = "the previous checkpoint is intact" if path.exists() else "nothing was written"
            raise CheckpointWriteError(f"could not write checkpoint {path}: {err.strerror or err}; "
                                       f"free space or choose another --out; {previous}") from None
        if own:
            self.checkpoint_step = self.step
            self._checkpoint_world_size = self.world_size
        self._last_save = time.monotonic()
        return path

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint` into this trainer."""
        state = read_checkpoint(path)
        if state["model_kind"] != self.kind:
            raise ValueError(f"checkpoint {path} holds a {state['model_kind']} model, not {self.kind}")
        saved, current = Config.from_dict(state["config"]).to_dict(), self.config.to_dict()
        changed = [f"{k} {saved[k]!r} → {current[k]!r}" for k in current
                   if k not in RESUMABLE_CHANGES and saved[k] != current[k]]
        if changed:
            raise ValueError(f"checkpoint {path} was trained with other settings ({', '.join(changed)}); "
                             "resume with the run's own settings, or start a new run")
        self._check_same_data(path, state.get("data"))   # older checkpoints have no "data"
        self.model.load_state_dict(state["nets"])
        for k, opt in self.model.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][k])
        for k, pool in self.model.pools.items():
            pool.load_state_dict(state["pools"][k])
        if self.model.scaler is not None and state["scaler"] is not None:
            self.model.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self._checkpoint_world_size = state.get("world_size", 1)      # older checkpoints: one process
        self.step = self._resumed_step(state["step"], self._checkpoint_world_size)
        self.history = list(state["history"])
        self.loss_weight_changes = list(state.get("loss_weight_changes", []))   # older checkpoints: none
        in_effect = {k: v for change in self.loss_weight_changes for k, v in change.items() if k != "step"}
        self.model.config = self.config.replace(**in_effect)

    def _resumed_step(self, step: int, saved_world_size: int) -> int:
        """The step to continue from, for a checkpoint of a run of ``saved_world_size`` processes. With
        another number of processes an epoch has another number of steps: an epoch schedule goes on
        in the same epoch, at the same fraction of it; ``iters`` counts steps, so the step is kept."""
        if saved_world_size == self.world_size or self.config.iters:
            return step
        saved_per_epoch = steps_per_epoch(len(self.dataset), self.config.batch_size, saved_world_size)
        epoch, done = divmod(step, saved_per_epoch)
        return epoch * self.steps_per_epoch + done * self.steps_per_epoch // saved_per_epoch

    def _check_same_data(self, path, saved: dict | None) -> None:
        """Refuse to resume on other images than the run started with; a moved copy is fine."""
        current = self.data_fingerprint
        if saved is None or current is None:
            return
        before, now = saved["folders"], current["folders"]
        if before != now:
            differences = []
            for name in dict.fromkeys([*before, *now]):
                if before.get(name) == now.get(name):
                    continue
                counts = [(entry or {}).get("images", 0) for entry in (before.get(name), now.get(name))]
                differences.append(f"{name} {counts[0]} → {counts[1]} images" if counts[0] != counts[1]
                                   else f"{name} other file names or sizes")
            raise ValueError(f"checkpoint {path} was trained on {saved['path']}, and --data {current['path']} "
                             f"holds other images ({', '.join(differences)}); resume with the run's own data, "
                             "or start a new run")
        if saved["path"] != current["path"]:
            warnings.warn(f"--data {current['path']} holds the same images as {saved['path']}, where this run "
                          "started (moved or copied); continuing with it")

    # --- history -----------------------------------------------------------------------------
    def export_history(self, path: str | os.PathLike) -> Path:
        """Write the loss history as CSV (``.csv``) or JSON (any other suffix)."""
        path = Path(path)
        if path.suffix == ".csv":
            _write_csv(self.history, path)
        else:
            path.write_text(json.dumps(self.history, indent=1))
        return path


@dataclasses.dataclass
class _StepLosses:
    """A step's losses as :meth:`TranslationModel.train_step` left them on the device, until read."""
    step: int
    epoch: int
    lr: float
    losses: dict[str, torch.Tensor]
    seconds: float
    logged: bool          # whether the history keeps the step (every log_every steps, and the last)


def _past(deadline: float | None) -> bool:
    """Whether a ``time.monotonic()`` deadline (None: none) has passed."""
    return deadline is not None and time.monotonic() >= deadline


def _write_csv(history: list[dict], path: Path) -> None:
    columns = list(dict.fromkeys(k for record in history for k in record))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


class _StopBetweenSteps:
    """Hold Ctrl-C (SIGINT, also the notebook's stop button), SIGTERM (``kill``, job schedulers) and
    SIGHUP (a closed terminal) until the running step is complete, so the checkpoint written on
    stopping holds whole steps and resuming matches an uninterrupted run. A second signal stops at
    once, without a checkpoint. A signal ignored when training starts (``nohup``) stays ignored."""

    def __init__(self):
        self.signum: int | None = None
        self.forced = False
        self.previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():   # signals reach the main thread only
            for signum in STOP_SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            self.forced = True
            raise Stopped(signum)
        self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise Stopped(self.signum)

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            # None: a handler installed outside Python, which cannot be put back; the default is closest
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


class _KeepWriteError:
    """A file wrapper that keeps the OSError of a failed write, which ``torch.save`` swallows."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


def _torch_save(state: dict, path: Path) -> None:
    """``torch.save`` to ``path``, on the disk when it returns. torch reports a failed write (a full
    disk) as a RuntimeError without the reason; this raises the OSError behind it instead."""
    with open(path, "wb") as f:
        writer = _KeepWriteError(f)
        try:
            torch.save(state, writer)
        except RuntimeError:
            if writer.error is None:
                raise
            raise writer.error from None
        f.flush()
        os.fsync(f.fileno())


def _write_all(writers: dict[Path, Callable[[Path], None]]) -> None:
    """Write each file under ``<name>.tmp``, then rename them all over the targets: a failure leaves
    the targets as they were and no temporary file behind."""
    temporary = {target: target.with_name(target.name + ".tmp") for target in writers}
    try:
        for target, write in writers.items():
            write(temporary[target])
        for target, tmp in temporary.items():
            os.replace(tmp, target)
    finally:
        for tmp in temporary.values():
            tmp.unlink(missing_ok=True)


def _data_fingerprint(root: Path, dataset: Dataset) -> dict:
    """What a run trains on, cheap to compare (no image is read): the folder's resolved path and, per
    image folder, the number of images and a hash of their sorted names and sizes."""
    groups = [dataset.A_paths, dataset.B_paths] if isinstance(dataset, UnpairedImageFolder) else [dataset.paths]
    folders = {}
    for paths in groups:                      # sorted by name (list_images)
        digest = hashlib.sha1()
        for p in paths:
            digest.update(f"{p.name}\t{p.stat().st_size}\n".encode())
        folders[paths[0].parent.name] = {"images": len(paths), "sha1": digest.hexdigest()}
    return {"path": str(root.resolve()), "folders": folders}


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a training checkpoint with ``weights_only=True`` (no arbitrary code runs), with a clear
    error for a missing or foreign file."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train first (python -m cyclegan_edu train ... --out RUN)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise ValueError(f"cannot read checkpoint {path}: {load_error(err)}") from None
    if not isinstance(state, dict) or state.get("format") != "cyclegan_edu.checkpoint/1":
        raise ValueError(f"{path} is not a cyclegan_edu training checkpoint; for official generator files "
                         "use --weights (cyclegan_edu.pretrained.load_generator)")
    # the settings it was trained with, completed for fields added since (Config.from_dict)
    state["config"] = Config.from_dict(state["config"], state["model_kind"]).to_dict()
    return state


def load_model(run: str | os.PathLike, device: str = "auto") -> TranslationModel:
    """The trained model of a run directory (or checkpoint file), ready for ``translate``."""
    state = read_checkpoint(run)
    config = Config.from_dict(state["config"]).replace(device=device)
    model = build_model(state["model_kind"], config)
    model.load_state_dict(state["nets"])
    return model.setup()


def _check_run_dir(out: Path, resume: bool, force: bool) -> None:
    """Refuse a run directory that would mix two runs. Writes nothing: the directory appears with the
    run's first checkpoint."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a directory")
    if out.exists() and any(out.iterdir()) and not (resume or force):
        raise FileExistsError(f"run directory {out} is not empty; pass --resume to continue it, "
                              "--force to start over in it, or choose another --out")


RUNS_ENV = "CYCLEGAN_EDU_RUNS"


def runs_root() -> Path:
    """Where :func:`train_or_load` keeps its runs: ``$CYCLEGAN_EDU_RUNS``, else ``~/.cache/cyclegan_edu/runs``."""
    return Path(os.environ.get(RUNS_ENV) or Path.home() / ".cache" / "cyclegan_edu" / "runs")


def train_or_load(name: str, config: Config, data: str | os.PathLike, model: str = "cyclegan",
                  progress: bool = True, root: str | os.PathLike | None = None) -> tuple[TranslationModel, list[dict]]:
    """The notebooks' "load the result if it exists, else train" (after the UvA DL notebooks).

    The run lives in ``root/<name>-<hash>``, where the hash covers the config, the model kind and
    the data folder, so changing any knob trains afresh and nothing stale is reused. An interrupted
    run is resumed. Returns the trained model and its loss history.
    """
    key = json.dumps({"model": model, "data": str(Path(data).resolve()), **config.to_dict()}, sort_keys=True)
    out = Path(root or runs_root()) / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
    checkpoint = out / CHECKPOINT
    if checkpoint.exists():
        state = read_checkpoint(checkpoint)
        if state["step"] >= state["total_steps"]:
            loaded = build_model(model, config)
            loaded.load_state_dict(state["nets"])
            return loaded.setup(), list(state["history"])
    trainer = Trainer(config, data, out=out, model=model, resume=True, progress=progress)
    trainer.fit()
    return trainer.model, trainer.history
