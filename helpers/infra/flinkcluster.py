"""One Flink for the whole class: a session cluster that runs every student's SQL jobs.

On a laptop each student's Flink runs in their own Python process (a JVM of
about 0.6 GB at peak, helpers/pipeline/flinksql.py). On a class server with a
hub, 30 such JVMs would need ~18 GB, so `workbook class up --hub` starts one
standalone session cluster instead, with the launchers the `apache-flink`
package ships (`pyflink/bin/jobmanager.sh`, `taskmanager.sh`): a JobManager
and one TaskManager with a slot per student, bound to 127.0.0.1, and with a
gateway port its SQL Gateway (`sql-gateway.sh`, its jar from stack/pom.xml).
The hub's servers get FLINK_CLUSTER and FLINK_GATEWAY (`session_env`): their
sessions send their SQL to the gateway, which plans it and submits the jobs
here, each named after its student (`alice: buy join`).

Flink's REST API and the gateway have no logins: anyone on the machine may
list or cancel the class's jobs. Run as root, the cluster and its gateway
therefore run as the system user `workbook-flink`, so that the SQL a student
submits (which runs inside them) can read only what every account may read,
not the class's secrets.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from helpers.core.errors import StackError
from helpers.core.waiting import wait_until
from helpers.infra.environment import child_env
from helpers.infra.files import require_readable
from helpers.infra.processes import (
    free_port,
    log_tail,
    run_command,
    running_process,
    start_detached,
    stop_processes,
)

FLINK_USER = "workbook-flink"
MB_PER_SLOT = 48              # a buy join's heap and network buffers (measured in bench.class_size)
TASKMANAGER_BASE_MB = 1024    # the TaskManager's JVM, framework and metaspace before any job
JOBMANAGER_MB = 768
RESTART_ATTEMPTS = 3
GATEWAY_IDLE_TIMEOUT = "4 h"   # a gateway session unused this long is closed (Flink's default: 10 min)
LOG4J = """rootLogger.level = WARN
rootLogger.appenderRef.main.ref = MainAppender
appender.main.name = MainAppender
appender.main.type = Console
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{HH:mm:ss,SSS} %-5p %c{1} - %m%n
"""


def flink_bin() -> Path:
    """The launchers shipped in the installed apache-flink package."""
    import pyflink

    return Path(pyflink.__file__).parent / "bin"


@dataclass(frozen=True)
class FlinkCluster:
    """A JobManager and a TaskManager under `root`, REST API on 127.0.0.1:`rest_port`, `slots` slots."""

    root: Path
    rest_port: int
    slots: int = 32
    gateway_port: int = 0              # its SQL Gateway's REST API (0: no gateway)
    gateway_jar: Path | None = None    # flink-sql-gateway-<version>.jar (stack/pom.xml)

    @property
    def roles(self) -> tuple[str, ...]:
        """Its processes: a jobmanager, a taskmanager and, with a gateway port, the sql-gateway."""
        return ("jobmanager", "taskmanager", *(("sql-gateway",) if self.gateway_port else ()))

    @property
    def gateway_address(self) -> str:
        """host:port of the SQL Gateway: what FLINK_GATEWAY says to the students' sessions ('' if none)."""
        return f"127.0.0.1:{self.gateway_port}" if self.gateway_port else ""

    @property
    def address(self) -> str:
        """host:port of the REST API: what FLINK_CLUSTER says to the students' sessions."""
        return f"127.0.0.1:{self.rest_port}"

    @property
    def session_env(self) -> dict[str, str]:
        """What a student's Flink session needs to send its SQL here (their `.env` holds it)."""
        return {"FLINK_CLUSTER": self.address, "FLINK_GATEWAY": self.gateway_address}

    @property
    def taskmanager_mb(self) -> int:
        """The TaskManager's whole process size: a base plus a share per slot."""
        return TASKMANAGER_BASE_MB + MB_PER_SLOT * self.slots

    def config(self, rpc_port: int) -> str:
        """Flink's config.yaml: everything on 127.0.0.1, the sizes above, a slot request that fails
        after a minute rather than waiting five, a failed job restarted."""
        settings = {
            "jobmanager": {"rpc": {"address": "127.0.0.1", "port": rpc_port}, "bind-host": "127.0.0.1",
                           "memory": {"process": {"size": f"{JOBMANAGER_MB}m"}}},
            "taskmanager": {"bind-host": "127.0.0.1", "host": "127.0.0.1", "numberOfTaskSlots": self.slots,
                            "memory": {"process": {"size": f"{self.taskmanager_mb}m"},
                                       "managed": {"fraction": 0.05}}},
            "rest": {"address": "127.0.0.1", "bind-address": "127.0.0.1", "port": self.rest_port},
            "slot": {"request": {"timeout": 60000}},
            # thirty jobs starting at once on two cores: measured, 3 of 30 failed on a Kafka login that
            # timed out ("Timed out waiting for a node assignment") and 1 on a class loaded twice at once;
            # a job that fails while it starts is started again, three times at most
            "restart-strategy": {"type": "fixed-delay",
                                 "fixed-delay": {"attempts": RESTART_ATTEMPTS, "delay": "10 s"}},
            "io": {"tmp": {"dirs": str(self.root / "tmp")}},
            "parallelism": {"default": 1},
            # the gateway submits to this cluster; a session a kernel left open is closed after a lesson
            "execution": {"target": "remote"},
            "sql-gateway": {"endpoint": {"rest": {"address": "127.0.0.1", "bind-address": "127.0.0.1",
                                                  "port": self.gateway_port}},
                            "session": {"idle-timeout": GATEWAY_IDLE_TIMEOUT}},
        }
        return json.dumps(settings, indent=1)      # JSON is YAML

    def configured_slots(self) -> int:
        """The slots of the configuration the cluster last started with (0 before its first start)."""
        config = self.root / "conf" / "config.yaml"
        if not config.is_file():
            return 0
        return int(json.loads(config.read_text())["taskmanager"]["numberOfTaskSlots"])

    def pid_file(self, role: str) -> Path:
        """Where the pid of the jobmanager or the taskmanager is kept."""
        return self.root / f"{role}.pid"

    def log(self, role: str) -> Path:
        """The console output of the jobmanager or the taskmanager."""
        return self.root / "log" / f"{role}.out"

    def running(self) -> bool:
        """True while all its processes run."""
        return all(running_process(self.pid_file(role)) for role in self.roles)

    def start(self) -> bool:
        """Start the cluster unless it runs; True when it was started."""
        if self.running():
            return False
        self.stop()
        for folder in ("conf", "log", "tmp", "opt"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        if self.gateway_port:          # sql-gateway.sh looks for its jar in FLINK_OPT_DIR
            if self.gateway_jar is None or not self.gateway_jar.is_file():
                raise StackError(f"The Flink SQL Gateway jar is missing ({self.gateway_jar}); run `make up`.")
            shutil.copy2(self.gateway_jar, self.root / "opt" / self.gateway_jar.name)
        (self.root / "conf" / "config.yaml").write_text(self.config(free_port()))
        (self.root / "conf" / "log4j-console.properties").write_text(LOG4J)
        user = as_flink_user(self.root)
        if user:
            require_readable(flink_bin() / "jobmanager.sh", who=f"The class's Flink account {FLINK_USER}")
        env = child_env(FLINK_CONF_DIR=str(self.root / "conf"), FLINK_LOG_DIR=str(self.root / "log"),
                        FLINK_OPT_DIR=str(self.root / "opt"))
        for role in self.roles:
            start_detached([*user, str(flink_bin() / f"{role}.sh"), "start-foreground"],
                           self.log(role), self.pid_file(role), env=env)
        return True

    def overview(self) -> dict:
        """The REST API's /overview: task managers, slots, jobs."""
        with urllib.request.urlopen(f"http://{self.address}/overview", timeout=5) as answer:
            return json.load(answer)

    def wait_ready(self, timeout: float = 90) -> dict:
        """Wait until the TaskManager has registered its slots and the gateway answers; raise with the log
        when a process died."""
        def ready() -> bool:
            for role in self.roles:
                if not running_process(self.pid_file(role)):
                    raise StackError(f"The class's Flink {role} stopped while starting"
                                     f"{log_tail(self.log(role))}")
            try:
                if self.gateway_port:
                    with urllib.request.urlopen(f"http://{self.gateway_address}/v3/info", timeout=5):
                        pass
                return self.overview()["slots-total"] >= self.slots
            except OSError:
                return False

        wait_until(ready, timeout, "the class's Flink cluster to offer its slots", interval=1)
        return self.overview()

    def jobs(self) -> list[dict]:
        """Every job the cluster knows: id, name, state."""
        return cluster_jobs(self.address)

    def stop(self) -> bool:
        """Stop its processes (a gateway too, whatever gateway_port says now); True when one ran."""
        every = ("jobmanager", "taskmanager", "sql-gateway")
        return bool(stop_processes([self.pid_file(role) for role in every]))


def cluster_jobs(address: str) -> list[dict]:
    """Every job the cluster at host:port knows: id, name, state."""
    with urllib.request.urlopen(f"http://{address}/jobs/overview", timeout=5) as answer:
        return [{"id": j["jid"], "name": j["name"], "state": j["state"]} for j in json.load(answer)["jobs"]]


def cancel_job(address: str, job_id: str) -> None:
    """Ask the cluster at host:port to cancel a job (it answers at once; the job ends soon after)."""
    request = urllib.request.Request(f"http://{address}/jobs/{job_id}?mode=cancel", method="PATCH")
    with urllib.request.urlopen(request, timeout=10):
        pass


def as_flink_user(root: Path) -> list[str]:
    """The prefix that runs a command as FLINK_USER when we are root (the user made on first use and
    given `root`), else nothing."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(FLINK_USER)
    except KeyError:
        run_command(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FLINK_USER],
                    timeout=30, what=f"useradd {FLINK_USER}")
    entry = pwd.getpwnam(FLINK_USER)
    for path in [root, *root.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    setpriv = shutil.which("setpriv") or "setpriv"
    return [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--"]
