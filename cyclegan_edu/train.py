"""The training loop: schedule, device, checkpoints, history and callbacks.

Optimisation follows the paper (§4): Adam with lr 2e-4 and β = (0.5, 0.999), the learning rate
constant for ``n_epochs`` and then decayed linearly towards zero over ``n_epochs_decay`` (100 + 100
epochs in the paper). Short runs use the same rule counted in steps (``iters``, ``iters_decay``).

A run directory holds ``config.json``, ``checkpoint.pt`` (everything needed to continue: nets,
optimizers, schedulers, image pools, random states, step, history) and ``history.csv``. Resuming
gives the same losses and weights as a run that was never interrupted.
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .config import Config
from .data import EpochSampler, PairedImageFolder, UnpairedImageFolder
from .models import TranslationModel, build_model
from .pretrained import load_error
from .devices import select_device

CHECKPOINT = "checkpoint.pt"
# settings that may differ when a run is resumed: where and how fast it runs, not what it computes
RESUMABLE_CHANGES = {"device", "num_workers", "checkpoint_every", "compile", "channels_last"}


def linear_decay(t: int, n_constant: int, n_decay: int) -> float:
    """The official learning-rate factor at epoch (or step) ``t`` counted from 0:
    ``1 - max(0, t + 1 - n_constant) / (n_decay + 1)``: 1 for the first ``n_constant``, then falling
    by ``1/(n_decay + 1)`` each epoch, to ``1/(n_decay + 1)`` in the last one."""
    return 1.0 - max(0, t + 1 - n_constant) / float(n_decay + 1)


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
    ``resume=True`` (continue it) or ``force=True`` (start again, replacing its files).
    """

    def __init__(self, config: Config, data: str | os.PathLike | Dataset, out: str | os.PathLike | None = None,
                 model: str = "cyclegan", resume: bool = False, force: bool = False, progress: bool = True):
        self.config, self.kind, self.progress = config, model, progress
        self.out = Path(out) if out is not None else None
        if self.out is not None:
            _claim_run_dir(self.out, resume, force)
        seed_everything(config.seed, config.deterministic)
        self.device = select_device(config.device)
        self.dataset = data if isinstance(data, Dataset) else self._dataset(Path(data))
        self.sampler = EpochSampler(len(self.dataset), config.seed)
        self.loader = DataLoader(self.dataset, batch_size=config.batch_size, sampler=self.sampler,
                                 num_workers=config.num_workers, pin_memory=self.device.type == "cuda",
                                 persistent_workers=False,
                                 # its own generator, so creating a loader never draws from torch's global
                                 # RNG (dropout's): a resumed run then matches an uninterrupted one
                                 generator=torch.Generator().manual_seed(config.seed))
        self.steps_per_epoch = math.ceil(len(self.dataset) / config.batch_size)
        self.total_steps = config.iters or (config.n_epochs + config.n_epochs_decay) * self.steps_per_epoch
        self.model: TranslationModel = build_model(model, config).setup(self.device)
        self.schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor)
                           for name, opt in self.model.optimizers.items()}
        self.step = 0
        self.history: list[dict] = []
        self.callbacks: list[tuple[int, Callable]] = []
        if resume and self.out is not None and (self.out / CHECKPOINT).exists():
            self.load_checkpoint(self.out / CHECKPOINT)
        elif self.out is not None:
            (self.out / "config.json").write_text(json.dumps({"model": model, **config.to_dict()}, indent=2))

    def _dataset(self, root: Path) -> Dataset:
        c = self.config
        cls = PairedImageFolder if self.kind == "pix2pix" else UnpairedImageFolder
        return cls(root, "train", c.image_size, c.load_size, c.preprocess, c.flip, c.seed,
                   cache=c.image_size <= 128, input_nc=c.input_nc, output_nc=c.output_nc,
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

    def fit(self, steps: int | None = None) -> list[dict]:
        """Train until the schedule ends, or for ``steps`` more steps; returns the history.

        Interrupting (Ctrl-C, or the notebook's stop button) saves a checkpoint first when the run
        has a directory, so ``resume=True`` continues where it stopped.
        """
        end = self.total_steps if steps is None else min(self.total_steps, self.step + steps)
        bar = tqdm(total=end, initial=self.step, desc=f"{self.kind} {self.config.image_size}px",
                   disable=not self.progress, unit="step")
        interrupt = _InterruptBetweenSteps()
        try:
            with interrupt:
                while self.step < end:
                    self._run_epoch(end, bar, interrupt)
        except KeyboardInterrupt:
            if self.out is not None and not interrupt.forced:
                self.save_checkpoint()
            raise
        finally:
            bar.close()
        if self.out is not None:
            self.save_checkpoint()
        return self.history

    def _run_epoch(self, end: int, bar, interrupt: "_InterruptBetweenSteps") -> None:
        epoch, offset = divmod(self.step, self.steps_per_epoch)
        self.sampler.set_epoch(epoch, start=offset * self.config.batch_size)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        started = time.perf_counter()
        for batch in self.loader:
            losses = self.model.step(batch["A"], batch["B"])
            self.step += 1
            record = {"step": self.step, "epoch": epoch, "lr": self.learning_rate(), **losses,
                      "seconds": time.perf_counter() - started}
            # the schedule advances every step (iters) or after an epoch's last step, before any
            # callback or checkpoint, so a run interrupted here resumes with the right learning rate
            if self.config.iters or self.step % self.steps_per_epoch == 0:
                self._step_schedulers()
            if self.step % self.config.log_every == 0 or self.step == end:
                self.history.append(record)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items() if k in ("G_total", "D_A", "D_B", "D")})
            for every, fn in self.callbacks:
                if self.step % every == 0:
                    fn(self, record)
            if self.out is not None and self.config.checkpoint_every and self.step % self.config.checkpoint_every == 0:
                self.save_checkpoint()
            interrupt.check()
            if self.step >= end:
                break
            started = time.perf_counter()

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
        }

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> Path:
        """Write everything needed to continue, atomically (temporary file, then ``os.replace``)."""
        if path is None:
            if self.out is None:
                raise ValueError("this Trainer has no run directory; pass a path to save_checkpoint")
            path = self.out / CHECKPOINT
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            torch.save(self.state_dict(), tmp)
            os.replace(tmp, path)
        finally:                                  # a failed write leaves the previous checkpoint, no debris
            tmp.unlink(missing_ok=True)
        if self.out is not None and path.parent == self.out:
            self.export_history(self.out / "history.csv")
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
        self.step = state["step"]
        self.history = list(state["history"])

    # --- history -----------------------------------------------------------------------------
    def export_history(self, path: str | os.PathLike) -> Path:
        """Write the loss history as CSV (``.csv``) or JSON (any other suffix)."""
        path = Path(path)
        if path.suffix == ".csv":
            columns = list(dict.fromkeys(k for record in self.history for k in record))
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=columns)
                writer.writeheader()
                writer.writerows(self.history)
        else:
            path.write_text(json.dumps(self.history, indent=1))
        return path


class _InterruptBetweenSteps:
    """Hold Ctrl-C (SIGINT, also the notebook's stop button) until the running step is complete, so
    the checkpoint written on interruption holds whole steps and resuming matches an uninterrupted
    run. A second Ctrl-C stops at once, without a checkpoint."""

    def __init__(self):
        self.requested = self.forced = False
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():   # signals reach the main thread only
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            self.forced = True
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


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


def _claim_run_dir(out: Path, resume: bool, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a directory")
    if out.exists() and any(out.iterdir()) and not (resume or force):
        raise FileExistsError(f"run directory {out} is not empty; pass --resume to continue it, "
                              "--force to start over in it, or choose another --out")
    if force and not resume:
        for name in (CHECKPOINT, "history.csv", "config.json"):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


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
    import hashlib
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
