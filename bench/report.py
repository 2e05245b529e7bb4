"""What the benchmarks print and save: the machine, a compact table, results.json."""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from helpers.config import PROJECT_ROOT

from .timing import format_ms

RESULTS_PATH = PROJECT_ROOT / "build" / "bench" / "results.json"


def machine_info() -> dict[str, Any]:
    """CPU, memory, load, library versions, date and commit of this run."""
    import confluent_kafka
    import matplotlib
    import numpy
    import pandas

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "cpu_model": cpu_model(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(), "python": platform.python_version(),
        "numpy": numpy.__version__, "pandas": pandas.__version__,
        "matplotlib": matplotlib.__version__, "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0], "git_commit": git_commit(),
    }


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str | None:
    """Short commit of the working tree, with '+dirty' when it has changes; None outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_results(results: dict[str, Any], path: Path = RESULTS_PATH) -> Path:
    """Save the results as indented JSON (NaN becomes null) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(results), indent=2) + "\n")
    return path


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def machine_line(machine: dict[str, Any]) -> str:
    """One line about the machine."""
    load = ", ".join(f"{x:g}" for x in machine["load_average"])
    return (f"{machine['cpu_count']} CPU ({machine['cpu_model']}), {machine['memory_gb']} GB, "
            f"load {load} | Python {machine['python']}, numpy {machine['numpy']}, "
            f"pandas {machine['pandas']} | {machine['date']} | {machine['git_commit']}")


DASHBOARD_COLUMNS = (("what_if", "what_if"), ("recompute", "recompute"),
                     ("recompute_one_ticker", "1 ticker"), ("draw", "draw"),
                     ("render_png", "render png"), ("stress", "stress what_if"))


def dashboard_table(part: dict[str, Any]) -> list[str]:
    """Lines of the dashboard table (ms, median / p95) and the goal verdict."""
    head = f"{'bars':>10}  " + "  ".join(f"{title:>15}" for _, title in DASHBOARD_COLUMNS) + \
           f"  {'stress buys':>12}"
    lines = ["Dashboard, 20 tickers: ms per slider change, median / p95", head]
    for row in part["sizes"]:
        cells = "  ".join(f"{format_ms(row.get(key)):>15}" for key, _ in DASHBOARD_COLUMNS)
        lines.append(f"{row['bars']:>10,}  {cells}  {row['stress']['buys']:>12,}")
    lines.append(goal_line(part["goal"]))
    return lines


def goal_line(goal: dict[str, Any]) -> str:
    """Whether the recompute goal was met, in one line."""
    limit = f"{goal['limit_ms']:.0f} ms"
    if goal["met"] is None:
        return f"Goal (recompute of {goal['bars']:,} bars under {limit}): not measured in this run."
    state = "met" if goal["met"] else "MISSED"
    stress = "under" if goal["stress_met"] else "NOT under"
    return (f"Goal {state}: recompute of {goal['bars']:,} bars p95 {goal['p95_ms']:.0f} ms "
            f"(median {goal['median_ms']:.0f} ms) vs {limit}; "
            f"at the sliders' minimums it is {stress} {limit}.")


def kafka_table(part: dict[str, Any]) -> list[str]:
    """Lines about replay and router throughput."""
    replay, router = part["replay"], part["router"]
    return [f"Kafka, {part['bars']:,} bars, 3 partitions, local broker",
            f"  replay  {replay['messages']:>9,} messages in {replay['seconds']:6.2f} s  "
            f"{replay['messages_per_s']:>9,.0f} messages/s",
            f"  router  {router['bars']:>9,} bars     in {router['seconds']:6.2f} s  "
            f"{router['bars_per_s']:>9,.0f} bars/s  (first to last bar: "
            f"{router['steady_bars_per_s']:,.0f} bars/s; {router['alerts']:,} alerts)"]
