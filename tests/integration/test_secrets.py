"""Planted secrets never show: not in the CLI's output, the notebooks' outputs, logs or errors."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest

from helpers.classroom.notebooks import run_notebooks
from helpers.core.settings import PROJECT_ROOT
from helpers.infra.environment import child_env, load_settings
from helpers.infra.mariadb import LocalMariaDB
from helpers.pipeline.flinksql import LOG_DIR

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "massive"


class EchoingMassive(BaseHTTPRequestHandler):
    """A Massive stand-in: AAPL gets bars, anything else an error quoting the request's key."""

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        if "/AAPL/" in self.path:
            body = (FIXTURES / "aapl_minute_page2.json").read_bytes()
            status = 200
        else:
            body, status = json.dumps({"status": "ERROR", "error": f"key {auth} refused"}).encode(), 403
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def planted(settings, tmp_path):
    """An environment with a planted API key and a planted database password that really work."""
    if settings.stack != "local":
        pytest.skip("creates a database user on the local stack")
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingMassive)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    secrets = {"MASSIVE_API_KEY": f"planted-key-{uuid.uuid4().hex}",
               "MYSQL_PASSWORD": f"planted-pw-{uuid.uuid4().hex}"}
    namespace = f"s{uuid.uuid4().hex[:8]}"
    env = child_env(**secrets, MYSQL_USER="secrettest", WORKBOOK_STUDENT=namespace, WORKBOOK_PROGRESS="0",
                    MASSIVE_BASE_URL=f"http://127.0.0.1:{server.server_address[1]}")
    mine = load_settings(env)
    mariadb = LocalMariaDB.for_settings(mine)
    mariadb.ensure_database_user(mine)                  # the user really has this password
    yield env, secrets
    server.shutdown()
    mariadb.drop_database_user(mine)


def run(env, *args):
    """One `workbook` command: everything it printed, and its exit status."""
    result = subprocess.run([sys.executable, "-m", "helpers.cli", *args], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    return result.stdout + result.stderr, result.returncode


def test_planted_secrets_appear_nowhere(planted, tmp_path, monkeypatch):
    env, secrets = planted
    shown = []
    for name, value in env.items():                        # the notebooks' kernels get the planted env
        monkeypatch.setenv(name, value)
    out = tmp_path / "executed"
    rows = run_notebooks(out, ["00_setup", "01_ingestion"])     # first: 01 counts the sample bars alone
    assert [r["result"] for r in rows] == ["ok", "ok"]
    for path in sorted(out.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            shown.append(json.dumps(cell.get("outputs", [])))

    codes = {}
    for args in (["status"], ["status", "--json"], ["ingest"], ["ingest", "--source", "massive",
                 "--tickers", "AAPL"], ["ingest", "--source", "massive", "--tickers", "MSFT"], ["topics"]):
        text, codes[" ".join(args)] = run(env, *args)
        shown.append(text)
    assert codes == {"status": 0, "status --json": 0, "ingest": 0, "topics": 0,
                     "ingest --source massive --tickers AAPL": 0, "ingest --source massive --tickers MSFT": 2}
    assert "***" in shown[-2]                               # the server echoed the key: scrubbed
    assert any("mysql+pymysql://secrettest:***@" in text for text in shown)   # the URL, masked
    logs = [*(p for p in (load_settings(env).state_dir).rglob("*.log")), *LOG_DIR.glob("*.log"),
            out / "kernels.log"]
    shown += [p.read_text(errors="replace") for p in logs if p.is_file()]

    assert len(shown) > 10 and any("Massive" in text for text in shown)
    for name, secret in secrets.items():
        leaks = [text[max(0, text.find(secret) - 80):text.find(secret) + 80]
                 for text in shown if secret in text]
        assert leaks == [], f"{name} shown: {leaks[:2]}"
