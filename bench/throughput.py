"""Kafka benchmarks: replay synthetic bars into a scratch topic, then route them.

Every run uses its own topics (`bench.<id>.pricelist`, ...) and its own router
group, and deletes both at the end, so the course topics are never touched.
The counts are checked against the bars: a fast but lossy run is an error.
"""
from __future__ import annotations

import socket
import threading
import time
import uuid
from typing import Any

import pandas as pd

from helpers.clients import make_admin
from helpers.config import Settings, load_settings
from helpers.produce import replay_bars
from helpers.route import Router
from helpers.rules import Thresholds
from helpers.sources import fetch_synthetic
from helpers.topics import count_messages, delete_groups, delete_topics, ensure_topics

BARS, QUICK_BARS = 100_000, 10_000
N_TICKERS = 20
SEED = 42
SAMPLE_EVERY_S = 0.05


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
    """The settings in a namespace of this run: its own topics and router group."""
    return settings.with_namespace(f"bench{uuid.uuid4().hex[:12]}")


def route_timed(settings: Settings) -> tuple[Any, float]:
    """Route until caught up; return the report and the rate from first to last bar (bars/s)."""
    router = Router(settings, Thresholds())
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter(), router.report.consumed))
            time.sleep(SAMPLE_EVERY_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        report = router.run(until_caught_up=True, progress=False)
    finally:
        done.set()
        sampler.join()
    return report, steady_rate(samples, report.consumed)


def steady_rate(samples: list[tuple[float, int]], total: int) -> float:
    """Bars per second between the first sample with a routed bar and the first with all of them."""
    started = next(((t, n) for t, n in samples if n > 0), None)
    finished = next((t for t, n in samples if n >= total), None)
    if started is None or finished is None or finished <= started[0]:
        return float("nan")
    return (total - started[1]) / (finished - started[0])


def check_counts(bars: pd.DataFrame, replay, route, settings: Settings) -> None:
    """Raise BenchError unless every bar was replayed, routed and written once."""
    expected = {"replayed": len(bars), "consumed": len(bars), "variations": len(bars),
                "alerts": int((bars["close"] > Thresholds().price).sum()), "dead letters": 0,
                "variations topic": len(bars)}
    actual = {"replayed": replay.delivered, "consumed": route.consumed,
              "variations": route.variations, "alerts": route.alerts,
              "dead letters": route.dead_letters,
              "variations topic": count_messages(settings.topics.variations, settings)}
    wrong = {k: (actual[k], v) for k, v in expected.items() if actual[k] != v}
    if wrong:
        raise BenchError(f"The Kafka benchmark lost or duplicated messages (got, expected): {wrong}.")


def run(n_bars: int = BARS, settings: Settings | None = None, log=print) -> dict[str, Any]:
    """Replay `n_bars` synthetic bars into scratch topics, route them, clean up; return the figures."""
    settings = settings or load_settings()
    require_kafka(settings)
    bars = fetch_synthetic(n_tickers=N_TICKERS, n_bars=max(1, n_bars // N_TICKERS), seed=SEED)
    settings = scratch_settings(settings)
    topics, group_id = settings.topics, settings.group("router")
    names = list(topics.all)
    admin = make_admin(settings)
    try:
        ensure_topics(admin, names)
        log(f"replay: {len(bars):,} bars into {topics.pricelist} ...")
        replay = replay_bars(bars, settings=settings, progress=False)
        log(f"router: group {group_id} ...")
        route, steady = route_timed(settings)
        check_counts(bars, replay, route, settings)
    finally:
        delete_topics(admin, names)
        delete_groups(admin, [group_id])
    return {"bars": len(bars), "topic": topics.pricelist,
            "replay": {"messages": replay.delivered, "seconds": replay.seconds,
                       "messages_per_s": replay.rate},
            "router": {"bars": route.consumed, "seconds": route.seconds,
                       "bars_per_s": route.consumed / route.seconds, "steady_bars_per_s": steady,
                       "variations": route.variations, "alerts": route.alerts}}
