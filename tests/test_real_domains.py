"""The real domains: the IDX reader, the Fashion-MNIST tasks and the Google↔Twitter emoji task.

Fashion-MNIST tests need the Debian package dataset-fashion-mnist and the emoji tests the npm
packages (both installed by .ci/setup); without them those tests are skipped, saying what to install.
"""
from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegan_edu import domains
from cyclegan_edu.domains import real


def _fashion_installed() -> bool:
    folders = [Path(os.environ[real.FASHION_ENV])] if os.environ.get(real.FASHION_ENV) else list(real.FASHION_DIRS)
    return any(all(real._idx_file(f, stem) for stems in real.FASHION_FILES.values() for stem in stems)
               for f in folders)


needs_fashion = pytest.mark.skipif(not _fashion_installed(),
                                   reason="Fashion-MNIST missing: sudo apt-get install dataset-fashion-mnist")
needs_emoji = pytest.mark.skipif(not real.emoji_installed(),
                                 reason="emoji images missing: python data_scripts/install_emoji.py (needs npm)")


# --- IDX files --------------------------------------------------------------------------------

def _idx_bytes(type_code: int, shape: tuple[int, ...], payload: bytes) -> bytes:
    header = bytes([0, 0, type_code, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
    return header + payload


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_uint8_plain_and_gzip(tmp_path, compress):
    raw = _idx_bytes(0x08, (2, 2, 3), bytes(range(12)))
    path = tmp_path / ("images.idx.gz" if compress else "images.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    array = real.read_idx(path)
    assert array.dtype == np.uint8 and array.shape == (2, 2, 3)
    assert array[1, 0].tolist() == [6, 7, 8]
    assert array.ravel().tolist() == list(range(12))


def test_read_idx_big_endian_int32(tmp_path):
    # 1, -2, 70000 as big-endian int32: written by hand, not by numpy
    payload = bytes([0, 0, 0, 1]) + bytes([0xFF, 0xFF, 0xFF, 0xFE]) + bytes([0x00, 0x01, 0x11, 0x70])
    (tmp_path / "v.idx").write_bytes(_idx_bytes(0x0C, (3,), payload))
    assert real.read_idx(tmp_path / "v.idx").tolist() == [1, -2, 70000]


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "short.idx").write_bytes(_idx_bytes(0x08, (2, 3), bytes(5)))
    with pytest.raises(ValueError, match=r"short\.idx is truncated"):
        real.read_idx(tmp_path / "short.idx")
    (tmp_path / "png.idx").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match=r"png\.idx is not an IDX file"):
        real.read_idx(tmp_path / "png.idx")


# --- Fashion-MNIST ----------------------------------------------------------------------------

@needs_fashion
def test_fashion_mnist_splits():
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = real.fashion_mnist(split)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert np.bincount(labels).tolist() == [n // 10] * 10
    with pytest.raises(ValueError, match="use 'train' or 'test'"):
        real.fashion_mnist("val")


@needs_fashion
def test_fashion_task_holds_the_right_classes(tmp_path):
    out = domains.generate("sneaker2boot", tmp_path / "s2b", size=32, n_train=30, n_test=10, seed=3)
    splits = {split: real.fashion_mnist(split) for split in ("train", "test")}
    for folder, split, cls, n in (("trainA", "train", 7, 30), ("trainB", "train", 9, 30),
                                  ("testA", "test", 7, 10), ("testB", "test", 9, 10)):
        files = sorted((out / folder).glob("*.png"))
        assert len(files) == n
        images, labels = splits[split]
        indices = [int(f.stem) for f in files]        # files are named by their index in the split
        assert all(labels[i] == cls for i in indices), folder
        with Image.open(files[0]) as img:
            assert img.mode == "RGB" and img.size == (32, 32)
            expected = real.resize_gray(images[indices[:1]], 32)[0]
            assert np.array_equal(np.asarray(img), np.repeat(expected[..., None], 3, axis=2))
    again = domains.generate("sneaker2boot", tmp_path / "again", size=32, n_train=30, n_test=10, seed=3)
    other = domains.generate("sneaker2boot", tmp_path / "other", size=32, n_train=30, n_test=10, seed=4)
    names = lambda root: sorted(p.name for p in (root / "trainA").iterdir())  # noqa: E731
    assert names(again) == names(out) != names(other)


@needs_fashion
def test_fashion_task_refuses_pairs(tmp_path):
    with pytest.raises(ValueError, match="has no pairs"):
        domains.generate("pullover2coat", tmp_path / "p", n_train=2, n_test=2, paired=True)


def test_missing_fashion_mnist_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv(real.FASHION_ENV, str(tmp_path))
    monkeypatch.setitem(sys.modules, "torchvision", None)  # no download fallback either
    with pytest.raises(FileNotFoundError, match="sudo apt-get install dataset-fashion-mnist"):
        real.fashion_mnist("train")


# --- Emoji ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def emoji_folder(tmp_path_factory) -> Path:
    return domains.generate("emoji", tmp_path_factory.mktemp("emoji") / "task", size=32, seed=1)


@needs_emoji
def test_emoji_sources_pair_every_base_emoji():
    google, twitter, names = real.emoji_sources(install=False)
    assert len(names) == 1911 and names == sorted(set(names))
    assert all((google / n).is_file() and (twitter / n).is_file() for n in names[::100])


@needs_emoji
def test_emoji_split_is_unpaired_and_complete(emoji_folder):
    names = {sub: {p.name for p in (emoji_folder / sub).iterdir()}
             for sub in ("trainA", "trainB", "testA", "testB", "testA_gt", "testB_gt")}
    assert (len(names["trainA"]), len(names["trainB"]), len(names["testA"])) == (856, 855, 200)
    assert not names["trainA"] & names["trainB"]                      # no emoji in both training halves
    assert not (names["trainA"] | names["trainB"]) & names["testA"]   # nor in the test set
    assert names["testA"] == names["testB"] == names["testA_gt"] == names["testB_gt"]
    assert len(names["trainA"] | names["trainB"] | names["testA"]) == 1911


@needs_emoji
def test_emoji_ground_truth_is_the_other_style(emoji_folder):
    google, twitter, _ = real.emoji_sources(install=False)
    for name in sorted(p.name for p in (emoji_folder / "testA").iterdir())[:5]:
        pixels = {sub: np.asarray(Image.open(emoji_folder / sub / name)) for sub in ("testA", "testA_gt", "testB_gt")}
        assert np.array_equal(pixels["testA"], np.asarray(real._emoji_image(google / name, 32)))
        assert np.array_equal(pixels["testA_gt"], np.asarray(real._emoji_image(twitter / name, 32)))
        assert np.array_equal(pixels["testB_gt"], pixels["testA"])
        assert not np.array_equal(pixels["testA"], pixels["testA_gt"])


@needs_emoji
def test_emoji_transparency_becomes_white():
    _, twitter, _ = real.emoji_sources(install=False)
    with Image.open(twitter / "1f600.png") as src:
        assert src.mode == "P" and "transparency" in src.info   # the palette case named in the docstring
    img = real._emoji_image(twitter / "1f600.png", 32)          # 😀 is round: its corners are transparent
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (255, 255, 255)


@needs_emoji
def test_emoji_paired_layout(tmp_path):
    out = domains.generate("emoji", tmp_path / "pairs", size=32, n_train=5, n_test=3, seed=1, paired=True)
    google, twitter, _ = real.emoji_sources(install=False)
    train, test = sorted((out / "train").iterdir()), sorted((out / "test").iterdir())
    assert (len(train), len(test)) == (5, 3)
    ab = np.asarray(Image.open(train[0]))
    assert ab.shape == (32, 64, 3)
    assert np.array_equal(ab[:, :32], np.asarray(real._emoji_image(google / train[0].name, 32)))
    assert np.array_equal(ab[:, 32:], np.asarray(real._emoji_image(twitter / train[0].name, 32)))


def test_missing_emoji_without_npm_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv(real.EMOJI_ENV, str(tmp_path / "npm"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on the PATH
    with pytest.raises(FileNotFoundError, match="npm is not installed.*emoji-datasource-google@16.0.0"):
        domains.generate("emoji", tmp_path / "task", n_test=2)


@needs_emoji
def test_emoji_bad_counts(tmp_path):
    with pytest.raises(ValueError, match="n_test must be between 1 and 1909"):
        domains.generate("emoji", tmp_path / "a", n_test=5000)
    with pytest.raises(ValueError, match="n_train must be at least 1"):
        domains.generate("emoji", tmp_path / "b", n_train=0, n_test=2)
    with pytest.raises(ValueError, match="size=4: real tasks are resized to 8 to 512 pixels"):
        domains.generate("emoji", tmp_path / "c", size=4)
