"""Run the buy join on Apache Flink SQL through PyFlink, no Docker needed (06_stream_sql, 07_stream_joins).

PyFlink starts a local Flink (a JVM, child of the Python process) the first
time a TableEnvironment is created; the workbook runs its jobs in a Python
process of its own, a session that keeps that JVM for the next job
(FlinkSession, FlinkJob, below), owned by the notebook's or command's
Workbook. The Kafka SQL connector is one shaded jar
added through `pipeline.jars`; the SQL itself lives in `ksql/flink/` and is
filled by `load_sql`, like the ksqlDB files. On a shared cluster the tables
log in with the workbook's Kafka security settings (`kafka_login`): the job
process gets them through its environment, never its command line. With
FLINK_CLUSTER and FLINK_GATEWAY set (a class hub's servers), the session
starts no JVM: it sends the SQL to that cluster's SQL Gateway
(helpers/pipeline/flinkgateway.py), and the jobs run on the class's session
cluster (helpers/infra/flinkcluster.py), each named after its student
(`FlinkTarget`).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import psutil
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from helpers.core import schemas
from helpers.core.errors import InputError, ServiceUnavailable, StreamSqlError, WaitTimeout
from helpers.core.rules import VARIATION_THRESHOLD, check_variation_threshold
from helpers.core.settings import KafkaSecurity, mask_secrets
from helpers.infra.clients import security_conf
from helpers.infra.environment import child_env, flink_target_from_env, kafka_security_from_env
from helpers.pipeline.flinkgateway import GatewayRun, GatewayWorkspace
from helpers.pipeline.sqlfiles import WithOptions, load_sql

if TYPE_CHECKING:
    from helpers.infra.workbook import Workbook

CREATE_FILE = "flink/01_create_tables.sql"
JOIN_FILE = "flink/02_buy_signals.sql"
GROUP_ID = "workbook-flink-buy"
# Idle sources never stop holding the watermark back ("0 ms" = off). With a timeout, a
# topic that stays silent (alerts while prices are low) is skipped, the other topic's
# watermark runs ahead and the silent topic's next rows count as late: measured, a
# continuous run lost 5 of 16 pairs. The join emits each pair at once, so a stuck
# watermark only delays the cleanup of its state (a few thousand bars here).
IDLE_TIMEOUT = "0 ms"
# How long a record may wait in a network buffer between two operators before it is sent
# (Flink's default: 100 ms). The join's input rows cross one such buffer; at 1,000 bars/s
# 10 ms took ~50 ms off every buy signal's latency (`make bench`) at no measurable cost.
BUFFER_TIMEOUT = "10 ms"
# what every session's tables and jobs are given, locally or through the class's gateway
TABLE_CONFIG = {"table.local-time-zone": "UTC", "table.exec.source.idle-timeout": IDLE_TIMEOUT,
                "execution.buffer-timeout.interval": BUFFER_TIMEOUT}
LOG_DIR = Path(tempfile.gettempdir()) / f"workbook-flink-logs-{os.getuid()}"   # one per account
# the connector jar relocates the Kafka client: JAAS must name the shaded login modules
SHADED = "org.apache.flink.kafka.shaded."
LOGIN_MODULES = {"PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
                 "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
                 "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule"}


def jaas_quote(text: str) -> str:
    """A JAAS option value in double quotes (backslash and quote escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kafka_login(security: KafkaSecurity) -> WithOptions:
    """The Flink Kafka tables' options for logging in and trusting the broker (none for PLAINTEXT)."""
    options = WithOptions()
    if security.protocol != "PLAINTEXT":
        options["properties.security.protocol"] = security.protocol
    if security.sasl:
        module = SHADED + LOGIN_MODULES[security.mechanism]
        options["properties.sasl.mechanism"] = security.mechanism
        user, password = jaas_quote(security.username), jaas_quote(security.password)
        options["properties.sasl.jaas.config"] = f"{module} required username={user} password={password};"
    if security.tls and security.ca_location:
        options["properties.ssl.truststore.type"] = "PEM"
        options["properties.ssl.truststore.location"] = security.ca_location
    return options


def flink_job_env(level: str = "WARN") -> dict[str, str]:
    """The job process's environment: the Flink JVM logs into a temp folder at `level`."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return child_env(FLINK_LOG_DIR=str(LOG_DIR), ROOT_LOG_LEVEL=level)


@dataclass(frozen=True)
class FlinkTarget:
    """Where a session's jobs run: its own local Flink (cluster '') or a shared session cluster's REST
    API at host:port, each job named after its owner so the class's jobs can be told apart. With a
    `gateway` (the cluster's SQL Gateway), the session sends its SQL there and starts no JVM."""

    cluster: str = ""
    owner: str = ""
    gateway: str = ""

    @classmethod
    def from_env(cls) -> FlinkTarget:
        """The target the parent gave this session process (FLINK_CLUSTER, WORKBOOK_STUDENT,
        FLINK_GATEWAY)."""
        return cls(*flink_target_from_env())

    def as_env(self) -> dict[str, str]:
        """The variables `from_env` reads."""
        return {"FLINK_CLUSTER": self.cluster, "WORKBOOK_STUDENT": self.owner, "FLINK_GATEWAY": self.gateway}

    def job_name(self, what: str) -> str:
        """`what`, after its owner's name and before the session's pid: `alice: buy join (pid 4242)`."""
        return f"{self.owner or 'workbook'}: {what} (pid {os.getpid()})"

    def cancel_orphans(self) -> list[str]:
        """Cancel the owner's jobs on the cluster whose session process is gone (a kernel killed, a
        command stopped with Ctrl-C): on a shared cluster they would hold a slot for ever. Return their
        names."""
        from helpers.infra.flinkcluster import cancel_job, cluster_jobs

        if not self.cluster:
            return []
        try:
            jobs = cluster_jobs(self.cluster)
        except OSError as exc:
            raise ServiceUnavailable(f"The class's Flink cluster does not answer at {self.cluster}: {exc}.",
                                     service="flink", address=self.cluster) from None
        mine = re.compile(rf"{re.escape(self.owner or 'workbook')}: .* \(pid (\d+)\)")
        orphans = [job for job in jobs if job["state"] in ("CREATED", "RUNNING", "RESTARTING")
                   and (found := mine.fullmatch(job["name"])) and not process_alive(int(found.group(1)))]
        for job in orphans:
            cancel_job(self.cluster, job["id"])
        return [job["name"] for job in orphans]


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def create_table_env(jar_path: str | Path, parallelism: int = 1, target: FlinkTarget = FlinkTarget()) -> Any:
    """A streaming TableEnvironment (UTC) that can read and write Kafka through `jar_path`; its jobs run
    in a local Flink (a class's cluster gets its SQL from its gateway: flinkgateway)."""
    jar = Path(jar_path).resolve()
    if not jar.is_file():
        raise InputError(f"The Flink Kafka connector jar is missing: {jar}; run `make up`.")
    from pyflink.table import EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.new_instance().in_streaming_mode().build())
    conf = t_env.get_config()
    conf.set("pipeline.jars", jar.as_uri())
    conf.set("parallelism.default", str(parallelism))
    for key, value in TABLE_CONFIG.items():
        conf.set(key, value)
    conf.set("pipeline.name", target.job_name("sql"))
    return t_env


def flink_jvm_pid() -> int | None:
    """Process id of the Flink JVM started by this Python process, or None before it starts."""
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name().startswith("java"):
                return child.pid
        except psutil.Error:
            continue
    return None


def jvm_peak_rss_mb(pid: int | None = None) -> float | None:
    """Peak resident memory of the Flink JVM in MiB (VmHWM on Linux, else current RSS)."""
    pid = pid or flink_jvm_pid()
    if pid is None:
        return None
    status = Path(f"/proc/{pid}/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return psutil.Process(pid).memory_info().rss / 2**20


@dataclass
class FlinkRun:
    """One submitted buy-join job: its id, timings in seconds and the handle to stop it."""

    result: Any = field(repr=False)
    job_id: str
    env_s: float                   # create the TableEnvironment (starts the JVM the first time)
    submit_s: float                # from the call until Flink accepted the INSERT job
    wall_s: float | None = None    # from the call until a bounded job finished
    jvm_peak_rss_mb: float | None = None
    started: float = field(default_factory=time.perf_counter, repr=False)
    final_status: str | None = None   # the local cluster is gone once a job ends: keep it here

    def status(self) -> str:
        """The job's status, for example RUNNING, FINISHED or CANCELED."""
        from py4j.protocol import Py4JJavaError

        if self.final_status:
            return self.final_status
        try:
            return self.result.get_job_client().get_job_status().result().name
        except Py4JJavaError:      # the local cluster shuts down as soon as its job ends
            return self.wait().final_status or "FINISHED"    # raises StreamSqlError if it failed

    def wait(self) -> FlinkRun:
        """Block until a bounded job ends (raises if it failed), then record wall time and RSS."""
        from py4j.protocol import Py4JJavaError

        try:
            self.result.wait()
        except Py4JJavaError as exc:
            self.final_status = "FAILED"
            raise StreamSqlError(f"The Flink job {self.job_id} failed: {root_cause(exc)}") from exc
        self.final_status = "FINISHED"
        self.wall_s = time.perf_counter() - self.started
        self.jvm_peak_rss_mb = jvm_peak_rss_mb()
        return self

    def cancel(self) -> None:
        """Stop a continuous job and wait until Flink confirms it."""
        self.jvm_peak_rss_mb = jvm_peak_rss_mb()
        self.result.get_job_client().cancel().result()
        self.final_status = "CANCELED"


def root_cause(exc: Exception) -> str:
    """The innermost `Caused by:` line of a Java exception text (or its first line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [repr(exc)]
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by: ")]
    return causes[-1] if causes else lines[0]


def sql_error(exc: Exception) -> str:
    """What Flink says about a refused statement: the line of its message that gives the position (line,
    column) when one does, else the innermost cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    placed = [line for line in lines if re.search(r"(at|From) line \d+, column \d+", line)]
    if placed:
        cause = root_cause(exc)
        reason = cause.split(": ", 1)[-1]
        where = re.search(r"((?:at|From) line \d+, column \d+)", placed[-1])
        return f"{where.group(1) if where else ''}: {reason}"
    return root_cause(exc)


def check_topics(bootstrap_servers: str, *topics: str, security: KafkaSecurity = KafkaSecurity()) -> None:
    """Raise a clear error unless every topic exists (Flink would fail deep in a Java trace)."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, **security_conf(security)})
    try:
        existing = admin.list_topics(timeout=30).topics     # a busy class server may take a while
    except KafkaException as exc:
        raise ServiceUnavailable(f"No Kafka broker answers at {bootstrap_servers}: {exc}.",
                                 service="kafka", address=bootstrap_servers) from None
    missing = [t for t in topics if t not in existing]
    if missing:
        raise StreamSqlError(f"Topics missing: {', '.join(missing)}; "
                             "create them before starting the join.")


def render_buy_sql(bootstrap_servers: str, variation_threshold: float, alerts_topic: str,
                   variations_topic: str, buy_topic: str, group_id: str,
                   until_caught_up: bool, security: KafkaSecurity = KafkaSecurity()) -> tuple[list[str], str]:
    """The DDL and the INSERT statement of the buy join, placeholders filled (the DDL may hold a password)."""
    ddl = load_sql(CREATE_FILE, bootstrap_servers=bootstrap_servers, kafka_login=kafka_login(security),
                   alerts_topic=alerts_topic, variations_topic=variations_topic,
                   buy_topic=buy_topic, group_id=group_id,
                   scan_bounded_mode="latest-offset" if until_caught_up else "unbounded")
    (insert,) = load_sql(JOIN_FILE,
                         variation_threshold=check_variation_threshold(variation_threshold))
    return ddl, insert


def run_buy_join(jar_path: str | Path, bootstrap_servers: str, *,
                 variation_threshold: float = VARIATION_THRESHOLD,
                 alerts_topic: str = schemas.ALERTS, variations_topic: str = schemas.VARIATIONS,
                 buy_topic: str = schemas.BUY, group_id: str = GROUP_ID,
                 until_caught_up: bool = True, parallelism: int = 1,
                 security: KafkaSecurity = KafkaSecurity(), target: FlinkTarget = FlinkTarget(),
                 gateway: GatewayWorkspace | None = None) -> FlinkRun | GatewayRun:
    """Start the Flink buy join; until_caught_up waits for it to reach the topics' end. With a
    `gateway`, the class's SQL Gateway plans it and no JVM starts here."""
    started = time.perf_counter()
    check_topics(bootstrap_servers, alerts_topic, variations_topic, buy_topic, security=security)
    ddl, insert = render_buy_sql(bootstrap_servers, variation_threshold, alerts_topic,
                                 variations_topic, buy_topic, group_id, until_caught_up, security)
    if gateway is not None:
        return gateway.buy_join(str(jar_path), ddl, insert, until_caught_up)
    t_env = create_table_env(jar_path, parallelism, target)
    t_env.get_config().set("pipeline.name", target.job_name("buy join"))
    env_s = time.perf_counter() - started
    for statement in ddl:
        t_env.execute_sql(statement.rstrip(";"))
    result = t_env.execute_sql(insert.rstrip(";"))
    job_id = str(result.get_job_client().get_job_id())
    run = FlinkRun(result, job_id, env_s, time.perf_counter() - started, started=started)
    return run.wait() if until_caught_up else run


# --- one session per process, one job at a time ------------------------------------
# PyFlink talks to its JVM through py4j connections, and Flink's SQL planner keeps
# per-thread state in that JVM. When other Python threads of the same process (a
# router, a replay, a notebook's widgets) make py4j use a second connection, a
# later statement can land on a JVM thread without that state and fail with
# "NullPointerException: metadataHandlerProvider" (seen in CI). So the workbook
# runs its Flink jobs in a Python process of its own, a session: one thread, one
# JVM, jobs one after another. Starting the JVM and loading the planner is most of
# a first job's time; the next jobs of the same session reuse both.

class FlinkSession:
    """A Python process with one JVM that runs this process's buy joins
    (`python -m helpers.pipeline.flinksql`)."""

    def __init__(self, security: KafkaSecurity = KafkaSecurity(),
                 target: FlinkTarget = FlinkTarget()) -> None:
        self.security, self.target = security, target
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(prefix="flink-session-", suffix=".log", dir=LOG_DIR)
        os.close(descriptor)
        self.log = Path(name)
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "helpers.pipeline.flinksql"],
                                         stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, text=True,
                                         # the logins never in argv
                                         env={**flink_job_env(), **security.as_env(), **target.as_env()},
                                         start_new_session=True)
        self.requests = 0
        self.events: list[dict[str, Any]] = []

    @property
    def alive(self) -> bool:
        """True while the session's process runs."""
        return self.proc.poll() is None

    def send(self, op: str, **args: Any) -> int:
        """Send one request; return its id."""
        self.requests += 1
        assert self.proc.stdin is not None          # started with stdin=PIPE
        self.proc.stdin.write(json.dumps({"op": op, "id": self.requests, **args}) + "\n")
        self.proc.stdin.flush()
        return self.requests

    def wait_for(self, request: int, wanted: str, timeout: float) -> dict[str, Any]:
        """The session's answer `wanted` to `request`; raise with its error or when it dies."""
        assert self.proc.stdout is not None         # started with stdout=PIPE
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("id") == request:
                    self.events.remove(event)
                    if event["event"] == "error":
                        raise StreamSqlError(event["message"])
                    if event["event"] == wanted:
                        return event
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = self.proc.stdout.readline() if ready else ""
            if line.startswith("{"):
                self.events.append(json.loads(line))
            elif ready and not line or self.proc.poll() is not None:
                lines = [text for text in self.log.read_text().splitlines() if text.strip()]
                raise StreamSqlError(f"The Flink session ended (exit {self.proc.wait()}) before the "
                                     f"job was {wanted}: {(lines[-1:] or ['no message'])[0]}")
            elif time.monotonic() > deadline:
                self.close()
                raise WaitTimeout(f"The Flink job was not {wanted} within {timeout:.0f} s "
                                  f"(log: {self.log}).")

    def close(self, timeout: float = 60) -> None:
        """End the session: its running jobs are cancelled, its JVM stops."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()             # end of requests: cancel everything, exit
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def flink_session(wb: Workbook) -> FlinkSession:
    """The Workbook's Flink session, started on first use (again if it died), closed with the Workbook."""
    target = FlinkTarget(wb.settings.flink_cluster, wb.settings.namespace, wb.settings.flink_gateway)

    def start() -> FlinkSession:
        target.cancel_orphans()
        return FlinkSession(wb.settings.kafka_security, target)

    return wb.resource("flink", start)


class FlinkJob:
    """A buy join run by this process's Flink session."""

    def __init__(self, session: FlinkSession, request: int, continuous: bool, stats: dict[str, Any]):
        self.session, self.request, self.continuous, self.stats = session, request, continuous, stats

    @classmethod
    def start(cls, wb: Workbook, variation_threshold: float = VARIATION_THRESHOLD, *,
              until_caught_up: bool = True, timeout: float = 300) -> FlinkJob:
        """Start the job in the Workbook's Flink session; return when it is submitted (continuous) or
        finished (until_caught_up)."""
        settings = wb.settings
        threshold, topics = check_variation_threshold(variation_threshold), settings.topics
        session = flink_session(wb)
        request = session.send("start", jar=str(settings.flink_connector_jar),
                               bootstrap=settings.bootstrap_servers, threshold=threshold,
                               alerts=topics.alerts, variations=topics.variations, buy=topics.buy,
                               group=settings.group("flink-buy"), until_caught_up=until_caught_up)
        stats = session.wait_for(request, "finished" if until_caught_up else "submitted", timeout)
        return cls(session, request, not until_caught_up, stats)

    def stop(self, timeout: float = 60) -> None:
        """Cancel a continuous job (a finished one has nothing to cancel)."""
        if self.continuous and self.session.proc.poll() is None:
            self.stats.update(self.session.wait_for(self.session.send("cancel", job=self.request),
                                                    "canceled", timeout))
            self.continuous = False

    def __str__(self) -> str:
        s, jvm = self.stats, self.stats.get("jvm_peak_rss_mb")
        return (f"Flink job {s.get('job_id', '?')}: submitted in {s.get('submit_s', 0):.1f} s"
                + (f", JVM peak {jvm:.0f} MiB" if jvm else ""))     # none measured yet, or no JVM here


class SqlWorkspace:
    """The session's own TableEnvironment for SQL a student types: the tables it creates stay for the
    next statement, as in Flink's SQL client. A query's rows go to a Kafka topic of the caller's
    (`select`), in debezium-json: one record per change, an insert or a retraction."""

    def __init__(self, security: KafkaSecurity, target: FlinkTarget = FlinkTarget()) -> None:
        self.security, self.target = security, target
        self.t_env: Any = None
        self.running: list[Any] = []        # INSERT jobs left running: cancelled when the session ends

    def env(self, jar: str) -> Any:
        """The workspace's TableEnvironment, made on first use."""
        if self.t_env is None:
            self.t_env = create_table_env(jar, target=self.target)
        return self.t_env

    def execute(self, jar: str, statements: list[str], wait_s: float = 300) -> list[str]:
        """Run DDL, SET and INSERT statements one after another; return what each did. An INSERT is
        waited for until its job ends (its sources are bounded) or `wait_s` pass (it runs on)."""
        from py4j.protocol import Py4JJavaError

        t_env, outcomes = self.env(jar), []
        for statement in statements:
            result = t_env.execute_sql(statement.strip().rstrip(";"))
            client = result.get_job_client()
            if client is None:
                outcomes.append("done")
                continue
            job = str(client.get_job_id())
            try:
                result.wait(int(wait_s * 1000))
                outcomes.append(f"job {job} finished")
            except Py4JJavaError as exc:
                if "TimeoutException" not in str(exc):
                    raise
                self.running.append(result)
                outcomes.append(f"job {job} running")
        return outcomes

    def select(self, jar: str, bootstrap: str, query: str, topic: str,
               bounded: bool) -> tuple[FlinkRun, list]:
        """Start `query`, its rows written to `topic`; return the run and [(column, Flink type), ...]."""
        from pyflink.table import Schema, TableDescriptor

        started = time.perf_counter()
        t_env = self.env(jar)
        table = t_env.sql_query(query.strip().rstrip(";"))
        columns = [(c.get_name(), c._j_column.getDataType().toString())
                   for c in table.get_resolved_schema().get_columns()]
        sink = TableDescriptor.for_connector("kafka") \
            .schema(Schema.new_builder().from_resolved_schema(table.get_resolved_schema()).build()) \
            .option("topic", topic).option("properties.bootstrap.servers", bootstrap) \
            .option("sink.delivery-guarantee", "at-least-once") \
            .format("debezium-json")
        for key, value in kafka_login(self.security).items():
            sink = sink.option(key, value)
        name = f"result_{abs(hash((topic, started)))}"
        t_env.create_temporary_table(name, sink.build())
        env_s = time.perf_counter() - started
        result = table.execute_insert(name)
        job_id = str(result.get_job_client().get_job_id())
        run = FlinkRun(result, job_id, env_s, time.perf_counter() - started, started=started)
        return (run.wait() if bounded else run), columns

    def close(self) -> None:
        """Cancel the INSERT jobs left running."""
        for result in self.running:
            with contextlib.suppress(Exception):
                result.get_job_client().cancel().result()


def serve(requests: IO[str], answers: IO[str]) -> None:
    """The session's loop: run each request, answer with JSON lines, cancel everything at the end."""
    runs: dict[int, FlinkRun | GatewayRun] = {}

    def say(request: int, event: str, run: FlinkRun | GatewayRun | None = None, **extra: Any) -> None:
        facts = {"job_id": run.job_id, "env_s": run.env_s, "submit_s": run.submit_s,
                 "wall_s": run.wall_s, "jvm_peak_rss_mb": run.jvm_peak_rss_mb} if run else {}
        answers.write(json.dumps({"id": request, "event": event, **facts, **extra}) + "\n")
        answers.flush()

    security = kafka_security_from_env()            # set by FlinkSession from the parent's settings
    target = FlinkTarget.from_env()
    gateway = GatewayWorkspace(target.gateway, target.cluster, kafka_login(security), TABLE_CONFIG,
                               target.job_name) if target.gateway else None
    workspace = gateway or SqlWorkspace(security, target)
    for line in requests:
        command = json.loads(line)
        request = command["id"]
        try:
            if command["op"] == "start":
                run = run_buy_join(command["jar"], command["bootstrap"],
                                   variation_threshold=command["threshold"], alerts_topic=command["alerts"],
                                   variations_topic=command["variations"], buy_topic=command["buy"],
                                   group_id=command["group"], until_caught_up=command["until_caught_up"],
                                   security=security, target=target, gateway=gateway)
                if command["until_caught_up"]:
                    say(request, "finished", run)
                else:
                    runs[request] = run
                    say(request, "submitted", run)
            elif command["op"] == "sql_exec":
                say(request, "done", kinds=workspace.execute(command["jar"], command["statements"]))
            elif command["op"] == "sql_select":
                run, columns = workspace.select(command["jar"], command["bootstrap"], command["query"],
                                                command["topic"], command["bounded"])
                if command["bounded"]:
                    say(request, "finished", run, columns=columns)
                else:
                    runs[request] = run
                    say(request, "submitted", run, columns=columns)
            elif command["op"] == "cancel":
                run = runs.pop(command["job"])
                run.cancel()
                say(request, "canceled", run)
        except Exception as exc:  # noqa: BLE001 - one line for the parent, not a Java trace
            message = sql_error(exc) if command["op"].startswith("sql_") else root_cause(exc)
            message = mask_secrets(message, [security.password])   # Java may quote a table's options
            say(request, "error", message=message)
    for run in runs.values():                       # the parent is gone: leave nothing running
        with contextlib.suppress(Exception):
            run.cancel()
    workspace.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.stdin.close())
    serve(sys.stdin, sys.stdout)
