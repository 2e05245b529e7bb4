"""The checks of notebook 05_consumer_groups's exercises."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import ExitStack, closing
from typing import Any

import pandas as pd
from confluent_kafka import TopicPartition

from helpers.classroom.exercises.common import (
    CheckResult,
    call,
    failed,
    lab,
    not_a_number,
    number,
    passed,
    topic_exists,
    year_of,
)
from helpers.core.rules import PRICE_THRESHOLD, alerts_frame
from helpers.core.settings import Settings
from helpers.core.waiting import wait_until
from helpers.infra.clients import batches_to_end, make_admin, make_consumer
from helpers.infra.database import open_engine
from helpers.pipeline.db import read_bars
from helpers.pipeline.topics import consumer_lag, count_messages, delete_groups, watermarks


def check_idle_consumers(predicted: Any, settings: Settings, consumers: int = 4) -> CheckResult:
    """05.1: how many of four consumers of one group get no partition of a 3-partition topic."""
    ex = "05.1"
    if wrong := not_a_number(ex, "IDLE", predicted, " of consumers"):
        return wrong
    topic = settings.topics.pricelist
    partitions = topic_exists(topic, settings)
    group = f"{lab('05', settings).group('idle')}-{uuid.uuid4().hex[:6]}"
    joined: set[int] = set()             # members that took part in a rebalance

    def holder(index: int) -> Callable:
        def hold(consumer, assigned):
            joined.add(index)
            consumer.assign(assigned)
            consumer.pause(assigned)      # own the partitions, fetch nothing
        return hold

    last: list[Any] = []

    def settled() -> list[set[int]] | None:
        for member in members:
            member.poll(0.2)
        shares = [{p.partition for p in m.assignment()} for m in members]
        owned = sorted(p for share in shares for p in share)
        stable = len(joined) == consumers and owned == list(range(partitions)) and shares == last
        last[:] = shares
        return shares if stable else None

    with ExitStack() as closing_all:
        conf = [{"client.id": f"consumer-{i}"} for i in range(consumers)]
        members = [closing_all.enter_context(closing(make_consumer(group, settings, c))) for c in conf]
        for index, member in enumerate(members):
            member.subscribe([topic], on_assign=holder(index))
        shares = wait_until(settled, 90, f"{consumers} consumers of one group to share {topic}", interval=0)
    idle = sum(1 for share in shares if not share)
    table = pd.DataFrame({"partitions": [sorted(s) or "—" for s in shares]},
                         index=pd.Index([f"consumer {i}" for i in range(consumers)], name="member"))
    if predicted == idle:
        return passed(ex, f"{consumers} consumers, {partitions} partitions: {idle} idle. A partition is read "
                          "by at most one member of a group; an extra member waits as a standby and takes "
                          "over when another leaves.", table)
    return failed(ex, f"You predicted {predicted}; here {idle} of {consumers} got nothing. Kafka gives each "
                      f"partition to exactly one member of a group, and {topic} has {partitions}: how many "
                      "members can own at least one?", table)


def check_offset_reset(predicted: Any, settings: Settings, committed: int = 100) -> CheckResult:
    """05.2: what a consumer with auto.offset.reset=latest reads in a group that committed offset 100."""
    ex = "05.2"
    if wrong := not_a_number(ex, "READ", predicted, " of messages"):
        return wrong
    topic = settings.topics.pricelist
    group = f"{lab('05', settings).group('resume')}-{uuid.uuid4().hex[:6]}"
    with closing(make_consumer(group, settings)) as setter:
        ends = watermarks(setter, topic)
        setter.commit(offsets=[TopicPartition(topic, p, committed) for p in ends], asynchronous=False)
    read = 0
    try:
        with closing(make_consumer(group, settings, {"auto.offset.reset": "latest"})) as reader:
            reader.subscribe([topic])
            for batch in batches_to_end(reader, timeout=90, size=1000):
                read += len(batch)
    finally:
        delete_groups(make_admin(settings), [group])
    total = sum(high - low for low, high in ends.values())
    if predicted == read:
        return passed(ex, f"It read {read:,} messages: all but the {committed} per partition the group had "
                          "committed. auto.offset.reset applies only where a group has no committed offset; "
                          "this group had one everywhere, so it resumed there.")
    if predicted == 0:
        return failed(ex, f"You predicted 0, as if `latest` applied; it read {read:,}. `latest` is only the "
                          f"fallback for a partition where the group has committed nothing; this group "
                          f"committed offset {committed} in each of {len(ends)} partitions.")
    return failed(ex, f"You predicted {predicted:,}; it read {read:,} of the {total:,} messages. "
                      "Where does a consumer of a group with committed offsets start?")


def check_alert_counts(count_alerts: Any, settings: Settings) -> CheckResult:
    """05.3: a consumer that counts alerts per (ticker, year), and commits what it counted."""
    ex = "05.3"
    with open_engine(settings) as engine:
        bars = read_bars(engine, "day")
    alerts = alerts_frame(bars, PRICE_THRESHOLD)
    expected = alerts.groupby([alerts["ticker"], year_of(alerts["ts"]).rename("year")]).size()
    expected_counts = {(str(t), int(y)): int(n) for (t, y), n in expected.items()}
    in_topic = count_messages(settings.topics.alerts, settings)
    if in_topic != len(alerts):
        return failed(ex, f"{settings.topics.alerts} holds {in_topic:,} alerts, but {len(alerts):,} "
                          "daily bars close above $195 in MySQL: route again (notebook 04, or "
                          "`workbook reset --to 05`), then run this check.")
    group = f"{lab('05', settings).group('count')}-{uuid.uuid4().hex[:6]}"
    got, error = call(ex, "count_alerts", count_alerts, group)
    if error:
        return error
    if not isinstance(got, dict):
        return failed(ex, f"count_alerts returned {type(got).__name__}, not a dict such as "
                          "{('AAPL', 2012): 250, ...}.")
    bad_key = next((k for k in got if not (isinstance(k, tuple) and len(k) == 2
                                           and number(k[1]) is not None)), None)
    if bad_key is not None:
        return failed(ex, f"A key of your dict is {bad_key!r}: keys are (ticker, year) pairs such as "
                          "('AAPL', 2012), the year a number (the UTC year of the alert's ts).")
    bad_value = next(((k, n) for k, n in got.items() if number(n) is None), None)
    if bad_value is not None:
        return failed(ex, f"counts[{bad_value[0]!r}] is {bad_value[1]!r}, not a number: add 1 for each "
                          "alert, counts[key] = counts.get(key, 0) + 1.")
    counts = {(str(t), int(y)): int(n) for (t, y), n in got.items()}
    if counts != expected_counts:
        total = sum(counts.values())
        if total == 0:
            return failed(ex, "count_alerts counted nothing: add 1 to counts[(ticker, year)] for every "
                              "message of each batch.")
        diff = sorted(set(counts) | set(expected_counts),
                      key=lambda k: -abs(counts.get(k, 0) - expected_counts.get(k, 0)))[0]
        return failed(ex, f"{diff[0]} in {diff[1]}: you counted {counts.get(diff, 0):,}, MySQL has "
                          f"{expected_counts.get(diff, 0):,} daily closes above $195 ({total:,} alerts "
                          f"counted in all, {len(alerts):,} expected). Is the year the UTC year of the "
                          "alert's ts?")
    admin = make_admin(settings)
    lag = consumer_lag(admin, group, [settings.topics.alerts], settings)
    delete_groups(admin, [group])
    if lag:
        return failed(ex, f"The counts are right, but your group has not committed {lag:,} of the alerts it "
                          "counted: a restart would count them again. Commit after each batch "
                          "(consumer.commit(asynchronous=False)).")
    table = expected.rename("alerts").unstack(0).fillna(0).astype(int)
    return passed(ex, f"{len(alerts):,} alerts counted per ticker and year, equal to MySQL, and committed: "
                      "the group's lag is 0.", table)
