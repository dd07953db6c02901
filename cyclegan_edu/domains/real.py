"""Real image domains from packages that install offline, written in the official layout.

* **Fashion-MNIST** (Xiao, Rasul and Vollgraf 2017; Zalando Research, MIT licence) from the Debian
  package ``dataset-fashion-mnist``: 70,000 greyscale 28×28 images of ten clothing classes. Each task
  takes two classes as domains A and B (``sneaker2boot``, ``tshirt2shirt``, ``pullover2coat``):
  the horse↔zebra experiment of the paper (§5.2, object transfiguration) in miniature. The images
  keep Fashion-MNIST's look, a light garment on a black background, resized to the task size and
  saved as RGB PNG. There is no ground truth (a sneaker has no boot twin); translations are scored
  by a classifier, :func:`cyclegan_edu.judges.fashion_judge`.
* **Emoji, Google ↔ Twitter** from the npm packages ``emoji-datasource-google@16.0.0`` and
  ``emoji-datasource-twitter@16.0.0`` (emoji-datasource by Cal Henderson, MIT; images: Google Noto
  Emoji, Apache-2.0, and Twitter Twemoji, CC-BY 4.0). The 1,911 base emoji exist in both styles under
  the same file name, so every test image has its true counterpart: ``testA_gt/x.png`` is the Twitter
  drawing of the Google emoji ``testA/x.png`` (and ``testB_gt`` the reverse). The training halves are
  disjoint: no emoji is in both ``trainA`` and ``trainB``, so the data really is unpaired, while
  ``paired=True`` gives pix2pix the true pairs (the paired upper bound of §5.1).

Nothing here downloads at run time except where the user has no package and a download client
exists: torchvision's ``FashionMNIST`` (Colab) and ``npm install`` of the emoji packages.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from . import cache_root, register
from ..data import to_rgb

FASHION_ENV = "CYCLEGAN_EDU_FASHION_MNIST"
FASHION_DIRS = (Path("/usr/share/datasets/fashion-mnist"), Path("/usr/local/share/datasets/fashion-mnist"))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                 "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_HINT = ("install it with `sudo apt-get install dataset-fashion-mnist`, or set "
                f"${FASHION_ENV} to a folder holding train-images-idx3-ubyte.gz and the three other IDX files")

EMOJI_ENV = "CYCLEGAN_EDU_EMOJI"
EMOJI_PACKAGES = ("emoji-datasource-google@16.0.0", "emoji-datasource-twitter@16.0.0")
EMOJI_STYLES = {"A": "google", "B": "twitter"}

# The IDX format (LeCun's MNIST files): two zero bytes, a type code, the number of dimensions,
# then each dimension as a big-endian uint32, then the values in C order.
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, plain or gzip-compressed (decided by the first two bytes), as a numpy array."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()}); "
                         "reinstall the data package or delete the file")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path} is truncated or corrupt: shape {shape} needs {expected} bytes of data, "
                         f"found {len(raw) - header}; reinstall the data package or delete the file")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _idx_file(folder: Path, stem: str) -> Path | None:
    return next((folder / (stem + ext) for ext in (".gz", "") if (folder / (stem + ext)).is_file()), None)


def fashion_mnist_dir() -> Path:
    """The folder holding the four Fashion-MNIST IDX files.

    Searched: ``$CYCLEGAN_EDU_FASHION_MNIST`` when it is set, else the Debian package's folders; then
    torchvision's download folder ``FashionMNIST/raw`` inside ``$CYCLEGAN_EDU_FASHION_MNIST`` or the
    cache. There only the unpacked files count: torchvision unpacks an archive after it passed its MD5
    check, so the leftovers of a broken download are downloaded again, not read. When no folder has
    the files and torchvision is installed, it downloads them (30 MB). Files neither here nor
    downloadable raise an OSError whose one line says why and what to do (FileNotFoundError when there
    is nothing to download with), so that a chapter can catch it and go on without Fashion-MNIST.
    """
    stems = [stem for pair in FASHION_FILES.values() for stem in pair]
    if os.environ.get(FASHION_ENV):
        download_to = Path(os.environ[FASHION_ENV])
        installed = [download_to]
    else:
        installed, download_to = list(FASHION_DIRS), cache_root() / "fashion-mnist"
    for folder in installed:
        if all(_idx_file(folder, stem) for stem in stems):
            return folder
    downloaded = download_to / "FashionMNIST" / "raw"  # torchvision's layout under its root folder
    if all((downloaded / stem).is_file() for stem in stems):
        return downloaded
    searched = ", ".join(str(c) for c in [*installed, downloaded])
    try:
        import torchvision
    except ImportError:
        raise FileNotFoundError(f"Fashion-MNIST not found (searched {searched}); {FASHION_HINT}, "
                                "or `pip install torchvision` to download it (needs a network)") from None
    print(f"Fashion-MNIST not found in {searched}: downloading it with torchvision into {download_to}")
    try:  # one call fetches all four files (it then reads the test split, the smaller one)
        torchvision.datasets.FashionMNIST(str(download_to), train=False, download=True)
    except Exception as err:  # torchvision raises URLError, RuntimeError, ... when offline
        raise OSError(f"Fashion-MNIST not found (searched {searched}) and the torchvision download failed "
                      f"({type(err).__name__}: {' '.join(str(err).split())}); run this again with a network, "
                      f"or {FASHION_HINT}") from None
    return downloaded


def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` ("train": 60,000 images, "test": 10,000) as (uint8 N×28×28 images,
    int64 N labels); class ``k`` is named ``FASHION_CLASSES[k]``."""
    if split not in FASHION_FILES:
        raise ValueError(f"unknown Fashion-MNIST split {split!r}; use 'train' or 'test'")
    folder = fashion_mnist_dir()
    images, labels = (read_idx(_idx_file(folder, stem)) for stem in FASHION_FILES[split])
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(f"Fashion-MNIST in {folder} is inconsistent: images {images.shape}, labels {labels.shape}")
    return images, labels.astype(np.int64)


def resize_gray(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 N×H×W greyscale images → N×size×size, bicubic as everywhere in the package."""
    if images.shape[1:] == (size, size):
        return images
    return np.stack([np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC)) for img in images])


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 8 <= size <= 512:
        raise ValueError(f"size={size!r}: real tasks are resized to 8 to 512 pixels; "
                         "pass a size (--size) in that range")
    return int(size)


def _pick(indices: np.ndarray, n: int | None, rng: np.random.Generator, what: str) -> np.ndarray:
    if n is None or n >= len(indices):
        return indices
    if n < 1:
        raise ValueError(f"{what} must be at least 1, got {n}")
    return np.sort(rng.choice(indices, size=n, replace=False))


def _fashion_builder(name: str, a: int, b: int):
    def build(out: Path, size: int, n_train: int | None, n_test: int | None, seed: int, paired: bool) -> None:
        if paired:
            raise ValueError(f"task {name!r} has no pairs (a {FASHION_CLASSES[a]} has no "
                             f"{FASHION_CLASSES[b]} twin); use paired=False, or the 'emoji' task for pix2pix")
        size = _check_size(size)
        rng = np.random.default_rng(seed)
        for split, n in (("train", n_train), ("test", 200 if n_test is None else n_test)):
            images, labels = fashion_mnist(split)
            for domain, cls in (("A", a), ("B", b)):
                chosen = _pick(np.flatnonzero(labels == cls), n, rng, "n_train" if split == "train" else "n_test")
                folder = out / f"{split}{domain}"
                folder.mkdir(parents=True, exist_ok=True)
                for i, img in zip(chosen, resize_gray(images[chosen], size)):
                    Image.fromarray(img).convert("RGB").save(folder / f"{i:05d}.png")

    build.__doc__ = (f"Fashion-MNIST {FASHION_CLASSES[a]} (A, class {a}) ↔ {FASHION_CLASSES[b]} (B, class {b}): "
                     "trainA/B from the train split (n_train per class, at most and by default all 6,000), "
                     "testA/B from the test split (n_test per class, default 200, at most 1,000), chosen by seed; "
                     "files named by their index in the split.")
    return build


FASHION_TASKS = {"sneaker2boot": (7, 9, "sneakers", "ankle boots"), "tshirt2shirt": (0, 6, "T-shirts", "shirts"),
                 "pullover2coat": (2, 4, "pullovers", "coats")}
for _name, (_a, _b, _a_plural, _b_plural) in FASHION_TASKS.items():
    register(_name, "real", f"Fashion-MNIST {_a_plural} (A) ↔ {_b_plural} (B), white on black, no ground truth: "
             "scored by judges.fashion_judge (Debian dataset-fashion-mnist)", default_size=32)(
        _fashion_builder(_name, _a, _b))


def default_emoji_prefix() -> Path:
    """Where the emoji npm packages are installed: ``$CYCLEGAN_EDU_EMOJI``, else
    ``~/.cache/cyclegan_edu/npm`` (outside ``$CYCLEGAN_EDU_DATA``, so a fresh data cache reuses them)."""
    return Path(os.environ.get(EMOJI_ENV) or Path.home() / ".cache" / "cyclegan_edu" / "npm")


def _emoji_folder(prefix: Path, style: str) -> Path:
    return prefix / "node_modules" / f"emoji-datasource-{style}" / "img" / style / "64"


def emoji_installed(prefix: str | os.PathLike | None = None) -> bool:
    """Whether both emoji packages are installed in ``prefix`` (default :func:`default_emoji_prefix`)."""
    prefix = Path(prefix) if prefix is not None else default_emoji_prefix()
    return all(_emoji_folder(prefix, style).is_dir() for style in EMOJI_STYLES.values())


def install_emoji(prefix: str | os.PathLike | None = None) -> Path:
    """``npm install`` the two emoji packages into ``prefix`` (default :func:`default_emoji_prefix`)
    unless they are there; returns the prefix. About 150 MB on disk, a few seconds with a network."""
    prefix = Path(prefix) if prefix is not None else default_emoji_prefix()
    if emoji_installed(prefix):
        return prefix
    npm = shutil.which("npm")
    command = f"npm install --prefix {prefix} {' '.join(EMOJI_PACKAGES)}"
    if npm is None:
        raise FileNotFoundError(f"the emoji images are not in {prefix} and npm is not installed; install Node.js "
                                f"and npm (e.g. `sudo apt-get install npm`), then run `{command}` "
                                f"or `python data_scripts/install_emoji.py`")
    prefix.mkdir(parents=True, exist_ok=True)
    print(f"installing the emoji images: {command}")
    done = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-save", "--no-audit", "--no-fund",
                           "--loglevel=error", *EMOJI_PACKAGES], capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not emoji_installed(prefix):
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise OSError(f"`{command}` failed (exit status {done.returncode}: {detail}); "
                      "check the network or npm's registry setting and run it again")
    return prefix


def emoji_sources(install: bool = True) -> tuple[Path, Path, list[str]]:
    """(Google folder, Twitter folder, sorted file names of the emoji drawn in both styles).

    The names are the base emoji of ``emoji.json`` (skin-tone variants left out): 1,911 in 16.0.0.
    With ``install`` the packages are installed with npm when they are missing.
    """
    prefix = install_emoji() if install else default_emoji_prefix()
    google, twitter = (_emoji_folder(prefix, style) for style in EMOJI_STYLES.values())
    if not (google.is_dir() and twitter.is_dir()):
        raise FileNotFoundError(f"the emoji images are not in {prefix}; run `python data_scripts/install_emoji.py`")
    catalogue = json.loads((prefix / "node_modules" / "emoji-datasource-google" / "emoji.json").read_text())
    names = sorted({e["image"] for e in catalogue if e.get("has_img_google") and e.get("has_img_twitter")
                    and (google / e["image"]).is_file() and (twitter / e["image"]).is_file()})
    if not names:
        raise FileNotFoundError(f"no emoji image is in both {google} and {twitter}; delete {prefix} and reinstall "
                                "with `python data_scripts/install_emoji.py`")
    return google, twitter, names


def _emoji_image(path: Path, size: int) -> Image.Image:
    with Image.open(path) as img:
        img.load()
        # Transparent pixels (the Twitter PNGs are palette images with a transparent entry) become white.
        return to_rgb(img).resize((size, size), Image.BICUBIC)


@register("emoji", "real", "Google Noto emoji (A, Apache-2.0) ↔ Twitter Twemoji (B, CC-BY 4.0), 1,911 emoji "
          "64 px, disjoint train halves, testA_gt/testB_gt = the true counterpart (npm emoji-datasource-*@16.0.0)",
          default_size=32)
def build_emoji(out: Path, size: int, n_train: int | None, n_test: int | None, seed: int, paired: bool) -> None:
    """Shuffle the emoji by ``seed``; the first ``n_test`` (default 200) are the test pairs, the rest
    split into two halves: trainA = the Google drawings of the first half, trainB = the Twitter
    drawings of the second (``n_train`` caps each half). testA holds the Google and testB the
    Twitter drawings of the same test emoji, so testA_gt (= testB) and testB_gt (= testA) are the
    true translations. ``paired=True`` writes pix2pix's train/ (every training emoji, Google left,
    Twitter right) and test/ instead."""
    size = _check_size(size)
    google, twitter, names = emoji_sources()
    n_test = 200 if n_test is None else n_test
    if not 1 <= n_test <= len(names) - 2:
        raise ValueError(f"n_test must be between 1 and {len(names) - 2} for the emoji task, got {n_test}")
    if n_train is not None and n_train < 1:
        raise ValueError(f"n_train must be at least 1, got {n_train}")
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    test, rest = order[:n_test], order[n_test:]
    source = {"A": google, "B": twitter}

    def write(folder: str, chosen: list[str], domain: str) -> None:
        (out / folder).mkdir(parents=True, exist_ok=True)
        for name in chosen:
            _emoji_image(source[domain] / name, size).save(out / folder / name)

    if paired:
        for folder, chosen in (("train", rest[:n_train]), ("test", test)):
            (out / folder).mkdir(parents=True, exist_ok=True)
            for name in chosen:
                pair = Image.new("RGB", (2 * size, size))
                pair.paste(_emoji_image(google / name, size), (0, 0))
                pair.paste(_emoji_image(twitter / name, size), (size, 0))
                pair.save(out / folder / name)
        return
    half = (len(rest) + 1) // 2
    write("trainA", rest[:half][:n_train], "A")
    write("trainB", rest[half:][:n_train], "B")
    for folder, domain in (("testA", "A"), ("testB", "B"), ("testA_gt", "B"), ("testB_gt", "A")):
        write(folder, test, domain)
