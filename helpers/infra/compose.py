"""The Docker stack: `docker compose` with the repository's docker-compose.yml (class laptops)."""
from __future__ import annotations

import re
import subprocess

from helpers.core.errors import StackError
from helpers.core.settings import PROJECT_ROOT, Settings
from helpers.infra.environment import child_env

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
CLUSTER_BOOTSTRAP = "kafka-1:29092,kafka-2:29092,kafka-3:29092"   # the cluster, seen from containers
COMPOSE_TIMEOUT_S = 900        # `up` may pull every image first, on a slow network


def compose_cluster_env(settings: Settings) -> dict[str, str]:
    """Variables docker-compose.yml reads for the broker count: ports of nodes 2 and 3, ksqlDB's Kafka."""
    if settings.brokers == 1:
        return {}
    (_, _), (port_2, _), (port_3, _) = settings.kafka_node_ports
    return {"KAFKA_PORT": str(settings.kafka_port), "KAFKA_PORT_2": str(port_2),
            "KAFKA_PORT_3": str(port_3), "KSQLDB_KAFKA": CLUSTER_BOOTSTRAP}


def compose(*args: str, env: dict[str, str] | None = None, timeout: float = COMPOSE_TIMEOUT_S) -> None:
    """Run `docker compose` in the project folder (its output on the terminal), raising on failure."""
    command = f"docker compose {' '.join(args)}"
    try:
        result = subprocess.run(["docker", "compose", *args], cwd=PROJECT_ROOT, env=child_env(**(env or {})),
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StackError(f"`{command}` did not finish within {timeout:g} s and was stopped.") from None
    except OSError as exc:
        raise StackError(f"`{command}` could not start ({exc.strerror or exc}): is Docker installed?") \
            from None
    if result.returncode != 0:
        raise StackError(f"`{command}` failed (exit {result.returncode}).")


def compose_image_tag(image: str) -> str:
    """The tag pinned for `image` in docker-compose.yml (e.g. apache/kafka -> 4.1.1)."""
    match = re.search(rf"image:\s*{re.escape(image)}:(\S+)", COMPOSE_FILE.read_text())
    return match.group(1) if match else "unknown"
