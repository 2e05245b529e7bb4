"""The Workbook: the settings of one notebook or command and every long-lived client made from them.

    wb = Workbook.from_env()        # reads .env and the environment, once
    wb.settings                     # every choice, frozen (helpers.core.settings.Settings)
    wb.admin, wb.engine             # made on first use, then reused
    with Workbook.from_env() as wb: # ... and closed together at the end

Library functions take the Workbook (when they use its long-lived clients:
the admin client, the database engine, the stream-SQL sessions) or its
settings, always explicitly: none loads settings behind its caller's back.
Short-lived clients (a consumer that reads a topic to its end) are made and
closed by the function that uses them. `within("minute")` gives a Workbook
for a namespace inside this one that shares these clients.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from helpers.core.errors import InputError, WorkbookError
from helpers.core.settings import Settings
from helpers.infra.environment import commands_on_path, load_settings

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient
    from sqlalchemy import Engine

    from helpers.infra.ksqldb_client import KsqlClient

R = TypeVar("R")

__all__ = ["Workbook"]


class Workbook:
    """The settings and the long-lived clients of one notebook or command, closed together."""

    def __init__(self, settings: Settings, *, _shared: dict[str, Any] | None = None,
                 _closed: list[bool] | None = None) -> None:
        self.settings = settings
        self._resources: dict[str, Any] = {} if _shared is None else _shared
        self._owner = _shared is None          # a Workbook from within() leaves closing to its parent
        self._closed: list[bool] = _closed if _closed is not None else [False]   # shared with within()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, dotenv: Path | None = None) -> Workbook:
        """A Workbook of the settings in `.env` overlaid with the environment (the environment wins).
        In a notebook, `!workbook kafka-topics …` then runs this environment's `workbook` command."""
        commands_on_path()
        return cls(load_settings(env, dotenv))

    def within(self, name: str) -> Workbook:
        """A Workbook for the namespace `name` inside this one ('minute', or 'alice.minute'); it shares
        this one's clients."""
        return Workbook(self.settings.within(name), _shared=self._resources, _closed=self._closed)

    # --- the clients it owns ------------------------------------------------------------

    def resource(self, key: str, make: Callable[[], R]) -> R:
        """The long-lived resource `key`, made by `make()` on first use (again if it has died since).

        A resource with a `close()` is closed with the Workbook; one with an
        `alive` attribute that turns False is replaced on the next call.
        """
        if self._closed[0]:
            raise InputError("This Workbook is closed: make a new one with Workbook.from_env().")
        current = self._resources.get(key)
        if current is None or not getattr(current, "alive", True):
            if current is not None:
                close_quietly(current)
            current = self._resources[key] = make()
        return current

    @property
    def admin(self) -> AdminClient:
        """The admin client (topics, groups, configs), made on first use."""
        from helpers.infra.clients import make_admin

        return self.resource("admin", lambda: make_admin(self.settings))

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of the workbook database, disposed of when the Workbook closes."""
        from helpers.infra.database import make_engine

        return self.resource("engine", lambda: make_engine(self.settings))

    @property
    def ksqldb(self) -> KsqlClient:
        """A client of ksqlDB's REST API (its HTTP session closes with the Workbook)."""
        from helpers.infra.ksqldb_client import KsqlClient

        settings = self.settings
        return self.resource("ksqldb", lambda: KsqlClient(settings.ksqldb_url, auth=settings.ksqldb_auth))

    def close(self) -> None:
        """Close every client this Workbook made, the last made first (a within() Workbook closes none)."""
        if not self._owner:
            return
        self._closed[0] = True
        while self._resources:
            _, resource = self._resources.popitem()
            close_quietly(resource)

    def __enter__(self) -> Workbook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.settings
        where = f", namespace {s.namespace!r}" if s.namespace else ""
        return (f"Workbook({s.stack} stack, Kafka at {s.bootstrap_servers}, stream SQL on {s.stream_engine}"
                f"{where}; open: {', '.join(self._resources) or 'nothing yet'})")


def close_quietly(resource: Any) -> None:
    """Close or dispose of one resource; a failure to close is not worth an error at the end of a run."""
    for method in ("close", "dispose"):
        closer = getattr(resource, method, None)
        if callable(closer):
            with contextlib.suppress(WorkbookError, OSError, RuntimeError):
                closer()
            return
