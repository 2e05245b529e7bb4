"""Students sharing one class server: the time of their concurrent runs and the broker's memory.

    python -m bench.classroom [--students 2] [--alone]

Starts a class server (`helpers.classroom.classserver`: Kafka with SASL_SSL, SCRAM
and ACLs, MariaDB) in a temporary state folder on free ports, then runs the
whole course (`workbook notebooks`, the main job of `make run`) as N students
at once, each in their own namespace and database, each with their own
notebook kernels and Flink jobs on this machine. With --alone, one student
runs it alone first, for comparison. The secure broker's memory (PSS and RSS
every 0.5 s, and its peak resident set) is sampled throughout. The server is
stopped and the folder deleted at the end. Results go to
build/bench/classroom.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from helpers.classroom.classserver import ClassServer, Student
from helpers.core.settings import PROJECT_ROOT
from helpers.infra.environment import load_settings
from helpers.infra.processes import free_port, running_process

from .budget import MB, Sampler

RESULTS = PROJECT_ROOT / "build" / "bench" / "classroom.json"
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


def run_course(server: ClassServer, student: Student, output: Path) -> dict[str, Any]:
    """One student's whole course; the seconds it took and the notebooks' results."""
    env = {**os.environ, **server.student_env(student), "WORKBOOK_PROGRESS": "0"}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "helpers.cli", "notebooks", "--output", str(output)],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    return {"student": student.name, "seconds": round(time.perf_counter() - started, 1),
            "exit": result.returncode, "summary": [line for line in lines if line.startswith(("Summary",
                                                                                            "Messages"))],
            "notebooks": [line.strip() for line in lines if ".ipynb" in line],
            "errors": notebook_errors(output)}


def notebook_errors(output: Path) -> list[str]:
    """The error of every executed notebook whose cell failed: 'notebook: Name: message'."""
    import nbformat

    found = []
    for path in sorted(output.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    found.append(f"{path.name}: {out['ename']}: {out['evalue'][:300]}")
    return found


def run_together(server: ClassServer, students: list[Student], folder: Path) -> dict[str, Any]:
    """Every student's course at once; the wall time and each student's result."""
    results: dict[str, dict[str, Any]] = {}
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(
        s.name, run_course(server, s, folder / s.name))) for s in students]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"students": len(students), "wall_s": round(time.perf_counter() - started, 1),
            "runs": [results[s.name] for s in students]}


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    """Start a class server, run the students, report; 1 when a student's course failed."""
    parser = argparse.ArgumentParser(prog="python -m bench.classroom", description=__doc__)
    parser.add_argument("--students", type=int, default=2, choices=range(1, len(NAMES) + 1))
    parser.add_argument("--alone", action="store_true", help="first, one student alone, for comparison")
    args = parser.parse_args(argv)
    base = load_settings()
    folder = Path(tempfile.mkdtemp(prefix="workbook-class-"))
    (folder / "stack").mkdir()
    (folder / "stack" / "libs").symlink_to(base.state_dir / "libs")
    ports = {"KAFKA_PORT": free_port(), "KAFKA_CONTROLLER_PORT": free_port(), "MYSQL_PORT": free_port()}
    settings = load_settings({**os.environ, "WORKBOOK_STACK": "local",
                              "WORKBOOK_STATE_DIR": str(folder / "stack"),
                              **{k: str(v) for k, v in ports.items()}})
    server = ClassServer.for_settings(settings)
    results: dict[str, Any] = {"load_average_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        started = time.perf_counter()
        students = server.up(list(NAMES[:args.students]))
        results["class_up_s"] = round(time.perf_counter() - started, 1)
        log(f"class server up in {results['class_up_s']} s")
        broker = running_process(server.kafka().nodes[0].pid_file)
        assert broker is not None
        sampler = Sampler(lambda: [broker])
        sampler.start()
        if args.alone:
            results["alone"] = run_together(server, students[:1], folder / "alone")
            log(f"one student alone: {results['alone']['wall_s']} s")
        results["together"] = run_together(server, students, folder / "together")
        log(f"{len(students)} students at once: {results['together']['wall_s']} s")
        samples = sampler.stop()
        results["broker"] = {"pss_peak_mb": round(max(s["pss_total"] for s in samples), 1),
                             "rss_peak_mb": round(peak_rss_mb(broker.pid), 1),
                             "rss_end_mb": round(broker.memory_info().rss / MB, 1),
                             "heap_mb": server.kafka().heap_mb}
    finally:
        server.down()
        shutil.rmtree(folder, ignore_errors=True)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    runs = results["together"]["runs"] + results.get("alone", {}).get("runs", [])
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
