"""The course notebooks as documents: shape, checks that can fail, no outputs, short lines."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

from helpers.classroom.notebooks import notebook_paths
from helpers.core.settings import PROJECT_ROOT

NOTEBOOKS = notebook_paths()
ALL_NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
spec = importlib.util.spec_from_file_location(
    "reference", PROJECT_ROOT / "tests" / "notebooks" / "reference.py")
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)


def test_the_course_is_numbered_in_reading_order():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(len(NOTEBOOKS))]
    assert len(NOTEBOOKS) >= 8


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_carry_no_outputs(path):
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_teaches_recaps_and_links_on(path):
    cells = nbformat.read(path, as_version=4).cells
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert cells[0].source.startswith(f"# {path.name[:2]} · ")
    assert "**What you will learn**" in cells[0].source
    assert "## Summary" in text and "## Exercises" in text
    following = [p for p in NOTEBOOKS if p.name > path.name]
    if following:
        assert f"]({following[0].name})" in text, f"{path.name} does not link to {following[0].name}"


#: notebooks that start services of their own (10: a Kafka cluster it may kill)
OWN_SERVICES = {"10_fault_tolerance"}


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem not in OWN_SERVICES],
                         ids=lambda p: p.stem)
def test_the_first_code_cell_checks_the_services(path):
    first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert "require_services(settings" in first.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_lines_fit_a_projector(path):
    long = [line for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"
            for line in c.source.splitlines() if len(line) > 80]
    assert long == []


def test_every_checked_cell_has_expected_output_and_none_is_stale():
    expected = json.loads(reference.EXPECTED.read_text())
    for path in NOTEBOOKS:
        ids = {c.id for c in reference.checked_cells(nbformat.read(path, as_version=4))}
        assert ids, f"{path.name} checks no output"
        assert set(expected.get(path.name, {})) == ids, path.name
        assert all(expected[path.name][i] for i in ids), f"{path.name}: a checked cell expects nothing"
    assert set(expected) == {p.name for p in NOTEBOOKS}


def test_reference_copies_carry_the_expected_outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(reference, "REFERENCE", tmp_path)
    written = reference.build()
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    nb = nbformat.read(written[0], as_version=4)
    checked = reference.checked_cells(nb)
    assert checked and all(c.outputs and c.execution_count == 1 for c in checked)
    others = [c for c in nb.cells if c.cell_type == "code" and c not in checked]
    assert all(c.execution_count is None for c in others)       # not compared by nbval


def test_markdown_never_shows_raw_epoch_milliseconds():
    epoch = re.compile(r"\b1[0-9]{12}\b")
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                assert not epoch.search(cell.source), f"{path.name}: {epoch.search(cell.source).group()}"


def python_lines(source: str) -> str:
    """A cell's Python: without IPython's `%magic` and `!shell` lines (and their `\\` continuations)."""
    kept, shell = [], False
    for line in source.splitlines():
        if shell or line.lstrip().startswith(("%", "!")):
            shell = line.rstrip().endswith("\\")
            continue
        kept.append(line)
    return "\n".join(kept)


def test_notebooks_use_only_names_the_package_exports():
    import ast

    import helpers

    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code" or cell.source.startswith("%%"):    # a %%sql cell is SQL
                continue
            code = python_lines(cell.source)
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.ImportFrom) and node.module == "helpers":
                    missing = [a.name for a in node.names if a.name not in helpers.__all__]
                    assert missing == [], f"{path.name} imports {missing}"


def test_paths_in_this_file_exist():
    assert Path(reference.__file__).is_file() and reference.EXPECTED.is_file()
