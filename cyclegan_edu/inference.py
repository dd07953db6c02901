"""Translating image files with a trained generator: the work of ``cyclegan-edu translate``.

Every input is checked before any output is written: each must be an image (its header is read)
and, when images keep their size, at least as large as the generator needs. Images are padded to
the multiple of 4 (ResNet generator) or of ``2**levels`` (U-Net) that the generator needs and the
result is cropped back, so outputs have their input's size.

Images go through the generator in batches (of images of one size: with ``size`` all of them, else
those that share their size), with a progress bar. Images are translated whole, at full resolution
when they keep their size, up to ``tile`` pixels a side (``config.TRANSLATE_TILE``); a larger one is translated
in overlapping ``tile``×``tile`` tiles, blended linearly across each overlap (:func:`translate_tiled`).
Tiles are an approximation: instance norm normalises each tile by its own statistics, and pixels
near a tile's border see less context than the generator's receptive field, so tiled results can
differ from whole ones in tone between tiles; the blending hides the seams, not the difference.

Output names follow the official test script: the input's name with its suffix replaced by
``.png`` (``horse.jpg`` → ``horse.png``). Inputs that share a base name (``x.png``, ``x.jpg``,
``x.webp``; compared ignoring case, as some file systems do) instead keep their whole name with
``.png`` appended (``x.png.png``, ``x.jpg.png``, ``x.webp.png``), so no output replaces another.
Existing outputs are replaced only with ``force=True``; an input file is never replaced.
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .config import GENERATOR_MIN_SIZE, TRANSLATE_TILE
from .data import ImageFiles, list_images, pad_to_multiple, read_image_size, to_image
from .networks import ResnetGenerator, UnetGenerator, run_at_test_time

INPUT_HINT = "give --input an image file or a folder of images"
# DataLoader workers decoding images while a GPU translates (on the CPU they would compete with it)
CUDA_WORKERS = 4


@dataclass(frozen=True)
class Translator:
    """A generator ready for image files."""

    forward: Callable[[torch.Tensor], torch.Tensor]  # (N, C, H, W) in [-1, 1] → translated, without gradients
    channels: int          # input channels: 3 (RGB) or 1 (grey)
    multiple: int          # height and width must be multiples of this (inputs are padded up to one)
    min_side: int          # the smallest height and width the generator accepts
    size: int | None = None    # the size its run was trained at (the default for --size); None: keep sizes
    device: torch.device = torch.device("cpu")   # where the generator runs


def open_translator(run: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
                    direction: str | None = None, device: str = "auto", eval_mode: bool = False) -> Translator:
    """The generator of a training run (``run``: its directory or checkpoint; ``direction`` picks
    G or F, default: the direction the run was trained for), or of a generator file (``weights``, e.g.
    the official ``latest_net_G.pth``). ``eval_mode=False`` is the official test.py's behaviour (see
    :func:`~cyclegan_edu.networks.run_at_test_time`)."""
    if (run is None) == (weights is None):
        raise ValueError("give either a run or a weights file")
    if run is not None:
        from .train import load_model
        model = load_model(run, device=device)
        c = model.config
        direction = model.check_direction(direction)        # before any output is written
        generator = next(m for m in model.children() if isinstance(m, (ResnetGenerator, UnetGenerator)))
        return Translator(lambda x: model.translate(x, direction, eval_mode=eval_mode),
                          c.input_nc if direction == "AtoB" else c.output_nc,
                          *_size_rule(generator), size=c.image_size, device=model.device)
    from .devices import select_device
    from .pretrained import load_generator
    device = select_device(device)
    net = load_generator(weights, device=device)

    @torch.no_grad()
    def forward(x: torch.Tensor) -> torch.Tensor:
        return run_at_test_time(net, x.to(device), eval_mode)
    first_conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    return Translator(forward, first_conv.in_channels, *_size_rule(net), device=device)


def _size_rule(generator: nn.Module) -> tuple[int, int]:
    """(multiple, smallest side) of the images ``generator`` accepts: the ResNet generator halves the
    size twice (multiples of 4, at least ``GENERATOR_MIN_SIZE``); the U-Net halves it ``num_downs``
    times, down to 1×1."""
    if isinstance(generator, UnetGenerator):
        return 2 ** generator.num_downs, 2 ** generator.num_downs
    return 4, GENERATOR_MIN_SIZE


def input_files(source: str | os.PathLike) -> list[Path]:
    """``[source]`` for a file, the images in it for a folder; a clear error when it does not exist."""
    source = Path(source)
    if source.is_dir():
        return list_images(source, INPUT_HINT)
    if not source.exists():
        raise FileNotFoundError(f"input {source} does not exist; {INPUT_HINT}")
    return [source]


def output_names(files: list[Path]) -> list[str]:
    """The output file name of each input (see the module docstring): ``stem.png``, or ``name.png``
    for inputs that share a stem. Refuses inputs that would still share an output name."""
    stems = Counter(f.stem.casefold() for f in files)
    names = [(f.stem if stems[f.stem.casefold()] == 1 else f.name) + ".png" for f in files]
    first: dict[str, Path] = {}
    for f, name in zip(files, names):
        if name in first:
            raise ValueError(f"inputs {first[name]} and {f} would both be written to {name}; rename one of them")
        first[name] = f
    return names


def _refuse_overwriting_inputs(files: list[Path], targets: list[Path]) -> None:
    """An output that is one of the inputs (the same file, however named) is refused, even with --force."""
    def identity(path: Path) -> tuple[int, int]:
        st = path.stat()
        return st.st_dev, st.st_ino
    inputs = {identity(f): f for f in files}
    for target in targets:
        if target.exists() and identity(target) in inputs:
            raise FileExistsError(f"output {target} would overwrite the input {inputs[identity(target)]}; "
                                  "choose an --output folder apart from the inputs")


def translate_paths(translator: Translator, source: str | os.PathLike, output: str | os.PathLike,
                    size: int | None = None, batch_size: int = 16, force: bool = False, keep_size: bool = False,
                    tile: int = TRANSLATE_TILE, progress: bool | None = None) -> list[Path]:
    """Translate an image file or a folder of images into PNGs in the folder ``output``.

    ``size``: resize inputs to ``size``×``size`` (default: the run's size; with a weights file, keep
    each image's size); ``keep_size``: translate each image at its own size, at full resolution.
    ``batch_size`` images (or tiles) go through the generator at once. ``tile``: images with a side
    longer than this are translated in overlapping tiles (see the module docstring). ``force``:
    replace existing outputs. ``progress``: a progress bar (None: when the output is a terminal).
    Returns the files written.
    """
    if keep_size and size is not None:
        raise ValueError(f"size {size} and keep_size: give one of --size and --keep-size")
    size = None if keep_size else translator.size if size is None else size
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size}: must be at least 1 (--batch-size)")
    if size is not None and size < translator.min_side:
        raise ValueError(f"size {size}: the generator needs at least {translator.min_side} px (--size)")
    smallest_tile = max(translator.min_side, translator.multiple, 4)
    if tile < smallest_tile:
        raise ValueError(f"tile {tile}: tiles must have at least {smallest_tile} px a side for this generator (--tile)")
    tile -= tile % translator.multiple         # tiles of a size the generator takes
    files = input_files(source)
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise FileExistsError(f"output {output} is a file; give --output a folder (it is made if missing)")
    targets = [output / name for name in output_names(files)]
    _refuse_overwriting_inputs(files, targets)
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise FileExistsError(f"{len(existing)} output file(s) exist already, e.g. {existing[0]}; "
                              "pass --force to overwrite or choose another --output")
    sizes = []
    for f in files:                            # every input readable and large enough before any output is written
        w, h = read_image_size(f)
        if size is None and min(w, h) < translator.min_side:
            raise ValueError(f"input {f} is {w}×{h}, smaller than the {translator.min_side}×{translator.min_side} "
                             f"the generator needs; resize it, or pass --size {translator.min_side} or more")
        sizes.append((w, h) if size is None else (size, size))
    output.mkdir(parents=True, exist_ok=True)
    target_of = {str(f): t for f, t in zip(files, targets)}
    on_cuda = translator.device.type == "cuda"
    loader = DataLoader(ImageFiles(files, size, translator.channels), batch_sampler=batches_by_size(sizes, batch_size),
                        num_workers=CUDA_WORKERS if on_cuda else 0, pin_memory=on_cuda)
    with tqdm(total=len(files), unit="image", desc="translate", disable=None if progress is None else not progress) as bar:
        for batch, paths in loader:
            padded, (h, w) = pad_to_multiple(batch, translator.multiple)
            result = translate_tiled(translator.forward, padded, tile, batch_size)[..., :h, :w].cpu()
            for image, path in zip(result, paths):
                to_image(image).save(target_of[path])
            bar.update(len(paths))
    return targets


def batches_by_size(sizes: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices of images of one size, ``batch_size`` at most a batch, in the order the sizes first occur."""
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, size in enumerate(sizes):
        groups[size].append(i)
    return [group[k:k + batch_size] for group in groups.values() for k in range(0, len(group), batch_size)]


def translate_tiled(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int,
                    batch_size: int = 16) -> torch.Tensor:
    """``forward(x)`` for a (N, C, H, W) batch, in ``tile``×``tile`` tiles where H or W is larger.

    Tiles overlap by ``tile // 4``; ``batch_size`` tiles go through ``forward`` at once. Each tile's
    output is weighted by a ramp that rises across the overlaps it shares with its neighbours (and
    is 1 elsewhere, image borders included), and the weighted outputs are averaged: where
    ``forward`` treats every pixel alike (no normalisation over the tile, a receptive field within
    the overlap), the result is ``forward(x)``. ``tile`` and H, W must be multiples of what ``forward``
    needs (pad first, :func:`~cyclegan_edu.data.pad_to_multiple`).
    """
    n, _, h, w = x.shape
    if h <= tile and w <= tile:
        return forward(x)
    overlap = tile // 4
    rows, cols = _tile_starts(h, tile, overlap), _tile_starts(w, tile, overlap)
    boxes = [(top, left, min(tile, h), min(tile, w)) for top in rows for left in cols]
    out = total = None
    for k in range(0, len(boxes), max(1, batch_size // n)):
        chunk = boxes[k:k + max(1, batch_size // n)]
        tiles = torch.cat([x[..., t:t + th, l:l + tw] for t, l, th, tw in chunk])
        results = forward(tiles).float().split(n)
        for (t, l, th, tw), result in zip(chunk, results):
            if out is None:
                out = result.new_zeros(n, result.shape[1], h, w)
                total = result.new_zeros(1, 1, h, w)
            weight = (_ramp(th, t > 0, t + th < h, overlap, result)[:, None]
                      * _ramp(tw, l > 0, l + tw < w, overlap, result)[None, :])
            out[..., t:t + th, l:l + tw] += result * weight
            total[..., t:t + th, l:l + tw] += weight
    return out / total


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Where the tiles along one side begin: every ``tile - overlap`` pixels, the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


def _ramp(length: int, rise: bool, fall: bool, overlap: int, like: torch.Tensor) -> torch.Tensor:
    """A tile's weights along one side: 1, rising from near 0 across its first ``overlap`` pixels when
    a tile comes before it (``rise``), falling across its last ones when one comes after (``fall``)."""
    ramp = torch.ones(length, dtype=like.dtype, device=like.device)
    edge = (torch.arange(overlap, dtype=like.dtype, device=like.device) + 0.5) / overlap
    if rise:
        ramp[:overlap] = torch.minimum(ramp[:overlap], edge)
    if fall:
        ramp[-overlap:] = torch.minimum(ramp[-overlap:], edge.flip(0))
    return ramp
