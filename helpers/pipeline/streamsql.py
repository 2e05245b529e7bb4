"""Stream SQL: the buy-signal join on the active engine (07_stream_joins).

ksqlDB with the Docker stack, Flink SQL (PyFlink) without it; both run the
SQL files under `ksql/` on the same topics and write the same `buy` messages,
and both must equal the pandas reference `rules.buy_signals`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from helpers.core.rules import BUY_COLUMNS, VARIATION_THRESHOLD, check_variation_threshold
from helpers.core.schemas import BUY
from helpers.core.settings import Settings
from helpers.core.waiting import wait_until
from helpers.infra.clients import refused_as_sentence
from helpers.pipeline.sqlfiles import SQL_DIR, split_statements
from helpers.pipeline.topics import consumer_lag, read_topic

if TYPE_CHECKING:
    from helpers.infra.workbook import Workbook


@dataclass
class StreamSqlRun:
    """A started buy query: which engine, how long it took, and the handle to stop it."""

    engine: str
    seconds: float
    handle: Any
    settings: Settings

    def stop(self) -> None:
        """Stop a continuous query (Flink job cancelled; ksqlDB query dropped)."""
        if self.engine == "flink":
            self.handle.stop()
        else:
            from helpers.pipeline.ksqldb import drop_statements

            self.handle.execute(drop_statements(self.settings.topics))

    def __str__(self) -> str:
        return f"buy query on {self.engine} in {self.seconds:.1f} s"


def sql_statement(engine: str, filename: str, index: int = 0) -> str:
    """One statement of an engine's SQL file, comments dropped, placeholders kept (shown in 06 and 07)."""
    folder = SQL_DIR / "flink" if engine == "flink" else SQL_DIR
    return split_statements((folder / filename).read_text())[index]


def run_buy_query(wb: Workbook, variation_threshold: float = VARIATION_THRESHOLD, *,
                  until_caught_up: bool = True, engine: str | None = None,
                  timeout: float = 300) -> StreamSqlRun:
    """Start the buy join in the Workbook's stream-SQL session; with until_caught_up, return once it
    has read both inputs to the end."""
    settings = wb.settings
    threshold = check_variation_threshold(variation_threshold)
    engine = engine or settings.stream_engine
    topics = settings.topics
    start = time.perf_counter()
    if engine == "flink":
        from helpers.pipeline.flinksql import FlinkJob

        handle: Any = FlinkJob.start(wb, threshold, until_caught_up=until_caught_up, timeout=timeout)
    else:
        from helpers.pipeline.ksqldb import create_buy_pipeline, query_group_suffix

        handle = wb.ksqldb
        query_id = create_buy_pipeline(handle, threshold, topics)
        if until_caught_up:
            wait_until_caught_up(wb, query_group_suffix(query_id), [topics.alerts, topics.variations],
                                 timeout)
    return StreamSqlRun(engine, time.perf_counter() - start, handle, settings)


def wait_until_caught_up(wb: Workbook, group_suffix: str, topics: list[str], timeout: float) -> None:
    """Wait until the consumer group whose id ends with `group_suffix` has no lag on `topics`."""
    admin, settings = wb.admin, wb.settings

    def caught_up() -> bool:
        with refused_as_sentence("list the consumer groups"):
            listed = admin.list_consumer_groups().result().valid
        groups = [g.group_id for g in listed if g.group_id.endswith(group_suffix)]
        return bool(groups) and all(consumer_lag(admin, g, topics, settings) == 0 for g in groups)

    wait_until(caught_up, timeout, f"the query's consumer group (…{group_suffix}) to catch up with "
               f"{', '.join(topics)}", interval=1.0)


def read_buy(settings: Settings, topic: str | None = None) -> pd.DataFrame:
    """The `buy` topic as a DataFrame with exactly the buy columns, in a stable order."""
    frame = read_topic(topic or settings.topics.buy, schema=BUY, settings=settings)
    if frame.empty:
        return pd.DataFrame(columns=BUY_COLUMNS)
    return frame[BUY_COLUMNS].sort_values(["ticker", "alert_ts", "variation_ts"], ignore_index=True)


def compare_rows(got: pd.DataFrame, expected: pd.DataFrame) -> pd.DataFrame:
    """Rows present on one side only (as unordered multisets); empty when both agree."""
    def keyed(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[BUY_COLUMNS].astype({"alert_ts": "int64", "variation_ts": "int64"})
        return frame.assign(n=frame.groupby(BUY_COLUMNS, dropna=False).cumcount())

    both = keyed(got).merge(keyed(expected), how="outer", indicator="side", on=BUY_COLUMNS + ["n"])
    diff = both[both["side"] != "both"].drop(columns="n")
    sides = {"left_only": "engine only", "right_only": "reference only"}
    return diff.assign(side=diff["side"].astype(str).map(sides))
