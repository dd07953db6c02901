"""Image domains in the official CycleGAN folder layout (``trainA``, ``trainB``, ``testA``, ``testB``).

Two kinds live here, behind one registry:

* **procedural** domains (:mod:`cyclegan_edu.domains.procedural`): drawn with numpy and PIL,
  deterministic by seed, with exact ground truth: ``testA_gt/x.png`` is the B-domain rendering of
  ``testA/x.png`` (and ``testB_gt`` the reverse), so translations can be scored against the truth;
* **real** domains (:mod:`cyclegan_edu.domains.real`): images from packages that install offline
  (Fashion-MNIST from Debian, Google and Twitter emoji from npm).

``get(name)`` is what the notebooks call: it returns the folder, building it in the cache the first
time ("load if it exists, else make it").
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CACHE_ENV = "CYCLEGAN_EDU_DATA"


@dataclass(frozen=True)
class Task:
    """One registered domain pair. ``build(out, size, n_train, n_test, seed, paired)`` writes it."""
    name: str
    kind: str                 # "procedural" or "real"
    description: str          # one line: what A is, what B is, what the ground truth is
    build: Callable[..., None]
    default_size: int = 64


TASKS: dict[str, Task] = {}


def register(name: str, kind: str, description: str, default_size: int = 64):
    """Decorator that adds a builder function to :data:`TASKS`."""
    def add(build: Callable[..., None]) -> Callable[..., None]:
        if name in TASKS:
            raise ValueError(f"domain task {name!r} is registered twice")
        TASKS[name] = Task(name, kind, description, build, default_size)
        return build
    return add


def cache_root() -> Path:
    """Where built domains live: ``$CYCLEGAN_EDU_DATA``, else ``~/.cache/cyclegan_edu/data``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cyclegan_edu" / "data")


def list_tasks() -> list[Task]:
    _load_builders()
    return [TASKS[name] for name in sorted(TASKS)]


def task(name: str) -> Task:
    _load_builders()
    if name not in TASKS:
        raise ValueError(f"unknown domain task {name!r}; known tasks: {', '.join(sorted(TASKS))} "
                         "(python -m cyclegan_edu toy --list)")
    return TASKS[name]


def generate(name: str, out: str | os.PathLike, size: int | None = None, n_train: int | None = None,
             n_test: int | None = None, seed: int = 0, paired: bool = False, force: bool = False) -> Path:
    """Write task ``name`` to ``out`` in the official layout and return ``out``.

    Refuses to write into a non-empty folder unless ``force`` (nothing a user has is overwritten).
    ``n_train``/``n_test`` = None means the task's own default counts.
    """
    spec = task(name)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise FileExistsError(f"{out} exists and is not empty; choose another --out or pass --force")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        spec.build(out, size or spec.default_size, n_train, n_test, seed, paired)
    except BaseException:
        if created:  # a bad argument or an interruption leaves nothing half-written behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    (out / ".complete").write_text(f"{name} size={size or spec.default_size} seed={seed}\n")
    return out


def get(name: str, size: int | None = None, n_train: int | None = None, n_test: int | None = None,
        seed: int = 0, paired: bool = False, root: str | os.PathLike | None = None) -> Path:
    """The folder of task ``name`` in the cache, built the first time it is asked for."""
    spec = task(name)
    size = size or spec.default_size
    tag = f"{name}_{size}px_seed{seed}" + (f"_n{n_train}-{n_test}" if n_train or n_test else "") \
        + ("_paired" if paired else "")
    out = Path(root) if root is not None else cache_root() / tag
    if (out / ".complete").exists():
        return out
    return generate(name, out, size, n_train, n_test, seed, paired, force=True)


def shuffled_pairs(paired: str | os.PathLike, fraction: float, seed: int = 0) -> Path:
    """A copy of the pix2pix folder ``paired`` (A|B side by side) in which the B halves of ``fraction`` of
    the training files are moved on cyclically among themselves, so that none of those keeps its own B:
    pix2pix trained on it learns from wrong pairs. ``test/`` is copied unchanged. Built once next to
    ``paired``, then found. Chapter 1."""
    import numpy as np
    from PIL import Image
    from .. import data
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction={fraction}: must lie between 0 and 1")
    paired = Path(paired)
    out = paired.with_name(f"{paired.name}_shuffled{fraction:g}_seed{seed}")
    if (out / ".complete").exists():
        return out
    files = data.list_images(paired / "train", data.PAIRED_HINT)
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    half = images[0].shape[1] // 2
    chosen = np.random.default_rng(seed).permutation(len(files))[: round(fraction * len(files))]
    partner = np.arange(len(files))
    if len(chosen) > 1:
        partner[chosen] = np.roll(chosen, 1)          # a cycle through the chosen files: no fixed point
    shutil.rmtree(out, ignore_errors=True)
    (out / "train").mkdir(parents=True)
    for f, image, j in zip(files, images, partner):
        Image.fromarray(np.concatenate([image[:, :half], images[j][:, half:]], axis=1)).save(out / "train" / f.name)
    shutil.copytree(paired / "test", out / "test")
    moved = int((partner != np.arange(len(files))).sum())
    (out / ".complete").write_text(f"{moved} of {len(files)} B halves moved\n")
    return out


def _load_builders() -> None:
    # Importing the modules runs their @register decorators.
    from . import procedural, real  # noqa: F401
