"""With the services down, every stage says so in one sentence within seconds: no client log walls."""
from __future__ import annotations

import subprocess
import sys
import time

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from helpers.classroom.notebooks import notebook_paths
from helpers.core.settings import PROJECT_ROOT
from helpers.infra.environment import child_env
from helpers.infra.processes import free_port

pytestmark = pytest.mark.integration
LIMIT_S = 10


@pytest.fixture(scope="module")
def nothing_runs():
    """An environment whose Kafka and MySQL ports have nothing listening on them."""
    kafka, mysql = free_port(), free_port()
    env = child_env(WORKBOOK_STACK="local", KAFKA_PORT=str(kafka), MYSQL_PORT=str(mysql),
                    WORKBOOK_PROGRESS="0")
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.pop("DATABASE_URL", None)
    return env, kafka, mysql


@pytest.mark.parametrize("stage, service", [
    (["ingest"], "MySQL"), (["topics"], "Kafka"), (["replay"], "MySQL"), (["route"], "Kafka"),
    (["stream-sql", "--until-caught-up"], "Kafka"), (["notebooks", "00_setup"], "Kafka")])
def test_every_stage_names_the_service_that_is_down(nothing_runs, stage, service):
    env, kafka, mysql = nothing_runs
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "helpers.cli", *stage], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - started
    port = kafka if service == "Kafka" else mysql
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr                  # one sentence, one line
    assert f"{service} does not answer at 127.0.0.1:{port}" in result.stderr
    assert "`make up`" in result.stderr and "Traceback" not in result.stderr
    assert seconds < LIMIT_S, f"{stage[0]} took {seconds:.1f} s to say {service} is down"


@pytest.mark.parametrize("path", [p for p in notebook_paths() if p.stem != "10_fault_tolerance"],
                         ids=lambda p: p.stem)    # 10 starts a Kafka cluster of its own
def test_first_code_cell_of_every_notebook_says_what_is_down(nothing_runs, path):
    env, kafka, _ = nothing_runs
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    nb.cells = [first]
    client = NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.monotonic()
    with pytest.raises(CellExecutionError):
        client.execute(env=env)
    seconds = time.monotonic() - started
    [error] = [o for o in first.outputs if o.output_type == "error"]
    assert error.ename == "ServiceUnavailable"
    shown = "\n".join(error.traceback)
    assert shown.count("\n") == 0, shown                                   # the sentence, no traceback
    assert "does not answer at 127.0.0.1:" in shown and "`make up`" in shown
    streams = "".join(o.get("text", "") for o in first.outputs if o.output_type == "stream")
    assert "rdkafka" not in streams and "FAIL" not in streams
    assert seconds < LIMIT_S + 5, f"{path.name}: {seconds:.1f} s (kernel start included)"
