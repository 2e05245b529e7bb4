"""Kafka throughput, as ratios measured side by side on the same payloads and topics.

One round, on one scratch namespace (`bench<id>.pricelist`, ...):
1. raw producer: the replay's own JSON payloads, pre-encoded, produced by a
   bare confluent-kafka loop (idempotent, lz4, linger.ms=5) into a topic of
   their own: the ceiling of the Python client on this machine;
2. `replay_bars`: the same bars, from a DataFrame, into `pricelist`;
3. raw consume: read `pricelist` to its end, no processing;
4. the naive router of notebook 04 (`route_naively`), then `Router` in its
   default at-least-once mode, then `Router` in exactly-once mode: each reads
   the same `pricelist` with a group of its own into emptied output topics.
Every run's counts are checked against the bars (a fast but lossy run is an
error). Rounds repeat the whole set; ratios come from the same round, so the
load that other programs put on the machine cancels out as far as it can, and
the spread over rounds shows how far it could not.
"""
from __future__ import annotations

import contextlib
import socket
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from helpers.core.errors import WaitTimeout
from helpers.core.rules import Thresholds
from helpers.core.settings import Settings
from helpers.core.waiting import wait_until
from helpers.infra.clients import client_conf, make_admin
from helpers.pipeline.produce import bar_message, replay_bars
from helpers.pipeline.route import Router, RouteReport, route_naively
from helpers.pipeline.sources import fetch_synthetic
from helpers.pipeline.topics import count_messages, delete_groups, delete_topics, ensure_topics, read_topic

BARS, QUICK_BARS = 100_000, 5_000
ROUNDS, QUICK_ROUNDS = 3, 1
N_TICKERS = 20
SEED = 42
#: what the issue's raw producer used: idempotent (so acks=all), lz4, linger.ms=5
RAW_PRODUCER = {"enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4",
                "partitioner": "murmur2_random"}


class BenchError(RuntimeError):
    """A benchmark could not run or produced wrong counts."""


def require_kafka(settings: Settings, timeout: float = 3.0) -> None:
    """Raise BenchError unless a bootstrap server accepts a TCP connection."""
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
            return
        except (OSError, ValueError):
            continue
    raise BenchError(f"Kafka does not answer at {settings.bootstrap_servers}: start it with "
                     f"`make up`, or run only `python -m bench dashboard`.")


def scratch_settings(settings: Settings) -> Settings:
    """The settings in a namespace of this run: its own topics and groups."""
    return settings.with_namespace(f"bench{uuid.uuid4().hex[:12]}")


def make_bars(n_bars: int) -> pd.DataFrame:
    """`n_bars` seeded synthetic bars of N_TICKERS tickers."""
    return fetch_synthetic(n_tickers=N_TICKERS, n_bars=max(1, n_bars // N_TICKERS), seed=SEED)


def payloads_of(bars: pd.DataFrame) -> list[tuple[bytes, bytes, int]]:
    """(key, value, ts) of every bar, in replay order: exactly what replay_bars sends."""
    ordered = bars.sort_values(["ts", "ticker"], kind="stable")
    return [bar_message(record) for record in ordered.to_dict("records")]


def raw_produce(payloads: list[tuple[bytes, bytes, int]], topic: str, settings: Settings) -> float:
    """Produce pre-encoded payloads with a bare loop; return the seconds until all are confirmed."""
    producer = Producer(client_conf(settings, RAW_PRODUCER))
    start = time.perf_counter()
    for n, (key, value, ts) in enumerate(payloads):
        while True:
            try:
                producer.produce(topic, value, key, timestamp=ts)
                break
            except BufferError:
                producer.poll(0.05)
        if n % 1000 == 0:
            producer.poll(0)
    if producer.flush(60):
        raise BenchError("The raw producer could not deliver every message within 60 s.")
    return time.perf_counter() - start


def raw_consume(topic: str, settings: Settings) -> RouteReport:
    """Read a topic to its end with a new group and no processing; a report of count and times."""
    consumer = Consumer(client_conf(settings, {
        "group.id": f"{settings.prefix}raw-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "enable.partition.eof": True}))
    report, at_end = RouteReport(), set()
    start = last = time.perf_counter()
    consumer.subscribe([topic])
    try:
        while True:
            for msg in consumer.consume(1000, timeout=0.05):
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(msg.error())
                    at_end.add(msg.partition())
                    continue
                if not report.consumed:
                    report.waited = time.perf_counter() - start
                report.consumed += 1
            last = time.perf_counter() if report.consumed else last
            assigned = {tp.partition for tp in consumer.assignment()}
            if assigned and at_end >= assigned:
                break
    finally:
        consumer.close()
    report.seconds = last - start       # until the last batch of messages, not the wait for more
    return report


def expected_counts(bars: pd.DataFrame) -> dict[str, int]:
    """What routing the bars must give with the default thresholds."""
    return {"consumed": len(bars), "variations": len(bars),
            "alerts": int((bars["close"] > Thresholds().price).sum()), "dead_letters": 0}


def check_route(name: str, report: RouteReport, bars: pd.DataFrame, settings: Settings,
                transactional: bool = False) -> None:
    """Raise BenchError unless a router consumed each bar once and wrote each output once."""
    expected = expected_counts(bars)
    actual = {"consumed": report.consumed, "variations": report.variations,
              "alerts": report.alerts, "dead_letters": report.dead_letters}
    topics = settings.topics
    if transactional:           # offsets also count commit markers: read the topics instead
        actual["variations in topic"] = read_committed(topics.variations, expected["variations"], settings)
        actual["alerts in topic"] = read_committed(topics.alerts, expected["alerts"], settings)
    else:
        actual["variations in topic"] = count_messages(topics.variations, settings)
        actual["alerts in topic"] = count_messages(topics.alerts, settings)
    expected["variations in topic"], expected["alerts in topic"] = expected["variations"], expected["alerts"]
    wrong = {k: (actual[k], v) for k, v in expected.items() if actual[k] != v}
    if wrong:
        raise BenchError(f"{name} lost or duplicated messages (got, expected): {wrong}.")


def read_committed(topic: str, expected: int, settings: Settings, timeout: float = 30.0) -> int:
    """Messages a read_committed reader sees, once it sees `expected` (or after `timeout` s).

    commit_transaction() returns once the commit is decided; the markers that
    make the messages visible reach the partitions a moment later, so a reader
    that starts at once can still stop short of the last transaction.
    """
    seen = 0

    def enough() -> bool:
        nonlocal seen
        seen = len(read_topic(topic, settings=settings, timeout=60))
        return seen >= expected

    with contextlib.suppress(WaitTimeout):
        wait_until(enough, timeout, f"{topic} to show {expected:,} committed messages", interval=0.5)
    return seen


def route_figures(report: RouteReport) -> dict[str, float]:
    """A router run's rates: over its whole run and from its first record on."""
    return {"bars": report.consumed, "seconds": report.seconds, "waited_s": report.waited,
            "bars_per_s": report.rate, "busy_bars_per_s": report.busy_rate}


def one_round(bars: pd.DataFrame, payloads, base: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """Raw producer, replay, raw consume, naive router, Router (both modes) on one namespace."""
    settings = scratch_settings(base)
    topics = settings.topics
    raw_topic = f"{settings.prefix}raw"
    outputs = [topics.variations, topics.alerts, topics.dead_letter]
    names, groups = [*topics.all, raw_topic], []
    admin = make_admin(settings)
    try:
        ensure_topics(admin, names)
        log(f"  raw producer: {len(payloads):,} messages ...")
        raw_s = raw_produce(payloads, raw_topic, settings)
        log("  replay_bars ...")
        replay = replay_bars(bars, settings=settings, progress=False)
        if replay.delivered != len(bars) or count_messages(topics.pricelist, settings) != len(bars):
            raise BenchError(f"The replay delivered {replay.delivered:,} of {len(bars):,} bars.")
        log("  raw consume ...")
        consumed = raw_consume(topics.pricelist, settings)
        if consumed.consumed != len(bars):
            raise BenchError(f"The raw consumer read {consumed.consumed:,} of {len(bars):,} bars.")
        runs: dict[str, RouteReport] = {}
        for name, route in (
                ("naive", lambda g: route_naively(settings, Thresholds(), group_id=g)),
                ("router", lambda g: Router(settings, Thresholds(), group_id=g).run(True, progress=False)),
                ("router_exactly_once", lambda g: Router(settings, Thresholds(), exactly_once=True,
                                                         group_id=g).run(True, progress=False))):
            log(f"  {name} ...")
            group = settings.group(name)
            groups.append(group)
            delete_topics(admin, outputs)
            ensure_topics(admin, outputs)
            runs[name] = route(group)
            check_route(name, runs[name], bars, settings, transactional=name.endswith("exactly_once"))
    finally:
        delete_topics(admin, names)
        delete_groups(admin, groups)
    raw_rate, replay_rate = len(payloads) / raw_s, replay.rate
    naive, router, eos = (runs[k].busy_rate for k in ("naive", "router", "router_exactly_once"))
    return {"raw_producer": {"messages": len(payloads), "seconds": raw_s, "messages_per_s": raw_rate},
            "replay": {"messages": replay.delivered, "seconds": replay.seconds,
                       "messages_per_s": replay_rate},
            "raw_consume": route_figures(consumed),
            **{name: route_figures(report) for name, report in runs.items()},
            "ratios": {"replay_vs_raw": replay_rate / raw_rate,
                       "router_vs_naive": router / naive,
                       "router_vs_raw_consume": router / consumed.busy_rate,
                       "router_exactly_once_vs_naive": eos / naive}}


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of a few measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def run(n_bars: int, rounds: int, settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """`rounds` rounds of every Kafka measurement on `n_bars` bars; per round and summarized."""
    require_kafka(settings)
    bars = make_bars(n_bars)
    payloads = payloads_of(bars)
    per_round = []
    for n in range(rounds):
        log(f"kafka round {n + 1}/{rounds}, {len(bars):,} bars:")
        per_round.append(one_round(bars, payloads, settings, log))

    def over_rounds(path: tuple[str, str]) -> dict[str, float]:
        return spread([r[path[0]][path[1]] for r in per_round])

    return {
        "bars": len(bars), "tickers": N_TICKERS, "rounds": per_round,
        "replay": {"ratio_vs_raw": over_rounds(("ratios", "replay_vs_raw")),
                   "messages_per_s": over_rounds(("replay", "messages_per_s")),
                   "raw_messages_per_s": over_rounds(("raw_producer", "messages_per_s"))},
        "router": {"ratio_vs_naive": over_rounds(("ratios", "router_vs_naive")),
                   "ratio_vs_raw_consume": over_rounds(("ratios", "router_vs_raw_consume")),
                   "exactly_once_ratio_vs_naive": over_rounds(("ratios", "router_exactly_once_vs_naive")),
                   "bars_per_s": over_rounds(("router", "busy_bars_per_s")),
                   "exactly_once_bars_per_s": over_rounds(("router_exactly_once", "busy_bars_per_s")),
                   "naive_bars_per_s": over_rounds(("naive", "busy_bars_per_s")),
                   "raw_consume_per_s": over_rounds(("raw_consume", "busy_bars_per_s"))},
    }
