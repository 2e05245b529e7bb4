"""Exercises that check themselves: one `check_…` function per exercise (classroom layer, 01–08).

A student edits a marked cell (first line `# EXERCISE 04.1 — edit this cell`);
the cell after it calls the exercise's check, which compares the answer with
an independent computation (pandas on the bars in MySQL, counts from Kafka's
offsets, what the stream-SQL engine wrote) and returns a `CheckResult`: ✅, or
❌ with a hint computed from the student's own answer. A wrong answer never
raises, so a notebook with unsolved exercises still runs top to bottom; only
a service that does not answer raises (one sentence, as everywhere).

Every exercise writes into a namespace of its own (`lab("04", settings)` is
`settings.within("ex04")`): its topics and groups never touch the course's,
which the next notebook reads. The solutions live in `solutions/`, apart from
the notebooks (`make solutions`).
"""
from __future__ import annotations

import html
import json
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Producer, TopicPartition

from .clients import client_conf, make_admin, make_consumer, make_producer
from .config import Settings
from .db import make_engine, read_bars
from .errors import InputError
from .rules import PRICE_THRESHOLD, VARIATION_THRESHOLD, Thresholds, alerts_frame, variations_frame
from .schemas import PRICELIST, decode, encode
from .topics import (
    consumer_lag,
    count_messages,
    delete_groups,
    delete_topics,
    read_topic,
    reset_topics,
    watermarks,
)
from .validation import REASONS, validate_bars
from .waiting import wait_until

__all__ = ["CheckResult", "lab", "copy_topic", "crash_router", "check_rejection", "check_days_above",
           "check_one_partition", "check_max_partitions", "check_send_bars", "check_double_replay",
           "check_sell_route", "check_duplicates", "check_idle_consumers", "check_offset_reset",
           "check_alert_counts", "check_copartitioning", "check_my_buy_signals",
           "check_one_signal_price", "check_router_lag", "check_trailing_stop", "check_bot_restart",
           "check_brokers_may_fail", "check_missing_and_lost"]

DAY_MS = 86_400_000
FIVE_MINUTES_MS = 5 * 60_000


# --- the result a check cell shows -------------------------------------------------

@dataclass
class CheckResult:
    """What a check says: passed or not, and a sentence that teaches either way."""

    exercise: str
    passed: bool
    message: str
    details: pd.DataFrame | None = None

    @property
    def title(self) -> str:
        """'✅ Exercise 04.1: passed' or '❌ Exercise 04.1: not yet'."""
        mark, verdict = ("✅", "passed") if self.passed else ("❌", "not yet")
        return f"{mark} Exercise {self.exercise}: {verdict}"

    def __repr__(self) -> str:
        text = f"{self.title}\n{self.message}"
        if self.details is not None and not self.details.empty:
            text += "\n" + self.details.to_string()
        return text

    def _repr_html_(self) -> str:
        color = "#2e7d32" if self.passed else "#c62828"
        table = self.details.to_html() if self.details is not None and not self.details.empty else ""
        return (f'<div style="border-left: 6px solid {color}; padding: 0.3em 0.8em">'
                f"<b>{html.escape(self.title)}</b><br>{html.escape(self.message)}{table}</div>")


def passed(exercise: str, message: str, details: pd.DataFrame | None = None) -> CheckResult:
    """A passing result."""
    return CheckResult(exercise, True, message, details)


def failed(exercise: str, message: str, details: pd.DataFrame | None = None) -> CheckResult:
    """A failing result whose message says what to look at."""
    return CheckResult(exercise, False, message, details)


PLACEHOLDER = ("still holds the placeholder `...`: replace it with your answer, "
               "run the exercise cell, then this one.")


def is_placeholder(value: Any) -> bool:
    """True for the starter's `...` (Ellipsis)."""
    return value is Ellipsis


def not_a_number(ex: str, name: str, value: Any, unit: str = "") -> CheckResult | None:
    """The failed result for an answer still `...` or not a number ('must be a number of bars'), else None."""
    if is_placeholder(value):
        return failed(ex, f"{name} {PLACEHOLDER}")
    if number(value) is None:
        return failed(ex, f"{name} must be a number{unit}, got {value!r}.")
    return None


def raised(exc: BaseException) -> str:
    """'KeyError: 'close' (in your line `bar["close"]`)': an exception a student's code raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if "helpers" not in f.filename.replace("\\", "/").split("/")]
    where = f" in your line `{mine[-1].line.strip()}`" if mine and mine[-1].line else ""
    return f"{type(exc).__name__}: {exc}{where}"


def call(exercise: str, what: str, fn: Any, *args: Any) -> tuple[Any, CheckResult | None]:
    """Call a student's function; on an exception, a failing result that quotes it."""
    if not callable(fn):
        return None, failed(exercise, f"{what} is not a function ({type(fn).__name__}): "
                            "run the exercise cell that defines it.")
    try:
        return fn(*args), None
    except Exception as exc:  # noqa: BLE001 - any error of the student's code becomes a hint
        return None, failed(exercise, f"{what} raised {raised(exc)}.")


def lab(notebook: str, settings: Settings) -> Settings:
    """The namespace of a notebook's exercises: topics `ex04.…`, groups `ex04.workbook-…`."""
    return settings.within(f"ex{notebook}")


def number(value: Any) -> int | float | None:
    """A plain number from a student's answer, or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def plural(count: int, word: str) -> str:
    """'1 message', '2,997 messages'."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def year_of(ts: Any) -> Any:
    """UTC year of epoch-millisecond times (a number or a column)."""
    if isinstance(ts, pd.Series):
        return pd.to_datetime(ts, unit="ms", utc=True).dt.year
    return pd.Timestamp(int(ts), unit="ms", tz="UTC").year


# --- Kafka plumbing the labs share -----------------------------------------------

def read_raw(topic: str, settings: Settings) -> list[Any]:
    """Every committed message of a topic as confluent-kafka Messages (to look at keys and times)."""
    consumer = make_consumer(f"{settings.prefix}workbook-exercise-{uuid.uuid4().hex[:8]}", settings)
    messages = []
    try:
        pending = {p for p, (low, high) in watermarks(consumer, topic).items() if high > low}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])

        def at_end() -> bool:
            for msg in consumer.consume(1000, timeout=0.5):
                if not msg.error():
                    messages.append(msg)
                elif msg.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                else:
                    raise KafkaException(msg.error())
            return not pending

        wait_until(at_end, 60, f"the end of {topic}", interval=0)
    finally:
        consumer.close()
    return messages


def topic_exists(topic: str, settings: Settings) -> int:
    """The partition count of a topic, 0 when it does not exist."""
    meta = make_admin(settings).list_topics(timeout=10).topics.get(topic)
    return 0 if meta is None or meta.error else len(meta.partitions)


def copy_topic(source: str, target: str, settings: Settings, partitions: int = 3) -> int:
    """Copy every message of `source` (key, value, timestamp) into a new, empty `target`.

    `target` is deleted and created again with `partitions` partitions; the
    producer hashes each key as Java clients do. Returns the messages copied (06.1).
    """
    if isinstance(partitions, bool) or not isinstance(partitions, int) or not 1 <= partitions <= 64:
        raise InputError(f"partitions must be a whole number from 1 to 64, got {partitions!r}.")
    reset_topics(make_admin(settings), [target], partitions=partitions)
    producer = make_producer(settings)
    messages = read_raw(source, settings)
    for msg in messages:
        producer.produce(target, msg.value(), msg.key(), timestamp=msg.timestamp()[1])
        producer.poll(0)
    producer.flush(60)
    return len(messages)


# --- 01 ingestion --------------------------------------------------------------------

def check_rejection(predicted: Any) -> CheckResult:
    """01.1: which reason `validate_bars` gives a bar whose open is above its high."""
    ex = "01.1"
    if is_placeholder(predicted):
        return failed(ex, f"PREDICTED_REASON {PLACEHOLDER}")
    if predicted not in REASONS:
        return failed(ex, f"{predicted!r} is not a reason validate_bars gives: choose one of "
                          f"{', '.join(REASONS)}.")
    from .sources import fetch_bars

    bar = fetch_bars("sample", timespan="day").head(1).copy()
    bar.loc[bar.index[0], "open"] = bar["high"].iloc[0] + 1
    _, rejected = validate_bars(bar)
    actual = str(rejected["reason"].iloc[0])
    shown = (f"open ${bar['open'].iloc[0]:.2f}, high ${bar['high'].iloc[0]:.2f}, "
             f"low ${bar['low'].iloc[0]:.2f}")
    if predicted == actual:
        return passed(ex, f"validate_bars rejected the bar ({shown}) as {actual!r}: {REASONS[actual]}.")
    why = {"high_below_low": "high is still above low: only the open moved",
           "bad_price": "every price is still positive and finite",
           "missing_field": "no field is missing"}.get(predicted, f"{predicted!r} does not apply")
    return failed(ex, f"You predicted {predicted!r}, but {why} ({shown}). validate_bars tries its "
                      f"rules in order (REASONS in helpers/validation.py) and names the first one "
                      f"the bar breaks: {actual!r}, {REASONS[actual]}.")


def as_counts(result: Any) -> dict[str, int] | None:
    """A student's per-ticker counts (Series, two-column DataFrame or dict) as {ticker: n}, or None."""
    if isinstance(result, pd.DataFrame):
        if "ticker" in result.columns:
            result = result.set_index("ticker")
        if result.shape[1] != 1:
            return None
        result = result.iloc[:, 0]
    if isinstance(result, pd.Series):
        result = result.to_dict()
    if not isinstance(result, dict):
        return None
    try:
        return {str(k): int(v) for k, v in result.items() if int(v) != 0}
    except (TypeError, ValueError):
        return None


def check_days_above(days_above: Any, engine: Any) -> CheckResult:
    """01.2: a query with a bound parameter: daily bars per ticker whose close is above a price."""
    from sqlalchemy import event

    ex = "01.2"
    bars = read_bars(engine, "day")
    statements: list[tuple[str, Any]] = []

    def spy(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", spy)
    try:
        for price in (PRICE_THRESHOLD, 333.25):
            statements.clear()
            got, error = call(ex, "days_above", days_above, engine, price)
            if error:
                return error
            counts = as_counts(got)
            if counts is None:
                return failed(ex, f"days_above returned {type(got).__name__}, not counts per ticker: "
                                  "return a Series indexed by ticker (`.set_index('ticker')['days']`).")
            pasted = [s for s, _ in statements if f"{price:g}" in s]
            if pasted:
                return failed(ex, f"The SQL text sent to MySQL contains the price itself "
                                  f"(`{' '.join(pasted[0].split())[:90]}`): you pasted the value into "
                                  "the statement. Write `:price` in the SQL and pass "
                                  "params={'price': price}: the value then travels apart from the text.")
            expected = bars[bars["close"] > price].groupby("ticker").size().to_dict()
            if counts != expected:
                return failed(ex, days_hint(price, counts, expected, engine))
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    return passed(ex, f"At $195 and at $333.25 your counts match pandas on the same rows "
                      f"({', '.join(f'{t} {n:,}' for t, n in expected.items())} at $333.25), "
                      "and the price travelled as a bound parameter.")


def days_hint(price: float, counts: dict[str, int], expected: dict[str, int], engine: Any) -> str:
    """Why per-ticker counts differ from pandas: no filter, minute bars counted, >= instead of >."""
    day = read_bars(engine, "day")
    both = pd.concat([day, read_bars(engine, "minute")])

    def per_ticker(frame: pd.DataFrame) -> dict[str, int]:
        return frame.groupby("ticker").size().to_dict()

    if counts == per_ticker(both):
        return ("You counted every row of candle_prices, of both timespans and at any price: add "
                "WHERE timespan = 'day' AND close > :price.")
    if counts == per_ticker(day):
        return "You counted every daily bar, at any price: add `AND close > :price` to the WHERE clause."
    if counts == per_ticker(both[both["close"] > price]):
        return (f"At ${price:g} you also counted minute bars: candle_prices holds both timespans. "
                "Add `timespan = 'day'` to the WHERE clause.")
    if counts == per_ticker(day[day["close"] >= price]):
        return f"You counted closes equal to ${price:g} too: the question says strictly above (>)."
    wrong = sorted(set(counts) | set(expected), key=lambda t: (counts.get(t, 0) == expected.get(t, 0), t))
    t = wrong[0]
    return (f"At ${price:g} you counted {counts.get(t, 0):,} days for {t}; pandas finds "
            f"{expected.get(t, 0):,} daily closes strictly above ${price:g}. Compare your WHERE clause "
            "with the question.")


# --- 02 topics -------------------------------------------------------------------------

def check_one_partition(topic: str, bars: pd.DataFrame, settings: Settings) -> CheckResult:
    """02.1: a topic of one partition holding every bar of `bars`, keyed by its ticker."""
    ex = "02.1"
    partitions = topic_exists(topic, settings)
    if not partitions:
        return failed(ex, f"Topic {topic} does not exist yet: create it with "
                          "admin.create_topics([NewTopic(…, num_partitions=1)]) or reset_topics(admin, "
                          "[ONE], partitions=1).")
    if partitions != 1:
        return failed(ex, f"{topic} has {partitions} partitions: a topic's partition count can grow but "
                          "never shrink. Delete it and create it again with 1 partition "
                          "(reset_topics(admin, [ONE], partitions=1) does both).")
    messages = read_raw(topic, settings)
    if len(messages) != len(bars):
        more = len(messages) > len(bars)
        why = ("the cell ran more than once and appended again: start from an empty topic "
               "(reset_topics) so a re-run gives the same contents" if more else
               "produce every bar, then call producer.flush(): produce() only queues a message")
        return failed(ex, f"{topic} holds {plural(len(messages), 'message')}, {len(bars):,} expected: {why}.")
    unkeyed = sum(1 for m in messages if not m.key())
    if unkeyed:
        return failed(ex, f"{plural(unkeyed, 'message')} of {len(messages):,} have no key: pass "
                          "key=bar.ticker to produce(), so that a ticker's bars can be found together.")
    bad = [m for m in messages if json.loads(m.value()).get("ticker", "").encode() != m.key()]
    if bad:
        return failed(ex, f"{plural(len(bad), 'message')} carry a key that is not the ticker of their value "
                          f"(key {bad[0].key()!r}): key=bar.ticker.")
    return passed(ex, f"All {len(messages):,} bars sit in partition 0 of {topic}, keyed by ticker. With one "
                      "partition, order holds across every ticker, but one consumer of a group does all "
                      "the work: a partition is the unit of parallelism.")


def produce_keys(topic: str, keys: Iterable[str], settings: Settings, partitions: int) -> dict[str, int]:
    """Create `topic` with `partitions` partitions, send one message per key; key -> its partition."""
    reset_topics(make_admin(settings), [topic], partitions=partitions)
    producer = make_producer(settings)
    for key in keys:
        producer.produce(topic, b"{}", key.encode())
    producer.flush(30)
    return {m.key().decode(): m.partition() for m in read_raw(topic, settings)}


def check_max_partitions(predicted: Any, bars: pd.DataFrame, settings: Settings) -> CheckResult:
    """02.2: at most how many of 12 partitions can the bars of five tickers use?"""
    ex = "02.2"
    if wrong := not_a_number(ex, "MAX_PARTITIONS_USED", predicted):
        return wrong
    keys = sorted(bars["ticker"].unique())
    where = produce_keys(lab("02", settings).prefix + "twelve", keys, settings, partitions=12)
    used = sorted(set(where.values()))
    seen = (f"Kafka put {', '.join(f'{k} in {p}' for k, p in sorted(where.items()))}: "
            f"{plural(len(used), 'partition')} of 12 used.")
    if predicted == len(keys):
        return passed(ex, f"A key always lands in one partition, so {len(keys)} keys fill at most "
                          f"{len(keys)} partitions, whatever the count. {seen} Partitions beyond the "
                          "number of keys add no parallelism.")
    why = ("more than the keys: every message of one key goes to the same partition" if predicted > len(keys)
           else "each distinct key can still land in a partition of its own")
    return failed(ex, f"You said {predicted}: {why}. How many distinct keys do the bars have? {seen}")


# --- 03 producing ---------------------------------------------------------------------------

def check_send_bars(send_bars: Any, bars: pd.DataFrame, settings: Settings) -> CheckResult:
    """03.1: a function that sends bars (key, value, market-time timestamp) and counts confirmations."""
    ex = "03.1"
    topic = lab("03", settings).prefix + "sent"
    reset_topics(make_admin(settings), [topic])
    producer = Producer({**client_conf(settings), "partitioner": "murmur2_random"})
    returned, error = call(ex, "send_bars", send_bars, producer, topic, bars)
    queued = len(producer)                  # messages still waiting for the broker's answer
    producer.flush(30)                      # whatever the student left queued: not ours to lose
    in_topic_now = count_messages(topic, settings)
    if error:
        return error
    if queued:
        return failed(ex, f"When send_bars returned, {plural(queued, 'message')} still waited in the "
                          "producer's queue for the broker's answer: produce() only queues a message. Call "
                          "producer.flush() before returning, so every message is confirmed and every "
                          "delivery report served.")
    if in_topic_now > len(bars):
        return failed(ex, f"{topic} holds {in_topic_now:,} messages for {len(bars):,} bars: "
                          "send each bar once.")
    if number(returned) != len(bars):
        return failed(ex, f"send_bars returned {returned!r}, but the broker confirmed {len(bars):,} "
                          "messages. Count in the delivery callback (on_delivery=…) when err is None: "
                          "callbacks run inside poll() and flush().")
    messages = read_raw(topic, settings)
    rows = {(m.key(), json.loads(m.value()).get("ts")): m for m in messages}
    unkeyed = sum(1 for m in messages if not m.key())
    if unkeyed:
        return failed(ex, f"{plural(unkeyed, 'message')} have no key: key = the ticker, so a stock's bars "
                          "stay in one partition, in order.")
    wrong_time = [m for (_, ts), m in rows.items() if m.timestamp()[1] != ts]
    if wrong_time:
        m = wrong_time[0]
        when = pd.Timestamp(m.timestamp()[1], unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M")
        return failed(ex, f"{plural(len(wrong_time), 'message')} carry Kafka timestamps that are not "
                          f"their bar's ts (one says {when} UTC, the time it was sent): pass "
                          "timestamp=ts to produce(), so that windows measure market time.")
    try:
        for m in messages:
            decode(PRICELIST, m.value())
    except Exception as exc:  # noqa: BLE001 - a malformed value is the student's to fix
        return failed(ex, f"A value does not follow the pricelist schema ({exc}): use bar_message(record).")
    return passed(ex, f"{len(bars):,} bars sent, {len(bars):,} confirmed by delivery reports, "
                      f"{len(bars):,} in {topic}: keyed by ticker, stamped with market time.")


def check_double_replay(predicted: Any, bars: pd.DataFrame, settings: Settings) -> CheckResult:
    """03.2: how many messages two replays of the same bars leave in a topic (idempotence is per producer)."""
    ex = "03.2"
    if wrong := not_a_number(ex, "PREDICTED", predicted, " of messages"):
        return wrong
    from .produce import replay_bars

    mine = lab("03", settings)
    reset_topics(make_admin(settings), [mine.topics.pricelist])
    for _ in range(2):
        replay_bars(bars, settings=mine, progress=False)
    actual = count_messages(mine.topics.pricelist, settings)
    if predicted == actual:
        return passed(ex, f"{mine.topics.pricelist} holds {actual:,} messages: every bar twice. "
                          "Idempotence drops a producer's own retries, not a second replay of the same "
                          "data: that is why notebook 03 empties pricelist before replaying.")
    if predicted == len(bars):
        why = ("enable.idempotence only stops one producer from writing its own retried batch twice; "
               "a second replay is a new producer sending new messages, and Kafka does not compare contents")
    else:
        why = "each replay sends every bar once, and Kafka keeps everything it is sent"
    return failed(ex, f"You predicted {predicted:,}, the topic holds {actual:,} after two replays of "
                      f"{len(bars):,} bars: {why}.")


# --- 04 routing -------------------------------------------------------------------------------

def route_with(handler: Callable, source: str, target: str, settings: Settings) -> int:
    """Run a hand-made router over `source`: handler(msg, producer, target) for each message."""
    consumer = make_consumer(f"{settings.prefix}exercise-router-{uuid.uuid4().hex[:6]}", settings)
    producer = make_producer(settings)
    read, at_end = 0, set()
    consumer.subscribe([source])
    try:
        def done() -> bool:
            nonlocal read
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error() and msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                elif msg.error():
                    raise KafkaException(msg.error())
                else:
                    handler(msg, producer, target)
                    read += 1
            producer.flush(60)
            assigned = {p.partition for p in consumer.assignment()}
            return bool(assigned) and assigned <= at_end

        wait_until(done, 120, f"the exercise router to reach the end of {source}", interval=0)
    finally:
        consumer.close()
    return read


def check_sell_route(is_sell: Any, route_sell: Any, settings: Settings) -> CheckResult:
    """04.1: a `sell` rule (close/open − 1 below −5 %) and a router that sends sells to their own topic."""
    ex = "04.1"
    bars = read_bars(make_engine(settings), "day")
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
                          f"Look at {wrong['ticker']} on {ts_day(wrong['ts'])}: open ${wrong['open']:.2f}, "
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
        return failed(ex, f"{target} holds {plural(len(messages), 'message')}, {len(expected):,} "
                          f"sells expected: {why}.")
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


def ts_day(ts: int) -> str:
    """'2008-10-15': the UTC day of an epoch-millisecond time."""
    return pd.Timestamp(int(ts), unit="ms", tz="UTC").strftime("%Y-%m-%d")


def crash_router(settings: Settings, bars: pd.DataFrame, after_batches: int = 3, batch: int = 500) -> int:
    """04.2: replay `bars` into the namespace's pricelist, then route it with the router's group and
    "crash" after delivering batch `after_batches`, before committing it; return the bars routed.

    The routing is notebook 04's hand-made loop (flush, then commit); the
    crash is that loop stopping between the two, as `kill -9` would.
    """
    from .produce import replay_bars
    from .route import route_bar

    topics, group = settings.topics, settings.group("router")
    reset_topics(make_admin(settings), topics.all, groups=[group])
    replay_bars(bars, settings=settings, progress=False)
    consumer = make_consumer(group, settings)
    producer = make_producer(settings)
    consumer.subscribe([topics.pricelist])
    routed, batches = 0, 0
    try:
        while batches < after_batches:
            messages = [m for m in consumer.consume(batch, timeout=1.0) if not m.error()]
            if not messages:
                continue
            for msg in messages:
                for topic, value in route_bar(msg.value(), Thresholds(), topics):
                    producer.produce(topic, encode(value), msg.key(), timestamp=value["ts"])
            producer.flush(60)
            routed += len(messages)
            batches += 1
            if batches < after_batches:
                consumer.commit(asynchronous=False)
    finally:
        consumer.close()          # the crash: the last batch is delivered, its offsets never committed
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
        return failed(ex, f"{written:,} is every variation in the topic; count only the repeated ones: rows "
                          "whose (ticker, ts) appeared before, `variations.duplicated([...]).sum()`.")
    return failed(ex, f"You counted {answer!r}. {topics.variations} holds {written:,} messages for "
                      f"{bars:,} bars in {topics.pricelist}. Which (ticker, ts) pairs appear twice? "
                      "Count them with pandas on `variations`.")


# --- 05 consumer groups ---------------------------------------------------------------------------

def check_idle_consumers(predicted: Any, settings: Settings, consumers: int = 4) -> CheckResult:
    """05.1: how many of four consumers of one group get no partition of a 3-partition topic."""
    ex = "05.1"
    if wrong := not_a_number(ex, "IDLE", predicted, " of consumers"):
        return wrong
    topic = settings.topics.pricelist
    partitions = topic_exists(topic, settings)
    group = f"{lab('05', settings).group('idle')}-{uuid.uuid4().hex[:6]}"
    members = [make_consumer(group, settings, {"client.id": f"consumer-{i}"}) for i in range(consumers)]

    joined: set[int] = set()             # members that took part in a rebalance

    def holder(index: int) -> Callable:
        def hold(consumer, assigned):
            joined.add(index)
            consumer.assign(assigned)
            consumer.pause(assigned)      # own the partitions, fetch nothing
        return hold

    for index, member in enumerate(members):
        member.subscribe([topic], on_assign=holder(index))
    last: list[Any] = []

    def settled() -> list[set[int]] | None:
        for member in members:
            member.poll(0.2)
        shares = [{p.partition for p in m.assignment()} for m in members]
        owned = sorted(p for share in shares for p in share)
        stable = len(joined) == consumers and owned == list(range(partitions)) and shares == last
        last[:] = shares
        return shares if stable else None

    try:
        shares = wait_until(settled, 90, f"{consumers} consumers of one group to share {topic}", interval=0)
    finally:
        for member in members:
            member.close()
    idle = sum(1 for share in shares if not share)
    table = pd.DataFrame({"partitions": [sorted(s) or "—" for s in shares]},
                         index=pd.Index([f"consumer {i}" for i in range(consumers)], name="member"))
    if predicted == idle:
        return passed(ex, f"{consumers} consumers, {partitions} partitions: {idle} idle. A partition is read "
                          "by at most one member of a group; an extra member waits as a standby and takes "
                          "over when another leaves.", table)
    return failed(ex, f"You predicted {predicted}; here {idle} of {consumers} got nothing. Kafka gives each "
                      f"partition to exactly one member of a group, and {topic} has {partitions}: how many "
                      "members can own at least one?", table)


def check_offset_reset(predicted: Any, settings: Settings, committed: int = 100) -> CheckResult:
    """05.2: what a consumer with auto.offset.reset=latest reads in a group that committed offset 100."""
    ex = "05.2"
    if wrong := not_a_number(ex, "READ", predicted, " of messages"):
        return wrong
    topic = settings.topics.pricelist
    group = f"{lab('05', settings).group('resume')}-{uuid.uuid4().hex[:6]}"
    setter = make_consumer(group, settings)
    ends = watermarks(setter, topic)
    setter.commit(offsets=[TopicPartition(topic, p, committed) for p in ends], asynchronous=False)
    setter.close()
    reader = make_consumer(group, settings, {"auto.offset.reset": "latest"})
    reader.subscribe([topic])
    read, at_end = 0, set()

    def done() -> bool:
        nonlocal read
        for msg in reader.consume(1000, timeout=0.5):
            if msg.error() and msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
            elif not msg.error():
                read += 1
        assigned = {p.partition for p in reader.assignment()}
        return bool(assigned) and assigned <= at_end

    try:
        wait_until(done, 90, f"a consumer of {group} to reach the end of {topic}", interval=0)
    finally:
        reader.close()
        delete_groups(make_admin(settings), [group])
    total = sum(high - low for low, high in ends.values())
    if predicted == read:
        return passed(ex, f"It read {read:,} messages: all but the {committed} per partition the group had "
                          "committed. auto.offset.reset applies only where a group has no committed offset; "
                          "this group had one everywhere, so it resumed there.")
    if predicted == 0:
        return failed(ex, f"You predicted 0, as if `latest` applied; it read {read:,}. `latest` is only the "
                          f"fallback for a partition where the group has committed nothing; this group "
                          f"committed offset {committed} in each of {len(ends)} partitions.")
    return failed(ex, f"You predicted {predicted:,}; it read {read:,} of the {total:,} messages. "
                      "Where does a consumer of a group with committed offsets start?")


def check_alert_counts(count_alerts: Any, settings: Settings) -> CheckResult:
    """05.3: a consumer that counts alerts per (ticker, year), and commits what it counted."""
    ex = "05.3"
    bars = read_bars(make_engine(settings), "day")
    alerts = alerts_frame(bars, PRICE_THRESHOLD)
    expected = alerts.groupby([alerts["ticker"], year_of(alerts["ts"]).rename("year")]).size()
    expected_counts = {(str(t), int(y)): int(n) for (t, y), n in expected.items()}
    in_topic = count_messages(settings.topics.alerts, settings)
    if in_topic != len(alerts):
        return failed(ex, f"{settings.topics.alerts} holds {in_topic:,} alerts, but {len(alerts):,} "
                          "daily bars close above $195 in MySQL: route again (notebook 04, or "
                          "`workbook reset --to 05`), then run this check.")
    group = f"{lab('05', settings).group('count')}-{uuid.uuid4().hex[:6]}"
    got, error = call(ex, "count_alerts", count_alerts, group)
    if error:
        return error
    if not isinstance(got, dict):
        return failed(ex, f"count_alerts returned {type(got).__name__}, not a dict such as "
                          "{('AAPL', 2012): 250, ...}.")
    bad_key = next((k for k in got if not (isinstance(k, tuple) and len(k) == 2
                                           and number(k[1]) is not None)), None)
    if bad_key is not None:
        return failed(ex, f"A key of your dict is {bad_key!r}: keys are (ticker, year) pairs such as "
                          "('AAPL', 2012), the year a number (the UTC year of the alert's ts).")
    bad_value = next(((k, n) for k, n in got.items() if number(n) is None), None)
    if bad_value is not None:
        return failed(ex, f"counts[{bad_value[0]!r}] is {bad_value[1]!r}, not a number: add 1 for each "
                          "alert, counts[key] = counts.get(key, 0) + 1.")
    counts = {(str(t), int(y)): int(n) for (t, y), n in got.items()}
    if counts != expected_counts:
        total = sum(counts.values())
        if total == 0:
            return failed(ex, "count_alerts counted nothing: add 1 to counts[(ticker, year)] for every "
                              "message of each batch.")
        diff = sorted(set(counts) | set(expected_counts),
                      key=lambda k: -abs(counts.get(k, 0) - expected_counts.get(k, 0)))[0]
        return failed(ex, f"{diff[0]} in {diff[1]}: you counted {counts.get(diff, 0):,}, MySQL has "
                          f"{expected_counts.get(diff, 0):,} daily closes above $195 ({total:,} alerts "
                          f"counted in all, {len(alerts):,} expected). Is the year the UTC year of the "
                          "alert's ts?")
    admin = make_admin(settings)
    lag = consumer_lag(admin, group, [settings.topics.alerts], settings)
    delete_groups(admin, [group])
    if lag:
        return failed(ex, f"The counts are right, but your group has not committed {lag:,} of the alerts it "
                          "counted: a restart would count them again. Commit after each batch "
                          "(consumer.commit(asynchronous=False)).")
    table = expected.rename("alerts").unstack(0).fillna(0).astype(int)
    return passed(ex, f"{len(alerts):,} alerts counted per ticker and year, equal to MySQL, and committed: "
                      "the group's lag is 0.", table)


# --- 06 stream SQL -------------------------------------------------------------------------------

def check_copartitioning(partitions: Any, survive: Any, settings: Settings) -> CheckResult:
    """06.1: how many buy signals a partition-by-partition join finds on inputs not co-partitioned."""
    from .rules import buy_signals

    ex = "06.1"
    if is_placeholder(survive):
        return failed(ex, f"SURVIVE {PLACEHOLDER}")
    if survive not in ("all", "some", "none"):
        return failed(ex, f"SURVIVE must be 'all', 'some' or 'none', got {survive!r}.")
    mine = lab("06", settings).topics
    counts = {t: topic_exists(t, settings) for t in (mine.alerts, mine.variations)}
    if not all(counts.values()):
        return failed(ex, "Run the exercise cell first: it copies alerts and variations into your "
                          "lab topics.")
    alerts = read_topic(mine.alerts, settings=settings)
    variations = read_topic(mine.variations, settings=settings)
    everything = buy_signals(alerts, variations, VARIATION_THRESHOLD)
    kept = pd.concat([buy_signals(a, variations[variations["partition"] == p], VARIATION_THRESHOLD)
                      for p, a in alerts.groupby("partition")], ignore_index=True)
    actual = "all" if len(kept) == len(everything) else ("none" if kept.empty else "some")
    table = pd.DataFrame({
        "alerts in partition": alerts.groupby("ticker")["partition"].first(),
        "variations in partition": variations.groupby("ticker")["partition"].first(),
        "buy signals": everything.groupby("ticker").size(),
        "found partition by partition": kept.groupby("ticker").size(),
    }).fillna(0).astype(int).loc[lambda t: t["buy signals"] > 0]
    if counts[mine.variations] == counts[mine.alerts]:
        return failed(ex, f"Both lab topics have {counts[mine.alerts]} partitions: they are co-partitioned, "
                          "so nothing breaks. Set PARTITIONS to another count and run the exercise "
                          "cell again.",
                      table)
    summary = (f"A join that reads partition n of {mine.alerts} ({counts[mine.alerts]} partitions) with "
               f"partition n of {mine.variations} ({counts[mine.variations]}) finds {len(kept)} of "
               f"{len(everything)} buy signals")
    if survive == actual:
        return passed(ex, f"{summary}: a ticker's alerts and variations meet only where the two partition "
                          "counts happen to hash it to the same number. ksqlDB refuses such inputs; Flink "
                          "re-distributes both by ticker and finds them all.", table)
    return failed(ex, f"You predicted {survive!r}. {summary}. The same key goes to partition "
                      "hash(key) mod N: change N and most keys move (see the table).", table)


def as_pairs(result: Any) -> pd.DataFrame | None:
    """A student's buy signals as (ticker, alert_ts, variation_ts) rows, or None."""
    if not isinstance(result, pd.DataFrame) or result.shape[1] < 3:
        return None
    frame = result.iloc[:, :3].copy()
    frame.columns = ["ticker", "alert_ts", "variation_ts"]
    try:
        return frame.astype({"ticker": str, "alert_ts": "int64", "variation_ts": "int64"})
    except (TypeError, ValueError):
        return None


def pair_hint(got: pd.DataFrame, expected: pd.DataFrame, bars: pd.DataFrame, threshold: float) -> str:
    """What separates a student's pairs from the engine's: the window's edges, its direction, >=."""
    keys = ["ticker", "alert_ts", "variation_ts"]
    both = got.merge(expected, how="outer", on=keys, indicator=True)
    missing = both[both["_merge"] == "right_only"]
    extra = both[both["_merge"] == "left_only"]
    dt = lambda f: f["variation_ts"] - f["alert_ts"]  # noqa: E731
    if len(missing) and (dt(got) == 0).all() and (dt(missing) != 0).any():
        return ("You only pair a bar with itself (the two ts equal), which is all daily bars ever "
                "need; on minute bars an alert pairs with every big variation of its ticker at most "
                "5 minutes before or after it.")
    if len(missing) and (dt(missing).abs() == FIVE_MINUTES_MS).all():
        return "Pairs exactly 5 minutes apart are missing: the window is inclusive (<= 5 minutes)."
    if len(missing) and (dt(missing) < 0).any() and not (dt(got) < 0).any():
        return ("Pairs whose variation came before the alert are missing: the window works in "
                "both directions.")
    if len(extra) and (dt(extra).abs() > FIVE_MINUTES_MS).any():
        return ("Some of your pairs are more than 5 minutes apart: both times are epoch "
                "milliseconds (5 × 60,000).")
    var = variations_frame(bars).set_index(["ticker", "ts"])["variation_ex"]
    if len(extra):
        ex_values = var.reindex(list(zip(extra["ticker"], extra["variation_ts"], strict=True))).to_numpy()
        if (ex_values <= threshold).any():
            return (f"Some of your variations are not strictly above {threshold:.0%}: the rule is "
                    "high/low − 1 > threshold, as a fraction.")
    return (f"{len(missing)} engine rows are missing from yours and {len(extra)} of yours are not "
            f"the engine's; first difference: {both[both['_merge'] != 'both'].iloc[0][keys].to_dict()}.")


def check_my_buy_signals(my_buy_signals: Any, settings: Settings) -> CheckResult:
    """06.2: a pandas buy join that equals what the engine wrote, on daily (5 %) and minute (2 %) bars."""
    ex = "06.2"
    from .streamsql import read_buy

    engine = make_engine(settings)
    cases = [("daily", "day", VARIATION_THRESHOLD, settings),
             ("minute", "minute", 0.02, settings.within("minute"))]
    lines = []
    for name, timespan, threshold, where in cases:
        if not count_messages(where.topics.buy, settings):
            return failed(ex, f"{where.topics.buy} is empty: run the lesson cells above first (the engine's "
                              "rows are what your function is compared with).")
        bars = read_bars(engine, timespan)
        expected = read_buy(where)[["ticker", "alert_ts", "variation_ts"]].astype(
            {"alert_ts": "int64", "variation_ts": "int64"})
        got, error = call(ex, "my_buy_signals", my_buy_signals, bars, threshold)
        if error:
            return error
        pairs = as_pairs(got)
        if pairs is None:
            return failed(ex, f"my_buy_signals returned {type(got).__name__}; return a DataFrame whose first "
                              "three columns are ticker, the alert's ts and the variation's ts.")
        same = pairs.sort_values(list(pairs.columns), ignore_index=True).equals(
            expected.sort_values(list(expected.columns), ignore_index=True))
        if not same:
            return failed(ex, f"On the {name} bars at {threshold:.0%}, you found {len(pairs):,} pairs, the "
                              f"engine {len(expected):,}. {pair_hint(pairs, expected, bars, threshold)}")
        lines.append(f"{len(expected):,} {name} pairs at {threshold:.0%}")
    return passed(ex, f"Your pandas join equals the engine's rows: {' and '.join(lines)}. "
                      "Same rule, computed over the whole history at once.")


# --- 07 dashboard ------------------------------------------------------------------------------

def check_one_signal_price(price: Any, bars: pd.DataFrame) -> CheckResult:
    """07.1: a price threshold that leaves exactly one buy signal at 5 %."""
    ex = "07.1"
    if is_placeholder(price):
        return failed(ex, f"PRICE {PLACEHOLDER}")
    if number(price) is None or price <= 0:
        return failed(ex, f"PRICE must be a positive number of dollars, got {price!r}.")
    wide = bars["high"] / bars["low"] - 1 > VARIATION_THRESHOLD      # daily: a signal is one bar
    signals = int(((bars["close"] > price) & wide).sum())
    if signals == 1:
        bar = bars[(bars["close"] > price) & wide].iloc[0]
        low, high = bars.loc[wide, "close"].nlargest(2).iloc[::-1]
        return passed(ex, f"At ${price:g} one day qualifies: {bar['ticker']} on {ts_day(bar['ts'])}, close "
                          f"${bar['close']:.2f}, range {bar['high'] / bar['low'] - 1:.1%}. Any price from "
                          f"${low:.2f} up to just below ${high:.2f} gives exactly one.")
    direction = "raise it" if signals > 1 else "lower it"
    return failed(ex, f"At ${price:g} there are {plural(signals, 'buy signal')} at 5 %: {direction}.")


def check_router_lag(predicted: Any, bars: pd.DataFrame, settings: Settings) -> CheckResult:
    """07.2: the router's lag after a replay it did not see, and what its restart routes."""
    from .produce import replay_bars
    from .route import run_router

    ex = "07.2"
    if wrong := not_a_number(ex, "LAG", predicted, " of bars"):
        return wrong
    mine = lab("07", settings)
    years = year_of(bars["ts"])
    before, during = bars[years == 2007], bars[years == 2008]
    admin = make_admin(settings)
    reset_topics(admin, mine.topics.all, groups=[mine.group("router")])
    replay_bars(before, settings=mine, progress=False)
    run_router(mine, progress=False)
    replay_bars(during, settings=mine, progress=False)
    lag = consumer_lag(admin, mine.group("router"), [mine.topics.pricelist], settings)
    restart = run_router(mine, progress=False)
    delete_topics(admin, mine.topics.all)
    message = (f"After routing 2007 ({len(before):,} bars) the router stopped; the replay then sent 2008: "
               f"its lag was {lag:,} bars, and its restart routed {restart.consumed:,}")
    if predicted == lag:
        return passed(ex, f"{message}. Lag = end of the partitions − the group's committed offsets: "
                          "exactly what is waiting for it.")
    return failed(ex, f"You predicted {predicted!r}. {message}. Lag counts the messages written after the "
                      "group's last committed offsets.")


# --- 08 next steps -----------------------------------------------------------------------------

def reference_trailing_stop(entry: float, closes: Any, drop: float = 0.08,
                            days: int = 60) -> tuple[int, str] | None:
    """08.1's rule, written by the check: 8 % below the highest close so far, or the 60th day."""
    highest = entry
    for day, close in enumerate(list(closes)[:days]):
        if close <= highest * (1 - drop):
            return day, "trailing stop"
        highest = max(highest, close)
    return (days - 1, "time") if len(closes) >= days else None


def as_exit(decision: Any) -> tuple[int, str] | None | str:
    """A rule's answer as (day, reason) or None; a string saying what is wrong otherwise."""
    if decision is None:
        return None
    if (isinstance(decision, tuple) and len(decision) == 2 and number(decision[0]) is not None
            and float(decision[0]).is_integer()):
        return int(decision[0]), str(decision[1])
    return f"{decision!r} is neither (day, reason) nor None"


def check_trailing_stop(rule: Any, settings: Settings) -> CheckResult:
    """08.1: a trailing-stop exit rule, on every signal's following days, then in a bot of its own."""
    from .paper import PaperBot, Prices, backtest
    from .streamsql import read_buy

    ex = "08.1"
    bars = read_bars(make_engine(settings), "day")
    signals = read_buy(settings)
    prices = Prices(bars)
    cases = []
    for signal in signals.itertuples():
        ts, closes = prices.series[signal.ticker]
        start = int(np.searchsorted(ts, signal.alert_ts, side="right"))
        cases.append((f"{signal.ticker} bought at ${signal.close:,.2f} on {ts_day(signal.alert_ts)}",
                      float(signal.close), [float(c) for c in closes[start:]]))
    cases += [("A made-up entry at $100.00", 100.0, [101.0, 99.0, 93.0, 92.5, 120.0]),
              ("A made-up entry at $100.00", 100.0, [100.0] * 59),
              ("A made-up entry at $100.00", 100.0, [100.0] * 61)]
    for label, entry, closes in cases:
        answer, error = call(ex, "trailing_stop", rule, entry, list(closes))
        if error:
            return error
        got, expected = as_exit(answer), reference_trailing_stop(entry, closes)
        if isinstance(got, str):
            return failed(ex, f"trailing_stop returned {got}: return (day, reason), e.g. "
                              "(3, 'trailing stop'), or None while no day triggers.")
        if (None if got is None else got[0]) != (None if expected is None else expected[0]):
            return failed(ex, trailing_hint(label, entry, closes, got, expected))
    lab_bot = PaperBot(settings, rule, tables="ex08_paper", group=lab("08", settings).group("trailing"))
    lab_bot.reset()
    lab_bot.run()
    book = lab_bot.read_trades()
    reference = backtest(bars, signals, reference_trailing_stop, lab_bot.amount)
    if not book.round(6).equals(reference.round(6)):
        return failed(ex, f"Your rule agrees with the check's on every signal, yet the bot's book "
                          f"({len(book)} trades) differs from the backtest ({len(reference)}): does "
                          "trailing_stop keep state between calls? A rule must depend only on its arguments.")
    sells = book[book["side"] == "sell"]
    profit = sells["amount"].sum() - book.loc[book["side"] == "buy", "amount"].sum()
    return passed(ex, f"Your rule sells on the same day as the check's on all {len(cases):,} cases; a bot "
                      f"using it made {len(sells)} round trips for ${profit:,.2f}, trade for trade equal to "
                      "the backtest.")


def trailing_hint(label: str, entry: float, closes: list[float], got: Any, expected: Any) -> str:
    """Where a student's trailing stop and the check's part ways, on one concrete case."""
    if expected is None:
        return (f"{label}, followed by only {len(closes)} closes that never fall 8 % below their "
                f"highest: you sell on day {got[0]}; return None while nothing triggers.")
    day = expected[0]
    peak = max([entry, *closes[:day]])
    said = "never" if got is None else f"on day {got[0]} ({got[1]})"
    if expected[1] == "time":
        return (f"{label}: your rule sells {said}; no close of the first 60 days falls 8 % below the "
                "highest close so far, so the rule sells on day 59, the 60th trading day (time).")
    return (f"{label}: your rule sells {said}; the trailing stop sells on day {day} "
            f"({expected[1]}), when the close ${closes[day]:,.2f} is {1 - closes[day] / peak:.1%} below the "
            f"highest close so far, ${peak:,.2f}.")


def check_bot_restart(doubled: Any, bot: Any, signals: pd.DataFrame) -> CheckResult:
    """08.2: how many trades a crash-and-restart writes twice into the bot's book."""
    from .paper import backtest

    ex = "08.2"
    if wrong := not_a_number(ex, "DOUBLED", doubled, " of trades"):
        return wrong
    runs = list(getattr(bot, "history", []))
    if len(runs) < 2 or not runs[-2].crashed:
        return failed(ex, "Run the whole exercise cell: reset, the run that crashes, then the restart.")
    book = bot.read_trades()
    twice = int(book.duplicated(["ticker", "side", "signal_ts"]).sum())
    reference = backtest(read_bars(bot.engine, "day"), signals, bot.rule, bot.amount)
    if not book.round(6).equals(reference.round(6)):
        return failed(ex, f"The lab bot's book ({len(book)} trades) differs from the backtest "
                          f"({len(reference)}): run the exercise cell again from lab.reset().")
    crashed, restart = runs[-2], runs[-1]
    story = (f"The first run handled {crashed.read} signals and died before committing them; the "
             f"restart read {restart.read}, those {crashed.read} again included")
    if doubled == twice:
        return passed(ex, f"{story}, and the book still holds each of its {len(book)} trades once, equal to "
                          "the backtest. A repeated signal finds its trade already written (a unique key on "
                          "ticker, side and signal) or its position already open: an idempotent consumer "
                          "turns at-least-once delivery into effectively-once results.")
    return failed(ex, f"You predicted {doubled}. {story}. Count the book's rows that repeat a (ticker, side, "
                      "signal_ts): `lab.read_trades().duplicated([...]).sum()`, and look at the unique key "
                      "of the paper_trades table in helpers/paper.py.")


# --- 09 fault tolerance --------------------------------------------------------------------------

def check_brokers_may_fail(predicted: Any, topic: Any, survived: Any, refused: Any) -> CheckResult:
    """09.1: how many brokers may be down while acks=all writes into `topic` still succeed."""
    ex = "09.1"
    if wrong := not_a_number(ex, "MAY_FAIL", predicted, " of brokers"):
        return wrong
    replicas = int(topic.replication_factor)
    needed = int((topic.config or {}).get("min.insync.replicas", 1))
    truth = replicas - needed
    evidence = (f"Above, with 3 replicas and min.insync.replicas=2: one broker down, "
                f"{len(survived.delivered):,} of {len(survived.sent):,} bars delivered; two down, "
                f"{refused.errors.get('NOT_ENOUGH_REPLICAS', 0):,} of {len(refused.sent):,} refused "
                "with NOT_ENOUGH_REPLICAS.")
    if predicted == truth:
        return passed(ex, f"{truth} of {replicas}: a write with acks=all needs {needed} in-sync replicas, "
                          f"so {replicas} − {needed} = {truth} brokers holding a replica may be down. "
                          f"{evidence}")
    if predicted == replicas - 1:
        why = (f"one replica left would keep the data, but min.insync.replicas={needed} asks for {needed} "
               "copies before a write is confirmed")
    elif predicted >= replicas:
        why = "with every replica gone, nothing can store the write"
    else:
        why = f"count the replicas that stay in sync when {predicted + 1} brokers are down"
    return failed(ex, f"You said {predicted}: {why}. {evidence}")


def as_seqs(value: Any) -> set[int] | None:
    """A student's collection of sequence numbers as a set of ints, or None."""
    if isinstance(value, (str, bytes, dict)) or number(value) is not None:
        return None
    try:
        return {int(v) for v in value}
    except (TypeError, ValueError):
        return None


def check_missing_and_lost(missing: Any, lost: Any, run: Any, settings: Settings, topic: str) -> CheckResult:
    """09.2: the sequence numbers a replay sent that never reached the topic, and those lost silently."""
    from .replication import messages_in_topic, read_sequence_numbers

    ex = "09.2"
    for name, value in (("MISSING", missing), ("LOST", lost)):
        if is_placeholder(value):
            return failed(ex, f"{name} {PLACEHOLDER}")
        if as_seqs(value) is None:
            return failed(ex, f"{name} must be a set of sequence numbers, not {type(value).__name__}: "
                              "set(fast.sent) is one.")
    read = read_sequence_numbers(settings, topic)
    if len(read) != messages_in_topic(settings, topic):
        return failed(ex, f"{topic} changed while the check read it: run the exercise cell again.")
    present = set(read["seq"])
    sent, delivered = set(run.sent), set(run.delivered)
    truth_missing, truth_lost = sent - present, delivered - present
    yours, your_lost = as_seqs(missing) or set(), as_seqs(lost) or set()
    if yours != truth_missing:
        if yours & present:
            return failed(ex, f"{plural(len(yours & present), 'number')} of your MISSING are in the topic "
                              f"(e.g. {min(yours & present):,}): keep only what was sent and never read "
                              "back.")
        example = min(truth_missing - yours)
        reason = run.failed.get(example, "delivered")
        return failed(ex, f"{plural(len(truth_missing - yours), 'sent number')} are neither in the topic nor "
                          f"in your MISSING, e.g. {example:,} (its delivery report: {reason}). "
                          "MISSING = set(fast.sent) − the numbers read back.")
    if your_lost != truth_lost:
        return failed(ex, f"LOST has {len(your_lost):,} numbers, {len(truth_lost):,} expected: the missing "
                          "ones that the producer reported delivered (fast.delivered holds the numbers "
                          "reported delivered). The others were reported failed: the producer knew.")
    knew = len(truth_missing) - len(truth_lost)
    names = ", ".join(error_names(run, truth_missing)) or "no error"
    return passed(ex, f"{len(truth_missing):,} of {len(sent):,} bars never reached {topic}: {knew:,} "
                      f"reported failed ({names}: the producer knew), and {len(truth_lost):,} lost silently, "
                      "confirmed then gone. A killed broker leaves its writes in the page cache; a power "
                      "cut or a dead disk would not, and with one replica nothing else has a copy.")


def error_names(run: Any, seqs: set[int]) -> list[str]:
    """The error names of a run's failed messages among `seqs`."""
    return sorted({run.failed[s] for s in seqs if s in run.failed})
