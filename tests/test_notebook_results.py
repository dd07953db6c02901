"""The committed chapters show the committed results: a chapter executed before a run was added or
recomputed still prints the old description of its experiment, and this test names the chapter to
execute again (book/setup.md, "For authors")."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cyclegan_edu import experiments

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
DESCRIBED = re.compile(r"^(?P<name>[\w-]+): \d+ runs at the (?P<scale>\w+) scale: .*$", re.M)


def _outputs(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_chapter_describes_the_committed_results_as_they_are(notebook):
    for match in DESCRIBED.finditer(_outputs(notebook)):
        if match["scale"] != experiments.COMMITTED_PRESET:
            continue
        current = experiments.load(match["name"]).describe()
        assert match.group(0) == current, (
            f"{notebook.name} was executed with other committed results of {match['name']}: it printed\n"
            f"  {match.group(0)}\nnow\n  {current}\nexecute it again: CYCLEGAN_EDU_PRESET=cpu "
            f".venv/bin/jupyter execute --inplace notebooks/{notebook.name}")


def test_the_check_reads_descriptions_from_outputs(tmp_path):
    cell = {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stdout",
                                              "text": ["ch0-shapes: 3 runs at the cpu scale: 64 px, x\n"]}]}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps({"cells": [cell]}))
    assert [m["name"] for m in DESCRIBED.finditer(_outputs(path))] == ["ch0-shapes"]
