"""How far a short CycleGAN run gets on each offline domain pair: scores before → after training.

    python benchmarks/domain_pairs.py                          # every task, preset ci, 300 steps each
    python benchmarks/domain_pairs.py --tasks shapes sneaker2boot --steps 600 --preset cpu
    python benchmarks/domain_pairs.py --tasks shapes labels --precision bf16   # does quality hold?

"Before" scores the untranslated test inputs (the identity map: what you get without learning);
"after" scores the A→B translations of the trained model. Procedural tasks and emoji are scored
against their ground truth (L1 in [-1, 1] units, PSNR, and the task's own geometry score); the
Fashion-MNIST pairs, which have no ground truth, by the share of outputs a classifier judges to be
of the target class (``judges.fashion_judge``). Every task is also scored by a domain judge: the
share of outputs judged to come from B. Runs go to a temporary folder; nothing is cached.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch

from cyclegan_edu import domains, judges, metrics
from cyclegan_edu.config import get_preset
from cyclegan_edu.data import load_folder
from cyclegan_edu.domains import procedural
from cyclegan_edu.train import Trainer

TASKS = ("shapes", "labels", "seasons", "tint", "emoji", "sneaker2boot", "pullover2coat", "tshirt2shirt")
FASHION_TARGET = {"sneaker2boot": "Ankle boot", "pullover2coat": "Coat", "tshirt2shirt": "Shirt"}


class Identity:
    """The "model" that leaves every image as it is: the before-training baseline."""

    def translate(self, x: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        return x


def scores(model, folder, task: str, size: int, domain_judge) -> dict[str, float]:
    test_A = load_folder(folder / "testA", size)
    fake_B = model.translate(test_A, "AtoB")
    row = {"judged B": domain_judge.score_B(fake_B)}
    if task in FASHION_TARGET:
        row["success"] = judges.fashion_judge(size).success_rate(fake_B, FASHION_TARGET[task])
    else:
        truth = metrics.score_against_truth(model, folder, "AtoB", size)
        row.update({"L1": truth["l1"], "PSNR": truth["psnr"]})
        if "mask_iou" in truth:
            row["mask IoU"] = truth["mask_iou"]
        if task == "tint":
            row["hue drift°"] = truth["color_drift"]
        if task == "labels":   # labels → photo, scored FCN-style by the segmenter (paper Table 2)
            labels = procedural.colors_to_labels(test_A)
            row["FCN pixel acc"] = judges.labels_segmenter(size).score(fake_B, labels)["pixel_acc"]
    return row


def run(task: str, preset: str, steps: int, precision: str | None = None) -> tuple[dict, dict, float]:
    config = get_preset(preset).replace(iters=steps, iters_decay=steps // 2,
                                        **({"precision": precision} if precision else {}))
    size = config.image_size
    folder = domains.get(task, size=size)
    domain_judge = judges.domain_judge(folder, size)
    before = scores(Identity(), folder, task, size, domain_judge)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, folder, out=out)
        start = time.perf_counter()
        trainer.fit()
        seconds = time.perf_counter() - start
        after = scores(trainer.model, folder, task, size, domain_judge)
    return before, after, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--preset", default="ci")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--precision", default=None, choices=("auto", "fp32", "bf16", "fp16"),
                        help="autocast precision of training (default: the preset's)")
    args = parser.parse_args(argv)
    print(f"preset {args.preset}, precision {args.precision or get_preset(args.preset).precision}, {args.steps} steps per task; scores of A→B on testA: before → after")
    for task in args.tasks:
        try:
            before, after, seconds = run(task, args.preset, args.steps, args.precision)
        except (OSError, ValueError, RuntimeError) as error:   # e.g. a missing Debian/npm source
            print(f"{task:14s} skipped: {error}")
            continue
        cells = ", ".join(f"{key} {before[key]:.3f} → {after[key]:.3f}" for key in after)
        print(f"{task:14s} {seconds:6.0f} s ({args.steps / seconds:.1f} steps/s)  {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
