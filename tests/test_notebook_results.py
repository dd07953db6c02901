"""The committed chapters show the committed results: a chapter executed before a run was added or
recomputed still prints the old description of its experiment, and this test names the chapter to
execute again (book/setup.md, "For authors")."""
from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from cyclegan_edu import experiments

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
# book/setup.md, "For authors"
EXECUTE = "CYCLEGAN_EDU_PRESET=cpu .venv/bin/jupyter execute --inplace --NbClientApp.skip_cells_with_tag="
DESCRIBED = re.compile(r"^(?P<name>[\w-]+): \d+ runs at the (?P<scale>\w+) scale: .*$", re.M)


def _outputs_of(cells: list[dict]) -> str:
    return "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))


def _outputs(path: Path) -> str:
    return _outputs_of(json.loads(path.read_text())["cells"])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_chapter_describes_the_committed_results_as_they_are(notebook):
    for match in DESCRIBED.finditer(_outputs(notebook)):
        if match["scale"] != experiments.COMMITTED_PRESET:
            continue
        current = experiments.load(match["name"]).describe()
        assert match.group(0) == current, (
            f"{notebook.name} was executed with other committed results of {match['name']}: it printed\n"
            f"  {match.group(0)}\nnow\n  {current}\nexecute it again: {EXECUTE} notebooks/{notebook.name}")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_of_a_committed_chapter_was_executed_in_order(notebook):
    """The site shows committed outputs: a cell skipped (a ``skip-execution`` tag without the option that
    runs it) or never run would leave a hole, and cells run out of order mean outputs from another state."""
    cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    counts = [c.get("execution_count") for c in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"{notebook.name}: execution counts {counts}; execute it top to bottom: {EXECUTE} notebooks/{notebook.name}")


# A measured number in prose: two or more decimals (0.198, 41.874, −0.0591), outside code blocks. It must
# equal, as a whole number, one that a cell prints: 0.03 is not found in a printed 0.031, and 0.05 is in 0.0500.
PROSE_NUMBER = re.compile(r"(?<![\w.])[−-]?\d+\.\d{2,}(?!\d)")
PRINTED_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?![\d.]?\d)")


def _numbers_not_printed(cells: list[dict]) -> list[str]:
    printed = {Decimal(n) for n in PRINTED_NUMBER.findall(_outputs_of(cells))}
    missing = []
    for cell in cells:
        if cell["cell_type"] == "markdown":
            text = re.sub(r"```.*?```", "", "".join(cell["source"]), flags=re.S)
            missing += [n for n in PROSE_NUMBER.findall(text) if Decimal(n.lstrip("−-")) not in printed]
    return missing


@pytest.mark.parametrize("notebook", NOTEBOOKS + sorted((NOTEBOOKS[0].parent / "problems").glob("*.ipynb")),
                         ids=lambda p: p.stem)
def test_every_number_in_a_chapters_prose_is_printed_by_one_of_its_cells(notebook):
    """The book's promise: no number in prose, a caption or a solution that a cell of the same chapter
    does not print. Checked for measured numbers (two or more decimals) against the committed outputs."""
    missing = _numbers_not_printed(json.loads(notebook.read_text())["cells"])
    assert not missing, (f"{notebook.name}: its prose quotes {missing}, which none of its cells prints; quote the "
                         f"printed number, or print it, and execute again: {EXECUTE} notebooks/{notebook.name}")


def test_the_number_check_finds_a_number_no_cell_prints():
    cells = [{"cell_type": "markdown", "source": ["KID 0.198 ± 0.203, FID −41.87; in code: ```x = 0.123```"]},
             {"cell_type": "code", "outputs": [{"output_type": "stream", "text": ["KID 0.198 ± 0.203, FID -41.87\n"]}]}]
    assert _numbers_not_printed(cells) == []
    cells[0]["source"] = ["KID 0.199 ± 0.203"]
    assert _numbers_not_printed(cells) == ["0.199"]
    cells[0]["source"] = ["noise of 0.03, an error of 0.05 and 1.87"]      # only parts of printed numbers
    cells[1]["outputs"][0]["text"] = ["noise 0.031, error 0.0500, 41.87\n"]
    assert _numbers_not_printed(cells) == ["0.03", "1.87"]


def test_the_check_reads_descriptions_from_outputs(tmp_path):
    cell = {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stdout",
                                              "text": ["ch0-shapes: 3 runs at the cpu scale: 64 px, x\n"]}]}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps({"cells": [cell]}))
    assert [m["name"] for m in DESCRIBED.finditer(_outputs(path))] == ["ch0-shapes"]


def test_the_command_named_in_failures_is_the_one_the_authors_guide_gives():
    setup = (Path(__file__).parent.parent / "book" / "setup.md").read_text()
    assert f"{EXECUTE} notebooks/*.ipynb" in setup
