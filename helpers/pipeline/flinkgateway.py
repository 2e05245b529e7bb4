"""Flink SQL through the class's SQL Gateway: a student's session sends SQL over REST and starts no JVM.

On a class server with a hub (`workbook class up --hub`), Flink's SQL Gateway
runs beside the class's session cluster (helpers/infra/flinkcluster.py). A
student's Flink session (flinksql.serve) then plans nothing itself: each
statement goes to the gateway (`POST /v3/sessions/{session}/statements`), the
gateway plans it and submits its job to the cluster, and the job's state comes
from the cluster's REST API. Without the gateway every student's session held
a JVM of about half a gigabyte only to plan SQL (bench/class_size.py).

The gateway has no logins either: a session is known only by its random handle,
which never leaves the student's process. Its tables log in to Kafka as their
student (the same DDL as flinksql), and the connector jar is added to each
session (`ADD JAR`), so it travels with the session's jobs.
"""
from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helpers.core.errors import ServiceUnavailable, StreamSqlError, WaitTimeout
from helpers.pipeline.sqlfiles import WithOptions

ACTIVE = ("INITIALIZED", "PENDING", "RUNNING")          # an operation not done yet
JOB_ACTIVE = ("INITIALIZING", "CREATED", "RUNNING", "RESTARTING", "CANCELLING", "FAILING", "RECONCILING")
POLL_S = 0.2
MARKERS = (" *ROWTIME*", " *PROCTIME*")                    # DESCRIBE's time attributes, not types


def rest(address: str, method: str, path: str, body: dict | None = None, timeout: float = 30) -> dict:
    """One call to a Flink REST API (the gateway's or the cluster's); its refusal as a StreamSqlError
    holding Flink's own text, no answer as ServiceUnavailable."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{address}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            text = answer.read()
    except urllib.error.HTTPError as exc:
        try:
            errors = json.loads(exc.read()).get("errors") or [str(exc)]
        except ValueError:
            errors = [str(exc)]
        raise StreamSqlError(errors[-1]) from None
    except OSError as exc:
        raise ServiceUnavailable(f"The class's Flink does not answer at {address}: {exc}.",
                                 service="flink", address=address) from None
    return json.loads(text) if text else {}


class GatewaySession:
    """One session of the SQL Gateway at host:port: the tables it creates stay for its next statements."""

    def __init__(self, address: str, properties: dict[str, str]) -> None:
        self.address = address
        opened = rest(address, "POST", "/v3/sessions", {"properties": properties})
        self.handle = opened["sessionHandle"]

    def execute(self, statement: str, timeout: float = 300) -> dict[str, Any]:
        """Run one statement; return the first page of its result (an INSERT's holds `jobID`)."""
        path = f"/v3/sessions/{self.handle}"
        operation = rest(self.address, "POST", f"{path}/statements",
                         {"statement": statement.strip().rstrip(";")})["operationHandle"]
        deadline = time.monotonic() + timeout
        while rest(self.address, "GET", f"{path}/operations/{operation}/status")["status"] in ACTIVE:
            if time.monotonic() > deadline:
                rest(self.address, "DELETE", f"{path}/operations/{operation}/close")
                raise WaitTimeout(f"The SQL Gateway did not finish a statement within {timeout:.0f} s.")
            time.sleep(POLL_S)
        page = rest(self.address, "GET", f"{path}/operations/{operation}/result/0?rowFormat=JSON")
        while page.get("resultType") == "NOT_READY":
            time.sleep(POLL_S)
            page = rest(self.address, "GET", f"{path}/operations/{operation}/result/0?rowFormat=JSON")
        return page

    def rows(self, statement: str) -> list[list[Any]]:
        """The rows of a statement that answers at once (DESCRIBE, SHOW): every page's fields."""
        page = self.execute(statement)
        rows = [row["fields"] for row in page.get("results", {}).get("data", [])]
        while page.get("resultType") == "PAYLOAD" and page.get("nextResultUri"):
            page = rest(self.address, "GET", page["nextResultUri"])
            rows += [row["fields"] for row in page.get("results", {}).get("data", [])]
        return rows

    def close(self) -> None:
        """Close the session (its jobs run on until cancelled)."""
        with contextlib.suppress(StreamSqlError, ServiceUnavailable):     # gone already: idle, restarted
            rest(self.address, "DELETE", f"/v3/sessions/{self.handle}", timeout=10)


@dataclass
class GatewayRun:
    """One job the gateway submitted to the cluster at `cluster`: the same facts as flinksql.FlinkRun."""

    cluster: str
    job_id: str
    env_s: float
    submit_s: float
    wall_s: float | None = None
    jvm_peak_rss_mb: float | None = None       # no JVM of the student's: nothing to measure
    started: float = field(default_factory=time.perf_counter, repr=False)
    final_status: str | None = None

    def status(self) -> str:
        """The job's state on the cluster: RUNNING, FINISHED, CANCELED, FAILED..."""
        return self.final_status or rest(self.cluster, "GET", f"/jobs/{self.job_id}")["state"]

    def wait(self, timeout: float | None = None) -> GatewayRun:
        """Block until the job ends (raise StreamSqlError with its cause if it failed, WaitTimeout after
        `timeout` seconds), then record the wall time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (state := self.status()) in JOB_ACTIVE:
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"The Flink job {self.job_id} still runs after {timeout:.0f} s.")
            time.sleep(POLL_S * 2)
        self.final_status = state
        if state == "FAILED":
            failure = rest(self.cluster, "GET", f"/jobs/{self.job_id}/exceptions")
            raise StreamSqlError(f"The Flink job {self.job_id} failed: "
                                 f"{failure.get('root-exception') or 'no cause given'}")
        self.wall_s = time.perf_counter() - self.started
        return self

    def cancel(self, timeout: float = 60) -> None:
        """Cancel the job and wait until the cluster says so (WaitTimeout after `timeout` seconds)."""
        if self.status() in JOB_ACTIVE:
            rest(self.cluster, "PATCH", f"/jobs/{self.job_id}?mode=cancel")
            self.final_status = None
            self.wait(timeout)


def submitted(session: GatewaySession, cluster: str, statement: str, started: float,
              env_s: float) -> GatewayRun:
    """Run an INSERT in `session`; return its job once the cluster has it."""
    page = session.execute(statement)
    return GatewayRun(cluster, page["jobID"], env_s, time.perf_counter() - started, started=started)


def sink_columns(session: GatewaySession, view: str) -> list[tuple[str, str]]:
    """[(column, Flink type), ...] of a view, as DESCRIBE says (time attribute markers removed)."""
    columns = []
    for name, kind, *_ in session.rows(f"DESCRIBE `{view}`"):
        for marker in MARKERS:
            kind = kind.replace(marker, "")
        columns.append((name, kind))
    return columns


def sink_table(name: str, columns: list[tuple[str, str]], options: WithOptions) -> str:
    """CREATE TEMPORARY TABLE of a Kafka topic in debezium-json with these columns and options."""
    body = ",\n  ".join(f"`{column.replace('`', '``')}` {kind}" for column, kind in columns)
    return (f"CREATE TEMPORARY TABLE `{name}` (\n  {body}\n) WITH (\n  {options.render('sink')}\n"
            "  'format' = 'debezium-json'\n)")


def result_options(topic: str, bootstrap: str, login: WithOptions) -> WithOptions:
    """The options of the Kafka table a query's rows are written to (what flinksql.SqlWorkspace sets)."""
    return WithOptions({"connector": "kafka", "topic": topic, "properties.bootstrap.servers": bootstrap,
                        "sink.delivery-guarantee": "at-least-once", **login})


def session_properties(job_name: str, config: dict[str, str], parallelism: int = 1) -> dict[str, str]:
    """A gateway session's configuration: `config` (what flinksql gives a local Flink too), the
    parallelism and the name of its jobs."""
    return {**config, "parallelism.default": str(parallelism), "pipeline.name": job_name}


def add_jar(session: GatewaySession, jar: str) -> None:
    """ADD JAR: the connector for this session's tables, shipped with its jobs."""
    session.execute(f"ADD JAR '{jar.replace(chr(39), chr(39) * 2)}'")


@dataclass
class GatewayWorkspace:
    """What flinksql.serve runs when a gateway is set: the buy join, a student's statements and queries."""

    gateway: str
    cluster: str
    login: WithOptions                             # how its tables log in to Kafka (flinksql.kafka_login)
    config: dict[str, str]                         # flinksql.TABLE_CONFIG
    job_name: Callable[[str], str]                 # FlinkTarget.job_name
    session: GatewaySession | None = None
    running: list[GatewayRun] = field(default_factory=list)

    def open(self, jar: str, what: str) -> GatewaySession:
        """A new gateway session whose jobs are named after `what`, the connector added."""
        session = GatewaySession(self.gateway, session_properties(self.job_name(what), self.config))
        add_jar(session, jar)
        return session

    def buy_join(self, jar: str, ddl: list[str], insert: str, until_caught_up: bool) -> GatewayRun:
        """The buy join in a session of its own (fresh tables, as a new TableEnvironment has)."""
        started = time.perf_counter()
        session = self.open(jar, "buy join")
        try:
            env_s = time.perf_counter() - started
            for statement in ddl:
                session.execute(statement)
            run = submitted(session, self.cluster, insert, started, env_s)
        finally:
            session.close()
        return run.wait() if until_caught_up else run

    def workspace(self, jar: str) -> GatewaySession:
        """The student's own session, opened on first use: their tables stay in it."""
        if self.session is None:
            self.session = self.open(jar, "sql")
        return self.session

    def execute(self, jar: str, statements: list[str], wait_s: float = 300) -> list[str]:
        """Run DDL, SET and INSERT statements; an INSERT is waited for until its job ends or `wait_s`."""
        session, outcomes = self.workspace(jar), []
        for statement in statements:
            page = session.execute(statement)
            if "jobID" not in page:
                outcomes.append("done")
                continue
            run = GatewayRun(self.cluster, page["jobID"], 0.0, 0.0)
            try:
                run.wait(wait_s)
                outcomes.append(f"job {run.job_id} finished")
            except WaitTimeout:
                self.running.append(run)
                outcomes.append(f"job {run.job_id} running")
        return outcomes

    def select(self, jar: str, bootstrap: str, query: str, topic: str,
               bounded: bool) -> tuple[GatewayRun, list[tuple[str, str]]]:
        """Start `query`, its rows written to `topic`; return the run and [(column, Flink type), ...]."""
        started = time.perf_counter()
        session = self.workspace(jar)
        name = f"result_{abs(hash((topic, started)))}"
        try:          # the query on a line of its own: Flink's "line N" is the student's line N + 1
            session.execute(f"CREATE TEMPORARY VIEW `{name}_query` AS\n{query.strip().rstrip(';')}")
        except StreamSqlError as exc:
            raise StreamSqlError(re.sub(r"\bline (\d+)", lambda m: f"line {int(m.group(1)) - 1}",
                                        str(exc))) from None
        columns = sink_columns(session, f"{name}_query")
        session.execute(sink_table(name, columns, result_options(topic, bootstrap, self.login)))
        env_s = time.perf_counter() - started
        run = submitted(session, self.cluster, f"INSERT INTO `{name}` SELECT * FROM `{name}_query`",
                        started, env_s)
        return (run.wait() if bounded else run), columns

    def close(self) -> None:
        """Cancel the jobs left running and close the student's session."""
        for run in self.running:
            with contextlib.suppress(StreamSqlError, ServiceUnavailable):
                run.cancel()
        if self.session is not None:
            self.session.close()
