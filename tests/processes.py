"""Processes for the tests: seen from /proc (nothing outlives a stack), and the `workbook` command."""
import os
import subprocess
import sys
from pathlib import Path

from helpers.core.settings import PROJECT_ROOT


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
