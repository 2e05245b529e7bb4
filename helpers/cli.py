"""The `workbook` command: the pipeline's stages in a terminal, as the original ran them.

    workbook up | down | status [--json] [--show-secrets]
    workbook ingest | topics | replay | route | stream-sql | notebooks
    workbook reset [--to NN] [--with-data]
    workbook class up --students alice,bob [--roster FILE] [--host NAME] [--hub] | class down
    workbook kafka-topics | kafka-consumer-groups | kafka-configs | kafka-console-consumer
             | kafka-share-groups | kafka-features  ARGS...   (Kafka's own tools, ARGS unchanged)

Every stage first checks the services it needs and says in one sentence
which one is down and how to start it. Every error the workbook raises on
purpose is printed as its one-sentence message (exit status 2).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from helpers.core.errors import WorkbookError
from helpers.infra.workbook import Workbook


def cmd_up(args: argparse.Namespace, wb: Workbook) -> int:
    """Start the services of the chosen stack."""
    settings = wb.settings
    from helpers.infra.environment import set_brokers
    from helpers.infra.stack import stack_up

    if args.brokers is not None and args.brokers != settings.brokers:
        settings = set_brokers(args.brokers)       # recorded in .env: status, down, notebooks agree
    print(f"Stack: {settings.stack}", file=sys.stderr)
    print_status(stack_up(settings))
    return 0


def cmd_down(args: argparse.Namespace, wb: Workbook) -> int:
    """Stop what `up` started."""
    settings = wb.settings
    from helpers.infra.stack import stack_down

    stopped = stack_down(settings)
    print("Stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def cmd_status(args: argparse.Namespace, wb: Workbook) -> int:
    """Report every service; exit 1 when one is down."""
    settings = wb.settings
    from helpers.infra.status import stack_status

    statuses = stack_status(settings, show_secrets=args.show_secrets)
    if args.json:
        print(json.dumps({"stack": settings.stack, "services": [s.as_dict() for s in statuses]}, indent=2))
    else:
        print(f"Stack: {settings.stack}")
        print_status(statuses)
    return 0 if all(s.fine for s in statuses) else 1


def cmd_connect(args: argparse.Namespace, wb: Workbook) -> int:
    """Start or stop Kafka Connect (notebook 12), or list its connectors."""
    settings = wb.settings
    from helpers.infra.connect import ensure_connect, stop_connect
    from helpers.pipeline.cdc import connect_call

    if args.action == "up":
        print(f"Kafka Connect answers at {ensure_connect(settings)}.")
    elif args.action == "down":
        print("Stopped Kafka Connect." if stop_connect(settings) else "Kafka Connect was not running here.")
    else:
        names = connect_call(settings, "GET", "/connectors?expand=status")
        for name, about in sorted(names.items()):
            tasks = ", ".join(t["state"] for t in about["status"]["tasks"]) or "no task"
            print(f"  {name:<24} {about['status']['connector']['state']:<8} tasks: {tasks}")
        print(f"{len(names)} connector(s) at {settings.connect_url}.")
    return 0


def cmd_class(args: argparse.Namespace, wb: Workbook) -> int:
    """Start or stop the class server: secure Kafka and MariaDB, one namespace per student."""
    settings = wb.settings
    from helpers.classroom.classserver import ClassServer
    from helpers.classroom.hub import Hub
    from helpers.classroom.roster import assign_ids, read_mapping, read_roster, write_mapping

    server = ClassServer.for_settings(settings, args.host)
    hub = Hub(server, args.hub_port)
    if args.action == "down":
        stopped = hub.down() + server.down()
        print("Stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    names = [n.strip() for n in (args.students or "").split(",") if n.strip()]
    mapping = server.students_dir / "roster.csv"
    known = read_mapping(mapping)
    roster = assign_ids(read_roster(args.roster), known) if args.roster else {}
    students = server.up(names + [i for i in roster.values() if i not in names])
    if roster:
        write_mapping({**known, **roster}, mapping)
    full_names = {i: name for name, i in roster.items()}
    print(f"Class server: Kafka SASL_SSL on {server.host}:{settings.kafka_port}, "
          f"MariaDB on {server.host}:{settings.mysql_port}.")
    for s in students:
        print(f"  {s.name:<24} topics, groups, transactional ids {s.name}.*   database {s.database}"
              + (f"   ({full_names[s.name]})" if s.name in full_names else ""))
    if roster:
        print(f"The roster's names and ids: {mapping}")
    print(f"Limits: {server.limits.summary()}.")
    if not args.hub:
        print(f"Hand each student their .env file and ca.pem, from {server.students_dir}/ "
              "(the .env files hold passwords: give each to its student alone).")
        return 0
    handout = hub.up(students, full_names)
    print(f"Flink cluster for everybody's SQL: {hub.flink.address}, {hub.flink.slots} slots "
          f"(TaskManager {hub.flink.taskmanager_mb} MB).")
    print(f"JupyterHub: {hub.url} (instructor: admin, admin page {hub.url}hub/admin). Each student logs in "
          f"with their id and the first password of {handout} (readable by root only; hand each slip to its "
          "student alone), and may change it at /hub/change-password.")
    return 0


def print_status(statuses: list) -> None:
    """One aligned line per service, with how to start it when it is down."""
    for s in statuses:
        state = "up  " if s.up else "off " if s.on_demand else "DOWN"
        print(f"  {s.name:<11} {state} {s.address:<48} {s.version}".rstrip())
        if s.url:
            print(f"  {'':<11}      url: {s.url}")
        if s.hint:
            print(f"  {'':<11}      {s.hint}")


def cmd_notebooks(args: argparse.Namespace, wb: Workbook) -> int:
    """Execute every notebook headless into the output folder and summarise."""
    settings = wb.settings
    from helpers.classroom.notebooks import run_notebooks
    from helpers.pipeline.topics import topic_counts

    print(f"Executing notebooks into {args.output}/ ...")
    rows = run_notebooks(Path(args.output), args.names)
    failed = [r for r in rows if r["result"] != "ok"]
    total = sum(r["seconds"] for r in rows)
    print(f"Summary: {len(rows) - len(failed)} of {len(rows)} notebooks ran, {total:.1f} s in all.")
    try:
        counts = topic_counts(settings.topics.all, settings)
        print("Messages per topic: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    except WorkbookError as exc:       # the summary must not hide the notebooks' result
        print(f"Messages per topic: unavailable ({exc})")
    return 1 if failed or not rows else 0


def cmd_ingest(args: argparse.Namespace, wb: Workbook) -> int:
    """Fetch bars from a source, validate them and store them in MySQL."""
    settings = wb.settings
    from helpers.core.validation import validate_bars
    from helpers.pipeline.db import count_bars, create_schema, store_bars, truncate_bars
    from helpers.pipeline.sources import fetch_bars

    options: dict = {"tickers": args.tickers} if args.tickers else {}
    timespan = args.timespan
    if args.source == "synthetic":
        options, timespan = {"n_tickers": args.n_tickers, "n_bars": args.n_bars, "seed": args.seed}, "minute"
    elif args.source == "massive":
        options.update(start=args.start, end=args.end, timespan=timespan, progress=settings.progress,
                       settings=settings)
    else:
        options.update(timespan=timespan)
    bars = fetch_bars(args.source, **options)
    good, rejected = validate_bars(bars)
    engine = wb.engine
    create_schema(engine)
    if args.reset:
        truncate_bars(engine)
    added = store_bars(engine, good, timespan, progress=settings.progress)
    print(f"{len(bars):,} {timespan} bars fetched from {args.source}: {len(rejected)} rejected, "
          f"{added:,} new rows stored, {count_bars(engine, timespan):,} {timespan} bars in candle_prices.")
    if len(rejected):
        print(rejected["reason"].value_counts().to_string())
    return 0


def cmd_topics(args: argparse.Namespace, wb: Workbook) -> int:
    """Create the workbook's topics (or delete and re-create them with --reset)."""
    settings = wb.settings
    from helpers.pipeline.topics import describe_topics, ensure_topics, reset_topics

    admin, names = wb.admin, settings.topics.all
    outcome = (reset_topics(admin, names, groups=[settings.group("router")]) if args.reset
               else ensure_topics(admin, names))
    for name, state in outcome.items():
        print(f"  {name:<16} {state}")
    print(describe_topics(admin, names).to_string())
    return 0


def cmd_replay(args: argparse.Namespace, wb: Workbook) -> int:
    """Replay the rows of candle_prices into pricelist."""
    settings = wb.settings
    from helpers.pipeline.db import read_bars
    from helpers.pipeline.produce import replay_bars

    bars = read_bars(wb.engine, args.timespan)
    if bars.empty:
        print(f"candle_prices holds no {args.timespan} bars: run `workbook ingest` first.", file=sys.stderr)
        return 1
    print(f"Replayed {replay_bars(bars, settings=settings, speed=args.speed)}.")
    return 0


def stop_on_signals(stop) -> None:
    """Ctrl-C and SIGTERM call `stop()`: the stage finishes what it has in hand, then returns."""
    signal.signal(signal.SIGTERM, lambda *_: stop())
    signal.signal(signal.SIGINT, lambda *_: stop())


def cmd_route(args: argparse.Namespace, wb: Workbook) -> int:
    """Route pricelist into variations and alerts, until Ctrl-C/SIGTERM or caught up."""
    settings = wb.settings
    from helpers.core.rules import Thresholds
    from helpers.pipeline.route import Router

    with Router(settings, Thresholds(price=args.price_threshold), exactly_once=args.exactly_once) as router:
        stop_on_signals(router.stop)
        mode = "until caught up" if args.until_caught_up else "until Ctrl-C"
        semantics = "exactly-once" if args.exactly_once else "at-least-once"
        print(f"Routing {settings.topics.pricelist} ({semantics}, alerts when close > "
              f"${router.thresholds.price:g}), {mode}...", file=sys.stderr)
        print(f"Router {router.run(until_caught_up=args.until_caught_up)}.")
    return 0


def cmd_stream_sql(args: argparse.Namespace, wb: Workbook) -> int:
    """Start the buy join on the active engine (continuous, or until caught up)."""
    settings = wb.settings
    from helpers.pipeline.streamsql import read_buy, run_buy_query
    from helpers.pipeline.topics import reset_topics

    # the query reads alerts and variations from their start: empty buy so nothing is doubled
    reset_topics(wb.admin, [settings.topics.buy])
    run = run_buy_query(wb, args.variation_threshold, until_caught_up=args.until_caught_up,
                        engine=args.engine)
    print(f"Started the {run}.", file=sys.stderr)
    if not args.until_caught_up:
        stop = threading.Event()
        stop_on_signals(stop.set)
        print("Running until Ctrl-C or SIGTERM...", file=sys.stderr)
        stop.wait()
        run.stop()
    print(f"{len(read_buy(settings)):,} messages in {settings.topics.buy}.")
    return 0


def cmd_reset(args: argparse.Namespace, wb: Workbook) -> int:
    """Put the course back to the start of a notebook (topics, groups, streams, tables)."""
    settings = wb.settings
    from helpers.classroom.course import check_stage, reset_course

    check_stage(args.to)                       # a bad --to fails before anything is touched
    target = f"the start of notebook {args.to}" if args.to else "its start"
    print(f"Resetting the course{' in namespace ' + settings.namespace if settings.namespace else ''} "
          f"to {target}...", file=sys.stderr)
    print(reset_course(wb, args.to, with_data=args.with_data))
    return 0


def cmd_kafka_tool(args: argparse.Namespace, wb: Workbook) -> int:
    """Run one of Kafka's command-line tools on the workbook's Kafka, its arguments unchanged."""
    settings = wb.settings
    from helpers.infra.kafka_tools import run_kafka_tool, uses_workbook_kafka

    if uses_workbook_kafka(args.tool_args):      # not for --help, nor for a cluster the user names
        from helpers.infra.status import require_services

        require_services(settings, "kafka")
    return run_kafka_tool(settings, args.tool, args.tool_args)


#: the services each command needs, checked before it starts
NEEDS = {"ingest": ("mysql",), "topics": ("kafka",), "replay": ("mysql", "kafka"),
         "route": ("kafka",), "stream-sql": ("kafka", "stream-sql"),
         "notebooks": ("kafka", "mysql", "stream-sql"), "reset": ("kafka", "mysql")}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per stage."""
    parser = argparse.ArgumentParser(prog="workbook", description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Kafka, MySQL and the stream-SQL engine")
    up.add_argument("--brokers", type=int, choices=(1, 3),
                    help="Kafka nodes: 1 or 3 (recorded as WORKBOOK_BROKERS in .env)")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop the services that `up` started").set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="show whether each service answers")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--show-secrets", action="store_true", help="show the database password")
    status.set_defaults(func=cmd_status)
    connect = sub.add_parser("connect", help="Kafka Connect (notebook 12): start, stop, list connectors")
    connect.add_argument("action", choices=("up", "down", "status"))
    connect.set_defaults(func=cmd_connect)
    klass = sub.add_parser("class",
                           help="a class server: secure Kafka and MariaDB, one namespace per student")
    klass.add_argument("action", choices=("up", "down"))
    klass.add_argument("--students", help="comma-separated student names (lower case), e.g. alice,bob")
    klass.add_argument("--roster", type=Path, help=(
                       "a file of full names, one per line, in any script: each gets an id (José Muñoz: "
                       "jose-munoz), shown here and kept in the students' folder as roster.csv"))
    klass.add_argument("--host", default="127.0.0.1", help=(
                       "the name students use to reach this server (default 127.0.0.1: this machine only)"))
    klass.add_argument("--hub", action="store_true", help=(
                       "also start JupyterHub (students need only a browser) and a shared Flink cluster; "
                       "needs root, to make a Unix account per student"))
    klass.add_argument("--hub-port", type=int, default=8000, help=(
                       "the hub's port (default 8000; its API and Flink's use the next three)"))
    klass.set_defaults(func=cmd_class)
    ingest = sub.add_parser("ingest", help="fetch, validate and store bars into candle_prices")
    ingest.add_argument("--source", choices=("sample", "synthetic", "massive"), default="sample")
    ingest.add_argument("--tickers", nargs="+", help="tickers to keep or fetch (default: all / AAPL)")
    ingest.add_argument("--start", help="first day, YYYY-MM-DD (massive)")
    ingest.add_argument("--end", help="last day, YYYY-MM-DD (massive)")
    ingest.add_argument("--timespan", default="day",
                        help="day or minute (sample); minute, hour, day... (massive)")
    ingest.add_argument("--n-tickers", type=int, default=5, help="synthetic tickers")
    ingest.add_argument("--n-bars", type=int, default=1000, help="synthetic bars per ticker")
    ingest.add_argument("--seed", type=int, default=0, help="synthetic random seed")
    ingest.add_argument("--reset", action="store_true", help="empty candle_prices first")
    ingest.set_defaults(func=cmd_ingest)
    topics = sub.add_parser("topics",
                            help="create pricelist, alerts, variations, buy and the dead-letter topic")
    topics.add_argument("--reset", action="store_true", help="delete and re-create them (empties them)")
    topics.set_defaults(func=cmd_topics)
    replay = sub.add_parser("replay", help="replay candle_prices into pricelist")
    replay.add_argument("--timespan", default="day", help="which bars to replay: day or minute")
    replay.add_argument("--speed", type=float, default=None,
                        help="compress market time N times (default: as fast as possible)")
    replay.set_defaults(func=cmd_replay)
    route = sub.add_parser("route", help="route pricelist into variations and alerts")
    route.add_argument("--price-threshold", type=float, default=195.0, help="alert when close > this (USD)")
    route.add_argument("--until-caught-up", action="store_true", help="stop at the end of pricelist")
    route.add_argument("--exactly-once", action="store_true",
                       help="write each batch and its offsets in one transaction")
    route.set_defaults(func=cmd_route)
    stream = sub.add_parser("stream-sql", help="run the buy-signal join (ksqlDB or Flink SQL)")
    stream.add_argument("--variation-threshold", type=float, default=0.05,
                        help="big variation when |high/low - 1| > this fraction (0.05 is 5 %%)")
    stream.add_argument("--until-caught-up", action="store_true", help="stop at the end of the inputs")
    stream.add_argument("--engine", choices=("ksqldb", "flink"), help="override the stack's engine")
    stream.set_defaults(func=cmd_stream_sql)
    reset = sub.add_parser("reset", help="put the course back: topics, consumer groups, streams, tables")
    reset.add_argument("--to", metavar="NN", help="rebuild what the notebooks before NN produce (e.g. 05)")
    reset.add_argument("--with-data", action="store_true",
                       help="also empty candle_prices and ingest the sample bars again")
    reset.set_defaults(func=cmd_reset)
    notebooks = sub.add_parser("notebooks", help="execute the notebooks headless into a folder")
    notebooks.add_argument("names", nargs="*", help="only these notebooks (e.g. 00_setup)")
    notebooks.add_argument("--output", default="build", help="folder for executed copies")
    notebooks.set_defaults(func=cmd_notebooks)
    from helpers.infra.kafka_tools import KAFKA_TOOLS

    for tool in KAFKA_TOOLS:     # no options of its own: main() hands every argument to the tool
        kafka_tool = sub.add_parser(tool, add_help=False, usage=f"workbook {tool} ARGS...",
                                    help="Kafka's own tool on the workbook's Kafka, ARGS unchanged "
                                         "(--help: its help)")
        kafka_tool.set_defaults(func=cmd_kafka_tool, tool=tool, tool_args=[])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `workbook` console script."""
    from confluent_kafka import KafkaException

    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if hasattr(args, "tool_args"):
        args.tool_args = rest                  # a Kafka tool's arguments, in their order, unchanged
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        with Workbook.from_env() as wb:
            if args.command in NEEDS:
                from helpers.infra.status import require_services

                require_services(wb.settings, *NEEDS[args.command])
            return args.func(args, wb)
    except WorkbookError as exc:
        print(f"workbook {args.command}: {exc}", file=sys.stderr)
        return 2
    except KafkaException as exc:          # a broker's refusal the stage did not expect: one sentence
        error = exc.args[0] if exc.args else None
        said = f"{error.name()}: {error.str()}" if error is not None and hasattr(error, "name") else str(exc)
        print(f"workbook {args.command}: Kafka refused the request ({said}).", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"workbook {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
