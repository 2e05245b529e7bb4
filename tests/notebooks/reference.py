"""Expected outputs for nbval, kept apart from the notebooks (which are committed without outputs).

nbval compares a cell marked `# NBVAL_CHECK_OUTPUT` with the outputs stored in
the notebook it runs. The course's notebooks carry none, so:

    python tests/notebooks/reference.py record   # executed copies in build/ -> expected.json
    python tests/notebooks/reference.py build    # notebooks + expected.json -> build/nbval/

`record` is run by hand after `make run`, and its diff of expected.json is
reviewed like code; `build` runs before every nbval run (`make test-notebooks`).

The copies nbval runs are the **solved** notebooks (`helpers.classroom.solutions`): every
cell of the students' notebooks, and after each exercise's check its solution
and the same check again, asserted to fail on the untouched exercise and to
pass on the solution. One nbval run thus checks the lessons' outputs, the
students' starter cells, and every solution.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat

from helpers.classroom.notebooks import notebook_paths, remove_stale_copies
from helpers.classroom.solutions import solved_notebook
from helpers.core.settings import PROJECT_ROOT

EXPECTED = Path(__file__).with_name("expected.json")
EXECUTED = PROJECT_ROOT / "build"
REFERENCE = PROJECT_ROOT / "build" / "nbval"
MARK = "# NBVAL_CHECK_OUTPUT"
KEPT_DATA = ("text/plain", "text/html")   # images and widget views are never compared


def checked_cells(nb) -> list:
    """The code cells whose output nbval compares."""
    return [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith(MARK)]


def comparable(outputs: list) -> list:
    """Outputs reduced to what is compared: streams, plain-text results, errors."""
    kept = []
    for out in outputs:
        if out["output_type"] == "stream":
            kept.append({"output_type": "stream", "name": out["name"], "text": out["text"]})
        elif out["output_type"] in ("execute_result", "display_data"):
            data = {k: v for k, v in out["data"].items() if k in KEPT_DATA}
            if data:
                kept.append({"output_type": out["output_type"], "data": data, "metadata": {},
                             **({"execution_count": 1} if out["output_type"] == "execute_result" else {})})
    return kept


def record() -> dict:
    """Expected outputs of every checked cell, from the executed copies in build/."""
    expected = {}
    for path in notebook_paths():
        executed = nbformat.read(EXECUTED / path.name, as_version=4)
        expected[path.name] = {c.id: comparable(c.outputs) for c in checked_cells(executed)}
    EXPECTED.write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    return expected


def build() -> list[Path]:
    """Solved copies of the notebooks in build/nbval/ whose checked cells hold their expected outputs."""
    expected = json.loads(EXPECTED.read_text())
    REFERENCE.mkdir(parents=True, exist_ok=True)
    remove_stale_copies(REFERENCE)
    written = []
    for path in notebook_paths():
        nb = solved_notebook(path)
        mine = expected.get(path.name, {})
        for cell in checked_cells(nb):
            if cell.id not in mine:
                raise SystemExit(f"{path.name}: checked cell {cell.id} has no expected output: "
                                 "run `make run`, then `python tests/notebooks/reference.py record`.")
            cell.outputs = [nbformat.from_dict(o) for o in mine[cell.id]]
            cell.execution_count = 1
        nbformat.write(nb, REFERENCE / path.name)
        written.append(REFERENCE / path.name)
    return written


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "build"
    if command == "record":
        cells = sum(len(v) for v in record().values())
        print(f"recorded the outputs of {cells} checked cells in {EXPECTED}")
    else:
        print(f"wrote {len(build())} reference notebooks to {REFERENCE}")
