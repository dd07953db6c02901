"""Images in, tensors out: loading, the official preprocessing, and the folder datasets.

The official layout of an unpaired dataset is ``root/trainA``, ``root/trainB``, ``root/testA`` and
``root/testB``; a paired (pix2pix) dataset holds ``root/train`` and ``root/test`` of images with A on
the left half and B on the right.

Training images go through the official preprocessing (paper appendix 7.1): resize to
``load_size`` (286), random ``image_size`` crop (256), random horizontal flip, scale to [-1, 1].
Test images are only resized. All randomness of an item is drawn from a generator seeded by
``(seed, epoch, index)``, so an item is the same whichever worker loads it, and a resumed run sees
exactly the images the interrupted one would have seen.

A domain with one channel (``input_nc=1`` for A, ``output_nc=1`` for B) is read as 8-bit grey,
as the official ``--input_nc 1`` / ``--output_nc 1`` do.

Images with more pixels than Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``,
about 89 million) are refused with one line. To read larger images you trust, raise the limit:
``PIL.Image.MAX_IMAGE_PIXELS = N`` in Python, or the environment variable
``CYCLEGAN_EDU_MAX_IMAGE_PIXELS=N`` (read when this module is imported; e.g. for the command line).
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler

from .config import DIRECTIONS

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif"}
LAYOUT_HINT = ("expected the official layout root/trainA, root/trainB, root/testA, root/testB; "
               "make one with: python -m cyclegan_edu toy shapes --out DIR")
PAIRED_HINT = ("expected pix2pix's layout root/train, root/test of images with A on the left half and B on "
               "the right; make one with: python -m cyclegan_edu toy shapes --paired --out DIR")
PIXEL_LIMIT_ENV = "CYCLEGAN_EDU_MAX_IMAGE_PIXELS"


def _apply_pixel_limit_env() -> None:
    """Set Pillow's decompression-bomb limit from ``$CYCLEGAN_EDU_MAX_IMAGE_PIXELS`` when it is set."""
    value = os.environ.get(PIXEL_LIMIT_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{PIXEL_LIMIT_ENV}={value!r}: give the largest number of pixels an image may have")
        Image.MAX_IMAGE_PIXELS = int(value)


_apply_pixel_limit_env()


def list_images(folder: str | os.PathLike, hint: str = LAYOUT_HINT) -> list[Path]:
    """The image files directly in ``folder``, sorted; a clear error (ending in ``hint``) when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist; {hint}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise FileNotFoundError(f"image folder {folder} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
                                f"{hint}")
    return files


T = TypeVar("T")


def _read(path: Path, use: Callable[[Image.Image], T]) -> T:
    """``use(image)`` on the opened file, with one clear error for each way a file can be unreadable.
    Pillow's decompression-bomb warning (over ``MAX_IMAGE_PIXELS``; it only refuses at twice that)
    is an error here, so an enormous file is refused instead of being decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return use(img)
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} does not exist") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        found = re.search(r"\((\d+) pixels\)", str(err))     # Pillow's message holds the pixel count
        pixels = found.group(1) if found else "N"
        raise ValueError(f"image {path} has {'more' if pixels == 'N' else pixels} pixels, over Pillow's "
                         f"decompression-bomb limit PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}; if you "
                         f"trust the file, raise the limit: set the environment variable {PIXEL_LIMIT_ENV}={pixels} "
                         "(or PIL.Image.MAX_IMAGE_PIXELS in Python)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}; delete or replace the file") from None


def _decoded(img: Image.Image) -> Image.Image:
    img = ImageOps.exif_transpose(img)
    img.load()
    return img


def load_image(path: str | os.PathLike, channels: int = 3) -> Image.Image:
    """Open any image as 8-bit RGB: EXIF orientation applied, transparency composited on white,
    16-bit and 32-bit grey scaled to 8 bits, CMYK and palettes converted; with ``channels=1``,
    8-bit grey instead (:func:`to_channels`)."""
    return to_channels(to_rgb(_read(Path(path), _decoded)), channels)


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding it; the errors of :func:`load_image`."""
    return _read(Path(path), lambda img: img.size)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a PIL image of any mode to RGB (see :func:`load_image`)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info or img.mode in ("LA", "PA"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")


def check_channels(name: str, channels: int) -> int:
    """``channels`` if image files can have it (1: grey, 3: RGB), else a ValueError naming ``name``."""
    if channels not in (1, 3):
        raise ValueError(f"{name}={channels}: images from files have 1 (grey) or 3 (RGB) channels")
    return channels


def to_channels(img: Image.Image, channels: int) -> Image.Image:
    """An RGB image with ``channels`` channels: itself for 3; for 1, 8-bit grey ``L = 0.299 R +
    0.587 G + 0.114 B`` (ITU-R 601-2), the ``transforms.Grayscale(1)`` that the official loaders
    apply when a domain has one channel."""
    return img if check_channels("channels", channels) == 3 else img.convert("L")


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB (or grey ``L``) PIL image → float tensor (3 or 1, H, W) in [-1, 1] (the generator's tanh range)."""
    arr = np.array(img, dtype=np.uint8, copy=True)
    arr = torch.from_numpy(arr[..., None] if arr.ndim == 2 else arr).permute(2, 0, 1)
    return arr.float().div_(127.5).sub_(1.0)


def to_image(x: torch.Tensor) -> Image.Image:
    """Float tensor (3 or 1, H, W) in [-1, 1] → RGB (or grey ``L``) PIL image."""
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"to_image takes a (3, H, W) or (1, H, W) tensor, got shape {tuple(x.shape)}")
    arr = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0], "L") if arr.shape[-1] == 1 else Image.fromarray(arr, "RGB")


def pad_to_multiple(x: torch.Tensor, multiple: int = 4) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflection-pad a (N, C, H, W) batch so H and W are multiples of ``multiple``; returns the batch
    and the original (H, W) to crop back to after translation."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


class Preprocess:
    """The official ``get_transform``: ``resize_and_crop``, ``crop``, ``scale_width_and_crop``,
    ``resize`` (to image_size) or ``none`` (sizes rounded to a multiple of 4), then flip.

    ``resize(img)`` is the deterministic part (cached by the datasets); ``__call__(images,
    generator)`` then applies one random crop and flip to a list of resized images (a pix2pix pair
    must stay aligned), drawing the offsets from ``generator``.
    """

    def __init__(self, image_size: int, load_size: int, preprocess: str = "resize_and_crop",
                 flip: bool = True, train: bool = True):
        self.image_size, self.load_size = image_size, load_size
        self.mode = preprocess if train else ("none" if preprocess == "none" else "resize")
        self.flip = flip and train

    def resize(self, img: Image.Image) -> Image.Image:
        """The deterministic part (cacheable): the resize before cropping."""
        s, w, h = self.load_size, *img.size
        if self.mode == "resize_and_crop":
            return img.resize((s, s), Image.BICUBIC)
        if self.mode == "scale_width_and_crop" and w != s:
            return img.resize((s, max(self.image_size, round(h * s / w))), Image.BICUBIC)
        if self.mode == "resize":
            return img.resize((self.image_size, self.image_size), Image.BICUBIC)
        if self.mode == "none" and (w % 4 or h % 4):
            return img.resize((max(4, round(w / 4) * 4), max(4, round(h / 4) * 4)), Image.BICUBIC)
        return img

    def __call__(self, images: list[Image.Image], generator: torch.Generator, names=()) -> list[torch.Tensor]:
        if self.mode in ("resize_and_crop", "crop", "scale_width_and_crop"):
            w, h = images[0].size
            if w < self.image_size or h < self.image_size:
                name = f" {names[0]}" if names else ""
                raise ValueError(f"image{name} is {w}×{h}, smaller than the crop size {self.image_size}; "
                                 "use preprocess='resize_and_crop' or a smaller image_size")
            x = int(torch.randint(0, w - self.image_size + 1, (1,), generator=generator))
            y = int(torch.randint(0, h - self.image_size + 1, (1,), generator=generator))
            images = [img.crop((x, y, x + self.image_size, y + self.image_size)) for img in images]
        flip = self.flip and bool(torch.rand((), generator=generator) < 0.5)
        tensors = [to_tensor(img) for img in images]
        return [t.flip(-1) for t in tensors] if flip else tensors


def _item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_033 + index)


class _FolderDataset(Dataset):
    """Shared machinery: per-item seeded randomness, the channels of each domain, an optional
    in-memory cache of resized images, skipping of unreadable files when asked, and the direction:
    ``"BtoA"`` swaps A and B in every item (the official ``--direction``), so a model learns the
    dataset's B → A; the model's A (the dataset's B) then has ``input_nc`` channels."""

    def __init__(self, image_size, load_size, preprocess, flip, train, seed, cache, skip_bad, input_nc, output_nc,
                 direction):
        if direction not in DIRECTIONS:
            raise ValueError(f"direction={direction!r}: choose one of {DIRECTIONS}")
        if direction == "BtoA":                   # the dataset's A folder feeds the model's B side
            input_nc, output_nc = output_nc, input_nc
        self.transform = Preprocess(image_size, load_size, preprocess, flip, train)
        self.seed, self.epoch = seed, 0
        self.channels = {"A": check_channels("input_nc", input_nc), "B": check_channels("output_nc", output_nc)}
        self.cache: dict[Path, Image.Image] | None = {} if cache else None
        self.skip_bad = skip_bad
        self.direction = direction

    def _item(self, A: torch.Tensor, B: torch.Tensor, path_A: Path, path_B: Path) -> dict:
        if self.direction == "BtoA":
            A, B, path_A, path_B = B, A, path_B, path_A
        return {"A": A, "B": B, "A_path": str(path_A), "B_path": str(path_B)}

    def set_epoch(self, epoch: int) -> None:
        """Call before each epoch (as with DistributedSampler) so crops and pairings change."""
        self.epoch = epoch

    def _read(self, path: Path, domain: str):
        """The resized image of ``path`` in ``domain``'s channels."""
        return self.transform.resize(load_image(path, self.channels[domain]))

    def _load(self, path: Path, domain: str):
        if self.cache is not None and path in self.cache:
            return self.cache[path]
        img = self._read(path, domain)
        if self.cache is not None:
            self.cache[path] = img
        return img

    def _load_or_skip(self, paths: list[Path], i: int, domain: str):
        for k in range(len(paths)):
            path = paths[(i + k) % len(paths)]
            try:
                return self._load(path, domain), path
            except ValueError as err:
                if not self.skip_bad:
                    raise ValueError(f"{err}, or skip unreadable images with --skip-bad (skip_bad=True)") from None
                warnings.warn(f"skipping unreadable image: {err}")
        raise ValueError(f"no readable image among {len(paths)} files in {paths[0].parent}")


class UnpairedImageFolder(_FolderDataset):
    """``root/{phase}A`` and ``root/{phase}B``, paired at random as the official unaligned loader:
    item ``i`` is the i-th A image (modulo) with a random B image. Its length is the larger count.

    Items are dicts ``{"A", "B", "A_path", "B_path"}`` of (C, S, S) tensors in [-1, 1], with
    ``input_nc`` channels for A and ``output_nc`` for B (3: RGB, 1: grey); ``direction="BtoA"``: the
    same items with A and B swapped.
    """

    def __init__(self, root: str | os.PathLike, phase: str = "train", image_size: int = 256,
                 load_size: int = 286, preprocess: str = "resize_and_crop", flip: bool = True,
                 seed: int = 0, cache: bool = False, skip_bad: bool = False, input_nc: int = 3, output_nc: int = 3,
                 direction: str = "AtoB"):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"dataset folder {root} does not exist; {LAYOUT_HINT}")
        self.A_paths = list_images(root / f"{phase}A")
        self.B_paths = list_images(root / f"{phase}B")
        super().__init__(image_size, load_size, preprocess, flip, phase == "train", seed, cache, skip_bad,
                         input_nc, output_nc, direction)

    def __len__(self) -> int:
        return max(len(self.A_paths), len(self.B_paths))

    def __getitem__(self, index: int) -> dict:
        g = _item_generator(self.seed, self.epoch, index)
        b_index = int(torch.randint(0, len(self.B_paths), (1,), generator=g))
        img_A, path_A = self._load_or_skip(self.A_paths, index % len(self.A_paths), "A")
        img_B, path_B = self._load_or_skip(self.B_paths, b_index, "B")
        (A,) = self.transform([img_A], g, [path_A])
        (B,) = self.transform([img_B], g, [path_B])
        return self._item(A, B, path_A, path_B)


class PairedImageFolder(_FolderDataset):
    """pix2pix's aligned format: ``root/{phase}`` of images with A on the left half and B on the
    right; one crop and flip is applied to both halves. A has ``input_nc`` channels, B ``output_nc``;
    ``direction="BtoA"`` makes the right half A."""

    def __init__(self, root: str | os.PathLike, phase: str = "train", image_size: int = 256,
                 load_size: int = 286, preprocess: str = "resize_and_crop", flip: bool = True,
                 seed: int = 0, cache: bool = False, skip_bad: bool = False, input_nc: int = 3, output_nc: int = 3,
                 direction: str = "AtoB"):
        self.paths = list_images(Path(root) / phase, PAIRED_HINT)
        super().__init__(image_size, load_size, preprocess, flip, phase == "train", seed, cache, skip_bad,
                         input_nc, output_nc, direction)

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, path: Path, domain: str):
        """Both resized halves of the side-by-side image ``path`` (``domain`` is ``"AB"``), each in its
        domain's channels."""
        ab = load_image(path)
        w, h = ab.size
        if w < 2:
            raise ValueError(f"paired image {path} is {w}×{h}: expected A and B side by side")
        halves = {"A": ab.crop((0, 0, w // 2, h)), "B": ab.crop((w // 2, 0, w, h))}
        return tuple(self.transform.resize(to_channels(halves[d], self.channels[d])) for d in "AB")

    def __getitem__(self, index: int) -> dict:
        g = _item_generator(self.seed, self.epoch, index)
        (img_A, img_B), path = self._load_or_skip(self.paths, index, "AB")
        A, B = self.transform([img_A, img_B], g, [path])
        return self._item(A, B, path, path)


class ImageFiles(Dataset):
    """A list of image files, resized for inference (``size=None``: keep the size; the caller pads
    to a multiple of 4), with ``channels`` channels (3: RGB, 1: grey). Items are ``(tensor, path)``."""

    def __init__(self, paths: list[Path], size: int | None = None, channels: int = 3):
        self.paths, self.size, self.channels = list(paths), size, check_channels("channels", channels)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        img = load_image(self.paths[index], self.channels)
        if self.size:
            img = img.resize((self.size, self.size), Image.BICUBIC)
        return to_tensor(img), str(self.paths[index])


def load_folder(folder: str | os.PathLike, size: int, limit: int | None = None, channels: int = 3) -> torch.Tensor:
    """Every image of ``folder`` (sorted, at most ``limit``) resized to ``size`` as one (N, C, S, S)
    batch in [-1, 1] with ``channels`` channels: the notebooks' way to get a test set."""
    files = ImageFiles(list_images(folder)[:limit], size, channels)
    return torch.stack([files[i][0] for i in range(len(files))])


class EpochSampler(Sampler[int]):
    """A fresh random order each epoch, from ``(seed, epoch)`` alone, that can start mid-epoch:
    what a resumed run needs to see the same batches as an uninterrupted one.

    In a run of ``world_size`` processes it is also the distributed sampler (the role of torch's
    ``DistributedSampler``, which cannot start mid-epoch): the epoch's order is padded with its
    first indices to ``per_rank × world_size`` and process ``rank`` takes every ``world_size``-th
    index from position ``rank``. The k-th batches of the processes, each of B images, then hold
    the images of the k-th batch of one process with batch ``world_size × B``; ``start`` counts
    within the process's share.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank}: must lie between 0 and world_size - 1 = {world_size - 1}")
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.per_rank = -(-n // world_size)         # indices each process gets an epoch
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self):
        order = (torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 7919 + self.epoch))
                 if self.shuffle else torch.arange(self.n))
        if self.world_size > 1:
            padded = self.per_rank * self.world_size
            order = order.repeat(-(-padded // self.n))[:padded][self.rank::self.world_size]
        return iter(order[self.start:].tolist())

    def __len__(self) -> int:
        return self.per_rank - self.start
