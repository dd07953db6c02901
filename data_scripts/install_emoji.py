"""Install the Google and Twitter emoji images for the offline "emoji" domain (needs npm and a network once).

    python data_scripts/install_emoji.py            # into $CYCLEGAN_EDU_EMOJI, else ~/.cache/cyclegan_edu/npm
    python data_scripts/install_emoji.py --prefix DIR

Runs `npm install --prefix DIR emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0`
(about 150 MB on disk) unless the images are already there. The package looks for them in
$CYCLEGAN_EDU_EMOJI or the default folder, so set that variable when you choose another --prefix.
A failure is one `error: ...` line and exit status 1.
"""
from __future__ import annotations

import argparse
import subprocess
import sys

from cyclegan_edu.domains.real import default_emoji_prefix, emoji_sources, install_emoji


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", help=f"npm prefix to install into (default {default_emoji_prefix()})")
    args = parser.parse_args(argv)
    try:
        prefix = install_emoji(args.prefix)
        if args.prefix is None:
            google, twitter, names = emoji_sources(install=False)
            print(f"emoji images ready: {len(names)} emoji in {google} and {twitter}")
        else:
            print(f"emoji images ready in {prefix} (set CYCLEGAN_EDU_EMOJI={prefix} to use them)")
    except (OSError, ValueError, subprocess.TimeoutExpired) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
