"""Probes of every service, common to all stacks: is it up, which version, is it ready?

The only module of the stack that talks to MySQL and ksqlDB. `require_services`
is what every CLI stage and every notebook's setup cell call first: a service
that is down is reported in one sentence within seconds, never as a wall of
client log lines.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from helpers.core.errors import ServiceUnavailable
from helpers.core.settings import Settings, mask_url, pom_property
from helpers.core.waiting import wait_until
from helpers.infra.compose import compose_image_tag
from helpers.infra.processes import port_answers

if TYPE_CHECKING:
    import pandas as pd

PROBE_TIMEOUT = 3.0
# A busy class server (30 students starting their Flink jobs at once, load average 60 on two cores)
# took longer than PROBE_TIMEOUT to log a client in: measured, 4 of 30 were told "Kafka does not
# answer". A broker whose port takes connections is therefore given this long before it is called down.
BUSY_PROBE_TIMEOUT = 30.0
READY_PROBE = "workbook-ready-probe"   # a group id and transactional id that only probes use
SERVICES = ("kafka", "mysql", "stream-sql")


@dataclass
class ServiceStatus:
    """What `workbook status` reports for one service."""

    name: str
    address: str
    up: bool
    version: str = ""
    hint: str = ""
    url: str = ""
    on_demand: bool = False    # started by the lesson that needs it (Kafka Connect): off is no fault

    @property
    def fine(self) -> bool:
        """True when it answers, or is an on-demand service that is simply off."""
        return self.up or self.on_demand

    def as_dict(self) -> dict:
        """The JSON form: url only for mysql, hint only when down, on_demand only when true."""
        data = asdict(self)
        for key in ("url", "hint", "on_demand"):
            if not data[key]:
                data.pop(key)
        return data


def start_hint(settings: Settings) -> str:
    """How to start the services of this stack."""
    if settings.stack == "external":
        return "start your external services (addresses in .env)"
    return "start the services with `make up` (or `workbook up`)"


# --- Kafka -----------------------------------------------------------------------

def kafka_cluster_id(settings: Settings, timeout: float = PROBE_TIMEOUT) -> str | None:
    """The cluster id when a Kafka broker answers, else None."""
    return probe_kafka(settings, timeout)[0]


def probe_kafka(settings: Settings, timeout: float = PROBE_TIMEOUT) -> tuple[str | None, str]:
    """(cluster id, '') when Kafka answers; (None, why) when not, a refused login said plainly. A broker
    that takes connections but is slow to answer gets a second, longer try (BUSY_PROBE_TIMEOUT)."""
    cluster_id, why = probe_kafka_once(settings, timeout)
    host, _, port = settings.bootstrap_servers.split(",")[0].rpartition(":")
    if cluster_id is None and why.startswith("Kafka does not answer") and port.isdigit() \
            and port_answers(int(port), host.strip("[]") or "127.0.0.1"):
        cluster_id, why = probe_kafka_once(settings, BUSY_PROBE_TIMEOUT)
    return cluster_id, why


def probe_kafka_once(settings: Settings, timeout: float) -> tuple[str | None, str]:
    """One try of probe_kafka."""
    from confluent_kafka import KafkaError

    from helpers.infra.clients import make_admin

    errors: list = []
    # keep a reference to the client: a collected client abandons its futures
    admin = make_admin(settings, {"error_cb": errors.append})
    try:
        return admin.describe_cluster(request_timeout=timeout).result(timeout + 1).cluster_id, ""
    except Exception as exc:  # noqa: BLE001 - any failure means 'not answering'; the reason follows
        errors.append(exc.args[0] if exc.args else exc)
    admin.poll(0.1)                   # serves error_cb: a refused login or certificate is reported there
    codes = {getattr(e, "code", lambda: None)() for e in errors}
    security = settings.kafka_security
    if KafkaError._AUTHENTICATION in codes:
        return None, (f"Kafka at {settings.bootstrap_servers} refuses the login of {security.username!r} "
                      f"({security.mechanism}): check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD in .env.")
    if KafkaError._SSL in codes:
        return None, (f"Kafka at {settings.bootstrap_servers} presents a certificate this client does not "
                      "trust: set KAFKA_SSL_CA_LOCATION to the CA file your instructor or provider gives.")
    return None, f"Kafka does not answer at {settings.bootstrap_servers}: {start_hint(settings)}."


def kafka_version(settings: Settings) -> str:
    """The broker's release: from the jars (local) or the compose image (docker)."""
    if settings.stack == "local":
        return pom_property("kafka.version")
    if settings.stack == "docker":
        return compose_image_tag("apache/kafka")
    return "unknown (external)"


def kafka_not_ready(settings: Settings) -> str:
    """What Kafka cannot serve yet ('' once it serves everything the notebooks use).

    A broker that answers on its port may still lack its group coordinator
    (`__consumer_offsets` is created on first use) or its transaction
    coordinator: notebooks would then fail with NOT_COORDINATOR. Each call
    makes its own clients, gone when it returns. The group coordinator is asked
    by a consumer fetching a committed offset, not by the admin client's
    DescribeGroups: a DescribeGroups that times out while brokers start can make
    librdkafka abort the whole process (confluentinc/librdkafka#4605; seen twice
    here in the three-node test).
    """
    from confluent_kafka import Producer
    from confluent_kafka.admin import NewTopic

    from helpers.infra.clients import client_conf, make_admin

    admin = make_admin(settings)
    probe = settings.prefix + READY_PROBE     # a student may touch only names under their prefix
    checks = {
        "metadata": lambda: admin.describe_cluster(request_timeout=PROBE_TIMEOUT).result(),
        "topic admin": lambda: admin.create_topics([NewTopic(probe, 1)], validate_only=True,
                                                   request_timeout=PROBE_TIMEOUT)[probe].result(),
        "the group coordinator": lambda: ask_group_coordinator(settings, probe),
        "producer ids and transactions": lambda: Producer(client_conf(
            settings, {"transactional.id": probe})).init_transactions(PROBE_TIMEOUT),
    }
    for what, check in checks.items():
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - the reason is reported, the caller retries
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                continue          # the controller answered: the probe topic exists
            return f"{what} ({exc.args[0] if exc.args else exc})"
    return ""


def ask_group_coordinator(settings: Settings, group: str) -> None:
    """Ask the group coordinator of `group` for a committed offset (raises while there is none)."""
    from contextlib import closing

    from confluent_kafka import TopicPartition

    from helpers.infra.clients import make_consumer

    with closing(make_consumer(group, settings)) as consumer:
        consumer.committed([TopicPartition(group, 0)], timeout=PROBE_TIMEOUT)


def wait_kafka_ready(settings: Settings, timeout: float = 120) -> None:
    """Return once Kafka serves metadata, topic admin, groups and producer ids; else raise."""
    seen = {"problem": ""}

    def ready() -> bool:
        seen["problem"] = kafka_not_ready(settings)
        return not seen["problem"]

    wait_until(ready, timeout, f"Kafka at {settings.bootstrap_servers} to be ready", interval=0.5,
               detail=lambda: f"; still not ready: {seen['problem']}")


def status_kafka(settings: Settings) -> ServiceStatus:
    """Probe Kafka."""
    cluster_id, why = probe_kafka(settings)
    up = cluster_id is not None
    return ServiceStatus("kafka", settings.bootstrap_servers, up, kafka_version(settings) if up else "", why)


def status_kafka_nodes(settings: Settings) -> list[ServiceStatus]:
    """One status per Kafka node (kafka-1, kafka-2...): up when it answers itself and lists itself live."""
    if settings.brokers == 1 or settings.stack == "external":
        return [status_kafka(settings)]
    statuses = []
    for number, (port, _) in enumerate(settings.kafka_node_ports, 1):
        address = f"127.0.0.1:{port}"
        up = kafka_node_live(settings, address)
        statuses.append(ServiceStatus(f"kafka-{number}", address, up, kafka_version(settings) if up else "",
                                      "" if up else f"Kafka node {number} does not answer at {address}: "
                                                    f"{start_hint(settings)}."))
    return statuses


def kafka_node_live(settings: Settings, address: str) -> bool:
    """True when the node at `address` answers a metadata request and counts itself among the live brokers."""
    from dataclasses import replace

    from helpers.infra.clients import make_admin
    from helpers.infra.processes import port_answers

    host, port = address.rsplit(":", 1)
    if not port_answers(int(port), host):
        return False
    admin = make_admin(replace(settings, bootstrap_servers=address))   # this node alone
    try:
        brokers = admin.list_topics(timeout=PROBE_TIMEOUT).brokers.values()
    except Exception:  # noqa: BLE001 - no answer means down
        return False
    return any(f"{b.host}:{b.port}" == address for b in brokers)


# --- MySQL -------------------------------------------------------------------------

def mysql_address(settings: Settings) -> str:
    """host:port of the database, from its URL."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    return f"{url.host}:{url.port or 3306}"


def status_mysql(settings: Settings, show_secrets: bool = False) -> ServiceStatus:
    """Probe MySQL/MariaDB with the workbook's own credentials."""
    from helpers.infra.database import open_engine, server_version

    url, address = settings.database_url, mysql_address(settings)
    try:
        with open_engine(settings, connect_timeout=int(PROBE_TIMEOUT)) as engine:
            version = server_version(engine)
        up, hint = True, ""
    except Exception as exc:  # noqa: BLE001 - any failure means "down", said plainly
        version, up = "", False
        code = getattr(getattr(exc, "orig", None), "args", [None])[0]
        if code == 1045:
            from sqlalchemy.engine import make_url

            where = ("the user and password of DATABASE_URL in .env" if settings.explicit_database_url
                     else "MYSQL_USER and MYSQL_PASSWORD in .env, then run `make up`")
            hint = f"MySQL at {address} refuses the login of {make_url(url).username}: check {where}."
        elif code == 1226:          # MAX_USER_CONNECTIONS: the class server's limit per student
            limit = re.search(r"current value: (\d+)", str(exc))
            hint = (f"MySQL at {address} allows you at most {limit[1] if limit else 'so many'} connections "
                    "at once and they are all in use: shut down the notebooks you are not using "
                    "(Kernel, Shut Down Kernel).")
        else:
            hint = f"MySQL does not answer at {address}: {start_hint(settings)}."
    return ServiceStatus("mysql", address, up, version, hint, url if show_secrets else mask_url(url))


# --- stream SQL ----------------------------------------------------------------------

def status_stream_sql(settings: Settings) -> ServiceStatus:
    """Probe the stream-SQL engine: ksqlDB's /info, or whether PyFlink and its Kafka connector are ready."""
    if settings.stream_engine == "ksqldb":
        from helpers.core.errors import KsqlError
        from helpers.infra.ksqldb_client import KsqlClient

        try:
            with KsqlClient(settings.ksqldb_url, timeout=PROBE_TIMEOUT, auth=settings.ksqldb_auth) as client:
                info = client.info()
        except KsqlError as exc:
            if exc.status == 401:
                return ServiceStatus("stream-sql", settings.ksqldb_url, False, "", str(exc))
            return ServiceStatus("stream-sql", settings.ksqldb_url, False, "",
                                 f"ksqlDB does not answer at {settings.ksqldb_url}: {start_hint(settings)}.")
        except Exception:  # noqa: BLE001 - any failure means "down"
            return ServiceStatus("stream-sql", settings.ksqldb_url, False, "",
                                 f"ksqlDB does not answer at {settings.ksqldb_url}: {start_hint(settings)}.")
        return ServiceStatus("stream-sql", settings.ksqldb_url, True, f"ksqlDB {info.get('version', '?')}")
    if settings.flink_gateway:
        return status_flink_gateway(settings)
    from importlib.metadata import PackageNotFoundError, version

    where = "local Flink session per notebook (PyFlink)"
    try:
        flink = version("apache-flink")
    except PackageNotFoundError:
        return ServiceStatus("stream-sql", where, False, "", "PyFlink is not installed: run `make setup`.")
    up = settings.flink_connector_jar.is_file()
    return ServiceStatus("stream-sql", where, up, f"Flink {flink}" if up else "",
                         "" if up else "The Flink Kafka connector jar is missing: run `make up`.")


def status_flink_gateway(settings: Settings) -> ServiceStatus:
    """Probe the class's Flink SQL Gateway (a hub's servers): its /v3/info, and the connector jar its
    sessions add."""
    import json
    import urllib.request

    where = f"the class's Flink SQL Gateway {settings.flink_gateway}"
    try:
        url = f"http://{settings.flink_gateway}/v3/info"
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as answer:
            info = json.load(answer)
    except (OSError, ValueError):
        return ServiceStatus("stream-sql", where, False, "",
                             f"The class's Flink SQL Gateway does not answer at {settings.flink_gateway}: "
                             "ask your instructor (`workbook class up --hub` starts it).")
    if not settings.flink_connector_jar.is_file():
        return ServiceStatus("stream-sql", where, False, "",
                             f"The Flink Kafka connector jar is missing: {settings.flink_connector_jar}.")
    return ServiceStatus("stream-sql", where, True, f"Flink {info.get('version', '?')}")


# --- Kafka Connect (on demand) ------------------------------------------------------------

def status_connect(settings: Settings) -> ServiceStatus:
    """Probe Kafka Connect's REST API: up with its version, or off until notebook 12 starts it."""
    import requests

    if not settings.connect_url:
        return ServiceStatus("connect", "-", False, "",
                             "No Kafka Connect on this stack: set CONNECT_URL to a worker's address.",
                             on_demand=True)
    try:
        info = requests.get(settings.connect_url, timeout=PROBE_TIMEOUT).json()
    except (requests.RequestException, ValueError):
        return ServiceStatus("connect", settings.connect_url, False, "",
                             "Kafka Connect is off: notebook 12 starts it (or `workbook connect up`).",
                             on_demand=True)
    return ServiceStatus("connect", settings.connect_url, True, f"Kafka Connect {info.get('version', '?')}",
                         on_demand=True)


# --- all of them ------------------------------------------------------------------------

PROBES = {"kafka": status_kafka, "mysql": status_mysql, "stream-sql": status_stream_sql,
          "connect": status_connect}


def stack_status(settings: Settings, show_secrets: bool = False) -> list[ServiceStatus]:
    """Status of kafka (one line per node), mysql, stream-sql and connect (on demand)."""
    return [*status_kafka_nodes(settings), status_mysql(settings, show_secrets), status_stream_sql(settings),
            status_connect(settings)]


def require_services(settings: Settings, *names: str) -> None:
    """Raise ServiceUnavailable, in one sentence, for the first of `names` that is down."""
    for name in names or SERVICES:
        status = PROBES[name](settings)
        if not status.up:
            raise ServiceUnavailable(status.hint, service=name, address=status.address)


def status_table(settings: Settings) -> pd.DataFrame:
    """The status of every service the notebooks need, as a small table (00_setup). Kafka Connect,
    started by notebook 12 when it needs it, is left out: `workbook status` shows it."""
    import pandas as pd

    rows = [s.as_dict() for s in stack_status(settings) if not s.on_demand]
    table = pd.DataFrame(rows).drop(columns=["hint"], errors="ignore").set_index("name")
    return table.fillna("")
