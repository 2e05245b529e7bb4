"""The checks of notebook 12_change_data_capture's exercises: connectors and rows of their own.

Each check writes rows of `candle_prices` with `timespan = 'ex12'` (no
pipeline reads that timespan), captures them with a connector of its own,
whose snapshot reads only those rows, and deletes connector and rows at the
end, passed or not.
"""
from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from sqlalchemy import Engine, create_engine, text

from helpers.classroom.exercises.common import CheckResult, call, failed, lab, passed
from helpers.core.errors import InputError
from helpers.core.settings import Settings
from helpers.core.waiting import wait_until
from helpers.infra.clients import make_admin
from helpers.infra.connect import ensure_connect
from helpers.pipeline.cdc import (
    connector_state,
    debezium_config,
    delete_connector,
    put_connector,
    wait_for_changes,
)
from helpers.pipeline.topics import delete_topics

TIMESPAN = "ex12"
COLUMNS = ("ticker", "ts", "open", "high", "low", "close", "volume")
INSERT = text("INSERT INTO candle_prices (ticker, timespan, ts, open, high, low, close, volume) "
              "VALUES ('EX12', :timespan, :ts, :close, :close, :close, :close, 100)")


def lab_rows(engine: Engine, count: int) -> list[int]:
    """`count` new rows of timespan ex12 with random closes (the old ones deleted); their ids."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM candle_prices WHERE timespan = :t"), {"t": TIMESPAN})
        for n in range(count):
            conn.execute(INSERT, {"timespan": TIMESPAN, "ts": n, "close": round(random.uniform(100, 300), 2)})
        return list(conn.execute(text("SELECT id FROM candle_prices WHERE timespan = :t ORDER BY id"),
                                 {"t": TIMESPAN}).scalars())


def lab_table(engine: Engine) -> dict[int, float]:
    """id -> close of the rows of timespan ex12, as MySQL has them now."""
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, close FROM candle_prices WHERE timespan = :t"),
                                 {"t": TIMESPAN}).all())


def lab_config(settings: Settings, purpose: str) -> tuple[str, dict[str, str]]:
    """(connector name, configuration) of a check: topics ex12.<purpose>-<run>…, a snapshot of the
    ex12 rows only, a server id drawn at random."""
    where = lab("12", settings)
    name = f"{where.prefix}{purpose}-{uuid.uuid4().hex[:6]}"
    table = f"{settings.mysql_database}.candle_prices"
    return name, debezium_config(where, random.randint(1_000_000, 2**31 - 1), **{
        "topic.prefix": name,
        "schema.history.internal.kafka.topic": f"{name}.schema-history",
        "snapshot.select.statement.overrides": table,
        f"snapshot.select.statement.overrides.{table}":
            f"SELECT * FROM {table} WHERE timespan = '{TIMESPAN}'",
    })


@contextmanager
def lab_connector(settings: Settings, engine: Engine, name: str) -> Iterator[None]:
    """Delete the connector, its topics and the ex12 rows when the check ends, passed or not."""
    try:
        yield
    finally:
        delete_connector(settings, name)
        wait_until(lambda: connector_state(settings, name) == ("", []), 30, f"connector {name} to go")
        admin = make_admin(settings)
        delete_topics(admin, [t for t in admin.list_topics(timeout=10).topics if t.startswith(name)])
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM candle_prices WHERE timespan = :t"), {"t": TIMESPAN})


def check_rebuild(rebuild: Any, settings: Settings) -> CheckResult:
    """12.1: rebuild(changes) -> {id: close} of the rows alive, compared with MySQL after random
    inserts, updates and deletes captured by a connector of the check's own."""
    ex = "12.1"
    ensure_connect(settings)
    engine = create_engine(settings.database_url)
    ids = lab_rows(engine, random.randint(5, 8))
    name, config = lab_config(settings, "rebuild")
    topic = f"{name}.{settings.mysql_database}.candle_prices"
    with lab_connector(settings, engine, name):
        put_connector(settings, name, config)
        wait_for_changes(settings, topic, len(ids))
        updated = random.sample(ids, 3)
        deleted = random.sample([i for i in ids if i not in updated[:1]], 2)
        with engine.begin() as conn:
            for row in updated + updated[:1]:          # the first one twice
                change = random.choice((-1, 1)) * round(random.uniform(1, 20), 2)   # never 0
                conn.execute(text("UPDATE candle_prices SET close = close + :d WHERE id = :id"),
                             {"d": change, "id": row})
        for row in deleted:
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM candle_prices WHERE id = :id"), {"id": row})
        with engine.begin() as conn:
            for n in range(2):
                conn.execute(INSERT, {"timespan": TIMESPAN, "ts": 100 + n,
                                      "close": round(random.uniform(100, 300), 2)})
        changes = wait_for_changes(settings, topic, len(ids) + 4 + 2 * len(deleted) + 2)
        truth = lab_table(engine)
    changes = changes.sort_values(["partition", "offset"]).reset_index(drop=True)
    answer, wrong = call(ex, "rebuild", rebuild, changes[["id", "op", "before", "after"]].copy())
    if wrong:
        return wrong
    if not isinstance(answer, dict):
        return failed(ex, f"rebuild returned {type(answer).__name__}: return a dict id -> close.")
    ours = set(ids) | set(truth)                     # rows of the check's own (ids drawn, inserted)
    answer = {int(k): v for k, v in answer.items() if k is not None and int(k) in ours}
    table = pd.DataFrame({"in MySQL": pd.Series(truth, dtype=float),
                          "yours": pd.Series(answer, dtype=float)}).sort_index()
    table.index.name = "id"
    gone = sorted(set(answer) - set(truth))
    if gone:
        return failed(ex, f"Row {gone[0]} is no longer in MySQL, yet it is in yours: what do the records "
                          "of a delete say?", table)
    missing = sorted(set(truth) - set(answer))
    if missing:
        return failed(ex, f"Row {missing[0]} is in MySQL, not in yours: which operations bring a row "
                          "into the table?", table)
    off = [i for i in truth if abs(answer[i] - truth[i]) > 1e-6]
    if off:
        return failed(ex, f"Row {off[0]}'s close is {answer[off[0]]} in yours, {truth[off[0]]} in MySQL: "
                          "which half of an update is the row now?", table)
    return passed(ex, f"{len(changes)} records ({len(ids)} read, 4 updates, {len(deleted)} deletes with "
                      f"their tombstones, 2 inserts) rebuild the {len(truth)} rows MySQL has.", table)


def check_slim_connector(slim_config: Any, settings: Settings) -> CheckResult:
    """12.2: slim_config(config, columns) -> a configuration publishing only `columns` and the id,
    run as a connector of the check's own with columns drawn at random."""
    ex = "12.2"
    ensure_connect(settings)
    engine = create_engine(settings.database_url)
    columns = sorted(random.sample(COLUMNS, random.randint(2, 4)))
    name, base = lab_config(settings, "slim")
    answer, wrong = call(ex, "slim_config", slim_config, dict(base), list(columns))
    if wrong:
        return wrong
    if not isinstance(answer, dict):
        return failed(ex, f"slim_config returned {type(answer).__name__}: return the configuration, a dict.")
    own = ("topic.prefix", "database.server.id", "schema.history.internal.kafka.topic")
    kept = {key: base[key] for key in own}
    config = {str(k): str(v) for k, v in answer.items()} | kept     # the check's own topics and id
    topic = f"{name}.{settings.mysql_database}.candle_prices"
    rows = lab_rows(engine, 3)
    with lab_connector(settings, engine, name):
        try:
            put_connector(settings, name, config)
        except InputError as exc:
            return failed(ex, f"The worker refused the configuration: {exc}")
        after = wait_for_changes(settings, topic, len(rows))["after"].iloc[0]
    if not isinstance(after, dict):
        return failed(ex, "The records carry no `after` row: keep Debezium's change events as they are "
                          "(no transforms), and choose the columns in the connector's own properties.")
    fields = set(after)
    table = pd.DataFrame({"asked for": [", ".join(["id", *columns])],
                          "published": [", ".join(sorted(fields))]})
    if fields == {"id", *columns}:
        return passed(ex, f"Only {', '.join(columns)} and the id, as asked.", table)
    if fields == {"id", *COLUMNS, "timespan", "vwap", "transactions"}:
        return failed(ex, "Every column is still published: Debezium has a property that lists the "
                          "columns to keep; how does it name a column?", table)
    if not fields & set(columns):
        return failed(ex, "None of the columns asked for is published: look at how Debezium's column "
                          "properties write a column's name.", table)
    return failed(ex, "Not the columns asked for: compare the two lists.", table)
