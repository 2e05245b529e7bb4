"""Real Apache Kafka without Docker: jars from Maven Central, KRaft nodes as background JVMs.

A cluster is one or more nodes on 127.0.0.1, each a broker and a controller
at once (KRaft, no ZooKeeper), each with its own ports, data directory, log
and pid file under one state folder. The workbook's stack runs one node;
notebook 09 starts three of its own to kill one. With `security` (a class
server, `helpers.stack.classroom`) the nodes take logins over TLS and check
every request against ACLs.
"""
from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import POM, Settings, pom_property
from ..errors import StackError
from .prereqs import ensure_programs, say
from .processes import check_port_free, kill_process, running_process, start_detached, stop_process

if TYPE_CHECKING:
    from .classroom import BrokerSecurity

HEAP_MB = 512


@dataclass(frozen=True)
class KafkaNode:
    """One KRaft node: broker and controller in one JVM."""

    node_id: int
    port: int
    controller_port: int
    root: Path                 # this node's folder: data/, server.log, server.properties

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
    """A local Kafka cluster of `len(nodes)` combined nodes sharing one set of jars."""

    libs: Path
    nodes: tuple[KafkaNode, ...]
    heap_mb: int = HEAP_MB
    security: BrokerSecurity | None = None     # None: PLAINTEXT, no logins, no ACLs (a laptop)

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalKafka:
        """The workbook's own single node (ports from KAFKA_PORT, KAFKA_CONTROLLER_PORT)."""
        node = KafkaNode(1, settings.kafka_port, settings.kafka_controller_port,
                         settings.state_dir / "kafka" / "node-1")
        return cls(settings.state_dir / "libs" / "kafka", (node,))

    @classmethod
    def cluster(cls, settings: Settings, root: Path, ports: list[tuple[int, int]],
                heap_mb: int = 384) -> LocalKafka:
        """Several nodes under `root`, ports given as (client, controller) pairs."""
        nodes = tuple(KafkaNode(i, p, c, root / f"node-{i}") for i, (p, c) in enumerate(ports, 1))
        return cls(settings.state_dir / "libs" / "kafka", nodes, heap_mb)

    @property
    def bootstrap_servers(self) -> str:
        """Every node's client address, comma-separated."""
        return ",".join(n.address for n in self.nodes)

    @property
    def replication(self) -> int:
        """Replication factor of the internal topics: every node holds a copy, up to 3."""
        return min(3, len(self.nodes))

    def properties(self, node: KafkaNode) -> str:
        """server.properties of one node: broker+controller, everything on 127.0.0.1."""
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        rf, min_isr = self.replication, max(1, self.replication - 1)
        return "\n".join([
            "process.roles=broker,controller",
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
            "auto.create.topics.enable=false",
            *(self.security.properties() if self.security else []),
            "",
        ])

    def listener_lines(self, node: KafkaNode) -> list[str]:
        """One node's listeners: PLAINTEXT on a laptop; SASL_SSL and SASL controller on a class server."""
        if self.security:
            return self.security.listener_lines(node.port, node.controller_port)
        return [
            f"listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
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
                "-cp", str(self.libs / "*")]

    def _format(self) -> None:
        """Format every node's storage with one new cluster id (first start only)."""
        if all((n.data / "meta.properties").is_file() for n in self.nodes):
            return
        # what `StorageTool random-uuid` prints: a random UUID, URL-safe base64 without padding
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        for node in self.nodes:
            shutil.rmtree(node.data, ignore_errors=True)
            args = ["format", f"--cluster-id={cluster_id}", "-c", str(node.root / "server.properties"),
                    *(self.security.format_args() if self.security else [])]
            # passwords (SCRAM users) must not show in `ps`: the arguments go in a private @file
            with tempfile.NamedTemporaryFile("w", dir=node.root, prefix="format-", suffix=".args") as argfile:
                argfile.write("\n".join(args) + "\n")
                argfile.flush()
                result = subprocess.run([*self._java(node), "kafka.tools.StorageTool", f"@{argfile.name}"],
                                        capture_output=True, text=True)
            if result.returncode != 0:
                why = (result.stderr or result.stdout).strip()[-500:]
                raise StackError(f"Formatting Kafka node {node.node_id} failed: "
                                 f"{self.security.scrub(why) if self.security else why}")

    def start(self) -> list[KafkaNode]:
        """Start the nodes that do not run yet (formatting storage the first time); return them."""
        started = []
        for node in self.nodes:
            node.root.mkdir(parents=True, exist_ok=True)
            (node.root / "server.properties").write_text(self.properties(node))
            (node.root / "server.properties").chmod(0o600)     # a class server's holds a password
            (node.root / "log4j2.properties").write_text(self.log4j(node))
        self._format()
        for node in self.nodes:
            if running_process(node.pid_file):
                continue
            check_port_free(node.port, f"Kafka node {node.node_id}", "KAFKA_PORT")
            check_port_free(node.controller_port, f"the controller of Kafka node {node.node_id}",
                            "KAFKA_CONTROLLER_PORT")
            self.start_node(node)
            started.append(node)
        return started

    def start_node(self, node: KafkaNode) -> None:
        """Start one node's JVM in the background (its storage must be formatted)."""
        java = self._java(node)
        opts = [f"-Xms{self.heap_mb}m", f"-Xmx{self.heap_mb}m", "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true", f"-Dkafka.logs.dir={node.root}"]
        start_detached([java[0], *opts, *java[1:], "kafka.Kafka", str(node.root / "server.properties")],
                       node.root / "stdout.log", node.pid_file)

    def stop(self) -> list[int]:
        """Stop every running node (controlled shutdown); return the stopped pids."""
        pids = [stop_process(n.pid_file, timeout=60) for n in reversed(self.nodes)]
        return [p for p in pids if p]

    def kill_node(self, node: KafkaNode) -> int | None:
        """SIGKILL one node, as a crash or a pulled power cord would."""
        return kill_process(node.pid_file)

    def running(self) -> list[KafkaNode]:
        """The nodes whose JVM runs."""
        return [n for n in self.nodes if running_process(n.pid_file)]


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
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError("Maven could not resolve the stack's jars:\n" + result.stdout[-2000:]
                         + result.stderr[-2000:])
    stamp.write_text(digest)
