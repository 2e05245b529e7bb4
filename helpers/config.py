"""Configuration: the one module that reads the environment and `.env` (00_setup).

Every choice the workbook makes lives in `Settings`: which stack and stream-SQL
engine, ports and addresses, paths, the connector jar, the student namespace.
Every address has a localhost default; every value can be overridden by an
environment variable, which wins over the project's `.env` file. Secrets are
kept out of `repr()` and are masked whenever a URL is shown.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from urllib.parse import quote_plus

from .errors import ConfigError, WorkbookError
from .schemas import TopicNames

PROJECT_ROOT = Path(os.environ.get("WORKBOOK_HOME", Path(__file__).resolve().parent.parent))
POM = PROJECT_ROOT / "stack" / "pom.xml"
STACKS = ("docker", "local", "external")
ENGINES = ("ksqldb", "flink")
BROKER_COUNTS = (1, 3)   # one broker, or a three-node cluster (a quorum of three voters)
MASK = "***"
NAMESPACE = re.compile(r"[a-z][a-z0-9_-]{0,23}")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

__all__ = ["ConfigError", "KafkaSecurity", "PROJECT_ROOT", "Settings", "load_settings", "mask_url",
           "pom_property", "save_setting", "set_brokers"]


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a `.env` file of KEY=VALUE lines (comments and blanks ignored)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"{path.name} line {number} is not KEY=VALUE: fix or remove it.")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def save_setting(name: str, value: str, path: Path | None = None) -> None:
    """Write NAME=value into `.env`: replace the line that sets it, or append one."""
    path = path or PROJECT_ROOT / ".env"
    lines = path.read_text().splitlines() if path.is_file() else []
    pattern = re.compile(rf"^\s*(export\s+)?{re.escape(name)}\s*=")
    kept = [line for line in lines if not pattern.match(line)]
    if len(kept) == len(lines):
        kept.append(f"{name}={value}")
    else:   # keep the setting where it was
        index = next(i for i, line in enumerate(lines) if pattern.match(line))
        kept.insert(index, f"{name}={value}")
    path.write_text("\n".join(kept) + "\n")


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: ours plus `extra` (Flink's JVM, apt-get)."""
    return {**os.environ, **extra}


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
    node = ET.parse(POM).getroot().find(f"m:properties/m:{name}", ns)
    value = (node.text or "").strip() if node is not None else ""
    if not value:
        raise ConfigError(f"stack/pom.xml has no <{name}> property.")
    return value


def docker_engine_answers(timeout: float = 5.0) -> bool:
    """True when a Docker engine (not just the CLI) and its compose plugin respond."""
    if shutil.which("docker") is None:
        return False
    try:
        for args in (["docker", "info"], ["docker", "compose", "version"]):
            subprocess.run(args, capture_output=True, timeout=timeout, check=True)
    except (subprocess.SubprocessError, OSError):
        return False
    return True


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


def parse_kafka_security(get) -> KafkaSecurity:
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


def kafka_security_from_env() -> KafkaSecurity:
    """KafkaSecurity from this process's environment alone (the Flink job process, set by its parent)."""
    return parse_kafka_security(os.environ.get)


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
    smtp_host: str = ""            # '' = no SMTP server: notebook 08 starts a local sink
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = "workbook@localhost"
    smtp_to: str = "student@localhost"

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


def choose_engine(stack: str, requested: str, ksqldb_url_given: bool) -> str:
    """ksqlDB when asked, with Docker, or with an external KSQLDB_URL; Flink SQL otherwise."""
    if requested:
        return requested
    if stack == "docker" or (stack == "external" and ksqldb_url_given):
        return "ksqldb"
    return "flink"


def load_settings(env: dict[str, str] | None = None, dotenv: Path | None = None) -> Settings:
    """Build Settings from `.env` overlaid with the environment (environment wins)."""
    values = read_dotenv(dotenv or PROJECT_ROOT / ".env")
    values.update(os.environ if env is None else env)
    get = values.get

    stack = parse_choice("WORKBOOK_STACK", get("WORKBOOK_STACK", ""), STACKS)
    if not stack:
        stack = "docker" if docker_engine_answers() else "local"
    engine = choose_engine(stack, parse_choice("WORKBOOK_STREAM_ENGINE",
                                               get("WORKBOOK_STREAM_ENGINE", ""), ENGINES),
                           bool(get("KSQLDB_URL")))
    if stack == "external":
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"):
            if not get(name):
                raise ConfigError(f"WORKBOOK_STACK=external needs {name} in the environment or .env.")

    namespace = check_namespace(get("WORKBOOK_STUDENT", "").strip())
    WorkbookError.show_traceback = get("WORKBOOK_DEBUG", "") not in ("", "0")
    brokers = parse_brokers(get("WORKBOOK_BROKERS", "1"))
    kafka_port = parse_port("KAFKA_PORT", get("KAFKA_PORT", "9092"))
    controller_port = parse_port("KAFKA_CONTROLLER_PORT", get("KAFKA_CONTROLLER_PORT", "9093"))
    nodes = node_ports(kafka_port, controller_port, brokers) if stack != "external" else []
    ksqldb_port = parse_port("KSQLDB_PORT", get("KSQLDB_PORT", "8088"))
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
    )


def set_brokers(count: int, dotenv: Path | None = None) -> Settings:
    """Record WORKBOOK_BROKERS=count in `.env`, so that status, down and the notebooks agree; reload."""
    parse_brokers(str(count))
    given = os.environ.get("WORKBOOK_BROKERS", "").strip()
    if given and given != str(count):
        raise ConfigError(f"WORKBOOK_BROKERS={given} is set in the environment, which wins over .env: "
                          f"unset it, or set it to {count}.")
    save_setting("WORKBOOK_BROKERS", str(count), dotenv)
    return load_settings(dotenv=dotenv)
