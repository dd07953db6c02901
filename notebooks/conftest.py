"""nbval runs the chapters in the tiny ``ci`` preset unless ``CYCLEGAN_EDU_PRESET`` says otherwise.

``tests/conftest.py`` does the same (and moves the caches to a temporary folder) when the whole suite
runs; this file covers ``pytest notebooks/`` on its own.
"""
import os

os.environ.setdefault("CYCLEGAN_EDU_PRESET", "ci")
