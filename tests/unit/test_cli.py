"""The `workbook` command's error mapping and the notebook runner's failure summary (no services)."""
from __future__ import annotations

import nbformat
import pytest

from helpers import cli
from helpers.classroom import notebooks
from helpers.classroom.notebooks import notebook_paths
from helpers.core.errors import InputError, WorkbookError


def test_a_workbook_error_is_one_line_and_exit_2(monkeypatch, capsys):
    def fails(args, settings):
        raise InputError("speed must be a positive number (or None for as fast as possible), got -1.")

    monkeypatch.setattr(cli, "cmd_down", fails)
    assert cli.main(["down"]) == 2
    err = capsys.readouterr().err
    assert err == ("workbook down: speed must be a positive number (or None for as fast as possible), "
                   "got -1.\n")


def test_a_brokers_refusal_is_one_line_not_a_traceback(monkeypatch, capsys):
    from confluent_kafka import KafkaError, KafkaException

    def refused(args, wb):
        raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "Not authorized: alice.x"))

    monkeypatch.setattr(cli, "cmd_down", refused)
    assert cli.main(["down"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("workbook down: Kafka refused the request "
                                                   "(TOPIC_AUTHORIZATION_FAILED: Not authorized: alice.x)")


def test_an_interrupt_is_exit_130(monkeypatch, capsys):
    def interrupted(args, settings):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_down", interrupted)
    assert cli.main(["down"]) == 130
    assert capsys.readouterr().err == "workbook down: interrupted.\n"


def test_a_bug_is_not_hidden(monkeypatch):
    def broken(args, settings):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "cmd_down", broken)
    with pytest.raises(ZeroDivisionError):       # not one of ours: the traceback is what helps
        cli.main(["down"])


def test_errors_render_as_one_sentence_in_a_notebook():
    shown = WorkbookError("Kafka does not answer at 127.0.0.1:9092: start it.")._render_traceback_()
    assert len(shown) == 1 and shown[0].endswith("WorkbookError\x1b[0m: Kafka does not answer at "
                                                 "127.0.0.1:9092: start it.")


def notebook(tmp_path, name, source):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbformat.write(nb, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("source, result", [
    ("import time; time.sleep(30)", "a cell ran out of time"),
    ("import os; os._exit(1)", "the kernel died"),
    ("1 / 0", "ZeroDivisionError: division by zero"),
])
def test_a_failing_notebook_still_gives_a_copy_and_a_summary_row(tmp_path, monkeypatch, source, result):
    monkeypatch.setattr(notebooks, "NOTEBOOKS", tmp_path)
    notebook(tmp_path, "00_a.ipynb", source)
    notebook(tmp_path, "01_b.ipynb", "print('never run')")
    rows = notebooks.run_notebooks(tmp_path / "out", timeout=3)
    assert [r["notebook"] for r in rows] == ["00_a.ipynb"]                 # stops at the first failure
    assert rows[0]["result"] == result
    assert (tmp_path / "out" / "00_a.ipynb").is_file()


def test_committed_notebooks_carry_no_outputs():
    for path in notebook_paths():
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"


def test_copies_of_renamed_notebooks_leave_build(tmp_path):
    kept = notebook_paths()[0].name
    for name in (kept, "07_dashboard.ipynb", "99_gone.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert notebooks.remove_stale_copies(tmp_path) == ["07_dashboard.ipynb", "99_gone.ipynb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([kept, "notes.ipynb"])
