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
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from .config import KafkaSecurity, Settings, load_settings
from .errors import DeliveryError, InputError

KAFKA_LOGGER = logging.getLogger("helpers.kafka")
KAFKA_LOGGER.addHandler(logging.NullHandler())

# murmur2_random: the same key -> partition mapping as Java clients (ksqlDB, Flink, Kafka Streams)
PRODUCER_DEFAULTS = {"enable.idempotence": True, "acks": "all", "linger.ms": 20,
                     "compression.type": "lz4", "partitioner": "murmur2_random"}
# librdkafka reads committed messages only by default; said here because Java clients do not
CONSUMER_DEFAULTS = {"auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "enable.partition.eof": True, "isolation.level": "read_committed"}
SEND_TIMEOUT_S = 120.0   # how long send() waits for room in a full local queue


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


def client_conf(settings: Settings | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Configuration shared by every client (brokers, how to log in, where logs go), plus `extra`."""
    settings = settings or load_settings()
    return {"bootstrap.servers": settings.bootstrap_servers, **security_conf(settings.kafka_security),
            "logger": KAFKA_LOGGER, **(extra or {})}


def make_admin(settings: Settings | None = None, extra: dict[str, Any] | None = None) -> AdminClient:
    """An AdminClient for creating and describing topics and groups."""
    return AdminClient(client_conf(settings, extra))


def make_producer(settings: Settings | None = None, extra: dict[str, Any] | None = None) -> Producer:
    """An idempotent producer: acks=all, no duplicates on retry, Java-compatible partitioning."""
    return Producer(client_conf(settings, {**PRODUCER_DEFAULTS, **(extra or {})}))


def make_consumer(group_id: str, settings: Settings | None = None,
                  extra: dict[str, Any] | None = None) -> Consumer:
    """A consumer of its own group, reading from the start, committing only when told."""
    if not group_id:
        raise InputError("Every consumer needs its own group.id, named after its purpose.")
    conf = {**CONSUMER_DEFAULTS, "group.id": group_id, **(extra or {})}
    return Consumer(client_conf(settings, conf))


def batches_to_end(consumer: Consumer, size: int = 100) -> Iterator[list[Message]]:
    """Batches of records from a subscribed consumer, until every assigned partition is read to its end.

    The consumer needs `enable.partition.eof` (make_consumer sets it). A batch
    may be empty; a record's error raises. The caller handles each batch (and
    commits it) before the next is fetched.
    """
    at_end: set[int] = set()
    while True:
        batch = []
        for msg in consumer.consume(size, timeout=1.0):
            error = msg.error()
            if error and error.code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
            elif error:
                raise KafkaException(error)
            else:
                batch.append(msg)
        yield batch
        assigned = {p.partition for p in consumer.assignment()}
        if assigned and assigned <= at_end:
            return


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
