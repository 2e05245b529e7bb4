"""MariaDB from Debian as the workbook's MySQL: own data directory, 127.0.0.1 only.

The server runs as the current user with socket authentication for that
user; the workbook's own database and user (from MYSQL_DATABASE, MYSQL_USER,
MYSQL_PASSWORD) are created over that socket with bound parameters.
"""
from __future__ import annotations

import getpass
import re
from dataclasses import dataclass
from pathlib import Path

from helpers.core.errors import ConfigError, StackError
from helpers.core.settings import Settings
from helpers.core.waiting import wait_until
from helpers.infra.prereqs import find_program, say
from helpers.infra.processes import (
    check_port_free,
    log_tail,
    port_answers,
    run_command,
    running_process,
    start_detached,
    stop_process,
)

#: longest Unix socket path (sun_path holds 108 bytes with the final NUL); mariadbd exits beyond it
SOCKET_PATH_MAX = 107
#: a TCP login from 127.0.0.1 matches user@localhost: both are created
LOCAL_HOSTS = ("localhost", "127.0.0.1")
INSTALL_DB_TIMEOUT_S = 180     # about 16 s on two cores
#: the binary log in rows, as change data capture reads it (notebook 12); kept one day
BINLOG_OPTIONS = ("--log-bin=binlog", "--binlog-format=ROW", "--binlog-row-image=FULL", "--server-id=1",
                  "--binlog-expire-logs-seconds=86400")
#: what Debezium's snapshot and binlog reader need beyond the workbook database itself
REPLICATION_PRIVILEGES = "RELOAD, REPLICATION SLAVE, BINLOG MONITOR"


def check_socket_path(socket: Path) -> None:
    """Raise a StackError when the socket path is too long for Unix (a deep project folder)."""
    if len(str(socket)) > SOCKET_PATH_MAX:
        raise StackError(f"MariaDB's socket path {socket} has {len(str(socket))} characters, more than "
                         f"the {SOCKET_PATH_MAX} Unix allows: move the workbook to a shorter path, or "
                         "set WORKBOOK_STATE_DIR to a short folder such as /tmp/workbook.")


def check_names(settings: Settings) -> tuple[str, str]:
    """The database and user names, refused unless made of letters, digits and _."""
    database, user = settings.mysql_database, settings.mysql_user
    if not re.fullmatch(r"\w{1,64}", database) or not re.fullmatch(r"\w{1,32}", user):
        raise ConfigError("MYSQL_DATABASE and MYSQL_USER may hold only letters, digits and _.")
    return database, user


@dataclass(frozen=True)
class LocalMariaDB:
    """Where the local MariaDB keeps its data, socket, log and pid."""

    root: Path
    port: int
    bind: str = "127.0.0.1"        # 0.0.0.0 on a class server that students reach over the network
    tls: Path | None = None        # a class server's folder of ca.pem, broker.crt, broker.key: TLS only

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalMariaDB:
        """The workbook's own server (port from MYSQL_PORT)."""
        return cls(settings.state_dir / "mariadb", settings.mysql_port)

    @property
    def data(self) -> Path:
        """The data directory."""
        return self.root / "data"

    @property
    def socket(self) -> Path:
        """The admin socket (socket authentication for the current user)."""
        return self.root / "mysqld.sock"

    @property
    def log(self) -> Path:
        """The server's error log."""
        return self.root / "mariadb.log"

    @property
    def pid_file(self) -> Path:
        """Where the running server's pid is recorded."""
        return self.root / "mariadb.pid"

    def start(self) -> bool:
        """Start the server unless ours already runs; True when it was started now."""
        if running_process(self.pid_file):
            return False
        check_port_free(self.port, "MariaDB", "MYSQL_PORT")
        check_socket_path(self.socket)
        user = getpass.getuser()
        if not (self.data / "mysql").is_dir():
            say("Initialising the MariaDB data directory (first time only)...")
            self.data.mkdir(parents=True, exist_ok=True)
            run_command([find_program("mariadb-install-db") or "mariadb-install-db", "--no-defaults",
                         f"--datadir={self.data}", f"--user={user}",
                         "--auth-root-authentication-method=socket", "--skip-test-db"],
                        timeout=INSTALL_DB_TIMEOUT_S, what="mariadb-install-db")
        say(f"Starting MariaDB on 127.0.0.1:{self.port}...")
        start_detached([find_program("mariadbd") or "mariadbd", "--no-defaults", f"--datadir={self.data}",
                        f"--socket={self.socket}", f"--port={self.port}", f"--bind-address={self.bind}",
                        f"--user={user}", f"--pid-file={self.root / 'mariadbd.pid'}",
                        f"--log-error={self.log}", "--character-set-server=utf8mb4",
                        "--innodb-buffer-pool-size=128M", *BINLOG_OPTIONS, *self.tls_options()],
                       self.root / "stdout.log", self.pid_file)
        wait_until(lambda: port_answers(self.port) and self.socket.exists(), 60,
                   f"MariaDB to accept connections on port {self.port}", detail=lambda: log_tail(self.log))
        return True

    def tls_options(self) -> list[str]:
        """With `tls`: the server's certificate, and no connection over TCP without TLS (the admin
        socket stays as it is)."""
        if self.tls is None:
            return []
        return [f"--ssl-ca={self.tls / 'ca.pem'}", f"--ssl-cert={self.tls / 'broker.crt'}",
                f"--ssl-key={self.tls / 'broker.key'}", "--require-secure-transport=ON"]

    def stop(self) -> int | None:
        """Stop our server; return its pid (None when it was not running)."""
        return stop_process(self.pid_file)

    def admin_connection(self):
        """A PyMySQL connection as the server's owner, over the admin socket."""
        import pymysql

        try:
            return pymysql.connect(unix_socket=str(self.socket), user=getpass.getuser(), autocommit=True)
        except pymysql.MySQLError as exc:
            raise StackError(f"Could not log in to MariaDB as {getpass.getuser()} over "
                             f"{self.socket}: {exc.args[-1]}") from None

    def require_binlog(self) -> None:
        """Raise a StackError unless the running server writes its binary log in rows."""
        with self.admin_connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT @@log_bin, @@binlog_format")
            log_bin, binlog_format = cur.fetchone()
        if not log_bin or binlog_format != "ROW":
            raise StackError("MariaDB runs without its binary log in rows, which change data capture "
                             "reads: restart it with `workbook down` then `workbook up`.")

    def grant_replication(self, settings: Settings, hosts: tuple[str, ...] = LOCAL_HOSTS) -> None:
        """Let the workbook's user read the binary log, as Debezium does (local stack only)."""
        _, user = check_names(settings)
        with self.admin_connection() as conn, conn.cursor() as cur:
            for host in hosts:
                cur.execute(f"GRANT {REPLICATION_PRIVILEGES} ON *.* TO %s@%s", (user, host))

    def drop_database_user(self, settings: Settings, hosts: tuple[str, ...] = LOCAL_HOSTS) -> None:
        """Remove a database and its user (tests and class servers clean up this way)."""
        check_names(settings)
        with self.admin_connection() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{settings.mysql_database}`")
            for host in hosts:
                cur.execute("DROP USER IF EXISTS %s@%s", (settings.mysql_user, host))

    def ensure_database_user(self, settings: Settings, hosts: tuple[str, ...] = LOCAL_HOSTS,
                             max_connections: int = 0) -> None:
        """Create (or update) the workbook's database and its user (from `hosts`, at most
        `max_connections` at once, 0 for no limit) through the admin socket."""
        database, user = check_names(settings)
        password = settings.database_url and settings.mysql_password   # a clear error when unset
        with self.admin_connection() as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")     # no password into the binary log
            # a database name cannot be a bound parameter: it was checked against \w above
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
            for host in hosts:
                cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (user, host, password))
                cur.execute("ALTER USER %s@%s IDENTIFIED BY %s WITH MAX_USER_CONNECTIONS %s",
                            (user, host, password, int(max_connections)))
                cur.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO %s@%s", (user, host))
