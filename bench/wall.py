"""Wall times a person waits for: `make run` (every notebook) and the local stack's start.

- `make run` warm: the stack already up, packages installed, jars present;
  the notebooks run headless exactly as `make run` runs them (into
  build/bench/run/), per-notebook seconds kept.
- stack start: a second local stack in a scratch folder, on free ports (the
  running one is not touched): *cold* is the first `workbook up` (format
  Kafka's storage, initialise MariaDB's data directory, start both, wait until
  ready; the jars are shared, not downloaded), *warm* is `workbook up` again
  after `workbook down`, with the data kept.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.core.settings import PROJECT_ROOT, Settings
from helpers.infra.environment import child_env
from helpers.infra.processes import free_port

from .throughput import BenchError

NOTEBOOK_LINE = re.compile(r"^\s+(\S+\.ipynb)\s+\d+ cells\s+([\d.]+) s\s+(.*)$")


def workbook(*args: str, env: dict[str, str] | None = None, timeout: float = 1800) -> tuple[float, str]:
    """Run `workbook ARGS` (the CLI of this environment); return its wall seconds and output."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "helpers.cli", *args], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=timeout, env=env or child_env(),
                            stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise BenchError(f"`workbook {' '.join(args)}` failed: {' | '.join(tail)}")
    return seconds, result.stdout


def make_run(log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every notebook, headless, as `make run` does; total and per-notebook seconds."""
    log("make run: every notebook, headless ...")
    up_s, _ = workbook("up")
    seconds, out = workbook("notebooks", "--output", str(PROJECT_ROOT / "build" / "bench" / "run"),
                            env=child_env(WORKBOOK_PROGRESS="0"))
    notebooks = {m[1]: float(m[2]) for m in map(NOTEBOOK_LINE.match, out.splitlines()) if m}
    return {"seconds": up_s + seconds, "up_s": up_s, "notebooks_s": seconds, "per_notebook": notebooks}


def stack_start(settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Cold and warm start of a scratch local stack; it is stopped and deleted afterwards."""
    if settings.stack != "local":
        return {"skipped": f"the {settings.stack} stack is not started by the workbook"}
    libs = settings.state_dir / "libs"
    if not libs.is_dir():
        raise BenchError("The stack's jars are missing: run `make up` once first.")
    root = Path(tempfile.mkdtemp(prefix="bench-stack-"))
    (root / "libs").symlink_to(libs.resolve())
    env = child_env(WORKBOOK_STACK="local", WORKBOOK_STATE_DIR=str(root), KAFKA_PORT=str(free_port()),
                    KAFKA_CONTROLLER_PORT=str(free_port()), MYSQL_PORT=str(free_port()),
                    FLINK_CONNECTOR_JAR=str(settings.flink_connector_jar))
    try:
        log("stack: cold start (new data directories) ...")
        cold, _ = workbook("up", env=env)
        down, _ = workbook("down", env=env)
        log("stack: warm start (data kept) ...")
        warm, _ = workbook("up", env=env)
    finally:
        try:
            workbook("down", env=env)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return {"cold_s": cold, "warm_s": warm, "down_s": down}
