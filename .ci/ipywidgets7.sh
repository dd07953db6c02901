#!/usr/bin/env bash
# Colab runs ipywidgets 7.7.1; CI tests the widgets with the ipywidgets 8 of requirements.txt. This runs the
# widget tests (dashboard, retrain panel, films, explorers) once more against 7.7.1, installed into a
# temporary folder that shadows the venv's copy; the venv is not changed. Needs PyPI. Last run: see
# book/setup.md ("Colab and ipywidgets 7").
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(mktemp -d)
trap 'rm -rf "$target"' EXIT
.venv/bin/pip install -q --target "$target" --no-deps "ipywidgets==7.7.1" "widgetsnbextension~=3.6.0" \
    "jupyterlab_widgets<3" ipython_genutils
PYTHONPATH="$target" .venv/bin/python -c "import ipywidgets; assert ipywidgets.__version__ == '7.7.1', ipywidgets.__version__"
PYTHONPATH="$target" .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_widgets.py -W ignore::DeprecationWarning
