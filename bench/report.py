"""What the benchmarks print and save: the machine, a compact table, results.json."""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.core.settings import PROJECT_ROOT

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
        "kafka": kafka_version_or_none(),
    }


def kafka_version_or_none() -> str | None:
    """The broker's version when one answers, else None."""
    from helpers.core.errors import WorkbookError
    from helpers.infra.environment import load_settings
    from helpers.infra.status import kafka_version

    try:
        return kafka_version(load_settings())
    except (WorkbookError, OSError):
        return None


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


#: (title, path in results.json, goal text, test of the value) of every goal of issue #11
def _get(results: dict[str, Any], path: str) -> Any:
    value: Any = results
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _ratio(spread: dict[str, float] | None) -> str:
    if not spread:
        return "-"
    if spread.get("n", 1) > 1:
        return f"{spread['median']:.2f} × ({spread['min']:.2f}–{spread['max']:.2f})"
    return f"{spread['median']:.2f} ×"


def _rate(spread: dict[str, float] | None) -> str:
    return f"{spread['median']:,.0f}/s" if spread else "-"


def _ms(summary: dict[str, float] | None, keys: tuple[str, ...] = ("p50", "p95")) -> str:
    if not summary:
        return "-"
    return " / ".join(f"{summary[k]:,.0f}" for k in keys) + " ms"


def _verdict(value: float | None, ok: bool) -> str:
    return "-" if value is None else ("met" if ok else "**missed**")


def goal_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, value, goal, verdict) rows of the markdown table."""
    rows = []
    replay = _get(results, "replay.ratio_vs_raw")
    rows.append(("replay / raw producer (same payloads)",
                 f"{_ratio(replay)}: {_rate(_get(results, 'replay.messages_per_s'))} vs "
                 f"{_rate(_get(results, 'replay.raw_messages_per_s'))}" if replay else "-",
                 "≥ 0.8 ×", _verdict(replay and replay["median"], bool(replay) and replay["median"] >= 0.8)))
    router = _get(results, "router.ratio_vs_naive")
    rows.append(("router (at-least-once) / naive router (same topic)",
                 f"{_ratio(router)}: {_rate(_get(results, 'router.bars_per_s'))} vs "
                 f"{_rate(_get(results, 'router.naive_bars_per_s'))}" if router else "-",
                 "≥ 3 ×", _verdict(router and router["median"], bool(router) and router["median"] >= 3)))
    eos = _get(results, "router.exactly_once_ratio_vs_naive")
    rows.append(("router (exactly-once) / naive router",
                 f"{_ratio(eos)}: {_rate(_get(results, 'router.exactly_once_bars_per_s'))}" if eos else "-",
                 "(reported)", "-"))
    raw = _get(results, "router.ratio_vs_raw_consume")
    rows.append(("router (at-least-once) / raw consume, both from their first record",
                 f"{_ratio(raw)}: raw {_rate(_get(results, 'router.raw_consume_per_s'))}" if raw else "-",
                 "(reported)", "-"))
    ceiling = _get(results, "router.ratio_vs_producer_ceiling")
    per_bar = _get(results, "router.records_per_bar")
    rows.append(("router's records written / raw producer (the ceiling it is bound by)",
                 f"{_ratio(ceiling)} ({per_bar['median']:.2f} records per bar)"
                 if ceiling and per_bar else "-",
                 "(reported)", "-"))
    for what, unit in (("produce", "msg/s"), ("consume", "msg/s"), ("bytes", "bytes per message")):
        ratio = _get(results, f"formats.avro_vs_json_{what}")
        key = {"produce": "produce_per_s", "consume": "consume_per_s", "bytes": "bytes_per_message"}[what]
        avro, json_ = _get(results, f"formats.avro_{key}"), _get(results, f"formats.json_{key}")
        rows.append((f"Avro / JSON, {what} (same bars, same producer)",
                     f"{_ratio(ratio)}: {avro['median']:,.0f} vs {json_['median']:,.0f} {unit}"
                     if ratio and avro and json_ else "-", "(reported)", "-"))
    for size, limit in (("10k", None), ("100k", 150.0), ("1M", 300.0)):
        latency = _get(results, f"dashboard.{size}.slider_to_picture_ms")
        cpu = f"; CPU {latency['cpu_p50']:,.0f} ms" if latency and "cpu_p50" in latency else ""
        rows.append((f"dashboard slider → new PNG, {size} bars (p50 / p95)", _ms(latency) + cpu,
                     f"≤ {limit:.0f} ms" if limit else "(reported)",
                     _verdict(latency and latency["p50"], bool(latency and limit)
                              and latency["p50"] <= (limit or 0)) if limit else "-"))
    sql = _get(results, "stream_sql.latency_ms")
    rate = _get(results, "stream_sql.rate")
    rows.append((f"Flink pricelist → buy at {rate or 1000:,.0f} msg/s (p50 / p95 / p99)",
                 _ms(sql, ("p50", "p95", "p99")), "p99 < 1,000 ms",
                 _verdict(sql and sql["p99"], bool(sql) and sql["p99"] < 1000)))
    run = _get(results, "make_run.seconds")
    rows.append(("`make run`, warm", f"{run:.0f} s" if run else "-", "≤ 45 s",
                 _verdict(run, bool(run) and run <= 45)))
    cold, warm = _get(results, "stack.cold_s"), _get(results, "stack.warm_s")
    rows.append(("stack start, cold / warm", f"{cold:.0f} s / {warm:.0f} s" if cold and warm else "-",
                 "(reported)", "-"))
    return rows


def markdown(results: dict[str, Any]) -> str:
    """The results as the markdown table the README shows, with the machine underneath."""
    m = results["machine"]
    lines = ["| measure | value | goal | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in goal_rows(results)]
    rounds = _get(results, "kafka_rounds")
    lines += ["", f"{m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM, "
              f"load average {', '.join(f'{x:g}' for x in m['load_average'])} at the start and "
              f"{', '.join(f'{x:g}' for x in m.get('load_average_end', []))} at the end; "
              f"Python {m['python']}, Kafka {m.get('kafka', '?')}, librdkafka {m['librdkafka']}; "
              f"{m['date']}, commit {m['git_commit']}."
              + (f" Kafka ratios: median (min–max) of {rounds} rounds." if rounds else "")]
    return "\n".join(lines) + "\n"


def write_markdown(results: dict[str, Any], path: Path) -> Path:
    """Save the markdown table next to results.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(results))
    return path


def comparison(before: dict[str, Any], after: dict[str, Any]) -> str:
    """A before/after markdown table of two results.json files (same rows as `markdown`)."""
    lines = ["| measure | before | after | goal | |", "|---|---|---|---|---|"]
    for (name, old, goal, _), (_, new, _, verdict) in zip(goal_rows(before), goal_rows(after), strict=True):
        lines.append(f"| {name} | {old} | {new} | {goal} | {verdict} |")
    for label, results in (("before", before), ("after", after)):
        m = results["machine"]
        lines.append(f"\n{label}: commit {m['git_commit']}, {m['date']}, load average "
                     f"{', '.join(f'{x:g}' for x in m['load_average'])} → "
                     f"{', '.join(f'{x:g}' for x in m.get('load_average_end', []))}.")
    return "\n".join(lines) + "\n"


def runs_table(runs: list[tuple[str, dict[str, Any]]]) -> str:
    """One line per run (label, results): the spread of the headline figures over several runs."""
    def med(path: str, digits: int = 2) -> Callable[[dict[str, Any]], str]:
        return lambda r: (f"{_get(r, path)['median']:.{digits}f}" if _get(r, path) else "-")

    def p50(size: str) -> Callable[[dict[str, Any]], str]:
        return lambda r: (f"{_get(r, f'dashboard.{size}.slider_to_picture_ms')['p50']:,.0f}"
                          if _get(r, f"dashboard.{size}.slider_to_picture_ms") else "-")

    def sql(r):
        v = _get(r, "stream_sql.latency_ms")
        return f"{v['p50']:,.0f} / {v['p95']:,.0f} / {v['p99']:,.0f}" if v else "-"

    def run(r):
        return f"{_get(r, 'make_run.seconds'):.0f}" if _get(r, "make_run.seconds") else "-"

    def load(r):
        m = r["machine"]
        return f"{m['load_average'][0]:g} → {m.get('load_average_end', ['?'])[0]:g}"

    columns = [("replay / raw", med("replay.ratio_vs_raw")), ("router / naive", med("router.ratio_vs_naive")),
               ("exactly-once / naive", med("router.exactly_once_ratio_vs_naive")),
               ("router / raw consume", med("router.ratio_vs_raw_consume")),
               ("slider 10k ms", p50("10k")), ("slider 100k ms", p50("100k")), ("slider 1M ms", p50("1M")),
               ("Flink p50 / p95 / p99 ms", sql), ("make run s", run), ("load (1 min)", load)]
    lines = ["| run | " + " | ".join(c for c, _ in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(f(r) for _, f in columns) + " |" for label, r in runs]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    if args[:1] == ["--runs"] and len(args) > 1:
        print(runs_table([(Path(p).parent.name, json.loads(Path(p).read_text())) for p in args[1:]]))
    elif len(args) == 2:
        print(comparison(*(json.loads(Path(p).read_text()) for p in args)))
    else:
        sys.exit("usage: python -m bench.report BEFORE.json AFTER.json   (a before/after table)\n"
                 "       python -m bench.report --runs RESULTS.json ...  (one line per run)")
