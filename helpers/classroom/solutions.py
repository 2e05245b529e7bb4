"""Solved copies of the notebooks, for the instructor and for CI (`make solutions`).

The students' notebooks hold, for each exercise, a cell to edit (id
`exercise-04-1`, first line `# EXERCISE 04.1 — edit this cell`) followed by
the cell that checks it (id `check-04-1`). The solutions live apart, one file
per notebook (`solutions/04_routing.py`, one `# %% EXERCISE 04.1` block per
exercise), so the students' notebooks never contain them.

A solved copy keeps every cell of the student's notebook and, after each
exercise's check, adds the solution and the same check again. Both checks are
asserted: the first must fail (the untouched exercise is not already solved,
so the check can fail), the second must pass (the solution is right). Running
a solved copy top to bottom (nbval in `make test-notebooks`) therefore proves
both for every exercise, in the context the students have.

    python -m helpers.classroom.solutions [OUTPUT]     # default build/solutions/
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat

from helpers.classroom.notebooks import notebook_paths
from helpers.core.errors import InputError
from helpers.core.settings import PROJECT_ROOT

SOLUTIONS = PROJECT_ROOT / "solutions"
BLOCK = re.compile(r"^# %% EXERCISE (\d\d\.\d+)\s*$", re.MULTILINE)
EXERCISE_ID = re.compile(r"^exercise-(\d\d)-(\d+)$")
FIRST_LINE = "# EXERCISE {number} — edit this cell"
SQL_FIRST_LINE = "-- EXERCISE {number} — edit this cell"     # the line after a `%%sql` cell's magic


def marks_exercise(source: str, number: str) -> bool:
    """True when a cell starts with the exercise's marker (after its `%%sql` line, in a SQL cell)."""
    lines = source.splitlines()
    if lines and lines[0].startswith("%%sql"):
        return len(lines) > 1 and lines[1].startswith(SQL_FIRST_LINE.format(number=number))
    return source.startswith(FIRST_LINE.format(number=number))


def exercise_number(cell_id: str) -> str | None:
    """'exercise-04-1' -> '04.1'; None for any other cell id."""
    match = EXERCISE_ID.match(cell_id or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


def cell_id(kind: str, number: str) -> str:
    """The id of an exercise's cell: cell_id('check', '04.1') == 'check-04-1'."""
    return f"{kind}-{number.replace('.', '-')}"


def read_solutions(path: Path) -> dict[str, str]:
    """The blocks of a solutions file: exercise number -> code."""
    parts = BLOCK.split(path.read_text())
    blocks = {number: code.strip("\n") for number, code in zip(parts[1::2], parts[2::2], strict=True)}
    if len(blocks) != len(parts[1::2]):
        raise InputError(f"{path.name} has two blocks for the same exercise.")
    return blocks


def solutions_file(notebook: Path) -> Path:
    """solutions/04_routing.py for notebooks/04_routing.ipynb."""
    return SOLUTIONS / f"{notebook.stem}.py"


def asserted(source: str, must_pass: bool) -> str:
    """A check cell whose last expression is kept as `result`, asserted to pass (or to fail), and shown."""
    tree = ast.parse(source)
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr):
        raise InputError("A check cell must end with the check's call, e.g. `check_sell_route(...)`.")
    lines = source.splitlines()
    head, call = lines[:last.lineno - 1], "\n".join(lines[last.lineno - 1:])
    if must_pass:
        test = "assert result.passed, result            # the solution passes its check"
    else:
        test = "assert not result.passed, result        # the untouched exercise fails it"
    return "\n".join([*head, f"result = {call}", test, "result"])


def solve(nb, solutions: dict[str, str], name: str = "notebook"):
    """The solved copy of a notebook: each exercise's check asserted to fail, then its solution and check."""
    cells, used = [], set()
    pending = None                      # the exercise whose check cell comes next
    for cell in nb.cells:
        number = exercise_number(cell.get("id", ""))
        if pending:
            if cell.get("id") != cell_id("check", pending):
                raise InputError(f"{name}: the cell after exercise {pending} is not its check "
                                 f"({cell_id('check', pending)}).")
            if pending not in solutions:
                raise InputError(f"{name}: exercise {pending} has no solution in {SOLUTIONS.name}/.")
            failing = nbformat.from_dict(dict(cell))
            failing.source = asserted(cell.source, must_pass=False)
            cells.append(failing)
            cells.append(nbformat.v4.new_markdown_cell(
                f"**Solution {pending}** (instructor's copy: the students' notebooks do not contain it)",
                id=cell_id("solution-note", pending)))
            cells.append(nbformat.v4.new_code_cell(f"# SOLUTION {pending}\n{solutions[pending]}",
                                                   id=cell_id("solution", pending)))
            cells.append(nbformat.v4.new_code_cell(asserted(cell.source, must_pass=True),
                                                   id=cell_id("solved-check", pending)))
            used.add(pending)
            pending = None
            continue
        if number:
            if not marks_exercise(cell.source, number):
                raise InputError(f"{name}: exercise {number} must start with "
                                 f"'{FIRST_LINE.format(number=number)}' (or, in a %%sql cell, "
                                 f"have '{SQL_FIRST_LINE.format(number=number)}' on its second line).")
            pending = number
        cells.append(cell)
    if pending:
        raise InputError(f"{name}: exercise {pending} has no check cell after it.")
    unused = set(solutions) - used
    if unused:
        raise InputError(f"{name}: solutions for exercises that do not exist: {', '.join(sorted(unused))}.")
    solved = nbformat.from_dict(dict(nb))
    solved.cells = cells
    return solved


def solved_notebook(path: Path):
    """The solved copy of one course notebook (itself when it has no exercise and no solutions file)."""
    nb = nbformat.read(path, as_version=4)
    file = solutions_file(path)
    return solve(nb, read_solutions(file) if file.is_file() else {}, path.name)


def build_solutions(output: Path) -> list[Path]:
    """Write the solved copy of every course notebook into `output`; return their paths."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebook_paths():
        nbformat.write(solved_notebook(path), output / path.name)
        written.append(output / path.name)
    return written


def main(argv: list[str] | None = None) -> int:
    """`python -m helpers.classroom.solutions [OUTPUT]`: build the solved copies."""
    args = sys.argv[1:] if argv is None else argv
    output = Path(args[0]) if args else PROJECT_ROOT / "build" / "solutions"
    written = build_solutions(output)
    exercises = sum(len(read_solutions(solutions_file(p))) for p in notebook_paths()
                    if solutions_file(p).is_file())
    print(f"Wrote {len(written)} solved notebooks ({exercises} exercises) to {output}/.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
