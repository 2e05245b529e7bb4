"""Replication and fault tolerance: a cluster to break on purpose, and exact counts (09_fault_tolerance).

`start_lab_cluster` starts a throw-away cluster of three brokers and one
controller of their own — local JVMs on free ports in a temporary folder
(`.stack/lab/run-*`), or
the `faults` profile of docker-compose.yml — and removes it when closed, when
the Python process exits, or (locally) when the process dies: its JVMs get
SIGKILL with their parent. Its controller runs apart from the brokers so that
two brokers can die while the metadata quorum lives (with three combined
nodes, two dead nodes are two dead voters: no controller, no election).

Every message of a replay carries a sequence number in its `seq` header, so
what was sent, what the producer reported delivered or failed, and what a
consumer reads back can be compared number by number (`tally`).
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, Producer, TopicPartition

from .clients import KAFKA_LOGGER, PRODUCER_DEFAULTS, make_admin, make_consumer, send
from .config import KafkaSecurity, Settings, load_settings
from .errors import InputError, StackError, WaitTimeout
from .produce import bar_message
from .topics import watermarks
from .waiting import wait_until

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

BROKER_IDS = (1, 2, 3)
CONTROLLER_ID = 4
HEAP_MB = 256
# C1 only: the lab's JVMs start in about half the time on two cores; they carry a few thousand messages/s
JVM_OPTIONS = ("-XX:TieredStopAtLevel=1",)
# A broker silent for 3 s is declared dead and loses its leaderships (Kafka's default is 9 s):
# the same values are in the `faults` profile of docker-compose.yml.
LAB_PROPERTIES = {"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500"}
# Clients of the lab retry connections quickly: a restarted broker is found within 0.5 s.
LAB_CLIENT_CONF = {"reconnect.backoff.max.ms": 500, "topic.metadata.refresh.interval.ms": 1000}
SEQ_HEADER = "seq"
SAMPLE_INTERVAL_S = 0.1

_OPEN: list[LabCluster] = []          # lab clusters of this process, closed at exit


# --- the cluster ---------------------------------------------------------------

@dataclass(eq=False)
class LabCluster:
    """Three brokers and a controller, started for one notebook or test and removed afterwards."""

    settings: Settings                 # the workbook's settings, pointed at this cluster
    started_in: float = 0.0            # seconds from start to three live brokers
    events: list[tuple[float, str]] = field(default_factory=list)   # (epoch s, "kill broker 2")

    @property
    def bootstrap_servers(self) -> str:
        """The three brokers' client addresses."""
        return self.settings.bootstrap_servers

    def conf(self, producer_conf: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A producer configuration for this cluster: `producer_conf` plus address, logger, quick
        reconnects and the workbook's partitioner (a ticker lands where Java clients put it)."""
        return {"bootstrap.servers": self.bootstrap_servers, "logger": KAFKA_LOGGER,
                "partitioner": PRODUCER_DEFAULTS["partitioner"], **LAB_CLIENT_CONF, **(producer_conf or {})}

    def kill(self, broker_id: int) -> None:
        """Kill a broker at once, as a crash would (SIGKILL, or `docker compose kill`)."""
        check_broker(broker_id)
        self._kill(broker_id)
        self.events.append((time.time(), f"kill broker {broker_id}"))

    def restart(self, broker_id: int) -> None:
        """Start a killed broker again, on its own data."""
        check_broker(broker_id)
        self._start(broker_id)
        self.events.append((time.time(), f"restart broker {broker_id}"))

    def close(self) -> None:
        """Remove the cluster: its processes (or containers) and its data."""
        if self in _OPEN:
            _OPEN.remove(self)
        self._remove()

    def __enter__(self) -> LabCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _kill(self, broker_id: int) -> None:
        raise NotImplementedError

    def _start(self, broker_id: int) -> None:
        raise NotImplementedError

    def _remove(self) -> None:
        raise NotImplementedError


@dataclass(eq=False)
class LocalLab(LabCluster):
    """The lab cluster as four local JVMs (jars of the local stack) in a temporary folder."""

    kafka: Any = None                  # helpers.stack.kafka.LocalKafka
    root: Path | None = None

    def _kill(self, broker_id: int) -> None:
        self.kafka.kill_node(self.kafka.node(broker_id))

    def _start(self, broker_id: int) -> None:
        node = self.kafka.node(broker_id)
        if node not in self.kafka.running():
            self.kafka.start_node(node)      # from this thread: the JVM dies with it (pdeathsig)

    def _remove(self) -> None:
        from .stack.processes import kill_processes

        kill_processes([n.pid_file for n in self.kafka.nodes])   # throw-away: no controlled shutdown
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of each running node's JVM, in MiB."""
        import psutil

        sizes = {}
        for node in self.kafka.running():
            pid = json.loads(node.pid_file.read_text())["pid"]
            name = "controller" if node.node_id == CONTROLLER_ID else f"broker {node.node_id}"
            sizes[name] = psutil.Process(pid).memory_info().rss / 2**20
        return sizes

    def __str__(self) -> str:
        return (f"lab cluster: brokers {', '.join(map(str, BROKER_IDS))} at {self.bootstrap_servers}, "
                f"controller {CONTROLLER_ID}; three brokers live {self.started_in:.1f} s after the start")


@dataclass(eq=False)
class ComposeLab(LabCluster):
    """The lab cluster as the `faults` profile of docker-compose.yml (needs the Docker CLI)."""

    env: dict[str, str] = field(default_factory=dict)

    SERVICES = ("lab-controller", "lab-kafka-1", "lab-kafka-2", "lab-kafka-3")

    def _compose(self, *args: str) -> None:
        from .stack.compose import compose

        compose("--profile", "faults", *args, env=self.env)

    def _kill(self, broker_id: int) -> None:
        self._compose("kill", f"lab-kafka-{broker_id}")          # SIGKILL by default

    def _start(self, broker_id: int) -> None:
        self._compose("start", f"lab-kafka-{broker_id}")

    def _remove(self) -> None:
        self._compose("rm", "--stop", "--force", "--volumes", *self.SERVICES)

    def rss_mb(self) -> dict[str, float]:
        """Not measured from here with Docker: `docker stats` shows each container's memory."""
        return {}

    def __str__(self) -> str:
        return (f"lab cluster (Docker): brokers lab-kafka-1..3 at {self.bootstrap_servers}, "
                f"lab-controller; three brokers live {self.started_in:.1f} s after the start")


def check_broker(broker_id: int) -> None:
    """Only the three brokers may be killed or restarted (the controller keeps the quorum)."""
    if broker_id not in BROKER_IDS:
        raise InputError(f"The lab's brokers are {BROKER_IDS}, got {broker_id!r} "
                         f"(node {CONTROLLER_ID} is the controller, which the lab never kills).")


def start_lab_cluster(settings: Settings | None = None, timeout: float = 180) -> LabCluster:
    """Start the lab's three brokers and controller on free ports; close any lab this process left open."""
    from .stack.processes import free_port

    settings = settings or load_settings()
    close_lab_clusters()
    started = time.monotonic()
    ports = [free_port() for _ in range(len(BROKER_IDS) + 1)]
    addresses = ",".join(f"127.0.0.1:{p}" for p in ports[:3])
    lab_settings = replace(settings, bootstrap_servers=addresses, kafka_security=KafkaSecurity())  # PLAINTEXT
    lab: LocalLab | ComposeLab
    if settings.stack == "local":
        lab = start_local_lab(settings, lab_settings, ports)
    elif settings.stack == "docker":
        env = {f"LAB_KAFKA_PORT_{i}": str(p) for i, p in zip(BROKER_IDS, ports, strict=False)}
        lab = ComposeLab(lab_settings, env=env)
        _OPEN.append(lab)
    else:
        raise StackError("Notebook 09 starts a Kafka cluster of its own, with the local or the Docker "
                         "stack: set WORKBOOK_STACK=local or docker (it cannot kill external brokers).")
    try:
        if isinstance(lab, ComposeLab):
            lab._compose("up", "-d", "--wait", *ComposeLab.SERVICES)
        wait_for_brokers(lab, len(BROKER_IDS), timeout)
    except BaseException:
        lab.close()
        raise
    lab.started_in = time.monotonic() - started
    return lab


def start_local_lab(settings: Settings, lab_settings: Settings, ports: list[int]) -> LocalLab:
    """Four JVMs under a temporary folder: brokers 1-3 and controller 4, each dying with this process."""
    from .stack.kafka import resolve_jars
    from .stack.prereqs import ensure_programs

    ensure_programs(("java", "mvn"))
    resolve_jars(settings)
    sweep_stale_labs(settings)
    (settings.state_dir / "lab").mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="run-", dir=settings.state_dir / "lab"))
    kafka = lab_kafka(settings, root, ports)
    lab = LocalLab(lab_settings, kafka=kafka, root=root)
    _OPEN.append(lab)
    try:
        template = formatted_template(settings)
        for node in kafka.nodes:
            shutil.copytree(template / node.root.name / "data", node.data)
        kafka.start()
    except BaseException:
        lab.close()
        raise
    return lab


def sweep_stale_labs(settings: Settings, min_age: float = 300) -> list[Path]:
    """Delete the folders of labs whose process was killed (its JVMs died with it, the folder stayed):
    no node of theirs runs and they are older than `min_age` seconds; return them."""
    from .stack.processes import running_process

    swept = []
    for root in sorted((settings.state_dir / "lab").glob("run-*")):
        try:
            old = time.time() - root.stat().st_mtime > min_age
        except OSError:
            continue
        if old and not any(running_process(pid) for pid in root.glob("node-*/kafka.pid")):
            shutil.rmtree(root, ignore_errors=True)
            swept.append(root)
    return swept


def lab_kafka(settings: Settings, root: Path, ports: list[int]):
    """The lab's LocalKafka: brokers 1-3 on ports[0:3], controller 4 on ports[3], under `root`."""
    from .stack.kafka import BROKER, CONTROLLER, LocalKafka

    node_ports = [(p, 0) for p in ports[:3]] + [(0, ports[3])]
    return LocalKafka.cluster(settings, root, node_ports, heap_mb=HEAP_MB,
                              roles=[BROKER] * len(BROKER_IDS) + [CONTROLLER], extra=LAB_PROPERTIES,
                              die_with_parent=True, jvm_options=JVM_OPTIONS)


def formatted_template(settings: Settings) -> Path:
    """Formatted storage of the lab's four nodes, made once (a cold start, ~9 s) and copied by every
    later lab (warm): ports are not part of a node's storage, so one template serves every run."""
    from .config import POM

    template = settings.state_dir / "lab-template"
    kafka = lab_kafka(settings, template, [1, 2, 3, 4])
    layout = "\n".join(f"{n.node_id}:{n.roles}" for n in kafka.nodes)
    stamp = hashlib.sha256(POM.read_bytes() + layout.encode()).hexdigest()
    if (template / "stamp").is_file() and (template / "stamp").read_text() == stamp:
        return template
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=".lab-template-", dir=settings.state_dir))
    try:
        building = lab_kafka(settings, fresh, [1, 2, 3, 4])
        building.write_configs()
        building.format()
        (fresh / "stamp").write_text(stamp)
        shutil.rmtree(template, ignore_errors=True)
        os.replace(fresh, template)       # another kernel may have won the race: its template is as good
    except OSError:
        pass
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return template


def close_lab_clusters() -> None:
    """Close every lab cluster this process started (also run at exit)."""
    for lab in list(_OPEN):
        lab.close()


atexit.register(close_lab_clusters)


def live_brokers(admin: AdminClient, timeout: float = 2.0) -> set[int]:
    """Ids of the brokers the cluster's metadata lists as live."""
    return set(admin.list_topics(timeout=timeout).brokers)


def wait_for_brokers(lab: LabCluster, count: int, timeout: float) -> None:
    """Wait until `count` brokers are live in the metadata."""
    admin = make_admin(lab.settings, LAB_CLIENT_CONF)

    def ready() -> bool:
        try:
            return len(live_brokers(admin)) >= count
        except KafkaException:
            return False

    wait_until(ready, timeout, f"{count} brokers of the lab cluster at {lab.bootstrap_servers}",
               interval=0.2)


# --- partitions: leaders and in-sync replicas --------------------------------------

def describe_partitions(admin: AdminClient, topic: str) -> pd.DataFrame:
    """One row per partition: leader, replicas, in-sync replicas (ISR) and their number."""
    from confluent_kafka import TopicCollection

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
    """Wait until every partition has exactly `size` in-sync replicas; return the seconds it took."""
    start = time.monotonic()

    def reached() -> bool:
        try:
            return set(isr_sizes(admin, topic).values()) == {size}
        except KafkaException:
            return False

    wait_until(reached, timeout, f"every partition of {topic} to have {size} in-sync replicas",
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
                    flush_timeout: float = 120.0) -> ReplayRun:
    """Produce bars in order, each numbered in its `seq` header, at most `rate` per second, and record
    every delivery report; `faults[i]()` runs just before message i is produced (kill a broker...).

    The loop of 03_producing plus a sequence number per message, a rate limit,
    faults at chosen points, and a record of each message's outcome and of
    the producer's queue (librdkafka statistics every 100 ms).
    """
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0):
        raise InputError(f"rate must be a positive number of messages per second (or None), got {rate!r}.")
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
        seq = first_seq + i
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
    consumer = make_consumer(f"workbook-lab-reader-{time.monotonic_ns()}", settings, LAB_CLIENT_CONF)
    rows = []
    try:
        ends = {p: high for p, (low, high) in watermarks(consumer, topic).items() if high > low}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(msg.error())
                rows.append((msg.partition(), msg.offset(), int(dict(msg.headers())[SEQ_HEADER])))
                if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                    ends.pop(msg.partition(), None)
        if ends:
            raise WaitTimeout(f"Reading {topic} did not reach its end within {timeout:.0f} s.")
    finally:
        consumer.close()
    return pd.DataFrame(rows, columns=["partition", "offset", "seq"])


def messages_in_topic(settings: Settings, topic: str) -> int:
    """Messages in a topic by its watermarks (high − low, summed): the broker's count, not a consumer's."""
    consumer = make_consumer(f"workbook-lab-count-{time.monotonic_ns()}", settings, LAB_CLIENT_CONF)
    try:
        return sum(high - low for low, high in watermarks(consumer, topic).values())
    finally:
        consumer.close()


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
