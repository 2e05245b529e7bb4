"""The `workbook` command: the pipeline's stages in a terminal, as the original ran them.

    workbook up | down | status [--json] [--show-secrets]
    workbook ingest | topics | replay | route | stream-sql
"""
from __future__ import annotations

import argparse
import json
import sys

from . import stack
from .config import ConfigError, load_settings


def cmd_up(args: argparse.Namespace) -> int:
    """Start the services of the chosen stack."""
    settings = load_settings()
    print(f"Stack: {settings.stack}", file=sys.stderr)
    print_status(stack.stack_up(settings))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Stop what `up` started."""
    stopped = stack.stack_down(load_settings())
    print("Stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Report every service; exit 1 when one is down."""
    settings = load_settings()
    statuses = stack.stack_status(settings, show_secrets=args.show_secrets)
    if args.json:
        print(json.dumps({"stack": settings.stack, "services": [s.as_dict() for s in statuses]}, indent=2))
    else:
        print(f"Stack: {settings.stack}")
        print_status(statuses)
    return 0 if all(s.up for s in statuses) else 1


def print_status(statuses: list[stack.ServiceStatus]) -> None:
    """One aligned line per service, with how to start it when it is down."""
    for s in statuses:
        state = "up  " if s.up else "DOWN"
        line = f"  {s.name:<11} {state} {s.address:<48} {s.version}"
        print(line.rstrip())
        if s.url:
            print(f"  {'':<11}      url: {s.url}")
        if s.hint:
            print(f"  {'':<11}      {s.hint}")


def cmd_notebooks(args: argparse.Namespace) -> int:
    """Execute every notebook headless into the output folder and summarise."""
    from pathlib import Path

    from .notebooks import run_notebooks

    print(f"Executing notebooks into {args.output}/ ...")
    rows = run_notebooks(Path(args.output), args.names)
    failed = [r for r in rows if r["result"] != "ok"]
    total = sum(r["seconds"] for r in rows)
    print(f"Summary: {len(rows) - len(failed)} of {len(rows)} notebooks ran, {total:.1f} s in all.")
    return 1 if failed or not rows else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per stage."""
    parser = argparse.ArgumentParser(prog="workbook", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start Kafka, MySQL and the stream-SQL engine").set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the services that `up` started").set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="show whether each service answers")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--show-secrets", action="store_true", help="show the database password")
    status.set_defaults(func=cmd_status)
    notebooks = sub.add_parser("notebooks", help="execute the notebooks headless into a folder")
    notebooks.add_argument("names", nargs="*", help="only these notebooks (e.g. 00_setup)")
    notebooks.add_argument("--output", default="build", help="folder for executed copies")
    notebooks.set_defaults(func=cmd_notebooks)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `workbook` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, stack.StackError, ValueError) as exc:
        print(f"workbook {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"workbook {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
