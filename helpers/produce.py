"""Replay stored bars into `pricelist` (03_producing).

Each bar becomes one message: key = ticker (so a stock's bars stay in order in
one partition), value = JSON, message timestamp = the bar's own time (event
time). The original sent empty keys, stamped messages with the time of
sending, and slept one second per message.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .clients import make_producer, send
from .config import Settings, load_settings
from .errors import DeliveryError, InputError
from .progress import progress_bar
from .schemas import FIELDS, PRICELIST, encode

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


def pause_between(previous_ts: int | None, ts: int, speed: float | None) -> float:
    """Seconds to wait before a bar in market time compressed `speed` times (None: no wait)."""
    if speed is None or previous_ts is None:
        return 0.0
    return min(max(ts - previous_ts, 0) / 1000 / speed, MAX_PAUSE_S)


def replay_bars(bars: pd.DataFrame, topic: str | None = None, settings: Settings | None = None,
                speed: float | None = None, progress: bool | None = None,
                rate: float | None = None) -> ReplayReport:
    """Produce every bar, in time order, and wait until each delivery is confirmed.

    speed=None replays as fast as possible; speed=N compresses market time N
    times (a pause never exceeds MAX_PAUSE_S, so nights do not stall a class);
    rate=N sends at most N messages per second (live demos). The topic is
    the namespace's `pricelist` unless given.
    """
    for name, value in (("speed", speed), ("rate", rate)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or value <= 0):
            raise InputError(f"{name} must be a positive number (or None for as fast as possible), "
                             f"got {value!r}.")
    settings = settings or load_settings()
    topic = topic or settings.topics.pricelist
    progress = settings.progress if progress is None else progress
    outcome = {"delivered": 0, "failed": 0}
    errors: list[str] = []

    def on_delivery(err, msg) -> None:
        outcome["failed" if err else "delivered"] += 1
        if err and len(errors) < 5:
            errors.append(str(err))

    producer = make_producer(settings)
    ordered = bars.sort_values(["ts", "ticker"], kind="stable")
    start, previous_ts = time.perf_counter(), None
    wait: float
    with progress_bar(total=len(ordered), desc=f"replaying into {topic}", unit="msg",
                      enabled=progress) as bar:
        for sent, record in enumerate(ordered.to_dict("records")):
            key, message, ts = bar_message(record)
            wait = pause_between(previous_ts, ts, speed)
            if rate:
                wait = max(wait, start + sent / rate - time.perf_counter())
            if wait:
                producer.poll(0)
                time.sleep(wait)
            previous_ts = ts
            send(producer, topic, message, key, ts, on_delivery)
            bar.update()
        remaining = producer.flush(60)
    report = ReplayReport(outcome["delivered"], outcome["failed"] + remaining,
                          time.perf_counter() - start)
    if report.failed:
        raise DeliveryError(f"Replay into {topic}: {report}; first errors: {errors}.")
    return report
