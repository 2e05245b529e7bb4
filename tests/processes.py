"""Processes for the tests: seen from /proc (nothing outlives a stack), and the `workbook` command."""
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.core.settings import PROJECT_ROOT, Settings
from helpers.infra.flinkcluster import FlinkCluster
from helpers.infra.processes import free_port


def processes_using(folder) -> list[str]:
    """Command lines of running processes that mention `folder`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in args and str(os.getpid()) != cmdline.parent.name:
            found.append(args)
    return found


#: the `workbook` command a student types, from the environment the tests run in
WORKBOOK = Path(sys.executable).with_name("workbook")


def run_workbook(*args: str, env: dict[str, str] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `workbook <args>` as a student would (in `env`, default ours), its output captured."""
    return subprocess.run([str(WORKBOOK), *args], cwd=PROJECT_ROOT, env=env or os.environ,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def enterable_by_all(path: Path) -> None:
    """Let every account enter the folders above `path` (o+x, not list): the students' servers run the
    workbook's code from there, and a CI checkout may lie in a private temporary folder."""
    for folder in [path, *path.parents]:
        mode = os.stat(folder).st_mode
        if not mode & 0o001:
            os.chmod(folder, mode | 0o001)


@contextmanager
def class_flink(settings: Settings, slots: int = 2) -> Iterator[FlinkCluster]:
    """A class's Flink session cluster with its SQL Gateway, as `class up --hub` starts it, in a
    folder of its own (as root it runs as its own account, which must reach the venv's launchers
    and the connector jar); stopped and removed at the end."""
    root = Path(tempfile.mkdtemp(prefix="workbook-flink-"))
    os.chmod(root, 0o755)
    enterable_by_all(PROJECT_ROOT)
    enterable_by_all(settings.flink_connector_jar.parent)
    (jar,) = (settings.state_dir / "libs" / "flink-gateway").glob("flink-sql-gateway-*.jar")
    cluster = FlinkCluster(root / "flink", free_port(), slots=slots, gateway_port=free_port(),
                           gateway_jar=jar)
    try:
        cluster.start()
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
