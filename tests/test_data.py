"""Loading images of every kind, the official preprocessing, and clear errors for bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_edu import data
from cyclegan_edu.data import (EpochSampler, ImageFiles, PairedImageFolder, UnpairedImageFolder, list_images,
                               load_folder, load_image, pad_to_multiple, read_image_size, to_image, to_tensor)
from cyclegan_edu.networks import ResnetGenerator


def pixels(img: Image.Image) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


def save(img: Image.Image, path, **kwargs):
    img.save(path, **kwargs)
    return path


# --- every image mode becomes RGB --------------------------------------------------------

def test_grey_L(tmp_path):
    arr = np.array([[0, 100], [200, 255]], dtype=np.uint8)
    rgb = pixels(load_image(save(Image.fromarray(arr, "L"), tmp_path / "l.png")))
    assert (rgb == arr[..., None]).all()


def test_one_bit(tmp_path):
    img = Image.new("1", (2, 1))
    img.putpixel((1, 0), 1)
    rgb = pixels(load_image(save(img, tmp_path / "one.png")))
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [255, 255, 255]


def test_transparency_is_composited_on_white_RGBA(tmp_path):
    img = Image.new("RGBA", (3, 1))
    img.putdata([(10, 20, 30, 255), (10, 20, 30, 0), (0, 0, 0, 128)])
    rgb = pixels(load_image(save(img, tmp_path / "rgba.png")))
    assert rgb[0, 0].tolist() == [10, 20, 30]
    assert rgb[0, 1].tolist() == [255, 255, 255]
    assert np.abs(rgb[0, 2] - 127).max() <= 1          # half black over white


def test_grey_with_alpha_LA(tmp_path):
    img = Image.new("LA", (2, 1))
    img.putdata([(100, 255), (100, 0)])
    rgb = pixels(load_image(save(img, tmp_path / "la.png")))
    assert rgb[0, 0].tolist() == [100, 100, 100] and rgb[0, 1].tolist() == [255, 255, 255]


def test_palette_P_with_and_without_transparency(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0, 200, 50, 25] + [0] * 762)
    img.putdata([0, 1])
    rgb = pixels(load_image(save(img, tmp_path / "p.png")))
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 1].tolist() == [200, 50, 25]
    rgb = pixels(load_image(save(img, tmp_path / "p_transparent.png", transparency=0)))
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[0, 1].tolist() == [200, 50, 25]


def test_sixteen_bit_grey_I16_is_scaled_to_eight_bits(tmp_path):
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    rgb = pixels(load_image(save(img, tmp_path / "i16.png")))
    assert rgb[0, :, 0].tolist() == [0, 128, 255] and (rgb[..., 0] == rgb[..., 2]).all()


def test_cmyk(tmp_path):
    img = Image.new("CMYK", (3, 1))
    img.putdata([(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255)])
    rgb = pixels(load_image(save(img, tmp_path / "cmyk.tif")))
    assert rgb[0].tolist() == [[255, 255, 255], [0, 255, 255], [0, 0, 0]]


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (20, 0, 40, 20))              # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6                                      # "rotate 90° clockwise to display"
    loaded = load_image(save(img, tmp_path / "rotated.png", exif=exif))
    assert loaded.size == (20, 40)
    rgb = pixels(loaded)
    assert rgb[5, 10].tolist() == [255, 0, 0] and rgb[35, 10].tolist() == [0, 0, 255]   # left went to the top


# --- tensors ---------------------------------------------------------------------------------

def test_to_tensor_and_back_are_exact():
    arr = np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5
    x = to_tensor(Image.fromarray(arr, "RGB"))
    assert x.shape == (3, 4, 4) and float(x.min()) == -1 and float(x.max()) == pytest.approx(235 / 127.5 - 1)
    assert (np.asarray(to_image(x)) == arr).all()


def test_grey_images_and_one_channel_tensors_round_trip(tmp_path):
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [90, 90, 90]]], dtype=np.uint8)
    grey = load_image(save(Image.fromarray(rgb, "RGB"), tmp_path / "rgb.png"), channels=1)
    assert grey.mode == "L"
    assert np.asarray(grey).tolist() == [[76, 150, 29, 90]]    # ITU-R 601-2 luma, as the official Grayscale(1)
    x = to_tensor(grey)
    assert x.shape == (1, 1, 4) and float(x[0, 0, 3]) == pytest.approx(90 / 127.5 - 1)
    back = to_image(x)
    assert back.mode == "L" and (np.asarray(back) == np.asarray(grey)).all()
    with pytest.raises(ValueError, match=r"channels=2: images from files have 1 \(grey\) or 3 \(RGB\)"):
        load_image(tmp_path / "rgb.png", channels=2)
    with pytest.raises(ValueError, match=r"\(2, 4, 4\)"):
        to_image(torch.zeros(2, 4, 4))


def test_grey_domains_in_every_loader(tiny_folder, tmp_path):
    item = UnpairedImageFolder(tiny_folder, image_size=32, load_size=36, input_nc=1)[0]
    assert item["A"].shape == (1, 32, 32) and item["B"].shape == (3, 32, 32)
    item = UnpairedImageFolder(tiny_folder, image_size=32, load_size=36, output_nc=1, cache=True)[0]
    assert item["A"].shape == (3, 32, 32) and item["B"].shape == (1, 32, 32)
    (tmp_path / "train").mkdir()
    save(Image.new("RGB", (64, 32), (200, 100, 0)), tmp_path / "train" / "ab.png")
    pair = PairedImageFolder(tmp_path, image_size=32, load_size=32, input_nc=1)[0]
    assert pair["A"].shape == (1, 32, 32) and pair["B"].shape == (3, 32, 32)
    assert float(pair["A"].mean()) == pytest.approx(118 / 127.5 - 1)             # 0.299·200 + 0.587·100
    assert ImageFiles(list_images(tiny_folder / "testA"), 16, channels=1)[0][0].shape == (1, 16, 16)
    assert load_folder(tiny_folder / "testA", 16, channels=1).shape == (4, 1, 16, 16)
    with pytest.raises(ValueError, match="output_nc=4"):
        UnpairedImageFolder(tiny_folder, output_nc=4)


def test_pad_to_multiple_keeps_the_image_and_reports_its_size():
    x = torch.rand(1, 3, 30, 22)
    padded, (h, w) = pad_to_multiple(x, 4)
    assert padded.shape == (1, 3, 32, 24) and (h, w) == (30, 22)
    assert torch.equal(padded[..., :30, :22], x)
    tiny = torch.rand(1, 3, 1, 2)                        # too small to reflect: replicated
    assert pad_to_multiple(tiny)[0].shape == (1, 3, 4, 4)


# --- folders and bad input ----------------------------------------------------------------

def test_missing_and_empty_folders_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        list_images(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        UnpairedImageFolder(tmp_path / "nowhere")
    (tmp_path / "d" / "trainA").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"trainA holds no images"):
        UnpairedImageFolder(tmp_path / "d")
    save(Image.new("RGB", (8, 8)), tmp_path / "d" / "trainA" / "a.png")
    with pytest.raises(FileNotFoundError, match=r"trainB does not exist"):
        UnpairedImageFolder(tmp_path / "d")
    with pytest.raises(FileNotFoundError, match=r"d/train does not exist.*pix2pix's layout.*--paired"):
        PairedImageFolder(tmp_path / "d")


def test_corrupt_and_truncated_images_name_the_file(tmp_path):
    (tmp_path / "garbage.png").write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match=r"garbage\.png.*delete or replace the file$"):
        load_image(tmp_path / "garbage.png")
    good = save(Image.effect_noise((64, 64), 50).convert("RGB"), tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good[:len(good) // 2])
    with pytest.raises(ValueError, match=r"truncated\.png"):
        load_image(tmp_path / "truncated.png")
    with pytest.raises(FileNotFoundError, match="absent.png"):
        load_image(tmp_path / "absent.png")


@pytest.mark.parametrize("limit", [1000, 400])   # 1024 px: Pillow warns above the limit, refuses above twice it
def test_images_over_the_decompression_bomb_limit_are_refused_in_one_line(limit, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    path = save(Image.new("RGB", (32, 32)), tmp_path / "big.png")
    for read in (load_image, read_image_size):
        with pytest.raises(ValueError) as error:
            read(path)
        message = str(error.value)
        assert "\n" not in message and f"big.png has 1024 pixels" in message
        assert f"PIL.Image.MAX_IMAGE_PIXELS = {limit}" in message and "CYCLEGAN_EDU_MAX_IMAGE_PIXELS=1024" in message


def test_the_pixel_limit_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)
    monkeypatch.setenv("CYCLEGAN_EDU_MAX_IMAGE_PIXELS", "1024")
    data._apply_pixel_limit_env()                      # what importing cyclegan_edu.data does
    assert Image.MAX_IMAGE_PIXELS == 1024
    assert load_image(save(Image.new("RGB", (32, 32)), tmp_path / "big.png")).size == (32, 32)
    monkeypatch.setenv("CYCLEGAN_EDU_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="CYCLEGAN_EDU_MAX_IMAGE_PIXELS='lots'"):
        data._apply_pixel_limit_env()


def _folder_with_a_bad_first_image(root):
    for domain in "AB":
        (root / f"train{domain}").mkdir(parents=True)
        for i in range(2):
            save(Image.new("RGB", (32, 32), (50 * i, 0, 0)), root / f"train{domain}" / f"{i}.png")
    (root / "trainA" / "0.png").write_bytes(b"broken")
    return root


def test_bad_image_raises_unless_skip_bad(tmp_path):
    root = _folder_with_a_bad_first_image(tmp_path)
    with pytest.raises(ValueError, match=r"trainA/0\.png.*delete or replace the file, or skip unreadable images "
                                         r"with --skip-bad \(skip_bad=True\)"):
        UnpairedImageFolder(root, image_size=32, load_size=32)[0]
    skipping = UnpairedImageFolder(root, image_size=32, load_size=32, skip_bad=True)
    with pytest.warns(UserWarning, match=r"skipping unreadable image.*0\.png"):
        item = skipping[0]
    assert item["A_path"].endswith("1.png") and item["A"].shape == (3, 32, 32)


def test_image_smaller_than_the_crop_is_a_clear_error(tmp_path):
    for domain in "AB":
        (tmp_path / f"train{domain}").mkdir()
        save(Image.new("RGB", (20, 24)), tmp_path / f"train{domain}" / "small.png")
    data = UnpairedImageFolder(tmp_path, image_size=32, load_size=32, preprocess="crop")
    with pytest.raises(ValueError, match=r"small\.png is 20×24, smaller than the crop size 32"):
        data[0]
    resized = UnpairedImageFolder(tmp_path, image_size=32, load_size=36, preprocess="resize_and_crop")
    assert resized[0]["A"].shape == (3, 32, 32)


def test_test_images_of_any_size_reach_a_multiple_of_4(tmp_path):
    for domain in "AB":
        (tmp_path / f"test{domain}").mkdir()
        save(Image.new("RGB", (30, 22), (0, 200, 0)), tmp_path / f"test{domain}" / "odd.png")
    kept = UnpairedImageFolder(tmp_path, "test", preprocess="none")[0]["A"]
    assert kept.shape == (3, 24, 32)                     # 22 → 24, 30 → 32: no crash in the generator
    assert ResnetGenerator(3, 3, 4, 1)(kept[None]).shape == (1, 3, 24, 32)
    resized = UnpairedImageFolder(tmp_path, "test", image_size=16, load_size=20)[0]["A"]
    assert resized.shape == (3, 16, 16)                  # test time: resize only, no crop


def test_unpaired_folder_items(tiny_folder):
    data = UnpairedImageFolder(tiny_folder, image_size=32, load_size=36, seed=3)
    assert len(data) == 16
    item = data[5]
    assert item["A"].shape == item["B"].shape == (3, 32, 32)
    assert item["A_path"].endswith("a005.png") and "trainB" in item["B_path"]
    assert -1 <= float(item["A"].min()) and float(item["A"].max()) <= 1
    assert float(item["A"].mean()) < 0 < float(item["B"].mean())     # dark A, bright B
    assert torch.equal(data[5]["A"], item["A"])                     # same (seed, epoch, index): same item
    pairs = set()
    for epoch in range(4):
        data.set_epoch(epoch)
        pairs.add(data[5]["B_path"])
    assert len(pairs) > 1                                           # a new random B partner each epoch


def test_paired_halves_get_the_same_crop_and_flip(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "train").mkdir()
    for i in range(3):
        half = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        save(Image.fromarray(np.concatenate([half, half], 1)), tmp_path / "train" / f"{i}.png")
    data = PairedImageFolder(tmp_path, image_size=32, load_size=40, preprocess="crop")
    crops = set()
    for epoch in range(6):
        data.set_epoch(epoch)
        for i in range(3):
            item = data[i]
            assert torch.equal(item["A"], item["B"])
            crops.add((i, item["A"].sum().item()))
    assert len(crops) > 3                               # the crop (or flip) did change between epochs


def test_paired_left_half_is_A(tmp_path):
    (tmp_path / "test").mkdir()
    ab = Image.new("RGB", (64, 32), (255, 0, 0))
    ab.paste((0, 0, 255), (32, 0, 64, 32))
    save(ab, tmp_path / "test" / "ab.png")
    item = PairedImageFolder(tmp_path, "test", image_size=32, load_size=32)[0]
    assert item["A"][0].min() == 1 and item["A"][2].max() == -1
    assert item["B"][2].min() == 1 and item["B"][0].max() == -1


def test_load_folder(tiny_folder):
    x = load_folder(tiny_folder / "testA", 16)
    assert x.shape == (4, 3, 16, 16)
    assert load_folder(tiny_folder / "testA", 16, limit=2).shape == (2, 3, 16, 16)
    first = to_tensor(load_image(tiny_folder / "testA" / "a000.png").resize((16, 16), Image.BICUBIC))
    assert torch.equal(x[0], first)


def test_epoch_sampler_is_a_seeded_permutation_that_can_start_mid_epoch():
    sampler = EpochSampler(10, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(10)) and order == list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != order
    sampler.set_epoch(1, start=4)
    assert list(sampler) == second[4:] and len(sampler) == 6
