"""``python -m cyclegan_edu``: see :mod:`cyclegan_edu.cli`."""
import sys

from .cli import main

sys.exit(main())
