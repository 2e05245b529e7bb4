"""A JupyterHub beside the class server, so that a student needs only a browser.

`workbook class up --hub` (as root) starts, next to the class server's Kafka
and MariaDB:
- a Flink session cluster for everybody's SQL and its SQL Gateway, so a
  student's session sends SQL over REST and runs no JVM of its own
  (helpers/infra/flinkcluster.py, helpers/pipeline/flinkgateway.py);
- JupyterHub on `http://<host>:<port>/`, with its proxy (configurable-http-proxy
  from npm). Each student logs in with the id and the first password of the
  hand-out sheet (`<state>/class/hub/handout.csv`, readable by root only), and
  may change it at /hub/change-password (NativeAuthenticator). The instructor
  logs in as `admin` and has JupyterHub's admin page: who is logged in, whose
  server runs, when each was last active; open, stop or start any server.
- one Unix account per student, `wb-<id>`, home readable by its owner only,
  holding `course/` (the notebooks as students get them, no solutions) and
  `.env` (their namespace, logins and the CA, plus FLINK_CLUSTER and
  FLINK_GATEWAY). Their server
  runs as that account, with WORKBOOK_DOTENV pointing at that `.env`.
The server's own folders (Kafka's and MariaDB's data, the keys, the hub's
database) and the instructor's `solutions/` and `build/` become readable by
root only, so no student reads another's data or the answers from disk.
Ports: the hub on `port`, its API on port+1, the proxy's API on port+2,
Flink's REST API on port+3, its SQL Gateway on port+4.
"""
from __future__ import annotations

import csv
import io
import json
import os
import pwd
import shutil
import sys
import sysconfig
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from helpers.classroom.classserver import ClassServer, Student, new_password
from helpers.core.errors import ConfigError, StackError
from helpers.core.settings import PROJECT_ROOT
from helpers.core.waiting import wait_until
from helpers.infra.files import readable_by_all, require_readable, write_private
from helpers.infra.flinkcluster import FlinkCluster
from helpers.infra.prereqs import ensure_programs
from helpers.infra.processes import log_tail, run_command, running_process, start_detached, stop_process

PROXY_PACKAGE = "configurable-http-proxy@5.3.0"
PORTS = 5     # from `port` on: the hub, its API, the proxy's API, Flink's REST API, the SQL Gateway
UNIX_PREFIX = "wb-"
INSTRUCTOR = "admin"
COURSE_FILES = sorted((PROJECT_ROOT / "notebooks").glob("[0-9]*.ipynb")) + [PROJECT_ROOT / "notebooks" /
                                                                          "dashboard.ipynb"]
PRIVATE_PROJECT_DIRS = ("solutions", "build")


def unix_name(student: str) -> str:
    """The Unix account a student's server runs as."""
    return UNIX_PREFIX + student


@dataclass(frozen=True)
class Hub:
    """The class server's hub: `Hub(server, port=8000).up(students)`."""

    server: ClassServer
    port: int = 8000

    @property
    def root(self) -> Path:
        """Where the hub keeps its configuration, database and hand-out sheet."""
        return self.server.root / "hub"

    @property
    def url(self) -> str:
        """Where students point their browser."""
        return f"http://{self.server.host}:{self.port}/"

    @property
    def flink(self) -> FlinkCluster:
        """The class's Flink cluster, a slot per student and two spare, and its SQL Gateway."""
        secrets = self.server.root / "secrets.json"        # read, never made here (`class down`)
        students = len(json.loads(secrets.read_text())["students"]) if secrets.is_file() else 0
        libs = self.server.settings.state_dir / "libs" / "flink-gateway"
        jars = sorted(libs.glob("flink-sql-gateway-*.jar"))
        return FlinkCluster(self.server.root / "flink", self.port + 3, slots=students + 2,
                            gateway_port=self.port + 4, gateway_jar=jars[-1] if jars else None)

    @property
    def pid_file(self) -> Path:
        """The hub's pid (its proxy is its child)."""
        return self.root / "jupyterhub.pid"

    @property
    def log(self) -> Path:
        """The hub's and the proxy's output."""
        return self.root / "jupyterhub.log"

    def up(self, students: list[Student], full_names: dict[str, str] | None = None) -> Path:
        """Start Flink and the hub (idempotent), make each student's account; return the hand-out sheet."""
        if os.geteuid() != 0:
            raise ConfigError("The hub makes a Unix account per student, so that nobody reads another's "
                              "files: run it as root (sudo .venv/bin/workbook class up --hub).")
        ensure_programs(("npm", "setpriv", "useradd"))
        require_readable(PROJECT_ROOT, Path(sysconfig.get_paths()["purelib"]), self.server.settings.state_dir)
        flink = self.flink
        if flink.running() and flink.configured_slots() != flink.slots:
            flink.stop()             # more students, more slots: the running jobs end (see the docs)
        flink.start()
        accounts = self.passwords([s.name for s in students])
        for student in students:
            self.make_account(student, flink)
        self.lock_down()
        proxy = self.proxy_command()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        python = self.student_python()
        facts = json.dumps({
            "students": sorted(accounts["students"]), "bind": self.server.bind, "port": self.port,
            "proxy": str(proxy), "python": str(python), "jupyter_prefix": sys.prefix,
            "root": str(self.root)})
        known = self.root / "hub.json"
        if running_process(self.pid_file) and (not known.is_file() or known.read_text() != facts):
            stop_process(self.pid_file)      # new students: the hub reads its accounts when it starts
        known.write_text(facts)
        if not running_process(self.pid_file):
            start_detached([str(Path(sys.executable).parent / "jupyterhub"), "-f", str(self.config_file())],
                           self.log, self.pid_file)
        flink.wait_ready()
        self.wait_ready()
        return self.write_handout(students, accounts, full_names or {})

    def passwords(self, names: list[str]) -> dict:
        """The hub's first passwords (a student may change theirs), kept in hub/accounts.json."""
        path = self.root / "accounts.json"
        data = json.loads(path.read_text()) if path.is_file() else {}
        data.setdefault(INSTRUCTOR, new_password())
        known = data.setdefault("students", {})
        for name in names:
            known.setdefault(name, new_password())
        self.root.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(data, indent=1))
        return data

    def make_account(self, student: Student, flink: FlinkCluster) -> None:
        """The student's Unix account, its private home, their `.env` and a copy of the course."""
        name = unix_name(student.name)
        try:
            pwd.getpwnam(name)
        except KeyError:
            run_command(["useradd", "--create-home", "--shell", "/bin/bash", name], timeout=30,
                        what=f"useradd {name}")
        entry = pwd.getpwnam(name)
        home = Path(entry.pw_dir)
        os.chmod(home, 0o700)
        env = {**self.server.student_env(student), **flink.session_env}
        lines = [f"# {student.name}'s settings on the class server (private: it holds your passwords).",
                 *(f"{k}={v}" for k, v in env.items())]
        write_private(home / ".env", "\n".join(lines) + "\n")
        course = home / "course"
        course.mkdir(exist_ok=True)
        for notebook in COURSE_FILES:
            if not (course / notebook.name).exists():          # a student's own work is never replaced
                shutil.copyfile(notebook, course / notebook.name)
        for path in [home / ".env", course, *course.iterdir()]:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def lock_down(self) -> None:
        """The class server's data and keys, and the instructor's solutions, readable by root only."""
        # flink/ is owned by the Flink account: its blobs hold the jobs' logins
        for folder in [*(self.server.root / d for d in ("kafka", "mariadb", "tls", "hub", "flink")),
                       *(PROJECT_ROOT / d for d in PRIVATE_PROJECT_DIRS)]:
            if folder.is_dir():
                os.chmod(folder, 0o700)

    def proxy_command(self) -> Path:
        """configurable-http-proxy, installed once from npm into <state>/libs/hub."""
        prefix = self.server.settings.state_dir / "libs" / "hub"
        command = prefix / "node_modules" / ".bin" / "configurable-http-proxy"
        if not command.exists():
            print(f"Installing {PROXY_PACKAGE} from npm into {prefix}...", flush=True)
            run_command(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), PROXY_PACKAGE],
                        timeout=300, what="npm install configurable-http-proxy")
        return command

    def student_python(self) -> Path:
        """A Python every account may run, with the workbook's packages: the venv's own when its
        interpreter can be reached by all, else (a Python installed under /root, say) a venv of the
        system's python3.X in <state>/libs/hub/python that reads this venv's packages. Its bin/ also
        holds a `workbook` command for the students' terminals."""
        if readable_by_all(Path(sys.executable).resolve()):
            return Path(sys.executable)
        system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
        if not readable_by_all(system):
            raise StackError(f"{sys.executable} lies in a folder other accounts cannot open, and {system} "
                             f"is missing: install it (apt-get install -y python3), or the workbook's venv "
                             "with a Python every account can run.")
        venv = self.server.settings.state_dir / "libs" / "hub" / "python"
        python = venv / "bin" / "python"
        if not python.exists():
            run_command([str(system), "-m", "venv", "--without-pip", str(venv)], timeout=120,
                        what="python -m venv (the students' Python)")
        packages = sysconfig.get_paths()["purelib"]
        where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        site_dir = Path(run_command([str(python), "-c", where], timeout=30).stdout.strip())
        (site_dir / "workbook.pth").write_text(f"import site; site.addsitedir({packages!r})\n")
        command = venv / "bin" / "workbook"
        command.write_text(f"#!{python}\nimport sys\nfrom helpers.cli import main\nsys.exit(main())\n")
        command.chmod(0o755)
        return python

    def config_file(self) -> Path:
        """jupyterhub_config.py: everything comes from `configure` below."""
        path = self.root / "jupyterhub_config.py"
        path.write_text("from pathlib import Path\nfrom helpers.classroom.hubconfig import configure\n"
                        f"configure(c, Path({str(self.root)!r}))\n")
        return path

    def wait_ready(self, timeout: float = 90) -> None:
        """Wait until the hub answers through its proxy; raise with its log when it died."""
        def answers() -> bool:
            if not running_process(self.pid_file):
                raise StackError(f"JupyterHub stopped while starting{log_tail(self.log)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/hub/api/", timeout=3) as reply:
                    return reply.status == 200
            except OSError:
                return False

        wait_until(answers, timeout, "JupyterHub to answer", interval=1)

    def write_handout(self, students: list[Student], accounts: dict, full_names: dict[str, str]) -> Path:
        """The sheet the instructor cuts into slips: name, login, first password, address (root only)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["full name", "login", "first password", "hub"])
        writer.writerow(["(instructor)", INSTRUCTOR, accounts[INSTRUCTOR], self.url])
        for student in students:
            writer.writerow([full_names.get(student.name, ""), student.name,
                             accounts["students"][student.name], self.url])
        path = self.root / "handout.csv"
        write_private(path, out.getvalue())
        return path

    def down(self) -> list[str]:
        """Stop the hub (it stops the students' servers first) and Flink; return what was stopped."""
        stopped = []
        if stop_process(self.pid_file):
            stopped.append("jupyterhub")
        if self.flink.stop():
            stopped.append("flink (class server)")
        return stopped
