"""How generators run at test time: eval mode, or pix2pix's official way (dropout on, batch norm with
the statistics of each test image; the official test.py without --eval, Isola et al. 2017 §3.3)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_edu import cli
from cyclegan_edu.config import get_preset
from cyclegan_edu.models import CycleGAN, Pix2Pix
from cyclegan_edu.networks import UnetGenerator, run_at_test_time
from cyclegan_edu.pretrained import load_generator
from cyclegan_edu.train import Trainer


def set_running_statistics(net: torch.nn.Module, seed: int = 0) -> None:
    """Random running statistics in batch norm, unlike any batch's, so that using them shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1, generator=generator)
                module.running_var.uniform_(0.5, 2, generator=generator)


def pix2pix() -> Pix2Pix:
    """64 px, so that the U-Net has 6 levels and one of them dropout (5 levels have none)."""
    torch.manual_seed(0)
    model = Pix2Pix(get_preset("ci", model="pix2pix", image_size=64, load_size=64, ngf=4, ndf=4, device="cpu",
                               precision="fp32")).setup()
    set_running_statistics(model.G)
    return model


def images(n: int = 3, size: int = 64) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def buffers(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.named_buffers()}


def test_pix2pix_eval_mode_is_deterministic_and_uses_running_statistics():
    model, x = pix2pix(), images()
    first, second = model.translate(x), model.translate(x, eval_mode=True)
    assert torch.equal(first, second)
    reference = copy.deepcopy(model.G).eval()
    with torch.no_grad():
        assert torch.equal(first, reference(x))


def test_pix2pix_official_mode_keeps_dropout_and_uses_each_images_statistics():
    model, x = pix2pix(), images()
    before = buffers(model.G)
    model.G.train()
    first, second = model.translate(x, eval_mode=False), model.translate(x, eval_mode=False)
    assert not torch.allclose(first, second)                      # dropout is on: pix2pix's noise
    assert model.G.training and all(m.track_running_stats for m in model.G.modules()
                                    if isinstance(m, torch.nn.BatchNorm2d))   # modes restored for training
    assert all(torch.equal(before[k], v) for k, v in buffers(model.G).items())  # running stats untouched

    torch.manual_seed(5)
    official = model.translate(x, eval_mode=False)
    for i in range(len(x)):  # the official test.py: batch size 1, training mode
        alone = copy.deepcopy(model.G).train()
        torch.manual_seed(5)
        for j in range(i):        # the dropout masks drawn for the images before it
            alone(x[j:j + 1])
        with torch.no_grad():
            torch.testing.assert_close(official[i:i + 1], alone(x[i:i + 1]), rtol=0, atol=1e-6)
    evaluated = model.translate(x)
    set_running_statistics(model.G, seed=1)
    torch.manual_seed(5)
    assert torch.equal(model.translate(x, eval_mode=False), official)   # the running statistics are not used
    assert not torch.equal(model.translate(x), evaluated)                 # while eval mode uses them


def test_cyclegan_generators_are_the_same_in_both_modes():
    torch.manual_seed(0)
    model = CycleGAN(get_preset("ci", device="cpu", precision="fp32")).setup()
    x = images(2, 32)
    for direction in ("AtoB", "BtoA"):
        assert torch.equal(model.translate(x, direction, eval_mode=False), model.translate(x, direction))


@pytest.fixture
def unet_file(tmp_path):
    torch.manual_seed(0)
    source = UnetGenerator(3, 3, 6, 4, "batch")
    set_running_statistics(source)
    torch.save(source.state_dict(), tmp_path / "latest_net_G.pth")
    return tmp_path / "latest_net_G.pth", source.eval()


def test_loaded_unet_runs_the_official_way_by_default(unet_file):
    path, source = unet_file
    net, x = load_generator(path), images(2)
    before = buffers(net)
    assert net.training                                          # dropout on, batch statistics
    with torch.no_grad():
        assert not torch.allclose(net(x), net(x))
        assert not torch.allclose(run_at_test_time(net, x, eval_mode=True), run_at_test_time(net, x, eval_mode=False))
    assert all(torch.equal(before[k], v) for k, v in buffers(net).items())
    deterministic = load_generator(path, eval_mode=True)
    assert not deterministic.training
    with torch.no_grad():
        assert torch.equal(deterministic(x), source(x)) and torch.equal(deterministic(x), deterministic(x))


def write_paired(root, n: int = 4, size: int = 64):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size, 2 * size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / f"{i}.png")
    return root


def test_cli_translate_of_a_pix2pix_run_is_official_unless_eval_mode(tmp_path):
    config = get_preset("ci", model="pix2pix", image_size=64, load_size=64, ngf=4, ndf=4, iters=1, iters_decay=0, batch_size=2,
                        device="cpu", precision="fp32")
    Trainer(config, write_paired(tmp_path / "pairs"), out=tmp_path / "run", model="pix2pix", progress=False).fit()
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(inputs / f"{i}.png")

    def translate(out: str, *extra: str) -> list[np.ndarray]:
        assert cli.main(["translate", "--run", str(tmp_path / "run"), "--input", str(inputs),
                         "--output", str(tmp_path / out), "--device", "cpu", *extra]) == 0
        return [np.asarray(Image.open(tmp_path / out / f"{i}.png")) for i in range(2)]

    official = [translate("a"), translate("b")]
    assert any(not np.array_equal(a, b) for a, b in zip(*official))          # dropout at test time
    evaluated = [translate("c", "--eval-mode"), translate("d", "--eval-mode")]
    assert all(np.array_equal(a, b) for a, b in zip(*evaluated))
