"""Replication and fault tolerance, measured exactly (10_fault_tolerance).

Leaders and in-sync replicas sampled while brokers of the lab cluster
(helpers.infra.lab) die and return; a replay whose every message carries a
sequence number in its `seq` header, so what was sent, what the producer
reported delivered or failed, and what a consumer reads back can be compared
number by number (`tally`).
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pandas as pd
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from helpers.core.errors import InputError
from helpers.core.settings import Settings
from helpers.core.waiting import wait_until
from helpers.infra.clients import (
    KAFKA_LOGGER,
    assign_from_start,
    batches_to_end,
    make_admin,
    make_consumer,
    refused_as_sentence,
    send,
)
from helpers.infra.lab import LAB_CLIENT_CONF, SAMPLE_INTERVAL_S, SEQ_HEADER, LabCluster
from helpers.pipeline.produce import bar_message
from helpers.pipeline.topics import watermarks

STABLE_S = 1.0      # how long every answer must agree before wait_for_isr returns

# --- partitions: leaders and in-sync replicas --------------------------------------

def describe_partitions(admin: AdminClient, topic: str) -> pd.DataFrame:
    """One row per partition: leader, replicas, in-sync replicas (ISR) and their number."""
    from confluent_kafka import TopicCollection

    with refused_as_sentence(f"describe topic {topic}"):
        description = admin.describe_topics(TopicCollection([topic]))[topic].result()
    rows = [{"partition": p.id, "leader": p.leader.id if p.leader else -1,
             "replicas": [r.id for r in p.replicas], "isr": sorted(r.id for r in p.isr),
             "isr size": len(p.isr)} for p in description.partitions]
    return pd.DataFrame(rows).set_index("partition").sort_index()


def partition_leaders(admin: AdminClient, topic: str) -> dict[int, int]:
    """partition -> id of its leader broker (-1 while it has none)."""
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    return {p: meta.leader for p, meta in sorted(partitions.items())}


def isr_sizes(admin: AdminClient, topic: str) -> dict[int, int]:
    """partition -> number of in-sync replicas, from fresh metadata."""
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    return {p: len(meta.isrs) for p, meta in sorted(partitions.items())}


def wait_for_isr(admin: AdminClient, topic: str, size: int, timeout: float = 60) -> float:
    """Wait until every partition has exactly `size` in-sync replicas, in every answer for STABLE_S
    seconds in a row; return the seconds until the first of those answers.

    In a row, because each answer comes from whichever broker the client asks: seen once in CI, a
    broker answered "unknown topic" just after another had reported the new topic's full ISR.
    """
    start = time.monotonic()
    since: list[float] = []                   # when the answers started to agree, if they do

    def reached() -> bool:
        try:
            full = set(isr_sizes(admin, topic).values()) == {size}
        except KafkaException:
            full = False
        if not full:
            since.clear()
            return False
        since[:] = since or [time.monotonic()]
        return time.monotonic() - since[0] >= STABLE_S

    wait_until(reached, timeout, f"every partition of {topic} to have {size} in-sync replicas",
               interval=0.1)
    return since[0] - start


def wait_for_leader(admin: AdminClient, topic: str, broker_id: int, partition: int = 0,
                    timeout: float = 60) -> float:
    """Wait until `broker_id` leads `partition` of `topic`; return the seconds it took."""
    start = time.monotonic()

    def leads() -> bool:
        try:
            return partition_leaders(admin, topic).get(partition) == broker_id
        except KafkaException:
            return False

    wait_until(leads, timeout, f"broker {broker_id} to lead partition {partition} of {topic}",
               interval=0.1)
    return time.monotonic() - start


class PartitionWatch:
    """A background thread that samples each partition's leader and ISR size every `interval` seconds."""

    def __init__(self, lab: LabCluster, topics: Iterable[str], interval: float = SAMPLE_INTERVAL_S):
        self.lab, self.topics, self.interval = lab, list(topics), interval
        self.rows: list[dict] = []
        self.rounds = 0                    # sampling rounds completed
        self._stop = threading.Event()
        self._admin = make_admin(lab.settings, LAB_CLIENT_CONF)
        self._thread = threading.Thread(target=self._run, name="partition-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:   # a request caught by a kill waits for its timeout: keep it short
                metadata = self._admin.list_topics(timeout=0.4)
            except KafkaException:
                metadata = None
            now = time.time()              # the answer's time: a change is never seen too early
            for topic in self.topics:
                known = metadata.topics.get(topic) if metadata else None
                for p, meta in sorted((known.partitions if known else {}).items()):
                    self.rows.append({"time": now, "topic": topic, "partition": p, "leader": meta.leader,
                                      "isr": tuple(sorted(meta.isrs)), "isr_size": len(meta.isrs)})
            self.rounds += 1
            self._stop.wait(self.interval)

    def frame(self, topic: str | None = None) -> pd.DataFrame:
        """The samples so far (time in epoch seconds), for one topic or all, including a sampling
        round that started after this call (so they show what a cell just waited for)."""
        if self._thread.is_alive():
            target = self.rounds + 2       # the round in progress may have started before the call
            wait_until(lambda: self.rounds >= target or not self._thread.is_alive(), 10,
                       "a fresh sample of the partitions", interval=0.05)
        frame = pd.DataFrame(list(self.rows),
                             columns=["time", "topic", "partition", "leader", "isr", "isr_size"])
        return frame[frame["topic"] == topic] if topic else frame

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=5)


def watch_partitions(lab: LabCluster, topics: str | Iterable[str],
                     interval: float = SAMPLE_INTERVAL_S) -> PartitionWatch:
    """Start sampling leaders and ISR sizes of `topics` in the background (stops with the kernel)."""
    return PartitionWatch(lab, [topics] if isinstance(topics, str) else topics, interval)


# --- pure: from samples to times ----------------------------------------------------

def election_seconds(samples: pd.DataFrame, partition: int, killed_at: float, victim: int) -> float | None:
    """Seconds from a kill to the first sample where `partition` has a leader other than `victim`."""
    after = samples[(samples["partition"] == partition) & (samples["time"] >= killed_at)]
    elected = after[(after["leader"] != victim) & (after["leader"] >= 0)]
    return float(elected["time"].iloc[0] - killed_at) if len(elected) else None


def recovery_seconds(samples: pd.DataFrame, since: float, size: int) -> float | None:
    """Seconds from `since` to the first sample time at which every partition has `size` in-sync replicas."""
    after = samples[samples["time"] >= since]
    complete = after.groupby("time")["isr_size"].agg(lambda sizes: bool((sizes == size).all()))
    partitions = samples["partition"].nunique()
    counts = after.groupby("time")["partition"].nunique()
    ok = complete[complete & (counts == partitions)]
    return float(ok.index[0] - since) if len(ok) else None


def isr_at(samples: pd.DataFrame, moments: Mapping[str, float]) -> pd.DataFrame:
    """The in-sync replicas of each partition at named moments (the last sample at or before each)."""
    rows = {}
    for label, moment in moments.items():
        before = samples[samples["time"] <= moment]
        last = before[before["time"] == before["time"].max()] if len(before) else before
        rows[label] = {f"partition {p}": list(isr)
                       for p, isr in zip(last["partition"], last["isr"], strict=True)}
    return pd.DataFrame(rows).T


# --- a replay whose every message is numbered -------------------------------------------

@dataclass
class ReplayRun:
    """What one numbered replay sent and what the producer reported, message by message."""

    topic: str
    sent: list[int] = field(default_factory=list)
    delivered: dict[int, float] = field(default_factory=dict)     # seq -> epoch s of its delivery report
    failed: dict[int, str] = field(default_factory=dict)          # seq -> error name
    failed_at: dict[int, float] = field(default_factory=dict)     # seq -> epoch s of its delivery report
    latency: dict[int, float] = field(default_factory=dict)       # seq -> s from produce() to its report
    queued: list[tuple[float, int]] = field(default_factory=list)  # (epoch s, messages held by the producer)
    started: float = 0.0
    finished: float = 0.0
    unreported: int = 0                # still in the producer's queue when flush() gave up

    @property
    def errors(self) -> Counter:
        """How many messages failed, by error name."""
        return Counter(self.failed.values())

    @property
    def most_queued(self) -> int:
        """The most messages the producer held at once, waiting to be sent or acknowledged."""
        return max((n for _, n in self.queued), default=0)

    def slow(self, seconds: float = 1.0) -> int:
        """Messages delivered more than `seconds` after produce(): held and re-sent by the producer."""
        return sum(1 for seq, t in self.latency.items() if t > seconds and seq in self.delivered)

    def __str__(self) -> str:
        failed = ", ".join(f"{n:,} {name}" for name, n in self.errors.most_common()) or "0"
        slowest = max((t for s, t in self.latency.items() if s in self.delivered), default=0.0)
        return (f"{len(self.sent):,} sent, {len(self.delivered):,} delivered, failed: {failed}, "
                f"in {self.finished - self.started:.1f} s; at most {self.most_queued:,} messages "
                f"held by the producer; slowest delivery {slowest:.1f} s after produce()")


def replay_numbered(conf: Mapping[str, Any], topic: str, bars: pd.DataFrame, *, rate: float | None = None,
                    faults: Mapping[int, Callable[[], None]] | None = None, first_seq: int = 0,
                    seqs: Sequence[int] | None = None, flush_timeout: float = 120.0) -> ReplayRun:
    """Produce bars in order, each numbered in its `seq` header, at most `rate` per second, and record
    every delivery report; `faults[i]()` runs just before message i is produced (kill a broker...).

    Bar i gets the number `first_seq + i`, or `seqs[i]` when given: a resend
    keeps the numbers of the bars it sends again.

    The loop of 03_producing plus a sequence number per message, a rate limit,
    faults at chosen points, and a record of each message's outcome and of
    the producer's queue (librdkafka statistics every 100 ms).
    """
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0):
        raise InputError(f"rate must be a positive number of messages per second (or None), got {rate!r}.")
    if seqs is not None and len(seqs) != len(bars):
        raise InputError(f"seqs must give one number per bar: {len(seqs):,} numbers for {len(bars):,} bars.")
    numbers = list(seqs) if seqs is not None else range(first_seq, first_seq + len(bars))
    faults = dict(faults or {})
    run = ReplayRun(topic)

    def on_delivery(seq: int, err, msg) -> None:    # a delivery report carries no headers: bind seq
        now = time.time()
        run.latency[seq] = msg.latency() or 0.0
        if err is None:
            run.delivered[seq] = now
        else:
            run.failed[seq], run.failed_at[seq] = err.name(), now

    def on_stats(stats_json: str) -> None:
        run.queued.append((time.time(), int(json.loads(stats_json)["msg_cnt"])))

    producer = Producer({**conf, "statistics.interval.ms": 100, "stats_cb": on_stats,
                         "logger": conf.get("logger", KAFKA_LOGGER)})
    run.started, start = time.time(), time.perf_counter()
    for i, record in enumerate(bars.to_dict("records")):
        if i in faults:
            faults.pop(i)()
        if rate and i % 20 == 0:
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                producer.poll(0)
                time.sleep(wait)
        key, value, ts = bar_message(record)
        seq = numbers[i]
        send(producer, topic, value, key, ts, partial(on_delivery, seq),
             headers=[(SEQ_HEADER, str(seq).encode())])
        run.sent.append(seq)
    for action in faults.values():      # faults placed past the last message run at the end
        action()
    run.unreported = producer.flush(flush_timeout)
    producer.poll(0.2)                  # one last statistics report
    run.finished = time.time()
    return run


def read_sequence_numbers(settings: Settings, topic: str, timeout: float = 60.0) -> pd.DataFrame:
    """Every message of `topic` from its start to its current end: partition, offset and seq header."""
    rows = []
    group = f"workbook-lab-reader-{time.monotonic_ns()}"
    with closing(make_consumer(group, settings, LAB_CLIENT_CONF)) as consumer:
        if assign_from_start(consumer, [topic]):
            for batch in batches_to_end(consumer, timeout=timeout, size=1000):
                rows += [(m.partition(), m.offset(), int(dict(m.headers())[SEQ_HEADER])) for m in batch]
    return pd.DataFrame(rows, columns=["partition", "offset", "seq"])


def messages_in_topic(settings: Settings, topic: str) -> int:
    """Messages in a topic by its watermarks (high − low, summed): the broker's count, not a consumer's."""
    with closing(make_consumer(f"workbook-lab-count-{time.monotonic_ns()}", settings, LAB_CLIENT_CONF)) as c:
        return sum(high - low for low, high in watermarks(c, topic).values())


# --- pure: counting ---------------------------------------------------------------------

@dataclass(frozen=True)
class Tally:
    """Sent, reported and read-back messages compared number by number."""

    sent: int                  # messages produced
    delivered: int             # reported delivered by the producer
    failed: int                # reported failed by the producer
    unreported: int            # sent, with no report at all
    read_back: int             # messages a consumer read, copies included
    distinct: int              # different sequence numbers read
    lost: int                  # reported delivered, yet not read back: silent loss
    missing: int               # sent and never read back (failed, lost or unreported)
    doubled: int               # extra copies read back (read_back − distinct)
    failed_but_present: int    # reported failed, yet read back
    unknown: int               # read back but never sent

    def as_series(self, name: str = "") -> pd.Series:
        """The tally as a column of a table."""
        return pd.Series(self.__dict__, name=name)


def tally(sent: Iterable[int], delivered: Iterable[int], failed: Iterable[int],
          read_back: Iterable[int]) -> Tally:
    """Compare what was sent, what the producer reported and what was read back, exactly."""
    sent, delivered, failed = list(sent), set(delivered), set(failed)
    read = Counter(read_back)
    sent_set = set(sent)
    if len(sent_set) != len(sent):
        raise InputError("Sequence numbers must be unique per message: one was sent twice.")
    if delivered & failed:
        raise InputError("A message cannot be reported both delivered and failed.")
    present = set(read)
    return Tally(
        sent=len(sent), delivered=len(delivered), failed=len(failed),
        unreported=len(sent_set - delivered - failed),
        read_back=sum(read.values()), distinct=len(present),
        lost=len(delivered - present), missing=len(sent_set - present),
        doubled=sum(n - 1 for n in read.values()),
        failed_but_present=len(failed & present), unknown=len(present - sent_set))


def tally_runs(runs: Iterable[ReplayRun], read_back: pd.DataFrame) -> Tally:
    """The tally of one or more replays into a topic against what was read back from it."""
    runs = list(runs)
    return tally([s for r in runs for s in r.sent], [s for r in runs for s in r.delivered],
                 [s for r in runs for s in r.failed], read_back["seq"])


# --- figure ------------------------------------------------------------------------------

def per_second(times: Iterable[float], start: float, end: float, bucket: float = 0.25) -> pd.Series:
    """Events per second in buckets of `bucket` seconds from start to end, indexed by each bucket's
    start in epoch seconds; a last entry at the closing edge repeats the last rate (for step plots)."""
    import numpy as np

    edges = np.arange(start, end + bucket, bucket)
    counts, _ = np.histogram(list(times), bins=edges)
    rates = counts / bucket
    return pd.Series(np.append(rates, rates[-1:]), index=edges)


def with_gaps(times, values, longest: float = 0.6):
    """The samples with a NaN wherever no sample came for `longest` seconds, so a plot shows the gap."""
    import numpy as np

    if len(times) < 2:
        return times, values
    gaps = np.flatnonzero(np.diff(times) > longest)
    return (np.insert(times, gaps + 1, times[gaps] + SAMPLE_INTERVAL_S),
            np.insert(values, gaps + 1, np.nan))


def merge_events(events: Iterable[tuple[float, str]], within: float = 0.5) -> list[tuple[float, str]]:
    """Events closer than `within` seconds become one, labelled 'restart broker 1 + restart broker 2'."""
    merged: list[tuple[float, str]] = []
    for moment, what in sorted(events):
        if merged and moment - merged[-1][0] < within:
            merged[-1] = (merged[-1][0], f"{merged[-1][1]} + {what}")
        else:
            merged.append((moment, what))
    return merged


def plot_fault_timeline(runs: ReplayRun | Iterable[ReplayRun], samples: pd.DataFrame,
                        events: Iterable[tuple[float, str]], *, title: str = "", since: float | None = None,
                        until: float | None = None, bucket: float = 0.25):
    """Messages per second (delivered, failed), messages held by the producer and in-sync replicas
    per partition, over wall-clock time (UTC) from `since` to `until` (default: the runs and the
    samples after them), kills and restarts marked; returns (fig, axes)."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    runs = [runs] if isinstance(runs, ReplayRun) else list(runs)
    start = since if since is not None else min(r.started for r in runs) - 1.0
    end = until if until is not None else \
        max(max(r.finished for r in runs), samples["time"].max() if len(samples) else 0) + 0.5
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True, layout="constrained",
                             height_ratios=[3, 2, 2])
    rate_ax, queue_ax, isr_ax = axes
    when = lambda seconds: pd.to_datetime(pd.Series(list(seconds)), unit="s").to_numpy()   # noqa: E731
    total = {"delivered": sum(len(r.delivered) for r in runs), "failed": sum(len(r.failed) for r in runs)}
    labelled = set()
    for run in runs:
        for outcome, color, times in (("delivered", "tab:blue", run.delivered.values()),
                                      ("failed", "tab:red", run.failed_at.values())):
            if times:                      # a run with no such outcome draws no flat line
                rate = per_second(times, run.started, run.finished, bucket)
                rate_ax.step(when(rate.index), rate.to_numpy(), where="post", color=color,
                             label=None if outcome in labelled else f"{outcome} ({total[outcome]:,})")
                labelled.add(outcome)
    rate_ax.set(ylabel="messages per second", title=title or "Deliveries and in-sync replicas")
    rate_ax.legend(loc="best")
    for run in runs:
        if run.queued:
            moments, counts = zip(*run.queued, strict=True)
            queue_ax.step(when(moments), counts, where="post", color="tab:purple")
    queue_ax.set(ylabel="held by the\nproducer (messages)")
    window = samples[(samples["time"] >= start) & (samples["time"] <= end)]
    for (topic, partition), rows in window.groupby(["topic", "partition"]):
        label = f"partition {partition}" if window["topic"].nunique() == 1 else f"{topic} {partition}"
        times, sizes = with_gaps(rows["time"].to_numpy(), rows["isr_size"].to_numpy(dtype=float))
        isr_ax.step(when(times), sizes + 0.05 * (partition - 1), where="post", label=label, lw=2)
    isr_ax.set(ylabel="in-sync replicas", xlabel="wall-clock time (UTC)", ylim=(-0.3, 3.5),
               yticks=[0, 1, 2, 3])
    isr_ax.legend(loc="lower left", ncols=3)
    for moment, what in merge_events(events):
        if start <= moment <= end:
            for ax in axes:
                ax.axvline(when([moment])[0], color="black" if "kill" in what else "tab:green",
                           ls="--", lw=1.3)
            rate_ax.annotate(what, (when([moment])[0], 0.97), xycoords=("data", "axes fraction"),
                             xytext=(4, 0), textcoords="offset points", rotation=90, va="top",
                             ha="left", fontsize=11,
                             bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 1})
    isr_ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    return fig, axes
