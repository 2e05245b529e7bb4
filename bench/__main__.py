"""`python -m bench [PART ...] [--quick]`: run the benchmarks, write results.json and results.md."""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")      # no window: figures are only rendered to PNG

from helpers.infra.environment import load_settings  # noqa: E402

from . import dashboard, latency, throughput, wall  # noqa: E402
from .report import RESULTS_PATH, machine_info, markdown, write_markdown, write_results  # noqa: E402

PARTS = ("dashboard", "kafka", "stream_sql", "run", "stack")
QUICK_PARTS = ("dashboard", "kafka", "stream_sql")     # run and stack take minutes: only when named


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: which parts, how big, where to save."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("parts", nargs="*", metavar="PART",
                        help=f"any of {', '.join(PARTS)} (dashboard needs no service); default: all "
                             f"(with --quick: {', '.join(QUICK_PARTS)})")
    parser.add_argument("--quick", action="store_true", help="a smoke check: small sizes, one round")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="results JSON file")
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}: choose among {', '.join(PARTS)}.")
    default = QUICK_PARTS if args.quick else PARTS
    args.parts = [p for p in PARTS if p in args.parts] or list(default)
    return args


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)


def measure(results: dict[str, Any], key: str, part: Callable[[], dict[str, Any]]) -> None:
    """Run one part into results[key]; a failure is recorded there, and the other parts go on."""
    try:
        results[key] = part()
    except (throughput.BenchError, OSError) as exc:
        results[key] = {"error": str(exc)}
        log(f"{key}: {exc}")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts, write results.json and results.md, print the table; 1 when a part fails."""
    args = parse_args(argv)
    started = time.perf_counter()
    results: dict[str, Any] = {"mode": "quick" if args.quick else "full", "parts": args.parts,
                               "machine": machine_info()}
    folder = args.output.parent
    settings = load_settings()                    # read once, passed to every part
    if "dashboard" in args.parts:
        plan = dashboard.Plan.quick() if args.quick else dashboard.Plan()
        measure(results, "dashboard", lambda: dashboard.run(plan, log, snapshots=folder))
    if "kafka" in args.parts:
        n_bars, rounds = ((throughput.QUICK_BARS, throughput.QUICK_ROUNDS) if args.quick
                          else (throughput.BARS, throughput.ROUNDS))
        measure(results, "kafka", lambda: throughput.run(n_bars, rounds, settings, log=log))
        if "error" not in results["kafka"]:
            kafka = results["kafka"]
            results["replay"], results["router"] = kafka.pop("replay"), kafka.pop("router")
            results["formats"] = kafka.pop("formats")
            results["kafka_rounds"] = rounds
    if "stream_sql" in args.parts:
        sql_plan = latency.Plan.quick() if args.quick else latency.Plan()
        measure(results, "stream_sql", lambda: latency.run(sql_plan, settings, log=log))
    if "run" in args.parts:
        measure(results, "make_run", lambda: wall.make_run(log))
    if "stack" in args.parts:
        measure(results, "stack", lambda: wall.stack_start(settings, log=log))
    results["seconds"] = time.perf_counter() - started
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    path = write_results(results, args.output)
    table = write_markdown(results, args.output.with_suffix(".md"))
    print(markdown(results))
    print(f"{results['seconds']:.0f} s in all; results in {path} and {table}")
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
