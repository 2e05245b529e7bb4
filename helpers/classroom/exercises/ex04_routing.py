"""The checks of notebook 04_routing's exercises."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import closing
from typing import Any

import numpy as np
import pandas as pd

from helpers.classroom.exercises.common import (
    PLACEHOLDER,
    CheckResult,
    call,
    failed,
    is_placeholder,
    lab,
    number,
    passed,
    plural,
    raised,
    read_raw,
)
from helpers.core.errors import InputError
from helpers.core.rules import Thresholds
from helpers.core.schemas import encode, utc_day
from helpers.core.settings import Settings
from helpers.infra.clients import batches_to_end, make_admin, make_consumer, make_producer
from helpers.infra.database import open_engine
from helpers.pipeline.db import read_bars
from helpers.pipeline.topics import count_messages, read_topic, reset_topics


def route_with(handler: Callable, source: str, target: str, settings: Settings) -> int:
    """Run a hand-made router over `source`: handler(msg, producer, target) for each message."""
    producer = make_producer(settings)
    read = 0
    group = f"{settings.prefix}exercise-router-{uuid.uuid4().hex[:6]}"
    with closing(make_consumer(group, settings)) as consumer:
        consumer.subscribe([source])
        for batch in batches_to_end(consumer, timeout=120):
            for msg in batch:
                handler(msg, producer, target)
                read += 1
            producer.flush(60)
    return read


def check_sell_route(is_sell: Any, route_sell: Any, settings: Settings) -> CheckResult:
    """04.1: a `sell` rule (close/open − 1 below −5 %) and a router that sends sells to their own topic."""
    ex = "04.1"
    with open_engine(settings) as engine:
        bars = read_bars(engine, "day")
    expected = bars[bars["close"] / bars["open"] - 1 < -0.05]
    answers = []
    for bar in bars.to_dict("records"):
        answer, error = call(ex, "is_sell", is_sell, bar)
        if error:
            return error
        if not isinstance(answer, (bool, np.bool_)):
            return failed(ex, f"is_sell returned {answer!r} for {bar['ticker']}'s bar, not True or False: "
                              "a rule answers a yes/no question (replace the `...`).")
        answers.append(bool(answer))
    said = bars[answers]
    if len(said) != len(expected) or not said.index.equals(expected.index):
        wrong = bars[np.array(answers) != bars.index.isin(expected.index)].iloc[0]
        change = wrong["close"] / wrong["open"] - 1
        verdict = "a sell" if wrong.name in expected.index else "not a sell"
        return failed(ex, f"is_sell says {len(said):,} bars are sells, pandas finds {len(expected):,}. "
                          f"Look at {wrong['ticker']} on {utc_day(wrong['ts'])}: open ${wrong['open']:.2f}, "
                          f"close ${wrong['close']:.2f}, close/open − 1 = {change:+.2%}: {verdict} "
                          "(strictly below −5 %, written as the fraction −0.05).")
    target = lab("04", settings).prefix + "sell"
    reset_topics(make_admin(settings), [target])
    try:
        route_with(route_sell, settings.topics.pricelist, target, settings)
    except Exception as exc:  # noqa: BLE001 - the student's router raised
        return failed(ex, f"route_sell raised {raised(exc)}.")
    messages = read_raw(target, settings)
    if len(messages) != len(expected):
        why = ("route_sell produced nothing: call producer.produce(topic, …) when is_sell(bar)"
               if not messages else "produce only the bars for which is_sell(bar) is true, each once")
        return failed(ex, f"{target} holds {plural(len(messages), 'message')}, not one per bar that "
                          f"is_sell accepts: {why}.")
    keys = {m.key() for m in messages}
    if keys != {t.encode() for t in expected["ticker"]}:
        return failed(ex, f"The sells' keys are {sorted(keys, key=str)[:3]}…, not the tickers: pass "
                          "msg.key() (or the ticker) as the key, so a stock's sells stay in order.")
    stamped = sorted(m.timestamp()[1] for m in messages)
    if stamped != sorted(expected["ts"]):
        return failed(ex, "The sells' Kafka timestamps are not their bars' ts: pass timestamp=bar['ts'] "
                          "(or msg.timestamp()[1]) to produce(), so that downstream windows use market time.")
    per_ticker = expected.groupby("ticker").size().rename("sells").to_frame()
    return passed(ex, f"{len(expected):,} sells routed to {target}, keyed by ticker at market time, "
                      "the same bars pandas finds.", per_ticker)


def crash_router(settings: Settings, bars: pd.DataFrame, after_batches: int = 3, batch: int = 500) -> int:
    """04.2: replay `bars` into the namespace's pricelist, then route it with the router's group and
    "crash" after delivering batch `after_batches`, before committing it; return the bars routed.

    The routing is notebook 04's hand-made loop (flush, then commit); the
    crash is that loop stopping between the two, as `kill -9` would. The bars
    must be more than `after_batches - 1` batches, or the loop would reach
    the end of the topic before the batch that crashes.
    """
    from helpers.pipeline.produce import replay_bars
    from helpers.pipeline.route import route_bar

    if len(bars) <= (after_batches - 1) * batch:
        raise InputError(f"crash_router needs more than {(after_batches - 1) * batch:,} bars to crash after "
                         f"batch {after_batches} of {batch}, got {len(bars):,}.")
    topics, group = settings.topics, settings.group("router")
    reset_topics(make_admin(settings), topics.all, groups=[group])
    replay_bars(bars, settings=settings, progress=False)
    producer = make_producer(settings)
    routed, batches = 0, 0
    with closing(make_consumer(group, settings)) as consumer:   # closing it is the crash: no last commit
        consumer.subscribe([topics.pricelist])
        for messages in batches_to_end(consumer, timeout=120, size=batch):
            if not messages:
                continue
            for msg in messages:
                for topic, value in route_bar(msg.value(), Thresholds(), topics):
                    producer.produce(topic, encode(value), msg.key(), timestamp=value["ts"])
            producer.flush(60)
            routed += len(messages)
            batches += 1
            if batches == after_batches:
                break                 # delivered, never committed
            consumer.commit(asynchronous=False)
    return routed


def check_duplicates(answer: Any, settings: Settings) -> CheckResult:
    """04.2: how many variations the crashed-and-restarted router wrote twice."""
    ex = "04.2"
    if is_placeholder(answer):
        return failed(ex, f"DUPLICATES {PLACEHOLDER}")
    topics = settings.topics
    bars = count_messages(topics.pricelist, settings)
    written = count_messages(topics.variations, settings)
    if not bars:
        return failed(ex, f"{topics.pricelist} is empty: run the lab cell first (crash_router, "
                          "then run_router).")
    variations = read_topic(topics.variations, settings=settings)
    distinct = len(variations.drop_duplicates(["ticker", "ts"]))
    if distinct < bars:
        return failed(ex, f"Only {distinct:,} of {bars:,} bars have a variation: run the restart "
                          "(run_router) in the lab cell before counting.")
    doubled = written - bars                  # from offsets, not from the rows the student counted
    if number(answer) == doubled:
        return passed(ex, f"{doubled:,} variations were written twice and none is missing: the crashed "
                          "router delivered its last batch but never committed it, so the restart began at "
                          "the last commit and routed that batch again. At-least-once: duplicates, never "
                          "loss. A consumer of variations must tolerate them, or the router must run "
                          "exactly-once (notebook 05).")
    if number(answer) == written:
        return failed(ex, f"{written:,} is every variation in the topic; count only the repeated ones: what "
                          "do two copies of one bar's variation have in common?")
    return failed(ex, f"You counted {answer!r}. {topics.variations} holds {written:,} messages for "
                      f"{bars:,} bars in {topics.pricelist}. Which (ticker, ts) pairs appear twice? "
                      "Count them with pandas on `variations`.")
