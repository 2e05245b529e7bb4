"""The services behind one interface: up, down, status (00_setup).

Three stacks, chosen by `helpers.config` (WORKBOOK_STACK):
- docker: `docker compose` with the repository's docker-compose.yml;
- local: a real Kafka broker from Maven Central jars and MariaDB from
  Debian, started as background processes with state under `.stack/`;
- external: services somebody else runs, reached through the environment.
The stream-SQL engine is ksqlDB with Docker and Flink SQL (PyFlink, a local cluster per query) otherwise.
"""
from __future__ import annotations

import getpass
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import PROJECT_ROOT, ConfigError, Settings, mask_url

if TYPE_CHECKING:
    import pandas as pd

POM = PROJECT_ROOT / "stack" / "pom.xml"
KAFKA_HEAP = "-Xms512m -Xmx512m"
ENGINES = ("ksqldb", "flink")


class StackError(RuntimeError):
    """A service could not be started or reached; the message says what to do."""


@dataclass
class ServiceStatus:
    """What `workbook status` reports for one service."""

    name: str
    address: str
    up: bool
    version: str = ""
    hint: str = ""
    url: str = ""

    def as_dict(self) -> dict:
        """The JSON form: url only for mysql, hint only when down."""
        data = asdict(self)
        if not self.url:
            data.pop("url")
        if not self.hint:
            data.pop("hint")
        return data


# --- small process and port utilities ---------------------------------------

def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def read_pid(path: Path) -> int | None:
    """The pid recorded in `path` if that process still runs, else None."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def stop_pid(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM a process group, wait for it, SIGKILL it if it lingers."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.1)


def wait_until(check, timeout: float, what: str, log: Path | None = None) -> None:
    """Poll `check()` until true, else raise StackError with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = ""
    if log and log.is_file():
        tail = "\nLast lines of " + str(log) + ":\n" + "\n".join(log.read_text().splitlines()[-15:])
    raise StackError(f"{what} did not become ready within {timeout:.0f} s.{tail}")


def say(message: str) -> None:
    """Progress for the person at the terminal (stderr, so --json stays clean)."""
    print(message, file=sys.stderr, flush=True)


# --- prerequisites -----------------------------------------------------------

APT_PACKAGES = {"java": "openjdk-17-jre-headless", "mvn": "maven", "mariadbd": "mariadb-server",
                "chromium": "chromium"}
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def find_program(name: str) -> str | None:
    """Path of `name` on PATH or in an sbin folder (mariadbd lives in /usr/sbin)."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def ensure_programs(names: tuple[str, ...]) -> None:
    """Install missing Debian packages when root, else say the exact command to run."""
    missing = [n for n in names if find_program(n) is None]
    if not missing:
        return
    packages = " ".join(APT_PACKAGES[n] for n in missing)
    if shutil.which("apt-get") is None:
        raise StackError(f"{', '.join(missing)} not found and apt-get is missing: "
                         f"install the equivalent of `{packages}` with your package manager.")
    if os.geteuid() != 0:
        raise StackError(f"{', '.join(missing)} not found: run "
                         f"`sudo apt-get update && sudo apt-get install -y {packages}`, then retry.")
    say(f"Installing {packages} with apt-get (first time only, about a minute)...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages.split()]):
        result = subprocess.run(args, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"`{' '.join(args)}` failed:\n{result.stderr[-2000:]}")


# --- the local stack: Kafka from Maven Central jars ---------------------------

class LocalPaths:
    """Where the local stack keeps jars, data, logs and pids (all under state_dir)."""

    def __init__(self, state_dir: Path):
        self.root = state_dir
        self.kafka_libs = state_dir / "libs" / "kafka"
        self.flink_libs = state_dir / "libs" / "flink"
        self.jars_stamp = state_dir / "libs" / "pom.sha256"
        self.kafka = state_dir / "kafka"
        self.kafka_data = self.kafka / "data"
        self.kafka_log = self.kafka / "server.log"
        self.kafka_pid = state_dir / "run" / "kafka.pid"
        self.mariadb = state_dir / "mariadb"
        self.mariadb_data = self.mariadb / "data"
        self.mariadb_socket = self.mariadb / "mysqld.sock"
        self.mariadb_log = self.mariadb / "mariadb.log"
        self.mariadb_pid = state_dir / "run" / "mariadb.pid"


def pom_property(name: str) -> str:
    """A <properties> value of stack/pom.xml, such as kafka.version."""
    match = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", POM.read_text())
    if not match:
        raise StackError(f"stack/pom.xml has no <{name}> property.")
    return match.group(1).strip()


def flink_connector_jar(settings: Settings) -> Path:
    """Path of the Flink Kafka SQL connector jar resolved by `workbook up`."""
    version = pom_property("flink.kafka.connector.version")
    return LocalPaths(settings.state_dir).flink_libs / f"flink-sql-connector-kafka-{version}.jar"


def resolve_jars(paths: LocalPaths) -> None:
    """Fetch Kafka and Flink-connector jars with Maven unless stack/pom.xml is unchanged."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if paths.jars_stamp.is_file() and paths.jars_stamp.read_text() == digest \
            and any(paths.kafka_libs.glob("kafka_2.13-*.jar")):
        return
    ensure_programs(("mvn",))
    say(f"Resolving Kafka {pom_property('kafka.version')} jars from Maven Central (first time only)...")
    shutil.rmtree(paths.root / "libs", ignore_errors=True)
    args = ["mvn", "-q", "-B", "-f", str(POM), f"-Dlibs.dir={paths.root / 'libs'}",
            "dependency:copy-dependencies@kafka", "dependency:copy@flink"]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError("Maven could not resolve the stack's jars:\n" + result.stdout[-2000:] + result.stderr[-2000:])
    paths.jars_stamp.write_text(digest)


def kafka_properties(settings: Settings, paths: LocalPaths) -> str:
    """server.properties of a single-node KRaft broker+controller on 127.0.0.1."""
    k, c = settings.kafka_port, settings.kafka_controller_port
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers=127.0.0.1:{c}",
        f"listeners=PLAINTEXT://127.0.0.1:{k},CONTROLLER://127.0.0.1:{c}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{k},CONTROLLER://127.0.0.1:{c}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={paths.kafka_data}",
        "num.partitions=3",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
        "",
    ])


def kafka_log4j(paths: LocalPaths) -> str:
    """log4j2 properties: everything to server.log, nothing to the terminal."""
    return "\n".join([
        "rootLogger.level=INFO",
        "rootLogger.appenderRef.file.ref=file",
        "appender.file.type=File",
        "appender.file.name=file",
        f"appender.file.fileName={paths.kafka_log}",
        "appender.file.layout.type=PatternLayout",
        "appender.file.layout.pattern=[%d] %p %m (%c)%n",
        "logger.state.name=state.change.logger",
        "logger.state.level=WARN",
        "",
    ])


def check_port_free(port: int, service: str, variable: str) -> None:
    """Raise a clear StackError naming the variable when a port is taken."""
    if not port_is_free(port):
        raise StackError(f"Port {port} for {service} is already in use by another program: "
                         f"stop it, or set {variable} to a free port in .env.")


def start_detached(args: list[str], log: Path, pid_file: Path) -> int:
    """Start a long-running server in its own session, record its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    pid_file.write_text(str(proc.pid))
    return proc.pid


def kafka_up(settings: Settings, paths: LocalPaths) -> None:
    """Start the local Kafka broker unless ours already runs."""
    if read_pid(paths.kafka_pid):
        say(f"Kafka already running on 127.0.0.1:{settings.kafka_port}.")
        return
    check_port_free(settings.kafka_port, "Kafka", "KAFKA_PORT")
    check_port_free(settings.kafka_controller_port, "the Kafka controller", "KAFKA_CONTROLLER_PORT")
    paths.kafka.mkdir(parents=True, exist_ok=True)
    props, log4j = paths.kafka / "server.properties", paths.kafka / "log4j2.properties"
    props.write_text(kafka_properties(settings, paths))
    log4j.write_text(kafka_log4j(paths))
    java = ["java", f"-Dlog4j2.configurationFile={log4j}", "-cp", str(paths.kafka_libs / "*")]
    if not (paths.kafka_data / "meta.properties").is_file():
        shutil.rmtree(paths.kafka_data, ignore_errors=True)
        cluster_id = subprocess.run([*java, "kafka.tools.StorageTool", "random-uuid"],
                                    capture_output=True, text=True, check=True).stdout.strip()
        subprocess.run([*java, "kafka.tools.StorageTool", "format", "--standalone",
                        "-t", cluster_id, "-c", str(props)], capture_output=True, text=True, check=True)
    opts = [*KAFKA_HEAP.split(), "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={paths.kafka}"]
    say(f"Starting Kafka {pom_property('kafka.version')} on 127.0.0.1:{settings.kafka_port}...")
    start_detached([java[0], *opts, *java[1:], "kafka.Kafka", str(props)],
                   paths.kafka / "stdout.log", paths.kafka_pid)
    wait_until(lambda: kafka_cluster_id(settings) is not None, 90, "Kafka", paths.kafka_log)


# --- the local stack: MariaDB from Debian -------------------------------------

def mariadb_up(settings: Settings, paths: LocalPaths) -> None:
    """Start the local MariaDB server unless ours already runs, then ensure user and database."""
    if read_pid(paths.mariadb_pid):
        say(f"MariaDB already running on 127.0.0.1:{settings.mysql_port}.")
    else:
        check_port_free(settings.mysql_port, "MariaDB", "MYSQL_PORT")
        user = getpass.getuser()
        if not (paths.mariadb_data / "mysql").is_dir():
            say("Initialising the MariaDB data directory (first time only)...")
            paths.mariadb_data.mkdir(parents=True, exist_ok=True)
            result = subprocess.run(
                [find_program("mariadb-install-db") or "mariadb-install-db", "--no-defaults",
                 f"--datadir={paths.mariadb_data}", f"--user={user}",
                 "--auth-root-authentication-method=socket", "--skip-test-db"],
                capture_output=True, text=True)
            if result.returncode != 0:
                raise StackError("mariadb-install-db failed:\n" + result.stdout[-1500:] + result.stderr[-1500:])
        say(f"Starting MariaDB on 127.0.0.1:{settings.mysql_port}...")
        start_detached([find_program("mariadbd"), "--no-defaults", f"--datadir={paths.mariadb_data}",
                        f"--socket={paths.mariadb_socket}", f"--port={settings.mysql_port}",
                        "--bind-address=127.0.0.1", f"--user={user}",
                        f"--pid-file={paths.mariadb / 'mariadbd.pid'}",
                        f"--log-error={paths.mariadb_log}", "--character-set-server=utf8mb4",
                        "--innodb-buffer-pool-size=128M"],
                       paths.mariadb / "stdout.log", paths.mariadb_pid)
        wait_until(lambda: port_answers(settings.mysql_port) and paths.mariadb_socket.exists(),
                   60, "MariaDB", paths.mariadb_log)
    ensure_database_user(settings, paths)


def sql_string(text: str) -> str:
    """A MariaDB string literal with quotes and backslashes escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ensure_database_user(settings: Settings, paths: LocalPaths) -> None:
    """Create (or update) the workbook database and user through the admin socket."""
    db, user = settings.mysql_database, settings.mysql_user
    if not re.fullmatch(r"\w{1,64}", db) or not re.fullmatch(r"\w{1,32}", user):
        raise ConfigError("MYSQL_DATABASE and MYSQL_USER may hold only letters, digits and _.")
    settings.database_url  # raises a clear ConfigError when the password is missing
    password = sql_string(settings.mysql_password)
    statements = [f"CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4;"]
    for host in ("localhost", "127.0.0.1"):
        statements += [f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY {password};",
                       f"ALTER USER '{user}'@'{host}' IDENTIFIED BY {password};",
                       f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'{host}';"]
    client = find_program("mariadb") or find_program("mysql")
    result = subprocess.run([client, "--no-defaults", f"--socket={paths.mariadb_socket}",
                             "-u", getpass.getuser()], input="\n".join(statements),
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError("Could not create the workbook database user: " + result.stderr.strip())


def local_up(settings: Settings) -> None:
    """Start Kafka and MariaDB locally (idempotent)."""
    paths = LocalPaths(settings.state_dir)
    ensure_programs(("java", "mvn", "mariadbd"))
    resolve_jars(paths)
    kafka_up(settings, paths)
    mariadb_up(settings, paths)


def local_down(settings: Settings) -> list[str]:
    """Stop the local services this project started; return their names."""
    paths = LocalPaths(settings.state_dir)
    stopped = []
    for name, pid_file in (("kafka", paths.kafka_pid), ("mariadb", paths.mariadb_pid)):
        pid = read_pid(pid_file)
        if pid:
            say(f"Stopping {name} (pid {pid})...")
            stop_pid(pid)
            stopped.append(name)
        pid_file.unlink(missing_ok=True)
    return stopped


# --- the docker stack -----------------------------------------------------------

def compose(*args: str) -> None:
    """Run `docker compose` in the project folder, raising on failure."""
    result = subprocess.run(["docker", "compose", *args], cwd=PROJECT_ROOT)
    if result.returncode != 0:
        raise StackError(f"`docker compose {' '.join(args)}` failed (exit {result.returncode}).")


# --- probes, common to every stack ----------------------------------------------

def kafka_cluster_id(settings: Settings, timeout: float = 3.0) -> str | None:
    """The cluster id when a Kafka broker answers, else None."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, "log_level": 0,
                         "logger": _SilentLogger()})
    try:
        return admin.describe_cluster(request_timeout=timeout).result(timeout=timeout + 1).cluster_id
    except Exception:  # noqa: BLE001 - any failure means 'not answering'
        return None


class _SilentLogger:
    """A logger for librdkafka that drops 'connection refused' noise while probing."""

    def log(self, *args, **kwargs):
        """Discard one log record."""


def kafka_version(settings: Settings) -> str:
    """The broker's release: from the jars (local) or the compose image (docker)."""
    if settings.stack == "local":
        return pom_property("kafka.version")
    if settings.stack == "docker":
        match = re.search(r"image:\s*apache/kafka:(\S+)", (PROJECT_ROOT / "docker-compose.yml").read_text())
        return match.group(1) if match else "unknown"
    return "unknown (external)"


def stream_engine(settings: Settings) -> str:
    """ksqldb or flink: WORKBOOK_STREAM_ENGINE, else ksqlDB with Docker, Flink without."""
    engine = os.environ.get("WORKBOOK_STREAM_ENGINE", "").strip().lower()
    if engine and engine not in ENGINES:
        raise ConfigError(f"WORKBOOK_STREAM_ENGINE must be ksqldb or flink, got {engine!r}.")
    if engine:
        return engine
    if settings.stack == "docker":
        return "ksqldb"
    if settings.stack == "external" and os.environ.get("KSQLDB_URL"):
        return "ksqldb"
    return "flink"


def start_hint(settings: Settings) -> str:
    """How to start the services of this stack."""
    return {"external": "start your external services (see .env)"}.get(settings.stack, "run `make up`")


def status_kafka(settings: Settings) -> ServiceStatus:
    """Probe Kafka."""
    cluster_id = kafka_cluster_id(settings)
    up = cluster_id is not None
    return ServiceStatus("kafka", settings.bootstrap_servers, up,
                         kafka_version(settings) if up else "",
                         "" if up else f"Kafka is down: {start_hint(settings)}.")


def status_mysql(settings: Settings, show_secrets: bool = False) -> ServiceStatus:
    """Probe MySQL/MariaDB with the workbook's own credentials."""
    from .db import make_engine, server_version

    url = settings.database_url
    address = url.split("@")[-1].split("/")[0]
    try:
        version = server_version(make_engine(settings, connect_timeout=3))
        up, hint = True, ""
    except Exception as exc:  # noqa: BLE001 - any failure means "down", said plainly
        version, up = "", False
        hint = f"MySQL is down or refuses the login ({type(exc).__name__}): {start_hint(settings)}."
    return ServiceStatus("mysql", address, up, version, hint, url if show_secrets else mask_url(url))


def status_stream_sql(settings: Settings) -> ServiceStatus:
    """Probe the stream-SQL engine: ksqlDB's /info, or whether PyFlink and its Kafka connector are ready."""
    if stream_engine(settings) == "ksqldb":
        from .ksqldb import KsqlClient

        try:
            info = KsqlClient(settings.ksqldb_url, timeout=3).info()
            return ServiceStatus("stream-sql", settings.ksqldb_url, True,
                                 f"ksqlDB {info.get('KsqlServerInfo', {}).get('version', '?')}")
        except Exception:  # noqa: BLE001
            return ServiceStatus("stream-sql", settings.ksqldb_url, False, "",
                                 f"ksqlDB does not answer: {start_hint(settings)}.")
    try:
        from importlib.metadata import version

        flink = version("apache-flink")
    except Exception:  # noqa: BLE001
        return ServiceStatus("stream-sql", "local Flink per query (PyFlink)", False, "",
                             "PyFlink is not installed: run `make setup`.")
    jar = flink_connector_jar(settings)
    up = jar.is_file()
    return ServiceStatus("stream-sql", "local Flink per query (PyFlink)", up,
                         f"Flink {flink}" if up else "",
                         "" if up else "The Flink Kafka connector jar is missing: run `make up`.")


def stack_status(settings: Settings, show_secrets: bool = False) -> list[ServiceStatus]:
    """Status of kafka, mysql and stream-sql."""
    return [status_kafka(settings), status_mysql(settings, show_secrets), status_stream_sql(settings)]


def stack_up(settings: Settings) -> list[ServiceStatus]:
    """Start the services of the chosen stack and wait until they answer."""
    if settings.stack == "local":
        local_up(settings)
    elif settings.stack == "docker":
        compose("up", "-d", "--wait")
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


def status_table(settings: Settings) -> "pd.DataFrame":
    """The status of every service as a small table (00_setup)."""
    import pandas as pd

    rows = [s.as_dict() for s in stack_status(settings)]
    return pd.DataFrame(rows).drop(columns=["hint"], errors="ignore").set_index("name")
