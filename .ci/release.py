"""Make release VERSION: set the package version and pin every notebook's Colab install cell to it.

    python .ci/release.py 0.2.0        # then commit, `git tag v0.2.0` and push the tag

The version has one source, ``__version__`` in cyclegan_edu/__init__.py (pyproject.toml reads it from
there). The first code cell of every notebook installs the package on Colab from GitHub at the tag
``vVERSION``, so a chapter opened in Colab gets a fixed, released package rather than whatever the
main branch holds that day. This script writes that cell, the same in every notebook, from
:func:`install_cell`; tests/test_colab.py checks that the committed notebooks agree with it.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPOSITORY = "https://github.com/cyclegan-edu/cyclegan-edu"
VERSION_LINE = re.compile(r'^__version__ = "[^"]*"$', re.MULTILINE)
VERSION_FORMAT = re.compile(r"\d+\.\d+\.\d+((a|b|rc)\d+)?")   # PEP 440 release or pre-release, e.g. 0.2.0rc1
NOTEBOOK_GLOBS = ("notebooks/*.ipynb", "notebooks/problems/*.ipynb")   # the chapters, then the problem sets


def install_cell(version: str) -> str:
    """The source of every notebook's first code cell for release ``version``."""
    return f'''# On Colab: install the book's package, release {version}, from GitHub (Colab's own PyTorch is kept).
# Elsewhere: nothing to do. `python .ci/release.py VERSION` updates the tag below.
import subprocess
import sys

if "google.colab" in sys.modules:
    PACKAGE = "git+{REPOSITORY}@v{version}"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", PACKAGE],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if pip.returncode != 0:
        print(pip.stdout)                  # pip's own messages say what went wrong
        raise RuntimeError(f"pip could not install {{PACKAGE}} (see its output above); check the runtime's "
                           "internet connection and run this cell again before the others")
    print(f"installed {{PACKAGE}}")'''


def notebooks(root: Path) -> list[Path]:
    """Every notebook of the book under ``root``: the chapters, then the problem sets."""
    return [path for pattern in NOTEBOOK_GLOBS for path in sorted(root.glob(pattern))]


def release(root: Path, version: str) -> list[Path]:
    """Set ``version`` in ``root/cyclegan_edu/__init__.py`` and rewrite the first code cell of every
    notebook (:func:`notebooks`) as :func:`install_cell`; returns the files written.

    Every file is checked before any is written: a notebook whose first code cell is not the Colab
    install cell (no ``google.colab`` in it) stops the release, so no other cell is ever replaced.
    """
    changes = {}
    init = root / "cyclegan_edu" / "__init__.py"
    text, count = VERSION_LINE.subn(f'__version__ = "{version}"', init.read_text(encoding="utf-8"))
    if count != 1:
        raise ValueError(f'{init} must hold exactly one line __version__ = "..."; found {count}')
    changes[init] = text
    paths = notebooks(root)
    if not paths:
        raise ValueError(f"no notebooks in {root / 'notebooks'}; pass the repository root as --root")
    source = install_cell(version).splitlines(keepends=True)
    for path in paths:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cell = next((c for c in notebook["cells"] if c["cell_type"] == "code"), None)
        if cell is None or "google.colab" not in "".join(cell["source"]):
            raise ValueError(f"{path}: its first code cell is not the Colab install cell; put that cell first")
        cell["source"] = source
        changes[path] = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    for path, text in changes.items():
        path.write_text(text, encoding="utf-8")
    return list(changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", help="the new version, e.g. 0.2.0 (the git tag will be v0.2.0)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="repository root (default: the one this script is in)")
    args = parser.parse_args(argv)
    if not VERSION_FORMAT.fullmatch(args.version):
        print(f"error: version {args.version!r} is not like 0.2.0 or 0.2.0rc1 (no leading v)", file=sys.stderr)
        return 2
    try:
        written = release(args.root, args.version)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"version {args.version} written to {len(written)} files (the package and every notebook's install cell). "
          f"Now commit, then: git tag v{args.version} && git push origin v{args.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
