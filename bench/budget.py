"""Memory and time budget of the course: what a Codespace or a hosted runtime must hold.

    python -m bench.budget memory      # peak memory of `make run` with JupyterLab open
    python -m bench.budget bootstrap   # from an empty folder to the first buy signal
    python -m bench.budget downloads   # what a bare machine downloads (pip, Maven, apt)

`memory` stops this checkout's stack, starts a JupyterLab server, runs `make run`
(which starts the stack again and executes every notebook in nbclient kernels)
and samples every process of the course every 0.5 s: Kafka and MariaDB (found
through their pid files), JupyterLab, the notebook kernels, the Flink jobs and
their JVMs, the runner itself. Memory is PSS (each shared page split between the
processes sharing it, so the sum is what the machine holds); RSS is kept too.

`bootstrap` runs the hosted start notebook (hosted/start_here.ipynb) as a hosted
service would: a kernel in an empty temporary folder, WORKBOOK_REPO pointing at
this checkout, the services on free ports. It times each step and the first
message in the `buy` topic, samples memory the same way, then stops its
services and deletes the folder. Package caches (apt, pip, Maven) stay warm:
`downloads` gives the sizes a cold machine fetches.

Results go to build/bench/budget.json (one key per part).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from helpers.core.settings import PROJECT_ROOT
from helpers.infra.environment import load_settings
from helpers.infra.processes import free_port, port_answers, running_process, stop_process

RESULTS = PROJECT_ROOT / "build" / "bench" / "budget.json"
HOSTED_NOTEBOOK = PROJECT_ROOT / "hosted" / "start_here.ipynb"
MB = 2**20
PARTS = ("kafka", "mariadb", "flink", "connect", "kernels", "jupyterlab", "runner")


def part_of(proc: psutil.Process) -> str:
    """Which part of the course a process belongs to, from its command line and parents."""
    try:
        line = " ".join(proc.cmdline())
        if "kafka.Kafka" in line or "kafka.tools.StorageTool" in line:
            return "kafka"
        if "ConnectDistributed" in line:        # notebook 12's Kafka Connect worker
            return "connect"
        if proc.name().startswith(("mariadbd", "mariadb-install")):
            return "mariadb"
        if "helpers.pipeline.flinksql" in line or "flink" in line.lower():
            return "flink"
        if proc.name() == "java" and any("helpers.pipeline.flinksql" in " ".join(p.cmdline())
                                         for p in proc.parents()):
            return "flink"
        if "ipykernel_launcher" in line:
            return "kernels"
        if "jupyter-lab" in line or "jupyterlab" in line or "jupyter_server" in line:
            return "jupyterlab"
    except psutil.Error:
        pass
    return "runner"


class Sampler(threading.Thread):
    """Every `interval` s, the memory of the tracked processes and of their children, by part."""

    def __init__(self, roots: Callable[[], list[psutil.Process]], interval: float = 0.5):
        super().__init__(daemon=True)
        self.roots, self.interval = roots, interval
        self.known: dict[tuple[int, float], psutil.Process] = {}   # (pid, start) -> process
        self.samples: list[dict[str, Any]] = []
        self.start_time = time.monotonic()
        self._stop_event = threading.Event()

    def track(self) -> list[psutil.Process]:
        """Roots, their descendants, and every process seen before that still runs.

        A process seen once stays tracked after its parent exits: Kafka and
        MariaDB are started detached by `workbook up`, which then returns.
        """
        for root in self.roots():
            try:
                for proc in (root, *root.children(recursive=True)):
                    self.known.setdefault((proc.pid, proc.create_time()), proc)
            except psutil.Error:
                continue
        return [p for p in self.known.values() if p.is_running()]

    def sample(self) -> None:
        """Record one sample: PSS and RSS in MiB per part, and the totals."""
        pss: dict[str, float] = defaultdict(float)
        rss: dict[str, float] = defaultdict(float)
        kernels = []
        for proc in self.track():
            try:
                info = proc.memory_full_info()
                part = part_of(proc)
            except psutil.Error:
                continue
            pss[part] += info.pss / MB
            rss[part] += info.rss / MB
            if part == "kernels":
                kernels.append(info.pss / MB)
        self.samples.append({"t": time.monotonic() - self.start_time, "pss": dict(pss),
                             "rss": dict(rss), "pss_total": sum(pss.values()),
                             "rss_total": sum(rss.values()), "kernels": len(kernels),
                             "kernel_max": max(kernels, default=0.0)})

    def run(self) -> None:
        while not self._stop_event.is_set():
            started = time.monotonic()
            self.sample()
            self._stop_event.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def stop(self) -> list[dict[str, Any]]:
        """Stop sampling; return the samples."""
        self._stop_event.set()
        self.join()
        return self.samples


def summarise(samples: list[dict[str, Any]], marks: list[tuple[float, str]]) -> dict[str, Any]:
    """Peaks of the whole run, of each part, and of each notebook (marks: (end time, name))."""
    if not samples:
        return {"samples": 0}
    peak = max(samples, key=lambda s: s["pss_total"])
    by_part = {part: round(max(s["pss"].get(part, 0.0) for s in samples)) for part in PARTS}
    notebooks, kernels, begin = {}, {}, 0.0
    for end, name in marks:
        window = [s for s in samples if begin <= s["t"] <= end]
        if window:
            notebooks[name] = round(max(s["pss_total"] for s in window))
            kernels[name] = round(max(s["kernel_max"] for s in window))
        begin = end
    return {
        "samples": len(samples), "seconds": round(samples[-1]["t"], 1),
        "peak_pss_mb": round(peak["pss_total"]), "peak_rss_mb": round(max(s["rss_total"] for s in samples)),
        "peak_at_s": round(peak["t"], 1),
        "at_peak_by_part_mb": {k: round(v) for k, v in sorted(peak["pss"].items())},
        "peak_by_part_mb": by_part,
        "largest_kernel_mb": round(max(s["kernel_max"] for s in samples)),
        "peak_by_notebook_mb": notebooks,
        "kernel_by_notebook_mb": kernels,
        # a student in JupyterLab who leaves every notebook's kernel running
        "all_kernels_open_mb": round(peak["pss_total"] - peak["pss"].get("kernels", 0.0)
                                     + sum(kernels.values())) if kernels else None,
    }


def stack_processes(state_dir: Path) -> list[psutil.Process]:
    """Kafka's, MariaDB's and Kafka Connect's processes of one checkout, from their pid files."""
    found = [running_process(state_dir / "kafka/node-1/kafka.pid"),
             running_process(state_dir / "mariadb/mariadb.pid"),
             running_process(state_dir / "connect/connect.pid")]
    return [p for p in found if p is not None]


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


def start_jupyterlab(port: int) -> subprocess.Popen:
    """A JupyterLab server on the course's notebooks, as `make lab` starts it (no browser)."""
    args = [str(PROJECT_ROOT / ".venv/bin/jupyter"), "lab", "--no-browser", f"--port={port}",
            "--ServerApp.token=budget", str(PROJECT_ROOT / "notebooks")]
    if os.geteuid() == 0:
        args.append("--allow-root")
    server = subprocess.Popen(args, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            import urllib.request
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token=budget", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"JupyterLab did not answer on port {port} within 60 s")


def measure_memory(interval: float) -> dict[str, Any]:
    """Peak memory of `make run` (stack, kernels, Flink) with a JupyterLab server running."""
    settings = load_settings()
    subprocess.run(["make", "down"], cwd=PROJECT_ROOT, check=True, capture_output=True)
    port = int(os.environ.get("JUPYTER_PORT") or free_port())
    lab = start_jupyterlab(port)
    log(f"JupyterLab on port {port}; running `make run`...")
    run = subprocess.Popen(["make", "run"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    def roots():
        return [psutil.Process(p.pid) for p in (lab, run) if p.poll() is None] + \
            stack_processes(settings.state_dir)
    sampler = Sampler(roots, interval)
    sampler.start()
    marks, output = [], []
    for line in run.stdout or ():
        output.append(line.rstrip())
        found = re.match(r"\s+(\d\d_\w+)\.ipynb\s", line)
        if found:
            marks.append((time.monotonic() - sampler.start_time, found.group(1)))
            log(line.rstrip())
    run.wait()
    time.sleep(interval * 2)
    samples = sampler.stop()
    lab.terminate()
    lab.wait(30)
    result = summarise(samples, marks)
    result.update(make_run_ok=run.returncode == 0, summary=[line for line in output if line.startswith(
        ("Summary", "Messages"))])
    return result


def first_buy(bootstrap: str, topic: str = "buy") -> int:
    """How many messages `topic` holds (0 while it does not exist or Kafka is not up)."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient

    host, _, port = bootstrap.rpartition(":")
    if not port_answers(int(port), host):      # not started yet: no client, no connection errors
        return 0
    try:
        meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=2)
        partitions = meta.topics[topic].partitions
        if meta.topics[topic].error is not None or not partitions:
            return 0
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "budget-probe"})
        try:
            return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=2)[1]
                       for p in partitions)
        finally:
            consumer.close()
    except Exception:  # noqa: BLE001 - Kafka not started yet, topic being created: not yet
        return 0


def measure_bootstrap(interval: float, keep: bool = False) -> dict[str, Any]:
    """From an empty folder to the first buy signal through the hosted start notebook."""
    import nbformat
    from nbclient import NotebookClient

    folder = Path(tempfile.mkdtemp(prefix="hosted-budget-"))
    content = folder / "content"
    content.mkdir()
    clone = content / "kafka-workbook"
    ports = {"KAFKA_PORT": free_port(), "KAFKA_CONTROLLER_PORT": free_port(), "MYSQL_PORT": free_port()}
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORKBOOK_HOME", "WORKBOOK_STATE_DIR", "KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL",
                        "VIRTUAL_ENV")}
    env.update({k: str(v) for k, v in ports.items()})
    env.update(WORKBOOK_REPO=f"file://{PROJECT_ROOT}", JUPYTER_DATA_DIR=str(folder / "jupyter-data"))
    bootstrap = f"127.0.0.1:{ports['KAFKA_PORT']}"

    nb = nbformat.read(HOSTED_NOTEBOOK, as_version=4)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"][:3]  # start, status, run
    client = NotebookClient(nb, timeout=3600, kernel_name="python3",
                            resources={"metadata": {"path": str(content)}})
    result: dict[str, Any] = {"ports": ports}
    try:
        with client.setup_kernel(env=env):
            kernel = psutil.Process(client.km.provisioner.process.pid)  # type: ignore[union-attr]
            sampler = Sampler(lambda: [kernel, *stack_processes(clone / ".stack")], interval)
            buy_at: list[float] = []

            def watch_buy(stop: threading.Event) -> None:
                while not stop.is_set() and not buy_at:
                    if first_buy(bootstrap) > 0:
                        buy_at.append(time.monotonic() - start)
                    stop.wait(0.5)

            stop = threading.Event()
            start = time.monotonic()
            sampler.start_time = start
            sampler.start()
            watcher = threading.Thread(target=watch_buy, args=(stop,), daemon=True)
            watcher.start()
            ends = []
            for index, cell in code:
                client.execute_cell(cell, index)
                ends.append(round(time.monotonic() - start, 1))
                log(f"cell {len(ends)} done at {ends[-1]} s")
            stop.set()
            watcher.join()
            samples = sampler.stop()
        texts = ["".join(o.get("text", "") for o in c.outputs if o.output_type == "stream")
                 for _, c in code]
        steps = {m.group(1).split(" (")[0]: float(m.group(2))
                 for m in re.finditer(r"^▸ (.+?) \.*\s*(\d+\.\d) s$", texts[0], re.MULTILINE)}
        result.update(
            steps_s=steps, start_cell_s=ends[0], make_run_cell_s=round(ends[2] - ends[1], 1),
            first_buy_s=round(buy_at[0], 1) if buy_at else None, total_s=ends[-1],
            notebooks=[line.strip() for line in texts[2].splitlines() if re.match(r"\s+\d\d_", line)],
            summary=[line for line in texts[2].splitlines() if line.startswith(("Summary", "Messages"))],
            memory=summarise(samples, []))
    finally:
        for pid_file in (clone / ".stack/kafka/node-1/kafka.pid", clone / ".stack/mariadb/mariadb.pid"):
            stop_process(pid_file)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return result


def folder_mb(path: Path) -> float:
    """Size of the files under `path` in MiB."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MB


def measure_downloads() -> dict[str, Any]:
    """What a bare machine downloads: pip wheels, Maven jars, and the apt packages' upper bound."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="budget-pip-") as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-r",
                        str(PROJECT_ROOT / "requirements.txt"), "-d", folder], check=True)
        result["pip_mb"] = round(folder_mb(Path(folder)))
        result["pip_files"] = len(list(Path(folder).iterdir()))
    libs = load_settings().state_dir / "libs"
    result["maven_jars_mb"] = round(folder_mb(libs)) if libs.is_dir() else None
    result["venv_installed_mb"] = round(folder_mb(PROJECT_ROOT / ".venv"))
    closure = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
         "--no-breaks", "--no-replaces", "--no-enhances", "openjdk-17-jre-headless", "maven",
         "mariadb-server"], capture_output=True, text=True).stdout
    packages = sorted({line.strip() for line in closure.splitlines()
                       if line and not line.startswith((" ", "<"))})
    sizes = {}
    for package in packages:
        show = subprocess.run(["apt-cache", "show", "--no-all-versions", package],
                              capture_output=True, text=True).stdout
        found = re.search(r"^Size: (\d+)", show, re.MULTILINE)
        if found:
            sizes[package] = int(found.group(1)) / MB
    result["apt_closure_mb"] = round(sum(sizes.values()))
    result["apt_closure_packages"] = len(sizes)
    result["apt_largest_mb"] = {k: round(v, 1) for k, v in
                                sorted(sizes.items(), key=lambda kv: -kv[1])[:6]}
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure the chosen parts, print them, merge them into build/bench/budget.json."""
    parser = argparse.ArgumentParser(prog="python -m bench.budget", description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="+", choices=("memory", "bootstrap", "downloads"))
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between memory samples")
    parser.add_argument("--keep", action="store_true", help="keep the bootstrap's temporary folder")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = json.loads(args.output.read_text()) if args.output.is_file() else {}
    for part in args.parts:
        log(f"== {part}")
        if part == "memory":
            results[part] = measure_memory(args.interval)
        elif part == "bootstrap":
            results[part] = measure_bootstrap(args.interval, args.keep)
        else:
            results[part] = measure_downloads()
        results[part]["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(json.dumps({part: results[part]}, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
