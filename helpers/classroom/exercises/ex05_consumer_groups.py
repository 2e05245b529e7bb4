"""The checks of notebook 05_consumer_groups's exercises."""
from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from contextlib import ExitStack, closing
from typing import Any

import pandas as pd
from confluent_kafka import ConsumerGroupState, TopicPartition

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
from helpers.pipeline.topics import (
    consumer_lag,
    count_messages,
    delete_groups,
    ensure_topics,
    group_offsets,
    watermarks,
)


def shares_when_complete(consumers: list[Any], partitions: int, poll_s: float) -> list[set[int]] | None:
    """Poll each consumer once; the partitions each owns, if together they own every one of the
    topic's `partitions` exactly once, else None (a rebalance is still under way)."""
    for consumer in consumers:
        consumer.poll(poll_s)
    shares = [{p.partition for p in consumer.assignment()} for consumer in consumers]
    owned = sorted(p for share in shares for p in share)
    return shares if owned == list(range(partitions)) else None


def group_shares(settings: Settings, topic: str, groups: list[int]) -> list[list[set[int]]]:
    """Start groups of the given sizes on `topic`, wait until each has shared it out; return, per group,
    the partitions of each member. Settled means: the broker calls every group stable with all its
    members (a member left without a partition gets no callback under the consumer protocol)."""
    partitions = topic_exists(topic, settings)
    names = [f"{lab('05', settings).group('idle')}-{uuid.uuid4().hex[:6]}" for _ in groups]
    admin = make_admin(settings)

    def hold(consumer: Any, assigned: list[TopicPartition]) -> None:
        consumer.incremental_assign(assigned)
        consumer.pause(assigned)      # own the partitions, fetch nothing

    def stable(name: str, size: int) -> bool:
        group = admin.describe_consumer_groups([name])[name].result(timeout=10)
        return group.state == ConsumerGroupState.STABLE and len(group.members) == size

    def settled() -> list[list[set[int]]] | None:
        shares = [share for g, size in enumerate(groups)
                  if (share := shares_when_complete([members[g, m] for m in range(size)], partitions, 0.2))]
        if len(shares) == len(groups) and all(stable(n, size) for n, size in zip(names, groups, strict=True)):
            return shares
        return None

    with ExitStack() as closing_all:
        members = {(g, m): closing_all.enter_context(closing(make_consumer(
                       names[g], settings, {"client.id": f"group-{g}-consumer-{m}"})))
                   for g, size in enumerate(groups) for m in range(size)}
        for member in members.values():
            member.subscribe([topic], on_assign=hold)
        return wait_until(settled, 90, f"groups of {groups} consumers to share {topic}", interval=0)


def check_idle_consumers(predicted: Any, predicted_two_groups: Any, settings: Settings) -> CheckResult:
    """05.1: of four consumers on a 3-partition topic, how many get no partition: all four in one group,
    then two groups of two. Two answers, so no one constant passes."""
    ex = "05.1"
    for name, value in (("IDLE", predicted), ("IDLE_IN_TWO_GROUPS", predicted_two_groups)):
        if wrong := not_a_number(ex, name, value, " of consumers"):
            return wrong
    topic = settings.topics.pricelist
    partitions = topic_exists(topic, settings)
    one = group_shares(settings, topic, [4])
    two = group_shares(settings, topic, [2, 2])
    rows = [(f"one group: consumer {m}", share) for m, share in enumerate(one[0])]
    rows += [(f"group {g + 1} of two: consumer {m}", share) for g, group in enumerate(two)
             for m, share in enumerate(group)]
    table = pd.DataFrame({"partitions": [sorted(s) or "—" for _, s in rows]},
                         index=pd.Index([label for label, _ in rows], name="member"))
    idle = sum(1 for share in one[0] if not share)
    idle_two = sum(1 for group in two for share in group if not share)
    if predicted == idle and predicted_two_groups == idle_two:
        return passed(ex, f"One group: {idle} of 4 idle; two groups of two: {idle_two}. A partition is read "
                          "by at most one member of a group, and every group reads all of it: an extra "
                          "member waits as a standby, while a second group gets a copy of every message.",
                      table)
    if predicted != idle:
        return failed(ex, f"IDLE = {predicted}; here {idle} of 4 got nothing. Kafka gives each partition to "
                          f"exactly one member of a group, and {topic} has {partitions}: how many members "
                          "can own at least one?", table)
    return failed(ex, f"IDLE_IN_TWO_GROUPS = {predicted_two_groups}; here {idle_two} got nothing. Does one "
                      "group's share of the partitions take anything from the other group?", table)


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


# --- 05.4: what a member gives up at a rebalance, under each protocol ---------------------

REBALANCE_PARTITIONS = 6        # the exercise's own topic: room for uneven shares


def observed_rebalance(settings: Settings, topic: str, protocol: str, members: int
                       ) -> list[tuple[set[int], set[int], set[int]]]:
    """`members` consumers of a new group share `topic`, then one more joins; per first member:
    (owned before, owned after, partitions it gave up), from its own on_revoke callback."""
    group = f"{lab('05', settings).group('rebalance')}-{protocol}-{uuid.uuid4().hex[:6]}"
    revoked: dict[int, set[int]] = {}

    def member(number: int) -> Any:
        conf: dict[str, Any] = {"group.protocol": protocol, "client.id": f"member-{number}"}
        if protocol == "classic":
            conf["heartbeat.interval.ms"] = 1000
        consumer = make_consumer(group, settings, conf)
        consumer.subscribe([topic], on_revoke=lambda c, parts: revoked.setdefault(number, set()).update(
            p.partition for p in parts))
        return consumer

    def settled(consumers: list[Any]) -> list[set[int]] | None:
        shares = shares_when_complete(consumers, REBALANCE_PARTITIONS, 0.02)
        return shares if shares and all(shares) else None      # and every member owns some

    with ExitStack() as stack:
        consumers = [stack.enter_context(closing(member(m))) for m in range(members)]
        before = wait_until(lambda: settled(consumers), 60, f"{members} members to share {topic}", interval=0)
        revoked.clear()
        consumers.append(stack.enter_context(closing(member(members))))
        after = wait_until(lambda: settled(consumers), 60, "the group to take in a new member", interval=0)
        gave_up = [set(revoked.get(m, set())) for m in range(members)]   # before closing revokes all
    delete_groups(make_admin(settings), [group])
    return [(before[m], after[m], gave_up[m]) for m in range(members)]


def check_given_up(given_up: Callable[..., Any], settings: Settings) -> CheckResult:
    """05.4: given_up(protocol, before, after) -> the partitions a member gives up when a new member
    joins, compared with real rebalances of both protocols in groups of a random size."""
    ex = "05.4"
    topic = lab("05", settings).prefix + "rebalance"
    ensure_topics(make_admin(settings), [topic], partitions=REBALANCE_PARTITIONS)
    members = random.randint(2, 3)
    rows, wrong_rows = [], []
    for protocol in ("classic", "consumer"):
        for m, (before, after, revoked) in enumerate(observed_rebalance(settings, topic, protocol, members)):
            answer, error = call(ex, "given_up", given_up, protocol, set(before), set(after))
            if error:
                return error
            answer_set = set(answer) if isinstance(answer, (set, frozenset, list, tuple)) else answer
            rows.append((protocol, f"member {m}", sorted(before), sorted(after), sorted(revoked),
                         sorted(answer_set) if isinstance(answer_set, set) else answer_set))
            if answer_set != revoked:
                wrong_rows.append(protocol)
    table = pd.DataFrame(rows, columns=["protocol", "member", "before", "after", "gave up", "your answer"]
                         ).set_index(["protocol", "member"])
    if not wrong_rows:
        return passed(ex, f"{members} members, then one more: under classic each gave up everything it "
                          "owned and took its new share back; under consumer each gave up only what moved.",
                      table)
    table = table.drop(columns="gave up")       # what the members did is the answer: not shown
    if "classic" in wrong_rows:
        return failed(ex, "classic: compare `gave up` with `before` and `after`. In the classic protocol, "
                          "what does every member do when a rebalance starts?", table)
    return failed(ex, "consumer: compare `gave up` with `before` and `after`. Which partitions does the "
                      "broker take from a member, and which does the member keep?", table)


# --- 05.5: a group's lag, read in a terminal ---------------------------------------------

def lagging_group(settings: Settings) -> str:
    """A new group of the exercises that committed a random offset in each partition of `pricelist`;
    its name, for `workbook kafka-consumer-groups --describe --group <name>`."""
    topic = settings.topics.pricelist
    group = f"{lab('05', settings).group('lagging')}-{uuid.uuid4().hex[:6]}"
    with closing(make_consumer(group, settings)) as setter:
        ends = watermarks(setter, topic)
        lags = draw_lags({p: high - low for p, (low, high) in ends.items()})
        setter.commit(offsets=[TopicPartition(topic, p, ends[p][1] - lag) for p, lag in lags.items()],
                      asynchronous=False)
    return group


def draw_lags(sizes: dict[int, int]) -> dict[int, int]:
    """A lag per partition, at most its size, the largest in a partition drawn at random (so that no
    one partition is the answer most of the time)."""
    furthest = random.choice(sorted(sizes))
    top = random.randint(1, max(1, min(sizes.values())))
    return {p: top if p == furthest else random.randint(0, top - 1) for p in sizes}


def check_lag_read(group: Any, most_behind: Any, total_lag: Any, settings: Settings) -> CheckResult:
    """05.5: the partition of `group` furthest behind and the group's total lag on `pricelist`, read
    from the terminal; compared with the broker's own numbers for that group (random per run)."""
    ex = "05.5"
    for name, value in (("MOST_BEHIND", most_behind), ("TOTAL_LAG", total_lag)):
        if wrong := not_a_number(ex, name, value):
            return wrong
    lag = group_offsets(make_admin(settings), str(group), [settings.topics.pricelist], settings)["lag"]
    table = lag.droplevel(0).rename("LAG").to_frame()
    per_partition = lag.droplevel(0)
    furthest = {int(p) for p in per_partition[per_partition == per_partition.max()].index}
    behind, total = min(furthest), int(lag.sum())
    if most_behind in furthest and total_lag == total:
        return passed(ex, f"Partition {behind} is furthest behind; {total:,} messages in all are left to "
                          "read. The same numbers as `group_offsets`: the tool asks the broker for the "
                          "group's committed offsets and the end of each partition.", table)
    if most_behind not in furthest:
        return failed(ex, f"MOST_BEHIND = {most_behind}: run the command in the cell for the group "
                          "`lagging` names, and look at the LAG column, one row per partition.")
    return failed(ex, f"TOTAL_LAG = {total_lag}: the group's lag is the sum of the LAG column "
                      "(LOG-END-OFFSET minus CURRENT-OFFSET, per partition).")
