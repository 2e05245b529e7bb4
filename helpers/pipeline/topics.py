"""Topics: create, reset, describe, count and read them (02_topics).

Creating a topic that already exists is success, so every notebook can be
re-run. The demo topics keep their messages forever (`retention.ms=-1`):
their message timestamps are market times of years ago, and with the
default 7-day retention Kafka would delete them as soon as a segment rolls.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from contextlib import closing
from typing import Any

import pandas as pd
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from helpers.core.errors import KafkaOperationError, WaitTimeout
from helpers.core.schemas import FIELDS, TOPICS, decode
from helpers.core.settings import Settings
from helpers.core.waiting import wait_until
from helpers.infra.clients import (
    assign_from_start,
    batches_to_end,
    make_consumer,
    make_producer,
    refused_as_sentence,
    watermarks,
)

PARTITIONS = 3
TOPIC_CONFIG = {"retention.ms": "-1", "cleanup.policy": "delete"}
# A table's topic: the log cleaner keeps the last value of each key. Small segments and no lag
# let it clean within the lesson (a segment is cleaned once closed, every segment.ms at least).
COMPACTED = {"cleanup.policy": "compact", "segment.ms": "5000", "min.cleanable.dirty.ratio": "0.01",
             "min.compaction.lag.ms": "0", "delete.retention.ms": "1000"}
# On a shared cluster the same table also deletes, with no age limit: a class server refuses a
# topic whose size has no limit (helpers/infra/limits.py), and compaction alone has none.
SHARED_COMPACTED = {**COMPACTED, "cleanup.policy": "compact,delete", "retention.ms": "-1"}
SHOWN_CONFIGS = ("retention.ms", "cleanup.policy", "message.timestamp.type", "min.insync.replicas")
ADMIN_TIMEOUT_S = 60.0
# errors that go away by themselves: a coordinator or leader still loading or moving, or a
# quota on creating and deleting partitions (a class server's controller_mutation_rate)
RETRIABLE = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
             KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.LEADER_NOT_AVAILABLE,
             KafkaError.NOT_CONTROLLER, KafkaError.REQUEST_TIMED_OUT, KafkaError._TIMED_OUT,
             KafkaError._TRANSPORT, KafkaError.NOT_LEADER_FOR_PARTITION,
             KafkaError.THROTTLING_QUOTA_EXCEEDED}


def admin_each(request: Callable[[list[str]], dict[Any, Future]], items: Iterable[str], *,
               accept: dict[int, str], what: str, timeout: float = ADMIN_TIMEOUT_S) -> dict[str, str]:
    """Send one admin request for `items`, retrying the items that failed retriably.

    Returns item -> 'ok' or the word `accept` gives its error (for example
    'exists'); any other error raises KafkaOperationError naming the item.
    """
    outcome: dict[str, str] = {}
    pending, deadline = list(items), time.monotonic() + timeout
    while pending:
        retry = []
        for key, future in request(pending).items():
            item = getattr(key, "group_id", key)
            try:
                future.result()
                outcome[item] = "ok"
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() in accept:
                    outcome[item] = accept[error.code()]
                elif error.code() in RETRIABLE or error.retriable():
                    if time.monotonic() > deadline:
                        raise WaitTimeout(f"Could not {what} {item} within {timeout:g} s: "
                                          f"the broker kept answering {error.name()}.") from None
                    retry.append(item)
                else:
                    raise KafkaOperationError(f"Could not {what} {item}: {error.str()}.") from None
        pending = retry
        if pending:
            time.sleep(0.5)
    return outcome


def compacted_config(settings: Settings) -> dict[str, str]:
    """A table's topic settings: COMPACTED on a laptop, SHARED_COMPACTED in a student's namespace."""
    return SHARED_COMPACTED if settings.namespace else COMPACTED


def ensure_topics(admin: AdminClient, names: Iterable[str] = TOPICS, partitions: int = PARTITIONS,
                  config: dict[str, str] | None = None) -> dict[str, str]:
    """Create the topics that do not exist yet (with `config`, by default TOPIC_CONFIG); return
    name -> 'created' or 'exists'."""
    names, config = list(names), config or TOPIC_CONFIG
    outcome = admin_each(
        lambda pending: admin.create_topics([NewTopic(n, num_partitions=partitions, config=config)
                                             for n in pending], request_timeout=30),
        names, accept={KafkaError.TOPIC_ALREADY_EXISTS: "exists"}, what="create topic")
    wait_for_topics(admin, names, present=True)
    return {name: "created" if state == "ok" else state for name, state in outcome.items()}


def wait_for_topics(admin: AdminClient, names: list[str], present: bool, timeout: float = 30) -> None:
    """Wait until every topic is visible in metadata with a leader for each partition (present)
    or gone (not present)."""
    def ready(meta) -> bool:
        return (meta is not None and not meta.error and bool(meta.partitions)
                and all(p.leader >= 0 and not p.error for p in meta.partitions.values()))

    def settled() -> bool:
        known = admin.list_topics(timeout=10).topics
        if present:
            return all(ready(known.get(n)) for n in names)
        return all(n not in known or known[n].error for n in names)

    wait_until(settled, timeout, f"topics {', '.join(names)} to {'appear' if present else 'disappear'}")


def delete_topics(admin: AdminClient, names: Iterable[str]) -> list[str]:
    """Delete the topics that exist and wait until they are gone; return their names."""
    existing = set(admin.list_topics(timeout=10).topics)
    names = [n for n in names if n in existing]
    if names:
        admin_each(lambda pending: admin.delete_topics(pending, request_timeout=30), names,
                   accept={KafkaError.UNKNOWN_TOPIC_OR_PART: "gone"}, what="delete topic")
        wait_for_topics(admin, names, present=False)
    return names


def delete_groups(admin: AdminClient, group_ids: Iterable[str]) -> None:
    """Forget the committed offsets of consumer groups (missing groups are fine)."""
    group_ids = list(group_ids)
    if group_ids:
        admin_each(lambda pending: admin.delete_consumer_groups(pending, request_timeout=30), group_ids,
                   accept={KafkaError.GROUP_ID_NOT_FOUND: "absent", KafkaError.NON_EMPTY_GROUP: "in use"},
                   what="delete consumer group")


def reset_topics(admin: AdminClient, names: Iterable[str] = TOPICS, groups: Iterable[str] = (),
                 partitions: int = PARTITIONS) -> dict[str, str]:
    """Delete and re-create topics (and forget groups), so a run starts from empty topics."""
    names = list(names)
    delete_topics(admin, names)
    delete_groups(admin, groups)
    return ensure_topics(admin, names, partitions)


def describe_topics(admin: AdminClient, names: Iterable[str] = TOPICS) -> pd.DataFrame:
    """One row per topic: partitions and the configs worth teaching."""
    names = list(names)
    metadata = admin.list_topics(timeout=10).topics
    resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
    rows = []
    for resource, future in admin.describe_configs(resources).items():
        with refused_as_sentence(f"describe topic {resource.name}"):
            configs = future.result()
        row = {"topic": resource.name, "partitions": len(metadata[resource.name].partitions)}
        row.update({key: configs[key].value for key in SHOWN_CONFIGS if key in configs})
        rows.append(row)
    return pd.DataFrame(rows).set_index("topic").loc[names]


def own_group(purpose: str, settings: Settings) -> str:
    """A throw-away group id of one purpose, in the settings' namespace ('alice.workbook-reader-1f2e...')."""
    return settings.group(f"{purpose}-{uuid.uuid4().hex[:8]}")


def count_messages(topic: str, settings: Settings) -> int:
    """Messages in a topic, from its partitions' low and high watermarks.

    These are offsets: a topic written in transactions (the router's
    exactly-once mode) also spends one on each commit marker. Count such a
    topic by reading it (`len(read_topic(...))`).
    """
    with closing(make_consumer(own_group("count", settings), settings)) as consumer:
        return sum(high - low for low, high in watermarks(consumer, topic).values())


def topic_counts(names: Iterable[str], settings: Settings) -> pd.Series:
    """Messages per topic, as a Series named 'messages'."""
    return pd.Series({n: count_messages(n, settings) for n in names}, name="messages")


def schema_of(topic: str) -> str:
    """The schema name of a topic, in any namespace: 'alice.alerts' -> 'alerts'."""
    matches = [t for t in TOPICS if topic == t or topic.endswith("." + t)]
    return max(matches, key=len) if matches else topic


def decode_any(schema: str, msg) -> dict:
    """A message value decoded by its schema, or raw JSON plus headers (dead letters)."""
    if schema in FIELDS:
        return decode(schema, msg.value())
    headers = {k: v.decode(errors="replace") for k, v in (msg.headers() or [])}
    return {"value": msg.value().decode(errors="replace") if msg.value() else None, **headers}


def read_topic(topic: str, schema: str | None = None, *, settings: Settings,
               timeout: float = 60.0) -> pd.DataFrame:
    """Every committed message of a topic, from the start to its current end, as a DataFrame.

    Reads each partition up to its end and stops (no group offsets are
    committed). Values are decoded with the schema named `schema` (default:
    the topic's own, namespace left out); columns partition, offset, key and
    timestamp (Kafka's, epoch ms) come first. Messages of aborted transactions
    are skipped.
    """
    schema = schema or schema_of(topic)
    rows = []
    with closing(make_consumer(own_group("reader", settings), settings)) as consumer:
        if assign_from_start(consumer, [topic]):
            for batch in batches_to_end(consumer, timeout=timeout, size=1000):
                rows += [{"partition": msg.partition(), "offset": msg.offset(),
                          "key": msg.key().decode(errors="replace") if msg.key() is not None else None,
                          "timestamp": msg.timestamp()[1], **decode_any(schema, msg)} for msg in batch]
    return pd.DataFrame(rows)


def group_offsets(admin: AdminClient, group_id: str, topics: Iterable[str],
                  settings: Settings) -> pd.DataFrame:
    """One row per partition: the group's committed offset, the end of the log, and the lag between.

    A partition the group never committed counts from its first kept message.
    """
    from confluent_kafka import ConsumerGroupTopicPartitions

    request = [ConsumerGroupTopicPartitions(group_id)]
    with refused_as_sentence(f"read the committed offsets of group {group_id}"):
        committed = admin.list_consumer_group_offsets(request)[group_id].result()
    offsets = {(tp.topic, tp.partition): tp.offset for tp in committed.topic_partitions or []}
    rows = []
    with closing(make_consumer(own_group("lag", settings), settings)) as consumer:
        for topic in topics:
            for partition, (low, high) in sorted(watermarks(consumer, topic).items()):
                done = offsets.get((topic, partition), -1)
                rows.append({"topic": topic, "partition": partition,
                             "committed": done if done >= 0 else None, "end": high,
                             "lag": high - max(done, low)})
    return pd.DataFrame(rows).set_index(["topic", "partition"])


def consumer_lag(admin: AdminClient, group_id: str, topics: Iterable[str], settings: Settings) -> int:
    """Messages of `topics` that a consumer group has not committed yet."""
    return int(group_offsets(admin, group_id, topics, settings)["lag"].sum())


def records_in(topic: str, settings: Settings) -> int:
    """The records a consumer reads from the start of `topic` now (after any compaction): fewer than
    its offsets span once the log cleaner has removed superseded values."""
    read = 0
    with closing(make_consumer(own_group("records", settings), settings)) as consumer:
        if assign_from_start(consumer, [topic]):
            for batch in batches_to_end(consumer, timeout=60, size=5000):
                read += len(batch)
    return read


ROLL_KEY = b"~segment-roll"            # a tombstone that closes the active segment of a compacted topic


def compact_now(admin: AdminClient, topic: str, settings: Settings, keys: int,
                timeout: float = 120) -> float:
    """Let the broker's log cleaner compact `topic` within the lesson; return the seconds it took.

    Only closed segments are cleaned: once the topic's segment.ms has passed,
    one more record (a tombstone of ROLL_KEY, deleted in turn) rolls the
    segment; then the cleaner runs at its next check. Waits until a reader
    sees at most `keys` + 1 records.
    """
    from confluent_kafka.admin import ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    with refused_as_sentence(f"describe topic {topic}"):
        segment_ms = int(admin.describe_configs([resource])[resource].result()["segment.ms"].value)
    time.sleep(segment_ms / 1000 + 0.5)
    producer = make_producer(settings)
    producer.produce(topic, None, ROLL_KEY)
    if producer.flush(30):
        raise WaitTimeout(f"The record that rolls {topic}'s segment was not delivered within 30 s.")
    started = time.monotonic()
    wait_until(lambda: records_in(topic, settings) <= keys + 1, timeout,
               f"the log cleaner to compact {topic} to at most {keys + 1} records", interval=2.0)
    return time.monotonic() - started


def table_from_topic(topic: str, settings: Settings) -> pd.DataFrame:
    """What a reader rebuilds from a table's topic: the last value of each key, in key order (a
    tombstone, a key without value, deletes it)."""
    import orjson

    frame = read_topic(topic, schema="raw", settings=settings)
    if frame.empty:
        return pd.DataFrame()
    last = frame.sort_values(["partition", "offset"]).groupby("key").tail(1)
    rows = [orjson.loads(value) for value in last["value"] if value is not None]
    return pd.DataFrame(rows).sort_values(list(pd.DataFrame(rows).columns[:1]), ignore_index=True)
