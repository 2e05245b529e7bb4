"""Real Apache Kafka without Docker: jars from Maven Central, KRaft nodes as background JVMs.

A cluster is one or more nodes on 127.0.0.1 (KRaft, no ZooKeeper), each with
its own ports, data directory, log and pid file under one state folder. A node
is a broker and a controller at once (combined), or only one of them. The
workbook's stack runs one combined node, or three (`WORKBOOK_BROKERS=3`: a
three-voter quorum); notebook 10 starts a throw-away cluster of three brokers
and a controller of their own, so that it can kill two brokers and keep a quorum.
With `security` (a class server, `helpers.infra.security`) the single node
takes logins over TLS and checks every request against ACLs.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from helpers.core.errors import StackError
from helpers.core.settings import POM, Settings, pom_property
from helpers.infra.files import write_private
from helpers.infra.prereqs import ensure_programs, say
from helpers.infra.processes import (
    check_port_free,
    kill_process,
    run_command,
    running_process,
    start_detached,
    stop_processes,
)

if TYPE_CHECKING:
    from helpers.infra.security import BrokerSecurity

HEAP_MB = 512
# A class waits on rebalances: members of the new consumer protocol and of share groups
# hear from the broker every second (Kafka's default is 5 s, meant for thousands of members),
# a share group may lock records for as little as a second, and a consumer group may set a
# session as short as 5 s (default floor 45 s): notebook 11's two crash labs.
GROUP_PACE = ("group.consumer.heartbeat.interval.ms=1000", "group.consumer.min.heartbeat.interval.ms=1000",
              "group.share.heartbeat.interval.ms=1000", "group.share.min.heartbeat.interval.ms=1000",
              "group.share.min.record.lock.duration.ms=1000", "group.consumer.min.session.timeout.ms=5000")
FORMAT_TIMEOUT_S = 120         # formatting a node's storage takes a few seconds
MAVEN_TIMEOUT_S = 900          # the first download of the jars, on a slow network
COMBINED, BROKER, CONTROLLER = "broker,controller", "broker", "controller"


@dataclass(frozen=True)
class KafkaNode:
    """One KRaft node, one JVM: broker and controller (combined), or only one of them."""

    node_id: int
    port: int                  # client listener (0 for a controller-only node)
    controller_port: int       # controller listener (0 for a broker-only node)
    root: Path                 # this node's folder: data/, server.log, server.properties
    roles: str = COMBINED

    @property
    def is_broker(self) -> bool:
        """True when the node serves clients (holds partitions)."""
        return "broker" in self.roles.split(",")

    @property
    def is_controller(self) -> bool:
        """True when the node is a voter of the metadata quorum."""
        return "controller" in self.roles.split(",")

    @property
    def data(self) -> Path:
        """The node's log directory (its partitions and the metadata log)."""
        return self.root / "data"

    @property
    def log(self) -> Path:
        """The broker's own log file."""
        return self.root / "server.log"

    @property
    def pid_file(self) -> Path:
        """Where the running JVM's pid is recorded."""
        return self.root / "kafka.pid"

    @property
    def address(self) -> str:
        """host:port of its client listener."""
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class LocalKafka:
    """A local Kafka cluster of `len(nodes)` KRaft nodes sharing one set of jars.

    `extra` holds server properties that override the defaults on every node
    (notebook 10 shortens the broker session timeout), `jvm_options` JVM flags
    added after the defaults; `die_with_parent` makes every JVM receive SIGKILL
    when the Python process that started it ends, so a throw-away cluster
    cannot outlive a crashed kernel or test.
    """

    libs: Path
    nodes: tuple[KafkaNode, ...]
    heap_mb: int = HEAP_MB
    extra: tuple[tuple[str, str], ...] = ()
    die_with_parent: bool = False
    jvm_options: tuple[str, ...] = ()
    security: BrokerSecurity | None = None     # None: PLAINTEXT, no logins, no ACLs (a laptop)
    classpath: tuple[Path, ...] = ()            # more classes for the broker (the class server's policy)

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalKafka:
        """The workbook's own Kafka: one node, or three (WORKBOOK_BROKERS=3) in a folder of their own.

        A KRaft quorum cannot change its size in place, so the three-node
        cluster keeps its state in `.stack/kafka-cluster/`, apart from the
        single node's `.stack/kafka/node-1`.
        """
        libs = settings.state_dir / "libs" / "kafka"
        if settings.brokers == 1:
            node = KafkaNode(1, settings.kafka_port, settings.kafka_controller_port,
                             settings.state_dir / "kafka" / "node-1")
            return cls(libs, (node,))
        return cls.cluster(settings, settings.state_dir / "kafka-cluster", settings.kafka_node_ports)

    @classmethod
    def cluster(cls, settings: Settings, root: Path, ports: list[tuple[int, int]],
                heap_mb: int = 384, roles: list[str] | None = None, extra: dict[str, str] | None = None,
                die_with_parent: bool = False, jvm_options: tuple[str, ...] = ()) -> LocalKafka:
        """Several nodes under `root`, ports given as (client, controller) pairs, combined by default."""
        roles = roles or [COMBINED] * len(ports)
        if len(roles) != len(ports) or not any(CONTROLLER in r for r in roles) \
                or not any(BROKER in r.split(",") for r in roles):
            raise StackError("A Kafka cluster needs one role per node, at least one broker "
                             "and one controller.")
        nodes = tuple(KafkaNode(i, p, c, root / f"node-{i}", r)
                      for i, ((p, c), r) in enumerate(zip(ports, roles, strict=True), 1))
        return cls(settings.state_dir / "libs" / "kafka", nodes, heap_mb,
                   tuple((extra or {}).items()), die_with_parent, tuple(jvm_options))

    @property
    def brokers(self) -> list[KafkaNode]:
        """The nodes that serve clients."""
        return [n for n in self.nodes if n.is_broker]

    @property
    def bootstrap_servers(self) -> str:
        """Every broker's client address, comma-separated."""
        return ",".join(n.address for n in self.brokers)

    @property
    def replication(self) -> int:
        """Replication factor of the internal topics: every broker holds a copy, up to 3."""
        return min(3, len(self.brokers))

    def properties(self, node: KafkaNode) -> str:
        """server.properties of one node, everything on 127.0.0.1."""
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes if n.is_controller)
        rf, min_isr = self.replication, max(1, self.replication - 1)
        return "\n".join([
            f"process.roles={node.roles}",
            f"node.id={node.node_id}",
            f"controller.quorum.voters={voters}",
            *self.listener_lines(node),
            f"log.dirs={node.data}",
            "num.partitions=3",
            f"default.replication.factor={rf}",
            f"offsets.topic.replication.factor={rf}",
            f"transaction.state.log.replication.factor={rf}",
            f"transaction.state.log.min.isr={min_isr}",
            f"share.coordinator.state.topic.replication.factor={rf}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            *GROUP_PACE,
            "auto.create.topics.enable=false",
            *(self.security.properties() if self.security else []),
            *(f"{key}={value}" for key, value in self.extra),   # the last value of a key wins
            "",
        ])

    def listener_lines(self, node: KafkaNode) -> list[str]:
        """One node's listeners: PLAINTEXT on a laptop; SASL_SSL and SASL controller on a class server."""
        if self.security:           # a class server: one combined node
            return self.security.listener_lines(node.port, node.controller_port)
        listeners = ([f"PLAINTEXT://127.0.0.1:{node.port}"] if node.is_broker else []) + \
                    ([f"CONTROLLER://127.0.0.1:{node.controller_port}"] if node.is_controller else [])
        broker_lines = [f"advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}",
                        "inter.broker.listener.name=PLAINTEXT"] if node.is_broker else []
        return [
            f"listeners={','.join(listeners)}",
            *broker_lines,
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ]

    @staticmethod
    def log4j(node: KafkaNode) -> str:
        """log4j2 properties: everything to the node's server.log, nothing to the terminal."""
        return "\n".join([
            "rootLogger.level=INFO",
            "rootLogger.appenderRef.file.ref=file",
            "appender.file.type=File",
            "appender.file.name=file",
            f"appender.file.fileName={node.log}",
            "appender.file.layout.type=PatternLayout",
            "appender.file.layout.pattern=[%d] %p %m (%c)%n",
            "logger.state.name=state.change.logger",
            "logger.state.level=WARN",
            "",
        ])

    def _java(self, node: KafkaNode) -> list[str]:
        return ["java", f"-Dlog4j2.configurationFile={node.root / 'log4j2.properties'}",
                "-cp", os.pathsep.join([str(self.libs / "*"), *map(str, self.classpath)])]

    def format(self) -> None:
        """Format every node's storage with one new cluster id (first start only), in parallel."""
        if all((n.data / "meta.properties").is_file() for n in self.nodes):
            return
        # what `StorageTool random-uuid` prints: a random UUID, URL-safe base64 without padding
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        running: list[tuple[KafkaNode, subprocess.Popen[str]]] = []
        argfiles: list[Path] = []
        failures = []
        try:
            for node in self.nodes:
                shutil.rmtree(node.data, ignore_errors=True)
                args = ["format", f"--cluster-id={cluster_id}", "-c", str(node.root / "server.properties"),
                        *(self.security.format_args() if self.security else [])]
                # passwords (SCRAM users) must not show in `ps`: the arguments go in a private @file
                argfile = node.root / f".format-{uuid.uuid4().hex}.args"
                argfiles.append(argfile)
                write_private(argfile, "\n".join(args) + "\n")
                running.append((node, subprocess.Popen(
                    [*self._java(node), "-Xmx128m", "kafka.tools.StorageTool", f"@{argfile}"],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)))
            for node, proc in running:
                try:
                    output, _ = proc.communicate(timeout=FORMAT_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    output, _ = proc.communicate(timeout=10)
                    failures.append(f"node {node.node_id}: no answer within {FORMAT_TIMEOUT_S:g} s")
                    continue
                if proc.returncode != 0:
                    why = output.strip()[-500:]
                    why = self.security.scrub(why) if self.security else why
                    failures.append(f"node {node.node_id}: {why}")
        finally:
            for proc in (p for _, p in running if p.poll() is None):
                proc.kill()
                proc.wait()
            for argfile in argfiles:
                argfile.unlink(missing_ok=True)
        if failures:
            raise StackError("Formatting Kafka storage failed: " + "; ".join(failures))

    def write_configs(self) -> None:
        """Write each node's server.properties and log4j2.properties into its folder."""
        for node in self.nodes:
            node.root.mkdir(parents=True, exist_ok=True)
            write_private(node.root / "server.properties", self.properties(node))   # may hold a password
            (node.root / "log4j2.properties").write_text(self.log4j(node))

    def start(self) -> list[KafkaNode]:
        """Start the nodes that do not run yet (formatting storage the first time); return them."""
        started = []
        self.write_configs()
        self.format()
        for node in self.nodes:
            if running_process(node.pid_file):
                continue
            if node.is_broker:
                check_port_free(node.port, f"Kafka node {node.node_id}", "KAFKA_PORT")
            if node.is_controller:
                check_port_free(node.controller_port, f"the controller of Kafka node {node.node_id}",
                                "KAFKA_CONTROLLER_PORT")
            self.start_node(node)
            started.append(node)
        return started

    def start_node(self, node: KafkaNode) -> None:
        """Start one node's JVM in the background (its storage must be formatted)."""
        java = self._java(node)
        heap = self.heap_mb if node.is_broker else min(self.heap_mb, 192)   # a controller holds metadata only
        opts = [f"-Xms{heap}m", f"-Xmx{heap}m", "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true", f"-Dkafka.logs.dir={node.root}",
                *self.jvm_options]
        start_detached([java[0], *opts, *java[1:], "kafka.Kafka", str(node.root / "server.properties")],
                       node.root / "stdout.log", node.pid_file, die_with_parent=self.die_with_parent)

    def stop(self, timeout: float = 60) -> list[int]:
        """Stop every running node (controlled shutdown, all at once); return the stopped pids."""
        return stop_processes([n.pid_file for n in self.nodes], timeout=timeout)

    def kill_node(self, node: KafkaNode) -> int | None:
        """SIGKILL one node, as a crash or a pulled power cord would."""
        return kill_process(node.pid_file)

    def running(self) -> list[KafkaNode]:
        """The nodes whose JVM runs."""
        return [n for n in self.nodes if running_process(n.pid_file)]

    def node(self, node_id: int) -> KafkaNode:
        """The node of that id."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise StackError(f"This cluster has no node {node_id}: its nodes are "
                         f"{', '.join(str(n.node_id) for n in self.nodes)}.")



def resolve_jars(settings: Settings) -> None:
    """Fetch the Kafka and Flink-connector jars with Maven unless stack/pom.xml is unchanged."""
    libs = settings.state_dir / "libs"
    stamp = libs / "pom.sha256"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest and any((libs / "kafka").glob("kafka_2.13-*.jar")):
        return
    ensure_programs(("mvn",))
    say(f"Resolving Kafka {pom_property('kafka.version')} jars from Maven Central (first time only)...")
    shutil.rmtree(libs, ignore_errors=True)
    args = ["mvn", "-q", "-B", "-f", str(POM), f"-Dlibs.dir={libs}",
            "dependency:copy-dependencies@kafka", "dependency:copy@flink"]
    run_command(args, timeout=MAVEN_TIMEOUT_S, what="mvn dependency:copy-dependencies (the stack's jars)")
    stamp.write_text(digest)
