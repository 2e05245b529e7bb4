"""`python -m bench [dashboard] [kafka] [--quick]`: run the benchmarks, print a table, save JSON."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")      # no window: figures are only rendered to PNG

from . import dashboard, throughput  # noqa: E402
from .report import RESULTS_PATH, dashboard_table, kafka_table, machine_info, machine_line, write_results  # noqa: E402

PARTS = ("dashboard", "kafka")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: which parts, how big, where to save."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("parts", nargs="*", metavar="PART",
                        help="dashboard (no Kafka needed) and/or kafka (replay + router); default: both")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="results JSON file")
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}: choose among {', '.join(PARTS)}.")
    args.parts = [p for p in PARTS if p in args.parts] or list(PARTS)
    return args


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts, print the table and write results.json; 1 when a part fails."""
    args = parse_args(argv)
    started = time.perf_counter()
    results = {"mode": "quick" if args.quick else "full", "parts": args.parts, "machine": machine_info()}
    lines = [machine_line(results["machine"]), ""]
    if "dashboard" in args.parts:
        plan = dashboard.Plan.quick() if args.quick else dashboard.Plan()
        results["dashboard"] = dashboard.run(plan, log)
        lines += dashboard_table(results["dashboard"]) + [""]
    if "kafka" in args.parts:
        try:
            results["kafka"] = throughput.run(throughput.QUICK_BARS if args.quick else throughput.BARS,
                                              log=log)
            lines += kafka_table(results["kafka"]) + [""]
        except throughput.BenchError as exc:
            results["kafka"] = {"error": str(exc)}
            lines += [f"Kafka: {exc}", ""]
    results["seconds"] = time.perf_counter() - started
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    path = write_results(results, args.output)
    print("\n".join(lines + [f"{results['seconds']:.0f} s in all; results in {path}"]))
    return 1 if "error" in results.get("kafka", {}) else 0


if __name__ == "__main__":
    sys.exit(main())
