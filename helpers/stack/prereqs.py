"""The programs the local stack needs, installed with apt when we are root."""
from __future__ import annotations

import os
import shutil
import subprocess

from ..config import child_env
from ..errors import StackError

APT_PACKAGES = {"java": "openjdk-17-jre-headless", "mvn": "maven", "mariadbd": "mariadb-server",
                "chromium": "chromium", "openssl": "openssl"}
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def say(message: str) -> None:
    """Progress for the person at the terminal (stderr, so --json stays clean)."""
    import sys

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
    if os.geteuid() != 0:
        raise StackError(f"{', '.join(missing)} not found: run "
                         f"`sudo apt-get update && sudo apt-get install -y {packages}`, then retry.")
    say(f"Installing {packages} with apt-get (first time only, about a minute)...")
    env = child_env(DEBIAN_FRONTEND="noninteractive")
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages.split()]):
        result = subprocess.run(args, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"`{' '.join(args)}` failed:\n{result.stderr[-2000:]}")
