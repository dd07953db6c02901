"""The networks of CycleGAN (Zhu et al. 2017, §4 and appendix 7.2) and of the pix2pix baseline.

* :class:`ResnetGenerator` — Johnson et al.'s image-transformation net: ``c7s1-64, d128, d256,
  R256 ×9, u128, u64, c7s1-3`` in the paper's notation (appendix 7.2).
* :class:`NLayerDiscriminator` — the 70×70 PatchGAN: ``C64-C128-C256-C512`` then a 1-channel conv,
  which scores every overlapping 70×70 patch as real or fake (§4, Isola et al. 2017).
* :class:`UnetGenerator` — pix2pix's U-Net with skip connections (Isola et al. 2017, §3.2.1).
* :class:`PixelDiscriminator` (a 1×1 PatchGAN) and :class:`FullImageDiscriminator` (one score per
  image), the two ends of the patch-size spectrum that the PatchGAN chapter compares.
* :func:`build_discriminator` — one of the three by name (Config's ``netD``); :func:`add_spectral_norm`.
* :func:`receptive_field` and :func:`output_map_size` — the patch a score sees, and how many scores.
* :func:`run_at_test_time` — a generator on test images: in eval mode, or as the official test.py
  runs pix2pix (dropout on, each image normalised with its own statistics).

Module layouts and parameter names equal the official PyTorch implementation's, so the official
pretrained files load into these classes with ``strict=True`` (see :mod:`cyclegan_edu.pretrained`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import NET_D_CHOICES


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Instance norm (no affine, no running stats, Ulyanov et al. 2016), batch norm, or none."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm={kind!r}: choose 'instance', 'batch' or 'none'")


def _conv_bias(norm: str) -> bool:
    # The official rule: batch norm brings its own shift, so the conv before it has no bias.
    return norm != "batch"


class ResnetBlock(nn.Module):
    """``x + conv_block(x)``: two reflection-padded 3×3 convolutions (appendix 7.2, "R256")."""

    def __init__(self, dim: int, norm: str = "instance", dropout: bool = False):
        super().__init__()
        bias = _conv_bias(norm)
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def _upsampling(in_ch: int, out_ch: int, mode: str, bias: bool) -> list[nn.Module]:
    """One ×2 upsampling layer: a fractionally strided conv (the paper's ``u128``), or its
    resize-convolution replacement (bilinear ×2 then a 3×3 conv), which cannot produce the
    checkerboard artifacts of overlapping deconvolutions (Odena et al. 2016)."""
    if mode == "deconv":
        return [nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1, bias=bias)]
    if mode == "resize":
        return [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.ReflectionPad2d(1), nn.Conv2d(in_ch, out_ch, 3, bias=bias)]
    raise ValueError(f"upsample={mode!r}: choose 'deconv' or 'resize'")


class ResnetGenerator(nn.Module):
    """The CycleGAN generator (appendix 7.2): 9 residual blocks at 256 px, 6 at 128 px.

    With the defaults, ``ResnetGenerator()`` is the official ``resnet_9blocks`` (11,378,179
    parameters). Input and output are images in [-1, 1]; height and width must be multiples of 4.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", dropout: bool = False, upsample: str = "deconv"):
        super().__init__()
        bias = _conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias),
                                   norm_layer(norm, ngf), nn.ReLU(True)]
        for i in range(2):                                   # d128, d256: stride-2 downsampling
            ch = ngf * 2 ** i
            layers += [nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=bias),
                       norm_layer(norm, ch * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, dropout) for _ in range(n_blocks)]
        for i in range(2):                                   # u128, u64: ×2 upsampling
            ch = ngf * 2 ** (2 - i)
            layers += _upsampling(ch, ch // 2, upsample, bias) + [norm_layer(norm, ch // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"ResnetGenerator needs height and width divisible by 4, got {tuple(x.shape[-2:])}; "
                             "resize or pad the image (cyclegan_edu.data.pad_to_multiple)")
        return self.model(x)


def generator_layers(net: ResnetGenerator, image_size: int = 256) -> list[tuple[str, tuple[int, ...], int]]:
    """The generator's layers in the paper's notation (appendix 7.2), each with the shape (C, H, W) of its
    output for one ``image_size``×``image_size`` image and its number of parameters: ``c7s1-k`` (7×7
    convolution, stride 1, k filters, with its norm and ReLU), ``dk`` (3×3, stride 2), ``Rk`` (a residual
    block), ``uk`` (the ×2 upsampling), and ``c7s1-3`` with tanh at the end. The default net gives c7s1-64,
    d128, d256, R256 × 9, u128, u64, c7s1-3 and 11,378,179 parameters in all. Chapter 5."""
    groups, current = [], []
    for m in net.model:
        current.append(m)
        if isinstance(m, (nn.ReLU, ResnetBlock, nn.Tanh)):        # each of the paper's layers ends so
            groups.append(current)
            current = []
    x = torch.zeros(1, net.model[1].in_channels, image_size, image_size)
    was_training = net.training
    net.eval()
    rows = []
    with torch.no_grad():
        for group in groups:
            for m in group:
                x = m(x)
            core = next(m for m in group if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, ResnetBlock, nn.Upsample)))
            out = x.shape[1]
            if isinstance(core, ResnetBlock):
                name = f"R{out}"
            elif isinstance(core, (nn.ConvTranspose2d, nn.Upsample)):
                name = f"u{out}"
            elif core.stride[0] == 2:
                name = f"d{out}"
            else:
                name = f"c{core.kernel_size[0]}s1-{out}"
            rows.append((name, tuple(x.shape[1:]), sum(p.numel() for m in group for p in m.parameters())))
    net.train(was_training)
    return rows


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: down, the inner levels, up, and the skip ``cat([x, up])``."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False, innermost: bool = False,
                 norm: str = "batch", dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        bias = _conv_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        down_conv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        if outermost:
            up_conv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            layers = [down_conv, submodule, nn.ReLU(True), up_conv, nn.Tanh()]
        elif innermost:
            up_conv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down_conv, nn.ReLU(True), up_conv, norm_layer(norm, outer_nc)]
        else:
            up_conv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down_conv, norm_layer(norm, inner_nc), submodule,
                      nn.ReLU(True), up_conv, norm_layer(norm, outer_nc)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """pix2pix's U-Net: ``num_downs`` stride-2 levels with skips (``unet_256``: 8 levels, 256 px
    down to 1×1). Defaults are pix2pix's: batch norm and dropout in the three innermost decoder
    levels, which is pix2pix's only source of noise (Isola et al. 2017, §3.1)."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", dropout: bool = True):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs={num_downs}: the U-Net needs at least 5 levels (32 px input)")
        self.num_downs = num_downs
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        for mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(ngf * mult, ngf * mult * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block,
                                             outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = 2 ** self.num_downs
        if x.shape[-1] % side or x.shape[-2] % side:
            raise ValueError(f"UnetGenerator with {self.num_downs} levels needs height and width divisible by "
                             f"{side}, got {tuple(x.shape[-2:])}")
        return self.model(x)


def set_test_time_mode(net: nn.Module, eval_mode: bool) -> nn.Module:
    """Put a generator in the mode it translates test images in, and return it.

    ``eval_mode=True`` is ``net.eval()``, the official ``--eval``: no dropout, batch norm with the
    running statistics gathered in training, the same output for the same input. ``eval_mode=False``
    is what the official test.py does by default and what the pix2pix paper prescribes (Isola et al.
    2017, §3.3: "we apply dropout at test time, and we apply batch normalization using the statistics
    of the test batch"): the network stays in training mode, so dropout keeps adding pix2pix's only
    noise and batch norm normalises with the statistics of the batch it is given. Either way batch
    norm stops updating its running statistics (``track_running_stats=False``; they are kept, and
    used in eval mode), so translating never changes the network. For CycleGAN's generators both
    modes compute the same function: instance norm keeps no running statistics and they have no
    dropout (the official default ``--no_dropout``), unless built with ``dropout=True``.
    """
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.track_running_stats = False
    return net.train(not eval_mode)


def run_at_test_time(net: nn.Module, x: torch.Tensor, eval_mode: bool = True) -> torch.Tensor:
    """``net(x)`` in :func:`set_test_time_mode`, every module's mode restored afterwards (call it
    under ``torch.no_grad()``). With ``eval_mode=False`` a network with batch norm translates one
    image at a time, as the official test.py does (batch size 1), so each image is normalised with
    its own statistics (instance normalisation, as the pix2pix paper notes) and its output does not
    depend on the other images of ``x``."""
    modes = [(m, m.training, getattr(m, "track_running_stats", None)) for m in net.modules()]
    set_test_time_mode(net, eval_mode)
    try:
        if eval_mode or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m, _, _ in modes):
            return net(x)
        return torch.cat([net(image[None]) for image in x])
    finally:
        for module, training, track in modes:
            module.training = training
            if track is not None:
                module.track_running_stats = track


class NLayerDiscriminator(nn.Module):
    """The PatchGAN discriminator (§4; Isola et al. 2017, §3.2.2).

    ``n_layers=3`` is the paper's 70×70 PatchGAN (2,764,737 parameters): at 256×256 input it outputs a
    30×30 map, one real/fake score per overlapping 70×70 patch. ``n_layers=1`` gives 16×16 patches.
    It outputs raw scores (no sigmoid): the loss decides how to read them (:class:`~cyclegan_edu.losses.GANLoss`).
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        bias = _conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1                # the last C-layer keeps the resolution
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                       norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """A 1×1 PatchGAN ("PixelGAN"): judges each pixel's colour alone, blind to structure."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, norm: str = "instance"):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=_conv_bias(norm)), norm_layer(norm, ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=_conv_bias(norm)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FullImageDiscriminator(nn.Module):
    """An "ImageGAN": stride-2 convolutions down to 4×4, then one 4×4 conv, so that the single score
    it returns sees the whole ``image_size``×``image_size`` image."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, image_size: int = 256, norm: str = "instance"):
        super().__init__()
        if image_size < 8 or image_size & (image_size - 1):
            raise ValueError(f"image_size={image_size}: FullImageDiscriminator needs a power of two >= 8")
        n_down = int(math.log2(image_size // 4))
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for _ in range(n_down - 1):
            nxt = min(ch * 2, ndf * 8)
            layers += [nn.Conv2d(ch, nxt, 4, stride=2, padding=1, bias=_conv_bias(norm)),
                       norm_layer(norm, nxt), nn.LeakyReLU(0.2, True)]
            ch = nxt
        layers.append(nn.Conv2d(ch, 1, 4))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build_discriminator(kind: str = "n_layers", input_nc: int = 3, ndf: int = 64, n_layers: int = 3,
                        norm: str = "instance", image_size: int = 256) -> nn.Module:
    """The discriminator ``kind`` of Config's ``netD``: ``"n_layers"`` the PatchGAN with ``n_layers``
    stride-2 layers (the official ``--netD n_layers``; with 3 it is ``basic``, the 70×70 PatchGAN),
    ``"pixel"`` the 1×1 :class:`PixelDiscriminator` (official ``pixel``), ``"image"`` the
    :class:`FullImageDiscriminator` for ``image_size`` images (pix2pix's ImageGAN, not in the official code)."""
    if kind == "n_layers":
        return NLayerDiscriminator(input_nc, ndf, n_layers, norm)
    if kind == "pixel":
        return PixelDiscriminator(input_nc, ndf, norm)
    if kind == "image":
        return FullImageDiscriminator(input_nc, ndf, image_size, norm)
    raise ValueError(f"netD={kind!r}: choose one of {NET_D_CHOICES}")


def add_spectral_norm(net: nn.Module) -> nn.Module:
    """Divide the weight of every convolution of ``net`` by its largest singular value, re-estimated by
    one power iteration in each training-mode forward pass (spectral normalisation, Miyato et al. 2018),
    and return ``net``. On a discriminator this bounds how fast its scores can change with its input (a
    Lipschitz constant of about 1 per layer), a standard remedy for a D that overpowers its generator.
    Apply it after :func:`init_weights`: the initial weights become the parametrization's ``original``."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(m)
    return net


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise as the paper's code: conv weights ~ N(0, gain), biases 0, and affine norm weights
    ~ N(1, gain) (appendix 7.1: "weights are initialized from a Gaussian N(0, 0.02)").
    ``init_type`` may also be ``xavier``, ``kaiming`` or ``orthogonal`` as in the official code."""
    inits = {
        "normal": lambda w: nn.init.normal_(w, 0.0, gain),
        "xavier": lambda w: nn.init.xavier_normal_(w, gain=gain),
        "kaiming": lambda w: nn.init.kaiming_normal_(w, a=0, mode="fan_in"),
        "orthogonal": lambda w: nn.init.orthogonal_(w, gain=gain),
    }
    if init_type not in inits:
        raise ValueError(f"init_type={init_type!r}: choose one of {sorted(inits)}")
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            inits[init_type](m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net


def _conv_stack(net: nn.Module):
    """``(layer, (kernel, stride, padding, dilation))`` for each layer of a plain convolution stack, in
    order (one side of each: our discriminators use square kernels and equal padding on every side)."""
    for m in net.modules():
        if isinstance(m, (nn.ConvTranspose2d, ResnetBlock, UnetSkipConnectionBlock)):
            raise ValueError(f"receptive fields, output maps and multiply-adds are computed for plain "
                             f"convolution stacks (discriminators); {type(net).__name__} contains a {type(m).__name__}")
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            yield m, tuple(_first(getattr(m, a, 1)) for a in ("kernel_size", "stride", "padding", "dilation"))


def receptive_field(net: nn.Module) -> int:
    """The side of the input square that one output value sees, from the layers of a plain
    convolution stack: ``r ← r + (k − 1)·d·j`` and ``j ← j·s`` over the layers in order, where ``j`` is
    the distance in input pixels between neighbouring units (the "jump").

    16, 34, 70 and 142 for the PatchGAN with ``n_layers`` 1 to 4 (70 is the paper's 70×70), 1 for
    :class:`PixelDiscriminator`.
    """
    field, jump = 1, 1
    for _, (k, s, _, d) in _conv_stack(net):
        field += (k - 1) * d * jump
        jump *= s
    return field


def _layer_outputs(net: nn.Module, image_size: int):
    """``(layer, side of its output)`` for each layer of a plain convolution stack fed
    ``image_size``×``image_size`` images: ``n ← ⌊(n + 2p − d·(k − 1) − 1) / s⌋ + 1``, the size rule of
    ``nn.Conv2d``. Raises ValueError when the images are too small for the network to return any score."""
    size = image_size
    for layer, (k, s, p, d) in _conv_stack(net):
        size = (size + 2 * p - d * (k - 1) - 1) // s + 1
        if size < 1:
            raise ValueError(f"image_size={image_size} is too small for this {type(net).__name__}: "
                             "it would return no score; use larger images or fewer layers")
        yield layer, size


def output_map_size(net: nn.Module, image_size: int) -> int:
    """The side of the score map a discriminator returns for ``image_size``×``image_size`` images.

    The 70×70 PatchGAN gives 30 at 256 px (900 overlapping patches) and 6 at 64 px; the PixelGAN
    gives ``image_size`` itself, the full-image discriminator 1. Raises ValueError when the images
    are too small for the network to return any score.
    """
    sizes = [size for _, size in _layer_outputs(net, image_size)]
    return sizes[-1] if sizes else image_size


def multiply_adds(net: nn.Module, image_size: int) -> int:
    """The multiply-adds of a plain convolution stack's forward pass over one ``image_size``² image:
    ``Σ n² · C_out · (C_in / groups) · k²`` over its convolutions, with ``n`` the side of each output.
    A measure of a discriminator's cost that does not depend on the machine (chapter 5 compares the
    patch sizes with it); normalisation and activations, a few operations per value, are left out."""
    return sum(size * size * layer.out_channels * (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)
               for layer, size in _layer_outputs(net, image_size) if isinstance(layer, nn.Conv2d))


def _first(v) -> int:
    return v[0] if isinstance(v, tuple) else v


def count_parameters(net: nn.Module) -> int:
    """The number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
