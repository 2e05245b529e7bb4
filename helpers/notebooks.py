"""Run the notebook sequence headless (`make run`), writing executed copies to build/."""
from __future__ import annotations

import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from .config import PROJECT_ROOT

NOTEBOOKS = PROJECT_ROOT / "notebooks"


def run_notebooks(output: Path, names: list[str] | None = None, timeout: int = 900) -> list[dict]:
    """Execute notebooks in name order; stop at the first failure; return one row per notebook."""
    output.mkdir(parents=True, exist_ok=True)
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if names:
        paths = [p for p in paths if p.stem in names or p.name in names]
    rows = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOKS)}})
        start = time.perf_counter()
        error = ""
        try:
            client.execute()
        except CellExecutionError as exc:
            error = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        seconds = time.perf_counter() - start
        nbformat.write(nb, output / path.name)
        code_cells = sum(c.cell_type == "code" for c in nb.cells)
        rows.append({"notebook": path.name, "code cells": code_cells,
                     "seconds": round(seconds, 1), "result": error or "ok"})
        print(f"  {path.name:<24} {code_cells:>3} cells {seconds:7.1f} s  {error or 'ok'}", flush=True)
        if error:
            break
    return rows
