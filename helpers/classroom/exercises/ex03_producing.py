"""The checks of notebook 03_producing's exercises."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd
from confluent_kafka import Producer

from helpers.classroom.exercises.common import (
    CheckResult,
    call,
    failed,
    lab,
    not_a_number,
    number,
    passed,
    plural,
    read_raw,
)
from helpers.core.schemas import PRICELIST, decode
from helpers.core.settings import Settings
from helpers.infra.clients import client_conf, make_admin
from helpers.pipeline.topics import count_messages, reset_topics


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
    from helpers.pipeline.produce import replay_bars

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
