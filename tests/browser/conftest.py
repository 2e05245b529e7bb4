"""Browser fixtures: Chromium from Debian, a Voilà server for the dashboard notebook, a fresh page."""
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest

from helpers.core.settings import PROJECT_ROOT
from helpers.infra.processes import free_port

NOTEBOOK = PROJECT_ROOT / "notebooks" / "dashboard.ipynb"
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
    from helpers.infra.prereqs import ensure_programs, find_program

    ensure_programs(("chromium",))
    return find_program("chromium")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """build/browser/: screenshots and the Voilà log."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def voila(settings, artifacts) -> Server:
    """A token-free Voilà server on a free 127.0.0.1 port serving the dashboard; stopped afterwards."""
    from helpers.core.waiting import wait_until
    from helpers.infra.processes import log_tail as tail_of
    from helpers.infra.processes import start_detached, stop_process

    port, log = free_port(), artifacts / "voila.log"
    args = [sys.executable, "-m", "voila", "--no-browser", f"--port={port}",
            "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--show_tracebacks=True",
            str(NOTEBOOK)]
    pid_file = artifacts / "voila.pid"
    log.unlink(missing_ok=True)
    proc = start_detached(args, log, pid_file)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: not proc.is_running() or answers(url + "voila/static/voila.js"),
                   SERVER_START_S, f"Voilà on {url}", detail=lambda: tail_of(log))
        if not proc.is_running():
            pytest.fail(f"Voilà exited; last lines of {log}:\n{log_tail(log)}")
        yield Server(url, log)
    finally:
        stop_process(pid_file, timeout=15)


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


@pytest.fixture(scope="module")
def chromium(chromium_path):
    """One headless Chromium for a module's tests; each test opens the contexts (users) it needs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
