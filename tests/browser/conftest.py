"""Browser fixtures: Chromium from Debian, a Voilà server for notebook 06, a fresh page."""
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest

from helpers.config import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "06_dashboard.ipynb"
ARTIFACTS = PROJECT_ROOT / "build" / "browser"
SERVER_START_S = 60
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 1300}


class Server(NamedTuple):
    """A running Voilà server: its URL and its log file."""

    url: str
    log: Path

    def tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        return log_tail(self.log, lines)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    """True when `url` returns HTTP 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def log_tail(log: Path, lines: int = 20) -> str:
    """The last lines of a log file, for failure messages."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.is_file() else ""


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of the Chromium executable (installed with apt-get when root and missing)."""
    from helpers.stack.prereqs import ensure_programs, find_program

    ensure_programs(("chromium",))
    return find_program("chromium")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """build/browser/: screenshots and the Voilà log."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def voila(settings, artifacts) -> Server:
    """A token-free Voilà server on a free 127.0.0.1 port serving notebook 06; stopped afterwards."""
    from helpers.waiting import wait_until

    port, log = free_port(), artifacts / "voila.log"
    args = [sys.executable, "-m", "voila", "--no-browser", f"--port={port}",
            "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--show_tracebacks=True",
            str(NOTEBOOK)]
    with log.open("w") as out:
        proc = subprocess.Popen(args, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: proc.poll() is not None or answers(url + "voila/static/voila.js"),
                   SERVER_START_S, f"Voilà on {url}",
                   detail=lambda: f"; last lines of {log}:\n{log_tail(log)}")
        if proc.poll() is not None:
            pytest.fail(f"Voilà exited with code {proc.returncode}; "
                        f"last lines of {log}:\n{log_tail(log)}")
        yield Server(url, log)
    finally:
        if proc.poll() is None:                 # Voilà and its kernels: one process group
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def keep_local(route) -> None:
    """Let requests to 127.0.0.1 through and abort the rest (Voilà's page links a CDN font)."""
    if route.request.url.startswith("http://127.0.0.1:"):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def page(chromium_path, tmp_path):
    """A page of headless Chromium with a fresh profile that reaches only 127.0.0.1."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            tmp_path / "chromium-profile", executable_path=chromium_path, headless=True,
            args=CHROMIUM_ARGS, viewport=VIEWPORT)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.route("**/*", keep_local)
            yield page
        finally:
            context.close()
