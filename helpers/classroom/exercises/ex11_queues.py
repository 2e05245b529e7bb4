"""The checks of notebook 11_queues's exercises: share groups on a one-partition queue of their own."""
from __future__ import annotations

import random
import time
import uuid
from contextlib import ExitStack, closing
from typing import Any

import pandas as pd
from confluent_kafka import AcknowledgeType

from helpers.classroom.exercises.common import CheckResult, call, failed, lab, passed
from helpers.core.settings import Settings
from helpers.infra.clients import make_admin, make_consumer, make_producer
from helpers.pipeline.queues import make_share_consumer, share_group_settings
from helpers.pipeline.topics import delete_groups, reset_topics

QUEUE_RECORDS = 40          # records of an exercise's queue
SETTLE_TIMEOUT_S = 90       # how long a check waits for its queue to be settled
JOIN_S = 3                  # three heartbeats of the course's brokers: time for every member to join
ACK_NAMES = {AcknowledgeType.ACCEPT: "ACCEPT", AcknowledgeType.RELEASE: "RELEASE",
             AcknowledgeType.REJECT: "REJECT"}      # plain numbers in confluent-kafka 2.16
ACKS = tuple(ACK_NAMES)


def fill_queue(settings: Settings, name: str, records: int = QUEUE_RECORDS) -> str:
    """A fresh one-partition topic `ex11.<name>` holding `records` numbered records; its name."""
    topic = lab("11", settings).prefix + name
    reset_topics(make_admin(settings), [topic], partitions=1)
    producer = make_producer(settings)
    for n in range(records):       # one batch per record: a share group hands out batches
        producer.produce(topic, str(n).encode(), str(n).encode())
        producer.flush(30)
    return topic


def share_group(settings: Settings, purpose: str) -> str:
    """A new share group of the exercises, set to start at the beginning; 10 tries at most."""
    group = f"{lab('11', settings).group(purpose)}-{uuid.uuid4().hex[:6]}"
    share_group_settings(make_admin(settings), group, delivery_limit=10, lock_seconds=5)
    return group


def share_members(settings: Settings, group: str, count: int) -> list[Any]:
    """`count` share consumers of `group`, named check-0, check-1, ..."""
    return [make_share_consumer(settings, group, f"check-{m}") for m in range(count)]


def joined(stack: ExitStack, consumers: list[Any], topic: str) -> list[Any]:
    """`consumers`, closed with `stack`, subscribed to `topic`, once each has joined its group."""
    for consumer in consumers:
        stack.enter_context(closing(consumer))
        consumer.subscribe([topic])
    time.sleep(JOIN_S)          # every member joins in the background before the first poll
    return consumers


def run_decide(decide: Any, settings: Settings, limit: int, poison: set[int], busy: set[int]
               ) -> tuple[pd.DataFrame, CheckResult | None]:
    """Two share consumers settle a queue with the student's `decide`; one row per delivery."""
    topic, group = fill_queue(settings, "decide"), share_group(settings, "decide")
    log: list[tuple[int, int, bool, Any]] = []
    final: dict[int, Any] = {}
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    with ExitStack() as stack:
        members = joined(stack, share_members(settings, group, 2), topic)
        while len(final) < QUEUE_RECORDS and time.monotonic() < deadline:
            for member in members:
                for msg in member.poll(0.2):
                    offset, delivery = msg.offset(), msg.delivery_count()
                    ok = offset not in poison and not (offset in busy and delivery == 1)
                    ack, wrong = call("11.1", "decide", decide, ok, delivery, limit)
                    if wrong:
                        return pd.DataFrame(), wrong
                    if ack not in ACKS:
                        return pd.DataFrame(), failed("11.1", f"decide({ok}, {delivery}, {limit}) returned "
                                                      f"{ack!r}: return AcknowledgeType.ACCEPT, RELEASE or "
                                                      "REJECT.")
                    member.acknowledge(msg, ack)
                    log.append((offset, delivery, ok, ack))
                    if ack != AcknowledgeType.RELEASE or delivery >= 10:   # 10: the broker gives up
                        final[offset] = ack
                member.commit_sync()
    delete_groups(make_admin(settings), [group])
    frame = pd.DataFrame(log, columns=["offset", "delivery", "sent", "ack"])
    frame["ack"] = frame["ack"].map(ACK_NAMES)
    return frame, None


def check_decide(decide: Any, settings: Settings) -> CheckResult:
    """11.1: decide(ok, delivery, limit) -> ACCEPT / RELEASE / REJECT, run in a share group with a limit
    and poison records drawn at random, so that no fixed answer passes."""
    ex = "11.1"
    limit = random.randint(2, 5)
    offsets = list(range(QUEUE_RECORDS))
    poison = set(random.sample(offsets, random.randint(2, 5)))
    busy = set(random.sample([o for o in offsets if o not in poison], 4))
    log, wrong = run_decide(decide, settings, limit, poison, busy)
    if wrong:
        return wrong
    last = log.groupby("offset").last()
    deliveries = log.groupby("offset")["delivery"].max()
    rows = pd.DataFrame({"deliveries": deliveries, "last ack": last["ack"]}).loc[sorted(poison | busy)]
    rows.index.name = f"offset (limit {limit})"
    sent_not_accepted = log[log["sent"] & (log["ack"] != "ACCEPT")]
    if len(sent_not_accepted):
        row = sent_not_accepted.iloc[0]
        return failed(ex, f"The e-mail of offset {row['offset']} was sent, and decide answered {row['ack']}: "
                          "what should the broker do with a record whose work is done?", rows)
    failed_accepted = log[~log["sent"] & (log["ack"] == "ACCEPT")]
    if len(failed_accepted):
        row = failed_accepted.iloc[0]
        return failed(ex, f"The e-mail of offset {row['offset']} failed, and decide answered ACCEPT: the "
                          "broker counts it as done, and the e-mail is never sent. What else can it answer?",
                      rows)
    if len(last) < QUEUE_RECORDS:
        return failed(ex, f"Only {len(last)} of {QUEUE_RECORDS} records were settled within "
                          f"{SETTLE_TIMEOUT_S} s.", rows)
    early = [o for o in sorted(poison | busy) if last.loc[o, "ack"] == "REJECT" and deliveries[o] < limit]
    if early:
        return failed(ex, f"Offset {early[0]} was rejected on delivery {deliveries[early[0]]} of {limit}: a "
                          "failure may be a moment's; how many tries does a record get?", rows)
    late = [o for o in sorted(poison) if deliveries[o] > limit or last.loc[o, "ack"] != "REJECT"]
    if late:
        return failed(ex, f"Offset {late[0]}, which can never be sent, was delivered {deliveries[late[0]]} "
                          f"times with a limit of {limit}: what should end its tries?", rows)
    return passed(ex, f"Limit {limit}: {len(busy)} busy records sent on their second delivery, "
                      f"{len(poison)} poison records rejected on their delivery {limit}, the "
                      f"{QUEUE_RECORDS - len(poison) - len(busy)} others accepted at once.", rows)


def members_with_work_observed(settings: Settings, kind: str, members: int) -> int:
    """How many of `members` consumers of one group (kind 'group' or 'share') got a record of a
    one-partition queue, polled in turns until the queue is read."""
    topic = fill_queue(settings, f"work-{kind}")
    got: set[int] = set()
    read = 0
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    with ExitStack() as stack:
        if kind == "group":
            group = f"{lab('11', settings).group('work')}-{uuid.uuid4().hex[:6]}"
            consumers = joined(stack, [make_consumer(group, settings, {"client.id": f"check-{m}"})
                                       for m in range(members)], topic)
        else:
            group = share_group(settings, "work")
            consumers = joined(stack, share_members(settings, group, members), topic)
        while read < QUEUE_RECORDS and time.monotonic() < deadline:
            for m, consumer in enumerate(consumers):
                msgs = consumer.consume(5, timeout=0.2) if kind == "group" else consumer.poll(0.2)
                for msg in msgs:
                    if msg.error():
                        continue
                    got.add(m)
                    read += 1
                    if kind == "share":
                        consumer.acknowledge(msg, AcknowledgeType.ACCEPT)
                if kind == "share":
                    consumer.commit_sync()
    delete_groups(make_admin(settings), [group])
    return len(got)


def check_members_with_work(members_with_work: Any, settings: Settings) -> CheckResult:
    """11.2: members_with_work(kind, members) for a one-partition queue, compared with groups of a size
    drawn at random, of both kinds."""
    ex = "11.2"
    members = random.randint(2, 4)
    rows, verdicts = [], []
    for kind in ("group", "share"):
        answer, wrong = call(ex, "members_with_work", members_with_work, kind, members)
        if wrong:
            return wrong
        seen = members_with_work_observed(settings, kind, members)
        rows.append((kind, members, answer, seen))
        verdicts.append(answer == seen)
    table = pd.DataFrame(rows, columns=["kind", "members", "your answer", "with work"]).set_index("kind")
    if all(verdicts):
        return passed(ex, f"{members} members: a consumer group gives the one partition to one member; a "
                          "share group hands its records to every member.", table)
    table = table.drop(columns="with work")      # what the groups did is the answer: not shown
    if not verdicts[0]:
        return failed(ex, "Consumer group: how many members of one group can own a given partition?", table)
    return failed(ex, "Share group: is a record handed to a member, or the partition?", table)
