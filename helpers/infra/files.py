"""Files that hold secrets: written whole or not at all, readable by their owner only; and folders
that other accounts (a class hub's students, its Flink account) must be able to enter."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from helpers.core.errors import ConfigError


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, mode 0600 from its first byte.

    The text goes to a temporary file in the same folder (created 0600), is
    flushed to disk, then renamed over `path`: a reader sees the old file or
    the new one, never half of one, and never a moment of wider permissions.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def readable_by_all(path: Path) -> bool:
    """True when every account may open `path`: every folder above it may be entered by others."""
    return path.exists() and all(os.stat(folder).st_mode & 0o001 for folder in [path, *path.parents]
                                 if folder.is_dir())


def require_readable(*paths: Path, who: str = "The students' servers") -> None:
    """Raise, saying which folder to open, unless every account may reach each of `paths`."""
    for needed in paths:
        if not readable_by_all(needed):
            folders = [f for f in [needed, *needed.parents] if f.is_dir()]
            closed = next((f for f in folders if not os.stat(f).st_mode & 0o001), needed)
            raise ConfigError(f"{who} must read {needed}, but other accounts cannot enter {closed}: install "
                              "the workbook where all may read it (under /srv, say), or run "
                              f"`chmod o+x {closed}`.")
