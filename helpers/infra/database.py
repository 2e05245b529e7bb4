"""The workbook database's engine: SQLAlchemy over PyMySQL (01_ingestion).

`Workbook.engine` makes one per notebook or command and disposes of it when
closed; `make_engine` is for code that owns its engine itself.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text

from helpers.core.settings import Settings


def make_engine(settings: Settings, connect_timeout: int = 10) -> Engine:
    """A SQLAlchemy engine for the workbook database (its owner disposes of it)."""
    return create_engine(settings.database_url, pool_pre_ping=True,
                         connect_args={"connect_timeout": connect_timeout})


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
