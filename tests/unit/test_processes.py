"""Processes and files of the stack, without services: every program has a time limit, a server
started to die with its parent cannot be orphaned, secrets are written whole and private."""
from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

import helpers
from helpers.core.errors import StackError
from helpers.core.waiting import wait_until
from helpers.infra import processes
from helpers.infra.files import write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --- time limits ------------------------------------------------------------------------

def test_a_program_that_hangs_is_stopped_and_said_in_one_sentence():
    with pytest.raises(StackError, match=r"^`sleep 30` did not finish within 0.5 s and was stopped"):
        processes.run_command(["sleep", "30"], timeout=0.5)


def test_a_failing_program_is_quoted_without_its_secrets():
    with pytest.raises(StackError, match=r"`sh -c` failed \(exit 3\):\n.*password \*\*\*") as failure:
        processes.run_command(["sh", "-c", "echo password hunter2 >&2; exit 3"], timeout=10,
                              scrub=lambda text: text.replace("hunter2", "***"))
    assert "hunter2" not in str(failure.value)


def test_every_program_the_package_runs_to_its_end_has_a_time_limit():
    """subprocess.run and communicate() always with timeout=; Popen only for servers, which run on."""
    missing = []
    for path in Path(helpers.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                called = ast.unparse(node.func)
                if (called == "subprocess.run" or called.endswith(".communicate")) \
                        and "timeout" not in {k.arg for k in node.keywords}:
                    missing.append(f"{path.name}:{node.lineno} {called}")
    assert missing == []


# --- a server that dies with its parent ---------------------------------------------------

def test_a_server_started_to_die_with_its_parent_does(tmp_path):
    """A child starts a sleeper with die_with_parent=True, then crashes (no atexit): the sleeper dies
    too, every time (ten runs in a row, the parent dying at once after the start)."""
    code = ("import sys, os; from pathlib import Path; from helpers.infra.processes import start_detached; "
            "p = start_detached([sys.executable, '-c', 'import time; time.sleep(60)'], "
            f"Path({str(tmp_path)!r}) / 'log', Path({str(tmp_path)!r}) / 'pid', die_with_parent=True); "
            "print(p.pid, flush=True); os._exit(1)")
    for _ in range(10):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        pid = int(out.stdout.split()[0])
        assert wait_until(lambda pid=pid: gone(pid), 10, "the orphaned sleeper to die")


def test_a_child_whose_parent_is_already_gone_never_runs_its_program(tmp_path):
    """The one moment the request could come too late: the parent died between the fork and the
    request. The child then has another parent, and exits before its program starts."""
    marker = tmp_path / "ran"
    program = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    late = subprocess.run(processes.dying_with(os.getpid() + 10**6, program), timeout=30)  # not our pid
    assert late.returncode == processes.ORPHAN_EXIT and not marker.exists()
    in_time = subprocess.run(processes.dying_with(os.getpid(), program), timeout=30)
    assert in_time.returncode == 0 and marker.exists()


def test_a_server_of_a_living_parent_runs_on(tmp_path):
    proc = processes.start_detached([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "log",
                                    tmp_path / "pid", die_with_parent=True)
    try:
        assert proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    finally:
        processes.stop_process(tmp_path / "pid", timeout=5)


# --- secrets on disk -------------------------------------------------------------------------

def test_a_private_file_replaces_an_open_one_with_mode_0600(tmp_path):
    path = tmp_path / "secrets.json"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "new")
    assert path.read_text() == "new" and mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.json"]     # no temporary file left


def test_a_failed_private_write_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    write_private(path, "A=1\n")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_private(path, "A=2\n")
    assert path.read_text() == "A=1\n" and [p.name for p in tmp_path.iterdir()] == [".env"]


def test_readers_never_see_half_a_secrets_file(tmp_path):
    """Two writers and a reader at once: every read is a whole file, old or new."""
    path = tmp_path / "secrets.json"
    write_private(path, json.dumps({"n": 0, "pad": "x" * 50_000}))
    errors: list[Exception] = []

    def writer(start: int) -> None:
        for n in range(start, start + 200):
            write_private(path, json.dumps({"n": n, "pad": "x" * 50_000}))

    def reader() -> None:
        for _ in range(400):
            try:
                json.loads(path.read_text())
            except ValueError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in (1, 1000)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_class_server_secrets_and_a_students_old_env_become_private(tmp_path):
    from helpers.classroom.classserver import ClassServer, Student
    from helpers.infra.environment import load_settings

    settings = load_settings({"WORKBOOK_STACK": "local", "WORKBOOK_STATE_DIR": str(tmp_path)},
                             dotenv=tmp_path / "none")
    server = ClassServer.for_settings(settings)
    (server.root / "tls").mkdir(parents=True)
    (server.root / "tls" / "ca.pem").write_text("CA")
    secrets = server.root / "secrets.json"
    secrets.write_text("{}")
    secrets.chmod(0o644)
    first = server.passwords(["alice"])
    assert mode(secrets) == 0o600 and server.passwords(["alice"]) == first     # kept, not made again
    env_file = server.students_dir / "alice.env"
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("old\n")
    env_file.chmod(0o644)
    logins = first["students"]["alice"]
    server.write_env_files([Student("alice", logins["kafka"], logins["mysql"], env_file)])
    assert mode(env_file) == 0o600 and logins["kafka"] in env_file.read_text()


def test_a_brokers_properties_are_private_from_their_first_byte(tmp_path, monkeypatch):
    """server.properties is never, even for a moment, readable by others (a class server's holds
    passwords)."""
    from helpers.infra import files, kafka
    from helpers.infra.environment import load_settings

    settings = load_settings({"WORKBOOK_STACK": "local", "WORKBOOK_STATE_DIR": str(tmp_path)},
                             dotenv=tmp_path / "none")
    seen = []
    real_replace = os.replace

    def replace_and_look(src, dst):
        seen.append((Path(dst).name, mode(Path(src))))
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace_and_look)
    cluster = kafka.LocalKafka.for_settings(settings)
    cluster.write_configs()
    properties = cluster.nodes[0].root / "server.properties"
    assert ("server.properties", 0o600) in seen and mode(properties) == 0o600


def test_formatting_leaves_no_argument_file_when_java_cannot_start(tmp_path, monkeypatch):
    """The @file holds the SCRAM passwords: it is removed even when the JVM never starts."""
    from helpers.infra import kafka
    from helpers.infra.environment import load_settings

    settings = load_settings({"WORKBOOK_STACK": "local", "WORKBOOK_STATE_DIR": str(tmp_path)},
                             dotenv=tmp_path / "none")
    cluster = kafka.LocalKafka.for_settings(settings)
    cluster.write_configs()

    def no_java(*args, **kwargs):
        raise FileNotFoundError("java")

    monkeypatch.setattr(kafka.subprocess, "Popen", no_java)
    with pytest.raises(FileNotFoundError):
        cluster.format()
    root = cluster.nodes[0].root
    assert list(root.glob("*.args")) == [] and list(root.glob(".*.args")) == []


def test_a_free_port_block_is_free_from_its_first_to_its_last_port():
    from helpers.infra.processes import free_port_block, port_is_free

    first = free_port_block(4)
    assert first + 3 <= 65535 and all(port_is_free(first + i) for i in range(4))
