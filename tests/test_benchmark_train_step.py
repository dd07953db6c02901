"""benchmarks/train_step.py: its analytic convolution count, and a smoke run of ``--quick``
(numbers are not checked: timings belong to the machine, not to a test)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from cyclegan_edu.networks import NLayerDiscriminator, ResnetGenerator

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"


def load_script():
    spec = importlib.util.spec_from_file_location("train_step_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_paper_networks_convolutions_are_counted_by_hand():
    """By hand, at 256 px: c7s1-64 0.617, d128 and d256 1.208 each, 18 residual convs 2.416 each,
    u128 and u64 1.208 each (input values × out channels × 9), c7s1-3 0.617 GMACs: 49.55 G; the
    70×70 PatchGAN 3.15 G. Counted on the meta device, which computes shapes only."""
    bench = load_script()
    with torch.device("meta"):
        G, D, x = ResnetGenerator(3, 3, 64, 9), NLayerDiscriminator(3, 64, 3), torch.empty(1, 3, 256, 256)
    with torch.no_grad():
        assert bench.conv_flops([G], lambda: G(x)) == 2 * 49_551_507_456
        assert bench.conv_flops([D], lambda: D(x)) == 2 * 3_146_809_344
    conv = nn.Conv2d(3, 8, 3, padding=1)
    y = torch.rand(2, 3, 8, 8)
    forward = 2 * (2 * 8 * 8 * 8) * 3 * 9
    assert bench.conv_flops([conv], lambda: conv(y)) == 2 * forward                  # + the weights' gradient
    assert bench.conv_flops([conv], lambda: conv(y.requires_grad_())) == 3 * forward  # + the input's
    conv.requires_grad_(False)
    assert bench.conv_flops([conv], lambda: conv(y)) == 2 * forward                  # frozen: the input's only


def test_rows_are_presets_or_the_paper_networks_at_a_size():
    bench = load_script()
    paper = bench.row_config("paper-128", device="cpu")
    assert (paper.image_size, paper.ngf, paper.ndf, paper.n_blocks, paper.n_layers_D, paper.batch_size) == \
        (128, 64, 64, 9, 3, 1)
    assert paper.precision == "auto" and bench.row_config("cpu").batch_size == 4


def test_quick_runs_and_prints_a_row_with_the_speed_up(capsys):
    assert load_script().main(["--quick", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, row = ([cell.strip() for cell in line.split("|")] for line in lines[1:3])
    values = dict(zip(header, row))
    assert values["row"] == "ci" and float(values["speed-up"]) > 0 and float(values["% peak"]) > 0
    assert lines[3].startswith("matmul peak: ")
