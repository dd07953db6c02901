"""The command line: ``python -m cyclegan_edu`` or ``cyclegan-edu``.

    cyclegan-edu toy --list                                  # the offline domains
    cyclegan-edu toy shapes --out data/shapes                # make one in the official layout
    cyclegan-edu train --data data/shapes --out runs/shapes --preset ci
    cyclegan-edu translate --run runs/shapes --direction AtoB --input data/shapes/testA --output out/
    cyclegan-edu info runs/shapes
    cyclegan-edu download dataset horse2zebra                # needs the network
    cyclegan-edu download pretrained horse2zebra

Every error a user can cause is one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import warnings
from pathlib import Path

# what `main` reports as a user's error (one line, exit code 2); other OSErrors exit with 1
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _load_size(size: int) -> int:
    """The official 286/256 ratio between resize and crop, rounded to an even number."""
    return 2 * round(size * 286 / 256 / 2)


def _fail(message: str, code: int):
    """Exit with one line on stderr, as `main` reports errors."""
    print(f"cyclegan-edu: error: {message}", file=sys.stderr)
    raise SystemExit(code)


@contextlib.contextmanager
def _warnings_as_notes():
    """Show warnings (data moved since the run started, a skipped image) as one ``note:`` line each."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"cyclegan-edu: note: {message}", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _cmd_train(args) -> None:
    from .config import Config, get_preset
    from .train import CHECKPOINT, CheckpointWriteError, Trainer, TrainingDiverged, read_checkpoint
    changes = {k: v for k, v in {
        "ngf": args.ngf, "ndf": args.ngf, "n_blocks": args.n_blocks, "batch_size": args.batch_size,
        "lambda_cycle": args.lambda_cycle, "lambda_identity": args.lambda_identity,
        "pool_size": args.pool_size, "gan_mode": args.gan_mode, "seed": args.seed, "device": args.device,
        "precision": args.precision, "upsample": args.upsample, "checkpoint_every": args.checkpoint_every,
        "num_workers": args.workers,
        "checkpoint_minutes": args.checkpoint_minutes, "skip_bad": args.skip_bad,   # TEMP until generated
    }.items() if v is not None}
    if args.size is not None:
        changes.update(image_size=args.size, load_size=_load_size(args.size))
    if args.iters is not None:
        changes.update(iters=args.iters, iters_decay=args.iters // 2)
    if args.epochs is not None:
        changes.update(iters=None, n_epochs=(args.epochs + 1) // 2, n_epochs_decay=args.epochs // 2)
    checkpoint = Path(args.out) / CHECKPOINT
    if args.resume and checkpoint.exists():
        # continue with the run's own settings; options given here must agree with them (Trainer checks)
        config = Config.from_dict(read_checkpoint(checkpoint)["config"]).replace(**changes)
    else:
        config = get_preset(args.preset, **changes)
    with _warnings_as_notes():
        trainer = Trainer(config, args.data, out=args.out, model=args.model, resume=args.resume,
                          force=args.force, progress=not args.no_progress)
        print(f"training {args.model} on {args.data} with preset {args.preset or 'default'}: "
              f"{config.image_size}px, ngf {config.ngf}, {config.n_blocks} blocks, batch {config.batch_size}, "
              f"steps {trainer.step} → {trainer.total_steps} on {trainer.device}")
        try:
            trainer.fit()
        except KeyboardInterrupt as stop:             # Ctrl-C, SIGTERM or SIGHUP: exit code 128 + the signal
            signum = getattr(stop, "signum", signal.SIGINT)
            print(f"\n{signal.Signals(signum).name} at step {trainer.step}: stopped; {_saved(trainer)}",
                  file=sys.stderr)
            raise SystemExit(128 + signum)
        except TrainingDiverged as err:
            _fail(str(err), 1)
        except CheckpointWriteError:
            raise
        except (*USER_ERRORS, OSError) as err:         # e.g. an unreadable image, maybe after some steps
            saved = "" if trainer.checkpoint_step is None else f"; {_saved(trainer)}"
            _fail(f"{_one_line(err)}{saved}", 2 if isinstance(err, USER_ERRORS) else 1)
    last = trainer.history[-1] if trainer.history else {}
    print(f"done: {trainer.step} steps; run directory {args.out}; last losses "
          + ", ".join(f"{k} {v:.3f}" for k, v in last.items() if k not in ("step", "epoch", "lr", "seconds")))


def _one_line(err: Exception) -> str:
    """The message of ``err`` on one line. An error in a DataLoader worker carries the worker's
    traceback, whose last line is ``<type>: <the original message>``."""
    lines = str(err).strip().splitlines() or [""]
    if len(lines) == 1:
        return lines[0]
    prefix = f"{type(err).__name__}: "
    return lines[-1][len(prefix):] if lines[-1].startswith(prefix) else lines[-1]


def _saved(trainer) -> str:
    """What a stopped run kept, and how to continue it."""
    if trainer.checkpoint_step is None:
        return "nothing was saved"
    if trainer.checkpoint_step == trainer.step:
        return f"checkpoint of step {trainer.step} saved. Continue with --resume"
    return f"the checkpoint of step {trainer.checkpoint_step} is kept. Continue with --resume"


def _cmd_translate(args) -> None:
    import torch
    from torch.utils.data import DataLoader
    from .data import ImageFiles, list_images, pad_to_multiple, to_image
    if args.run:
        from .train import load_model
        model = load_model(args.run, device=args.device)
        size = args.size if args.size is not None else model.config.image_size

        def translate(x):
            return model.translate(x, args.direction)
        device = model.device
    else:
        from .devices import select_device
        from .pretrained import load_generator
        device = select_device(args.device)
        net = load_generator(args.weights, device=device)
        size = args.size

        def translate(x):
            with torch.no_grad():
                return net(x.to(device))
    source = Path(args.input)
    files = [source] if source.is_file() else list_images(source, "give --input an image file or a folder of images")
    out = Path(args.output)
    targets = [out / (f.stem + ".png") for f in files]
    clashes = [t for t in targets if t.exists()]
    if clashes and not args.force:
        raise FileExistsError(f"{len(clashes)} output file(s) exist already, e.g. {clashes[0]}; "
                              "pass --force to overwrite or choose another --output")
    out.mkdir(parents=True, exist_ok=True)
    loader = DataLoader(ImageFiles(files, size), batch_size=args.batch_size if size else 1)
    written = 0
    for batch, paths in loader:
        padded, (h, w) = pad_to_multiple(batch, 4)
        result = translate(padded)[..., :h, :w].cpu()
        for image, path in zip(result, paths):
            to_image(image).save(out / (Path(path).stem + ".png"))
            written += 1
    print(f"wrote {written} image(s) to {out}")


def _cmd_info(args) -> None:
    from .train import read_checkpoint
    state = read_checkpoint(args.run)
    c = state["config"]
    print(f"run        {args.run}")
    print(f"model      {state['model_kind']}: {c['image_size']}px, ngf {c['ngf']}, {c['n_blocks']} blocks, "
          f"gan {c['gan_mode']}, λ_cycle {c['lambda_cycle']}, λ_id {c['lambda_identity']}, pool {c['pool_size']}")
    print(f"steps      {state['step']}" + (f" of {c['iters']}" if c.get("iters") else ""))
    if state["history"]:
        last = state["history"][-1]
        print("last       " + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k not in ("step", "seconds")))


def _cmd_toy(args) -> None:
    from . import domains
    if args.list:
        for task in domains.list_tasks():
            print(f"{task.name:16s} {task.kind:10s} {task.description}")
        return
    if not args.name or not args.out:
        raise ValueError("give a task NAME and --out DIR (or --list to see the tasks)")
    out = domains.generate(args.name, args.out, args.size, args.n, None, args.seed, args.paired, args.force)
    print(f"wrote {args.name} to {out}")


def _cmd_download(args) -> None:
    from . import download
    if args.what == "dataset":
        path = download.download_dataset(args.name, args.root or "./datasets", url_base=args.url_base,
                                         force=args.force, timeout=args.timeout)
    else:
        path = download.download_pretrained(args.name, args.root or "./checkpoints", url_base=args.url_base,
                                            force=args.force, timeout=args.timeout)
    print(f"saved to {path}")


def build_parser() -> argparse.ArgumentParser:
    from .config import GAN_MODES, PRECISIONS, PRESETS, UPSAMPLE_CHOICES
    parser = _Parser(prog="cyclegan-edu", description="CycleGAN (Zhu et al. 2017), small and faithful.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a CycleGAN (or pix2pix) on a folder in the official layout")
    t.add_argument("--data", required=True, help="dataset folder with trainA/ and trainB/ (pix2pix: train/)")
    t.add_argument("--out", required=True, help="run directory for checkpoint.pt, config.json, history.csv")
    t.add_argument("--model", choices=("cyclegan", "pix2pix"), default="cyclegan")
    t.add_argument("--preset", choices=sorted(PRESETS), help="default: $CYCLEGAN_EDU_PRESET, else gpu or cpu")
    t.add_argument("--size", type=int, help="crop size fed to the networks (load size follows as 286/256 of it)")
    t.add_argument("--ngf", type=int, help="filters in the first layer of G and D")
    t.add_argument("--n-blocks", type=int, help="residual blocks in the generator")
    t.add_argument("--batch-size", type=int)
    steps = t.add_mutually_exclusive_group()
    steps.add_argument("--iters", type=int, help="train this many steps (the second half decays the lr)")
    steps.add_argument("--epochs", type=int, help="train this many epochs (the second half decays the lr)")
    t.add_argument("--lambda-cycle", type=float, help="λ of Eq. 3 (paper: 10)")
    t.add_argument("--lambda-identity", type=float, help="identity weight relative to λ (paper: 0.5; 0 = off)")
    t.add_argument("--pool-size", type=int, help="image history size (paper: 50; 0 = off)")
    t.add_argument("--gan-mode", choices=GAN_MODES)
    t.add_argument("--upsample", choices=UPSAMPLE_CHOICES)
    t.add_argument("--precision", choices=PRECISIONS)
    t.add_argument("--seed", type=int)
    t.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    t.add_argument("--workers", type=int, help="DataLoader worker processes")
    t.add_argument("--checkpoint-every", type=int, help="also save a checkpoint every N steps")
    t.add_argument("--checkpoint-minutes", type=float, help="also save every M minutes (0 = off)")  # TEMP until generated
    t.add_argument("--skip-bad", action="store_true", default=None, help="skip unreadable images")  # TEMP until generated
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, with the run's own settings")
    t.add_argument("--force", action="store_true", help="start over in a non-empty --out")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train)

    r = sub.add_parser("translate", help="translate an image or a folder with a trained run or official weights")
    source = r.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run directory (or checkpoint.pt) from `train`")
    source.add_argument("--weights", help="a generator state_dict, e.g. an official latest_net_G.pth")
    r.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB", help="with --run: which generator")
    r.add_argument("--input", required=True, help="an image file or a folder of images")
    r.add_argument("--output", required=True, help="folder for the translated PNGs (same base names)")
    r.add_argument("--size", type=int, help="resize inputs to SIZE×SIZE (default: the run's size; "
                                            "with --weights, keep each image's size)")
    r.add_argument("--batch-size", type=int, default=16)
    r.add_argument("--device", default="auto")
    r.add_argument("--force", action="store_true", help="overwrite existing output files")
    r.set_defaults(func=_cmd_translate)

    i = sub.add_parser("info", help="show a run's config, steps done and last losses")
    i.add_argument("run", help="run directory or checkpoint.pt")
    i.set_defaults(func=_cmd_info)

    d = sub.add_parser("toy", help="list or make the offline domains (procedural and packaged)")
    d.add_argument("name", nargs="?", help="task name (see --list)")
    d.add_argument("--list", action="store_true", help="one task a line, name first")
    d.add_argument("--out", help="folder to write the official layout into")
    d.add_argument("--size", type=int, help="image size in pixels (default: the task's)")
    d.add_argument("--n", type=int, help="training images per domain (default: the task's)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--paired", action="store_true", help="write pix2pix's side-by-side train/ and test/ instead of trainA/, trainB/, ...")
    d.add_argument("--force", action="store_true", help="write into a non-empty --out")
    d.set_defaults(func=_cmd_toy)

    w = sub.add_parser("download", help="download an official dataset or pretrained generator (needs the network)")
    w.add_argument("what", choices=("dataset", "pretrained"))
    w.add_argument("name", help="e.g. horse2zebra")
    w.add_argument("--root", help="target folder (default ./datasets or ./checkpoints)")
    w.add_argument("--url-base", help="another server with the same files")
    w.add_argument("--force", action="store_true", help="replace an existing copy (once the new one is whole)")
    w.add_argument("--timeout", type=float, default=30, help="seconds to wait for the server (default 30)")
    w.set_defaults(func=_cmd_download)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except USER_ERRORS as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    return 0
