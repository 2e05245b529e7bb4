"""Kafka's own tools through `workbook kafka-...` on the running stack, checked against the admin client.

Each test makes its own topic, `clitest.<id>`, and deletes it (and its groups) afterwards.
"""
from __future__ import annotations

import sys
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import NewTopic

from helpers.infra.clients import make_admin, make_consumer, make_producer, watermarks
from helpers.infra.kafka_tools import KAFKA_TOOLS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processes import run_workbook as workbook  # noqa: E402

pytestmark = pytest.mark.integration
RECORDS = 60


def table(output: str) -> list[dict[str, str]]:
    """The rows of a table the tools print (a header line of upper-case names, then rows)."""
    lines = [line.split() for line in output.splitlines() if line.strip()]
    start = next(i for i, words in enumerate(lines) if "PARTITION" in words)
    return [dict(zip(lines[start], words, strict=False)) for words in lines[start + 1:]]


@pytest.fixture
def topic(settings):
    """A topic of three partitions holding RECORDS keyed records; it and its groups are deleted after."""
    name = f"clitest.{uuid.uuid4().hex[:10]}"
    admin = make_admin(settings)
    admin.create_topics([NewTopic(name, 3, 1)])[name].result()
    producer = make_producer(settings)
    for i in range(RECORDS):
        producer.produce(name, key=f"key-{i % 12}", value=f"value-{i}")
        producer.poll(0)
    assert producer.flush(30) == 0
    yield name
    groups = [g.group_id for g in admin.list_consumer_groups().result().valid
              if g.group_id.startswith(name)]
    for future in admin.delete_consumer_groups(groups).values() if groups else []:
        future.result()
    admin.delete_topics([name])[name].result()


def test_describe_lists_the_partitions_the_admin_client_sees(settings, topic):
    result = workbook("kafka-topics", "--describe", "--topic", topic)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""                                  # no JVM or logging noise
    assert f"Topic: {topic}\t" in result.stdout and "PartitionCount: 3\t" in result.stdout
    shown = {}
    for line in result.stdout.splitlines():
        fields = dict(f.split(": ", 1) for f in line.strip().split("\t") if ": " in f)
        if "Partition" in fields:
            shown[int(fields["Partition"])] = int(fields["Leader"])
    meta = make_admin(settings).list_topics(topic, timeout=10).topics[topic]
    assert shown == {p: m.leader for p, m in meta.partitions.items()}
    assert sorted(shown) == [0, 1, 2]


def test_group_lag_per_partition_is_end_minus_committed(settings, topic):
    group = f"{topic}.readers"
    admin = make_admin(settings)
    with closing(make_consumer(f"{topic}.ends", settings)) as consumer:
        ends = {p: high for p, (_, high) in watermarks(consumer, topic).items()}
    assert sum(ends.values()) == RECORDS and min(ends.values()) > 1    # every partition holds records
    chosen = {p: end // (p + 2) for p, end in ends.items()}        # a different share read on each
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, o) for p, o in chosen.items()])
    admin.alter_consumer_group_offsets([request])[group].result()
    committed = {tp.partition: tp.offset for tp in admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group)])[group].result().topic_partitions}
    assert committed == chosen

    result = workbook("kafka-consumer-groups", "--describe", "--group", group)
    assert result.returncode == 0, result.stderr
    rows = {int(r["PARTITION"]): r for r in table(result.stdout) if r.get("TOPIC") == topic}
    assert {p: int(r["CURRENT-OFFSET"]) for p, r in rows.items()} == committed
    assert {p: int(r["LOG-END-OFFSET"]) for p, r in rows.items()} == ends
    assert {p: int(r["LAG"]) for p, r in rows.items()} == {p: ends[p] - committed[p] for p in ends}
    assert len({int(r["LAG"]) for r in rows.values()}) > 1          # the lags differ: no constant passes


def test_the_console_consumer_prints_the_records_asked_for(topic):
    result = workbook("kafka-console-consumer", "--topic", topic, "--from-beginning", "--max-messages", "3",
                      "--group", f"{topic}.console")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and set(lines) <= {f"value-{i}" for i in range(RECORDS)}
    assert result.stderr.strip() == "Processed a total of 3 messages"      # and nothing else


def test_a_refusal_is_the_tools_own_sentence_and_exit_status(topic):
    result = workbook("kafka-topics", "--describe", "--topic", f"{topic}.missing")
    assert result.returncode == 1, result.stderr
    assert result.stdout.strip() == (f"Error while executing topic command : Topic '{topic}.missing' "
                                     "does not exist as expected"), result.stderr
    assert result.stderr == ""                                  # no stack trace


@pytest.mark.parametrize("tool", KAFKA_TOOLS)
def test_every_tool_starts_and_shows_its_own_help(tool):
    result = workbook(tool, "--help")
    output = result.stdout + result.stderr
    assert "Could not find or load main class" not in output
    assert "--bootstrap-server" in output and "usage: workbook" not in output
