"""The workbook database's engine: SQLAlchemy over PyMySQL (01_ingestion).

`Workbook.engine` makes one per notebook or command and disposes of it when
closed; `make_engine` is for code that owns its engine itself.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from helpers.core.settings import PROJECT_ROOT, Settings


def make_engine(settings: Settings, connect_timeout: int = 10) -> Engine:
    """A SQLAlchemy engine for the workbook database (its owner disposes of it)."""
    return create_engine(with_ca_path(settings.database_url), pool_pre_ping=True,
                         connect_args={"connect_timeout": connect_timeout})


def with_ca_path(url: str) -> str:
    """The URL with a relative `ssl_ca` (a class server's CA file) made absolute from the workbook's
    folder, as KAFKA_SSL_CA_LOCATION is: notebooks and commands run in different folders."""
    parsed = make_url(url)
    ca = parsed.query.get("ssl_ca")
    if not isinstance(ca, str) or Path(ca).is_absolute():
        return url
    return parsed.update_query_dict({"ssl_ca": str(PROJECT_ROOT / ca)}).render_as_string(hide_password=False)


def server_version(engine: Engine) -> str:
    """The server's version string, e.g. 11.8.3-MariaDB or 8.4.3."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT VERSION()")).scalar_one()


@contextmanager
def open_engine(settings: Settings, connect_timeout: int = 10) -> Iterator[Engine]:
    """`with open_engine(settings) as engine:` an engine that is disposed of at the end of the block."""
    engine = make_engine(settings, connect_timeout)
    try:
        yield engine
    finally:
        engine.dispose()
