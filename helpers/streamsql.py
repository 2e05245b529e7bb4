"""Stream SQL: the buy-signal join on the active engine (05_ksql).

ksqlDB with the Docker stack, Flink SQL (PyFlink) without it; both run the
SQL files under `ksql/` on the same topics and write the same `buy` messages,
and both must equal the pandas reference `rules.buy_signals`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .clients import make_admin
from .config import Settings, load_settings
from .rules import BUY_COLUMNS, VARIATION_THRESHOLD, check_variation_threshold
from .schemas import ALERTS, BUY, VARIATIONS
from .sqlfiles import SQL_DIR, split_statements
from .stack import flink_connector_jar, stream_engine
from .topics import consumer_lag, read_topic

KSQL_QUERY_MARK = "CSAS_BUY_STREAM"   # ksqlDB names its persistent query's consumer group after it


@dataclass(frozen=True)
class JoinTopics:
    """The topics the join reads and writes (tests use prefixed names)."""

    alerts: str = ALERTS
    variations: str = VARIATIONS
    buy: str = BUY

    @classmethod
    def prefixed(cls, prefix: str) -> "JoinTopics":
        """The same topics with a prefix, e.g. for an isolated test."""
        return cls(prefix + ALERTS, prefix + VARIATIONS, prefix + BUY)


@dataclass
class StreamSqlRun:
    """A started buy query: which engine, how long it took, and the handle to stop it."""

    engine: str
    seconds: float
    handle: Any = None

    def stop(self) -> None:
        """Stop a continuous query (Flink job cancelled; ksqlDB query dropped)."""
        if self.engine == "flink" and self.handle is not None:
            self.handle.stop()
        elif self.engine == "ksqldb" and self.handle is not None:
            from .ksqldb import drop_statements

            self.handle.execute(drop_statements())

    def __str__(self) -> str:
        return f"buy query on {self.engine} in {self.seconds:.1f} s"


def sql_statement(engine: str, filename: str, index: int = 0) -> str:
    """One statement of an engine's SQL file, comments dropped, placeholders kept (shown in 05)."""
    folder = SQL_DIR / "flink" if engine == "flink" else SQL_DIR
    return split_statements((folder / filename).read_text())[index]


def run_buy_query(settings: Settings | None = None,
                  variation_threshold: float = VARIATION_THRESHOLD,
                  topics: JoinTopics = JoinTopics(), until_caught_up: bool = True,
                  engine: str | None = None, group_id: str = "workbook-flink-buy",
                  timeout: float = 300) -> StreamSqlRun:
    """Start the buy join; with until_caught_up, return once it has read both inputs to the end."""
    settings = settings or load_settings()
    threshold = check_variation_threshold(variation_threshold)
    engine = engine or stream_engine(settings)
    start = time.perf_counter()
    if engine == "flink":
        from .flinksql import FlinkJob

        handle = FlinkJob.start(flink_connector_jar(settings), settings.bootstrap_servers,
                                variation_threshold=threshold, alerts_topic=topics.alerts,
                                variations_topic=topics.variations, buy_topic=topics.buy,
                                group_id=group_id, until_caught_up=until_caught_up, timeout=timeout)
    else:
        from .ksqldb import KsqlClient, create_buy_pipeline

        handle = KsqlClient(settings.ksqldb_url)
        create_buy_pipeline(handle, threshold, topics.alerts, topics.variations, topics.buy)
        if until_caught_up:
            wait_until_caught_up(settings, KSQL_QUERY_MARK, [topics.alerts, topics.variations], timeout)
    return StreamSqlRun(engine, time.perf_counter() - start, handle)


def wait_until_caught_up(settings: Settings, group_mark: str, topics: list[str],
                         timeout: float) -> None:
    """Wait until a consumer group whose id contains group_mark has no lag on `topics`."""
    admin = make_admin(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        groups = [g.group_id for g in admin.list_consumer_groups().result().valid
                  if group_mark in g.group_id]
        if groups and all(consumer_lag(admin, g, topics, settings) == 0 for g in groups):
            return
        time.sleep(1.0)
    raise TimeoutError(f"The query's consumer group ({group_mark}) did not catch up "
                       f"with {', '.join(topics)} within {timeout:.0f} s.")


def read_buy(settings: Settings | None = None, topic: str = BUY) -> pd.DataFrame:
    """The `buy` topic as a DataFrame with exactly the buy columns, in a stable order."""
    frame = read_topic(topic, schema=BUY, settings=settings)
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
    return diff.replace({"side": {"left_only": "engine only", "right_only": "reference only"}})
