"""The test suite cleans up after itself: a full run writes about 1 GB of domains and runs to a temporary
folder, and a CI run once failed with "No space left on device" after earlier runs had left theirs behind."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def test_the_suites_temporary_folder_is_removed_when_pytest_exits(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in ("CYCLEGAN_EDU_DATA", "CYCLEGAN_EDU_RUNS", "PYTEST_ADDOPTS")}
    env["TMPDIR"] = str(tmp_path)
    probe = TESTS / "test_networks.py::test_receptive_field_refuses_generators"
    finished = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
                              cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    assert "1 passed" in finished.stdout
    assert not list(tmp_path.glob("cyclegan_edu_tests_*")), "the suite left its temporary folder behind"
