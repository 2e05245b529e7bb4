"""The services behind one interface: up, down, status (00_setup).

Three stacks, chosen in `helpers.config` (WORKBOOK_STACK):
- docker: `docker compose` with the repository's docker-compose.yml (`compose`);
- local: a real Kafka cluster from Maven Central jars (`kafka`) and MariaDB from
  Debian (`mariadb`), background processes (`processes`) with state under `.stack/`,
  their programs installed with apt when missing (`prereqs`);
- external: services somebody else runs, reached through the environment.
`status` probes them all; `up` returns only once Kafka can serve everything
the notebooks use.
"""
from __future__ import annotations

from ..config import Settings
from ..errors import StackError
from .compose import compose
from .kafka import LocalKafka, resolve_jars
from .mariadb import LocalMariaDB
from .prereqs import ensure_programs, say
from .status import (
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


def local_up(settings: Settings) -> None:
    """Start Kafka and MariaDB locally (idempotent)."""
    ensure_programs(("java", "mvn", "mariadbd"))
    resolve_jars(settings)
    kafka = LocalKafka.for_settings(settings)
    if kafka.start():
        say(f"Started Kafka {kafka_version(settings)} on {kafka.bootstrap_servers}...")
    else:
        say(f"Kafka already running on {kafka.bootstrap_servers}.")
    mariadb = LocalMariaDB.for_settings(settings)
    if not mariadb.start():
        say(f"MariaDB already running on 127.0.0.1:{mariadb.port}.")
    mariadb.ensure_database_user(settings)


def local_down(settings: Settings) -> list[str]:
    """Stop the local services this project started; return their names."""
    stopped = []
    if LocalKafka.for_settings(settings).stop():
        stopped.append("kafka")
    if LocalMariaDB.for_settings(settings).stop():
        stopped.append("mariadb")
    return stopped


def stack_up(settings: Settings, timeout: float = 120) -> list[ServiceStatus]:
    """Start the services of the chosen stack; return once every one can serve the notebooks."""
    if settings.stack == "local":
        local_up(settings)
    elif settings.stack == "docker":
        compose("up", "-d", "--wait")
    elif settings.stream_engine == "flink" and not settings.flink_connector_jar.is_file():
        resolve_jars(settings)        # an external cluster: Flink still runs here, with its connector jar
    wait_kafka_ready(settings, timeout)
    statuses = stack_status(settings)
    down = [s for s in statuses if not s.up]
    if down:
        raise StackError("Not ready: " + "; ".join(f"{s.name}: {s.hint}" for s in down))
    return statuses


def stack_down(settings: Settings) -> list[str]:
    """Stop what this project started (nothing for the external stack)."""
    if settings.stack == "local":
        return local_down(settings)
    if settings.stack == "docker":
        compose("down")
        return ["docker compose"]
    return []
