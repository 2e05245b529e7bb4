"""The classroom layer without services: exercises and their checks, solutions, solved copies, reset.

That every check fails on its untouched exercise and passes on its solution is
proven by nbval, which runs the solved copies (`make test-notebooks`): each
exercise's check is asserted to fail right after the starter, and to pass right
after the solution. These tests check the shape that makes that proof hold.
"""
from __future__ import annotations

import ast
import re

import nbformat
import pandas as pd
import pytest

import helpers
from helpers.classroom import exercises, solutions
from helpers.classroom.course import check_stage, is_course_group, is_course_topic
from helpers.classroom.exercises import common
from helpers.classroom.exercises import ex09_next_steps as ex09
from helpers.classroom.notebooks import notebook_paths
from helpers.core.errors import InputError
from helpers.core.validation import REASONS
from helpers.infra.environment import load_settings

NOTEBOOKS = notebook_paths()
KINDS = ("Write code", "Write SQL", "Predict, then run", "Predict, then check", "Failure lab",
         "Explore, then check")


def exercise_cells(path):
    """(number, exercise cell, check cell, the markdown cell before it) of each exercise of a notebook."""
    cells = nbformat.read(path, as_version=4).cells
    found = []
    for i, cell in enumerate(cells):
        number = solutions.exercise_number(cell.get("id", ""))
        if number:
            found.append((number, cell, cells[i + 1], cells[i - 1]))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS[1:], ids=lambda p: p.stem)
def test_every_notebook_from_01_has_at_least_two_checked_exercises(path):
    found = exercise_cells(path)
    assert len(found) >= 2, f"{path.name} has {len(found)} exercises"
    numbers = [n for n, *_ in found]
    assert numbers == [f"{path.name[:2]}.{k}" for k in range(1, len(found) + 1)]
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    exercises_part = text[text.index("## Exercises"):]
    for number in numbers:
        heading = re.search(rf"^### {re.escape(number)} · (.+?): ", exercises_part, re.MULTILINE)
        assert heading and heading.group(1) in KINDS, f"{path.name}: no '### {number} · <kind>: …' heading"


@pytest.mark.parametrize("path", NOTEBOOKS[1:], ids=lambda p: p.stem)
def test_each_exercise_is_an_edit_cell_then_a_check_from_helpers(path):
    for number, exercise, check, _ in exercise_cells(path):
        assert solutions.marks_exercise(exercise.source, number), f"{number}: no marker line"
        assert check.id == f"check-{number.replace('.', '-')}"
        last = ast.parse(check.source).body[-1]
        assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
        name = last.value.func.id
        assert name.startswith("check_") and name in helpers.__all__
        assert getattr(exercises, name).__doc__.startswith(f"{number}:"), f"{name} is not {number}'s check"
        assert "NBVAL" not in check.source and "NBVAL" not in exercise.source


def test_every_exercise_has_one_solution_and_every_solution_an_exercise():
    total = 0
    for path in NOTEBOOKS:
        numbers = [n for n, *_ in exercise_cells(path)]
        file = solutions.solutions_file(path)
        blocks = solutions.read_solutions(file) if file.is_file() else {}
        assert sorted(blocks) == numbers, path.name
        for number, code in blocks.items():
            ast.parse(code)
            long = [line for line in code.splitlines() if len(line) > 80]
            assert long == [], f"solution {number}: {long}"
        total += len(blocks)
    assert total >= 2 * (len(NOTEBOOKS) - 1)


def test_students_notebooks_never_contain_a_solution():
    for path in NOTEBOOKS:
        file = solutions.solutions_file(path)
        if not file.is_file():
            continue
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert "# SOLUTION" not in code
        for number, block in solutions.read_solutions(file).items():
            distinctive = [line.strip() for line in block.splitlines()
                           if line.strip() and line.strip() not in code and not line.strip().startswith("#")]
            assert distinctive, f"solution {number} adds nothing to the student's cell"


def test_a_solved_copy_asserts_the_check_fails_on_the_starter_then_passes_on_the_solution():
    path = next(p for p in NOTEBOOKS if p.name.startswith("04"))
    student = nbformat.read(path, as_version=4)
    solved = solutions.solved_notebook(path)
    assert len(solved.cells) == len(student.cells) + 3 * len(exercise_cells(path))
    ids = [c.id for c in solved.cells]
    for number, exercise, check, _ in exercise_cells(path):
        at = ids.index(check.id)
        assert ids[at - 1] == exercise.id and solved.cells[at - 1].source == exercise.source
        assert "assert not result.passed" in solved.cells[at].source
        assert solved.cells[at + 2].source.startswith(f"# SOLUTION {number}\n")
        assert "assert result.passed" in solved.cells[at + 3].source
        for cell in (solved.cells[at], solved.cells[at + 3]):
            assert cell.source.splitlines()[-1] == "result"
    nbformat.validate(solved)


def test_asserted_keeps_the_lines_before_the_call():
    source = "rows = bars.head()\ncheck_send_bars(send_bars,\n                rows, settings)"
    out = solutions.asserted(source, must_pass=True).splitlines()
    assert out[0] == "rows = bars.head()" and out[1] == "result = check_send_bars(send_bars,"
    assert out[-2].startswith("assert result.passed") and out[-1] == "result"
    compile("\n".join(out), "cell", "exec")
    with pytest.raises(InputError, match="must end with the check's call"):
        solutions.asserted("x = check_it()", must_pass=True)


def notebook(*cells):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src, id=cid) for cid, src in cells])


@pytest.mark.parametrize("cells, blocks, message", [
    ([("exercise-01-1", "# EXERCISE 01.1 — edit this cell\nX = ..."), ("other", "check_x(X)")],
     {"01.1": "X = 1"}, "is not its check"),
    ([("exercise-01-1", "# EXERCISE 01.1 — edit this cell\nX = ..."), ("check-01-1", "check_x(X)")],
     {}, "has no solution"),
    ([("exercise-01-1", "X = ..."), ("check-01-1", "check_x(X)")], {"01.1": "X = 1"}, "must start with"),
    ([("exercise-01-1", "# EXERCISE 01.1 — edit this cell\nX = ...")], {"01.1": "X = 1"}, "no check cell"),
    ([("a", "1")], {"01.2": "X = 1"}, "do not exist: 01.2"),
])
def test_a_malformed_exercise_or_solution_is_refused_in_one_sentence(cells, blocks, message):
    with pytest.raises(InputError, match=message):
        solutions.solve(notebook(*cells), blocks, "01_x.ipynb")


def test_build_solutions_writes_every_notebook(tmp_path):
    written = solutions.build_solutions(tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    assert solutions.main([str(tmp_path / "again")]) == 0


# --- checks that need no service ------------------------------------------------------

def test_a_placeholder_is_a_fail_that_says_what_to_do_without_touching_any_service():
    nothing = None           # a check that touched a service would fail on settings=None
    ex = exercises
    for result in (ex.check_rejection(...), ex.check_max_partitions(..., ..., None, nothing),
                   ex.check_double_replay(..., None, nothing), ex.check_duplicates(..., nothing),
                   ex.check_idle_consumers(..., ..., nothing), ex.check_offset_reset(..., nothing),
                   ex.check_copartitioning(3, ..., nothing), ex.check_one_signal_price(..., None),
                   ex.check_router_lag(..., None, nothing), ex.check_bot_restart(..., None, None, None)):
        assert not result.passed and "placeholder `...`" in result.message
        assert repr(result).startswith(f"❌ Exercise {result.exercise}: not yet")


RIGHT_REASONS = {"open above high": "outside_range", "high and low swapped": "high_below_low",
                 "low zero, volume negative": "bad_price"}


def test_check_rejection_counts_right_predictions_without_naming_the_answers():
    assert exercises.check_rejection(RIGHT_REASONS).passed
    for way in RIGHT_REASONS:                     # one wrong, whichever: no reason is named
        for reason in REASONS:
            if reason != RIGHT_REASONS[way]:
                wrong = exercises.check_rejection({**RIGHT_REASONS, way: reason})
                assert not wrong.passed and wrong.message.startswith("Not all three predictions are right")
                assert not any(f"'{r}'" in wrong.message for r in REASONS)
    one_for_all = [exercises.check_rejection(dict.fromkeys(RIGHT_REASONS, r)) for r in REASONS]
    assert not any(r.passed for r in one_for_all)            # no constant passes
    assert "choose among" in exercises.check_rejection({**RIGHT_REASONS, "open above high": "x"}).message
    assert "choose among" in exercises.check_rejection({**RIGHT_REASONS, "open above high": []}).message
    assert "one reason for each" in exercises.check_rejection("outside_range").message


@pytest.fixture(scope="module")
def daily():
    from helpers.pipeline.sources import fetch_bars

    return fetch_bars("sample", timespan="day")


def test_check_one_signal_price_points_the_way(daily):
    wide = daily[daily["high"] / daily["low"] - 1 > 0.05]
    second, first = wide["close"].nlargest(2).iloc[::-1]
    assert exercises.check_one_signal_price(float(second), daily).passed
    assert exercises.check_one_signal_price((second + first) / 2, daily).passed
    assert "raise it" in exercises.check_one_signal_price(second - 1, daily).message
    assert "0 buy signals at 5 %: lower it" in exercises.check_one_signal_price(first, daily).message
    assert "positive number" in exercises.check_one_signal_price("600", daily).message


def test_a_students_exception_becomes_a_hint_quoting_the_line():
    def broken(bar):
        return bar["clsoe"] > 1

    result, error = common.call("04.1", "is_sell", broken, {"close": 2})
    assert result is None and not error.passed
    assert "is_sell raised KeyError: 'clsoe'" in error.message and 'bar["clsoe"]' in error.message
    assert "not a function" in common.call("04.1", "is_sell", ..., 1)[1].message


def test_the_trailing_stop_reference_and_its_hint():
    ref = ex09.reference_trailing_stop
    assert ref(100.0, [101.0, 99.0, 93.0, 92.5]) == (3, "trailing stop")       # 92.5 <= 0.92 * 101
    assert ref(100.0, [100.0] * 59) is None and ref(100.0, [100.0] * 60) == (59, "time")
    assert ex09.as_exit((2, "x")) == (2, "x") and ex09.as_exit(None) is None
    assert "neither" in ex09.as_exit("sell")
    hint = ex09.trailing_hint("AAPL bought", 100.0, [101.0, 99.0, 93.0, 92.5], (59, "time"),
                                   (3, "trailing stop"))
    assert "sells on day 59 (time)" in hint and "8.4% below" in hint and "$101.00" in hint


def test_a_check_result_shows_in_text_and_html():
    table = pd.DataFrame({"sells": [3]}, index=["AAPL"])
    ok = common.passed("04.1", "3 sells & <done>", table)
    assert repr(ok).splitlines()[0] == "✅ Exercise 04.1: passed" and "AAPL" in repr(ok)
    assert "&lt;done&gt;" in ok._repr_html_() and "<table" in ok._repr_html_()


# --- reset: what belongs to the course, in whose namespace ---------------------------------

@pytest.mark.parametrize("namespace, mine, not_mine", [
    ("", ["pricelist", "buy", "pricelist.dlq", "minute.buy", "edges.alerts", "ex04.sell", "ex07.variations",
          "scratch.keys", "handmade.alerts", "lesson05.copy-at-least-once", "live.pricelist"],
     ["alice.pricelist", "alice.ex04.sell", "__consumer_offsets", "orders", "ex4.sell", "exam.sell",
      "_confluent-ksql-x"]),
    ("alice", ["alice.pricelist", "alice.minute.buy", "alice.ex04.sell", "alice.scratch.keys"],
     ["pricelist", "bob.pricelist", "minute.buy", "alice.orders"]),
])
def test_reset_deletes_the_course_topics_of_its_namespace_only(tmp_path, namespace, mine, not_mine):
    s = load_settings({"WORKBOOK_STACK": "local", "WORKBOOK_STUDENT": namespace}, dotenv=tmp_path / "x")
    assert [t for t in mine if not is_course_topic(t, s)] == []
    assert [t for t in not_mine if is_course_topic(t, s)] == []


def test_reset_forgets_the_course_groups_of_its_namespace_only(tmp_path):
    s = load_settings({"WORKBOOK_STACK": "local", "WORKBOOK_STUDENT": "alice"}, dotenv=tmp_path / "x")
    for group in (s.group("router"), s.group("flink-buy"), s.within("ex05").group("count") + "-1a2b3c",
                  s.within("minute").group("router"), s.group("mailer")):
        assert is_course_group(group, s), group
    for group in ("workbook-router", "bob.workbook-router", "alice.other", "demo-1a2b3c"):
        assert not is_course_group(group, s), group
    laptop = load_settings({"WORKBOOK_STACK": "local"}, dotenv=tmp_path / "x")
    assert is_course_group("handmade-router", laptop) and not is_course_group("alice.workbook-router", laptop)


def test_reset_names_a_notebook_to_start_from():
    assert [check_stage(x) for x in (None, "05", 5, "05_consumer_groups")] == [None, "05", "05", "05"]
    for bad in ("5", "notebook", 13, True):
        with pytest.raises(InputError, match="from 00 to 12"):
            check_stage(bad)


def test_pitfalls_name_sections_and_exercises_that_exist():
    from helpers.core.settings import PROJECT_ROOT

    text = (PROJECT_ROOT / "docs" / "PITFALLS.md").read_text()
    headings = {}
    for path in NOTEBOOKS:
        cells = nbformat.read(path, as_version=4).cells
        headings[path.name[:2]] = {line.lstrip("#").strip() for c in cells if c.cell_type == "markdown"
                                   for line in c.source.splitlines() if line.startswith("#")}
    named = re.findall(r"\*\*(\d\d) · [^*]+\*\*,((?: \*[^*]+\*(?: and|,)?)+)", text)
    assert len(named) >= 15
    for notebook, sections in named:
        for section in re.findall(r"\*([^*]+)\*", sections):
            assert section in headings[notebook], f"{notebook} has no section {section!r}"
    numbers = {n for p in NOTEBOOKS for n, *_ in exercise_cells(p)}
    for number in re.findall(r"\*\*(\d\d\.\d)\*\*", text):
        assert number in numbers, f"PITFALLS names exercise {number}, which does not exist"


def test_the_crash_lab_refuses_too_few_bars_to_crash_before_it_touches_kafka(tmp_path):
    """With 1,000 bars and batches of 500 the loop would reach the end before batch 3, and wait for ever."""
    settings = load_settings({"WORKBOOK_STACK": "local", "KAFKA_PORT": "1"}, dotenv=tmp_path / "x")
    bars = pd.DataFrame({"ticker": ["AAPL"] * 1000})
    with pytest.raises(InputError, match=r"^crash_router needs more than 1,000 bars to crash after batch 3 "
                                         r"of 500, got 1,000\."):
        exercises.crash_router(settings, bars, after_batches=3, batch=500)


def test_brokers_may_fail_needs_both_settings_and_no_constant_passes():
    from types import SimpleNamespace

    from confluent_kafka.admin import NewTopic

    wide = NewTopic("wide", num_partitions=3, replication_factor=5, config={"min.insync.replicas": "3"})
    run = SimpleNamespace(sent=list(range(10)), delivered=dict.fromkeys(range(10)))
    refused = SimpleNamespace(sent=list(range(5)), errors={"NOT_ENOUGH_REPLICAS": 5})
    check = exercises.check_brokers_may_fail
    assert check(2, 4, wide, run, refused).passed
    for constant in range(6):                       # the same number for both settings never passes
        result = check(constant, constant, wide, run, refused)
        assert not result.passed and "the same" in result.message
    for wrong in [(4, 4), (2, 2), (3, 4), (2, 5), (1, 4)]:
        result = check(*wrong, wide, run, refused)
        assert not result.passed
        assert "5 − 3" not in result.message and "= 2" not in result.message     # a hint, not the answer
