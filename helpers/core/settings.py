"""Settings: every choice the workbook makes, in one frozen object (00_setup).

`Settings` holds which stack and stream-SQL engine, ports and addresses, paths,
the connector jar, the student namespace. `settings_from` builds it from a
mapping of variables (the environment overlaid on `.env`, read by
`helpers.infra.environment.load_settings`) and is pure: it reads no file but
stack/pom.xml and starts no process; whether a Docker engine answers is asked
of the caller. Every address has a localhost default. Secrets are kept out of
`repr()` and masked whenever they could be shown (`mask_secrets`, `mask_url`).
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from urllib.parse import quote_plus, urlsplit

from helpers.core.errors import ConfigError
from helpers.core.schemas import TopicNames


def find_project_root(home: str | None, package_dir: Path, cwd: Path) -> Path:
    """The workbook's folder (notebooks/, ksql/, stack/pom.xml, data/): WORKBOOK_HOME when set, else
    the checkout this package lies in, else the nearest folder above `cwd` holding stack/pom.xml
    (an installed wheel run from the workbook's folder); `cwd` itself when none does."""
    if home:
        return Path(home).expanduser().resolve()
    for folder in (package_dir.parent, cwd, *cwd.parents):
        if (folder / "stack" / "pom.xml").is_file():
            return folder
    return cwd


PROJECT_ROOT = find_project_root(os.environ.get("WORKBOOK_HOME"), Path(__file__).resolve().parents[1],
                                 Path.cwd())
POM = PROJECT_ROOT / "stack" / "pom.xml"
STACKS = ("docker", "local", "external")
ENGINES = ("ksqldb", "flink")
BROKER_COUNTS = (1, 3)   # one broker, or a three-node cluster (a quorum of three voters)
MASK = "***"
NAMESPACE = re.compile(r"[a-z][a-z0-9_-]{0,23}")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

__all__ = ["ConfigError", "KafkaSecurity", "PROJECT_ROOT", "Settings", "mask_secrets", "mask_url",
           "pom_property", "settings_from"]


def parse_port(name: str, raw: str) -> int:
    """Return `raw` as a TCP port, or raise a ConfigError naming the variable."""
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name} must be a port number between 1 and 65535, got {raw!r}.")
    return port


def parse_choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    """Return `raw` lower-cased if it is one of `choices` ('' stays ''), else raise ConfigError."""
    value = raw.strip().lower()
    if value and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}.")
    return value


def parse_brokers(raw: str) -> int:
    """WORKBOOK_BROKERS as a number of Kafka nodes: 1 or 3, else a ConfigError."""
    value = raw.strip()
    if value not in {str(n) for n in BROKER_COUNTS}:
        raise ConfigError(f"WORKBOOK_BROKERS must be 1 or 3 (a quorum of three voters), got {raw!r}.")
    return int(value)


def node_ports(kafka_port: int, controller_port: int, brokers: int) -> list[tuple[int, int]]:
    """(client, controller) ports of each node: node i adds 2·(i−1) to both base ports."""
    ports = [(kafka_port + 2 * i, controller_port + 2 * i) for i in range(brokers)]
    flat = [port for pair in ports for port in pair]
    if max(flat) > 65535 or len(set(flat)) != len(flat):
        raise ConfigError(f"{brokers} Kafka nodes need the ports KAFKA_PORT + 0, 2, 4 and "
                          f"KAFKA_CONTROLLER_PORT + 0, 2, 4, all different and below 65536; got "
                          f"KAFKA_PORT={kafka_port} and KAFKA_CONTROLLER_PORT={controller_port}: "
                          "choose two ports that differ by an odd number, e.g. 9092 and 9093.")
    return ports


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """`text` with every non-empty secret in it replaced by ***: the one way the workbook hides one."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):   # longest first
        text = text.replace(secret, MASK)
    return text


def mask_url(url: str) -> str:
    """Hide the password of a URL such as mysql+pymysql://user:secret@host/db."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:          # not a database URL (http://...): no password to hide
        return url


@cache
def pom_property(name: str) -> str:
    """A <properties> value of stack/pom.xml, the single source of the local stack's versions."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    if not POM.is_file():
        raise ConfigError(f"{POM} is missing: run the workbook from its folder, or set WORKBOOK_HOME "
                          "to the folder that holds notebooks/ and stack/pom.xml.")
    node = ET.parse(POM).getroot().find(f"m:properties/m:{name}", ns)
    value = (node.text or "").strip() if node is not None else ""
    if not value:
        raise ConfigError(f"stack/pom.xml has no <{name}> property.")
    return value


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client proves who it is and checks the broker (PLAINTEXT on a laptop).

    From KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME,
    KAFKA_SASL_PASSWORD and KAFKA_SSL_CA_LOCATION; the password never shows in
    `repr()`. `clients.client_conf` turns it into librdkafka's keys,
    `flinksql` into the Java client's.
    """

    protocol: str = "PLAINTEXT"
    mechanism: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    ca_location: str = ""          # PEM file of the CA that signed the broker ('' = the system's)

    @property
    def sasl(self) -> bool:
        """True when clients log in (SASL_PLAINTEXT, SASL_SSL)."""
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        """True when the connection is encrypted (SSL, SASL_SSL)."""
        return self.protocol.endswith("SSL")

    def as_env(self) -> dict[str, str]:
        """The same settings as environment variables, for a child process (never its command line)."""
        return {"KAFKA_SECURITY_PROTOCOL": self.protocol, "KAFKA_SASL_MECHANISM": self.mechanism,
                "KAFKA_SASL_USERNAME": self.username, "KAFKA_SASL_PASSWORD": self.password,
                "KAFKA_SSL_CA_LOCATION": self.ca_location}

    def describe(self) -> str:
        """One line for status output: protocol, mechanism and user, never the password."""
        if not self.sasl:
            return self.protocol
        return f"{self.protocol} {self.mechanism} as {self.username}"


def parse_kafka_security(get: Callable[..., str]) -> KafkaSecurity:
    """KafkaSecurity from the KAFKA_SECURITY_* variables, or a ConfigError naming the one to fix."""
    protocol = get("KAFKA_SECURITY_PROTOCOL", "").strip().upper() or "PLAINTEXT"
    if protocol not in SECURITY_PROTOCOLS:
        raise ConfigError(f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                          f"got {protocol!r}.")
    mechanism = get("KAFKA_SASL_MECHANISM", "").strip().upper()
    username, password = get("KAFKA_SASL_USERNAME", "").strip(), get("KAFKA_SASL_PASSWORD", "")
    if protocol.startswith("SASL_"):
        if mechanism not in SASL_MECHANISMS:
            raise ConfigError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_MECHANISM, one of "
                              f"{', '.join(SASL_MECHANISMS)}, got {mechanism or 'nothing'!r}.")
        if not username or not password:
            raise ConfigError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and "
                              "KAFKA_SASL_PASSWORD (your user name and password on the cluster).")
    ca = get("KAFKA_SSL_CA_LOCATION", "").strip()
    if ca:
        path = Path(ca).expanduser()
        path = path if path.is_absolute() else PROJECT_ROOT / path
        if not path.is_file():
            raise ConfigError(f"KAFKA_SSL_CA_LOCATION names no file: {path} (the CA certificate, "
                              "a PEM file your instructor or cluster provider gives you).")
        ca = str(path)
    return KafkaSecurity(protocol, mechanism if protocol.startswith("SASL_") else "",
                         username, password, ca)


@dataclass(frozen=True)
class Settings:
    """Where the services are, how to reach them, and every choice the workbook makes."""

    stack: str                     # docker | local | external
    stream_engine: str             # ksqldb | flink
    kafka_port: int
    kafka_controller_port: int
    mysql_port: int
    ksqldb_port: int
    mysql_user: str
    mysql_database: str
    bootstrap_servers: str
    ksqldb_url: str
    state_dir: Path
    flink_connector_jar: Path
    brokers: int = 1               # Kafka nodes the docker/local stack runs: 1, or 3 (WORKBOOK_BROKERS)
    namespace: str = ""            # a student's prefix on a shared cluster ('' on a laptop)
    kafka_security: KafkaSecurity = KafkaSecurity()
    ksqldb_username: str = ""      # ksqlDB's HTTP basic auth ('' = none)
    ksqldb_password: str = field(default="", repr=False)
    progress: bool = True          # progress bars (off in CI logs: WORKBOOK_PROGRESS=0)
    massive_base_url: str = ""     # '' = the API's own address
    mysql_password: str = field(default="", repr=False)
    explicit_database_url: str = field(default="", repr=False)
    massive_api_key: str = field(default="", repr=False)
    smtp_host: str = ""            # '' = no SMTP server: notebook 09 starts a local sink
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = "workbook@localhost"
    smtp_to: str = "student@localhost"
    connect_url: str = "http://127.0.0.1:8083"   # Kafka Connect's REST API (notebook 12); '' = none
    flink_cluster: str = ""        # host:port of a shared Flink session cluster's REST API; '' = local Flink
    flink_gateway: str = ""        # host:port of that cluster's SQL Gateway; '' = SQL planned by a local JVM

    @property
    def connect_port(self) -> int:
        """The port of Kafka Connect's REST API (the local stack starts its worker there)."""
        return urlsplit(self.connect_url).port or 8083

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the workbook database (contains the password)."""
        if self.explicit_database_url:
            return self.explicit_database_url
        if not self.mysql_password:
            raise ConfigError(
                "MYSQL_PASSWORD is not set: run `cp .env.example .env` "
                "(make does this for you) or export MYSQL_PASSWORD."
            )
        password = quote_plus(self.mysql_password)
        return (f"mysql+pymysql://{self.mysql_user}:{password}"
                f"@127.0.0.1:{self.mysql_port}/{self.mysql_database}")

    @property
    def masked_database_url(self) -> str:
        """The database URL with its password replaced by ***."""
        return mask_url(self.database_url)

    @property
    def kafka_node_ports(self) -> list[tuple[int, int]]:
        """(client, controller) port of each Kafka node of the docker/local stack."""
        return node_ports(self.kafka_port, self.kafka_controller_port, self.brokers)

    @property
    def prefix(self) -> str:
        """What the namespace puts in front of every topic, group and id: '' or 'alice.'."""
        return f"{self.namespace}." if self.namespace else ""

    @property
    def topics(self) -> TopicNames:
        """The names of the pipeline's topics in this namespace."""
        return TopicNames.with_prefix(self.prefix)

    @property
    def ksqldb_auth(self) -> tuple[str, str] | None:
        """(user, password) for ksqlDB's basic auth, or None."""
        return (self.ksqldb_username, self.ksqldb_password) if self.ksqldb_username else None

    def group(self, purpose: str) -> str:
        """The consumer-group id of one purpose, e.g. 'workbook-router' (one group per purpose)."""
        return f"{self.prefix}workbook-{purpose}"

    def with_namespace(self, namespace: str) -> Settings:
        """The same settings in another namespace (tests isolate themselves this way)."""
        return replace(self, namespace=check_namespace(namespace))

    def within(self, name: str) -> Settings:
        """A namespace inside this one ('minute' -> 'minute', or 'alice.minute' for student alice)."""
        check_namespace(name)
        return replace(self, namespace=f"{self.namespace}.{name}" if self.namespace else name)


def check_namespace(raw: str) -> str:
    """A namespace is '' or a short lower-case name: letters, digits, _ and -."""
    if raw and not NAMESPACE.fullmatch(raw):
        raise ConfigError("WORKBOOK_STUDENT must be a lower-case name of at most 24 letters, "
                          f"digits, _ or - starting with a letter, got {raw!r}.")
    return raw


def check_flink_cluster(raw: str, name: str = "FLINK_CLUSTER",
                        what: str = "a Flink cluster's REST API") -> str:
    """FLINK_CLUSTER is '' (Flink runs locally) or host:port of a session cluster's REST API (and
    FLINK_GATEWAY of its SQL Gateway)."""
    if raw and not re.fullmatch(r"[A-Za-z0-9.\-]{1,253}:\d{1,5}", raw):
        raise ConfigError(f"{name} must be host:port of {what}, got {raw!r}.")
    return raw


def check_flink_gateway(raw: str, cluster: str) -> str:
    """FLINK_GATEWAY is '' or host:port of a SQL Gateway, whose jobs run on FLINK_CLUSTER: both or
    neither (`class up --hub` writes both into each student's .env)."""
    check_flink_cluster(raw, "FLINK_GATEWAY", "a Flink SQL Gateway's REST API")
    if bool(raw) != bool(cluster):
        raise ConfigError("FLINK_CLUSTER and FLINK_GATEWAY go together: the class's SQL Gateway plans "
                          "the SQL, its cluster runs the jobs; set both or neither.")
    return raw


def choose_engine(stack: str, requested: str, ksqldb_url_given: bool) -> str:
    """ksqlDB when asked, with Docker, or with an external KSQLDB_URL; Flink SQL otherwise."""
    if requested:
        return requested
    if stack == "docker" or (stack == "external" and ksqldb_url_given):
        return "ksqldb"
    return "flink"


def settings_from(values: Mapping[str, str], docker_answers: Callable[[], bool]) -> Settings:
    """Build Settings from variables (the environment overlaid on `.env`), or raise a ConfigError.

    `docker_answers()` is called only when WORKBOOK_STACK is not set: it says
    whether a Docker engine runs here (then the stack is docker, else local).
    """
    get = values.get
    stack = parse_choice("WORKBOOK_STACK", get("WORKBOOK_STACK", ""), STACKS)
    if not stack:
        stack = "docker" if docker_answers() else "local"
    engine = choose_engine(stack, parse_choice("WORKBOOK_STREAM_ENGINE",
                                               get("WORKBOOK_STREAM_ENGINE", ""), ENGINES),
                           bool(get("KSQLDB_URL")))
    if stack == "external":
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"):
            if not get(name):
                raise ConfigError(f"WORKBOOK_STACK=external needs {name} in the environment or .env.")

    namespace = check_namespace(get("WORKBOOK_STUDENT", "").strip())
    brokers = parse_brokers(get("WORKBOOK_BROKERS", "1"))
    kafka_port = parse_port("KAFKA_PORT", get("KAFKA_PORT", "9092"))
    controller_port = parse_port("KAFKA_CONTROLLER_PORT", get("KAFKA_CONTROLLER_PORT", "9093"))
    nodes = node_ports(kafka_port, controller_port, brokers) if stack != "external" else []
    ksqldb_port = parse_port("KSQLDB_PORT", get("KSQLDB_PORT", "8088"))
    connect_port = parse_port("CONNECT_PORT", get("CONNECT_PORT", "8083"))
    state_dir = Path(get("WORKBOOK_STATE_DIR") or PROJECT_ROOT / ".stack")
    jar = f"flink-sql-connector-kafka-{pom_property('flink.kafka.connector.version')}.jar"
    database = get("MYSQL_DATABASE") or "workbook"
    database += f"_{namespace.replace('-', '_')}" if namespace else ""     # each student their own
    return Settings(
        stack=stack,
        stream_engine=engine,
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        mysql_port=parse_port("MYSQL_PORT", get("MYSQL_PORT", "3306")),
        ksqldb_port=ksqldb_port,
        mysql_user=get("MYSQL_USER", "workbook"),
        mysql_password=get("MYSQL_PASSWORD", ""),
        mysql_database=database,
        bootstrap_servers=get("KAFKA_BOOTSTRAP_SERVERS") or ",".join(f"127.0.0.1:{p}" for p, _ in nodes),
        ksqldb_url=get("KSQLDB_URL") or f"http://127.0.0.1:{ksqldb_port}",
        state_dir=state_dir,
        flink_connector_jar=Path(get("FLINK_CONNECTOR_JAR") or state_dir / "libs" / "flink" / jar),
        brokers=brokers,
        namespace=namespace,
        kafka_security=parse_kafka_security(get),
        ksqldb_username=get("KSQLDB_USERNAME", ""),
        ksqldb_password=get("KSQLDB_PASSWORD", ""),
        progress=get("WORKBOOK_PROGRESS", "1") != "0",
        massive_base_url=get("MASSIVE_BASE_URL", ""),
        explicit_database_url=get("DATABASE_URL", ""),
        massive_api_key=get("MASSIVE_API_KEY") or get("POLYGON_API_KEY", ""),
        smtp_host=get("SMTP_HOST", ""),
        smtp_port=parse_port("SMTP_PORT", get("SMTP_PORT", "587")),
        smtp_user=get("SMTP_USER", ""),
        smtp_password=get("SMTP_PASSWORD", ""),
        smtp_from=get("SMTP_FROM") or "workbook@localhost",
        smtp_to=get("SMTP_TO") or "student@localhost",
        # an external stack (a class server) has Kafka Connect only where CONNECT_URL says
        connect_url=get("CONNECT_URL") or ("" if stack == "external" else f"http://127.0.0.1:{connect_port}"),
        flink_cluster=check_flink_cluster(get("FLINK_CLUSTER", "").strip()),
        flink_gateway=check_flink_gateway(get("FLINK_GATEWAY", "").strip(), get("FLINK_CLUSTER", "").strip()),
    )
