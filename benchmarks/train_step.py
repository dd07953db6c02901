"""Training speed of CycleGAN on this machine, against a plain step written straight from the paper.

    python benchmarks/train_step.py                       # the cpu preset and the paper's nets at 64, 128, 256 px
    python benchmarks/train_step.py --quick               # a smoke check in seconds (ci preset, few steps)
    python benchmarks/train_step.py --rows cpu paper-128 --rounds 5 --steps 10 --channels-last
    python benchmarks/train_step.py --rows ci --data DIR  # also time the data loader alone

Each row times, in the same process and in alternating rounds (so that a busy machine slows both
alike), two steps on the same networks:

* **default**: ``CycleGAN.train_step`` with the package's settings for this device (bf16 autocast
  where the device computes it natively, the preset's batch, D frozen in G's update, losses read
  once a round as the Trainer reads them on a GPU, not each step), plus any ``--channels-last`` or
  ``--compile``;
* **plain**: the paper's iteration written out with nothing else (:class:`PaperStep`): eager fp32,
  batch 1, both discriminators trainable during the generators' update (their gradients are
  computed and thrown away), every loss read each step, the image pool of §4.

It prints images/s of both and the speed-up (default images/s ÷ plain images/s; the median of the
rounds), images/s of ``translate`` (the default model, a batch of ``--translate-batch`` images),
the peak memory of the default step (CUDA: the allocator's peak; CPU: the process's peak resident
memory, torch included, since the row began, read from ``/proc/self/status`` after resetting it
through ``/proc/self/clear_refs``), and the fraction of this machine's matmul peak that each step
reaches.

The fraction counts convolution FLOPs analytically (:func:`conv_flops`): for each convolution a
step runs, 2 FLOPs per multiply-add of a direct convolution, forward, plus in backward one more
pass for the input's gradient (when the input needs one) and one for the weights' (when they are
trained); a transposed convolution counts the multiply-adds of its input's values, not those of
the zeros its stride inserts (counted, the paper's generator would have 57 instead of 50 GMACs at
256 px). Norms, activations, padding, losses and optimizer updates are left out (memory-bound, a few
percent of the arithmetic). The peak is the best rate of a large ``torch.matmul`` in the step's
dtype (fp32 for the plain step; bf16 or fp16 for an autocast default step). The count is that of a
direct convolution: an algorithm that needs fewer multiplications (Winograd's for 3×3 kernels, which
cuDNN may pick on a GPU with ``cudnn.benchmark``, and oneDNN only when asked, which PyTorch does not)
would make the printed fraction an upper bound of the arithmetic really done, possibly above 100 %.
On the CPU PyTorch's oneDNN kernels compute direct convolutions, so there the count is the work done.
Batches are random tensors of the row's shape, so the numbers measure the model, not the data loader.
"""
from __future__ import annotations

import argparse
import itertools
import math
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cyclegan_edu.config import PRESETS, Config, get_preset
from cyclegan_edu.devices import select_device
from cyclegan_edu.models import CycleGAN
from cyclegan_edu.pool import ImagePool

ROWS = ("cpu", "paper-64", "paper-128", "paper-256")


def row_config(name: str, **runtime) -> Config:
    """A preset by name, or ``paper-N``: the paper's networks (ngf 64, 9 blocks, 70×70 PatchGAN,
    batch 1) at N px with this machine's default runtime settings."""
    if name in PRESETS:
        return get_preset(name, **runtime)
    if name.startswith("paper-") and name[6:].isdigit():
        size = int(name[6:])
        return Config(image_size=size, load_size=size, ngf=64, ndf=64, n_blocks=9, batch_size=1, **runtime)
    raise SystemExit(f"train_step.py: error: row {name!r}: a preset ({', '.join(PRESETS)}) or paper-N (e.g. paper-128)")


class PaperStep:
    """One CycleGAN iteration as the paper states it (Eq. 1-3 with least squares, §4; the identity
    loss of §5.2 with the same weights as the default step), on the default model's networks copied
    at their initial weights: eager fp32, batch 1, no trick."""

    def __init__(self, config: Config, device: torch.device):
        plain = config.replace(precision="fp32", channels_last=False, compile=False, batch_size=1)
        torch.manual_seed(plain.seed)
        nets = CycleGAN(plain).to(device)            # only for its four networks, initialised as the paper's
        self.G, self.F, self.D_X, self.D_Y = nets.G_AB, nets.G_BA, nets.D_A, nets.D_B
        self.lambda_cycle, self.lambda_identity = plain.lambda_cycle, plain.lambda_identity
        adam = dict(lr=plain.lr, betas=(plain.beta1, plain.beta2))
        self.opt_G = torch.optim.Adam(itertools.chain(self.G.parameters(), self.F.parameters()), **adam)
        self.opt_D = torch.optim.Adam(itertools.chain(self.D_X.parameters(), self.D_Y.parameters()), **adam)
        self.pool_X, self.pool_Y = ImagePool(plain.pool_size), ImagePool(plain.pool_size)

    def nets(self) -> tuple[nn.Module, ...]:
        return self.G, self.F, self.D_X, self.D_Y

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        def real(scores):
            return F.mse_loss(scores, torch.ones_like(scores))

        def fake(scores):
            return F.mse_loss(scores, torch.zeros_like(scores))

        fake_y, fake_x = self.G(x), self.F(y)
        loss_G = (real(self.D_Y(fake_y)) + real(self.D_X(fake_x))
                  + self.lambda_cycle * (F.l1_loss(self.F(fake_y), x) + F.l1_loss(self.G(fake_x), y))
                  + self.lambda_cycle * self.lambda_identity * (F.l1_loss(self.G(y), y) + F.l1_loss(self.F(x), x)))
        self.opt_G.zero_grad()
        loss_G.backward()
        self.opt_G.step()
        old_x, old_y = self.pool_X.query(fake_x.detach()), self.pool_Y.query(fake_y.detach())
        loss_D = 0.5 * (real(self.D_Y(y)) + fake(self.D_Y(old_y))) + 0.5 * (real(self.D_X(x)) + fake(self.D_X(old_x)))
        self.opt_D.zero_grad()
        loss_D.backward()
        self.opt_D.step()
        return loss_G.item(), loss_D.item()


def conv_flops(nets, run) -> float:
    """The FLOPs of the convolutions in one call of ``run()``, counted as direct convolutions: 2 per
    multiply-add, for the forward pass and, in backward, for the input's gradient (if the input
    needs one) and the weights' (if they are trained)."""
    total = 0.0

    def count(module, inputs, output):
        nonlocal total
        x, (kh, kw) = inputs[0], module.kernel_size
        if isinstance(module, nn.ConvTranspose2d):    # each input value meets out_channels·kh·kw weights
            macs = x.numel() * module.out_channels // module.groups * kh * kw
        else:                                         # each output value sums in_channels·kh·kw products
            macs = output.numel() * module.in_channels // module.groups * kh * kw
        backward = torch.is_grad_enabled() * (x.requires_grad + module.weight.requires_grad)
        total += 2 * macs * (1 + backward)

    convs = [m for net in nets for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    handles = [m.register_forward_hook(count) for m in convs]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return total


def default_step_flops(config: Config, device: torch.device, a: torch.Tensor, b: torch.Tensor) -> float:
    """:func:`conv_flops` of a default step, on a model of its own, not compiled (hooks and
    ``torch.compile`` do not mix; the arithmetic is the same)."""
    model = CycleGAN(config.replace(compile=False)).setup(device)
    return conv_flops(model.children(), lambda: model.train_step(a, b))


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, reps: int = 3) -> float:
    """The best FLOP/s of an n×n by n×n ``torch.matmul`` in ``dtype`` on ``device``."""
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    a @ b                                              # warm-up: kernels chosen, memory touched
    best = math.inf
    for _ in range(reps):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")   # Linux: restart the peak resident set from now
    except OSError:
        pass                                            # elsewhere: the peak of the whole process


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: KiB


def time_row(name: str, args, peaks: dict) -> dict:
    config = row_config(name, device=args.device, precision=args.precision, channels_last=args.channels_last,
                        compile=args.compile)
    device = select_device(config.device)
    shape = (config.batch_size, config.input_nc, config.image_size, config.image_size)
    a, b = torch.rand(shape, device=device) * 2 - 1, torch.rand(shape, device=device) * 2 - 1
    x, y = a[:1], b[:1]
    default_flops = default_step_flops(config, device, a, b)

    reset_peak_memory(device)
    torch.manual_seed(config.seed)
    model = CycleGAN(config).setup(device)
    for _ in range(args.warmup):
        model.train_step(a, b)
    synchronize(device)
    peak = peak_memory_mb(device)

    plain = PaperStep(config, device)
    plain_flops = conv_flops(plain.nets(), lambda: plain(x, y))
    for _ in range(args.warmup):
        plain(x, y)

    def seconds_per_step(step, read) -> float:
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            losses = step()
        read(losses)
        synchronize(device)
        return (time.perf_counter() - start) / args.steps

    default_times, plain_times = [], []
    for _ in range(args.rounds):                       # alternate, so that other load slows both alike
        default_times.append(seconds_per_step(lambda: model.train_step(a, b), model.read_losses))
        plain_times.append(seconds_per_step(lambda: plain(x, y), lambda losses: losses))
    default_s, plain_s = statistics.median(default_times), statistics.median(plain_times)

    test = torch.rand(args.translate_batch, config.input_nc, config.image_size, config.image_size) * 2 - 1
    model.translate(test)                              # warm-up
    synchronize(device)
    start = time.perf_counter()
    model.translate(test)
    synchronize(device)
    translate_s = time.perf_counter() - start

    default_dtype = model.amp_dtype or torch.float32
    for dtype in (default_dtype, torch.float32):
        if dtype not in peaks:
            peaks[dtype] = matmul_peak(device, dtype, args.matmul_size)
    return {"row": name, "device": str(device), "size": config.image_size, "batch": config.batch_size,
            "dtype": str(default_dtype).removeprefix("torch."),
            "img/s": config.batch_size / default_s, "plain img/s": 1 / plain_s,
            "speed-up": config.batch_size / default_s * plain_s,
            "translate img/s": args.translate_batch / translate_s, "peak MB": peak,
            "GFLOP/step": default_flops / 1e9, "% peak": 100 * default_flops / default_s / peaks[default_dtype],
            "plain GFLOP": plain_flops / 1e9, "plain % peak": 100 * plain_flops / plain_s / peaks[torch.float32]}


def time_loader(data: str, name: str, batches: int) -> float:
    from torch.utils.data import DataLoader
    from cyclegan_edu.data import UnpairedImageFolder
    c = get_preset(name)
    dataset = UnpairedImageFolder(data, "train", c.image_size, c.load_size, c.preprocess, c.flip,
                                  cache=c.image_size <= 128)
    loader = DataLoader(dataset, batch_size=c.batch_size, shuffle=True, num_workers=c.num_workers)
    start, n = time.perf_counter(), 0
    for i, batch in enumerate(loader):
        n += len(batch["A"])
        if i + 1 >= batches:
            break
    return n / (time.perf_counter() - start)


HEADER = ["row", "device", "size", "batch", "dtype", "img/s", "plain img/s", "speed-up", "translate img/s",
          "peak MB", "GFLOP/step", "% peak", "plain GFLOP", "plain % peak"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=list(ROWS),
                        help=f"presets ({', '.join(PRESETS)}) or paper-N (default: {' '.join(ROWS)})")
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each kind per round (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is kept (default 3)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each kind first (default 2)")
    parser.add_argument("--translate-batch", type=int, default=16, help="images per translate call (default 16)")
    parser.add_argument("--matmul-size", type=int, default=2048, help="n of the n×n matmul that measures the peak")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                        help="of the default step (the plain one is fp32)")
    parser.add_argument("--channels-last", action="store_true", help="default step: channels-last memory layout")
    parser.add_argument("--compile", action="store_true", help="default step: torch.compile the networks")
    parser.add_argument("--data", help="an official-layout folder: also time the data loader")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke check in seconds: the ci row, 1 step, 2 rounds, small matmul and translate")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.steps, args.rounds, args.warmup = ["ci"], 1, 2, 1
        args.translate_batch, args.matmul_size = 2, 256
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA {'yes: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no'}")
    print(" | ".join(f"{h:>9}" for h in HEADER))
    peaks: dict[torch.dtype, float] = {}
    for name in args.rows:
        row = time_row(name, args, peaks)
        print(" | ".join(f"{row[h]:>9.3g}" if isinstance(row[h], float) else f"{row[h]:>9}" for h in HEADER))
        if args.data:
            print(f"{'':>9}   data loader alone: {time_loader(args.data, name, 20):.0f} images/s")
        sys.stdout.flush()
    print("matmul peak: " + ", ".join(f"{str(dtype).removeprefix('torch.')} {rate / 1e9:.0f} GFLOP/s"
                                      for dtype, rate in peaks.items())
          + f" (n={args.matmul_size}); FLOPs are direct-convolution counts (see the docstring: an upper bound "
          "of the arithmetic done where Winograd is used)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
