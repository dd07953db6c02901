"""Config.validate refuses, with one message naming the field, every setting the networks cannot run."""
from __future__ import annotations

import pytest
import torch

from cyclegan_edu.config import Config, min_image_size
from cyclegan_edu.networks import NLayerDiscriminator, ResnetGenerator


@pytest.mark.parametrize("n_layers, smallest", [(1, 8), (2, 12), (3, 24), (4, 48)])
def test_smallest_image_size_is_the_smallest_the_networks_take(n_layers, smallest):
    assert min_image_size(n_layers) == smallest
    Config(image_size=smallest, load_size=smallest, n_layers_D=n_layers)        # accepted ...
    D = NLayerDiscriminator(3, 4, n_layers, "instance").train()
    G = ResnetGenerator(3, 3, 4, 1, "instance").train()
    x = torch.rand(2, 3, smallest, smallest)
    assert D(G(x)).shape[-1] >= 1                                                # ... and both networks run at it

    below = smallest - 4                                                         # the next multiple of 4 down
    with pytest.raises(ValueError, match=rf"image_size={below} is too small: with n_layers_D={n_layers} "
                                         rf"it must be at least {smallest}"):
        Config(image_size=below, load_size=below, n_layers_D=n_layers)
    with pytest.raises((RuntimeError, ValueError)):                              # which the PatchGAN cannot take
        D(torch.rand(2, 3, below, below))


def test_the_default_70x70_patchgan_needs_24_px():
    Config(image_size=24, load_size=26)
    for size in (16, 20):
        with pytest.raises(ValueError, match=rf"image_size={size} is too small.*at least 24"):
            Config(image_size=size, load_size=size + 2)
    with pytest.raises(ValueError, match="image_size=30: use a multiple of 4"):
        Config(image_size=30, load_size=32)
