"""A Kafka cluster to break on purpose: three brokers and a controller of their own (10_fault_tolerance).

`start_lab_cluster` starts a throw-away cluster — local JVMs on free ports in a
temporary folder (`.stack/lab/run-*`), or the `faults` profile of
docker-compose.yml — and removes it when closed, when the Python process
exits, or (locally) when the process dies: its JVMs get SIGKILL with their
parent. Its controller runs apart from the brokers so that two brokers can
die while the metadata quorum lives (with three combined nodes, two dead
nodes are two dead voters: no controller, no election).
"""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaException

from helpers.core.errors import InputError, StackError
from helpers.core.settings import KafkaSecurity, Settings
from helpers.core.waiting import wait_until
from helpers.infra.clients import KAFKA_LOGGER, PRODUCER_DEFAULTS, make_admin

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

    kafka: Any = None                  # helpers.infra.kafka.LocalKafka
    root: Path | None = None

    def _kill(self, broker_id: int) -> None:
        self.kafka.kill_node(self.kafka.node(broker_id))

    def _start(self, broker_id: int) -> None:
        node = self.kafka.node(broker_id)
        if node not in self.kafka.running():
            self.kafka.start_node(node)      # from this thread: the JVM dies with it (pdeathsig)

    def _remove(self) -> None:
        from helpers.infra.processes import kill_processes

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
        from helpers.infra.compose import compose

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


def start_lab_cluster(settings: Settings, timeout: float = 180) -> LabCluster:
    """Start the lab's three brokers and controller on free ports; close any lab this process left open."""
    from helpers.infra.processes import free_port

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
        raise StackError("Notebook 10 starts a Kafka cluster of its own, with the local or the Docker "
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
    from helpers.infra.kafka import resolve_jars
    from helpers.infra.prereqs import ensure_programs

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
    from helpers.infra.processes import running_process

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
    from helpers.infra.kafka import BROKER, CONTROLLER, LocalKafka

    node_ports = [(p, 0) for p in ports[:3]] + [(0, ports[3])]
    return LocalKafka.cluster(settings, root, node_ports, heap_mb=HEAP_MB,
                              roles=[BROKER] * len(BROKER_IDS) + [CONTROLLER], extra=LAB_PROPERTIES,
                              die_with_parent=True, jvm_options=JVM_OPTIONS)


def formatted_template(settings: Settings) -> Path:
    """Formatted storage of the lab's four nodes, made once (a cold start, ~9 s) and copied by every
    later lab (warm): ports are not part of a node's storage, so one template serves every run."""
    from helpers.core.settings import POM

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
