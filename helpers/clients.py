"""Kafka client factories with sane defaults, built in one place (02_topics).

Configuration is a dict of librdkafka's dotted keys. Every consumer gets its
own group id, chosen by its purpose: the original shared one group among all
consumers, so a second consumer saw nothing and re-runs showed nothing.
"""
from __future__ import annotations

from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from .config import Settings, load_settings

# murmur2_random: the same key -> partition mapping as Java clients (ksqlDB, Flink, Kafka Streams)
PRODUCER_DEFAULTS = {"enable.idempotence": True, "acks": "all", "linger.ms": 20,
                     "compression.type": "lz4", "partitioner": "murmur2_random"}
CONSUMER_DEFAULTS = {"auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "enable.partition.eof": True}


def client_conf(settings: Settings | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Configuration shared by every client (where the brokers are), plus `extra`."""
    settings = settings or load_settings()
    return {"bootstrap.servers": settings.bootstrap_servers, **(extra or {})}


def make_admin(settings: Settings | None = None, extra: dict[str, Any] | None = None) -> AdminClient:
    """An AdminClient for creating and describing topics."""
    return AdminClient(client_conf(settings, extra))


def make_producer(settings: Settings | None = None, extra: dict[str, Any] | None = None) -> Producer:
    """An idempotent producer: acks=all, no duplicates on retry, Java-compatible partitioning."""
    return Producer(client_conf(settings, {**PRODUCER_DEFAULTS, **(extra or {})}))


def make_consumer(group_id: str, settings: Settings | None = None,
                  extra: dict[str, Any] | None = None) -> Consumer:
    """A consumer of its own group, reading from the start, committing only when told."""
    if not group_id:
        raise ValueError("Every consumer needs its own group.id, named after its purpose.")
    conf = {**CONSUMER_DEFAULTS, "group.id": group_id, **(extra or {})}
    return Consumer(client_conf(settings, conf))


def send(producer: Producer, topic: str, value: bytes, key: bytes, ts: int,
         on_delivery=None, headers=None) -> None:
    """produce() one message stamped `ts`; when the local queue is full, wait for deliveries and retry."""
    while True:
        try:
            producer.produce(topic, value, key, timestamp=ts, headers=headers, on_delivery=on_delivery)
            break
        except BufferError:
            producer.poll(0.5)
    producer.poll(0)
