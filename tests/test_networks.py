"""The networks: sizes, official state_dict layout, receptive fields, initialisation, and an
independent re-implementation of the official ResNet generator loading into ours."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from torch.nn.utils import parametrize

from cyclegan_edu.networks import (FullImageDiscriminator, NLayerDiscriminator, PixelDiscriminator,
                                   ResnetGenerator, UnetGenerator, add_spectral_norm, build_discriminator,
                                   count_parameters, init_weights, multiply_adds, output_map_size, receptive_field)


def on_meta(build):
    """Build a network without allocating or initialising its weights (names and shapes only)."""
    with torch.device("meta"):
        return build()


OFFICIAL = {
    "resnet_9blocks (ngf 64, instance norm, no dropout)": lambda: ResnetGenerator(3, 3, 64, 9),
    "resnet_6blocks (ngf 64, instance norm, no dropout)": lambda: ResnetGenerator(3, 3, 64, 6),
    "basic PatchGAN D (n_layers 3, ndf 64, instance norm, 3 input channels)": lambda: NLayerDiscriminator(3, 64, 3),
    "unet_256 (ngf 64, batch norm, dropout; pix2pix)": lambda: UnetGenerator(3, 3, 8, 64, "batch", dropout=True),
    "basic PatchGAN D (n_layers 3, ndf 64, batch norm, 6 input channels; pix2pix)":
        lambda: NLayerDiscriminator(6, 64, 3, "batch"),
}


def test_manifest_lists_the_five_networks(official_manifest):
    assert set(official_manifest) == set(OFFICIAL)


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_state_dict_names_shapes_and_size_equal_the_official(name, official_manifest):
    net = on_meta(OFFICIAL[name])
    expected = official_manifest[name]
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert list(ours) == list(expected["state_dict"])        # same names, same order
    assert ours == expected["state_dict"]
    assert count_parameters(net) == expected["parameters"]


def test_paper_parameter_counts():
    assert count_parameters(on_meta(ResnetGenerator)) == 11_378_179
    assert count_parameters(on_meta(NLayerDiscriminator)) == 2_764_737


def test_resnet_generator_official_key_positions():
    sd = on_meta(ResnetGenerator).state_dict()
    assert len(sd) == 48
    assert sd["model.1.weight"].shape == (64, 3, 7, 7)
    assert sd["model.19.weight"].shape == (256, 128, 3, 3)      # ConvTranspose: (in, out, k, k)
    assert sd["model.22.weight"].shape == (128, 64, 3, 3)
    assert sd["model.26.weight"].shape == (3, 64, 7, 7)
    blocks = {int(k.split(".")[1]) for k in sd if ".conv_block." in k}
    assert blocks == set(range(10, 19))
    assert not any("running" in k for k in sd)                  # instance norm keeps no statistics


def test_dropout_generator_shifts_the_second_conv_to_conv_block_6():
    sd = on_meta(lambda: ResnetGenerator(ngf=8, n_blocks=1, dropout=True)).state_dict()
    assert "model.10.conv_block.6.weight" in sd and "model.10.conv_block.5.weight" not in sd


# --- an independent implementation of the official ResnetGenerator (networks.py of
# junyanz/pytorch-CycleGAN-and-pix2pix), written layer by layer without our classes -------------

class _OfficialResnetBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


class _OfficialResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf, n_blocks):
        super().__init__()
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=True),
                 nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        model += [nn.Conv2d(ngf, ngf * 2, kernel_size=3, stride=2, padding=1, bias=True),
                  nn.InstanceNorm2d(ngf * 2), nn.ReLU(True)]
        model += [nn.Conv2d(ngf * 2, ngf * 4, kernel_size=3, stride=2, padding=1, bias=True),
                  nn.InstanceNorm2d(ngf * 4), nn.ReLU(True)]
        for _ in range(n_blocks):
            model += [_OfficialResnetBlock(ngf * 4)]
        model += [nn.ConvTranspose2d(ngf * 4, ngf * 2, kernel_size=3, stride=2, padding=1, output_padding=1,
                                     bias=True), nn.InstanceNorm2d(ngf * 2), nn.ReLU(True)]
        model += [nn.ConvTranspose2d(ngf * 2, ngf, kernel_size=3, stride=2, padding=1, output_padding=1,
                                     bias=True), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class _OfficialPatchGAN(nn.Module):
    """The official NLayerDiscriminator with instance norm, n_layers=3."""

    def __init__(self, input_nc, ndf):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=True), nn.InstanceNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=True), nn.InstanceNorm2d(ndf * 4), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 1, 1, bias=True), nn.InstanceNorm2d(ndf * 8), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 1))

    def forward(self, x):
        return self.model(x)


def _randomise(net: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
    return net


@pytest.mark.parametrize("n_blocks", [9, 2])
def test_independent_official_generator_loads_strictly_and_matches(n_blocks):
    torch.manual_seed(0)
    reference = _randomise(_OfficialResnetGenerator(3, 3, 8, n_blocks)).eval()
    ours = ResnetGenerator(3, 3, ngf=8, n_blocks=n_blocks).eval()
    result = ours.load_state_dict(reference.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.rand(2, 3, 32, 40) * 2 - 1
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


def test_independent_official_patchgan_loads_strictly_and_matches():
    torch.manual_seed(0)
    reference = _randomise(_OfficialPatchGAN(3, 8)).eval()
    ours = NLayerDiscriminator(3, ndf=8).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


# --- shapes and receptive fields ------------------------------------------------------------

def test_patchgan_gives_a_30x30_map_at_256():
    with torch.no_grad():
        assert NLayerDiscriminator(3, ndf=4)(torch.zeros(1, 3, 256, 256)).shape == (1, 1, 30, 30)


@pytest.mark.parametrize("build, size, out", [
    (lambda: NLayerDiscriminator(3, 8, 3), 64, (2, 1, 6, 6)),
    (lambda: NLayerDiscriminator(3, 8, 1), 64, (2, 1, 30, 30)),
    (lambda: PixelDiscriminator(3, 8), 20, (2, 1, 20, 20)),
    (lambda: FullImageDiscriminator(3, 8, image_size=32), 32, (2, 1, 1, 1)),
    (lambda: ResnetGenerator(3, 3, 8, 2), 36, (2, 3, 36, 36)),
    (lambda: ResnetGenerator(3, 3, 8, 2, upsample="resize"), 36, (2, 3, 36, 36)),
    (lambda: UnetGenerator(3, 3, 5, 8), 32, (2, 3, 32, 32)),
])
def test_output_shapes(build, size, out):
    with torch.no_grad():
        assert build()(torch.zeros(2, 3, size, size)).shape == out


def test_generator_output_lies_in_tanh_range():
    torch.manual_seed(0)
    with torch.no_grad():
        y = _randomise(ResnetGenerator(3, 3, 8, 1))(torch.randn(1, 3, 16, 16) * 5)
    assert y.abs().max() <= 1 and y.abs().max() > 0.5


def test_generator_refuses_sizes_not_divisible_by_4():
    with pytest.raises(ValueError, match="divisible by 4"):
        ResnetGenerator(3, 3, 8, 1)(torch.zeros(1, 3, 30, 32))


@pytest.mark.parametrize("build, field", [
    (lambda: NLayerDiscriminator(3, 8, 3), 70),
    (lambda: NLayerDiscriminator(3, 8, 1), 16),
    (lambda: NLayerDiscriminator(3, 8, 2), 34),
    (lambda: NLayerDiscriminator(3, 8, 4), 142),
    (lambda: PixelDiscriminator(3, 8), 1),
    (lambda: add_spectral_norm(NLayerDiscriminator(3, 8, 3)), 70),
])
def test_receptive_field_values(build, field):
    assert receptive_field(build()) == field


@pytest.mark.parametrize("n_layers, size", [(1, 96), (2, 96), (3, 96), (4, 224)])
def test_receptive_field_equals_the_measured_gradient_support(n_layers, size):
    """Without normalisation (instance norm couples every pixel), one output score depends on exactly
    a receptive_field × receptive_field square of the input."""
    torch.manual_seed(0)
    net = NLayerDiscriminator(3, 4, n_layers, norm="none")
    x = torch.randn(1, 3, size, size, requires_grad=True)
    scores = net(x)
    scores[0, 0, scores.shape[2] // 2, scores.shape[3] // 2].backward()
    support = x.grad.abs().sum(dim=(0, 1)) > 0
    rows, cols = support.any(1).nonzero(), support.any(0).nonzero()
    assert int(rows.max() - rows.min() + 1) == receptive_field(net)
    assert int(cols.max() - cols.min() + 1) == receptive_field(net)


def test_receptive_field_refuses_generators():
    with pytest.raises(ValueError, match="ResnetGenerator"):
        receptive_field(ResnetGenerator(3, 3, 8, 1))
    with pytest.raises(ValueError, match="UnetGenerator"):
        output_map_size(UnetGenerator(3, 3, 5, 4), 32)


PATCH_NETS = [lambda: NLayerDiscriminator(3, 4, 1), lambda: NLayerDiscriminator(3, 4, 2),
              lambda: NLayerDiscriminator(3, 4, 3), lambda: NLayerDiscriminator(3, 4, 4),
              lambda: PixelDiscriminator(3, 4), lambda: add_spectral_norm(NLayerDiscriminator(3, 4, 2))]


@pytest.mark.parametrize("build, size", [(build, size) for build in PATCH_NETS for size in (48, 64, 66)]
                         + [(lambda: FullImageDiscriminator(3, 4, image_size=64), 64)])
def test_output_map_size_equals_the_map_the_network_returns(build, size):
    net = build().eval()
    with torch.no_grad():
        assert net(torch.zeros(1, 3, size, size)).shape[-2:] == (output_map_size(net, size),) * 2


def test_output_map_size_of_the_paper_patchgan_and_too_small_images():
    assert output_map_size(on_meta(NLayerDiscriminator), 256) == 30
    assert output_map_size(on_meta(NLayerDiscriminator), 64) == 6
    with pytest.raises(ValueError, match="image_size=12 is too small for this NLayerDiscriminator"):
        output_map_size(on_meta(NLayerDiscriminator), 12)


def test_multiply_adds_by_hand_for_the_pixelgan():
    """Three 1×1 convolutions over 8×8 = 64 positions: 3→4, 4→8 and 8→1 channels."""
    assert multiply_adds(PixelDiscriminator(3, 4), 8) == 64 * (3 * 4 + 4 * 8 + 8 * 1) == 3_328


@pytest.mark.parametrize("build, size", [(build, size) for build in PATCH_NETS for size in (64, 66)]
                         + [(lambda: FullImageDiscriminator(3, 4, image_size=64), 64)])
def test_multiply_adds_equal_those_counted_in_a_forward_pass(build, size):
    net, counted = build().eval(), []
    for conv in (m for m in net.modules() if isinstance(m, torch.nn.Conv2d)):
        conv.register_forward_hook(lambda m, _, out: counted.append(out[0].numel() * m.in_channels * m.kernel_size[0]
                                                                    * m.kernel_size[1] // m.groups))
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    assert multiply_adds(net, size) == sum(counted) > 0


def test_multiply_adds_refuse_generators_and_too_small_images():
    with pytest.raises(ValueError, match="multiply-adds .* ResnetGenerator contains a ResnetBlock"):
        multiply_adds(ResnetGenerator(3, 3, 8, 1), 32)
    with pytest.raises(ValueError, match="image_size=12 is too small"):
        multiply_adds(NLayerDiscriminator(3, 8, 3), 12)


@pytest.mark.parametrize("kind, cls", [("n_layers", NLayerDiscriminator), ("pixel", PixelDiscriminator),
                                       ("image", FullImageDiscriminator)])
def test_build_discriminator_by_name(kind, cls):
    net = build_discriminator(kind, 6, 4, n_layers=2, norm="batch", image_size=32)
    assert type(net) is cls and net(torch.zeros(2, 6, 32, 32)).shape[1] == 1
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    if kind == "n_layers":
        assert receptive_field(net) == 34


def test_build_discriminator_refuses_unknown_kinds():
    with pytest.raises(ValueError, match="netD='basic': choose one of"):
        build_discriminator("basic")


def test_spectral_norm_wraps_every_convolution_and_keeps_the_initial_weights():
    torch.manual_seed(0)
    net = init_weights(NLayerDiscriminator(3, 8, 2), "normal", 0.02)
    initial = [m.weight.detach().clone() for m in net.modules() if isinstance(m, nn.Conv2d)]
    add_spectral_norm(net).train()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4 and all(parametrize.is_parametrized(m, "weight") for m in convs)
    assert all(torch.equal(m.parametrizations.weight.original, w) for m, w in zip(convs, initial))
    for _ in range(30):                       # each training-mode forward refines the power iteration
        net(torch.zeros(1, 3, 32, 32))
    for m in convs:
        largest = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert float(largest) == pytest.approx(1.0, abs=0.02)


# --- initialisation -------------------------------------------------------------------------

def test_init_weights_normal_statistics():
    torch.manual_seed(0)
    net = UnetGenerator(3, 3, 5, 16, "batch")
    for p in net.parameters():
        nn.init.constant_(p, 3.0)
    init_weights(net, "normal", 0.02).requires_grad_(False)
    convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert abs(float(weights.mean())) < 1e-3
    assert float(weights.std()) == pytest.approx(0.02, rel=0.02)
    assert all(float(m.bias.abs().max()) == 0 for m in convs if m.bias is not None)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    gammas = torch.cat([m.weight for m in norms])
    assert float(gammas.mean()) == pytest.approx(1.0, abs=0.01)
    assert 0.01 < float(gammas.std()) < 0.03
    assert all(float(m.bias.abs().max()) == 0 for m in norms)


def test_init_weights_gain_and_unknown_type():
    torch.manual_seed(0)
    net = init_weights(NLayerDiscriminator(3, 32, 3), "normal", gain=0.1)
    assert float(net.model[5].weight.detach().std()) == pytest.approx(0.1, rel=0.02)
    with pytest.raises(ValueError, match="init_type"):
        init_weights(net, "uniform")


def test_instance_norm_has_no_affine_parameters_and_no_running_stats():
    net = ResnetGenerator(3, 3, 8, 1)
    norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 1 + 2 + 2 + 2            # stem, 2 down, 2 in the block, 2 up
    assert all(not m.affine and not m.track_running_stats for m in norms)


def test_resize_upsampling_has_no_transposed_convolution():
    net = ResnetGenerator(3, 3, 8, 1, upsample="resize")
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
    assert sum(isinstance(m, nn.Upsample) for m in net.modules()) == 2


@pytest.mark.parametrize("upsample", ["deconv", "resize"])
def test_generator_layers_in_the_papers_notation(upsample):
    """Appendix 7.2: c7s1-64, d128, d256, R256 × 9, u128, u64, c7s1-3, the shapes at 256 px, and the
    parameters adding up to the whole net's (11,378,179 for the official resnet_9blocks)."""
    from cyclegan_edu.networks import generator_layers
    net = ResnetGenerator(upsample=upsample)
    rows = generator_layers(net, 256)
    assert [name for name, _, _ in rows] == ["c7s1-64", "d128", "d256"] + ["R256"] * 9 + ["u128", "u64", "c7s1-3"]
    assert [shape for _, shape, _ in rows] == ([(64, 256, 256), (128, 128, 128)] + [(256, 64, 64)] * 10
                                               + [(128, 128, 128), (64, 256, 256), (3, 256, 256)])
    assert sum(n for _, _, n in rows) == count_parameters(net)
    if upsample == "deconv":
        assert count_parameters(net) == 11_378_179
    assert net.training                                           # left as it was
