"""A class of N on one server: every student's pipeline and stream SQL at once, on the shared Flink.

    python -m bench.class_size [--students 30] [--hub]

Starts a class server (secure Kafka, MariaDB) and the class's Flink session
cluster and its SQL Gateway (helpers/infra/flinkcluster.py, a slot per student) in a temporary
folder on free ports; with --hub (as root) JupyterHub too, with an account per
student, to weigh it. Each simulated student is a process chain in their own
namespace, as a hub server would run it: `workbook ingest`, `topics --reset`,
`replay`, `route --until-caught-up`, `stream-sql --until-caught-up`, the last on
the shared cluster (a job named after the student). One student runs alone
first, then all N at once. Then every student's topics are counted and their
buy signals compared with the reference join computed here from the same
bars (helpers.core.rules): 0 lost, each buy count equal to the reference.
Memory is sampled every second: the broker, Flink's JobManager and
TaskManager, its SQL Gateway, the hub and its proxy, and the students' own
processes (Python only: their SQL goes to the gateway, no JVM of theirs).
Results: build/bench/class_size.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from helpers.classroom.classserver import ClassServer, Student
from helpers.classroom.hub import PORTS, Hub, unix_name
from helpers.core.rules import alerts_frame, buy_signals, variations_frame
from helpers.core.settings import PROJECT_ROOT
from helpers.core.validation import validate_bars
from helpers.infra.environment import load_settings
from helpers.infra.flinkcluster import FlinkCluster, cluster_jobs
from helpers.infra.processes import free_port, free_port_block, running_process
from helpers.pipeline.sources import fetch_bars
from helpers.pipeline.streamsql import read_buy
from helpers.pipeline.topics import topic_counts

RESULTS = PROJECT_ROOT / "build" / "bench" / "class_size.json"
STEPS = (("ingest",), ("topics", "--reset"), ("replay",), ("route", "--until-caught-up"),
         ("stream-sql", "--until-caught-up"))
MB = 1024 * 1024


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


def student_env(server: ClassServer, student: Student, flink: FlinkCluster) -> dict[str, str]:
    """A student's environment, as their hub server has it."""
    return {**os.environ, **server.student_env(student), **flink.session_env, "WORKBOOK_PROGRESS": "0"}


def run_student(env: dict[str, str], pids: set[int]) -> dict[str, Any]:
    """One student's pipeline, step after step; seconds per step, or the step that failed."""
    started, steps = time.perf_counter(), {}
    for step in STEPS:
        began = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "helpers.cli", *step], cwd=PROJECT_ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        pids.add(proc.pid)
        output, _ = proc.communicate()
        pids.discard(proc.pid)
        steps[step[0]] = round(time.perf_counter() - began, 1)
        if proc.returncode != 0:
            return {"seconds": round(time.perf_counter() - started, 1), "steps": steps,
                    "failed": f"{' '.join(step)}: {output.strip().splitlines()[-1:]}"}
    return {"seconds": round(time.perf_counter() - started, 1), "steps": steps}


def run_together(server: ClassServer, students: list[Student], flink: FlinkCluster,
                 sampler: MemorySampler) -> dict[str, Any]:
    """Every student's pipeline at once; the wall time and each one's result."""
    results: dict[str, dict[str, Any]] = {}
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(
        s.name, run_student(student_env(server, s, flink), sampler.students))) for s in students]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = [results[s.name]["seconds"] for s in students]
    return {"students": len(students), "wall_s": round(time.perf_counter() - started, 1),
            "p50_s": round(statistics.median(seconds), 1),
            "p95_s": round(sorted(seconds)[max(0, round(0.95 * len(seconds)) - 1)], 1),
            "failed": {name: r["failed"] for name, r in results.items() if "failed" in r},
            "runs": {s.name: results[s.name] for s in students}}


class MemorySampler:
    """Resident memory, every second, of the class server's parts and of the students' processes."""

    def __init__(self, parts: dict[str, list[Path]]) -> None:
        self.parts, self.students = parts, set[int]()
        self.peaks: dict[str, float] = {}
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def tree_rss(self, procs: list[psutil.Process]) -> float:
        total = 0
        for proc in procs:
            try:
                total += sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])
            except psutil.Error:
                continue
        return total / MB

    def sample(self) -> None:
        now = {name: self.tree_rss([p for p in map(running_process, files) if p])
               for name, files in self.parts.items()}
        students = []
        for pid in list(self.students):
            try:
                students.append(psutil.Process(pid))
            except psutil.Error:
                continue
        now["students"] = self.tree_rss(students)
        now["machine_used"] = (psutil.virtual_memory().total - psutil.virtual_memory().available) / MB
        for name, value in now.items():
            self.peaks[name] = max(self.peaks.get(name, 0.0), value)

    def run(self) -> None:
        while not self.stop_event.wait(1.0):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join()


def check_students(server: ClassServer, students: list[Student]) -> dict[str, Any]:
    """Every student's topic counts against the bars, and buy signals against the reference join."""
    bars, rejected = validate_bars(fetch_bars("sample", timespan="day"))
    reference = buy_signals(alerts_frame(bars), variations_frame(bars))
    expected_alerts = len(alerts_frame(bars))
    checks: dict[str, Any] = {"bars": len(bars), "reference_buy": len(reference), "students": {}}
    for student in students:
        mine = server.student_settings(student)
        t = mine.topics
        counts = topic_counts([t.pricelist, t.alerts, t.variations, t.buy], mine).to_dict()
        buy = read_buy(mine)
        lost = (len(bars) - counts[t.pricelist]) + (expected_alerts - counts[t.alerts]) \
            + (len(bars) - counts[t.variations])
        checks["students"][student.name] = {"pricelist": counts[t.pricelist], "alerts": counts[t.alerts],
                                            "variations": counts[t.variations], "buy": len(buy),
                                            "lost": lost, "buy_equal": len(buy) == len(reference)}
    return checks


def main(argv: list[str] | None = None) -> int:
    """Start the class, run everybody, check and report; 1 when a student failed or differs."""
    parser = argparse.ArgumentParser(prog="python -m bench.class_size", description=__doc__)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--hub", action="store_true", help="start JupyterHub too (root), to weigh it")
    args = parser.parse_args(argv)
    base = load_settings()
    folder = Path(tempfile.mkdtemp(prefix="workbook-class-size-"))
    os.chmod(folder, 0o755)                 # the Flink account enters it
    (folder / "libs").symlink_to(base.state_dir / "libs")
    ports = {"KAFKA_PORT": free_port(), "KAFKA_CONTROLLER_PORT": free_port(), "MYSQL_PORT": free_port()}
    settings = load_settings({**os.environ, "WORKBOOK_STACK": "local", "WORKBOOK_STATE_DIR": str(folder),
                              **{k: str(v) for k, v in ports.items()}})
    server = ClassServer.for_settings(settings)
    names = [f"s{i:02d}" for i in range(1, args.students + 1)]
    hub = Hub(server, free_port_block(PORTS))
    results: dict[str, Any] = {"students": args.students, "cores": os.cpu_count(),
                               "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        started = time.perf_counter()
        students = server.up(names)
        results["class_up_s"] = round(time.perf_counter() - started, 1)
        flink = hub.flink
        if args.hub:
            hub.up(students)
        else:
            flink.start()
            flink.wait_ready()
        results["flink_up_s"] = round(time.perf_counter() - started - results["class_up_s"], 1)
        results["flink"] = {"slots": flink.slots, "taskmanager_mb": flink.taskmanager_mb}
        log(f"class server up in {results['class_up_s']} s, Flink (and hub) "
            f"{results['flink_up_s']:.1f} s more")
        parts = {"broker": [server.kafka().nodes[0].pid_file],
                 "flink": [flink.pid_file("jobmanager"), flink.pid_file("taskmanager")],
                 "sql_gateway": [flink.pid_file("sql-gateway")]}
        if args.hub:
            parts["hub"] = [hub.pid_file]
        with MemorySampler(parts) as sampler:
            sampler.sample()
            results["memory_idle_mb"] = {k: round(v, 1) for k, v in sampler.peaks.items()}
            results["alone"] = run_together(server, students[:1], flink, sampler)
            log(f"one student alone: {results['alone']['wall_s']} s")
            results["together"] = run_together(server, students, flink, sampler)
            log(f"{len(students)} students at once: {results['together']['wall_s']} s "
                f"(p50 {results['together']['p50_s']} s, p95 {results['together']['p95_s']} s)")
        results["memory_peak_mb"] = {k: round(v, 1) for k, v in sampler.peaks.items()}
        results["jobs"] = sorted({job["name"].split(" (pid")[0] for job in cluster_jobs(flink.address)})
        results["check"] = check_students(server, students)
    finally:
        hub.down()
        server.down()
        if args.hub:
            for name in names:
                subprocess.run(["userdel", "--remove", unix_name(name)], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    check = results["check"]["students"]
    lost = sum(c["lost"] for c in check.values())
    equal = sum(c["buy_equal"] for c in check.values())
    print(f"{args.students} students at once: wall {results['together']['wall_s']} s, per student p50 "
          f"{results['together']['p50_s']} s and p95 {results['together']['p95_s']} s against "
          f"{results['alone']['wall_s']} s alone; {lost} messages lost; buy count equal to the reference "
          f"({results['check']['reference_buy']}) for {equal} of {len(check)}; memory peaks (MB): "
          + ", ".join(f"{k} {v:.0f}" for k, v in results["memory_peak_mb"].items()))
    ok = not results["together"]["failed"] and lost == 0 and equal == len(check)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
