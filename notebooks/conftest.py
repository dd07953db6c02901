"""nbval runs the chapters in the tiny ``ci`` preset unless ``CYCLEGAN_EDU_PRESET`` says otherwise, and the
problem sets (``problems/``) with the instructor's answers from ``solutions/`` swapped in for the stubs
(:func:`cyclegan_edu.grader.solution_or`) unless ``CYCLEGAN_EDU_SOLUTIONS`` says otherwise.

``tests/conftest.py`` sets the preset too (and moves the caches to a temporary folder) when the whole
suite runs; this file covers ``pytest notebooks/`` on its own.
"""
import os
from pathlib import Path

os.environ.setdefault("CYCLEGAN_EDU_PRESET", "ci")
os.environ.setdefault("CYCLEGAN_EDU_SOLUTIONS", str(Path(__file__).resolve().parents[1] / "solutions"))
