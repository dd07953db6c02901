"""Download an official pretrained CycleGAN generator to ROOT/NAME_pretrained/latest_net_G.pth.

    python data_scripts/download_pretrained.py horse2zebra      # ./checkpoints/horse2zebra_pretrained/
    python data_scripts/download_pretrained.py --list

The file is loaded once with cyclegan_edu.pretrained.load_generator and deleted if that fails.
Options, errors and exit statuses are those of download_cyclegan_dataset.py.
"""
from __future__ import annotations

import sys

from download_cyclegan_dataset import run  # the sibling script (this folder is sys.path[0]); sets up sys.path

from cyclegan_edu.download import PRETRAINED, download_pretrained

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:], description=__doc__.splitlines()[0], catalogue=PRETRAINED,
                 default_root="./checkpoints", fetch=download_pretrained))
