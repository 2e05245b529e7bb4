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
    from .topics import topic_counts

    try:
        print("Messages per topic: " + ", ".join(f"{k} {v:,}" for k, v in topic_counts().items()))
    except Exception as exc:  # noqa: BLE001 - the summary must not hide the notebooks' result
        print(f"Messages per topic: unavailable ({type(exc).__name__})")
    return 1 if failed or not rows else 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Fetch bars from a source, validate them and store them in MySQL."""
    from .db import count_bars, create_schema, make_engine, store_bars, truncate_bars
    from .sources import fetch_bars, validate_bars

    options = {"tickers": args.tickers} if args.tickers else {}
    if args.source == "synthetic":
        options = {"n_tickers": args.n_tickers, "n_bars": args.n_bars, "seed": args.seed}
    elif args.source == "massive":
        options.update(start=args.start, end=args.end, timespan=args.timespan, progress=True)
    bars = fetch_bars(args.source, **options)
    good, rejected = validate_bars(bars)
    engine = make_engine()
    create_schema(engine)
    if args.reset:
        truncate_bars(engine)
    added = store_bars(engine, good)
    print(f"{len(bars):,} bars fetched from {args.source}: {len(rejected)} rejected, "
          f"{added:,} new rows stored, {count_bars(engine):,} rows in candle_prices.")
    if len(rejected):
        print(rejected["reason"].value_counts().to_string())
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    """Create the workbook's topics (or delete and re-create them with --reset)."""
    from .clients import make_admin
    from .route import ROUTER_GROUP
    from .topics import describe_topics, ensure_topics, reset_topics

    admin = make_admin()
    outcome = reset_topics(admin, groups=[ROUTER_GROUP]) if args.reset else ensure_topics(admin)
    for name, state in outcome.items():
        print(f"  {name:<16} {state}")
    print(describe_topics(admin).to_string())
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay the rows of candle_prices into pricelist."""
    from .db import make_engine, read_bars
    from .produce import replay_bars

    bars = read_bars(make_engine())
    if bars.empty:
        print("candle_prices is empty: run `workbook ingest` first.", file=sys.stderr)
        return 1
    print(f"Replayed {replay_bars(bars, speed=args.speed)}.")
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    """Route pricelist into variations and alerts, until Ctrl-C/SIGTERM or caught up."""
    import signal

    from .route import Router
    from .rules import Thresholds

    router = Router(thresholds=Thresholds(price=args.price_threshold))
    signal.signal(signal.SIGTERM, lambda *_: router.stop())
    signal.signal(signal.SIGINT, lambda *_: router.stop())
    mode = "until caught up" if args.until_caught_up else "until Ctrl-C"
    print(f"Routing pricelist (alerts when close > ${router.thresholds.price:g}), {mode}...",
          file=sys.stderr)
    print(f"Router {router.run(until_caught_up=args.until_caught_up)}.")
    return 0


def cmd_stream_sql(args: argparse.Namespace) -> int:
    """Start the buy join on the active engine (continuous, or until caught up)."""
    import signal
    import threading

    from .clients import make_admin
    from .schemas import BUY
    from .streamsql import read_buy, run_buy_query
    from .topics import reset_topics

    settings = load_settings()
    # the query reads alerts and variations from their start: empty buy so nothing is doubled
    reset_topics(make_admin(settings), [BUY])
    run = run_buy_query(settings, args.variation_threshold, until_caught_up=args.until_caught_up,
                        engine=args.engine)
    print(f"Started the {run}.", file=sys.stderr)
    if not args.until_caught_up:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        print("Running until Ctrl-C or SIGTERM...", file=sys.stderr)
        stop.wait()
        run.stop()
    print(f"{len(read_buy(settings)):,} messages in buy.")
    return 0


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
    ingest = sub.add_parser("ingest", help="fetch, validate and store bars into candle_prices")
    ingest.add_argument("--source", choices=("sample", "synthetic", "massive"), default="sample")
    ingest.add_argument("--tickers", nargs="+", help="tickers to keep or fetch (default: all / AAPL)")
    ingest.add_argument("--start", help="first day, YYYY-MM-DD (massive)")
    ingest.add_argument("--end", help="last day, YYYY-MM-DD (massive)")
    ingest.add_argument("--timespan", default="minute", help="minute, hour, day... (massive)")
    ingest.add_argument("--n-tickers", type=int, default=5, help="synthetic tickers")
    ingest.add_argument("--n-bars", type=int, default=1000, help="synthetic bars per ticker")
    ingest.add_argument("--seed", type=int, default=0, help="synthetic random seed")
    ingest.add_argument("--reset", action="store_true", help="empty candle_prices first")
    ingest.set_defaults(func=cmd_ingest)
    topics = sub.add_parser("topics", help="create pricelist, alerts, variations, buy and the dead-letter topic")
    topics.add_argument("--reset", action="store_true", help="delete and re-create them (empties them)")
    topics.set_defaults(func=cmd_topics)
    replay = sub.add_parser("replay", help="replay candle_prices into pricelist")
    replay.add_argument("--speed", type=float, default=None,
                        help="compress market time N times (default: as fast as possible)")
    replay.set_defaults(func=cmd_replay)
    route = sub.add_parser("route", help="route pricelist into variations and alerts")
    route.add_argument("--price-threshold", type=float, default=195.0, help="alert when close > this (USD)")
    route.add_argument("--until-caught-up", action="store_true", help="stop at the end of pricelist")
    route.set_defaults(func=cmd_route)
    stream = sub.add_parser("stream-sql", help="run the buy-signal join (ksqlDB or Flink SQL)")
    stream.add_argument("--variation-threshold", type=float, default=0.05,
                        help="big variation when |high/low - 1| > this fraction (0.05 is 5 %%)")
    stream.add_argument("--until-caught-up", action="store_true", help="stop at the end of the inputs")
    stream.add_argument("--engine", choices=("ksqldb", "flink"), help="override the stack's engine")
    stream.set_defaults(func=cmd_stream_sql)
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
