"""The programs the local stack needs, installed with apt when we are root."""
from __future__ import annotations

import os
import shutil
import sys

from helpers.core.errors import StackError
from helpers.infra.environment import child_env
from helpers.infra.processes import run_command

APT_PACKAGES = {"java": "openjdk-17-jre-headless", "javac": "openjdk-17-jdk-headless", "mvn": "maven",
                "mariadbd": "mariadb-server", "chromium": "chromium", "openssl": "openssl"}
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
APT_TIMEOUT_S = 900            # a slow mirror: update and install of Java, Maven and MariaDB


def say(message: str) -> None:
    """Progress for the person at the terminal (stderr, so --json stays clean)."""
    print(message, file=sys.stderr, flush=True)


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
    if running_in_kernel():
        raise StackError(f"{', '.join(missing)} not found: run `make up` in a terminal, which installs "
                         f"{packages} (a notebook never installs system packages), then run this cell again.")
    if os.geteuid() != 0:
        raise StackError(f"{', '.join(missing)} not found: run "
                         f"`sudo apt-get update && sudo apt-get install -y {packages}`, then retry.")
    say(f"Installing {packages} with apt-get (first time only, about a minute)...")
    env = child_env(DEBIAN_FRONTEND="noninteractive")
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages.split()]):
        run_command(args, env=env, timeout=APT_TIMEOUT_S, what=" ".join(args[:2]))


def running_in_kernel() -> bool:
    """True inside a Jupyter kernel (a notebook or Voilà): where no package may be installed."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"
