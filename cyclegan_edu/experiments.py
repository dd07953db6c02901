"""The book's experiments, declared once: what each chapter trains, over which settings and seeds.

An :class:`Experiment` is a named grid: a chapter, a task (a domain of :mod:`cyclegan_edu.domains`),
the settings common to all its runs, the **variants** (the setting the chapter varies, e.g. λ), the
seeds, and the training length at the ``cpu`` scale. Every run of it (variant × seed) is trained by the
ordinary :class:`~cyclegan_edu.train.Trainer` and scored by :func:`cyclegan_edu.evaluation.evaluate`.

Results are committed. The runs of every experiment at the ``cpu`` preset live in this package, in
``results/<experiment>/<variant>/seed<k>/`` (``run.json``: the config, the scores, a subsampled loss
history, wall time, package version, git commit and machine; ``samples.png``: a fixed sheet of test
images through both generators). No weights are kept. The chapters read them with :func:`load`;
``tests/test_experiments.py`` fails when a committed run's config no longer equals what its declaration
produces today (a changed default cannot leave stale numbers in the book).

From the command line::

    cyclegan-edu results list                                # one experiment a line, name first
    cyclegan-edu results run ch3-lambda [--variant lambda10] [--seed 0] [--preset cpu]
    cyclegan-edu results reproduce ch3-lambda               # retrain one run, compare with the committed one

Running skips finished runs and resumes interrupted ones from the trainer's checkpoints (kept outside
the repository, under ``$CYCLEGAN_EDU_RUNS/experiments``), so hours of compute survive any stop.

Scales: ``cpu`` is the committed scale (64 px, ngf 32, 6 blocks, batch 4, each experiment's own number
of steps); ``ci`` runs every experiment's code path in seconds (32 px, tiny networks, a few steps, two
seeds) so that CI keeps it alive; ``gpu``/``paper`` retrain with the paper's networks for readers who want
to (their results go to ``$CYCLEGAN_EDU_RUNS/results/<preset>``, never over the committed ones).
"""
from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .config import Config, default_preset_name, get_preset

RESULTS_DIR = Path(__file__).parent / "results"
COMMITTED_PRESET = "cpu"
CI_STEPS = 6                  # training steps of every run in the ci preset: the code path, not the result
CI_SEEDS = 2                  # seeds per variant in the ci preset (a spread needs two)
SCALE_FIELDS = ("image_size", "load_size")   # an experiment may set them (chapter 5: 128 px); ci keeps its own
HISTORY_POINTS = 100          # loss-history records kept per run (4 significant digits)
FILM_IMAGES = 4               # test images drawn in every frame of a run's training film
D_MAP_RANGE = (-0.5, 1.5)     # scores kept in d_maps.png, 8 bits over this range (LSGAN's targets: 0 fake, 1 real)
DYNAMICS_IMAGES = 16          # fixed test images of each domain that a run's dynamics are measured on
MIN_DYNAMICS_POINTS = 3       # measurements after step 0 at least, however short the run (the ci scale)
CURVE_POINTS = 10             # times during a run that the error against the truth is measured
THREADS = 1                   # CPU threads of an experiment run: deterministic whatever the machine's core
                              # count; run several at once (one --seed each) to use more cores
FORMAT = "cyclegan_edu.experiment_run/1"


@dataclass(frozen=True)
class Variant:
    """One setting of an experiment: a short ``key`` (folder and CLI name), the ``label`` the book prints,
    and the Config fields it changes (``model="pix2pix"`` trains the paired baseline on paired data)."""
    key: str
    label: str
    changes: dict = field(default_factory=dict)
    model: str = "cyclegan"
    shuffle_pairs: float = 0.0          # pix2pix: the share of training pairs whose B half is another's
    eval_mode: bool = True              # False: scored as the official test.py does by default (batch norm
                                        # with each test image's own statistics; networks.set_test_time_mode)
    trains_as: str | None = None        # the key of a variant whose training this one is (the same settings):
                                        # it is scored from that variant's networks, which train once


@dataclass(frozen=True)
class Experiment:
    """A declared grid of runs (see the module docstring)."""
    name: str
    chapter: int
    task: str
    title: str
    variants: tuple[Variant, ...]
    steps: int                          # training steps at the committed (cpu) scale
    base: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_train: int | None = None          # training images per domain (None: the task's own number)
    film_frames: int = 0                # frames of a training film kept for the first seed of each variant
    dynamics_every: int = 0             # steps between two measurements of D's scores and the diversity (0: none)
    d_maps: int = 0                     # test images whose final D score maps the first seed keeps (chapter 5)
    sheet_images: int | None = None     # test images per row of the first seed's sample sheet (None: N_SAMPLES)
    sheet_way: str | None = None        # "AtoB": keep only the sheet's A → B rows (x, G(x), F(G(x)), truth)

    def __post_init__(self):
        for v in self.variants:
            if v.trains_as is None:
                continue
            same = [u for u in self.variants if u.key == v.trains_as and u.trains_as is None]
            if not same or (same[0].changes, same[0].model, same[0].shuffle_pairs) != (v.changes, v.model, v.shuffle_pairs):
                raise ValueError(f"experiment {self.name}: variant {v.key!r} trains_as={v.trains_as!r}, which must name "
                                 "another variant of the experiment with the same changes, model and shuffle_pairs")

    def variant(self, key: str | None) -> Variant:
        """The variant called ``key`` (default: the first)."""
        if key is None:
            return self.variants[0]
        for v in self.variants:
            if v.key == key:
                return v
        raise ValueError(f"experiment {self.name} has no variant {key!r}; its variants: "
                         f"{', '.join(v.key for v in self.variants)}")

    def seeds_for(self, preset: str) -> tuple[int, ...]:
        return self.seeds[:CI_SEEDS] if preset == "ci" else self.seeds

    def config(self, preset: str, variant: Variant, seed: int) -> Config:
        """The exact Config of one run: the preset, then the experiment's settings, the variant's, the
        seed and the training length (``steps`` at every scale but ``ci``; the second half decays). The
        ``ci`` scale keeps its own image size (:data:`SCALE_FIELDS`) even where an experiment sets one."""
        steps = CI_STEPS if preset == "ci" else self.steps
        settings = {**self.base, **variant.changes}
        if preset == "ci":                  # the ci scale's own image size, whatever the experiment's
            settings = {k: v for k, v in settings.items() if k not in SCALE_FIELDS}
        config = get_preset(preset, model=variant.model, **settings)
        return config.replace(seed=seed, iters=steps, iters_decay=steps // 2)

    def runs(self, preset: str) -> list[tuple[Variant, int]]:
        return [(v, s) for v in self.variants for s in self.seeds_for(preset)]


def _lambda_key(value: float) -> str:
    return f"{value:g}".replace(".", "p")


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    # Listed first: its runs are the shortest (pix2pix, one generator: about 6 minutes here), so that
    # `cyclegan-edu results reproduce` with its defaults checks a committed run in minutes.
    # Chapter 1: pix2pix with its pairs, then with half and all of them wrong, on the horse ↔ zebra analogue.
    Experiment("ch1-pix2pix", 1, "shapes", "pix2pix with true, half-shuffled and shuffled pairs",
               (Variant("pairs", "pix2pix, pairs", model="pix2pix"),
                Variant("half-shuffled", "pix2pix, half shuffled", model="pix2pix", shuffle_pairs=0.5),
                Variant("all-shuffled", "pix2pix, all shuffled", model="pix2pix", shuffle_pairs=1.0)),
               steps=2500),
    # Chapter 0: the paper's model and defaults (identity loss 0.5) on the horse ↔ zebra analogue, with truth;
    # its film is chapter 7's healthy run, its dynamics chapter 6's reference.
    Experiment("ch0-shapes", 0, "shapes", "CycleGAN on plain ↔ striped animals, against the truth",
               (Variant("cyclegan", "CycleGAN"),), steps=2500, film_frames=10, dynamics_every=25),
    # Chapter 0: real images, sneakers ↔ ankle boots (Fashion-MNIST), judged by a fashion classifier.
    Experiment("ch0-fashion", 0, "sneaker2boot", "CycleGAN on real sneakers ↔ ankle boots",
               (Variant("cyclegan", "CycleGAN"),), steps=2500, n_train=1000),
    # Chapter 2: the adversarial loss alone (λ = 0: no cycle, so no identity term either) on the task of
    # chapter 0, whose CycleGAN (ch0-shapes) is the comparison; chapter 6 returns to it for mode collapse.
    Experiment("ch2-gan-alone", 2, "shapes", "The adversarial loss alone on plain ↔ striped animals",
               (Variant("gan-alone", "GAN alone (λ = 0)", {"lambda_cycle": 0.0}),), steps=2500,
               film_frames=10, dynamics_every=25),
    # Chapter 3: the cycle weight λ of Eq. 3 on labels ↔ photos (the identity loss off, as in Eq. 3).
    Experiment("ch3-lambda", 3, "labels", "Cycle weight λ on labels ↔ photos",
               tuple(Variant(f"lambda{_lambda_key(lam)}", f"λ = {lam:g}", {"lambda_cycle": float(lam)})
                     for lam in (10, 0, 1, 100)),
               steps=2500, base={"lambda_identity": 0.0}),
    # Chapter 3: the ablation of Tables 4-5 (GAN alone and the full model are ch3-lambda's λ = 0 and 10).
    Experiment("ch3-ablation", 3, "labels", "Which part of the loss does the work (Tables 4-5)",
               (Variant("cycle-alone", "cycle alone", {"lambda_gan": 0.0}),
                Variant("gan-forward", "GAN + forward cycle", {"cycle_backward": False}),
                Variant("gan-backward", "GAN + backward cycle", {"cycle_forward": False}),
                # the paired upper bound: one pix2pix per direction, on the same scenes with their pairs
                Variant("pix2pix-AtoB", "pix2pix (paired), labels → photo", {}, model="pix2pix"),
                Variant("pix2pix-BtoA", "pix2pix (paired), photo → labels", {"direction": "BtoA"}, model="pix2pix")),
               steps=2500, base={"lambda_identity": 0.0}),
    # Chapter 4: the identity weight λ_id (relative to λ = 10) on summer ↔ winter scenes, where colour matters.
    Experiment("ch4-identity", 4, "seasons", "Identity weight λ_id on summer ↔ winter",
               tuple(Variant(f"idt{_lambda_key(v)}", f"λ_id = {v:g}", {"lambda_identity": float(v)})
                     for v in (0.5, 0, 5, 100)),
               steps=2500),
    # Chapter 4: the same question where the theory says colour is free: tint's hues are spread evenly, so
    # any hue rotation of G's outputs is as good for every term of Eq. 3 (chapter 4 shows it exactly).
    Experiment("ch4-tint", 4, "tint", "Identity loss on flat ↔ shaded pieces of evenly spread hues",
               tuple(Variant(f"idt{_lambda_key(v)}", f"λ_id = {v:g}", {"lambda_identity": float(v)})
                     for v in (0.5, 0)),
               steps=2500),
    # Chapter 5: the generator's design choices on the task of chapter 0 (whose runs are the paper's choices:
    # instance norm, 6 blocks at this size, transposed convolutions). batchnorm-own is batchnorm's networks
    # (trains_as: trained once) scored as the official test.py does by default: with each test image's own
    # statistics, as in training, instead of the running ones.
    Experiment("ch5-generator", 5, "shapes", "Batch norm and resize-convolution in the ResNet generator",
               (Variant("batchnorm", "batch norm", {"norm": "batch"}),
                Variant("batchnorm-own", "batch norm, each test image's own statistics", {"norm": "batch"},
                        eval_mode=False, trains_as="batchnorm"),
                Variant("resize", "resize-convolution", {"upsample": "resize"})),
               steps=2500, sheet_images=4, sheet_way="AtoB"),
    # Chapter 5: the discriminator's patch on labels → photo at 128 px, where a 16×16, a 70×70 and the whole
    # image are different things: pix2pix (one direction, paired) and CycleGAN.
    Experiment("ch5-patchgan", 5, "labels", "pix2pix with a 1×1, 16×16, 70×70 and whole-image discriminator at 128 px",
               (Variant("pixel", "PixelGAN (1×1)", {"netD": "pixel"}, model="pix2pix"),
                Variant("patch16", "PatchGAN 16×16", {"n_layers_D": 1}, model="pix2pix"),
                Variant("patch70", "PatchGAN 70×70", {}, model="pix2pix"),
                Variant("image", "ImageGAN (whole image)", {"netD": "image"}, model="pix2pix")),
               steps=2500, base={"image_size": 128, "load_size": 143}, d_maps=3, sheet_images=3),
    Experiment("ch5-patchgan-cyclegan", 5, "labels", "CycleGAN with a 1×1, 16×16, 70×70 and whole-image discriminator at 128 px",
               (Variant("pixel", "PixelGAN (1×1)", {"netD": "pixel"}),
                Variant("patch16", "PatchGAN 16×16", {"n_layers_D": 1}),
                Variant("patch70", "PatchGAN 70×70", {}),
                Variant("image", "ImageGAN (whole image)", {"netD": "image"})),
               steps=2500, base={"image_size": 128, "load_size": 143, "lambda_identity": 0.0}, d_maps=3,
               sheet_images=3, sheet_way="AtoB"),
    # Chapter 6: training dynamics on the task of chapter 0 (whose runs, with their measured dynamics, are the
    # paper's settings here): no image pool, the log loss, and a generator that learns ten times slower than
    # its discriminator, without and with spectral normalisation. (A 600-step pilot with D's rate × 10 instead
    # made D noisier, its loss above the paper run's, not stronger; G's rate ÷ 10 made D clearly stronger:
    # D's loss about 0.12, G's adversarial loss about 0.6.)
    Experiment("ch6-dynamics", 6, "shapes", "The image pool, the loss, and a generator slower than its discriminator",
               (Variant("pool0", "no image pool", {"pool_size": 0}),
                Variant("vanilla", "log loss (vanilla GAN)", {"gan_mode": "vanilla"}),
                Variant("slowG", "G's learning rate ÷ 10", {"lr": 2e-5, "lr_D": 2e-4}),
                Variant("slowG-sn", "G's learning rate ÷ 10, spectral norm", {"lr": 2e-5, "lr_D": 2e-4,
                                                                               "spectral_norm": True})),
               steps=2500, dynamics_every=25, sheet_images=4, sheet_way="AtoB"),
    # Chapter 8: what the cycle hides, with the paper's model and defaults. A change of shape (ellipses ↔
    # squares), which the paper's §6 found it cannot make, scored on the outline as well as the pixels ...
    Experiment("ch8-reshape", 8, "reshape", "CycleGAN on ellipses ↔ squares: a change of shape",
               (Variant("cyclegan", "CycleGAN"),), steps=2500, sheet_images=4, sheet_way="AtoB"),
    # ... and dataset bias, §6's striped rider: a rock in half the plain-animal scenes and in no striped one.
    Experiment("ch8-distractor", 8, "distractor", "CycleGAN on plain ↔ striped animals, with a rock no zebra scene has",
               (Variant("cyclegan", "CycleGAN"),), steps=2500, sheet_images=4, sheet_way="AtoB"),
    # Chapter 9: beyond CycleGAN on the task of chapter 0 (whose runs are CycleGAN at the same budget): the
    # one-sided DistanceGAN (G alone, no F, no cycle) and CycleGAN with a perceptual cycle loss.
    Experiment("ch9-beyond", 9, "shapes", "DistanceGAN (one-sided) and a perceptual cycle loss",
               (Variant("distancegan", "DistanceGAN (G only)", {"lambda_identity": 0.0}, model="distancegan"),
                Variant("perceptual", "CycleGAN, perceptual cycle loss", {"cycle_loss": "perceptual"})),
               steps=2500, sheet_images=4, sheet_way="AtoB"),
]}


# --- where results live ----------------------------------------------------------------------------
def runs_dir() -> Path:
    """Checkpoints of experiment runs (resumable, never committed)."""
    from .train import runs_root
    return runs_root() / "experiments"


def results_dir(preset: str) -> Path:
    """Where the results of ``preset`` are written and read: the package's committed folder for ``cpu``,
    ``$CYCLEGAN_EDU_RUNS/results/<preset>`` for the others."""
    if preset == COMMITTED_PRESET:
        return Path(os.environ.get("CYCLEGAN_EDU_RESULTS") or RESULTS_DIR)
    from .train import runs_root
    return runs_root() / "results" / preset


def get(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)} (cyclegan-edu results list)")
    return EXPERIMENTS[name]


def run_path(root: Path, experiment: Experiment, variant: Variant, seed: int) -> Path:
    return root / experiment.name / variant.key / f"seed{seed}"


# --- running ------------------------------------------------------------------------------------------
def task_folder(experiment: Experiment, variant: Variant, config: Config) -> Path:
    """The folder a run trains on: the task in the official unpaired layout, or for pix2pix its paired
    layout (with ``shuffle_pairs`` of the pairs made wrong). Every run is scored on the unpaired folder's
    test split (:func:`test_folder`), the same images whatever the model."""
    from . import domains
    folder = domains.get(experiment.task, size=config.image_size, n_train=experiment.n_train,
                         paired=variant.model == "pix2pix")
    return domains.shuffled_pairs(folder, variant.shuffle_pairs) if variant.shuffle_pairs else folder


def test_folder(experiment: Experiment, config: Config) -> Path:
    """The folder whose test split (testA, testB and their truths) scores every run of ``experiment``."""
    from . import domains
    return domains.get(experiment.task, size=config.image_size, n_train=experiment.n_train)


def run(name: str, preset: str | None = None, variant: str | None = None, seed: int | None = None,
        out: str | os.PathLike | None = None, progress: bool = True, force: bool = False) -> list[Path]:
    """Train and score the runs of experiment ``name`` that are not finished yet (all, or one ``variant``
    and/or ``seed``), writing each run's record to ``out`` (default :func:`results_dir`). A run whose record
    exists with the same config is skipped (``force`` recomputes it); an interrupted one resumes."""
    experiment = get(name)
    preset = preset or default_preset_name()
    root = Path(out) if out is not None else results_dir(preset)
    chosen = [(v, s) for v, s in experiment.runs(preset)
              if (variant is None or v.key == variant) and (seed is None or s == seed)]
    if variant is not None:
        experiment.variant(variant)                    # a clear error for an unknown key
    if not chosen:
        raise ValueError(f"experiment {name} has no run with variant={variant} seed={seed} in preset {preset}; "
                         f"seeds: {experiment.seeds_for(preset)}")
    written = []
    for v, s in chosen:
        path = run_path(root, experiment, v, s)
        if not force and _is_current(path, experiment, preset, v, s):
            if progress:
                print(f"{name} {v.key} seed {s}: done already ({path})")
            continue
        written.append(run_one(experiment, preset, v, s, path, progress=progress))
    return written


def run_one(experiment: Experiment, preset: str, variant: Variant, seed: int, path: Path,
            progress: bool = True, checkpoints: Path | None = None, precision: str | None = None) -> Path:
    """Train one run (resuming its checkpoint if one exists; a variant that ``trains_as`` another resumes
    that variant's, so a finished one is only scored), score it and write ``path/run.json`` and
    ``path/samples.png``. The record is written last and atomically: a stop leaves no half-written run.
    Two processes never train the same run: the second gets a clear error naming the first. ``precision``
    overrides the declared one (:func:`reproduce` uses it to measure what another precision changes)."""
    config = experiment.config(preset, variant, seed)
    if precision is not None:
        config = config.replace(precision=precision)
    folder = task_folder(experiment, variant, config)
    # a variant that trains as another shares its checkpoints: it is scored from the same networks
    work = (checkpoints or runs_dir() / preset) / experiment.name / (variant.trains_as or variant.key) / f"seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    with _RunLock(work / "running.pid"):
        return _train_and_record(experiment, preset, variant, seed, path, progress, config, folder, work)



def _train_and_record(experiment: Experiment, preset: str, variant: Variant, seed: int, path: Path,
                      progress: bool, config: Config, folder: Path, work: Path) -> Path:
    import torch
    from . import __version__, evaluation
    from .train import Trainer
    commit = _code_commit()
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        trainer = Trainer(config, folder, out=work, model=variant.model, resume=True, progress=progress)
        missing = _series_missing(experiment, seed, work) if trainer.step > 0 else []
        if missing:       # a checkpoint older than the series the experiment now records: they cannot be completed
            print(f"{experiment.name} {variant.key} seed {seed}: its checkpoint of step {trainer.step} has no "
                  f"{' and no '.join(missing)} from step 0 (trained before the experiment recorded them); "
                  "training it again from step 0", file=sys.stderr)
            for name in missing:
                (work / name).unlink(missing_ok=True)
            trainer = Trainer(config, folder, out=work, model=variant.model, force=True, progress=progress)
        scored_on = test_folder(experiment, config)
        curve = _track_curve(trainer, scored_on, variant, work / "curve.json")
        dynamics = (_track_dynamics(trainer, scored_on, config, experiment.dynamics_every, work / "dynamics.json")
                    if experiment.dynamics_every else None)
        film = (_record_film(trainer, scored_on, config, experiment.film_frames, work / "film.json")
                if experiment.film_frames and seed == experiment.seeds[0] else None)
        trainer.fit()
        # the step times of every sitting (the history survives a resume; log_every is 1 in every preset)
        train_seconds = sum(record["seconds"] for record in trainer.history)
        started = time.perf_counter()
        scores = evaluation.evaluate(trainer.model, scored_on, experiment.task, config.image_size, variant.model,
                                     config.direction, variant.eval_mode, progress=progress)
        rows = sheet_rows(evaluation.samples(trainer.model, scored_on, config.image_size, variant.model,
                                             config.direction, n=experiment.sheet_images or evaluation.N_SAMPLES,
                                             eval_mode=variant.eval_mode),
                          first_seed=seed == experiment.seeds[0], way=experiment.sheet_way)
        maps = (_d_maps(trainer.model, scored_on, config, variant, experiment.d_maps)
                if experiment.d_maps and seed == experiment.seeds[0] else None)
        eval_seconds = time.perf_counter() - started
        where = machine(config)                        # while this run's thread count is in force
    finally:
        torch.set_num_threads(threads)
    record = {
        "format": FORMAT, "experiment": experiment.name, "chapter": experiment.chapter, "task": experiment.task,
        "variant": variant.key, "label": variant.label, "model": variant.model, "seed": seed, "preset": preset,
        "config": config.to_dict(), "data": data_fingerprint(folder), "evaluation_version": evaluation.version(experiment.task),
        "eval_mode": variant.eval_mode, "metrics": scores, "steps": trainer.step, "train_seconds": round(train_seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "history": _subsample(trainer.history), "curve": curve, "samples": list(rows),
        **({"dynamics": dynamics} if dynamics is not None else {}),
        **({"d_maps": {"rows": list(maps), "images": experiment.d_maps, "range": list(D_MAP_RANGE)}}
           if maps is not None else {}),
        "package_version": __version__, "git": commit, "machine": where,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    path.mkdir(parents=True, exist_ok=True)
    if rows:
        _save_sheet(rows, path / "samples.png")
    if maps is not None:
        _save_d_maps(maps, path / "d_maps.png")
    if film is not None:
        _write_atomically(path / "film.json", json.dumps(film.to_dict(), ensure_ascii=False) + "\n")
    _write_atomically(path / "run.json", json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    if progress:
        print(f"{experiment.name} {variant.key} seed {seed}: {trainer.step} steps in {train_seconds:.0f} s -> {path}")
    return path


class _RunLock:
    """A lock file holding the pid of the process that trains a run; a lock left by a process that no
    longer exists (killed) is taken over."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    owner = int(self.path.read_text() or 0)
                    os.kill(owner, 0)
                except (ValueError, ProcessLookupError, FileNotFoundError):
                    self.path.unlink(missing_ok=True)           # stale: its process is gone
                    continue
                except PermissionError:
                    pass
                raise FileExistsError(f"{self.path.parent} is being trained by process {owner}; wait for it, "
                                   "or give this command another --seed or --variant") from None
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise RuntimeError(f"could not lock {self.path}")

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)


def _series_missing(experiment: Experiment, seed: int, work: Path) -> list[str]:
    """The series files that ``experiment`` records for this run and ``work`` lacks: a checkpoint made before
    they were declared (or by an older version) has trained steps they never saw."""
    wanted = ["curve.json"] + ["dynamics.json"] * bool(experiment.dynamics_every) \
        + ["film.json"] * bool(experiment.film_frames and seed == experiment.seeds[0])
    return [name for name in wanted if not (work / name).exists()]


def _kept_points(path: Path, step: int, key: str | None = None) -> list[dict]:
    """The points of the series that a run keeps in ``path`` (a JSON list of ``{"step": ...}`` points, or
    an object holding that list under ``key``) measured at or before ``step``, the checkpoint the run
    resumes from: points past it (a run killed between the two) are measured again. No file: none yet.
    A file that is not whole JSON (cut short by a stop while an older version of this package wrote it
    in place) is one clear error naming what to do."""
    if not path.exists():
        return []
    try:
        stored = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not whole JSON ({err.msg} at character {err.pos}: cut short by a stop while "
                         f"it was written); delete the folder {path.parent} to train this run again from step 0") from None
    return [p for p in (stored if key is None else stored[key]) if p["step"] <= step]


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: into ``<name>.tmp`` first, then renamed over
    ``path`` (a rename is atomic), so a stop mid-write leaves the previous version for a resume to read."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _track_curve(trainer, folder: Path, variant: Variant, path: Path) -> list[dict]:
    """Measure the error against the truth ``CURVE_POINTS`` times during training (and at step 0), so a
    record shows whether the run had flattened; kept in ``path`` so that a resumed run keeps its points.
    Measured in eval mode whatever ``variant.eval_mode``: it follows training, which the test-time mode
    does not change. Returns the list the callback fills."""
    from . import evaluation
    c = trainer.config
    curve = _kept_points(path, trainer.step)

    def measure(trainer, record=None) -> None:
        curve.append({"step": trainer.step, **evaluation.quick_scores(trainer.model, folder, c.image_size,
                                                                      variant.model, c.direction)})
        _write_atomically(path, json.dumps(curve))
    if not curve:
        measure(trainer)
    trainer.add_callback(measure, every=max(1, trainer.total_steps // CURVE_POINTS))
    return curve


def _track_dynamics(trainer, folder: Path, config: Config, every: int, path: Path) -> list[dict]:
    """Every ``every`` steps (more often if the run is too short for ``MIN_DYNAMICS_POINTS``) and at step 0, measure on ``DYNAMICS_IMAGES`` fixed test images per domain,
    for each direction the model translates: the discriminator's mean score on real images of the target
    domain and on the translations (as :func:`~cyclegan_edu.diagnostics.discriminator_scores`; its swings are
    what the image pool damps) and the translations' diversity relative to their inputs' (the readout of
    :class:`~cyclegan_edu.diagnostics.ModeCollapseMonitor`). Kept in ``path`` so that a resumed run keeps its
    points (points past the checkpoint are measured again). Returns the list the callback fills. Chapter 6."""
    from . import evaluation
    from .data import load_folder
    import torch
    from .diagnostics import score_map
    from .metrics import output_diversity
    images = {side: load_folder(folder / f"test{side}", config.image_size, limit=DYNAMICS_IMAGES) for side in "AB"}
    ways = [(way, "G" if way == "AtoB" else "F") for way in evaluation.directions(trainer.kind, config.direction)]
    points = _kept_points(path, trainer.step)
    every = min(every, max(1, trainer.total_steps // MIN_DYNAMICS_POINTS))          # short (ci) runs: still a series

    def measure(trainer, record=None) -> None:
        point = {"step": trainer.step}
        for way, name in ways:
            source, target = images[way[0]], images[way[-1]]
            translated = trainer.model.translate(source, way).cpu()
            scores = score_map(trainer.model, torch.cat([target, translated]), way, torch.cat([source, source]))
            point[f"{name} D real"] = round(float(scores[:len(target)].mean()), 5)
            point[f"{name} D fake"] = round(float(scores[len(target):].mean()), 5)
            point[f"{name} diversity ratio"] = round(output_diversity(translated) / output_diversity(source), 5)
        points.append(point)
        _write_atomically(path, json.dumps(points))
    if not points:
        measure(trainer)
    trainer.add_callback(measure, every=every)
    return points


def _d_maps(model, folder: Path, config: Config, variant: Variant, n: int) -> dict:
    """The trained discriminator's score maps (:func:`~cyclegan_edu.diagnostics.discriminator_scores`, one
    score per patch) on the true translations of the first ``n`` test inputs ("real") and on the model's own
    translations of them ("fake", made in the variant's test-time mode): the images of the run's sample
    sheet. pix2pix's D judges each beside its input. Chapter 5."""
    from .data import load_folder
    from .diagnostics import discriminator_scores
    way = config.direction if variant.model == "pix2pix" else "AtoB"
    source = load_folder(folder / f"test{way[0]}", config.image_size, limit=n)
    truth = load_folder(folder / f"test{way[0]}_gt", config.image_size, limit=n)
    return {name: maps.cpu() for name, maps in discriminator_scores(model, source, truth, way, variant.eval_mode).items()}


def _save_d_maps(maps: dict, path: Path) -> None:
    """The maps as one 8-bit grey PNG: a row per kind, a column per image, D_MAP_RANGE mapped to 0-255."""
    from PIL import Image
    import torch
    lo, hi = D_MAP_RANGE
    sheet = torch.cat([torch.cat(list(rows), dim=-1) for rows in maps.values()], dim=-2)
    array = ((sheet.clamp(lo, hi) - lo) / (hi - lo) * 255 + 0.5).byte().numpy()
    Image.fromarray(array).save(path, optimize=True)


def _record_film(trainer, folder: Path, config: Config, frames: int, path: Path):
    """Record a training film (:class:`~cyclegan_edu.film.FilmRecorder`: the loss curves so far and the
    sample grid) of ``FILM_IMAGES`` test images, ``frames`` times during training; the frames are kept in
    ``path`` after each one, so that a resumed run's film has them all. Returns the recorder. Chapter 7."""
    from .data import load_folder
    from .film import FilmRecorder
    side = "testA" if config.direction == "AtoB" else "testB"
    recorder = FilmRecorder(load_folder(folder / side, config.image_size, limit=FILM_IMAGES),
                            every=max(1, trainer.total_steps // frames))
    recorder.frames = _kept_points(path, trainer.step, key="frames")

    def record(trainer, entry: dict) -> None:
        recorder(trainer, entry)
        _write_atomically(path, json.dumps(recorder.to_dict()))
    trainer.add_callback(record, every=recorder.every)
    return recorder


def _subsample(history: list[dict]) -> list[dict]:
    if len(history) <= HISTORY_POINTS:
        picked = history
    else:
        picked = [history[int(i)] for i in np.linspace(0, len(history) - 1, HISTORY_POINTS)]
    return [{k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in record.items()} for record in picked]


A_TO_B_ROWS = ("x", "G(x)", "F(G(x))", "truth of x")


def sheet_rows(rows: dict, first_seed: bool, way: str | None = None) -> dict:
    """What a run keeps of its sample sheet: everything for the first seed of a variant (inputs, outputs,
    round trips, truths: about 0.35 MB at 64 px), or with ``way="AtoB"`` only the A → B rows (the
    comparison experiments of chapters 5 to 9, which also keep fewer images: ``sheet_images``); nothing for
    the other seeds, whose scores say how much they differ. So the committed results stay near 12 MB."""
    if way == "AtoB":
        rows = {name: images for name, images in rows.items() if name in A_TO_B_ROWS}
    return rows if first_seed else {}


def data_fingerprint(folder: Path) -> dict:
    """What a run was trained and scored on: the folder's name, its number of images per split, and a hash
    of the pixels of the first 20 of each (decoded, so PNG encoder versions do not matter)."""
    import hashlib
    from PIL import Image
    from .data import list_images
    digest, counts = hashlib.sha1(), {}
    for sub in sorted(p.name for p in folder.iterdir() if p.is_dir()):
        files = list_images(folder / sub)
        counts[sub] = len(files)
        for path in files[:20]:
            with Image.open(path) as img:
                digest.update(np.asarray(img).tobytes())
    return {"folder": folder.name, "counts": counts, "pixels_sha1": digest.hexdigest()[:16]}


def machine(config: Config) -> dict:
    """The facts that decide whether another run can match this one bit for bit."""
    import torch
    from .devices import autocast_dtype, select_device
    device = select_device(config.device)
    dtype = autocast_dtype(config.precision, device)
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"device": device.type if device.type != "cuda" else torch.cuda.get_device_name(device),
            "cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "autocast": str(dtype).replace("torch.", "") if dtype else "fp32"}


@functools.lru_cache(maxsize=1)
def _code_commit() -> str | None:
    """The commit of the code this process runs: read once, at its first run (a CLI run starts right after
    importing the package), so that commits made while a run trains do not end up in its record."""
    return _git_commit()


def _git_commit(root: Path | None = None) -> str | None:
    """The commit the package was run from, with ``+dirty`` when its code (not its committed results, which
    other runs write meanwhile) differs from that commit; None outside a git checkout."""
    root = root or Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "cyclegan_edu",
                                ":(exclude)cyclegan_edu/results"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _save_sheet(rows: dict, path: Path) -> None:
    """The sample rows as one PNG of tiles (row r, column c = image c of row r), no margins: small, exact."""
    from PIL import Image
    import torch
    sheet = torch.cat([torch.cat(list(row), dim=-1) for row in rows.values()], dim=-2)   # (C, rows·H, n·W)
    array = ((sheet.clamp(-1, 1) + 1) * 127.5 + 0.5).byte().permute(1, 2, 0).numpy()
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(path, optimize=True)


# --- reading ------------------------------------------------------------------------------------------
def stale_reason(record: dict, experiment: Experiment | None = None) -> str | None:
    """Why a stored run no longer matches its declaration (None when it does): a changed config, scoring
    or unknown variant. A field added to Config later with a default that keeps the old behaviour does
    not make a run stale."""
    from . import evaluation
    experiment = experiment or EXPERIMENTS.get(record["experiment"])
    if experiment is None:
        return f"experiment {record['experiment']!r} is no longer declared"
    try:
        variant = experiment.variant(record["variant"])
    except ValueError:
        return f"variant {record['variant']!r} is no longer declared"
    if record["seed"] not in experiment.seeds_for(record["preset"]):
        return f"seed {record['seed']} is no longer declared"
    stored = Config.from_dict(record["config"], record["model"]).to_dict()
    current = experiment.config(record["preset"], variant, record["seed"]).to_dict()
    changed = [f"{k}: {stored.get(k)!r} → {current[k]!r}" for k in current if stored.get(k) != current[k]]
    if changed:
        return "config changed (" + ", ".join(changed) + ")"
    if variant.model != record["model"]:
        return f"model changed: {record['model']} → {variant.model}"
    if record.get("eval_mode", True) != variant.eval_mode:      # records before the field: eval mode
        return f"test-time mode changed: eval_mode {record.get('eval_mode', True)} → {variant.eval_mode}"
    if record.get("evaluation_version") != evaluation.version(experiment.task):
        return (f"scores were computed by evaluation version {record.get('evaluation_version')}, "
                f"now {evaluation.version(experiment.task)}")
    return None


def _is_current(path: Path, experiment: Experiment, preset: str, variant: Variant, seed: int) -> bool:
    record_path = path / "run.json"
    if not record_path.exists():
        return False
    record = json.loads(record_path.read_text())
    return record.get("preset") == preset and stale_reason(record, experiment) is None


@dataclass
class Results:
    """The stored runs of one experiment at one preset, as the chapters use them."""
    experiment: Experiment
    preset: str
    records: dict[tuple[str, int], dict]
    root: Path

    @property
    def complete(self) -> bool:
        return all((v.key, s) in self.records for v, s in self.experiment.runs(self.preset))

    def variants(self) -> list[Variant]:
        """The declared variants that have at least one stored run, in declaration order."""
        return [v for v in self.experiment.variants if any(k == v.key for k, _ in self.records)]

    def values(self, metric: str, variant: str) -> list[float]:
        return [r["metrics"][metric] for (k, _), r in sorted(self.records.items()) if k == variant]

    def summary(self, metric: str, variant: str) -> tuple[float, float, int]:
        """Mean, sample standard deviation over seeds (0 for one seed) and number of seeds."""
        values = np.array(self.values(metric, variant), dtype=float)
        if len(values) == 0:
            raise ValueError(f"no stored run of {self.experiment.name} variant {variant!r}")
        return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values)

    def table(self, metrics: list[str], variants: list[str] | None = None, digits: int = 3,
              extra: dict[str, dict[str, float]] | None = None,
              also: list[tuple["Results", str, str]] | None = None) -> str:
        """Mean ± standard deviation over seeds of each metric, one variant a row, the number of seeds
        last; ``also`` rows (results of another experiment, its variant key, a label: e.g. chapter 0's
        CycleGAN beside chapter 1's pix2pix) and ``extra`` rows (label → metric → one value: baselines,
        references) follow. Chapter 0."""
        keys = variants or [v.key for v in self.variants()]
        labels = {v.key: v.label for v in self.experiment.variants}
        rows = {}
        for results, k, label in [(self, k, labels[k]) for k in keys] + list(also or []):
            stats = [results.summary(m, k) for m in metrics]
            rows[label] = [f"{mean:.{digits}f} ± {std:.{digits}f}" for mean, std, _ in stats] + [str(stats[0][2])]
        for label, values in (extra or {}).items():
            rows[label] = [f"{values[m]:.{digits}f}" if m in values else "—" for m in metrics] + [""]
        header = [*metrics, "seeds"]
        widths = [max(len(h), *(len(r[i]) for r in rows.values())) + 2 for i, h in enumerate(header)]
        first = max(len(label) for label in rows) + 2
        lines = [" " * first + "".join(f"{h:>{w}}" for h, w in zip(header, widths))]
        lines += [f"{label:<{first}}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths)) for label, cells in rows.items()]
        return "\n".join(lines)

    def curve(self, metric: str, variant: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps, mean, standard deviation over seeds) of a score measured during training (the
        record's ``curve``: the error against the truth at ``CURVE_POINTS`` steps). Chapter 0."""
        curves = [r["curve"] for (k, _), r in sorted(self.records.items()) if k == variant]
        if not curves:
            raise ValueError(f"no stored run of {self.experiment.name} variant {variant!r}")
        steps = [point["step"] for point in curves[0]]
        values = np.array([[point[metric] for point in c] for c in curves if [q["step"] for q in c] == steps])
        spread = values.std(0, ddof=1) if len(values) > 1 else np.zeros(len(steps))
        return np.array(steps), values.mean(0), spread

    def describe(self) -> str:
        """One line saying what the stored runs are: scale, networks, steps, seeds. Chapter 0."""
        first = next(iter(self.records.values()), None)
        if first is None:
            return f"{self.experiment.name}: no stored runs at the {self.preset} scale"
        c = first["config"]
        return (f"{self.experiment.name}: {len(self.records)} runs at the {self.preset} scale: {c['image_size']} px, "
                f"G with ngf {c['ngf']} and {c['n_blocks']} blocks, batch {c['batch_size']}, {c['iters']} steps, "
                f"seeds {', '.join(str(s) for s in sorted({s for _, s in self.records}))}")

    def samples(self, variant: str, seed: int | None = None) -> dict[str, "torch.Tensor"]:
        """The stored sample sheet of one run as named rows of images in [-1, 1]."""
        import torch
        from PIL import Image
        seed = self.experiment.seeds_for(self.preset)[0] if seed is None else seed
        record = self.records[(variant, seed)]
        if not record["samples"]:
            raise ValueError(f"{self.experiment.name} {variant} seed {seed} kept no sample sheet (only the first seed "
                             f"of a variant does): ask for seed {self.experiment.seeds_for(self.preset)[0]}")
        with Image.open(run_path(self.root, self.experiment, self.experiment.variant(variant), seed) / "samples.png") as img:
            array = np.asarray(img)
        sheet = torch.from_numpy(array.copy()).float() / 127.5 - 1
        sheet = sheet[None] if sheet.dim() == 2 else sheet.permute(2, 0, 1)
        names = record["samples"]
        size = sheet.shape[1] // len(names)
        return {name: sheet[:, r * size:(r + 1) * size].unflatten(-1, (-1, size)).permute(2, 0, 1, 3)
                for r, name in enumerate(names)}

    def film(self, variant: str) -> dict:
        """The training film of the first seed of ``variant`` (experiments that declare ``film_frames``),
        as :func:`cyclegan_edu.widgets.training_film` plays it. Chapter 7."""
        seed = self.experiment.seeds_for(self.preset)[0]
        path = run_path(self.root, self.experiment, self.experiment.variant(variant), seed) / "film.json"
        if (variant, seed) not in self.records or not path.exists():
            raise ValueError(f"{self.experiment.name} {variant} seed {seed} has no stored film "
                             + ("(its experiment records none)" if not self.experiment.film_frames else
                                f"yet: cyclegan-edu results run {self.experiment.name} --variant {variant} --seed {seed} --force"))
        return json.loads(path.read_text())

    def d_maps(self, variant: str) -> dict[str, "torch.Tensor"]:
        """The final discriminator's score maps of the first seed of ``variant`` (experiments that declare
        ``d_maps``): ``{"real": (n, h, w), "fake": (n, h, w)}`` on the sample sheet's first ``n`` truths and
        translations, to 8 bits over :data:`D_MAP_RANGE`. Chapter 5."""
        import torch
        from PIL import Image
        seed = self.experiment.seeds_for(self.preset)[0]
        record = self.records.get((variant, seed), {})
        if "d_maps" not in record:
            raise ValueError(f"{self.experiment.name} {variant} seed {seed} kept no discriminator maps "
                             "(its experiment declares no d_maps)")
        with Image.open(run_path(self.root, self.experiment, self.experiment.variant(variant), seed) / "d_maps.png") as img:
            array = np.asarray(img).astype(np.float32)
        lo, hi = record["d_maps"]["range"]
        sheet = torch.from_numpy(array) / 255 * (hi - lo) + lo
        rows, n = record["d_maps"]["rows"], record["d_maps"]["images"]
        h = sheet.shape[0] // len(rows)
        return {name: sheet[r * h:(r + 1) * h].unflatten(-1, (n, -1)).permute(1, 0, 2) for r, name in enumerate(rows)}

    def dynamics(self, variant: str, seed: int) -> list[dict]:
        """The dynamics measured during one run (experiments that declare ``dynamics_every``): per point,
        the step, and per generator (``G``, ``F``) D's mean score on real images and on translations and
        the translations' diversity ratio. Chapter 6."""
        record = self.records[(variant, seed)]
        if "dynamics" not in record:
            raise ValueError(f"{self.experiment.name} {variant} seed {seed} has no measured dynamics "
                             "(its experiment declares no dynamics_every)")
        return record["dynamics"]

    def history(self, variant: str, seed: int | None = None) -> list[dict]:
        seed = self.experiment.seeds_for(self.preset)[0] if seed is None else seed
        return self.records[(variant, seed)]["history"]


def load(name: str, preset: str | None = None, root: str | os.PathLike | None = None) -> Results:
    """The stored runs of experiment ``name`` at ``preset`` (default :data:`COMMITTED_PRESET`), current
    ones only: a stale record (see :func:`stale_reason`) raises, naming the command that recomputes it."""
    experiment = get(name)
    preset = preset or COMMITTED_PRESET
    base = Path(root) if root is not None else results_dir(preset)
    records, stale = _scan(experiment, preset, base)
    if stale:
        path, reason, v, s = stale[0]
        raise ValueError(f"{path} is stale: {reason}; recompute it with: cyclegan-edu results run {name} "
                         f"--preset {preset} --variant {v} --seed {s}")
    return Results(experiment, preset, records, base)


def _scan(experiment: Experiment, preset: str, base: Path) -> tuple[dict, list[tuple[Path, str, str, int]]]:
    """The current stored records of ``experiment`` under ``base``, and (path, reason, variant, seed) of the
    stale ones."""
    records, stale = {}, []
    for v, s in experiment.runs(preset):
        path = run_path(base, experiment, v, s) / "run.json"
        if path.exists():
            record = json.loads(path.read_text())
            reason = stale_reason(record, experiment)
            if reason:
                stale.append((path, reason, v.key, s))
            else:
                records[(v.key, s)] = record
    return records, stale


def shown_scale(preset: str | None = None, retrain: bool = False) -> str:
    """The preset whose results a chapter shows in ``preset``: ``ci`` retrains at the ci scale, the others
    show the committed ``cpu`` results unless they ``retrain``. Chapter 0."""
    preset = preset or default_preset_name()
    return preset if preset == "ci" or retrain else COMMITTED_PRESET


def results(name: str, preset: str | None = None, retrain: bool = False, progress: bool = False) -> Results:
    """What a chapter shows for experiment ``name``: in the ``ci`` preset every run is trained at the tiny
    ci scale (CI keeps the code path alive); in any other preset the committed ``cpu`` results are loaded,
    unless ``retrain`` asks to train the experiment at this preset (hours on a CPU, see ``steps``)."""
    scale = shown_scale(preset, retrain)
    if scale != COMMITTED_PRESET:
        run(name, scale, progress=progress)
    return load(name, scale)


def describe(experiment: Experiment, preset: str = COMMITTED_PRESET, root: str | os.PathLike | None = None) -> str:
    """One line of ``results list``: name first, then chapter, variants × seeds, preset, current runs stored
    (and how many are stale), date."""
    records, stale = _scan(experiment, preset, Path(root) if root is not None else results_dir(preset))
    dates = sorted(r["created"][:10] for r in records.values())
    runs = experiment.runs(preset)
    stored = f"{len(records)}/{len(runs)} runs stored" + (f" ({len(stale)} stale: results run {experiment.name} "
                                                           f"recomputes them)" if stale else "")
    width = max(len(name) for name in EXPERIMENTS)
    return (f"{experiment.name:{width}s}  ch{experiment.chapter}  {len(experiment.variants)} variants × "
            f"{len(experiment.seeds_for(preset))} seeds  {preset}  {stored}  "
            f"{dates[-1] if dates else '—':10s}  {experiment.title}")


# --- reproducing --------------------------------------------------------------------------------------
SAME_MACHINE_TOLERANCE = 1e-6


def reproduce(name: str, variant: str | None = None, seed: int | None = None, progress: bool = True,
              preset: str = COMMITTED_PRESET, root: str | os.PathLike | None = None,
              precision: str | None = None) -> tuple[bool, str]:
    """Retrain one committed run from scratch and compare its scores with the committed ones.

    On the machine kind that made the record (same CPU model, thread count, torch version and autocast
    dtype) training is deterministic and every score must agree within ``SAME_MACHINE_TOLERANCE``. Elsewhere
    a GAN's training diverges from the first differing rounding, so the comparison is against the spread
    over seeds: each score must lie within 3 standard deviations of the committed seeds' mean (plus 0.01).
    ``precision`` retrains at another precision (e.g. ``fp32`` against committed bf16 runs): another machine
    kind, as far as the comparison goes. Returns (ok, report). ``preset`` and ``root`` name other stored
    results (the tests use the ci scale).
    """
    import tempfile
    experiment = get(name)
    committed = load(name, preset, root)
    v = experiment.variant(variant)
    seed = experiment.seeds_for(preset)[0] if seed is None else seed
    if (v.key, seed) not in committed.records:
        raise ValueError(f"no committed run of {name} variant {v.key} seed {seed}; "
                         f"run it first: cyclegan-edu results run {name} --variant {v.key} --seed {seed}")
    old = committed.records[(v.key, seed)]
    with tempfile.TemporaryDirectory() as tmp:
        path = run_one(experiment, preset, v, seed, Path(tmp) / "run", progress=progress,
                       checkpoints=Path(tmp) / "checkpoints", precision=precision)
        new = json.loads((path / "run.json").read_text())
    same_machine = {k: old["machine"].get(k) for k in ("cpu", "threads", "torch", "autocast")} == \
                   {k: new["machine"].get(k) for k in ("cpu", "threads", "torch", "autocast")}
    lines = [f"{name} {v.key} seed {seed}: committed {old['created'][:10]} on {old['machine']['cpu']} "
             f"({old['machine']['autocast']}), recomputed on {new['machine']['cpu']} ({new['machine']['autocast']})",
             "same machine kind: every score must match within 1e-6" if same_machine else
             "another machine kind: every score must lie within 3 sd (+0.01) of the committed seeds' mean",
             f"{'score':<22}{'committed':>12}{'recomputed':>12}{'allowed':>10}  ok"]
    ok = True
    for metric, before in old["metrics"].items():
        after = new["metrics"].get(metric, float("nan"))
        if same_machine:
            centre, allowed = before, SAME_MACHINE_TOLERANCE * max(1.0, abs(before))
        else:
            mean, std, _ = committed.summary(metric, v.key)
            centre, allowed = mean, 3 * std + 0.01 * max(1.0, abs(mean))
        good = bool(abs(after - centre) <= allowed)
        ok &= good
        lines.append(f"{metric:<22}{before:>12.6f}{after:>12.6f}{allowed:>10.2g}  {'yes' if good else 'NO'}")
    return ok, "\n".join(lines)
