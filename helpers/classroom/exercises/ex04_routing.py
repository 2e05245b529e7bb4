"""The checks of notebook 04_routing's exercises."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import closing, suppress
from typing import Any

import numpy as np
import pandas as pd
from confluent_kafka import KafkaError

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
from helpers.pipeline.topics import consumer_lag, count_messages, read_topic, reset_topics

LOOP_PATIENCE_S = 20.0     # 04.1: how long a loop may go on consuming after the end of every partition


class LoopNeverEnds(Exception):
    """Raised inside a student's loop that keeps consuming long after the end of every partition."""


class WatchedConsumer:
    """A real consumer, watched for 04.1: what the producer still held at each commit, and a loop that
    goes on consuming long after every partition has reached its end."""

    def __init__(self, consumer: Any, producer: Any, patience: float):
        self._consumer, self._producer, self.patience = consumer, producer, patience
        self.unflushed_at_commit: list[int] = []
        self._at_end: set[int] = set()
        self._idle_since: float | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)

    def consume(self, *args: Any, **kwargs: Any) -> list[Any]:
        return self._seen(self._consumer.consume(*args, **kwargs))

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        msg = self._consumer.poll(*args, **kwargs)
        self._seen([] if msg is None else [msg])
        return msg

    def commit(self, *args: Any, **kwargs: Any) -> Any:
        self.unflushed_at_commit.append(len(self._producer))
        return self._consumer.commit(*args, **kwargs)

    def _seen(self, messages: list[Any]) -> list[Any]:
        for msg in messages:
            if msg.error() is None:
                self._at_end.discard(msg.partition())
            elif msg.error().code() == KafkaError._PARTITION_EOF:
                self._at_end.add(msg.partition())
        assigned = {tp.partition for tp in self._consumer.assignment()}
        if not (assigned and assigned <= self._at_end):
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = time.monotonic()
        elif time.monotonic() - self._idle_since > self.patience:
            raise LoopNeverEnds
        return messages


def run_sell_loop(route_sells: Callable, target: str, settings: Settings
                  ) -> tuple[Any, WatchedConsumer, str, BaseException | None]:
    """Call a student's loop with a consumer of a new group subscribed to pricelist and a producer;
    return what it returned, the watched consumer, the group, and what it raised."""
    producer = make_producer(settings)
    group = f"{settings.prefix}exercise-router-{uuid.uuid4().hex[:6]}"
    consumer = make_consumer(group, settings)
    consumer.subscribe([settings.topics.pricelist])
    watched = WatchedConsumer(consumer, producer, LOOP_PATIENCE_S)
    returned, raised_ = None, None
    try:
        returned = route_sells(watched, producer, target)
    except BaseException as exc:  # noqa: BLE001 - the student's loop raised (or never ended)
        raised_ = exc
    finally:
        producer.flush(30)
        with suppress(RuntimeError):        # the student's loop may have closed it already
            consumer.close()
    return returned, watched, group, raised_


def check_sell_route(is_sell: Any, route_sells: Any, settings: Settings) -> CheckResult:
    """04.1: a `sell` rule (close/open − 1 below −5 %) and the consume → produce → flush → commit loop
    that sends sells to their own topic."""
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
    admin = make_admin(settings)
    reset_topics(admin, [target])
    returned, watched, group, trouble = run_sell_loop(route_sells, target, settings)
    if isinstance(trouble, LoopNeverEnds):
        return failed(ex, f"route_sells was still consuming {watched.patience:g} s after every "
                          "partition had reached its end: stop once each assigned partition has "
                          "reported its end (enable.partition.eof), as the loop above does.")
    if trouble is not None:
        return failed(ex, f"route_sells raised {raised(trouble)}.")
    in_pricelist = count_messages(settings.topics.pricelist, settings)
    if number(returned) != in_pricelist:
        return failed(ex, f"route_sells returned {returned!r}; it should return how many bars it read "
                          "(count each message that is not an error), so a caller can compare it with "
                          "the topic.")
    messages = read_raw(target, settings)
    if len(messages) != len(expected):
        why = ("route_sells produced nothing: call producer.produce(topic, …) when is_sell(bar)"
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
    early = [n for n in watched.unflushed_at_commit if n]
    if early:
        return failed(ex, f"At {plural(len(early), 'commit')}, the producer still held sells it had not "
                          "delivered: a crash right then would skip them for good. Make the outputs "
                          "durable before you commit the inputs.")
    lag = consumer_lag(admin, group, [settings.topics.pricelist], settings)
    if lag:
        return failed(ex, f"route_sells read every bar, but its group has {plural(lag, 'bar')} not "
                          "committed: a restart would route them again. Commit after each batch.")
    per_ticker = expected.groupby("ticker").size().rename("sells").to_frame()
    commits = len(watched.unflushed_at_commit)
    return passed(ex, f"{returned:,} bars read, {len(expected):,} sells routed to {target}, keyed by "
                      f"ticker at market time, the same bars pandas finds; {plural(commits, 'commit')}, "
                      "each after its sells were delivered, and the group has nothing left to read.",
                      per_ticker)


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
