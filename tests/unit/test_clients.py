"""Client plumbing without a broker: a full queue gives up clearly, logs stay out of sight."""
from __future__ import annotations

import time

import pandas as pd
import pytest

from helpers.core.errors import DeliveryError, KafkaOperationError, WaitTimeout
from helpers.core.rules import BUY_COLUMNS
from helpers.infra.clients import (
    KAFKA_LOGGER,
    batches_to_end,
    flush_until_reported,
    make_producer,
    refused_as_sentence,
    send,
)
from helpers.infra.environment import load_settings
from helpers.infra.processes import free_port
from helpers.pipeline.streamsql import compare_rows


def test_a_queue_that_stays_full_is_a_clear_error_not_a_hang(tmp_path):
    dead = load_settings({"WORKBOOK_STACK": "local", "KAFKA_PORT": str(free_port())}, dotenv=tmp_path / "x")
    producer = make_producer(dead, {"queue.buffering.max.messages": 5})
    started = time.monotonic()
    with pytest.raises(DeliveryError, match=r"queue for t stayed full for 1 s: the broker is not accepting"):
        for _ in range(10):
            send(producer, "t", b"v", b"k", 1, timeout=1)
    assert time.monotonic() - started < 5


def test_flushing_waits_until_each_message_has_its_report_instead_of_a_fixed_time(tmp_path):
    """No broker: each message is reported (failed) when message.timeout.ms ends, not before, and
    flush_until_reported waits for that instead of giving up first; with a shorter wait it says how
    many are still unreported."""
    dead = load_settings({"WORKBOOK_STACK": "local", "KAFKA_PORT": str(free_port())}, dotenv=tmp_path / "x")
    errors: list = []
    producer = make_producer(dead, {"message.timeout.ms": 3000,
                                    "on_delivery": lambda err, msg: errors.append(err)})
    for _ in range(5):
        producer.produce("t", b"v", b"k")
    assert flush_until_reported(producer, timeout=0.5) == 5 and errors == []
    started = time.monotonic()
    assert flush_until_reported(producer, timeout=30) == 0
    assert len(errors) == 5 and all(err is not None for err in errors)
    assert time.monotonic() - started < 10


def test_client_logs_go_to_a_silent_python_logger(tmp_path, capfd, caplog):
    dead = load_settings({"WORKBOOK_STACK": "local", "KAFKA_PORT": str(free_port())}, dotenv=tmp_path / "x")
    producer = make_producer(dead)
    producer.produce("t", b"v")
    caplog.set_level("DEBUG", logger=KAFKA_LOGGER.name)
    producer.poll(2)                                   # librdkafka reports 'connection refused'
    assert any("refused" in r.getMessage().lower() or "down" in r.getMessage().lower()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    out, err = capfd.readouterr()
    assert "rdkafka" not in out + err and "refused" not in out + err


def buys(*rows):
    return pd.DataFrame(list(rows), columns=BUY_COLUMNS)


def test_compare_rows_as_multisets_without_warnings():
    a = ("AAPL", 1, 2, 200.0, 0.06, 0.01)
    b = ("GOOG", 3, 3, 500.0, 0.07, -0.02)
    with pytest.warns(None) if False else _no_warnings():
        assert compare_rows(buys(a, b), buys(b, a)).empty
        diff = compare_rows(buys(a, a, b), buys(a, b, b))
    assert sorted(diff["side"]) == ["engine only", "reference only"]
    assert diff[diff["side"] == "engine only"]["ticker"].tolist() == ["AAPL"]


class _no_warnings:
    """Turn every warning inside the block into an error."""

    def __enter__(self):
        import warnings
        self.catcher = warnings.catch_warnings()
        self.catcher.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        self.catcher.__exit__(*exc)


class SilentConsumer:
    """A consumer that is never given a partition (its group never forms): nothing ever arrives."""

    def __init__(self):
        self.polls = 0

    def consume(self, size, timeout):
        self.polls += 1
        time.sleep(min(timeout, 0.05))
        return []

    def assignment(self):
        return []


def test_reading_to_the_end_gives_up_when_no_partition_is_ever_assigned():
    consumer = SilentConsumer()
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"^Reading its topics \(no partition assigned\) got nothing for "
                                          r"0.5 s before reaching the end"):
        for _ in batches_to_end(consumer, timeout=0.5):
            pass
    assert time.monotonic() - started < 3 and consumer.polls > 1


def test_a_brokers_refusal_becomes_one_sentence_of_the_error_tree():
    from confluent_kafka import KafkaError, KafkaException

    expected = r"^Could not describe topic x: Broker: Topic authorization"
    with pytest.raises(KafkaOperationError, match=expected), refused_as_sentence("describe topic x"):
        raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))


def test_the_plain_router_gives_up_instead_of_waiting_for_ever(tmp_path):
    from helpers.pipeline.route import route_naively

    dead = load_settings({"WORKBOOK_STACK": "local", "KAFKA_PORT": str(free_port())}, dotenv=tmp_path / "x")
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"did not reach the end of pricelist within 2 s"):
        route_naively(dead, timeout=2)
    assert time.monotonic() - started < 15
