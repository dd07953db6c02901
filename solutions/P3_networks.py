"""Answers to problem set 3 (notebooks/problems/P3_networks.ipynb): the residual block, the ResNet
generator and the 70×70 PatchGAN.

Instructor's file: keep it out of what you hand out. See book/problem_sets.md.
"""
from torch import nn


class ResidualBlock(nn.Module):
    """x + conv_block(x), two reflection-padded 3×3 convolutions (appendix 7.2, "R256")."""

    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """c7s1-64, d128, d256, n_blocks × R256, u128, u64, c7s1-3 (appendix 7.2)."""

    def __init__(self, input_nc=3, output_nc=3, ngf=64, n_blocks=9):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU()]
        for ch in (ngf, 2 * ngf):                                     # d128, d256
            layers += [nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * ch), nn.ReLU()]
        layers += [ResidualBlock(4 * ngf) for _ in range(n_blocks)]
        for ch in (4 * ngf, 2 * ngf):                                 # u128, u64
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(ch // 2), nn.ReLU()]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class PatchGAN(nn.Module):
    """C64-C128-C256-C512, then a 1-channel conv: one raw score per overlapping 70×70 patch (§4)."""

    def __init__(self, input_nc=3, ndf=64):
        super().__init__()

        def c(in_ch, out_ch, stride, norm=True):
            return [nn.Conv2d(in_ch, out_ch, 4, stride=stride, padding=1),
                    *([nn.InstanceNorm2d(out_ch)] if norm else []), nn.LeakyReLU(0.2)]

        self.model = nn.Sequential(
            *c(input_nc, ndf, 2, norm=False), *c(ndf, 2 * ndf, 2), *c(2 * ndf, 4 * ndf, 2), *c(4 * ndf, 8 * ndf, 1),
            nn.Conv2d(8 * ndf, 1, 4, stride=1, padding=1))

    def forward(self, x):
        return self.model(x)
