"""The hosted start (hosted/start_here.ipynb) on this kind of machine: Debian, root, no Docker.

As on Colab, a kernel starts in an empty folder with no checkout anywhere above
it. WORKBOOK_REPO points at a clone of this repository's current commit; the
notebook's first cell must clone it, install it into the clone's own .venv (the
kernel's environment, this test's, is left alone), and start the local stack on
free ports of its own; its second cell, `workbook status`, must answer; a real
Kafka client must reach the broker. The same notebook, run again, must find the
clone and only check. Failures (no address, a bad address, pip, apt) must end in
one sentence. The stack is stopped and the folder deleted afterwards.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from helpers.infra.processes import free_port, stop_process

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "hosted" / "start_here.ipynb"
STEP = re.compile(r"^▸ (?P<title>.+?) \.*\s*(?P<seconds>\d+\.\d) s$", re.MULTILINE)
#: variables of this process that would point the notebook at our own checkout or stack
LEAKS = ("WORKBOOK_HOME", "WORKBOOK_STATE_DIR", "WORKBOOK_REPO", "KAFKA_BOOTSTRAP_SERVERS",
         "DATABASE_URL", "KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "MYSQL_PORT", "VIRTUAL_ENV")


def git(*args: str, cwd: Path = ROOT) -> str:
    """Run git and return its output."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def code_cells(count: int) -> nbformat.NotebookNode:
    """The hosted notebook cut after its `count`-th code cell (the rest runs the course)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    kept, seen = [], 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            if seen == count:
                break
            seen += 1
        kept.append(cell)
    nb.cells = kept
    return nb


def kernel_env(tmp_path: Path, repo: str | None, ports: dict[str, int] | None = None) -> dict:
    """The hosted kernel's environment: ours without our checkout, plus the test's settings."""
    env = {k: v for k, v in os.environ.items() if k not in LEAKS}
    env.update({"JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"), "WORKBOOK_PROGRESS": "0"})
    if repo is not None:
        env["WORKBOOK_REPO"] = repo
    env.update({k: str(v) for k, v in (ports or {}).items()})
    return env


def text_of(cell: nbformat.NotebookNode) -> str:
    """Everything a code cell printed."""
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def run_twice(nb: nbformat.NotebookNode, cwd: Path, env: dict) -> tuple[list[str], str]:
    """Execute the notebook in a kernel started in `cwd`, then its first cell again, as a student
    would; return what each code cell printed the first time, and the first cell the second time."""
    client = NotebookClient(nb, timeout=1200, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    with client.setup_kernel(env=env):
        for index, cell in code:
            client.execute_cell(cell, index)
        first = [text_of(cell) for _, cell in code]
        index, cell = code[0]
        cell.outputs = []
        client.execute_cell(cell, index)
    return first, text_of(cell)


def step_titles(shown: str) -> list[str]:
    """The steps a start cell printed, without their parenthesised notes."""
    return [m["title"].split(" (")[0] for m in STEP.finditer(shown)]


@pytest.fixture
def empty():
    """The kernel's working directory: empty, with no checkout above it, and short, as Colab's
    /content is (MariaDB's socket path, under it, must stay within Unix's 107 characters)."""
    folder = Path(tempfile.mkdtemp(prefix="hosted-")) / "content"
    folder.mkdir()
    assert not any(parent.joinpath("helpers", "__init__.py").is_file()
                   for parent in (folder, *folder.parents))
    yield folder
    shutil.rmtree(folder.parent, ignore_errors=True)


@pytest.fixture
def ports() -> dict[str, int]:
    """Free ports for the hosted stack, away from the defaults and from our own stack."""
    return {"KAFKA_PORT": free_port(), "KAFKA_CONTROLLER_PORT": free_port(), "MYSQL_PORT": free_port()}


@pytest.fixture
def hosted_clone(empty):
    """Where the notebook clones the workbook; its services are stopped and it is deleted after."""
    clone = empty / "kafka-workbook"
    yield clone
    for pid_file in (clone / ".stack/kafka/node-1/kafka.pid", clone / ".stack/mariadb/mariadb.pid"):
        stop_process(pid_file)
    shutil.rmtree(clone, ignore_errors=True)


def test_hosted_start_clones_installs_and_starts_the_stack(tmp_path, empty, ports, hosted_clone):
    head = git("rev-parse", "HEAD")
    env = kernel_env(tmp_path, f"file://{ROOT}", ports)
    (started, status), again = run_twice(code_cells(2), empty, env)  # start cell, `workbook status`

    # the first run cloned, installed and started, each step with its duration
    assert step_titles(started) == [f"Cloning file://{ROOT}", "Installing the Python packages into .venv",
                                    "Starting Kafka and MariaDB"], started
    seconds = [float(m["seconds"]) for m in STEP.finditer(started)]
    total = int(re.search(r"Ready in (\d+) s", started).group(1))
    assert abs(sum(seconds) - total) <= 2 + 0.05 * total     # the steps are the whole time

    # the second run found the clone: nothing cloned again
    assert step_titles(again) == ["Installing the Python packages into .venv",
                                  "Starting Kafka and MariaDB"], again
    assert f"the workbook is in {hosted_clone}." in again

    # the clone is this commit, and its .venv holds the workbook, installed from the clone;
    # this test's own environment still imports the workbook from this checkout
    assert git("rev-parse", "HEAD", cwd=hosted_clone) == head
    for python, home in ((hosted_clone / ".venv/bin/python", hosted_clone), (sys.executable, ROOT)):
        where = subprocess.run([python, "-c", "import helpers; print(helpers.__file__)"], cwd="/",
                               check=True, capture_output=True, text=True).stdout.strip()
        assert Path(where).is_relative_to(home), (python, where)

    # `workbook status` answered in the notebook, on the test's ports
    assert re.search(rf"kafka\s+up\s+127\.0\.0\.1:{ports['KAFKA_PORT']}\s", status), status
    assert re.search(rf"mysql\s+up\s+127\.0\.0\.1:{ports['MYSQL_PORT']}\s", status), status

    # and again as JSON, plus a Kafka client of our own against the clone's broker
    report = subprocess.run([hosted_clone / ".venv/bin/workbook", "status", "--json"], cwd=hosted_clone,
                            env=env, capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    services = json.loads(report.stdout)["services"]
    assert {s["name"]: s["up"] for s in services if not s.get("on_demand")} == {
        "kafka": True, "mysql": True, "stream-sql": True}
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{ports['KAFKA_PORT']}"})
    assert len(admin.list_topics(timeout=10).brokers) == 1


def failure_of(nb: nbformat.NotebookNode, cwd: Path, env: dict) -> str:
    """Run the start cell expecting it to fail; return the error the student sees."""
    with pytest.raises(CellExecutionError) as info:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(cwd)}}).execute(env=env)
    error = next(o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                 if o.output_type == "error")
    assert error.ename == "BootstrapError"
    assert error.traceback == [f"BootstrapError: {error.evalue}"]     # no traceback
    assert "\n" not in error.evalue and error.evalue.endswith(".")   # one sentence
    assert "BootstrapError" in str(info.value)
    return error.evalue


def test_no_repository_address_says_to_set_it(tmp_path, empty):
    message = failure_of(code_cells(1), empty, kernel_env(tmp_path, repo=None))
    assert message.startswith("Set WORKBOOK_REPO at the top of this cell")
    assert list(empty.iterdir()) == []


def test_a_bad_repository_address_says_so_and_leaves_nothing(tmp_path, empty):
    bad = f"file://{tmp_path}/no-such-repository.git"
    message = failure_of(code_cells(1), empty, kernel_env(tmp_path, repo=bad))
    assert message.startswith(f"git could not clone {bad}: check WORKBOOK_REPO")
    assert "does not appear to be a git repository" in message      # git's own reason
    assert list(empty.iterdir()) == []


def test_a_pip_failure_says_so(tmp_path, empty, hosted_clone):
    """A repository whose requirements pip cannot read: the pip step fails in one sentence."""
    source = tmp_path / "broken-repo"
    git("clone", "--quiet", f"file://{ROOT}", str(source))
    requirements = source / "requirements.txt"
    requirements.write_text("this is not a requirement\n" + requirements.read_text())
    git("-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "--quiet", "-am",
        "break requirements", cwd=source)
    message = failure_of(code_cells(1), empty, kernel_env(tmp_path, repo=f"file://{source}"))
    assert message.startswith("pip could not install the workbook's Python packages (ERROR:")
    assert "this is not a requirement" in message


def test_an_apt_failure_says_so(tmp_path, empty, monkeypatch):
    """A program whose Debian package does not exist: apt-get fails in one sentence."""
    source = next(c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells
                  if c.cell_type == "code")
    monkeypatch.chdir(empty)
    monkeypatch.setenv("WORKBOOK_REPO", f"file://{ROOT}")
    namespace: dict = {}
    exec(compile(source.replace("WORKBOOK = start_workbook()", ""), "start-cell", "exec"), namespace)
    namespace["APT"] = {"workbook-test-no-such-program": "workbook-test-no-such-package"}
    with pytest.raises(namespace["BootstrapError"]) as info:
        namespace["start_workbook"]()
    message = str(info.value)
    if os.geteuid() == 0:
        # apt-get ran for real; under another apt-get's lock it fails on that, in one sentence too
        assert message.startswith("apt-get could not"), message
        assert "(E: " in message and message.endswith(").")
    else:
        assert message.startswith("This kernel is not root, so it cannot install "
                                  "workbook-test-no-such-package")
    assert list(empty.iterdir()) == []
