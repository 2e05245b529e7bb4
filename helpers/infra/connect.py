"""Kafka Connect without Docker: one distributed worker from Maven Central jars (notebook 12).

The worker keeps its state in three Kafka topics (connector configs, source
offsets, task status), so it can be stopped, started again or replaced and
carry on where it was. It runs only when a lesson asks for it (`ensure_connect`,
`workbook connect up`): about 700 MB of memory that the other notebooks do not
need. The Debezium connector for MariaDB is a plugin in a folder of its own
(`plugin.path`), isolated from the worker's classes. Passwords never enter the
connector's configuration: it names `${env:MYSQL_PASSWORD}`, and the worker,
which has that variable in its environment, fills it in.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import requests

from helpers.core.errors import ServiceUnavailable, StackError
from helpers.core.settings import PROJECT_ROOT, Settings
from helpers.core.waiting import wait_until
from helpers.infra.environment import child_env
from helpers.infra.mariadb import LocalMariaDB
from helpers.infra.prereqs import ensure_programs, say
from helpers.infra.processes import (
    check_port_free,
    log_tail,
    run_command,
    running_process,
    start_detached,
    stop_process,
)

CONNECT_POMS = (PROJECT_ROOT / "stack" / "connect" / "pom.xml",
                PROJECT_ROOT / "stack" / "connect" / "debezium.pom.xml")
HEAP_MB = 384
START_TIMEOUT_S = 120          # about 9 s on two cores
MAVEN_TIMEOUT_S = 900
MARIADB_CONNECTOR = "io.debezium.connector.mariadb.MariaDbConnector"


@dataclass(frozen=True)
class LocalConnect:
    """Where the local worker keeps its jars, plugins, configuration, log and pid."""

    root: Path
    libs: Path
    plugins: Path
    port: int

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalConnect:
        """The workbook's worker (REST API on CONNECT_PORT)."""
        libs = settings.state_dir / "libs"
        return cls(settings.state_dir / "connect", libs / "connect", libs / "connect-plugins",
                   settings.connect_port)

    @property
    def log(self) -> Path:
        """The worker's log file."""
        return self.root / "connect.log"

    @property
    def pid_file(self) -> Path:
        """Where the running JVM's pid is recorded."""
        return self.root / "connect.pid"

    def running(self) -> bool:
        """True when our worker's JVM runs."""
        return running_process(self.pid_file) is not None

    def start(self, settings: Settings) -> bool:
        """Start the worker unless it runs; True when it was started now. Returns once its API answers."""
        if self.running():
            return False
        check_port_free(self.port, "Kafka Connect", "CONNECT_PORT")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "worker.properties").write_text(worker_properties(settings, self.plugins))
        (self.root / "log4j2.properties").write_text(log4j(self.log))
        say(f"Starting Kafka Connect on 127.0.0.1:{self.port}...")
        env = child_env(MYSQL_PASSWORD=settings.mysql_password)
        start_detached(["java", f"-Xms{HEAP_MB}m", f"-Xmx{HEAP_MB}m", "-XX:+UseG1GC",
                        "-Djava.awt.headless=true",
                        f"-Dlog4j2.configurationFile={self.root / 'log4j2.properties'}",
                        "-cp", str(self.libs / "*"), "org.apache.kafka.connect.cli.ConnectDistributed",
                        str(self.root / "worker.properties")],
                       self.root / "stdout.log", self.pid_file, env=env)
        wait_until(lambda: self.has_plugin(settings) or self.exited(), START_TIMEOUT_S,
                   f"Kafka Connect to answer on port {self.port}", interval=0.5,
                   detail=lambda: log_tail(self.log))
        if not self.running():
            raise StackError(f"Kafka Connect stopped while starting{log_tail(self.log)}")
        return True

    def exited(self) -> bool:
        """True when the worker's JVM is gone (it failed to start)."""
        return not self.running()

    def has_plugin(self, settings: Settings) -> bool:
        """True when the worker answers and lists the Debezium connector among its plugins."""
        try:
            plugins = requests.get(f"{settings.connect_url}/connector-plugins", timeout=2).json()
        except (requests.RequestException, ValueError):
            return False
        return any(p.get("class") == MARIADB_CONNECTOR for p in plugins)

    def stop(self) -> int | None:
        """Stop the worker; return its pid (None when it was not running)."""
        return stop_process(self.pid_file)


def worker_properties(settings: Settings, plugins: Path) -> str:
    """connect-distributed.properties of the local worker: state in Kafka, JSON without schemas."""
    replication = min(3, settings.brokers)
    group = settings.group("connect")
    return "\n".join([
        f"bootstrap.servers={settings.bootstrap_servers}",
        f"group.id={group}",
        # the worker's own state, in topics it creates: connector configs, source offsets, status
        f"config.storage.topic={group}-configs",
        f"offset.storage.topic={group}-offsets",
        f"status.storage.topic={group}-status",
        f"config.storage.replication.factor={replication}",
        f"offset.storage.replication.factor={replication}",
        f"status.storage.replication.factor={replication}",
        # records as plain JSON: the change event itself, without a schema beside every record
        "key.converter=org.apache.kafka.connect.json.JsonConverter",
        "value.converter=org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable=false",
        "value.converter.schemas.enable=false",
        "offset.flush.interval.ms=1000",
        f"listeners=http://127.0.0.1:{settings.connect_port}",
        f"plugin.path={plugins}",
        # `${env:MYSQL_PASSWORD}` in a connector's config is read from the worker's environment
        "config.providers=env",
        "config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider",
        "",
    ])


def log4j(log: Path) -> str:
    """log4j2 properties: the worker's messages to its log file, nothing to the terminal."""
    return "\n".join([
        "rootLogger.level=INFO",
        "rootLogger.appenderRef.file.ref=file",
        "appender.file.type=File",
        "appender.file.name=file",
        f"appender.file.fileName={log}",
        "appender.file.layout.type=PatternLayout",
        "appender.file.layout.pattern=[%d] %p %m (%c)%n",
        "logger.reflections.name=org.reflections",
        "logger.reflections.level=ERROR",
        "logger.rest.name=org.apache.kafka.connect.runtime.rest.RestServer",   # a line per request
        "logger.rest.level=WARN",
        "",
    ])


def resolve_connect_jars(settings: Settings) -> None:
    """Fetch the worker's and Debezium's jars with Maven unless stack/connect/*.xml are unchanged."""
    libs = settings.state_dir / "libs"
    stamp = libs / "connect.sha256"
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in CONNECT_POMS)).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest and any((libs / "connect").glob("connect-runtime-*")):
        return
    ensure_programs(("mvn",))
    say("Resolving Kafka Connect and Debezium jars from Maven Central (first time only, about 50 MB)...")
    for folder in ("connect", "connect-plugins"):
        shutil.rmtree(libs / folder, ignore_errors=True)
    for pom, execution in zip(CONNECT_POMS, ("connect", "debezium"), strict=True):
        run_command(["mvn", "-q", "-B", "-f", str(pom), f"-Dlibs.dir={libs}",
                     f"dependency:copy-dependencies@{execution}"],
                    timeout=MAVEN_TIMEOUT_S, what=f"mvn -f {pom.relative_to(PROJECT_ROOT)}")
    stamp.write_text(digest)


def connect_memory_mb(settings: Settings) -> float | None:
    """Resident memory of the local worker's JVM in MB, or None when it does not run here."""
    proc = running_process(LocalConnect.for_settings(settings).pid_file)
    return proc.memory_info().rss / 2**20 if proc is not None else None


def stop_connect(settings: Settings) -> bool:
    """Stop the worker this workbook started (local process or Docker service); False when none ran."""
    if settings.stack == "docker":
        from helpers.infra.compose import compose

        compose("--profile", "connect", "stop", "connect")
        return True
    return settings.stack == "local" and LocalConnect.for_settings(settings).stop() is not None


def connect_answers(settings: Settings) -> bool:
    """True when a Kafka Connect worker answers at CONNECT_URL."""
    if not settings.connect_url:
        return False
    try:
        return requests.get(settings.connect_url, timeout=2).ok
    except requests.RequestException:
        return False


def ensure_connect(settings: Settings) -> str:
    """Start Kafka Connect where the workbook runs it, or check it answers; return its URL.

    Local stack: the worker here, MariaDB's binary log checked and replication
    granted to the workbook's user. Docker: the `connect` service of the
    Compose file. External: a worker somebody else runs, at CONNECT_URL.
    """
    if settings.stack == "local":
        mariadb = LocalMariaDB.for_settings(settings)
        mariadb.require_binlog()
        mariadb.grant_replication(settings)
        resolve_connect_jars(settings)
        LocalConnect.for_settings(settings).start(settings)
    elif settings.stack == "docker":
        from helpers.infra.compose import compose

        compose("--profile", "connect", "up", "-d", "--wait", "connect")
    if not settings.connect_url:
        raise ServiceUnavailable("This stack has no Kafka Connect: notebook 12 needs the workbook's own "
                                 "stack (local or Docker), or CONNECT_URL naming a worker.")
    if not connect_answers(settings):
        raise ServiceUnavailable(f"Kafka Connect does not answer at {settings.connect_url}: ask your "
                                 "instructor for CONNECT_URL, or run the workbook's own stack.")
    return settings.connect_url
