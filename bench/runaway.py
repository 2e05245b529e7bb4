"""One student's runaway producer on the class server, against another student's latency.

    python -m bench.runaway [--seconds 60] [--idle 20]

Starts a class server (`helpers.classroom.classserver`, its limits from
`helpers.infra.limits`) in a temporary folder on free ports, with two
students: `mallory`, whose plain producer loop writes 1-kB records as fast as
it can (4,096 distinct random values, so compression gains nothing), and
`bob`, who produces one small record every 20 ms (acks=all, no linger) and
times each until its acknowledgement. Three phases, on the same clock and
settings: bob alone (idle), mallory running away without quotas, and with
the class server's quotas. The size cap on what a student's topics keep
(broker defaults and policy) holds in both runaway phases; what mallory's
partitions hold on disk is sampled every second. The server is stopped and the
folder deleted at the end. Results: build/bench/runaway.json and a figure,
build/bench/runaway.png.
"""
from __future__ import annotations

import argparse
import contextlib
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

import numpy as np

from helpers.classroom.classserver import ClassServer
from helpers.core.settings import PROJECT_ROOT, Settings
from helpers.infra.clients import make_admin, make_producer
from helpers.infra.environment import load_settings
from helpers.infra.limits import MB, set_quotas
from helpers.infra.processes import free_port
from helpers.infra.security import ADMIN
from helpers.pipeline.topics import PARTITIONS, ensure_topics

RESULTS = PROJECT_ROOT / "build" / "bench" / "runaway.json"
RUNAWAY, CALM = "mallory", "bob"
PROBE_EVERY_S = 0.02
WARMUP_S = 15
RECORD_BYTES = 1000
DISTINCT_VALUES = 4096


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


def flood(settings: Settings, seconds: float) -> dict[str, Any]:
    """A runaway loop: 1-kB records into `<student>.flood` as fast as the client takes them."""
    topic = settings.prefix + "flood"
    ensure_topics(make_admin(settings), [topic])
    values = [os.urandom(RECORD_BYTES) for _ in range(DISTINCT_VALUES)]
    producer = make_producer(settings)
    acked = [0]

    def delivered(err, _msg) -> None:
        if err is None:
            acked[0] += 1

    sent, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        try:
            producer.produce(topic, values[sent % DISTINCT_VALUES], on_delivery=delivered)
            sent += 1
        except BufferError:          # the local queue is full: wait for the broker
            producer.poll(0.05)
        producer.poll(0)
    elapsed = time.perf_counter() - started
    producer.flush(0)                # what is still queued is not waited for: the loop has ended
    return {"records_acked": acked[0], "records_queued": sent, "seconds": round(elapsed, 1),
            "acked_mb_s": round(acked[0] * RECORD_BYTES / elapsed / MB, 2)}


class Probe:
    """bob's producer: one record every PROBE_EVERY_S, each timed from produce() to its ack."""

    def __init__(self, settings: Settings):
        self.topic = settings.prefix + "probe"
        ensure_topics(make_admin(settings), [self.topic])
        self.producer = make_producer(settings, {"linger.ms": 0})
        self.samples: list[tuple[float, float]] = []      # (seconds since start, latency in ms)
        self.lost = 0
        self.stop = threading.Event()
        self.origin = time.perf_counter()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            sent = time.perf_counter()

            def delivered(err, _msg, sent=sent) -> None:
                if err is None:
                    now = time.perf_counter()
                    self.samples.append((sent - self.origin, (now - sent) * 1000))
                else:
                    self.lost += 1

            self.producer.produce(self.topic, b"x" * 100, on_delivery=delivered)
            while (left := PROBE_EVERY_S - (time.perf_counter() - sent)) > 0:
                self.producer.poll(left)           # each acknowledgement is timed as it arrives
        self.producer.flush(30)

    def between(self, start: float, end: float) -> np.ndarray:
        """Latencies (ms) of the records sent between two moments."""
        return np.array([ms for t, ms in self.samples if start <= t < end])


def partition_bytes(data: Path, student: str) -> int:
    """Bytes in the files of a student's partitions, deleted segments waiting to go included."""
    total = 0
    for folder in data.glob(f"{student}.*"):
        for file in folder.iterdir():
            with contextlib.suppress(FileNotFoundError):       # deleted meanwhile
                total += file.stat().st_blocks * 512      # what the disk holds (index files are sparse)
    return total


def run_phase(name: str, seconds: float, probe: Probe, flood_env: dict[str, str] | None,
              data: Path) -> dict[str, Any]:
    """One phase: bob's latencies meanwhile, and mallory's loop and disk if she runs."""
    start = time.perf_counter() - probe.origin
    disk: list[tuple[float, int]] = []
    proc = None
    if flood_env is not None:
        proc = subprocess.Popen([sys.executable, "-m", "bench.runaway", "--flood", str(seconds)],
                                cwd=PROJECT_ROOT, env=flood_env, stdout=subprocess.PIPE, text=True)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or (proc is not None and proc.poll() is None):
        disk.append((time.perf_counter() - probe.origin, partition_bytes(data, RUNAWAY)))
        time.sleep(1)
    for _ in range(10):            # the retention check runs every 5 s, a deleted file goes 1 s later
        disk.append((time.perf_counter() - probe.origin, partition_bytes(data, RUNAWAY)))
        time.sleep(1)
    end = time.perf_counter() - probe.origin
    latencies = probe.between(start + 5, start + seconds)    # the first 5 s: the loop starting
    result: dict[str, Any] = {
        "phase": name, "start_s": round(start, 1), "end_s": round(end, 1),
        "probe_records": int(latencies.size),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "runaway_peak_disk_mb": round(max(b for _, b in disk) / MB, 1),
        "runaway_final_disk_mb": round(disk[-1][1] / MB, 1), "disk": disk}
    if proc is not None:
        out, _ = proc.communicate(timeout=120)
        result["runaway"] = json.loads(out.strip().splitlines()[-1])
    log(f"{name}: bob p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; mallory's partitions "
        f"peak {result['runaway_peak_disk_mb']} MB" + (f", {result['runaway']}" if proc else ""))
    return result


def plot(results: dict[str, Any], probe_samples: list[tuple[float, float]], path: Path) -> None:
    """bob's latency over time, phases shaded, with what mallory's partitions held."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    times, ms = zip(*probe_samples, strict=True)
    top.plot(times, ms, ".", markersize=2, color="tab:blue", label="bob: one record's ack (ms)")
    top.set_yscale("log")
    top.set_ylabel("bob's produce latency (ms)")
    for phase in results["phases"]:
        for ax in (top, bottom):
            ax.axvspan(phase["start_s"], phase["end_s"], alpha=0.08,
                       color={"idle": "green", "no quotas": "red", "quotas": "orange"}[phase["phase"]])
        top.text(phase["start_s"], top.get_ylim()[1], f" {phase['phase']}\n p99 {phase['p99_ms']} ms",
                 va="top", fontsize=9)
        if phase["disk"]:
            t, b = zip(*phase["disk"], strict=True)
            bottom.plot(t, [x / MB for x in b], color="tab:red")
    topic_cap = results["limits"]["topic_cap_mb"]
    bottom.axhline(topic_cap, color="black", linestyle="--", linewidth=1,
                   label=f"what her topic may keep: {topic_cap} MB (all her topics: "
                         f"{results['limits']['cap_mb']} MB)")
    bottom.set_ylabel("mallory's partitions on disk (MB)")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="upper right")
    top.set_title("A runaway producer on the class server: "
                  "another student's latency, with and without quotas")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runaway", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long mallory runs away, per phase")
    parser.add_argument("--idle", type=float, default=20.0, help="how long bob is timed alone")
    parser.add_argument("--flood", type=float, help=argparse.SUPPRESS)   # the runaway process itself
    args = parser.parse_args(argv)
    if args.flood is not None:
        print(json.dumps(flood(load_settings(), args.flood)))
        return 0
    folder = Path(tempfile.mkdtemp(prefix="workbook-runaway-"))
    base = load_settings()
    state = folder / "stack"
    state.mkdir()
    (state / "libs").symlink_to(base.state_dir / "libs")
    ports = {"KAFKA_PORT": free_port(), "KAFKA_CONTROLLER_PORT": free_port(), "MYSQL_PORT": free_port()}
    instructor = load_settings({**os.environ, "WORKBOOK_STACK": "local", "WORKBOOK_STATE_DIR": str(state),
                                **{k: str(v) for k, v in ports.items()}})
    server = ClassServer.for_settings(instructor)
    try:
        students = {s.name: s for s in server.up([RUNAWAY, CALM])}
        data = server.root / "kafka" / "node-1" / "data"
        flood_env = {**os.environ, **server.student_env(students[RUNAWAY]), "WORKBOOK_PROGRESS": "0"}
        probe = Probe(server.student_settings(students[CALM]))
        probe.thread.start()
        time.sleep(WARMUP_S)             # bob's first records: connections, metadata, the broker's JIT
        probe.origin = time.perf_counter()
        probe.samples.clear()
        phases = [run_phase("idle", args.idle, probe, None, data)]
        set_quotas(server.admin_settings(), None, ADMIN)
        phases.append(run_phase("no quotas", args.seconds, probe, flood_env, data))
        set_quotas(server.admin_settings(), server.limits, ADMIN)
        phases.append(run_phase("quotas", args.seconds, probe, flood_env, data))
        probe.stop.set()
        probe.thread.join(60)
        limits = server.limits
        vs_idle = {p["phase"]: round(p["p99_ms"] / phases[0]["p99_ms"], 2) for p in phases}
        results: dict[str, Any] = {
                   "limits": {"produce_mb_s": limits.produce_mb_s, "partition_mb": limits.partition_mb,
                              "cap_mb": limits.student_cap_mb,
                              "topic_cap_mb": PARTITIONS * (limits.partition_mb + limits.segment_mb)},
                   "probe_lost": probe.lost, "phases": phases, "p99_vs_idle": vs_idle}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        plot(results, probe.samples, RESULTS.with_suffix(".png"))
        RESULTS.write_text(json.dumps(results, indent=1))
        for p in phases:
            print(f"{p['phase']:<10} bob p50 {p['p50_ms']:>7} ms  p99 {p['p99_ms']:>7} ms "
                  f"({vs_idle[p['phase']]}x idle)  mallory: "
                  f"{p.get('runaway', {}).get('acked_mb_s', 0):>6} MB/s acked, "
                  f"disk peak {p['runaway_peak_disk_mb']} MB, after {p['runaway_final_disk_mb']} MB")
        print(f"bob lost {probe.lost} records; results in {RESULTS} and {RESULTS.with_suffix('.png')}")
    finally:
        server.down()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
