"""Files that hold secrets: written whole or not at all, readable by their owner only."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


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
