"""The environment: `.env` overlaid with the process's variables, read once into Settings (00_setup).

`load_settings` is the one place that reads them (with `child_env`, which
hands them on to a child process, and the probe of a Docker engine); a notebook or command calls
it once (through `Workbook.from_env()`) and passes what it built along.
`.env` is parsed by python-dotenv: quotes, `export`, and a comment after a
value (`KEY=value   # why`) are understood. Writes to `.env` replace it
atomically, readable by its owner only (it holds passwords).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from dotenv import dotenv_values

from helpers.core.errors import ConfigError
from helpers.core.settings import (
    PROJECT_ROOT,
    KafkaSecurity,
    Settings,
    parse_brokers,
    parse_kafka_security,
    settings_from,
)
from helpers.infra.files import write_private

__all__ = ["child_env", "commands_on_path", "docker_engine_answers", "kafka_security_from_env",
           "load_settings", "read_dotenv", "save_setting", "set_brokers"]

DOCKER_PROBE_TIMEOUT_S = 5.0


def read_dotenv(path: Path) -> dict[str, str]:
    """The KEY=VALUE lines of a `.env` file (comments, blanks and inline comments left out)."""
    if not path.is_file():
        return {}
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if text and not text.startswith("#"):
            key, sep, _ = text.removeprefix("export ").partition("=")
            if not sep or not key.strip().isidentifier():
                raise ConfigError(f"{path.name} line {number} is not KEY=VALUE: fix or remove it.")
    return {key: value or "" for key, value in dotenv_values(path, interpolate=False).items()}


def dotenv_path() -> Path:
    """The `.env` file: the project's, or WORKBOOK_DOTENV's (a hub server's ~/.env)."""
    return Path(os.environ.get("WORKBOOK_DOTENV") or PROJECT_ROOT / ".env")


def load_settings(env: dict[str, str] | None = None, dotenv: Path | None = None) -> Settings:
    """Settings from `.env` overlaid with the environment (the environment wins)."""
    values = read_dotenv(dotenv or dotenv_path())
    values.update(os.environ if env is None else env)
    return settings_from(values, docker_engine_answers)


def save_setting(name: str, value: str, path: Path | None = None) -> None:
    """Write NAME=value into `.env`: replace the line that sets it, or append one."""
    import re

    path = path or dotenv_path()
    lines = path.read_text().splitlines() if path.is_file() else []
    pattern = re.compile(rf"^\s*(export\s+)?{re.escape(name)}\s*=")
    kept = [line for line in lines if not pattern.match(line)]
    if len(kept) == len(lines):
        kept.append(f"{name}={value}")
    else:   # keep the setting where it was
        index = next(i for i, line in enumerate(lines) if pattern.match(line))
        kept.insert(index, f"{name}={value}")
    write_private(path, "\n".join(kept) + "\n")


def set_brokers(count: int, dotenv: Path | None = None) -> Settings:
    """Record WORKBOOK_BROKERS=count in `.env`, so that status, down and the notebooks agree; reload."""
    parse_brokers(str(count))
    given = os.environ.get("WORKBOOK_BROKERS", "").strip()
    if given and given != str(count):
        raise ConfigError(f"WORKBOOK_BROKERS={given} is set in the environment, which wins over .env: "
                          f"unset it, or set it to {count}.")
    save_setting("WORKBOOK_BROKERS", str(count), dotenv)
    return load_settings(dotenv=dotenv)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: ours plus `extra`."""
    return {**os.environ, **extra}


@cache
def docker_engine_answers() -> bool:
    """True when a Docker engine (not just the CLI) and its compose plugin respond (asked once a process)."""
    if shutil.which("docker") is None:
        return False
    try:
        for args in (["docker", "info"], ["docker", "compose", "version"]):
            subprocess.run(args, capture_output=True, timeout=DOCKER_PROBE_TIMEOUT_S, check=True)
    except (subprocess.SubprocessError, OSError):
        return False
    return True


def kafka_security_from_env() -> KafkaSecurity:
    """KafkaSecurity from this process's environment alone (a Flink session, set by its parent)."""
    return parse_kafka_security(os.environ.get)


def flink_target_from_env() -> tuple[str, str, str]:
    """(FLINK_CLUSTER, WORKBOOK_STUDENT, FLINK_GATEWAY) from this process's environment alone (a Flink
    session)."""
    return (os.environ.get("FLINK_CLUSTER", ""), os.environ.get("WORKBOOK_STUDENT", ""),
            os.environ.get("FLINK_GATEWAY", ""))


def commands_on_path() -> None:
    """Put this Python's scripts folder (`workbook`, `jupyter`) first on PATH unless it is on it: a kernel
    started by a full path does not always inherit the environment's PATH."""
    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + path
