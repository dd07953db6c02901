"""The command line: ``python -m cyclegan_edu`` or ``cyclegan-edu``.

    cyclegan-edu toy --list                                  # the offline domains
    cyclegan-edu toy shapes --out data/shapes                # make one in the official layout
    cyclegan-edu train --data data/shapes --out runs/shapes --preset ci
    cyclegan-edu train --help                                # every Config field is an option
    torchrun --nproc_per_node=2 -m cyclegan_edu train ...    # on 2 processes (cyclegan_edu.distributed)
    cyclegan-edu translate --run runs/shapes --direction AtoB --input data/shapes/testA --output out/
    cyclegan-edu info runs/shapes
    cyclegan-edu download dataset horse2zebra                # needs the network
    cyclegan-edu download pretrained horse2zebra
    cyclegan-edu results list                                # the book's experiments and their committed results
    cyclegan-edu results reproduce ch3-lambda                # retrain one run, compare with the committed numbers

Every error is one line on stderr. Exit code 2 means the command cannot work as given and has to
be changed: a malformed command line, a missing or unreadable file, an existing output without
--force, and for ``download`` an unknown name, a --timeout that is not a positive number, a bad
--url-base, an existing copy without --force or cityscapes (manual download only). Exit code 1 is a
failure outside the command, which may pass when run again: for ``download`` an HTTP error, a
time-out, no network, a transfer that broke off (it resumes) or a corrupt file from the server; and
any command's system errors, such as a full disk.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
import typing
import warnings
from pathlib import Path

if typing.TYPE_CHECKING:
    from .config import Config

# what `main` reports as a user's error (one line, exit code 2); other OSErrors exit with 1
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _load_size(size: int) -> int:
    """The official 286/256 ratio between resize and crop, rounded to an even number."""
    return 2 * round(size * 286 / 256 / 2)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One ``--field-name`` option per :class:`~cyclegan_edu.config.Config` field, made from the
    field's type, help text and choices, and the shorthands ``--size`` and ``--epochs``. Every
    default is SUPPRESS: an option not given stays out of ``args`` and changes nothing."""
    from .config import Config
    group = parser.add_argument_group("settings", "each option given overrides the preset's value "
                                                  "(cyclegan_edu.config.Config); a field's own option wins "
                                                  "over a shorthand's")
    group.add_argument("--size", type=int, metavar="N",
                       help="shorthand: --image-size N and --load-size 286/256 of N, the official ratio")
    steps = group.add_mutually_exclusive_group()
    steps.add_argument("--epochs", type=int, metavar="N",
                       help="shorthand: --n-epochs (N+1)//2 --n-epochs-decay N//2, counted in epochs, not --iters")
    also = {"iters": "; without --iters-decay, --iters-decay ITERS//2"}
    aliases = {"num_workers": ["--workers"]}
    types = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        flags = ["--" + f.name.replace("_", "-"), *aliases.get(f.name, [])]
        options = dict(dest=f.name, default=argparse.SUPPRESS, help=f.metadata["help"] + also.get(f.name, ""))
        container = steps if f.name == "iters" else group
        if types[f.name] is bool:
            container.add_argument(*flags, action=argparse.BooleanOptionalAction, **options)
        else:
            value_type = [t for t in typing.get_args(types[f.name]) if t is not type(None)] or [types[f.name]]
            container.add_argument(*flags, type=value_type[0], choices=f.metadata["choices"], **options)


def train_config(args: argparse.Namespace) -> Config:
    """The Config a ``train`` command runs with: the preset for ``--model`` (with ``--resume`` and a
    checkpoint in ``--out``: the run's own settings), changed by the options given."""
    from .config import Config, get_preset
    from .train import CHECKPOINT, read_checkpoint
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
    changes = {}
    if args.size is not None:
        changes.update(image_size=args.size, load_size=_load_size(args.size))
    if "iters" in given:
        changes.update(iters_decay=given["iters"] // 2)
    if args.epochs is not None:
        changes.update(iters=None, n_epochs=(args.epochs + 1) // 2, n_epochs_decay=args.epochs // 2)
    changes.update(given)
    checkpoint = Path(args.out) / CHECKPOINT
    if args.resume and checkpoint.exists():
        # continue with the run's own settings; options given here must agree with them (Trainer checks)
        return Config.from_dict(read_checkpoint(checkpoint)["config"], args.model).replace(**changes)
    return get_preset(args.preset, model=args.model, **changes)


def _fail(message: str, code: int):
    """Exit with one line on stderr, as `main` reports errors."""
    print(f"cyclegan-edu: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _stopped(stop: KeyboardInterrupt, what: str):
    """Exit after Ctrl-C, SIGTERM or SIGHUP with the shell's code for that signal, 128 + its number
    (a :class:`~cyclegan_edu.train.Stopped` carries the signal; a bare KeyboardInterrupt is Ctrl-C)."""
    signum = getattr(stop, "signum", signal.SIGINT)
    print(f"\n{signal.Signals(signum).name} {what}", file=sys.stderr)
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _warnings_as_notes():
    """Show warnings (data moved since the run started, a skipped image) as one ``note:`` line each."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"cyclegan-edu: note: {message}", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _cmd_train(args) -> None:
    """Train, on the processes torchrun started if it did (``torchrun ... -m cyclegan_edu train``)."""
    from . import distributed
    config = train_config(args)
    with distributed.process_group(config.device):
        _train(args, config, distributed.is_main())


def _train(args, config: "Config", main: bool) -> None:
    """The ``train`` command in one process; ``main``: it prints (the only process, or rank 0)."""
    from . import distributed
    from .train import CheckpointWriteError, Trainer, TrainingDiverged
    with _warnings_as_notes():
        trainer = Trainer(config, args.data, out=args.out, model=args.model, resume=args.resume,
                          force=args.force, progress=not args.no_progress)
        if main:
            print(f"training {args.model} on {args.data} with preset {args.preset or 'default'}: "
                  f"{config.image_size}px, ngf {config.ngf}, {config.n_blocks} blocks, batch {config.batch_size}, "
                  f"steps {trainer.step} → {trainer.total_steps} on {trainer.device}")
            if trainer.world_size > 1:
                print(distributed.describe(config.batch_size, config.lr))
        try:
            trainer.fit(minutes=args.minutes)
        except KeyboardInterrupt as stop:
            _stopped(stop, f"at step {trainer.step}: stopped; {_saved(trainer)}")
        except TrainingDiverged as err:
            _fail(str(err), 1)
        except CheckpointWriteError:
            raise
        except (*USER_ERRORS, OSError) as err:         # e.g. an unreadable image, maybe after some steps
            saved = "" if trainer.checkpoint_step is None else f"; {_saved(trainer)}"
            _fail(f"{_one_line(err)}{saved}", 2 if isinstance(err, USER_ERRORS) else 1)
    last = trainer.history[-1] if trainer.history else {}
    if main and trainer.step < trainer.total_steps:
        print(f"--minutes {args.minutes:g} used up at step {trainer.step} of {trainer.total_steps}; "
              f"{_saved(trainer)}")
    elif main:
        print(f"done: {trainer.step} steps; run directory {args.out}; last losses "
              + ", ".join(f"{k} {v:.3f}" for k, v in last.items() if k not in ("step", "epoch", "lr", "seconds")))


def _positive_minutes(text: str) -> float:
    """``--minutes``: a positive number."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of minutes, e.g. --minutes 50")
    return value


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
    from .inference import open_translator, translate_paths
    translator = open_translator(args.run, args.weights, args.direction, args.device, args.eval_mode)
    written = translate_paths(translator, args.input, args.output, args.size, args.batch_size, args.force,
                              args.keep_size, args.tile, progress=False if args.no_progress else None)
    print(f"wrote {len(written)} image(s) to {args.output}")


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


def _cmd_results(args) -> None:
    from . import experiments
    if args.action == "list":
        for experiment in experiments.EXPERIMENTS.values():
            print(experiments.describe(experiment))
        return
    if args.precision and args.action != "reproduce":
        raise ValueError("--precision is an option of results reproduce only")
    if not args.name:
        raise ValueError(f"results {args.action} needs an experiment NAME (see: cyclegan-edu results list)")
    if args.action == "run":
        try:
            experiments.run(args.name, args.preset, args.variant, args.seed, progress=not args.no_progress,
                            force=args.force)
        except KeyboardInterrupt as stop:
            _stopped(stop, "stopped the run; its checkpoint is saved: the same command continues it")
        return
    ok, report = experiments.reproduce(args.name, args.variant, args.seed, progress=not args.no_progress,
                                       precision=args.precision)
    print(report)
    if not ok:
        raise SystemExit(1)


def build_parser() -> argparse.ArgumentParser:
    from .config import DIRECTIONS, MODELS, PRESETS, TRANSLATE_TILE
    parser = _Parser(prog="cyclegan-edu", description="CycleGAN (Zhu et al. 2017), small and faithful.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a CycleGAN (or pix2pix) on a folder in the official layout",
                       description="Started by torchrun (torchrun --nproc_per_node=N -m cyclegan_edu train ...), "
                                   "it trains on N processes with DistributedDataParallel; --batch-size is then "
                                   "per process (cyclegan_edu.distributed).")
    t.add_argument("--data", required=True, help="dataset folder with trainA/ and trainB/ (pix2pix: train/)")
    t.add_argument("--out", required=True, help="run directory for checkpoint.pt, config.json, history.csv")
    t.add_argument("--model", choices=MODELS, default="cyclegan",
                   help="pix2pix and distancegan (one-sided, Benaim & Wolf 2017) start from their own settings "
                        "(config.PIX2PIX_DEFAULTS, config.DISTANCEGAN_DEFAULTS)")
    t.add_argument("--preset", choices=sorted(PRESETS), help="default: $CYCLEGAN_EDU_PRESET, else gpu or cpu")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint, with the run's own settings")
    t.add_argument("--force", action="store_true", help="start over in a non-empty --out")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--minutes", type=_positive_minutes, metavar="M",
                   help="train for at most M minutes, then save a checkpoint (a session-sized budget: "
                        "the next session continues with --resume)")
    _add_config_options(t)
    t.set_defaults(func=_cmd_train)

    r = sub.add_parser("translate", help="translate an image or a folder with a trained run or official weights")
    source = r.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run directory (or checkpoint.pt) from `train`")
    source.add_argument("--weights", help="a generator state_dict, e.g. an official latest_net_G.pth")
    r.add_argument("--direction", choices=DIRECTIONS,
                   help="with --run: translate images of the dataset's A into B, or B into A "
                        "(default: the direction the run was trained for, AtoB unless it was trained BtoA)")
    r.add_argument("--input", required=True, help="an image file or a folder of images")
    r.add_argument("--output", required=True, help="folder for the translated PNGs, named as their inputs "
                   "(x.jpg → x.png; inputs that share a base name keep their whole name: x.jpg.png, x.png.png)")
    sizes = r.add_mutually_exclusive_group()
    sizes.add_argument("--size", type=int, help="resize inputs to SIZE×SIZE (default: the run's size; "
                                                "with --weights, keep each image's size)")
    sizes.add_argument("--keep-size", action="store_true",
                       help="translate each image at its own size, at full resolution (padded to the multiple "
                            "the generator needs, cropped back)")
    r.add_argument("--tile", type=int, default=TRANSLATE_TILE,
                   help=f"translate images with a side over TILE px in overlapping TILE×TILE tiles, blended "
                        f"(default {TRANSLATE_TILE}; instance norm then normalises each tile by itself)")
    r.add_argument("--batch-size", type=int, default=16, help="images (or tiles) translated at once (default 16)")
    r.add_argument("--device", default="auto")
    r.add_argument("--force", action="store_true", help="overwrite existing output files (never an input)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--eval-mode", action="store_true",
                   help="run the generator in eval mode (the official --eval: no dropout, batch norm's running "
                        "statistics, deterministic); default: as the official test.py, dropout on and each image "
                        "normalised with its own statistics (pix2pix §3.3; CycleGAN's generators are the same either way)")
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

    e = sub.add_parser("results", help="the book's experiments: list, run, or reproduce their committed results")
    e.add_argument("action", choices=("list", "run", "reproduce"))
    e.add_argument("name", nargs="?", help="experiment name (see: results list)")
    e.add_argument("--variant", help="one variant (default: all for run, the first for reproduce)")
    e.add_argument("--seed", type=int, help="one seed (default: all for run, the first for reproduce)")
    e.add_argument("--preset", choices=sorted(PRESETS),
                   help="run: the scale (default: $CYCLEGAN_EDU_PRESET, else gpu or cpu; cpu writes the committed results)")
    e.add_argument("--force", action="store_true", help="run: recompute runs that are stored already")
    e.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                   help="reproduce: retrain at this precision instead of the committed run's (compared then "
                        "against the spread over seeds)")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.set_defaults(func=_cmd_results)
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
