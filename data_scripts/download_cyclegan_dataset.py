"""Download an official CycleGAN dataset into ROOT/NAME (trainA/, trainB/, testA/, testB/).

    python data_scripts/download_cyclegan_dataset.py horse2zebra            # into ./datasets/horse2zebra
    python data_scripts/download_cyclegan_dataset.py --list

Run the same command again to resume an interrupted download. A failure is one line on stderr:
exit status 2 for a request to change (a malformed command line, an unknown name, a bad --timeout
or --url-base, an existing folder without --force), 1 for a network, server or archive problem
(as ``cyclegan-edu download``). ``run`` is shared with download_pretrained.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # a plain clone works without `pip install -e .`

from cyclegan_edu.download import DATASETS, DownloadRequestError, download_dataset  # noqa: E402


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line instead of the usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def run(argv: list[str] | None, *, description: str, catalogue: dict[str, str], default_root: str,
        fetch: Callable[..., Path]) -> int:
    """Parse ``NAME [--root DIR] [--url-base URL] [--force] [--timeout S] [--list]``, call
    ``fetch(name, root, url_base=..., force=..., timeout=...)`` and turn its errors into an exit status."""
    parser = OneLineParser(description=description)
    parser.add_argument("name", nargs="?", help="what to download; see --list")
    parser.add_argument("--root", default=default_root, help=f"folder to download into (default {default_root})")
    parser.add_argument("--url-base", help="another server with the same files (default: the official one)")
    parser.add_argument("--force", action="store_true", help="replace an existing copy (once the new one is whole)")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for the server (default 30)")
    parser.add_argument("--list", action="store_true", help="list the names and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, text in catalogue.items():
            print(f"{name:24} {text}")
        return 0
    if args.name is None:
        parser.error("give a NAME to download (--list shows them)")
    try:
        path = fetch(args.name, args.root, url_base=args.url_base, force=args.force, timeout=args.timeout)
    except OSError as err:  # DownloadError, and a full disk or a folder without write permission
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2 if isinstance(err, DownloadRequestError) else 1
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(f"saved to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:], description=__doc__.splitlines()[0], catalogue=DATASETS,
                 default_root="./datasets", fetch=download_dataset))
