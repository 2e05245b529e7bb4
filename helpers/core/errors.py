"""Every error the workbook raises on purpose, in one tree (used by every module).

Catch `WorkbookError` to catch them all: the `workbook` command prints its
message and exits 2; a notebook shows the message as one sentence instead of a
traceback (set WORKBOOK_DEBUG=1 in the environment, or run `%env WORKBOOK_DEBUG=1` in the notebook,
to see the traceback). Where a caller may
reasonably catch a built-in (ValueError for bad input, TimeoutError for a
wait), the class derives from that built-in too.

    WorkbookError
    ├── ConfigError            a setting in the environment or .env is missing or malformed
    ├── InputError             an argument is out of range (thresholds, speed, SQL values...)
    ├── SchemaError            a message does not match its topic's schema
    ├── ServiceUnavailable     Kafka, MySQL or ksqlDB does not answer
    ├── StackError             the services could not be started or stopped
    ├── SourceError            a price source (sample file, Massive API) failed
    ├── StoredDataError        a table holds data this version cannot use (it is left untouched)
    ├── KafkaOperationError    the broker refused an admin operation
    ├── DeliveryError          messages were not delivered, offsets not committed
    ├── StreamSqlError         the stream-SQL engine refused or failed a query
    │   └── KsqlError          ... ksqlDB in particular
    └── WaitTimeout            something did not happen in time
"""
from __future__ import annotations

import os
import traceback


def debugging() -> bool:
    """True when WORKBOOK_DEBUG is set in the environment (`%env WORKBOOK_DEBUG=1` in a notebook)."""
    return os.environ.get("WORKBOOK_DEBUG", "") not in ("", "0")


class WorkbookError(Exception):
    """Root of the workbook's errors: the message is one sentence saying what to do."""

    def _render_traceback_(self) -> list[str]:
        """How IPython shows this error: the sentence, not a traceback (unless WORKBOOK_DEBUG is set)."""
        if debugging():
            return traceback.format_exception(self)
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


class ConfigError(WorkbookError, ValueError):
    """A configuration value is missing or malformed; the message says how to fix it."""


class InputError(WorkbookError, ValueError):
    """An argument is out of range or of the wrong kind; the message says what is accepted."""


class SchemaError(WorkbookError, ValueError):
    """A message does not match its topic's schema; the text says which field and why."""


class ServiceUnavailable(WorkbookError, ConnectionError):
    """A service does not answer: the message names it, its address and how to start it."""

    def __init__(self, message: str, *, service: str = "", address: str = "") -> None:
        super().__init__(message)
        self.service, self.address = service, address


class StackError(WorkbookError):
    """A service could not be started or stopped; the message says what to do."""


class SourceError(WorkbookError):
    """A data source failed; the message says what happened, never the API key."""


class StoredDataError(WorkbookError):
    """A table holds data this version of the workbook cannot use; nothing was changed."""


class KafkaOperationError(WorkbookError):
    """The broker refused an admin operation (create, delete, describe) for good."""


class DeliveryError(WorkbookError):
    """Messages were not delivered (so no offsets were committed)."""


class StreamSqlError(WorkbookError):
    """The stream-SQL engine refused a statement or a query failed."""


class KsqlError(StreamSqlError):
    """ksqlDB refused a request; carries ksqlDB's own message and error code."""

    def __init__(self, message: str, *, status: int | None = None,
                 error_code: int | None = None, statement: str | None = None) -> None:
        super().__init__(message)
        self.status, self.error_code, self.statement = status, error_code, statement


class WaitTimeout(WorkbookError, TimeoutError):
    """Something did not happen within its time limit; the message says what was awaited."""
