"""Training speed of CycleGAN for each preset on this machine: steps/s, images/s and peak memory.

    python benchmarks/train_step.py                       # all presets, 5 timed steps each
    python benchmarks/train_step.py --presets ci cpu --steps 20 --channels-last
    python benchmarks/train_step.py --presets ci --data DIR   # also time the data loader alone

Warm-up steps are excluded. Batches are random tensors of the preset's shape, so the numbers
measure the model; ``--data`` measures whether loading keeps up (loader items/s vs images/s).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time

import torch

from cyclegan_edu.config import PRESETS, get_preset
from cyclegan_edu.models import CycleGAN


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # the process's peak resident set (Linux: KiB)
    return kb / 1024


def time_preset(name: str, steps: int, warmup: int, **overrides) -> dict:
    config = get_preset(name, **overrides)
    torch.manual_seed(0)
    model = CycleGAN(config).setup()
    device = model.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    shape = (config.batch_size, 3, config.image_size, config.image_size)
    a, b = torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1
    for _ in range(warmup):
        model.step(a, b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        model.step(a, b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return {"preset": name, "device": str(device), "size": config.image_size, "ngf": config.ngf,
            "blocks": config.n_blocks, "batch": config.batch_size, "s/step": seconds,
            "steps/s": 1 / seconds, "images/s": config.batch_size / seconds, "peak MB": peak_memory_mb(device)}


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--data", help="an official-layout folder: also time the data loader")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA {'yes: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no'}")
    header = ["preset", "device", "size", "ngf", "blocks", "batch", "s/step", "steps/s", "images/s", "peak MB"]
    print(" | ".join(f"{h:>9}" for h in header))
    for name in args.presets:
        row = time_preset(name, args.steps, args.warmup, device=args.device, precision=args.precision,
                          channels_last=args.channels_last, compile=args.compile)
        print(" | ".join(f"{row[h]:>9.3f}" if isinstance(row[h], float) else f"{row[h]:>9}" for h in header))
        if args.data:
            print(f"{'':>9}   data loader alone: {time_loader(args.data, name, 20):.0f} images/s")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
