"""The services behind one interface: up, down, status (00_setup).

Three stacks, chosen in `helpers.core.settings` (WORKBOOK_STACK):
- docker: `docker compose` with the repository's docker-compose.yml (`compose`);
- local: a real Kafka cluster from Maven Central jars (`kafka`) and MariaDB from
  Debian (`mariadb`), background processes (`processes`) with state under `.stack/`,
  their programs installed with apt when missing (`prereqs`);
- external: services somebody else runs, reached through the environment.
`status` probes them all; `up` returns only once Kafka can serve everything
the notebooks use. Kafka is one node, or three (WORKBOOK_BROKERS=3, `workbook
up --brokers 3`): switching stops the other layout, whose data stays.
"""
from __future__ import annotations

from dataclasses import replace

from helpers.core.errors import StackError
from helpers.core.settings import Settings
from helpers.infra.compose import compose, compose_cluster_env
from helpers.infra.connect import LocalConnect
from helpers.infra.kafka import LocalKafka, resolve_jars
from helpers.infra.mariadb import LocalMariaDB
from helpers.infra.prereqs import ensure_programs, say
from helpers.infra.status import (
    ServiceStatus,
    kafka_cluster_id,
    kafka_version,
    require_services,
    stack_status,
    status_table,
    wait_kafka_ready,
)

__all__ = ["ServiceStatus", "StackError", "kafka_cluster_id", "kafka_version", "require_services",
           "stack_down", "stack_status", "stack_up", "status_table"]


def other_layout(settings: Settings) -> LocalKafka:
    """The local Kafka of the other broker count (one node <-> three), for switching."""
    other = 3 if settings.brokers == 1 else 1
    # only its pid files matter (to see whether it runs, to stop it): any valid ports will do
    ports = (settings.kafka_port, settings.kafka_controller_port) if other == 1 else (1, 2)
    return LocalKafka.for_settings(replace(settings, brokers=other, kafka_port=ports[0],
                                           kafka_controller_port=ports[1]))


def local_up(settings: Settings) -> None:
    """Start Kafka and MariaDB locally (idempotent)."""
    ensure_programs(("java", "mvn", "mariadbd"))
    resolve_jars(settings)
    other = other_layout(settings)
    if other.running():
        say(f"Stopping the {len(other.nodes)}-node Kafka first (its data stays in "
            f"{other.nodes[0].root.parent}): a KRaft quorum cannot change its size in place...")
        other.stop()
    kafka = LocalKafka.for_settings(settings)
    nodes = f"{len(kafka.nodes)} nodes, " if len(kafka.nodes) > 1 else ""
    if kafka.start():
        say(f"Started Kafka {kafka_version(settings)} ({nodes}{kafka.bootstrap_servers})...")
    else:
        say(f"Kafka already running ({nodes}{kafka.bootstrap_servers}).")
    mariadb = LocalMariaDB.for_settings(settings)
    if not mariadb.start():
        say(f"MariaDB already running on 127.0.0.1:{mariadb.port}.")
    mariadb.ensure_database_user(settings)


def local_down(settings: Settings) -> list[str]:
    """Stop the local services this project started; return their names."""
    stopped = []
    if LocalConnect.for_settings(settings).stop():     # first: it writes its offsets to Kafka
        stopped.append("connect")
    for kafka in (LocalKafka.for_settings(settings), other_layout(settings)):
        if kafka.stop():
            stopped.append("kafka" if len(kafka.nodes) == 1 else f"kafka ({len(kafka.nodes)} nodes)")
    if LocalMariaDB.for_settings(settings).stop():
        stopped.append("mariadb")
    return stopped


def stack_up(settings: Settings, timeout: float = 120) -> list[ServiceStatus]:
    """Start the services of the chosen stack; return once every one can serve the notebooks."""
    if settings.stack == "local":
        local_up(settings)
    elif settings.stack == "docker":
        docker_up(settings)
    elif settings.stream_engine == "flink" and not settings.flink_connector_jar.is_file():
        resolve_jars(settings)        # an external cluster: Flink still runs here, with its connector jar
    wait_kafka_ready(settings, timeout)
    statuses = stack_status(settings)
    down = [s for s in statuses if not s.fine]
    if down:
        raise StackError("Not ready: " + "; ".join(f"{s.name}: {s.hint}" for s in down))
    return statuses


def stack_down(settings: Settings) -> list[str]:
    """Stop what this project started (nothing for the external stack)."""
    if settings.stack == "local":
        return local_down(settings)
    if settings.stack == "docker":
        compose("--profile", "cluster", "--profile", "connect", "down")   # the cluster and Connect too
        return ["docker compose"]
    return []


def docker_up(settings: Settings) -> None:
    """`docker compose up`: the one-broker services, or the three-node cluster (profile `cluster`).

    With three brokers, ksqlDB is started on its own (--no-deps) once the
    cluster is healthy, pointed at the cluster's nodes; the one-broker `kafka`
    service is stopped (its volume keeps its data), and the other way round.
    """
    cluster = ("kafka-1", "kafka-2", "kafka-3")
    env = compose_cluster_env(settings)
    if settings.brokers == 1:
        compose("--profile", "cluster", "stop", *cluster, env=env)
        compose("up", "-d", "--wait", env=env)
        return
    compose("stop", "kafka", env=env)
    compose("--profile", "cluster", "up", "-d", "--wait", *cluster, "mysql", env=env)
    compose("up", "-d", "--wait", "--no-deps", "ksqldb-server", env=env)
