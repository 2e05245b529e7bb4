"""The checks of notebook 02_topics's exercises."""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

from helpers.classroom.exercises.common import (
    CheckResult,
    failed,
    lab,
    not_a_number,
    passed,
    plural,
    read_raw,
    topic_exists,
)
from helpers.core.settings import Settings
from helpers.infra.clients import make_admin, make_producer
from helpers.pipeline.topics import reset_topics


def check_one_partition(topic: str, bars: pd.DataFrame, settings: Settings) -> CheckResult:
    """02.1: a topic of one partition holding every bar of `bars`, keyed by its ticker."""
    ex = "02.1"
    partitions = topic_exists(topic, settings)
    if not partitions:
        return failed(ex, f"Topic {topic} does not exist yet: create it, with one partition, before "
                          "producing (the admin client creates topics, as at the start of this notebook).")
    if partitions != 1:
        return failed(ex, f"{topic} has {partitions} partitions: a topic's partition count can grow but "
                          "never shrink. Delete it and create it again with 1 partition.")
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


def check_max_partitions(predicted: Any, predicted_of_three: Any, bars: pd.DataFrame,
                         settings: Settings) -> CheckResult:
    """02.2: at most how many partitions can the bars of five tickers use, of 12 and of 3? Two answers,
    so no one constant passes."""
    ex = "02.2"
    for name, value in (("MAX_PARTITIONS_USED", predicted), ("MAX_USED_OF_THREE", predicted_of_three)):
        if wrong := not_a_number(ex, name, value):
            return wrong
    keys = sorted(bars["ticker"].unique())
    seen, truth = [], {}
    for count in (12, 3):
        where = produce_keys(lab("02", settings).prefix + f"partitions-{count}", keys, settings,
                             partitions=count)
        truth[count] = min(len(keys), count)
        seen.append(f"of {count}: {', '.join(f'{k} in {p}' for k, p in sorted(where.items()))} "
                    f"({plural(len(set(where.values())), 'partition')} used)")
    evidence = "Kafka put, " + "; ".join(seen) + "."
    if predicted == truth[12] and predicted_of_three == truth[3]:
        return passed(ex, f"A key always lands in one partition, so {len(keys)} keys fill at most "
                          f"{len(keys)} partitions, and a topic cannot use more partitions than it has: "
                          f"{truth[12]} of 12, {truth[3]} of 3. {evidence} Partitions beyond the number of "
                          "keys add no parallelism.")
    if predicted != truth[12]:
        why = ("more than the keys: every message of one key goes to the same partition"
               if predicted > len(keys) else "each distinct key can still land in a partition of its own")
        return failed(ex, f"MAX_PARTITIONS_USED = {predicted}: {why}. How many distinct keys do the bars "
                          f"have? {evidence}")
    return failed(ex, f"MAX_USED_OF_THREE = {predicted_of_three}: what limits the count now, the keys or "
                      f"the partitions? {evidence}")
