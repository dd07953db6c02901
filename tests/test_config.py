"""Config: immutable, every field documented, the presets (the paper's in fp32), pix2pix's own
defaults in one place, configs saved before a field existed, and validation that refuses, with one
message naming the field, every setting the networks cannot run."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from cyclegan_edu.config import PIX2PIX_DEFAULTS, PRESETS, Config, get_preset, min_image_size
from cyclegan_edu.networks import NLayerDiscriminator, ResnetGenerator


def test_config_and_presets_cannot_be_changed_in_place():
    config = get_preset("ci")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.ngf = 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["ci"].iters = 5
    with pytest.raises(TypeError):
        PRESETS["ci"] = Config()
    changed = config.replace(ngf=8)
    assert changed.ngf == 8 and config.ngf == 16 and PRESETS["ci"].ngf == 16


def test_every_field_has_a_help_text():
    for f in dataclasses.fields(Config):
        assert f.metadata["help"].strip(), f.name


def test_paper_preset_trains_in_fp32_unless_asked_otherwise():
    assert get_preset("paper").precision == "fp32"
    assert get_preset("paper", precision="bf16").precision == "bf16"
    assert get_preset("gpu").precision == "auto"


def test_pix2pix_defaults_are_applied_for_pix2pix_and_overrides_win():
    pix2pix = get_preset("ci", model="pix2pix")
    assert (pix2pix.norm, pix2pix.dropout, pix2pix.gan_mode, pix2pix.pool_size, pix2pix.lambda_identity,
            pix2pix.lambda_l1) == ("batch", True, "vanilla", 0, 0.0, 100.0)
    assert pix2pix.replace(**{k: getattr(PRESETS["ci"], k) for k in PIX2PIX_DEFAULTS}) == PRESETS["ci"]
    assert get_preset("ci", model="pix2pix", gan_mode="lsgan", pool_size=5).gan_mode == "lsgan"
    assert get_preset("ci", model="pix2pix", gan_mode="lsgan", pool_size=5).pool_size == 5
    assert get_preset("ci", model="cyclegan") == PRESETS["ci"]
    with pytest.raises(ValueError, match="model='unit'"):
        get_preset("ci", model="unit")


def test_configs_saved_before_a_field_existed_take_its_default():
    saved = get_preset("ci").to_dict()
    for added in ("lambda_l1", "direction"):
        del saved[added]
    assert Config.from_dict(saved) == get_preset("ci")
    # pix2pix runs saved then ignored norm, dropout, gan_mode and pool_size: they used pix2pix's own
    assert Config.from_dict(saved, model="pix2pix") == get_preset("ci", model="pix2pix")
    # once saved with lambda_l1, a pix2pix config is taken as it is
    lsgan = get_preset("ci", model="pix2pix", gan_mode="lsgan").to_dict()
    assert Config.from_dict(lsgan, model="pix2pix").gan_mode == "lsgan"


@pytest.mark.parametrize("changes, fragment", [
    ({"direction": "sideways"}, "direction='sideways'"),
    ({"lambda_l1": -1.0}, "lambda_l1=-1.0"),
    ({"norm": "layer"}, "norm='layer'"),
])
def test_bad_values_name_the_field(changes, fragment):
    with pytest.raises(ValueError, match=fragment):
        get_preset("ci", **changes)


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


def test_pixel_and_full_image_discriminators_lift_the_patchgan_size_limit():
    assert min_image_size(3, netD="pixel") == min_image_size(3, netD="image") == 8
    Config(image_size=8, load_size=8, netD="pixel")
    Config(image_size=8, load_size=8, netD="image")
    with pytest.raises(ValueError, match=r"image_size=8 is too small"):
        Config(image_size=8, load_size=8)                       # the 70×70 PatchGAN needs 24


def test_netD_and_spectral_norm_defaults_and_bad_values():
    assert (Config().netD, Config().spectral_norm) == ("n_layers", False)
    with pytest.raises(ValueError, match=r"netD='basic': choose one of \('n_layers', 'pixel', 'image'\)"):
        Config(netD="basic")
    with pytest.raises(ValueError, match="image_size=48: netD='image' .* needs a power of two"):
        Config(image_size=48, load_size=48, netD="image")
