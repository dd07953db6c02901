"""``cyclegan-edu translate``: every output kept, no input ever replaced, grey domains, and one
clear line with exit code 2 for every bad input."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_edu.config import get_preset
from cyclegan_edu.data import load_image, to_image, to_tensor
from cyclegan_edu.inference import batches_by_size, output_names, translate_tiled
from cyclegan_edu.networks import ResnetGenerator, UnetGenerator
from cyclegan_edu.train import Trainer, load_model
from test_cli import assert_one_line_error, run_cli


def noise(path, size=(32, 32), seed=0):
    """A random RGB image (a flat one would translate to the same output as any other flat one)."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").save(path)
    return path


def digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def tiny_config(**changes):
    return get_preset("ci", ngf=4, ndf=4, n_blocks=1, batch_size=2, iters=1, iters_decay=0, **changes)


@pytest.fixture(scope="module")
def run(tiny_folder, tmp_path_factory):
    """An untrained RGB CycleGAN run (translation needs weights, not good ones)."""
    out = tmp_path_factory.mktemp("translate") / "run"
    Trainer(tiny_config(), tiny_folder, out=out, progress=False).save_checkpoint()
    return out


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "latest_net_G.pth"
    torch.save(ResnetGenerator(3, 3, 4, 1).state_dict(), path)
    return path


# --- names: no output is lost -----------------------------------------------------------------

def test_inputs_sharing_a_base_name_each_get_their_own_output(run, tmp_path, capsys):
    source = tmp_path / "in"
    source.mkdir()
    for seed, name in enumerate(["x.png", "x.jpg", "x.webp", "y.png"]):
        noise(source / name, seed=seed)
    code, out, _ = run_cli(capsys, "translate", "--run", run, "--input", source, "--output", tmp_path / "out")
    assert code == 0 and "wrote 4 image(s)" in out
    written = digests(tmp_path / "out")
    assert sorted(written) == ["x.jpg.png", "x.png.png", "x.webp.png", "y.png"]
    assert len(set(written.values())) == 4                    # four different translations, none overwritten
    model = load_model(run, device="cpu")
    expected = to_image(model.translate(to_tensor(load_image(source / "x.jpg"))[None])[0])
    with Image.open(tmp_path / "out" / "x.jpg.png") as img:
        assert (np.asarray(img) == np.asarray(expected)).all()


def test_output_names(tmp_path):
    assert output_names([tmp_path / "a.jpg", tmp_path / "b.png"]) == ["a.png", "b.png"]
    # x.PNG and X.jpg would meet as x.png on a file system that ignores case
    assert output_names([tmp_path / "x.PNG", tmp_path / "X.jpg"]) == ["x.PNG.png", "X.jpg.png"]
    with pytest.raises(ValueError, match=r"x\.jpg\.png.*and .*x\.jpg would both be written to x\.jpg\.png"):
        output_names([tmp_path / "x.jpg.png", tmp_path / "x.jpg", tmp_path / "x.png"])


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink"])
def test_outputs_never_replace_inputs_even_with_force(spelling, run, tmp_path, capsys):
    source = tmp_path / "photos"
    source.mkdir()
    noise(source / "a.png", seed=1)
    noise(source / "b.jpg", seed=2)
    before = digests(source)
    output = {"same": source, "dotdot": tmp_path / "photos" / ".." / "photos", "symlink": tmp_path / "link"}[spelling]
    if spelling == "symlink":
        output.symlink_to(source, target_is_directory=True)
    for force in ([], ["--force"]):
        code, _, err = run_cli(capsys, "translate", "--run", run, "--input", source, "--output", output, *force)
        assert_one_line_error(code, err, "a.png would overwrite the input", "a.png", "--output")
        assert digests(source) == before                       # nothing written, nothing replaced
    code, _, err = run_cli(capsys, "translate", "--run", run, "--input", source / "a.png", "--output", output,
                           "--force")
    assert_one_line_error(code, err, "would overwrite the input")
    assert digests(source) == before


def test_force_still_replaces_earlier_outputs(run, tiny_folder, tmp_path, capsys):
    argv = ["translate", "--run", run, "--input", tiny_folder / "testA", "--output", tmp_path / "out"]
    assert run_cli(capsys, *argv)[0] == 0
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "4 output file(s) exist already", "--force")
    assert run_cli(capsys, *argv, "--force")[0] == 0


# --- bad inputs: one line, exit code 2, nothing written ------------------------------------

def test_a_missing_input_file_is_called_an_input(run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "translate", "--run", run, "--input", tmp_path / "nope.png",
                           "--output", tmp_path / "out")
    line = assert_one_line_error(code, err, f"input {tmp_path / 'nope.png'} does not exist",
                                 "give --input an image file or a folder")
    assert "folder nope.png" not in line and "image folder" not in line


def test_an_input_smaller_than_the_generator_needs_names_file_size_and_minimum(weights, tmp_path, capsys):
    Image.new("RGB", (2, 2), (20, 40, 60)).save(tmp_path / "tiny.png")
    argv = ["translate", "--weights", weights, "--input", tmp_path / "tiny.png", "--output", tmp_path / "out"]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "tiny.png is 2×2", "smaller than the 8×8", "--size 8")
    assert not (tmp_path / "out").exists()
    code, _, err = run_cli(capsys, *argv, "--size", "4")
    assert_one_line_error(code, err, "size 4", "at least 8 px", "--size")
    assert run_cli(capsys, *argv, "--size", "8")[0] == 0
    with Image.open(tmp_path / "out" / "tiny.png") as img:
        assert img.size == (8, 8)


def test_smallest_image_a_generator_takes_keeps_its_size(weights, tmp_path, capsys):
    noise(tmp_path / "odd.png", size=(9, 8))                   # padded to 12×8, cropped back to 9×8
    code, _, _ = run_cli(capsys, "translate", "--weights", weights, "--input", tmp_path / "odd.png",
                         "--output", tmp_path / "out")
    assert code == 0
    with Image.open(tmp_path / "out" / "odd.png") as img:
        assert img.size == (9, 8)


def test_u_net_weights_get_their_own_multiple(tmp_path, capsys):
    torch.save(UnetGenerator(3, 3, 5, 4).state_dict(), tmp_path / "unet.pth")
    noise(tmp_path / "wide.png", size=(40, 36))                # padded to 64×64 (U-Net of 5 levels: 32s)
    noise(tmp_path / "small.png", size=(40, 20))
    argv = ["translate", "--weights", tmp_path / "unet.pth", "--output", tmp_path / "out"]
    assert run_cli(capsys, *argv, "--input", tmp_path / "wide.png")[0] == 0
    with Image.open(tmp_path / "out" / "wide.png") as img:
        assert img.size == (40, 36)
    code, _, err = run_cli(capsys, *argv, "--input", tmp_path / "small.png")
    assert_one_line_error(code, err, "small.png is 40×20", "32×32")


@pytest.mark.parametrize("case, fragments", [
    ("unreadable", ["zz.png", "cannot read image", "delete or replace the file"]),
    ("truncated", ["cut.png", "cannot read image"]),
    ("output is a file", ["is a file", "--output"]),
    ("empty folder", ["holds no images", "give --input"]),
    ("batch size 0", ["batch size 0", "--batch-size"]),
    ("size 0", ["size 0", "--size"]),
    ("size -4", ["size -4", "--size"]),
    ("bomb", ["a000.png has 1024 pixels", "PIL.Image.MAX_IMAGE_PIXELS = 1000", "CYCLEGAN_EDU_MAX_IMAGE_PIXELS=1024"]),
])
def test_bad_inputs_give_one_line_and_exit_code_2(case, fragments, run, tiny_folder, tmp_path, capsys, monkeypatch):
    source, output, extra = tmp_path / "in", tmp_path / "out", []
    source.mkdir()
    for image in sorted((tiny_folder / "testA").iterdir()):
        (source / image.name).write_bytes(image.read_bytes())
    if case == "unreadable":
        (source / "zz.png").write_bytes(b"not an image")
    elif case == "truncated":
        whole = noise(tmp_path / "whole.png", size=(64, 64)).read_bytes()
        (source / "cut.png").write_bytes(whole[:len(whole) // 2])
        extra = ["--batch-size", "1"]
    elif case == "output is a file":
        output.write_text("notes")
    elif case == "empty folder":
        for image in source.iterdir():
            image.unlink()
    elif case == "bomb":
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)       # the 32×32 images have 1024
    else:
        option, value = case.rsplit(" ", 1)
        extra = [{"batch size": "--batch-size", "size": "--size"}[option], value]
    code, _, err = run_cli(capsys, "translate", "--run", run, "--input", source, "--output", output, *extra)
    assert_one_line_error(code, err, *fragments)
    if case == "output is a file":
        assert output.read_text() == "notes"
    elif case != "truncated":                  # a file cut short is found when decoded; the rest, before writing
        assert not output.exists()


# --- grey domains (official --input_nc 1 / --output_nc 1) ----------------------------------

def test_a_grey_cyclegan_trains_and_translates_to_grey_pngs(tiny_folder, tmp_path, capsys):
    trainer = Trainer(tiny_config(input_nc=1, output_nc=1, precision="fp32"), tiny_folder, out=tmp_path / "run",
                      progress=False)                    # fp32 as the weights file runs, for bit-equal outputs
    trainer.fit()
    assert trainer.step == 1
    code, out, _ = run_cli(capsys, "translate", "--run", tmp_path / "run", "--input", tiny_folder / "testA",
                           "--output", tmp_path / "out")
    assert code == 0 and "wrote 4 image(s)" in out
    with Image.open(tmp_path / "out" / "a000.png") as img:
        assert img.mode == "L" and img.size == (32, 32)
        translated = np.asarray(img)
    grey = to_tensor(load_image(tiny_folder / "testA" / "a000.png", channels=1))
    expected = to_image(trainer.model.translate(grey[None])[0])
    assert (translated == np.asarray(expected)).all()
    torch.save(trainer.model.G_AB.state_dict(), tmp_path / "G.pth")      # the same generator as a weights file
    code, _, _ = run_cli(capsys, "translate", "--weights", tmp_path / "G.pth", "--input", tiny_folder / "testA",
                         "--output", tmp_path / "from_weights", "--size", "32", "--device", "cpu")
    assert code == 0 and digests(tmp_path / "from_weights") == digests(tmp_path / "out")


def test_grey_to_colour_without_the_identity_loss(tiny_folder, tmp_path, capsys):
    trainer = Trainer(tiny_config(input_nc=1, output_nc=3, lambda_identity=0.0), tiny_folder,
                      out=tmp_path / "run", progress=False)
    trainer.fit()
    assert trainer.step == 1
    for direction, source, mode in (("AtoB", "testA", "RGB"), ("BtoA", "testB", "L")):
        code, _, _ = run_cli(capsys, "translate", "--run", tmp_path / "run", "--direction", direction,
                             "--input", tiny_folder / source, "--output", tmp_path / direction)
        assert code == 0
        with Image.open(next((tmp_path / direction).iterdir())) as img:
            assert img.mode == mode


# --- batches, full resolution and tiles ---------------------------------------------------------

def test_images_are_batched_with_the_images_of_their_size():
    sizes = [(32, 32), (40, 32), (32, 32), (32, 32), (40, 32)]
    assert batches_by_size(sizes, 2) == [[0, 2], [3], [1, 4]]
    assert batches_by_size(sizes, 16) == [[0, 2, 3], [1, 4]]


def test_batches_of_mixed_sizes_translate_as_one_image_at_a_time(run, tmp_path, capsys):
    source = tmp_path / "in"
    source.mkdir()
    for seed, size in enumerate([(32, 32), (44, 36), (32, 32), (45, 38), (44, 36)]):
        noise(source / f"{seed}.png", size=size, seed=seed)
    for batch in ("16", "1"):
        code, out, _ = run_cli(capsys, "translate", "--run", run, "--input", source, "--output", tmp_path / batch,
                               "--keep-size", "--batch-size", batch, "--no-progress")
        assert code == 0 and "wrote 5 image(s)" in out
    for name in sorted(p.name for p in source.iterdir()):
        with Image.open(tmp_path / "16" / name) as batched, Image.open(tmp_path / "1" / name) as alone, \
                Image.open(source / name) as original:
            assert batched.size == alone.size == original.size       # full resolution, cropped back from the padding
            assert np.abs(np.asarray(batched, dtype=int) - np.asarray(alone, dtype=int)).max() <= 1


def test_keep_size_translates_the_whole_image_and_tile_splits_a_larger_one(run, tmp_path, capsys):
    noise(tmp_path / "wide.png", size=(45, 38))
    model = load_model(run, device="cpu")
    image = to_tensor(load_image(tmp_path / "wide.png"))[None]
    padded = torch.nn.functional.pad(image, (0, 3, 0, 2), mode="reflect")          # to 48×40
    whole = to_image(model.translate(padded)[0, :, :38, :45])
    tiled = to_image(translate_tiled(model.translate, padded, 16)[0, :, :38, :45])
    for tile, expected in (("48", whole), ("16", tiled)):
        code, _, _ = run_cli(capsys, "translate", "--run", run, "--input", tmp_path / "wide.png",
                             "--output", tmp_path / tile, "--keep-size", "--tile", tile)
        assert code == 0
        with Image.open(tmp_path / tile / "wide.png") as img:
            assert img.size == (45, 38) and (np.asarray(img) == np.asarray(expected)).all()
    assert (np.asarray(whole) != np.asarray(tiled)).any()       # each tile normalised by itself


def test_tiles_blend_back_into_the_whole_for_a_pixelwise_generator():
    """Every pixel covered, the overlap weights normalised: a generator that treats each pixel by
    itself gives the same result in tiles, whatever the tiles and the batch of tiles."""
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0)) * 2 - 1
    calls = []

    def pixelwise(t):
        calls.append(t.shape)
        return torch.tanh(3 * t) * 0.5

    for tile, batch_size in ((16, 16), (20, 1), (24, 5)):
        assert torch.allclose(translate_tiled(pixelwise, x, tile, batch_size), pixelwise(x), atol=1e-6)
    expected = pixelwise(x)
    calls.clear()
    assert torch.equal(translate_tiled(pixelwise, x, 56), expected) and calls == [x.shape]   # it fits: whole


def test_size_and_keep_size_exclude_each_other_and_tiles_have_a_least_size(run, tiny_folder, tmp_path, capsys):
    argv = ["translate", "--run", run, "--input", tiny_folder / "testA", "--output", tmp_path / "out"]
    code, _, err = run_cli(capsys, *argv, "--size", "32", "--keep-size")
    assert code == 2 and "not allowed with argument --size" in err
    code, _, err = run_cli(capsys, *argv, "--tile", "4")
    assert_one_line_error(code, err, "tile 4", "at least 8 px", "--tile")
    assert not (tmp_path / "out").exists()
