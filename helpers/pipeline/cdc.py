"""Change data capture: the rows of `candle_prices` into Kafka by Debezium on Kafka Connect (12_cdc).

Notebook 12 writes these calls itself with `requests`; here are the hardened
versions its checks and the tests use: a connector's configuration for the
stack at hand (`debezium_config`), Connect's REST API with one-sentence errors
(`connect_call`), creating a connector and waiting until its task runs
(`put_connector`), reading a change topic back (`change_log`) and plotting it.
"""
from __future__ import annotations

from typing import Any

import orjson
import pandas as pd
import requests

from helpers.core.errors import InputError, KafkaOperationError, ServiceUnavailable
from helpers.core.settings import Settings
from helpers.core.waiting import wait_until
from helpers.infra.clients import assign_from_start, batches_to_end, make_consumer
from helpers.pipeline.topics import count_messages

CONNECTORS = {"local": "io.debezium.connector.mariadb.MariaDbConnector",      # MariaDB from Debian
              "docker": "io.debezium.connector.mysql.MySqlConnector"}          # the mysql:8.4 image
REQUEST_TIMEOUT_S = 10


def cdc_topic_prefix(settings: Settings) -> str:
    """The first part of every topic Debezium writes: 'cdc', or 'alice.cdc' for student alice."""
    return f"{settings.prefix}cdc"


def cdc_topic(settings: Settings, table: str = "candle_prices") -> str:
    """The topic of one table's change events: <prefix>.<database>.<table>."""
    return f"{cdc_topic_prefix(settings)}.{settings.mysql_database}.{table}"


def connect_sees(settings: Settings) -> tuple[str, str, str, str]:
    """(connector class, MySQL host, MySQL port, Kafka servers) as the Connect worker reaches them.

    The local worker runs beside MariaDB and Kafka on 127.0.0.1; the Docker
    worker is a container that reaches the others by their service names.
    """
    if settings.stack == "docker":
        return CONNECTORS["docker"], "mysql", "3306", "kafka:29092"
    return CONNECTORS["local"], "127.0.0.1", str(settings.mysql_port), settings.bootstrap_servers


def debezium_config(settings: Settings, server_id: int = 5401, **extra: str) -> dict[str, str]:
    """A Debezium connector's configuration streaming `candle_prices` of the workbook database.

    `server_id` is how the connector introduces itself to MySQL as a replica:
    unique among the replicas of one server. The password is not in it:
    `${env:MYSQL_PASSWORD}` is filled in by the worker from its environment.
    `extra` adds or overrides keys.
    """
    connector, host, port, kafka = connect_sees(settings)
    prefix = cdc_topic_prefix(settings)
    return {
        "connector.class": connector,
        "tasks.max": "1",
        "database.hostname": host,
        "database.port": port,
        "database.user": settings.mysql_user,
        "database.password": "${env:MYSQL_PASSWORD}",
        "database.server.id": str(server_id),
        "topic.prefix": prefix,
        "table.include.list": f"{settings.mysql_database}.candle_prices",
        "snapshot.mode": "initial",
        "decimal.handling.mode": "double",
        "schema.history.internal.kafka.bootstrap.servers": kafka,
        "schema.history.internal.kafka.topic": f"{prefix}.schema-history",
        # the brokers create no topic on their own: Connect creates the change topics
        "topic.creation.default.partitions": "3",
        "topic.creation.default.replication.factor": str(min(3, settings.brokers)),
        **extra,
    }


def connect_call(settings: Settings, method: str, path: str, body: dict | None = None) -> Any:
    """One call to Connect's REST API; its JSON answer, or a one-sentence error."""
    if not settings.connect_url:
        raise ServiceUnavailable("This stack has no Kafka Connect: set CONNECT_URL to a worker's address.")
    url = f"{settings.connect_url}{path}"
    try:
        response = requests.request(method, url, json=body, timeout=REQUEST_TIMEOUT_S)
    except requests.RequestException:
        raise ServiceUnavailable(f"Kafka Connect does not answer at {settings.connect_url}: "
                                 "start it with `workbook connect up`.") from None
    if not response.ok:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise InputError(f"Kafka Connect refused {method} {path} ({response.status_code}): "
                         f"{one_line(message)}")
    return response.json() if response.content else None


def one_line(message: str, limit: int = 400) -> str:
    """Connect's message on one line: its list of errors joined by '; ', the pointer to the validate
    endpoint left out, cut at `limit` characters."""
    lines = [line.strip() for line in message.splitlines()
             if line.strip() and not line.startswith("You can also find")]
    text = lines[0] + (" " + "; ".join(lines[1:]) if lines[1:] else "") if lines else "no reason given"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def connector_state(settings: Settings, name: str) -> tuple[str, list[str]]:
    """(connector state, [task states]); ('', []) while the worker has no status for it yet."""
    try:
        status = connect_call(settings, "GET", f"/connectors/{name}/status")
    except InputError as exc:
        if "(404)" in str(exc):
            return "", []
        raise
    return status["connector"]["state"], [task["state"] for task in status["tasks"]]


def put_connector(settings: Settings, name: str, config: dict[str, str], timeout: float = 60) -> None:
    """Create or update connector `name` and wait until it and its task are RUNNING.

    A FAILED task raises at once with the worker's reason (its first line).
    """
    connect_call(settings, "PUT", f"/connectors/{name}/config", config)

    def running() -> bool:
        state, tasks = connector_state(settings, name)
        if "FAILED" in (state, *tasks):
            status = connect_call(settings, "GET", f"/connectors/{name}/status")
            trace = next((t.get("trace", "") for t in status["tasks"] if t["state"] == "FAILED"),
                         status["connector"].get("trace", ""))
            reason = trace.splitlines()[0] if trace else "no reason given"
            raise InputError(f"Connector {name} failed: {reason}")
        return state == "RUNNING" and bool(tasks) and all(t == "RUNNING" for t in tasks)

    wait_until(running, timeout, f"connector {name} to run", interval=0.3)


def delete_connector(settings: Settings, name: str) -> bool:
    """Remove a connector (its offsets stay in Connect's offsets topic); False when there was none."""
    try:
        connect_call(settings, "DELETE", f"/connectors/{name}")
    except InputError as exc:
        if "(404)" in str(exc):
            return False
        raise
    return True


OPS = {"r": "read (snapshot)", "c": "create", "u": "update", "d": "delete", "tombstone": "tombstone"}


def change_log(settings: Settings, topic: str) -> pd.DataFrame:
    """Every record of a change topic, read to its end, one row each: partition, offset, kafka_ms
    (the record's timestamp: when Debezium read the change, not when Connect wrote it; a paused
    connector's records keep their earlier time), id (the key), op ('r', 'c', 'u', 'd', or
    'tombstone' for the empty record after a delete), before and after (the rows, or None).

    No topic yet (the connector creates it with its first record) reads as no record.
    """
    consumer = make_consumer(settings.group("cdc-reader"), settings)
    rows = []
    try:
        if topic in consumer.list_topics(timeout=10).topics and assign_from_start(consumer, [topic]):
            for batch in batches_to_end(consumer):
                for msg in batch:
                    key, value = orjson.loads(msg.key()), orjson.loads(msg.value()) if msg.value() else {}
                    rows.append((msg.partition(), msg.offset(), msg.timestamp()[1], key.get("id"),
                                 value.get("op", "tombstone"), value.get("before"), value.get("after")))
    finally:
        consumer.close()
    columns = ["partition", "offset", "kafka_ms", "id", "op", "before", "after"]
    return pd.DataFrame(rows, columns=columns).sort_values(["partition", "offset"], ignore_index=True)


def wait_for_changes(settings: Settings, topic: str, count: int, timeout: float = 60) -> pd.DataFrame:
    """The change log of `topic` once it holds at least `count` records; WaitTimeout after `timeout` s."""
    held = [0]

    def enough() -> bool:          # counted from the partitions' offsets: cheap, unlike reading
        try:
            held[0] = count_messages(topic, settings)
        except KafkaOperationError:            # no topic yet: the connector creates it
            return False
        return held[0] >= count

    wait_until(enough, timeout, f"{count:,} records in {topic}", interval=0.3,
               detail=lambda: f" (it holds {held[0]:,})")
    return change_log(settings, topic)


def plot_paused(samples: pd.DataFrame, paused: tuple[float, float], *, ax=None):
    """Changes committed in MySQL and records in the change topic over time (`samples`: seconds,
    committed, in Kafka), the time the connector was paused shaded."""
    from helpers.core.plots import figure_and_axes

    fig, ax = figure_and_axes(ax, figsize=(8, 4.5))
    ax.axvspan(*paused, color="tab:orange", alpha=0.15, label="connector paused")
    ax.step(samples["seconds"], samples["committed"], where="post", color="tab:grey", lw=2,
            label="updates committed in MySQL")
    ax.step(samples["seconds"], samples["in Kafka"], where="post", color="tab:blue", lw=2, ls="--",
            label="their records in Kafka")
    ax.set(title="Paused, the connector falls behind; resumed, it catches up", xlabel="seconds",
           ylabel="updates")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left")
    return fig, ax
