"""Processes seen from /proc, for the tests that check nothing outlives a stack."""
import os
from pathlib import Path


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
