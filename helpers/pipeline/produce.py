"""Replay stored bars into `pricelist` (03_producing).

Each bar becomes one message: key = ticker (so a stock's bars stay in order in
one partition), value = JSON, message timestamp = the bar's own time (event
time). The original sent empty keys, stamped messages with the time of
sending, and slept one second per message.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.errors import DeliveryError, InputError
from helpers.core.progress import progress_bar
from helpers.core.schemas import FIELDS, PRICELIST, encode
from helpers.core.settings import Settings
from helpers.infra.clients import flush_until_reported, make_producer, send

CHUNK = 5000        # bars encoded at a time while the previous ones are on their way
POLL_EVERY = 1000   # serve the producer's events (failed deliveries) every this many messages
MAX_PAUSE_S = 1.0   # longest pause between two bars in compressed market time (nights, weekends)


@dataclass
class ReplayReport:
    """What a replay delivered, and how fast."""

    delivered: int
    failed: int
    seconds: float

    @property
    def rate(self) -> float:
        """Delivered messages per second."""
        return self.delivered / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return (f"{self.delivered:,} delivered, {self.failed} failed in {self.seconds:.2f} s "
                f"({self.rate:,.0f} messages/s)")


def bar_message(bar: Mapping[str, Any]) -> tuple[bytes, bytes, int]:
    """(key, value, timestamp_ms) of one bar's `pricelist` message."""
    value: dict[str, Any] = {}
    for name in FIELDS[PRICELIST]:
        item = bar.get(name)
        if item is None or (isinstance(item, float) and math.isnan(item)) or item is pd.NA:
            value[name] = None
        elif name == "ticker":
            value[name] = str(item)
        elif name in ("ts", "transactions"):
            value[name] = int(item)
        else:
            value[name] = float(item)
    return value["ticker"].encode(), encode(value), value["ts"]


def bar_messages(bars: pd.DataFrame) -> list[tuple[bytes, bytes, int]]:
    """(key, value, timestamp_ms) of every bar, in the frame's order: bar_message of each row, faster.

    Works a column at a time (no dict per row from pandas), with the same
    conversions as bar_message: a missing value (None, NaN, NA or an absent
    column) becomes null, the ticker a str, ts and transactions ints, the rest floats.
    """
    return [message for chunk in iter_bar_messages(bars) for message in chunk]


def iter_bar_messages(bars: pd.DataFrame, chunk: int = CHUNK) -> Iterator[list[tuple[bytes, bytes, int]]]:
    """bar_messages of `chunk` rows at a time, so that a replay sends one chunk while it encodes the next."""
    for start in range(0, len(bars), chunk):
        part = bars.iloc[start:start + chunk]
        columns = [column_values(part, name) for name in FIELDS[PRICELIST]]   # the value's field order
        yield [(row[0].encode(), encode(dict(zip(FIELDS[PRICELIST], row, strict=True))), row[1])
               for row in zip(*columns, strict=True)]


def column_values(bars: pd.DataFrame, name: str) -> list[Any]:
    """One column as plain Python values, converted as bar_message converts one field."""
    if name not in bars.columns:
        return [None] * len(bars)
    convert: Callable[[Any], Any] = str if name == "ticker" else int if name in ("ts", "transactions") \
        else float
    column = bars[name]
    kind = column.dtype.kind if isinstance(column.dtype, np.dtype) else ""
    if kind == "f":
        values = column.to_numpy().tolist()
        if convert is float:
            return [None if v != v else v for v in values] if column.hasnans else values
        return [None if v != v else convert(v) for v in values]
    if kind in "iu" and kind:
        values = column.to_numpy().tolist()
        return values if convert is int else [convert(v) for v in values]
    return [None if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else convert(v)
            for v in column.tolist()]


def pause_between(previous_ts: int | None, ts: int, speed: float | None) -> float:
    """Seconds to wait before a bar in market time compressed `speed` times (None: no wait)."""
    if speed is None or previous_ts is None:
        return 0.0
    return min(max(ts - previous_ts, 0) / 1000 / speed, MAX_PAUSE_S)


def replay_bars(bars: pd.DataFrame, topic: str | None = None, *, settings: Settings,
                speed: float | None = None, progress: bool | None = None,
                rate: float | None = None, stop: threading.Event | None = None) -> ReplayReport:
    """Produce every bar, in time order, and wait until each delivery is confirmed.

    speed=None replays as fast as possible; speed=N compresses market time N
    times (a pause never exceeds MAX_PAUSE_S, so nights do not stall a class);
    rate=N sends at most N messages per second (live demos). The topic is
    the namespace's `pricelist` unless given. Only failed deliveries are
    reported back (`delivery.report.only.error`): a message is delivered when
    every message has its report (flush_until_reported: a broker restart
    delays them) and no failure was reported for it. Setting
    `stop` (from another thread) ends the replay after the message in hand;
    what was sent is still delivered and counted.
    """
    for name, value in (("speed", speed), ("rate", rate)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or value <= 0):
            raise InputError(f"{name} must be a positive number (or None for as fast as possible), "
                             f"got {value!r}.")
    topic = topic or settings.topics.pricelist
    stop = stop or threading.Event()
    progress = settings.progress if progress is None else progress
    errors: list[str] = []
    outcome = {"delivered": 0}

    def on_delivery(err, msg) -> None:
        if err:
            errors.append(str(err))
        else:
            outcome["delivered"] += 1

    # as fast as possible: only failures are reported back (one callback per message costs
    # about a tenth of the replay); paced (a live demo): every delivery, as before
    fast = speed is None and rate is None
    producer = make_producer(settings, {"delivery.report.only.error": fast, "on_delivery": on_delivery})
    start = time.perf_counter()
    ordered = bars.sort_values(["ts", "ticker"], kind="stable")
    with progress_bar(total=len(ordered), desc=f"replaying into {topic}", unit="msg",
                      enabled=progress) as bar:
        sent = 0
        if fast:
            for messages in iter_bar_messages(ordered):
                if stop.is_set():
                    break
                sent += produce_all(producer, topic, messages, bar)
        else:
            sent = produce_paced(producer, topic, bar_messages(ordered), bar, speed, rate, stop)
        remaining = flush_until_reported(producer)
    failed = len(errors) + remaining
    delivered = sent - failed if fast else outcome["delivered"]
    report = ReplayReport(delivered, sent - delivered, time.perf_counter() - start)
    if report.failed:
        raise DeliveryError(f"Replay into {topic}: {report}; first errors: {errors[:5]}.")
    return report


def produce_all(producer, topic: str, messages: list[tuple[bytes, bytes, int]], bar) -> int:
    """Produce messages as fast as the producer takes them, serving its events every POLL_EVERY;
    return how many."""
    produce, poll = producer.produce, producer.poll
    for n, (key, value, ts) in enumerate(messages, start=1):
        try:
            produce(topic, value, key, timestamp=ts)
        except BufferError:                     # the local queue is full: wait for room
            send(producer, topic, value, key, ts)
        if n % POLL_EVERY == 0:
            poll(0)
            bar.update(POLL_EVERY)
    bar.update(len(messages) % POLL_EVERY)
    return len(messages)


def produce_paced(producer, topic: str, messages: list[tuple[bytes, bytes, int]], bar,
                  speed: float | None, rate: float | None, stop: threading.Event) -> int:
    """Produce messages in compressed market time (speed) or at most `rate` per second, until
    `stop` is set; return how many were sent."""
    start, previous_ts, sent = time.perf_counter(), None, 0
    for key, value, ts in messages:
        wait = pause_between(previous_ts, ts, speed)
        if rate:
            wait = max(wait, start + sent / rate - time.perf_counter())
        if wait > 0:
            producer.poll(0)
        if stop.wait(wait if wait > 0 else 0):
            break
        previous_ts = ts
        send(producer, topic, value, key, ts)
        sent += 1
        bar.update()
    return sent
