"""Processes and ports: run a program within a time limit, start a server in the background,
find it, stop it.

A pid file holds the pid *and* the process's start time, so a pid that the
system has since given to another program is never mistaken for our server.
Every program the workbook runs to its end goes through `run_command`, which
gives up after a time limit and says so in one sentence.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from helpers.core.errors import StackError

ORPHAN_EXIT = 137             # how a server started too late for its parent exits (128 + SIGKILL)


def run_command(args: Sequence[str], *, timeout: float, what: str = "", cwd: Path | None = None,
                env: dict[str, str] | None = None, scrub: Callable[[str], str] = str,
                check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a program to its end, its output captured; raise a StackError when it fails or hangs.

    `what` names it in the error (default: its first two words); `scrub` hides
    secrets from the output quoted there. After `timeout` seconds the program
    is killed, and the error says so.
    """
    what = what or " ".join(args[:2])
    try:
        result = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise StackError(f"`{what}` did not finish within {timeout:g} s and was stopped: "
                         "run it again, and see whether the machine is overloaded.") from None
    except OSError as exc:
        raise StackError(f"`{what}` could not start: {exc.strerror or exc}.") from None
    if check and result.returncode != 0:
        output = scrub((result.stdout + result.stderr).strip())[-1500:]
        raise StackError(f"`{what}` failed (exit {result.returncode}):\n{output}")
    return result


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


def check_port_free(port: int, service: str, variable: str) -> None:
    """Raise a clear StackError naming the variable when a port is taken."""
    if not port_is_free(port):
        raise StackError(f"Port {port} for {service} is already in use by another program: "
                         f"stop it, or set {variable} to a free port in .env.")


def free_port() -> int:
    """A TCP port that nothing listens on right now (for throw-away clusters and tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_block(count: int) -> int:
    """A free port whose next `count - 1` ports are free too (a hub and the ports it counts from it)."""
    while True:
        port = free_port()
        if port + count <= 65535 and all(port_is_free(port + i) for i in range(1, count)):
            return port


def running_process(pid_file: Path) -> psutil.Process | None:
    """The process recorded in `pid_file` if it still runs (same pid, same start time)."""
    try:
        record = json.loads(pid_file.read_text())
        proc = psutil.Process(int(record["pid"]))
        if abs(proc.create_time() - float(record["started"])) > 1.0:
            return None            # the pid now belongs to another program
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        return None
    return proc


def dying_with(parent: int, args: list[str]) -> list[str]:
    """`args` started so that the program gets SIGKILL when `parent`'s thread ends, and never starts at
    all if `parent` has already ended.

    `setpriv --pdeathsig KILL` asks Linux for the signal, then execs a shell
    (the request survives exec) that checks its parent is still `parent`
    before it execs the program: if the parent died before the request was
    made, the shell has been given to another parent and exits. No window is
    left in which the program could run orphaned; the pid stays the same
    through every exec, so the pid file names the program itself.
    """
    if shutil.which("setpriv") is None:
        raise StackError("setpriv (util-linux) is missing: run `sudo apt-get install -y util-linux`.")
    check = f'[ "$PPID" = "{int(parent)}" ] || exit {ORPHAN_EXIT}; exec "$@"'
    return ["setpriv", "--pdeathsig", "KILL", "--", "sh", "-c", check, "sh", *args]


def start_detached(args: list[str], log: Path, pid_file: Path,
                   env: dict[str, str] | None = None, die_with_parent: bool = False) -> psutil.Process:
    """Start a long-running server in its own session, output to `log`; record it in `pid_file`.

    die_with_parent=True: the server gets SIGKILL when the thread that started
    it ends (`dying_with`): start such servers from the main thread, and they
    cannot outlive a killed kernel or test run.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    if die_with_parent:
        args = dying_with(os.getpid(), args)
    with open(log, "ab") as out:
        popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, env=env)
    proc = psutil.Process(popen.pid)
    pid_file.write_text(json.dumps({"pid": proc.pid, "started": proc.create_time()}))
    return proc


def stop_process(pid_file: Path, timeout: float = 30.0) -> int | None:
    """Terminate the recorded process and its children, kill what lingers; return its pid."""
    stopped = stop_processes([pid_file], timeout)
    return stopped[0] if stopped else None


def stop_processes(pid_files: list[Path], timeout: float = 30.0) -> list[int]:
    """Terminate the recorded processes (and children) all at once, kill what lingers; return their pids.

    All at once, because the nodes of a Kafka quorum shut down together: one
    by one, the last node waits for a quorum that has already left.
    """
    leaders, family = [], []
    for pid_file in pid_files:
        proc = running_process(pid_file)
        pid_file.unlink(missing_ok=True)
        if proc is not None:
            leaders.append(proc)
            family += [proc, *proc.children(recursive=True)]
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(alive, timeout=5)
    return [proc.pid for proc in leaders]


def kill_process(pid_file: Path) -> int | None:
    """SIGKILL the recorded process at once, as a crash would (the pid file stays)."""
    killed = kill_processes([pid_file])
    return killed[0] if killed else None


def kill_processes(pid_files: list[Path]) -> list[int]:
    """SIGKILL every recorded process at once, then wait until they are gone; return their pids."""
    procs = [proc for proc in map(running_process, pid_files) if proc is not None]
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(procs, timeout=10)
    return [proc.pid for proc in procs]


def log_tail(log: Path, lines: int = 15) -> str:
    """The last lines of a log file, ready to append to an error message."""
    if not log.is_file():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log}:\n" + "\n".join(tail)
