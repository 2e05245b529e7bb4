"""The Docker stack: `docker compose` with the repository's docker-compose.yml (class laptops)."""
from __future__ import annotations

import re
import subprocess

from ..config import PROJECT_ROOT
from ..errors import StackError

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"


def compose(*args: str) -> None:
    """Run `docker compose` in the project folder, raising on failure."""
    result = subprocess.run(["docker", "compose", *args], cwd=PROJECT_ROOT)
    if result.returncode != 0:
        raise StackError(f"`docker compose {' '.join(args)}` failed (exit {result.returncode}).")


def compose_image_tag(image: str) -> str:
    """The tag pinned for `image` in docker-compose.yml (e.g. apache/kafka -> 4.1.1)."""
    match = re.search(rf"image:\s*{re.escape(image)}:(\S+)", COMPOSE_FILE.read_text())
    return match.group(1) if match else "unknown"
