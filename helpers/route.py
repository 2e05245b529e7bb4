"""The router: read `pricelist`, send every bar's variation to `variations` and
every bar above the price threshold to `alerts` (04_routing).

The decisions are the pure rules of `helpers.rules`; this module only moves
messages. At-least-once: a batch's input offsets are committed only after
every routed message of that batch is delivered. A malformed record goes to
the dead-letter topic with the reason in a header, and routing goes on.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from .clients import make_consumer, make_producer, send
from .config import Settings
from .progress import progress_bar
from .rules import Thresholds, is_alert, to_alert, to_variation
from .schemas import ALERTS, DEAD_LETTER, PRICELIST, VARIATIONS, SchemaError, decode, encode

ROUTER_GROUP = "workbook-router"
BATCH = 500


@dataclass(frozen=True)
class RouterTopics:
    """The topics one router reads and writes (tests use prefixed names)."""

    source: str = PRICELIST
    variations: str = VARIATIONS
    alerts: str = ALERTS
    dead_letter: str = DEAD_LETTER

    @classmethod
    def prefixed(cls, prefix: str) -> "RouterTopics":
        """The same topics with a prefix, e.g. for an isolated test."""
        return cls(*(prefix + name for name in (PRICELIST, VARIATIONS, ALERTS, DEAD_LETTER)))


@dataclass
class RouteReport:
    """Counts of one router run."""

    consumed: int = 0
    variations: int = 0
    alerts: int = 0
    dead_letters: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return (f"consumed {self.consumed:,}: {self.variations:,} variations, {self.alerts:,} alerts, "
                f"{self.dead_letters} dead letters in {self.seconds:.2f} s")


def route_bar(raw: bytes | None, thresholds: Thresholds, topics: RouterTopics = RouterTopics()
              ) -> list[tuple[str, dict[str, Any]]]:
    """Where one `pricelist` record goes: [(topic, value), ...]; a dead letter on bad input.

    Pure: no I/O. A dead letter's value is {"reason": ...}.
    """
    try:
        bar = decode(PRICELIST, raw)
        if bar["low"] <= 0 or bar["open"] <= 0:
            raise SchemaError("prices must be above 0 (low and open divide the variations)")
        if bar["high"] < bar["low"]:
            raise SchemaError("high is below low")
        if bar["ts"] < 0:
            raise SchemaError("ts must be epoch milliseconds, not negative")
    except SchemaError as exc:
        return [(topics.dead_letter, {"reason": str(exc)})]
    out = [(topics.variations, to_variation(bar))]
    if is_alert(bar["close"], thresholds.price):
        out.append((topics.alerts, to_alert(bar)))
    return out


class Router:
    """A consumer-producer loop around route_bar, stoppable from another thread or a signal."""

    def __init__(self, settings: Settings | None = None, thresholds: Thresholds = Thresholds(),
                 topics: RouterTopics = RouterTopics(), group_id: str = ROUTER_GROUP):
        self.thresholds, self.topics = thresholds, topics
        self.consumer = make_consumer(group_id, settings)
        self.producer = make_producer(settings)
        self.stop_event = threading.Event()
        self.report = RouteReport()
        self._errors: list[str] = []

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and return."""
        self.stop_event.set()

    def _on_delivery(self, err, msg) -> None:
        if err:
            self._errors.append(f"{msg.topic()}: {err}")

    def _send(self, msg, outputs: list[tuple[str, dict[str, Any]]]) -> None:
        for topic, value in outputs:
            if topic == self.topics.dead_letter:
                self.report.dead_letters += 1
                reason = value["reason"]
                self.report.reasons[reason] = self.report.reasons.get(reason, 0) + 1
                headers = [("reason", reason.encode()), ("source.topic", msg.topic().encode()),
                           ("source.partition", str(msg.partition()).encode()),
                           ("source.offset", str(msg.offset()).encode())]
                send(self.producer, topic, msg.value(), msg.key(), max(msg.timestamp()[1], 0),
                     self._on_delivery, headers)
                continue
            self.report.variations += topic == self.topics.variations
            self.report.alerts += topic == self.topics.alerts
            send(self.producer, topic, encode(value), value["ticker"].encode(), value["ts"],
                 self._on_delivery)

    def _commit(self, offsets: dict[int, int]) -> None:
        """Wait for every routed message, then commit the batch's input offsets."""
        if self.producer.flush(60) or self._errors:
            raise KafkaException(f"routed messages not delivered, offsets not committed: {self._errors[:3]}")
        if offsets:
            self.consumer.commit(offsets=[TopicPartition(self.topics.source, p, o + 1)
                                          for p, o in offsets.items()], asynchronous=False)

    def run(self, until_caught_up: bool = False, progress: bool = True) -> RouteReport:
        """Route until stopped (or, with until_caught_up, until every partition is at its end)."""
        start = time.perf_counter()
        at_end: set[int] = set()
        self.consumer.subscribe([self.topics.source])
        try:
            with progress_bar(total=None, desc="routing", unit="bar", enabled=progress) as bar:
                while not self.stop_event.is_set():
                    offsets: dict[int, int] = {}
                    for msg in self.consumer.consume(BATCH, timeout=0.5):
                        if msg.error():
                            if msg.error().code() == KafkaError._PARTITION_EOF:
                                at_end.add(msg.partition())
                                continue
                            raise KafkaException(msg.error())
                        at_end.discard(msg.partition())
                        self._send(msg, route_bar(msg.value(), self.thresholds, self.topics))
                        offsets[msg.partition()] = msg.offset()
                        self.report.consumed += 1
                        bar.update()
                    self._commit(offsets)
                    assigned = {tp.partition for tp in self.consumer.assignment()}
                    if until_caught_up and assigned and assigned <= at_end:
                        break
        finally:
            self.producer.flush(60)
            self.consumer.close()
            self.report.seconds = time.perf_counter() - start
        return self.report


def run_router(settings: Settings | None = None, thresholds: Thresholds = Thresholds(),
               topics: RouterTopics = RouterTopics(), group_id: str = ROUTER_GROUP,
               until_caught_up: bool = True, progress: bool = True) -> RouteReport:
    """Route `pricelist` (by default until caught up, as the notebook does)."""
    return Router(settings, thresholds, topics, group_id).run(until_caught_up, progress)
