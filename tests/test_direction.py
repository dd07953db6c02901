"""Config.direction, the official --direction: "BtoA" makes the dataset's B the model's A (for
pix2pix: the right half of each pair is the input), and translate keeps naming the dataset's domains."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cyclegan_edu.config import get_preset
from cyclegan_edu.models import CycleGAN, Pix2Pix
from cyclegan_edu.train import Trainer


def first_batch(data, model: str, direction: str) -> dict:
    config = get_preset("ci", model=model, device="cpu", precision="fp32", direction=direction)
    return next(iter(Trainer(config, data, model=model, progress=False).loader))


@pytest.fixture(scope="module")
def paired_folder(tmp_path_factory):
    """pix2pix's layout: 8 training images, each a random left half beside a different random right half."""
    root = tmp_path_factory.mktemp("paired")
    (root / "train").mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(root / "train" / f"{i}.png")
    return root


def test_unpaired_BtoA_swaps_the_domains_of_each_batch(tiny_folder):
    AtoB, BtoA = first_batch(tiny_folder, "cyclegan", "AtoB"), first_batch(tiny_folder, "cyclegan", "BtoA")
    assert torch.equal(BtoA["A"], AtoB["B"]) and torch.equal(BtoA["B"], AtoB["A"])
    assert not torch.equal(AtoB["A"], AtoB["B"])
    assert BtoA["A_path"] == AtoB["B_path"] and all("trainB" in path for path in BtoA["A_path"])


def test_paired_BtoA_takes_the_right_half_as_input(paired_folder):
    AtoB, BtoA = first_batch(paired_folder, "pix2pix", "AtoB"), first_batch(paired_folder, "pix2pix", "BtoA")
    assert torch.equal(BtoA["A"], AtoB["B"]) and torch.equal(BtoA["B"], AtoB["A"])
    assert not torch.equal(AtoB["A"], AtoB["B"])


def test_translate_names_the_datasets_domains():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    config = get_preset("ci", model="pix2pix", device="cpu", precision="fp32", direction="BtoA")
    pix2pix = Pix2Pix(config).setup()
    assert torch.equal(pix2pix.translate(x), pix2pix.translate(x, "BtoA"))     # the direction it learned
    with pytest.raises(ValueError, match="learned BtoA only"):
        pix2pix.translate(x, "AtoB")
    cyclegan = CycleGAN(get_preset("ci", device="cpu", precision="fp32", direction="BtoA")).setup()
    with torch.no_grad():       # its G_AB maps the dataset's B to A, so the dataset's A → B is G_BA
        assert torch.equal(cyclegan.translate(x, "AtoB"), cyclegan.G_BA(x))
        assert torch.equal(cyclegan.translate(x, "BtoA"), cyclegan.G_AB(x))
