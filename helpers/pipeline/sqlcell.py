"""SQL a student types, run on the stack's engine: Flink SQL here, ksqlDB with Docker (06_stream_sql).

`run_sql(wb, text)` runs one or more statements, one after another. A
statement that defines or writes (CREATE, DROP, SET, INSERT) runs and says
what it did; a query (SELECT, WITH) shows its result:

- bounded (the default): the query reads its tables as they are now, to their
  end, and stops; its result comes back as a `SqlResult`: the final table and
  the changes that made it (one row per insert `+` or retraction `−`);
- live=True: the query follows its tables as they grow; the table on screen
  updates as changes arrive, and the query stops by itself after `rows`
  changes or `seconds` seconds.

In a notebook, `load_sql_magic(wb)` makes a cell that starts with `%%sql`
do the same. When the engine refuses a statement, the error is one sentence
that quotes the line it points at. On Flink a query's changes travel back
through a Kafka topic of the student's own (`<prefix>sql.result.…`, one
partition, deleted afterwards), as debezium-json records.
"""
from __future__ import annotations

import re
import shlex
import time
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from helpers.core.errors import InputError, StreamSqlError
from helpers.core.schemas import readable
from helpers.infra.clients import assign_from_start, batches_to_end, make_consumer
from helpers.pipeline.sqlfiles import SQL_DIR, load_sql, split_statements
from helpers.pipeline.topics import compacted_config, delete_topics, ensure_topics

if TYPE_CHECKING:
    from helpers.core.settings import Settings
    from helpers.infra.workbook import Workbook

QUERY_WORDS = ("SELECT", "WITH", "VALUES")
LIVE_ROWS, LIVE_SECONDS = 50, 20.0          # a live query stops after this many changes or seconds
SHOWN_ROWS = 20                             # rows of a result shown in a notebook
QUERY_TIMEOUT_S = 300                       # a bounded query's longest run
POSITION = re.compile(r"(?:at|From) line (\d+), column (\d+)")


@dataclass
class SqlResult:
    """What a query gave: its final table and the changes that made it, in arrival order."""

    statement: str
    columns: list[str]
    changes: pd.DataFrame                   # column `op` ('+' insert, '−' retraction), then the columns
    seconds: float
    engine: str
    stopped: str = ""                       # live: why it stopped ('50 changes', '20 s')
    types: dict[str, str] = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        """The result as it stands after every change: each retraction removes one equal row."""
        return final_table(self.changes, self.columns)

    def summary(self) -> str:
        """One line: rows, changes, time."""
        retractions = int((self.changes["op"] == "−").sum()) if len(self.changes) else 0
        inserts = len(self.changes) - retractions
        why = f", stopped after {self.stopped}" if self.stopped else ""
        return (f"{len(self.table):,} rows, from {len(self.changes):,} changes ({inserts:,} inserts, "
                f"{retractions:,} retractions), in {self.seconds:.1f} s on {self.engine}{why}")

    def shown(self) -> pd.DataFrame:
        """The first rows, with epoch-millisecond times as UTC dates (the table keeps the numbers)."""
        return readable(self.table.head(SHOWN_ROWS))

    def _repr_html_(self) -> str:
        return f"<p>{self.summary()}</p>" + self.shown().to_html(index=False)

    def __repr__(self) -> str:
        return f"{self.summary()}\n{self.shown().to_string(index=False)}"


@dataclass
class SqlDone:
    """What a statement that is not a query did."""

    statement: str
    outcome: str

    def __repr__(self) -> str:
        first = " ".join(self.statement.split())[:70]
        return f"{self.outcome}: {first}"


def final_table(changes: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Apply inserts and retractions in order: what remains is the table."""
    rows: dict[tuple, list[tuple]] = {}
    for op, *values in changes[["op", *columns]].itertuples(index=False, name=None):
        key = tuple(values)
        if op == "+":
            rows.setdefault(key, []).append(key)
        elif rows.get(key):
            rows[key].pop()
    kept = [row for group in rows.values() for row in group]
    return pd.DataFrame(kept, columns=columns)


def statement_kind(statement: str) -> str:
    """'query' for SELECT/WITH/VALUES, else 'statement'."""
    words = re.sub(r"--[^\n]*", "", statement).split()
    return "query" if words and words[0].upper() in QUERY_WORDS else "statement"


def refusal(message: str, statement: str, engine: str) -> StreamSqlError:
    """The engine's refusal as one sentence that quotes the line it points at."""
    reason = " ".join(message.split())
    reason = re.sub(r"\b(?:[a-z]+\.)+[A-Z]\w*(?:Exception|Error): ", "", reason)   # Java class names
    reason = reason.replace("SQL validation failed. ", "").replace("SQL parse failed. ", "")
    found = POSITION.search(reason)
    where = ""
    if found:
        number, column = int(found.group(1)), int(found.group(2))
        lines = statement.strip().splitlines()
        if 1 <= number <= len(lines):
            where = f" at line {number}, column {column} (`{lines[number - 1].strip()}`)"
        reason = POSITION.sub("", reason).lstrip(" :")
        reason = re.sub(r"^to line \d+, column \d+:\s*", "", reason)
    return StreamSqlError(f"{engine} refused the statement{where}: {reason.rstrip('.')}.")


# --- Flink SQL ----------------------------------------------------------------------

def flink_statement(wb: Workbook, statement: str) -> SqlDone:
    """Run one DDL/SET/INSERT statement in the Workbook's Flink session."""
    from helpers.pipeline.flinksql import flink_session

    session = flink_session(wb)
    request = session.send("sql_exec", jar=str(wb.settings.flink_connector_jar), statements=[statement])
    try:
        done = session.wait_for(request, "done", QUERY_TIMEOUT_S)
    except StreamSqlError as exc:
        raise refusal(str(exc), statement, "Flink SQL") from None
    return SqlDone(statement, done["kinds"][0] if done.get("kinds") else "done")


def flink_query(wb: Workbook, query: str, live: bool, rows: int, seconds: float,
                show: Any = None) -> SqlResult:
    """Run a query in the Workbook's Flink session; its changes come back through a topic of the student's."""
    from helpers.pipeline.flinksql import FlinkJob, flink_session

    settings, session = wb.settings, flink_session(wb)
    topic = f"{settings.prefix}sql.result.{uuid.uuid4().hex[:10]}"
    ensure_topics(wb.admin, [topic], partitions=1)          # one partition: the changes stay in order
    started = time.perf_counter()
    try:
        request = session.send("sql_select", jar=str(settings.flink_connector_jar), query=query,
                               bootstrap=settings.bootstrap_servers, topic=topic, bounded=not live)
        try:
            answer = session.wait_for(request, "submitted" if live else "finished", QUERY_TIMEOUT_S)
        except StreamSqlError as exc:
            raise refusal(str(exc), query, "Flink SQL") from None
        columns = [name for name, _ in answer["columns"]]
        types = dict(answer["columns"])
        if live:
            job = FlinkJob(session, request, True, answer)
            try:
                changes, stopped = follow(settings, topic, columns, types, rows, seconds, started, show)
            finally:
                job.stop()
        else:
            changes, stopped = read_changes(settings, topic, columns, types), ""
    finally:
        delete_topics(wb.admin, [topic])
    return SqlResult(query, columns, changes, time.perf_counter() - started, "Flink SQL", stopped, types)


def decode_change(raw: bytes, columns: list[str]) -> tuple | None:
    """('+' or '−', *values) of one debezium-json record (None for an empty one)."""
    record = orjson.loads(raw) if raw else None
    if not record:
        return None
    if record.get("after") is not None:
        return ("+", *(record["after"].get(c) for c in columns))
    return ("−", *(record["before"].get(c) for c in columns))


def as_frame(rows: list[tuple], columns: list[str], types: dict[str, str]) -> pd.DataFrame:
    """The changes as a frame, SQL timestamps as pandas times (UTC)."""
    frame = pd.DataFrame(rows, columns=["op", *columns])
    for column, kind in types.items():
        if kind.startswith("TIMESTAMP") and column in frame:
            frame[column] = pd.to_datetime(frame[column].str.rstrip("Z"), utc=True)
    return frame


def read_changes(settings: Any, topic: str, columns: list[str], types: dict[str, str]) -> pd.DataFrame:
    """Every change a finished query wrote to `topic`."""
    rows = []
    group = settings.group(f"sql-{uuid.uuid4().hex[:8]}")
    with closing(make_consumer(group, settings)) as consumer:
        if assign_from_start(consumer, [topic]):
            for batch in batches_to_end(consumer, timeout=60, size=5000):
                rows += [row for msg in batch if (row := decode_change(msg.value(), columns))]
    return as_frame(rows, columns, types)


def follow(settings: Any, topic: str, columns: list[str], types: dict[str, str], rows: int,
           seconds: float, started: float, show: Any) -> tuple[pd.DataFrame, str]:
    """Read a live query's changes as they come, showing the table, until `rows` changes or `seconds`."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    got: list[tuple] = []
    deadline, shown = time.monotonic() + seconds, 0.0
    group = settings.group(f"sql-{uuid.uuid4().hex[:8]}")
    with closing(make_consumer(group, settings, {"enable.partition.eof": False})) as consumer:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        while len(got) < rows and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.2):
                if not msg.error() and (row := decode_change(msg.value(), columns)):
                    got.append(row)
            if show is not None and time.monotonic() - shown > 0.5:
                frame = as_frame(got, columns, types)
                show(SqlResult("", columns, frame, time.perf_counter() - started, "Flink SQL", "", types))
                shown = time.monotonic()
    stopped = f"{rows} changes" if len(got) >= rows else f"{seconds:g} s"
    return as_frame(got[:rows], columns, types), stopped


# --- ksqlDB -----------------------------------------------------------------------------

def ksqldb_statement(wb: Workbook, statement: str) -> SqlDone:
    """Run one statement on ksqlDB (`POST /ksql`); a refusal is ksqlDB's own sentence (KsqlError)."""
    answer = wb.ksqldb.execute([statement])
    status = answer[-1].get("commandStatus", {}) if answer else {}
    return SqlDone(statement, status.get("message") or "done")


def ksqldb_query(wb: Workbook, query: str, live: bool, rows: int, seconds: float) -> SqlResult:
    """Run a query on ksqlDB (`POST /query-stream`): a push query from the start of its streams,
    stopped after `rows` rows or `seconds`; ksqlDB sends each row once (no retractions)."""
    started = time.perf_counter()
    found = wb.ksqldb.query(query, {"auto.offset.reset": "earliest"}, limit=rows, wait=seconds)
    columns = list(found[0]) if found else []
    changes = pd.DataFrame([("+", *row.values()) for row in found], columns=["op", *columns])
    stopped = f"{rows} changes" if len(found) >= rows else (f"{seconds:g} s" if live else "")
    return SqlResult(query, columns, changes, time.perf_counter() - started, "ksqlDB", stopped)


# --- the course's own statements (ksql/ and ksql/flink/) -----------------------------------

LESSON_TABLES = "03_lesson_tables.sql"     # Flink: bars, bars_live, latest_price
JOIN_TABLES = "01_create_tables.sql"       # Flink: alerts, variations (then buy), declared once for both
LESSON_STREAMS = "03_lesson_streams.sql"   # ksqlDB: the bars stream


def lesson_values(wb: Workbook, where: Settings, filename: str) -> dict[str, object]:
    """The placeholders of a lesson file for the Workbook's engine, over the topics of `where`."""
    from helpers.pipeline.flinksql import kafka_login
    from helpers.pipeline.ksqldb import stream_name

    topics = where.topics
    latest = where.prefix + "latest_price"
    if wb.settings.stream_engine == "flink":
        values: dict[str, object] = {
            "pricelist_topic": topics.pricelist, "alerts_topic": topics.alerts,
            "variations_topic": topics.variations, "latest_topic": latest,
            "bootstrap_servers": where.bootstrap_servers, "kafka_login": kafka_login(where.kafka_security),
            "group_id": where.group("sql"), "buy_topic": topics.buy,
            "scan_bounded_mode": "latest-offset"}       # a lesson query reads its tables to their end
    else:
        values = {"bars_stream": stream_name(topics.pricelist), "pricelist_topic": topics.pricelist,
                  "latest_table": stream_name(latest).replace("_stream", "_table"), "latest_topic": latest}
    text = (SQL_DIR / engine_folder(wb) / filename).read_text()
    return {k: v for k, v in values.items() if "${" + k + "}" in text}


def engine_folder(wb: Workbook) -> str:
    """'flink' for Flink SQL's files (ksql/flink/), '' for ksqlDB's (ksql/)."""
    return "flink" if wb.settings.stream_engine == "flink" else ""


def course_sql(wb: Workbook, filename: str, where: Settings) -> str:
    """A course statement file for the Workbook's engine, its placeholders filled for `where`."""
    relative = f"{engine_folder(wb)}/{filename}".lstrip("/")
    return "\n\n".join(load_sql(relative, **lesson_values(wb, where, filename)))


def register_lesson_tables(wb: Workbook, where: Settings) -> list[SqlResult | SqlDone]:
    """The tables (Flink) or streams (ksqlDB) of the lessons over `where`'s topics; on Flink the
    latest-price table's topic is made first, compacted."""
    if wb.settings.stream_engine == "flink":
        ensure_topics(wb.admin, [where.prefix + "latest_price"], partitions=1, config=compacted_config(where))
        alerts, variations, _buy = load_sql(f"flink/{JOIN_TABLES}", **lesson_values(wb, where, JOIN_TABLES))
        inputs = [statement.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1)
                  for statement in (alerts, variations)]      # the join's own declarations
        return run_sql(wb, "\n\n".join([course_sql(wb, LESSON_TABLES, where), *inputs]))
    return run_sql(wb, course_sql(wb, LESSON_STREAMS, where))


# --- one entry point, and the cell magic -----------------------------------------------

def run_sql(wb: Workbook, text: str, *, live: bool = False, rows: int = LIVE_ROWS,
            seconds: float = LIVE_SECONDS, show: Any = None) -> list[SqlResult | SqlDone]:
    """Run every statement of `text` on the stack's engine, in order; return what each gave."""
    statements = split_statements(text)
    if not statements:
        raise InputError("No SQL statement to run: write one, ending with ';' if there are several.")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise InputError(f"rows must be a whole number of changes, at least 1, got {rows!r}.")
    flink = wb.settings.stream_engine == "flink"
    outcomes: list[SqlResult | SqlDone] = []
    for statement in statements:
        if statement_kind(statement) == "query":
            outcomes.append(flink_query(wb, statement, live, rows, seconds, show) if flink
                            else ksqldb_query(wb, statement, live, rows, seconds))
        else:
            outcomes.append(flink_statement(wb, statement) if flink else ksqldb_statement(wb, statement))
    return outcomes


def parse_magic_line(line: str) -> dict[str, Any]:
    """The options of a `%%sql` line: --live, --rows N, --seconds T, --save NAME."""
    options: dict[str, Any] = {"live": False, "rows": LIVE_ROWS, "seconds": LIVE_SECONDS, "save": None}
    words = shlex.split(line)
    while words:
        word = words.pop(0)
        if word == "--live":
            options["live"] = True
        elif word in ("--rows", "--seconds", "--save") and words:
            value = words.pop(0)
            try:
                options[word[2:]] = {"--rows": int, "--seconds": float, "--save": str}[word](value)
            except ValueError:
                raise InputError(f"{word} takes a number, got {value!r}.") from None
        else:
            raise InputError(f"%%sql takes --live, --rows N, --seconds T and --save NAME, got {word!r}.")
    return options


def load_sql_magic(wb: Workbook) -> None:
    """Make `%%sql` cells of this notebook run on `wb`'s stream-SQL engine (call once, in the setup cell)."""
    from IPython import get_ipython
    from IPython.display import display

    shell = get_ipython()
    if shell is None:
        raise InputError("load_sql_magic works in a notebook (IPython); elsewhere call run_sql(wb, text).")

    def sql(line: str, cell: str) -> Any:
        options = parse_magic_line(line)
        handle = display(None, display_id=True) if options["live"] else None
        outcomes = run_sql(wb, cell, live=options["live"], rows=options["rows"], seconds=options["seconds"],
                           show=handle.update if handle else None)
        last = outcomes[-1]
        if options["save"]:
            shell.user_ns[options["save"]] = last
        for done in outcomes[:-1]:
            print(repr(done))
        if handle is not None:
            handle.update(last)
            return None
        return last

    shell.register_magic_function(sql, magic_kind="cell", magic_name="sql")
