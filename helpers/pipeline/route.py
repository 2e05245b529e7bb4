"""The router: read `pricelist`, send every bar's variation to `variations` and
every bar above the price threshold to `alerts` (04_routing).

This is the hardened twin of the consume -> decide -> produce -> commit loop
that notebook 04 writes by hand. The decisions are pure (`route_bar`, built on
`helpers.core.rules` and `helpers.core.validation`); the `Router` only moves messages:
- at-least-once (default): a batch's input offsets are committed only after
  every routed message of that batch is delivered; a crash repeats a batch,
  never loses one;
- exactly-once (`exactly_once=True`): each batch's outputs and its input
  offsets are written in one Kafka transaction; readers that read committed
  messages only (every reader of the workbook) see each bar once;
- a record it cannot route goes to the dead-letter topic with its reason in
  a header, and routing goes on.

What makes it fast (`make bench`: more than 3 times the plain loop of notebook
04, `route_naively`, on the same topic): a plain valid record is parsed by
orjson and checked in one pass (`valid_bar`, exactly what decode and
bar_problem decide); outputs are produced without waiting, and made durable
every COMMIT_EVERY_S seconds, not every batch; only failed deliveries come
back as callbacks.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from helpers.core.errors import DeliveryError, InputError, KafkaOperationError, SchemaError, WaitTimeout
from helpers.core.progress import progress_bar
from helpers.core.rules import Thresholds, check_price_threshold, is_alert, to_alert, to_variation
from helpers.core.schemas import BIG_INT, MAX_VALUE_BYTES, PRICELIST, TopicNames, decode, encode
from helpers.core.settings import Settings
from helpers.core.validation import MAX_AHEAD_MS, MAX_COUNT, REASONS, TICKER, bar_problem, now_ms
from helpers.core.whatif import PriceChange
from helpers.infra.clients import client_conf, flush_until_reported, make_consumer, make_producer, send

ROUTER_GROUP = "workbook-router"        # settings.group("router") on a laptop
BATCH = 1000                            # records read at a time, at most
POLL_S = 0.5                            # how long to wait for a record when none is there
COMMIT_EVERY_S = 0.5                    # make the routed records durable this often ...
COMMIT_MAX = 20_000                     # ... or after this many records, whichever comes first
DLQ_MAX_VALUE = 64 * 1024               # a dead letter keeps at most this much of a value (bytes)
DLQ_MAX_KEY = 1024
NAIVE_TIMEOUT_S = 600                   # the plain router gives up after this long
IDLE_TIMEOUT_S = 120                    # until caught up: give up after this long without a record
TRANSACTION_TIMEOUT_MS = 10_000         # a dead router's open transaction holds back readers this long
# a rebalance took the partitions away: their offsets go to the new owner, the batch repeats
REBALANCED = {KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
              KafkaError.UNKNOWN_MEMBER_ID, KafkaError._NO_OFFSET}

Outputs = list[tuple[str, dict[str, Any]]]


def route_bar(raw: bytes | None, thresholds: Thresholds, topics: TopicNames = TopicNames(),
              now: int | None = None) -> Outputs:
    """Where one `pricelist` record goes: [(topic, value), ...]; a dead letter on bad input.

    Pure: no I/O. A dead letter's value is {"reason": ...}; every other record
    gives one variation, plus an alert when its close is above the threshold.
    """
    bar = valid_bar(raw, now)
    if bar is None:                     # anything unusual: the full checks say what is wrong, if anything
        try:
            bar = decode(PRICELIST, raw, finite=False)
        except SchemaError as exc:
            return [(topics.dead_letter, {"reason": f"bad_message: {exc}"})]
        problem = bar_problem(bar, now)
        if problem:
            return [(topics.dead_letter, {"reason": f"{problem}: {REASONS[problem]}"})]
    out = [(topics.variations, to_variation(bar))]
    if is_alert(bar["close"], thresholds.price):
        out.append((topics.alerts, to_alert(bar)))
    return out


def valid_bar(raw: bytes | None, now: int | None = None) -> dict[str, Any] | None:
    """The bar of a plain, valid `pricelist` record, fast; None for anything else.

    The router's fast path: a JSON object of exactly the nine `pricelist`
    fields whose prices, volume and vwap are floats below 2**63, ts an int,
    transactions an int or null, vwap may be null, and which passes every rule
    of `validation.bar_problem`. It returns
    what `schemas.decode` would return for such a record; any other record
    (ints for prices, NaN, a missing field, a broken rule...) gets None, and
    goes through decode and bar_problem, which name its problem if it has one.
    """
    if raw is None or len(raw) > MAX_VALUE_BYTES:
        return None
    try:                # orjson alone: whatever it reads differently from json.loads is refused below
        value = orjson.loads(raw)
        ticker, ts, open_, high, low, close, volume, vwap, transactions = (
            value["ticker"], value["ts"], value["open"], value["high"], value["low"], value["close"],
            value["volume"], value["vwap"], value["transactions"])
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return None
    # exactly the nine fields, each of the expected class and below 2**63 in size, so that no
    # integer of 64 bits or more (which orjson reads as a float) can hide anywhere
    if (len(value) != 9 or ticker.__class__ is not str or ts.__class__ is not int
            or open_.__class__ is not float or high.__class__ is not float or low.__class__ is not float
            or close.__class__ is not float or volume.__class__ is not float
            or not (vwap is None or (vwap.__class__ is float and -BIG_INT < vwap < BIG_INT))
            or not (transactions is None or (transactions.__class__ is int
                                             and 0 <= transactions < MAX_COUNT))):
        return None
    latest = (now_ms() if now is None else now) + MAX_AHEAD_MS
    if not (0 <= ts <= latest and 0 < low <= open_ <= high < BIG_INT and low <= close <= high
            and 0 <= volume < MAX_COUNT and high / low < math.inf and close / open_ < math.inf):
        return None
    if ticker not in _GOOD_TICKERS:
        if not TICKER.fullmatch(ticker):
            return None
        if len(_GOOD_TICKERS) < 100_000:
            _GOOD_TICKERS.add(ticker)
    return {"ticker": ticker, "ts": ts, "open": open_, "high": high, "low": low, "close": close,
            "volume": volume, "vwap": vwap, "transactions": transactions}


_GOOD_TICKERS: set[str] = set()     # tickers already matched against validation.TICKER


def dead_letter_headers(msg: Message, reason: str) -> list[tuple[str, bytes]]:
    """Headers that say why a record was refused and where it came from."""
    headers = [("reason", reason.encode()), ("source.topic", msg.topic().encode()),
               ("source.partition", str(msg.partition()).encode()),
               ("source.offset", str(msg.offset()).encode())]
    if len(msg.value() or b"") > DLQ_MAX_VALUE:
        headers.append(("value.truncated.from", str(len(msg.value())).encode()))
    return headers


@dataclass
class RouteReport:
    """Counts of one router run."""

    consumed: int = 0
    variations: int = 0
    alerts: int = 0
    dead_letters: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    waited: float = 0.0       # seconds before the first record arrived (joining the group)

    @property
    def rate(self) -> float:
        """Consumed bars per second."""
        return self.consumed / self.seconds if self.seconds else 0.0

    @property
    def busy_rate(self) -> float:
        """Consumed bars per second from the first record on (without the wait to join the group)."""
        busy = self.seconds - self.waited
        return self.consumed / busy if busy > 0 else 0.0

    def __str__(self) -> str:
        return (f"consumed {self.consumed:,}: {self.variations:,} variations, {self.alerts:,} alerts, "
                f"{self.dead_letters} dead letters in {self.seconds:.2f} s ({self.rate:,.0f} bars/s)")


def transactional_id(group_id: str) -> str:
    """One transactional id per router process: `<group>.tx.<pid>-<random>`.

    With exactly-once v2 (KIP-447) a zombie is fenced by its consumer group's
    generation, not by a shared id; a shared id would make two routers of one
    group fence each other. A crashed router's open transaction is aborted by
    the broker after TRANSACTION_TIMEOUT_MS.
    """
    return f"{group_id}.tx.{os.getpid()}-{uuid.uuid4().hex[:8]}"


def parse_price_change(raw: bytes | None) -> float:
    """A control message's value, JSON `{"price": <USD>}`, as the new alert price; an InputError
    sentence otherwise."""
    example = '{"price": 250}'
    try:
        value = json.loads(raw or b"")
    except ValueError:
        raise InputError(f"A control message must be JSON like {example}, got {raw!r:.60}.") from None
    if not isinstance(value, dict) or set(value) != {"price"}:
        raise InputError(f"A control message gives the new alert price only, like {example}, "
                         f"got {value!r:.60}.")
    return check_price_threshold(value["price"])


class Router:
    """A consumer-producer loop around route_bar, stoppable from another thread or a signal.

    It reads up to BATCH records at a time, produces their outputs without
    waiting, and every `commit_every` seconds (or COMMIT_MAX records) makes
    them durable: at-least-once waits until every routed message is delivered
    and then commits the inputs' offsets; exactly-once commits a transaction
    that holds both. Only failed deliveries are reported back
    (`delivery.report.only.error`): every message reported
    (flush_until_reported) and no failure among them means every message was delivered.

    With a `control_topic` (at-least-once only), it also reads that topic from
    its start, between batches: each message `{"price": …}` changes the alert
    price for the bars it routes from then on (`price_changes` says from which
    offsets); a malformed one is kept in `control_errors` and changes nothing.
    """

    def __init__(self, settings: Settings, thresholds: Thresholds = Thresholds(), *,
                 exactly_once: bool = False, group_id: str | None = None,
                 commit_every: float = COMMIT_EVERY_S, control_topic: str | None = None):
        if control_topic and exactly_once:
            raise InputError("A price change applies from the next bar routed; exactly-once routing may "
                             "route a batch again after an abort, so it takes no control topic.")
        self.settings = settings
        self.thresholds, self.topics = thresholds, self.settings.topics
        self.exactly_once = exactly_once
        self.commit_every = commit_every
        group_id = group_id or self.settings.group("router")
        extra: dict[str, Any] = {"delivery.report.only.error": True, "on_delivery": self._on_delivery}
        if exactly_once:
            extra.update({"transactional.id": transactional_id(group_id),
                          "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS})
        self.producer = make_producer(self.settings, extra)
        if exactly_once:
            self.producer.init_transactions(30)
        self.consumer = make_consumer(group_id, self.settings)
        self.control_topic = control_topic
        self._control = make_consumer(f"{group_id}-control", self.settings) if control_topic else None
        self.price_changes: list[PriceChange] = []
        self.control_errors: list[str] = []
        self._routed_to: dict[int, int] = {}    # partition -> next offset, never cleared
        self._closed = False
        self.stop_event = threading.Event()
        self.report = RouteReport()
        self._report_at_begin = RouteReport()    # the counts when the open transaction began
        self._at_end: set[int] = set()           # partitions read to their end (until a new record)
        self._errors: list[str] = []
        self._done: dict[int, int] = {}      # partition -> next offset to commit
        self._pending = 0                    # records routed since the last commit
        self._in_transaction = False
        self._failed = False

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and return."""
        self.stop_event.set()

    def close(self) -> None:
        """Leave the consumer group and wait for what is still in flight (run() does this itself)."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self.exactly_once:
                flush_until_reported(self.producer)
        finally:
            self.consumer.close()
            if self._control is not None:
                self._control.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_delivery(self, err, msg) -> None:
        if err:
            self._errors.append(f"{msg.topic()}: {err}")

    def _dead_letter(self, msg: Message, reason: str) -> None:
        """Send a refused record, as received, to the dead-letter topic with its reason."""
        self.report.dead_letters += 1
        self.report.reasons[reason] = self.report.reasons.get(reason, 0) + 1
        key = msg.key()[:DLQ_MAX_KEY] if msg.key() else None
        value_bytes = msg.value()[:DLQ_MAX_VALUE] if msg.value() else None
        send(self.producer, self.topics.dead_letter, value_bytes, key,
             min(max(msg.timestamp()[1], 0), now_ms()), None, dead_letter_headers(msg, reason))

    def _offsets(self, partitions: set[int] | None = None) -> list[TopicPartition]:
        return [TopicPartition(self.topics.pricelist, p, o) for p, o in self._done.items()
                if partitions is None or p in partitions]

    def _commit(self) -> None:
        """At-least-once: wait for every routed message, then commit the inputs' offsets."""
        if flush_until_reported(self.producer) or self._errors:
            raise DeliveryError(f"Routed messages were not delivered, so no offsets were committed: "
                                f"{self._errors[:3]}.")
        self._pending = 0
        if not self._done:
            return
        try:
            self.consumer.commit(offsets=self._offsets(), asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() not in REBALANCED:
                raise
        self._done.clear()

    def _commit_transaction(self) -> None:
        """Exactly-once: the outputs and input offsets since the last commit, in one transaction."""
        if not self._in_transaction:
            return
        try:
            if self._done:
                group = self.consumer.consumer_group_metadata()
                self.producer.send_offsets_to_transaction(self._offsets(), group, 30)
            self.producer.commit_transaction(60)
        except KafkaException as exc:
            if not exc.args[0].txn_requires_abort():
                raise
            self._abort_and_rewind()
        self._in_transaction = False
        self._pending = 0
        self._done.clear()

    def _abort_and_rewind(self) -> None:
        """Exactly-once: drop the open transaction and read its records again (counted once, when
        their transaction commits)."""
        self.producer.abort_transaction(30)
        self._errors.clear()
        seconds, waited = self.report.seconds, self.report.waited
        self.report = replace(self._report_at_begin, reasons=dict(self._report_at_begin.reasons),
                              seconds=seconds, waited=waited)
        committed = self.consumer.committed(self.consumer.assignment(), timeout=10)
        self._at_end.clear()                 # the rewound partitions are not at their end any more
        for tp in committed:
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)))
        self._done.clear()

    def _make_durable(self) -> None:
        """Commit what was routed since the last commit (either mode)."""
        if self.exactly_once:
            self._commit_transaction()
        else:
            self._commit()
        self._last_commit = time.perf_counter()

    def _on_revoke(self, consumer, partitions) -> None:
        """Partitions go to another router: commit what was routed from them first.

        Not after a failure in exactly-once mode: its open transaction is left
        to be aborted (by the broker, or by the next router of the group).
        """
        if not (self.exactly_once and self._failed):
            self._make_durable()

    def _read_control(self, started: float) -> None:
        """Apply the price changes that arrived on the control topic since the last look."""
        assert self._control is not None
        for msg in self._control.consume(100, timeout=0):
            error = msg.error()
            if error:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaOperationError(f"Reading {msg.topic()} failed: {error.str()}.")
            try:
                price = parse_price_change(msg.value())
            except InputError as exc:
                self.control_errors.append(str(exc))
                continue
            if price != self.thresholds.price:
                self.thresholds = replace(self.thresholds, price=price)
                self.price_changes.append(PriceChange(price, dict(self._routed_to),
                                                      time.perf_counter() - started))

    def _batch(self, messages: list[Message], at_end: set[int], bar) -> None:
        """Route a batch of records: produce every output of each (see route_bar) without waiting."""
        if self.exactly_once and not self._in_transaction and any(not m.error() for m in messages):
            self.producer.begin_transaction()
            self._in_transaction = True
            self._report_at_begin = replace(self.report, reasons=dict(self.report.reasons))
        produce, thresholds, topics = self.producer.produce, self.thresholds, self.topics
        variations_topic, dead_letter = topics.variations, topics.dead_letter
        now, done, routed, variations, alerts = now_ms(), self._done, 0, 0, 0
        for msg in messages:
            error = msg.error()
            if error:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                raise KafkaOperationError(f"Reading {msg.topic()} failed: {error.str()}.")
            partition = msg.partition()
            if at_end:
                at_end.discard(partition)
            for topic, value in route_bar(msg.value(), thresholds, topics, now):
                if topic == dead_letter:
                    self._dead_letter(msg, value["reason"])
                    continue
                if topic == variations_topic:
                    variations += 1
                else:
                    alerts += 1
                message, key, ts = encode(value), value["ticker"].encode(), value["ts"]
                try:
                    produce(topic, message, key, timestamp=ts)
                except BufferError:             # the local queue is full: wait for room
                    send(self.producer, topic, message, key, ts)
            done[partition] = msg.offset() + 1
            routed += 1
        self._routed_to.update(done)
        report = self.report
        report.consumed += routed
        report.variations += variations
        report.alerts += alerts
        self._pending += routed
        self.producer.poll(0)
        bar.update(routed)

    def _next_batch(self) -> list[Message]:
        """What the consumer holds now (up to BATCH); when it holds nothing, wait for the next record."""
        messages = self.consumer.consume(BATCH, timeout=0)
        if not messages:
            messages = self.consumer.consume(1, timeout=POLL_S)
        return messages

    def run(self, until_caught_up: bool = False, progress: bool | None = None,
            idle_timeout: float = IDLE_TIMEOUT_S) -> RouteReport:
        """Route until stopped (or, with until_caught_up, until every partition is at its end; then a
        WaitTimeout after `idle_timeout` seconds in which neither a record nor an end arrived)."""
        start = self._last_commit = time.perf_counter()
        at_end = self._at_end
        self.consumer.subscribe([self.topics.pricelist], on_revoke=self._on_revoke)
        if self._control is not None:
            self._control.assign([TopicPartition(self.control_topic, 0, OFFSET_BEGINNING)])
        show = self.settings.progress if progress is None else progress
        idle_since = time.monotonic()
        try:
            with progress_bar(total=None, desc="routing", unit="bar", enabled=show) as bar:
                while not self.stop_event.is_set():
                    if self._control is not None:
                        self._read_control(start)
                    messages = self._next_batch()
                    if not self.report.consumed and any(not m.error() for m in messages):
                        self.report.waited = time.perf_counter() - start
                    self._batch(messages, at_end, bar)
                    assigned = {tp.partition for tp in self.consumer.assignment()}
                    caught_up = bool(until_caught_up and assigned and assigned <= at_end)
                    if self._pending and (caught_up or self._pending >= COMMIT_MAX or not messages
                                          or time.perf_counter() - self._last_commit >= self.commit_every):
                        self._make_durable()       # an aborted transaction empties at_end: read again
                    if until_caught_up and assigned and assigned <= at_end:
                        break
                    if messages:
                        idle_since = time.monotonic()
                    elif until_caught_up and time.monotonic() - idle_since > idle_timeout:
                        raise WaitTimeout(f"The router got nothing from {self.topics.pricelist} for "
                                          f"{idle_timeout:g} s before reaching its end.")
                if self._pending or self._in_transaction:
                    self._make_durable()             # stopped: what was routed is committed
        except BaseException:
            self._failed = True
            raise
        finally:
            self.close()
            self.report.seconds = time.perf_counter() - start
        return self.report


def run_router(settings: Settings, thresholds: Thresholds = Thresholds(), *,
               until_caught_up: bool = True, progress: bool | None = None,
               exactly_once: bool = False, group_id: str | None = None) -> RouteReport:
    """Route `pricelist` (by default until caught up, as the notebook does)."""
    with Router(settings, thresholds, exactly_once=exactly_once, group_id=group_id) as router:
        return router.run(until_caught_up, progress)


# --- the loop a student writes first (04_routing) ----------------------------------

def route_naively(settings: Settings, thresholds: Thresholds = Thresholds(), *,
                  group_id: str | None = None, commit_every: int = 500,
                  timeout: float = NAIVE_TIMEOUT_S) -> RouteReport:
    """The plain router of notebook 04, until caught up: one record at a time, stdlib json, no safety net.

    consume -> json.loads -> the two rules -> json.dumps -> produce -> commit
    every `commit_every` records. It is the yardstick of `Router`: it commits
    offsets before its output is confirmed (a crash can lose bars), has no
    dead-letter topic (one malformed record stops it) and no exactly-once mode.
    Gives up with a WaitTimeout after `timeout` seconds without reaching the end.
    """
    topics = settings.topics
    producer = Producer(client_conf(settings))
    consumer = Consumer(client_conf(settings, {
        "group.id": group_id or settings.group("naive-router"), "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "enable.partition.eof": True}))
    report, at_end = RouteReport(), set()
    start = time.perf_counter()
    consumer.subscribe([topics.pricelist])
    deadline = start + timeout
    try:
        while True:
            if time.perf_counter() > deadline:
                raise WaitTimeout(f"The plain router did not reach the end of {topics.pricelist} within "
                                  f"{timeout:g} s.")
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaOperationError(f"Reading {topics.pricelist} failed: {msg.error().str()}.")
                at_end.add(msg.partition())
                if at_end >= {tp.partition for tp in consumer.assignment()}:
                    break                                   # every partition read to its end
                continue
            if not report.consumed:
                report.waited = time.perf_counter() - start
            bar = json.loads(msg.value())
            variation = json.dumps(to_variation(bar))
            producer.produce(topics.variations, variation, msg.key(), timestamp=bar["ts"])
            report.variations += 1
            if is_alert(bar["close"], thresholds.price):
                alert = json.dumps(to_alert(bar))
                producer.produce(topics.alerts, alert, msg.key(), timestamp=bar["ts"])
                report.alerts += 1
            producer.poll(0)
            report.consumed += 1
            if report.consumed % commit_every == 0:
                consumer.commit(asynchronous=False)
        if report.consumed % commit_every:
            consumer.commit(asynchronous=False)          # the last, partial batch
    finally:
        try:
            producer.flush(60)
        finally:
            consumer.close()
        report.seconds = time.perf_counter() - start
    return report
