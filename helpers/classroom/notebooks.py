"""Run the notebook sequence headless (`make run`), writing executed copies to build/."""
from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from helpers.core.settings import PROJECT_ROOT
from helpers.infra.environment import child_env

NOTEBOOKS = PROJECT_ROOT / "notebooks"


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    """The course's notebooks in reading order (optionally only `names`)."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    return [p for p in paths if not names or p.stem in names or p.name in names]


def remove_stale_copies(folder: Path) -> list[str]:
    """Delete executed copies in `folder` of notebooks the course no longer has (renamed or removed)."""
    current = {p.name for p in notebook_paths()}
    stale = [p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.name not in current]
    for path in stale:
        path.unlink()
    return sorted(p.name for p in stale)


def failure(exc: Exception) -> str:
    """One line saying why a notebook stopped."""
    if isinstance(exc, CellTimeoutError):
        return "a cell ran out of time"
    if isinstance(exc, DeadKernelError):
        return "the kernel died"
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()     # no colour codes
    return lines[-1] if lines else type(exc).__name__


def run_notebooks(output: Path, names: list[str] | None = None, timeout: int = 900) -> list[dict]:
    """Execute notebooks in name order; stop at the first failure; return one row per notebook.

    Progress bars are off in the kernels (WORKBOOK_PROGRESS=0): an executed
    copy would only show them stuck at 0 %.
    """
    output.mkdir(parents=True, exist_ok=True)
    remove_stale_copies(output)
    rows = []
    for path in notebook_paths(names):
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOKS)}})
        start = time.perf_counter()
        error = ""
        try:
            # the kernel's own stderr (a warning about its local TCP sockets) goes to a log file
            with open(output / "kernels.log", "a") as log:
                client.execute(env=child_env(WORKBOOK_PROGRESS="0"), stderr=log)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
            error = failure(exc)
        seconds = time.perf_counter() - start
        nbformat.write(nb, output / path.name)
        code_cells = sum(c.cell_type == "code" for c in nb.cells)
        rows.append({"notebook": path.name, "code cells": code_cells,
                     "seconds": round(seconds, 1), "result": error or "ok"})
        print(f"  {path.name:<24} {code_cells:>3} cells {seconds:7.1f} s  {error or 'ok'}", flush=True)
        if error:
            break
    return rows
