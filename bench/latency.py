"""Stream-SQL latency: a bar produced into `pricelist` -> its buy signal read from `buy`.

The whole pipeline runs on a scratch namespace: a producer at a steady rate
(1,000 bars/s) into `pricelist`, the `Router` (default at-least-once mode) into
`alerts` and `variations`, the Flink buy join into `buy`, and a consumer of
`buy`. The bars are built so that buy signals come at a steady rate and each
bar that makes one makes exactly one: every tenth bar of a ticker (ten market
minutes apart, more than the join's 5-minute window) closes above $195 with a
6 % range, so it is an alert and a big variation of itself; every other bar is
neither. A buy's latency is the wall time from producing its bar to reading
the buy message. The stream starts once a probe bar's buy signal has come
through (Flink's job takes 10-30 s to start), and its first `warmup_s`
seconds are not counted (Flink's JIT, first fetches).
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError

from helpers.core.rules import Thresholds
from helpers.core.settings import Settings
from helpers.infra.clients import client_conf, make_producer, send
from helpers.infra.workbook import Workbook
from helpers.pipeline.produce import bar_message
from helpers.pipeline.route import Router
from helpers.pipeline.streamsql import run_buy_query
from helpers.pipeline.topics import delete_groups, delete_topics, ensure_topics

from .throughput import BenchError, require_kafka, scratch_settings

N_TICKERS = 10
BUY_EVERY = 10               # one bar in ten of each ticker makes a buy
MINUTE_MS = 60_000


@dataclass(frozen=True)
class Plan:
    """How long and how fast."""

    rate: float = 1000.0         # bars per second into pricelist
    warmup_s: float = 5.0        # produced but not counted (once the pipeline runs)
    measure_s: float = 30.0      # produced and counted
    drain_s: float = 30.0        # how long to wait for the last buys
    start_timeout_s: float = 180.0   # for the whole pipeline (Flink's job above all) to start

    @classmethod
    def quick(cls) -> Plan:
        """A smoke check: a few seconds."""
        return cls(rate=200.0, warmup_s=2.0, measure_s=4.0, drain_s=60.0)


def synthetic_bar(n: int, base_ts: int) -> dict[str, Any]:
    """The n-th bar of the stream: ticker n % N_TICKERS, one market minute per round of tickers."""
    ticker, minute = f"LAT{n % N_TICKERS}", n // N_TICKERS
    ts = base_ts + minute * MINUTE_MS
    if minute % BUY_EVERY == 0:      # an alert (close > 195) and a 6 % range: a buy with itself
        prices = {"open": 200.0, "high": 212.0, "low": 200.0, "close": 210.0}
    else:
        prices = {"open": 100.0, "high": 100.5, "low": 99.5, "close": 100.0}
    return {"ticker": ticker, "ts": ts, **prices, "volume": 1000.0, "vwap": None, "transactions": 10}


def is_buy_bar(n: int) -> bool:
    """Whether the n-th bar makes a buy signal."""
    return (n // N_TICKERS) % BUY_EVERY == 0


class BuyReader(threading.Thread):
    """Reads `buy` and keeps the wall time each (ticker, alert_ts) arrived."""

    def __init__(self, settings: Settings):
        super().__init__(daemon=True)
        self.consumer = Consumer(client_conf(settings, {
            "group.id": f"{settings.prefix}latency-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "fetch.wait.max.ms": 10}))
        self.consumer.subscribe([settings.topics.buy])
        self.arrived: dict[tuple[str, int], float] = {}
        self.stop_event = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        import json

        try:
            while not self.stop_event.is_set():
                for msg in self.consumer.consume(100, timeout=0.05):
                    now = time.time()
                    if msg.error():
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            self.error = msg.error().str()
                        continue
                    buy = json.loads(msg.value())
                    self.arrived.setdefault((buy["ticker"], buy["alert_ts"]), now)
        finally:
            self.consumer.close()


def wait_for_probe(settings: Settings, base_ts: int, sent: dict[tuple[str, int], float],
                   reader: BuyReader, timeout: float) -> float:
    """Send one bar that makes a buy signal and wait for it: the whole pipeline is then running.

    Flink takes 10 to 30 s to start its job; bars sent meanwhile would pile
    up and measure the start, not the steady state. Returns the seconds waited.
    """
    probe = {**synthetic_bar(0, base_ts - 86_400_000), "ticker": "PROBE"}     # a day before the stream
    key, value, ts = bar_message(probe)
    sent[(key.decode(), ts)] = time.time()
    producer = make_producer(settings)
    send(producer, settings.topics.pricelist, value, key, ts)
    producer.flush(30)
    started = time.monotonic()
    while (key.decode(), ts) not in reader.arrived:
        if reader.error or time.monotonic() - started > timeout:
            raise BenchError(f"The probe's buy signal did not arrive within {timeout:.0f} s "
                             f"({reader.error or 'the router or Flink is not running'}).")
        time.sleep(0.1)
    return time.monotonic() - started


def produce_steadily(settings: Settings, plan: Plan, base_ts: int,
                     sent: dict[tuple[str, int], float]) -> int:
    """Produce bars at plan.rate for warmup_s + measure_s; record the send time of each buy bar."""
    producer = make_producer(settings)
    total = int(plan.rate * (plan.warmup_s + plan.measure_s))
    start = time.perf_counter()
    for n in range(total):
        wait = start + n / plan.rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        key, value, ts = bar_message(synthetic_bar(n, base_ts))
        if is_buy_bar(n):
            sent[(key.decode(), ts)] = time.time()
        send(producer, settings.topics.pricelist, value, key, ts)
    if producer.flush(60):
        raise BenchError("The latency producer could not deliver its bars.")
    return total


def run(plan: Plan, base: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Start Flink and the router on scratch topics, produce steadily, measure each buy's latency."""
    require_kafka(base)
    settings = scratch_settings(base)
    wb = Workbook(settings)                 # owns the Flink session, closed below
    admin = wb.admin
    names = list(settings.topics.all)
    groups = [settings.group("router"), settings.group("flink-buy")]
    base_ts = (int(time.time() * 1000) // MINUTE_MS - 60 * 24 * 30) * MINUTE_MS   # 30 days ago
    sent: dict[tuple[str, int], float] = {}
    query = router = reader = thread = None
    try:
        ensure_topics(admin, names)
        log("stream SQL: starting the Flink buy join ...")
        started = time.perf_counter()
        query = run_buy_query(wb, until_caught_up=False, engine="flink")
        submit_s = time.perf_counter() - started
        router = Router(settings, Thresholds())
        thread = threading.Thread(target=router.run, kwargs={"progress": False}, daemon=True)
        thread.start()
        reader = BuyReader(settings)
        reader.start()
        ready_s = wait_for_probe(settings, base_ts, sent, reader, plan.start_timeout_s)
        log(f"stream SQL: {plan.rate:,.0f} bars/s for {plan.warmup_s + plan.measure_s:.0f} s ...")
        produced_from = time.time()
        total = produce_steadily(settings, plan, base_ts, sent)
        counted_from = produced_from + plan.warmup_s
        deadline = time.monotonic() + plan.drain_s
        while len(reader.arrived) < len(sent) and time.monotonic() < deadline and not reader.error:
            time.sleep(0.2)
    finally:
        if router:
            router.stop()
        if thread:
            thread.join(60)
        if reader:
            reader.stop_event.set()
            reader.join(10)
        if query:
            query.stop()
        delete_topics(admin, names)
        delete_groups(admin, groups)
        wb.close()
    if reader is None or reader.error:
        raise BenchError(f"Reading the buy topic failed: {reader.error if reader else 'not started'}.")
    unexpected = set(reader.arrived) - set(sent)
    if unexpected:
        raise BenchError(f"{len(unexpected)} buy signals that no bar should have made, e.g. "
                         f"{sorted(unexpected)[:3]}.")
    counted = {k: t for k, t in sent.items() if t >= counted_from}
    pairs = [(t - counted_from, reader.arrived[k] - t) for k, t in counted.items() if k in reader.arrived]
    latencies = np.array([latency for _, latency in pairs]) * 1000
    worst: dict[int, float] = {}            # second of the measurement -> its worst latency (ms)
    for second, latency in pairs:
        worst[int(second)] = max(worst.get(int(second), 0.0), latency * 1000)
    missing = sum(k not in reader.arrived for k in counted)
    if not len(latencies):
        raise BenchError("No buy signal arrived: the stream-SQL pipeline did not run.")
    return {"rate": plan.rate, "bars": total, "buys_expected": len(sent), "buys_read": len(reader.arrived),
            "buys_counted": len(latencies), "buys_missing": missing, "warmup_s": plan.warmup_s,
            "measure_s": plan.measure_s, "flink_submit_s": submit_s, "pipeline_ready_s": submit_s + ready_s,
            "latency_ms": {"p50": float(np.percentile(latencies, 50)),
                           "p95": float(np.percentile(latencies, 95)),
                           "p99": float(np.percentile(latencies, 99)),
                           "max": float(latencies.max()), "min": float(latencies.min())},
            "worst_ms_by_second": [round(worst.get(n, 0.0)) for n in range(int(plan.measure_s) + 1)]}
