"""Flink SQL buy join against a real Kafka broker, checked against rules.buy_signals.

Runs on the stack's broker (the `settings` fixture starts it), with Java 17,
apache-flink 2.2 and the Kafka connector jar that `workbook up` resolved.
One dataset holds every edge case, so each test runs
one Flink job: the first job of a session also starts the JVM (~20 s in all).
"""
from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import pandas as pd
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from helpers.core import rules, schemas
from helpers.infra.clients import make_admin
from helpers.pipeline import flinksql
from helpers.pipeline.topics import delete_topics, ensure_topics

pytestmark = pytest.mark.integration

PARTITIONS = 3
SECOND, MINUTE = 1000, 60_000
T0 = int(datetime(2023, 12, 18, 15, 0, tzinfo=UTC).timestamp() * 1000)
T1, T2 = T0 + 20 * MINUTE, T0 + 40 * MINUTE


# --- the dataset: one message per dict, plus produced_at ---------------------
# produced_at orders the messages in their topic; it defaults to ts. A few
# messages come up to 55 s behind the newest bar already in their partition:
# inside the 1-minute watermark delay of ksql/flink/01_create_tables.sql.

def alert(ticker, ts, close, produced_at=None):
    """One alerts message plus its production order."""
    return {"ticker": ticker, "ts": ts, "close": close, "volume": 1000.0,
            "transactions": 10, "produced_at": produced_at or ts}


def variation(ticker, ts, var_ex, var_in=0.001, produced_at=None):
    """One variations message plus its production order."""
    return {"ticker": ticker, "ts": ts, "variation_ex": var_ex, "variation_in": var_in,
            "produced_at": produced_at or ts}


ALERTS = [
    alert("AAPL", T0, 196.01),                        # window edges
    alert("MSFT", T0 + 30 * SECOND, 370.25),          # threshold edges
    alert("NVDA", T0 + MINUTE, 495.5),                # impossible ranges: never a buy
    alert("META", T0 + 2 * MINUTE, 334.9),            # no variation at all
    alert("TSLA", T1, 252.5, produced_at=T1 + 50 * SECOND),          # 50 s late
    alert("TSLA", T1 + 2 * MINUTE, 253.0),
    alert("TSLA", T1 + 70 * SECOND, 252.8, produced_at=T1 + 2 * MINUTE + 1),  # 50 s late
    alert("AMZN", T2, 151.2),                         # many-to-many
    alert("AMZN", T2 + MINUTE, 151.9),
    alert("AMZN", T2 + 2 * MINUTE, 152.4),
]
VARIATIONS = [
    variation("AAPL", T0 - 5 * MINUTE, 0.08),                # exactly 5 min before: match
    variation("AAPL", T0 + 5 * MINUTE, 0.06),                # exactly 5 min after: match
    variation("AAPL", T0 - 5 * MINUTE - 1, 0.09),            # 5 min 1 ms before: no
    variation("AAPL", T0 + 5 * MINUTE + 1, 0.09),            # 5 min 1 ms after: no
    variation("GOOG", T0, 0.2),                              # no GOOG alert: no
    variation("MSFT", T0 + 30 * SECOND, 0.051),              # same instant: match
    variation("MSFT", T0 + 90 * SECOND, 0.05),               # exactly the threshold: no
    variation("MSFT", T0 + 150 * SECOND, 0.0500001),         # just above: match
    # high/low − 1 is never below 0: the original's ABS(variation_ex) could only
    # let such an impossible row through, and the join without ABS never does
    variation("NVDA", T0 - MINUTE, -0.03),
    variation("NVDA", T0 + 2 * MINUTE, -0.07, -0.02),        # |x| above: still no
    variation("NVDA", T0 + 3 * MINUTE, -0.05),
    variation("TSLA", T1 + 40 * SECOND, 0.2),
    variation("TSLA", T1 - 10 * SECOND, 0.11, produced_at=T1 + 45 * SECOND),  # 55 s late
    variation("AMZN", T2 + 3 * MINUTE,                       # real prices, 3 alerts
              rules.variation_ex(160.37, 151.2), rules.variation_in(158.9, 152.1)),
    variation("AMZN", T2 + 6 * MINUTE,                       # 2 alerts (not the first)
              rules.variation_ex(171.03, 152.61), rules.variation_in(152.7, 170.44)),
]
MUST_MATCH = {("AAPL", T0, T0 - 5 * MINUTE), ("AAPL", T0, T0 + 5 * MINUTE),
              ("MSFT", T0 + 30 * SECOND, T0 + 30 * SECOND),
              ("MSFT", T0 + 30 * SECOND, T0 + 150 * SECOND),
              ("TSLA", T1, T1 - 10 * SECOND), ("TSLA", T1 + 70 * SECOND, T1 - 10 * SECOND),
              ("AMZN", T2, T2 + 3 * MINUTE), ("AMZN", T2 + 2 * MINUTE, T2 + 6 * MINUTE)}
NO_MATCH = {("AAPL", T0, T0 - 5 * MINUTE - 1), ("AAPL", T0, T0 + 5 * MINUTE + 1),
            ("MSFT", T0 + 30 * SECOND, T0 + 90 * SECOND),
            ("NVDA", T0 + MINUTE, T0 - MINUTE), ("NVDA", T0 + MINUTE, T0 + 2 * MINUTE),
            ("NVDA", T0 + MINUTE, T0 + 3 * MINUTE),
            ("AMZN", T2, T2 + 6 * MINUTE)}


def frame(rows: list[dict]) -> pd.DataFrame:
    """The messages as a DataFrame, without the production order."""
    return pd.DataFrame(rows).drop(columns="produced_at")


def expected_rows() -> Counter:
    """Reference buy rows (rules.buy_signals) as a multiset of tuples."""
    ref = rules.buy_signals(frame(ALERTS), frame(VARIATIONS), rules.VARIATION_THRESHOLD)
    return Counter(tuple(row) for row in ref[rules.BUY_COLUMNS].itertuples(index=False))


# --- Kafka plumbing -------------------------------------------------------------

@pytest.fixture(scope="session")
def kafka_bootstrap(settings) -> str:
    """Address of the stack's broker."""
    return settings.bootstrap_servers


@pytest.fixture(scope="session")
def jar(settings) -> str:
    """The Flink Kafka connector jar resolved by `workbook up`."""
    return str(settings.flink_connector_jar)


@pytest.fixture
def topics(settings, prefix):
    """Fresh alerts/variations/buy topics (3 partitions, kept forever) named <prefix>*, deleted afterwards."""
    names = {role: f"{prefix}.{role}" for role in (schemas.ALERTS, schemas.VARIATIONS, schemas.BUY)}
    admin = make_admin(settings)
    ensure_topics(admin, names.values(), partitions=PARTITIONS)   # waits until metadata shows them
    yield names
    delete_topics(admin, names.values())


def produce_all(bootstrap: str, topic: str, rows: list[dict]) -> None:
    """Produce rows in production order: key = ticker, message timestamp = ts."""
    failures = []

    def on_delivery(err, msg):
        if err is not None:
            failures.append(err)

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for row in sorted(rows, key=lambda r: r["produced_at"]):
        value = {k: v for k, v in row.items() if k != "produced_at"}
        producer.produce(topic, key=row["ticker"].encode(), value=schemas.encode(value),
                         timestamp=row["ts"], on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(10) == 0 and not failures, f"delivery failed: {failures}"


def read_messages(bootstrap: str, topic: str, timeout: float = 30.0) -> list:
    """Every message of topic up to its current end, from all partitions."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)}
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    msgs, deadline = [], time.monotonic() + timeout
    try:
        while sum(ends.values()) > len(msgs) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            msgs.append(msg)
    finally:
        consumer.close()
    return msgs


def buy_rows(msgs: list) -> Counter:
    """Decode buy messages into a multiset of tuples, checking key, timestamp and JSON keys."""
    rows = Counter()
    for msg in msgs:
        raw = json.loads(msg.value())
        assert list(raw) == rules.BUY_COLUMNS, f"unexpected buy fields {list(raw)}"
        row = schemas.decode(schemas.BUY, msg.value())
        assert msg.key() == row["ticker"].encode()
        assert msg.timestamp()[1] == row["alert_ts"]
        rows[tuple(row[c] for c in rules.BUY_COLUMNS)] += 1
    return rows


def assert_matches_reference(rows: Counter) -> None:
    """Flink's rows equal the reference's, once each; named edge cases checked one by one."""
    expected = expected_rows()
    pairs = {row[:3] for row in rows}
    assert sum(rows.values()) > 0
    assert {row[:3] for row in expected} >= MUST_MATCH, "the reference itself drifted"
    assert not NO_MATCH & pairs, f"pairs that must not match: {NO_MATCH & pairs}"
    assert pairs >= MUST_MATCH, f"missing pairs: {MUST_MATCH - pairs}"
    assert rows == expected, f"extra: {rows - expected}; missing: {expected - rows}"


# --- tests -------------------------------------------------------------------

def test_render_buy_sql_fills_every_placeholder():
    """The Flink SQL files render for both modes and refuse a percent threshold."""
    ddl, insert = flinksql.render_buy_sql("127.0.0.1:29092", 0.05, "a", "v", "b", "g", True)
    assert len(ddl) == 3 and "${" not in "".join(ddl) + insert
    assert "'scan.bounded.mode' = 'latest-offset'" in ddl[0]
    threshold = re.search(r"v\.variation_ex > ([0-9.eE+-]+)", insert)
    assert threshold and float(threshold.group(1)) == 0.05
    ddl, _ = flinksql.render_buy_sql("127.0.0.1:29092", 0.05, "a", "v", "b", "g", False)
    assert "'scan.bounded.mode' = 'unbounded'" in ddl[1]
    with pytest.raises(ValueError, match="fraction"):
        flinksql.render_buy_sql("127.0.0.1:29092", 5, "a", "v", "b", "g", True)


def test_bounded_flink_join_matches_reference(kafka_bootstrap, jar, topics):
    """A bounded run (until caught up) writes exactly the reference's buy rows."""
    produce_all(kafka_bootstrap, topics[schemas.ALERTS], ALERTS)
    produce_all(kafka_bootstrap, topics[schemas.VARIATIONS], VARIATIONS)
    run = flinksql.run_buy_join(
        jar, kafka_bootstrap, alerts_topic=topics[schemas.ALERTS],
        variations_topic=topics[schemas.VARIATIONS], buy_topic=topics[schemas.BUY],
        group_id=f"flink-{uuid.uuid4().hex[:8]}", until_caught_up=True)
    print(f"\nbounded run: {run}")
    assert run.status() == "FINISHED"
    assert_matches_reference(buy_rows(read_messages(kafka_bootstrap, topics[schemas.BUY])))


def test_continuous_flink_join_streams_then_cancels(kafka_bootstrap, jar, topics):
    """A continuous run picks up messages produced after it started, and cancels cleanly."""
    run = flinksql.run_buy_join(
        jar, kafka_bootstrap, alerts_topic=topics[schemas.ALERTS],
        variations_topic=topics[schemas.VARIATIONS], buy_topic=topics[schemas.BUY],
        group_id=f"flink-{uuid.uuid4().hex[:8]}", until_caught_up=False)
    try:
        deadline = time.monotonic() + 60
        while run.status() != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert run.status() == "RUNNING"
        produce_all(kafka_bootstrap, topics[schemas.ALERTS], ALERTS)
        produce_all(kafka_bootstrap, topics[schemas.VARIATIONS], VARIATIONS)
        want = sum(expected_rows().values())
        while time.monotonic() < deadline:
            msgs = read_messages(kafka_bootstrap, topics[schemas.BUY], timeout=5)
            if len(msgs) >= want:
                break
            time.sleep(1)
        time.sleep(2)   # give a duplicate the chance to show up
    finally:
        run.cancel()
    print(f"\ncontinuous run: {run}")
    assert run.status() == "CANCELED"
    assert_matches_reference(buy_rows(read_messages(kafka_bootstrap, topics[schemas.BUY])))
