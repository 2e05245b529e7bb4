"""Configuration: one place that reads the environment and `.env`.

Every address has a localhost default; every value can be overridden by an
environment variable, which wins over the project's `.env` file. Secrets are
kept out of `repr()` and are masked whenever a URL is shown (00_setup).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote_plus, urlsplit, urlunsplit

PROJECT_ROOT = Path(os.environ.get("WORKBOOK_HOME", Path(__file__).resolve().parent.parent))
STACKS = ("docker", "local", "external")
MASK = "***"


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message says how to fix it."""


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a `.env` file of KEY=VALUE lines (comments and blanks ignored)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"{path.name} line {number} is not KEY=VALUE: fix or remove it.")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def parse_port(name: str, raw: str) -> int:
    """Return `raw` as a TCP port, or raise a ConfigError naming the variable."""
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name} must be a port number between 1 and 65535, got {raw!r}.")
    return port


def mask_url(url: str) -> str:
    """Hide the password of a URL such as mysql+pymysql://user:secret@host/db."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:{MASK}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def docker_engine_answers(timeout: float = 5.0) -> bool:
    """True when a Docker engine (not just the CLI) and its compose plugin respond."""
    if shutil.which("docker") is None:
        return False
    try:
        for args in (["docker", "info"], ["docker", "compose", "version"]):
            subprocess.run(args, capture_output=True, timeout=timeout, check=True)
    except (subprocess.SubprocessError, OSError):
        return False
    return True


@dataclass(frozen=True)
class Settings:
    """Where the services are and how to reach them (see `.env.example`)."""

    stack: str
    kafka_port: int
    kafka_controller_port: int
    mysql_port: int
    ksqldb_port: int
    mysql_user: str
    mysql_database: str
    bootstrap_servers: str
    ksqldb_url: str
    state_dir: Path
    mysql_password: str = field(default="", repr=False)
    explicit_database_url: str = field(default="", repr=False)
    massive_api_key: str = field(default="", repr=False)

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the workbook database (contains the password)."""
        if self.explicit_database_url:
            return self.explicit_database_url
        if not self.mysql_password:
            raise ConfigError(
                "MYSQL_PASSWORD is not set: run `cp .env.example .env` "
                "(make does this for you) or export MYSQL_PASSWORD."
            )
        password = quote_plus(self.mysql_password)
        return (f"mysql+pymysql://{self.mysql_user}:{password}"
                f"@127.0.0.1:{self.mysql_port}/{self.mysql_database}")

    @property
    def masked_database_url(self) -> str:
        """The database URL with its password replaced by ***."""
        return mask_url(self.database_url)


def load_settings(env: dict[str, str] | None = None, dotenv: Path | None = None) -> Settings:
    """Build Settings from `.env` overlaid with the environment (environment wins)."""
    values = read_dotenv(dotenv or PROJECT_ROOT / ".env")
    values.update(os.environ if env is None else env)
    get = values.get

    stack = get("WORKBOOK_STACK", "").strip().lower()
    if stack and stack not in STACKS:
        raise ConfigError(f"WORKBOOK_STACK must be one of {', '.join(STACKS)}, got {stack!r}.")
    if not stack:
        stack = "docker" if docker_engine_answers() else "local"

    kafka_port = parse_port("KAFKA_PORT", get("KAFKA_PORT", "9092"))
    ksqldb_port = parse_port("KSQLDB_PORT", get("KSQLDB_PORT", "8088"))
    if stack == "external":
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"):
            if not get(name):
                raise ConfigError(f"WORKBOOK_STACK=external needs {name} in the environment or .env.")

    return Settings(
        stack=stack,
        kafka_port=kafka_port,
        kafka_controller_port=parse_port("KAFKA_CONTROLLER_PORT", get("KAFKA_CONTROLLER_PORT", "9093")),
        mysql_port=parse_port("MYSQL_PORT", get("MYSQL_PORT", "3306")),
        ksqldb_port=ksqldb_port,
        mysql_user=get("MYSQL_USER", "workbook"),
        mysql_password=get("MYSQL_PASSWORD", ""),
        mysql_database=get("MYSQL_DATABASE", "workbook"),
        bootstrap_servers=get("KAFKA_BOOTSTRAP_SERVERS") or f"127.0.0.1:{kafka_port}",
        ksqldb_url=get("KSQLDB_URL") or f"http://127.0.0.1:{ksqldb_port}",
        state_dir=Path(get("WORKBOOK_STATE_DIR") or PROJECT_ROOT / ".stack"),
        explicit_database_url=get("DATABASE_URL", ""),
        massive_api_key=get("MASSIVE_API_KEY") or get("POLYGON_API_KEY", ""),
    )
