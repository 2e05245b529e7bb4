"""Kafka client configuration, built in one place (02_topics, 03_producing, 04_routing).

Configuration is a dict of librdkafka's dotted keys. Every consumer gets its
own group id, chosen by its purpose: the original shared one group among all
consumers, so a second consumer saw nothing and re-runs showed nothing.
librdkafka's own log lines go to the Python logger `helpers.kafka`, which is
silent unless a student asks (`logging.basicConfig(level="INFO")`).
On a shared cluster every client also logs in and checks the broker's
certificate (`security_conf`, from KAFKA_SECURITY_PROTOCOL and friends).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    ThrottleEvent,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from helpers.core.errors import DeliveryError, InputError, KafkaOperationError, WaitTimeout
from helpers.core.settings import KafkaSecurity, Settings
from helpers.infra.prereqs import say

KAFKA_LOGGER = logging.getLogger("helpers.kafka")
KAFKA_LOGGER.addHandler(logging.NullHandler())
THROTTLED: list[float] = []      # the first throttle time this process was told of (said once)

# murmur2_random: the same key -> partition mapping as Java clients (ksqlDB, Flink, Kafka Streams)
PRODUCER_DEFAULTS = {"enable.idempotence": True, "acks": "all", "linger.ms": 20,
                     "compression.type": "lz4", "partitioner": "murmur2_random"}
# librdkafka reads committed messages only by default; said here because Java clients do not.
# group.protocol=consumer: the broker assigns partitions and moves only those that must move (KIP-848)
CONSUMER_DEFAULTS = {"auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "enable.partition.eof": True, "isolation.level": "read_committed",
                     "group.protocol": "consumer"}
SEND_TIMEOUT_S = 120.0   # how long send() waits for room in a full local queue
READ_TIMEOUT_S = 120.0   # how long a read to the end of a topic may take
# librdkafka reports every message, delivered or failed, within message.timeout.ms (300 s by default)
REPORT_TIMEOUT_S = 330.0


def security_conf(security: KafkaSecurity) -> dict[str, str]:
    """librdkafka's keys for logging in and checking the broker ({} for PLAINTEXT)."""
    conf: dict[str, str] = {}
    if security.protocol != "PLAINTEXT":
        conf["security.protocol"] = security.protocol.lower()
    if security.sasl:
        conf.update({"sasl.mechanism": security.mechanism, "sasl.username": security.username,
                     "sasl.password": security.password})
    if security.tls and security.ca_location:
        conf["ssl.ca.location"] = security.ca_location
    return conf


def say_throttled(event: ThrottleEvent) -> None:
    """The first time a broker holds this process's requests back (a quota), say so, once."""
    if event.throttle_time > 0 and not THROTTLED:
        THROTTLED.append(event.throttle_time)
        say(f"Kafka held back a request of yours for {event.throttle_time * 1000:.0f} ms: the server "
            "limits how fast each user may write and read (a quota), and your work goes on at that pace.")


def client_conf(settings: Settings, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Configuration shared by every client (brokers, how to log in, where logs go, what a quota
    says), plus `extra`."""
    return {"bootstrap.servers": settings.bootstrap_servers, **security_conf(settings.kafka_security),
            "logger": KAFKA_LOGGER, "throttle_cb": say_throttled, **(extra or {})}


def make_admin(settings: Settings, extra: dict[str, Any] | None = None) -> AdminClient:
    """An AdminClient for creating and describing topics and groups."""
    return AdminClient(client_conf(settings, extra))


def make_producer(settings: Settings, extra: dict[str, Any] | None = None) -> Producer:
    """An idempotent producer: acks=all, no duplicates on retry, Java-compatible partitioning."""
    return Producer(client_conf(settings, {**PRODUCER_DEFAULTS, **(extra or {})}))


def make_consumer(group_id: str, settings: Settings,
                  extra: dict[str, Any] | None = None) -> Consumer:
    """A consumer of its own group, reading from the start, committing only when told."""
    if not group_id:
        raise InputError("Every consumer needs its own group.id, named after its purpose.")
    conf = {**CONSUMER_DEFAULTS, "group.id": group_id, **(extra or {})}
    return Consumer(client_conf(settings, conf))


@contextmanager
def refused_as_sentence(what: str) -> Iterator[None]:
    """Inside the block, a broker's refusal (KafkaException) becomes one KafkaOperationError sentence:
    "Could not <what>: <the broker's words>." """
    try:
        yield
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        said = error.str() if error is not None and hasattr(error, "str") else str(exc)
        raise KafkaOperationError(f"Could not {what}: {said}.") from None


def batches_to_end(consumer: Consumer, *, timeout: float = READ_TIMEOUT_S,
                   size: int = 500) -> Iterator[list[Message]]:
    """Batches of records until every partition assigned to `consumer` is read to its end.

    The one read-to-end loop of the workbook: for a subscribed consumer (the
    partitions its group gives it, from the group's committed offsets) and for
    an assigned one (`assign_from_start`). It needs `enable.partition.eof`
    (make_consumer sets it). A batch may be empty; the caller handles each
    batch (and commits it) before the next is fetched. Raises WaitTimeout when
    `timeout` seconds pass without a record or a partition's end (also when no
    partition is ever assigned), KafkaOperationError when the broker reports
    an error.
    """
    at_end: set[tuple[str, int]] = set()
    deadline = time.monotonic() + timeout
    while True:
        batch, ends = [], len(at_end)
        for msg in consumer.consume(size, timeout=0.5):
            error = msg.error()
            if error is None:
                at_end.discard((msg.topic(), msg.partition()))
                batch.append(msg)
            elif error.code() == KafkaError._PARTITION_EOF:
                at_end.add((msg.topic(), msg.partition()))
            else:
                raise KafkaOperationError(f"Reading {msg.topic()} failed: {error.str()}.")
        if batch or len(at_end) > ends:
            deadline = time.monotonic() + timeout        # progress: the clock starts again
        yield batch
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        if assigned and assigned <= at_end:
            return
        if time.monotonic() > deadline:
            where = ", ".join(sorted({t for t, _ in assigned})) or "its topics (no partition assigned)"
            raise WaitTimeout(f"Reading {where} got nothing for {timeout:g} s before reaching the end.")


# what a partition answers in the moment between its creation and its leader being ready
LEADER_BEING_SET_UP = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}


def watermarks(consumer: Consumer, topic: str, timeout: float = 15) -> dict[int, tuple[int, int]]:
    """partition -> (low, high) offsets: the first kept message and the next one to be written.

    A retriable refusal (a topic created a moment ago answers "Not leader
    for partition" while its leader is being set up) is asked again until
    `timeout` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    with refused_as_sentence(f"read the offsets of {topic}"):
        while True:
            try:
                meta = consumer.list_topics(topic, timeout=10).topics[topic]
                if meta.error is not None:
                    raise KafkaException(meta.error)
                return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                        for p in meta.partitions}
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                retriable = isinstance(error, KafkaError) and (
                    error.retriable() or error.code() in LEADER_BEING_SET_UP)
                if not retriable or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def assign_from_start(consumer: Consumer, topics: Iterable[str]) -> bool:
    """Assign every partition of `topics` that holds messages, from its first; False when none does."""
    parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for topic in topics
             for p, (low, high) in watermarks(consumer, topic).items() if high > low]
    consumer.assign(parts)
    return bool(parts)


def flush_until_reported(producer: Producer, timeout: float = REPORT_TIMEOUT_S) -> int:
    """flush() until every queued message has its delivery report; return how many still have none.

    A broker down for a minute delays the reports, it does not lose the
    messages: librdkafka retries them until message.timeout.ms. A shorter
    flush would count messages still on their way as failed. Flushes a second
    at a time, so Ctrl-C stops the wait.
    """
    deadline = time.monotonic() + timeout
    remaining = producer.flush(0)
    while remaining and (left := deadline - time.monotonic()) > 0:
        remaining = producer.flush(min(1.0, left))
    return remaining


def send(producer: Producer, topic: str, value: bytes | None, key: bytes | None, ts: int,
         on_delivery: Callable | None = None, headers: list | None = None,
         timeout: float = SEND_TIMEOUT_S) -> None:
    """produce() one message stamped `ts`; when the local queue is full, serve deliveries and retry.

    Gives up with a DeliveryError when the queue stays full for `timeout`
    seconds (the broker has stopped taking messages).
    """
    deadline = None
    while True:
        try:
            producer.produce(topic, value, key, timestamp=ts, headers=headers, on_delivery=on_delivery)
            break
        except BufferError:
            deadline = deadline or time.monotonic() + timeout
            if time.monotonic() > deadline:
                raise DeliveryError(f"The producer's queue for {topic} stayed full for {timeout:g} s: "
                                    "the broker is not accepting messages.") from None
            producer.poll(0.5)
    producer.poll(0)
