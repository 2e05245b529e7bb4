"""A thin client for ksqlDB's REST API, on `requests` (06_stream_sql, 07_stream_joins).

Four calls are enough for the workbook: `execute` runs statements
(`POST /ksql`), `query` runs a pull or push query (`POST /query-stream`,
HTTP/1.1, accepted since ksqlDB 0.24) and returns its rows as dicts,
`close_query` ends a push query (`POST /close-query`), and `info` /
`healthcheck` say whether the server is up. Every refusal raises KsqlError
carrying ksqlDB's own message.

The client knows no statement of the course: those are in `ksql/*.sql`,
loaded by `helpers.pipeline.ksqldb`. With `auth` (KSQLDB_USERNAME, KSQLDB_PASSWORD) every request carries HTTP
basic auth, as a shared or managed ksqlDB server asks.
"""
from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import requests
from urllib3.exceptions import ReadTimeoutError

from helpers.core.errors import InputError, KsqlError
from helpers.core.waiting import wait_until

KSQL_JSON = "application/vnd.ksql.v1+json"        # /ksql request and response
DELIMITED = "application/vnd.ksqlapi.delimited.v1"  # /query-stream: header line, one array per row
PENDING = ("QUEUED", "PARSING", "EXECUTING")
RETRIES_503 = 4
START_HINT = "start it with `make up` (needs Docker) or point KSQLDB_URL at a running server"


class KsqlUnavailable(KsqlError):
    """No ksqlDB server answers at the configured URL."""


def short(sql: str, width: int = 60) -> str:
    """One line of at most `width` characters of a statement, for messages."""
    line = " ".join(sql.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def error_from(response: requests.Response, what: str) -> KsqlError:
    """Turn an HTTP error response of ksqlDB into a KsqlError quoting its message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "message" not in body:
        return KsqlError(f"ksqlDB answered HTTP {response.status_code} to {what} "
                         "without an error message.")
    message = str(body["message"]).strip()
    code = body.get("error_code")
    if code == 40004:  # "This endpoint is only available when using HTTP2"
        message += " (ksqlDB accepts /query-stream over HTTP/1.1 from version 0.24)"
    return KsqlError(f"ksqlDB rejected {what}: {message}", error_code=code,
                     statement=body.get("statementText"))


class KsqlClient:
    """Talk to one ksqlDB server: `KsqlClient(settings.ksqldb_url)`."""

    def __init__(self, url: str, timeout: float = 10.0,
                 session: requests.Session | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        if auth:                   # HTTP basic auth (settings.ksqldb_auth): a shared or managed server
            self.session.auth = auth

    def __enter__(self) -> KsqlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the HTTP connections."""
        self.session.close()

    # --- plumbing ------------------------------------------------------------

    def _send(self, method: str, path: str, *, read_timeout: float | None = None,
              **kwargs: Any) -> requests.Response:
        """One HTTP request; a refused or silent connection becomes KsqlUnavailable."""
        timeout = (self.timeout, read_timeout or self.timeout)
        try:
            for attempt in range(RETRIES_503 + 1):
                response = self.session.request(method, self.url + path, timeout=timeout, **kwargs)
                if response.status_code == 401:
                    user = self.session.auth[0] if isinstance(self.session.auth, tuple) else None
                    raise KsqlError(f"ksqlDB at {self.url} refuses the login"
                                    f"{f' of {user!r}' if user else ' (no user given)'}: check "
                                    "KSQLDB_USERNAME and KSQLDB_PASSWORD in .env.", status=401)
                if response.status_code != 503 or attempt == RETRIES_503:
                    return response
                response.close()     # busy, or waiting for an earlier command: ask again
                time.sleep(0.5 * 2 ** attempt)
            raise AssertionError("unreachable")
        except requests.ReadTimeout:
            raise KsqlError(f"ksqlDB at {self.url} did not answer {method} {path} "
                            f"within {timeout[1]:g} s.") from None
        except requests.ConnectionError as exc:
            raise KsqlUnavailable(
                f"The ksqlDB server is not reachable at {self.url} "
                f"({exc.__class__.__name__}): {START_HINT}."
            ) from None

    def _get_json(self, path: str) -> dict[str, Any]:
        """GET a JSON document, raising KsqlError on an HTTP error."""
        response = self._send("GET", path, headers={"Accept": KSQL_JSON})
        if not response.ok:
            raise error_from(response, f"GET {path}")
        return response.json()

    # --- server status ---------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Server version, Kafka cluster id and service id (`GET /info`)."""
        return self._get_json("/info")["KsqlServerInfo"]

    def healthcheck(self) -> dict[str, Any]:
        """`{"isHealthy": bool, "details": {...}}` from `GET /healthcheck`."""
        return self._get_json("/healthcheck")

    # --- statements --------------------------------------------------------------

    def execute(self, statements: str | Iterable[str],
                properties: Mapping[str, str] | None = None,
                after: int | None = None) -> list[dict[str, Any]]:
        """Run statements in one `POST /ksql` request and return ksqlDB's result objects.

        `after` is a commandSequenceNumber: the server runs these statements
        only once that command has been executed.
        """
        items = [statements] if isinstance(statements, str) else list(statements)
        text = "\n".join(s.strip() if s.strip().endswith(";") else s.strip() + ";"
                         for s in items if s.strip())
        if not text:
            raise InputError("No statement to execute.")
        body: dict[str, Any] = {"ksql": text, "streamsProperties": dict(properties or {})}
        if after is not None:
            body["commandSequenceNumber"] = after
        response = self._send("POST", "/ksql", json=body,
                              headers={"Accept": KSQL_JSON, "Content-Type": KSQL_JSON})
        if not response.ok:
            raise error_from(response, f"the statement `{short(text)}`")
        results = response.json()
        for result in results:
            status = result.get("commandStatus", {})
            if status.get("status") in PENDING and result.get("commandId"):
                status = self.wait_for_command(result["commandId"])
                result["commandStatus"] = {**result["commandStatus"], **status}
            if status.get("status") == "ERROR":
                raise KsqlError(
                    f"ksqlDB rejected the statement `{short(result.get('statementText', text))}`: "
                    f"{status.get('message', 'no message')}",
                    statement=result.get("statementText"))
        return results

    def wait_for_command(self, command_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Poll `GET /status/{commandId}` until the command has left QUEUED/PARSING/EXECUTING."""
        def settled() -> dict[str, Any] | None:
            status = self._get_json(f"/status/{command_id}")
            return None if status.get("status") in PENDING else status

        return wait_until(settled, timeout or self.timeout, f"ksqlDB to execute `{command_id}`",
                          interval=0.25)

    # --- queries -----------------------------------------------------------------

    def query(self, sql: str, properties: Mapping[str, str] | None = None, *,
              limit: int | None = None, wait: float | None = None) -> list[dict[str, Any]]:
        """Run a pull or push query and return its rows as dicts (column name -> value).

        Reading stops when the server ends the result, after `limit` rows, or
        when `wait` seconds (default: the client timeout) pass; a push query
        still running then is closed with `close_query`.
        """
        if limit is not None and limit < 1:
            raise InputError(f"limit must be a positive number of rows, got {limit!r}.")
        wait = self.timeout if wait is None else wait
        body = {"sql": sql.strip(), "properties": dict(properties or {})}
        response = self._send("POST", "/query-stream", json=body, stream=True, read_timeout=wait,
                              headers={"Accept": DELIMITED, "Content-Type": "application/json"})
        try:
            if not response.ok:
                raise error_from(response, f"the query `{short(sql)}`")
            return self._read_rows(response, sql, limit, time.monotonic() + wait)
        finally:
            response.close()

    def _read_rows(self, response: requests.Response, sql: str, limit: int | None,
                   deadline: float) -> list[dict[str, Any]]:
        """Parse the header and the rows; close the push query if we stop first."""
        lines = JsonLines(response)
        header = next(lines, None)
        if not isinstance(header, dict) or "columnNames" not in header:
            raise KsqlError(f"ksqlDB sent no result header for the query `{short(sql)}`.")
        names, rows, finished = header["columnNames"], [], True
        for item in lines:
            if isinstance(item, dict):  # an error object written mid-stream
                raise KsqlError(f"ksqlDB stopped the query `{short(sql)}`: "
                                f"{item.get('message', item)}", error_code=item.get("error_code"))
            rows.append(dict(zip(names, item, strict=False)))
            if (limit is not None and len(rows) >= limit) or time.monotonic() >= deadline:
                finished = False
                break
        else:
            finished = not lines.timed_out
        if not finished and header.get("queryId"):
            self._close_quietly(header["queryId"])
        return rows

    def _close_quietly(self, query_id: str) -> None:
        """Close a push query; closing our connection ends it anyway if this fails."""
        with contextlib.suppress(KsqlError):
            self.close_query(query_id)

    def close_query(self, query_id: str) -> None:
        """End a running push query (`POST /close-query`)."""
        response = self._send("POST", "/close-query", json={"queryId": query_id},
                              headers={"Content-Type": "application/json"})
        if not response.ok:
            raise error_from(response, f"closing query {query_id}")


class JsonLines(Iterator[Any]):
    """The JSON values of a delimited `/query-stream` response, one per line.

    A read timeout ends the iteration quietly and sets `timed_out`: a push
    query that has nothing new to say is not an error.
    """

    def __init__(self, response: requests.Response) -> None:
        self.lines = response.iter_lines(chunk_size=1024)
        self.timed_out = False

    def __next__(self) -> Any:
        while True:
            try:
                line = next(self.lines)
            except requests.RequestException as exc:
                if exc.args and isinstance(exc.args[0], ReadTimeoutError):
                    self.timed_out = True
                    raise StopIteration from None
                raise KsqlError(f"The connection to ksqlDB broke during a query: {exc}.") from None
            if not line.strip():
                continue
            try:
                return json.loads(line)
            except ValueError:
                text = short(line.decode(errors="replace"))
                raise KsqlError(f"ksqlDB sent a line that is not JSON: {text}.") from None
