"""Contract tests of helpers.infra.ksqldb_client and the ksqlDB SQL files.

ksqlDB runtime is not available here (it needs Docker); these tests check the
client against ksqlDB's documented REST responses. A local HTTP/1.1 server on
127.0.0.1 replays those responses and records every request, so the tests
assert both sides of the contract: the exact bodies and headers the client
sends, and how it reads what ksqlDB answers.

Sources of the request and response shapes (confluentinc/ksql,
docs/developer-guide/): api.md ("Errors": `error_code`, `message`),
ksqldb-rest-api/ksql-endpoint.md (`POST /ksql`: `ksql`, `streamsProperties`,
`commandSequenceNumber`; result objects; 40001 BAD_STATEMENT),
ksqldb-rest-api/streaming-endpoint.md (`POST /query-stream`: `sql`,
`properties`; delimited header `{queryId, columnNames, columnTypes}` then one
array per row; `POST /close-query` `{queryId}`), ksqldb-rest-api/info-endpoint.md
(`/info`, `/healthcheck`). HTTP/1.1 on /query-stream: ksqlDB CHANGELOG 0.24.0
(#8449); the 40004 body of older servers: confluentinc/ksql issue #6560.
The replayed bodies are in tests/contract/fixtures/ksqldb/ (see its README).
"""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers.core.errors import KsqlError
from helpers.core.rules import BUY_COLUMNS, JOIN_WINDOW_MS
from helpers.core.schemas import ALERTS, BUY, FIELDS, VARIATIONS, TopicNames
from helpers.infra import ksqldb_client
from helpers.infra.ksqldb_client import KsqlClient, KsqlUnavailable
from helpers.infra.processes import free_port
from helpers.pipeline import ksqldb

FIXTURES = Path(__file__).parent / "fixtures" / "ksqldb"
SQL_TYPES = {str: "VARCHAR", int: "BIGINT", float: "DOUBLE"}


def fixture_bytes(name: str) -> bytes:
    """The raw bytes of one recorded ksqlDB response."""
    return (FIXTURES / name).read_bytes()


# --- a fake ksqlDB server ------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    """Record the request, then replay the reply queued for its method and path."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.answer()

    def do_POST(self) -> None:
        self.answer()

    def answer(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        fake.requests.append({
            "method": self.command, "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": json.loads(raw) if raw else None,
        })
        if self.path == "/close-query":
            fake.closed.set()
        if self.path == "/query-stream" and fake.stream is not None:
            self.stream()
            return
        status, body = fake.next_reply(self.command, self.path)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def stream(self) -> None:
        """Send lines as HTTP/1.1 chunks, like ksqlDB; optionally hold the query open."""
        fake = self.server.fake
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", ksqldb_client.DELIMITED)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in fake.stream:
                data = line.rstrip(b"\n") + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            if fake.hold_open:
                fake.closed.wait(10)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass


class FakeKsqlDB:
    """A local stand-in for ksqlDB that replays fixtures and records requests."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.replies: dict[tuple[str, str], list[tuple[int, bytes]]] = {}
        self.stream: list[bytes] | None = None
        self.hold_open = False
        self.closed = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def reply(self, method: str, path: str, status: int, body: bytes) -> None:
        """Queue a reply; the last one queued for a path is repeated."""
        self.replies.setdefault((method, path), []).append((status, body))

    def next_reply(self, method: str, path: str) -> tuple[int, bytes]:
        queue = self.replies.get((method, path))
        if not queue:
            return 404, b'{"error_code":40400,"message":"no fixture for this path"}'
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def paths(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in self.requests]


@pytest.fixture()
def fake():
    server = FakeKsqlDB()
    thread = threading.Thread(target=server.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.closed.set()
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture()
def client(fake):
    with KsqlClient(fake.url, timeout=5.0) as c:
        yield c


def threshold_in(statement: str) -> float:
    """The number the buy statement compares variation_ex with."""
    match = re.search(r"v\.variation_ex > CAST\(([0-9.eE+-]+) AS DOUBLE\)", statement)
    assert match, statement
    return float(match.group(1))


# --- the SQL files against the message schemas ----------------------------------

def declared_columns(statement: str) -> list[tuple[str, str]]:
    """(name, type) of each column of a CREATE STREAM (...) statement."""
    body = statement.split("(", 1)[1].split(") WITH", 1)[0]
    return [tuple(col.split()[:2]) for col in body.split(",") if col.strip()]


@pytest.mark.parametrize("index, topic", [(0, ALERTS), (1, VARIATIONS)])
def test_input_streams_declare_exactly_the_message_fields(index, topic):
    statement = ksqldb.stream_statements()[index]
    columns = declared_columns(statement)
    assert [name for name, _ in columns] == list(FIELDS[topic])
    assert [kind for _, kind in columns] == [SQL_TYPES[t] for t, _ in FIELDS[topic].values()]
    assert "ticker VARCHAR KEY" in statement


@pytest.mark.parametrize("index, topic", [(0, ALERTS), (1, VARIATIONS)])
def test_input_streams_use_event_time_keys_and_three_partitions(index, topic):
    statement = ksqldb.stream_statements()[index]
    for prop in (f"KAFKA_TOPIC='{topic}'", "KEY_FORMAT='KAFKA'", "VALUE_FORMAT='JSON'",
                 "TIMESTAMP='ts'", "PARTITIONS=3", "RETENTION_MS=-1"):
        assert prop in statement


def test_topics_ksqldb_creates_keep_messages_like_the_workbook_topics():
    """Old market timestamps: a 7-day retention would delete them (helpers/pipeline/topics.py)."""
    from helpers.pipeline.topics import TOPIC_CONFIG
    creates = ksqldb.stream_statements() + ksqldb.buy_statements()
    assert [re.findall(r"RETENTION_MS=(-?\d+)", s) for s in creates] == \
        [[TOPIC_CONFIG["retention.ms"]]] * 3


def test_topic_names_are_placeholders_and_streams_follow_them():
    topics = TopicNames.with_prefix("t1.")
    statements = ksqldb.stream_statements(topics)
    assert "KAFKA_TOPIC='t1.alerts'" in statements[0]
    assert "CREATE STREAM IF NOT EXISTS t1_alerts_stream (" in statements[0]
    assert "KAFKA_TOPIC='t1.variations'" in statements[1]
    assert "CREATE STREAM IF NOT EXISTS t1_variations_stream (" in statements[1]
    [buy] = ksqldb.buy_statements(0.05, topics)
    assert "KAFKA_TOPIC='t1.buy'" in buy and "CREATE STREAM t1_buy_stream WITH" in buy
    assert "FROM t1_alerts_stream a" in buy and "JOIN t1_variations_stream v" in buy
    assert ksqldb.drop_statements(topics) == ["DROP STREAM IF EXISTS t1_buy_stream;"]
    # the course's own pipeline keeps its plain names: nothing of t1 is reused
    assert "CREATE STREAM IF NOT EXISTS alerts_stream (" in ksqldb.stream_statements()[0]


def test_buy_output_is_exactly_the_buy_schema():
    [statement] = ksqldb.buy_statements()
    aliases = re.findall(r"AS `([a-z_]+)`", statement)
    assert aliases == list(FIELDS[BUY]) == BUY_COLUMNS
    assert "AS_VALUE(a.ticker) AS `ticker`" in statement
    assert f"KAFKA_TOPIC='{BUY}'" in statement and "PARTITIONS=3" in statement
    assert "TIMESTAMP='`alert_ts`'" in statement  # buy message time = alert time, as in Flink


def test_join_window_is_the_rules_window_with_a_grace_period():
    [statement] = ksqldb.buy_statements()
    match = re.search(r"WITHIN (\d+) MINUTES GRACE PERIOD \d+ \w+\s+ON a\.ticker = v\.ticker",
                      statement)
    assert match, statement
    assert int(match.group(1)) * 60_000 == JOIN_WINDOW_MS


@pytest.mark.parametrize("threshold", [0.05, 0.03, 0.1, 0.0])
def test_threshold_is_rendered_as_the_same_fraction(threshold):
    [statement] = ksqldb.buy_statements(threshold)
    assert threshold_in(statement) == threshold


@pytest.mark.parametrize("bad", ["0.05; DROP STREAM x", "0.05", 5, float("nan"), True, -0.01])
def test_bad_thresholds_are_refused(bad):
    with pytest.raises(ValueError, match="variation threshold"):
        ksqldb.buy_statements(bad)


def test_drop_removes_only_the_buy_stream():
    assert ksqldb.drop_statements() == ["DROP STREAM IF EXISTS buy_stream;"]


# --- status endpoints ------------------------------------------------------------

def test_info_reads_the_server_info(fake, client):
    fake.reply("GET", "/info", 200, fixture_bytes("info.json"))
    info = client.info()
    assert info["version"] == "0.29.0" and info["ksqlServiceId"] == "default_"
    [request] = fake.requests
    assert (request["method"], request["path"]) == ("GET", "/info")
    assert request["headers"]["accept"] == ksqldb_client.KSQL_JSON


def test_healthcheck_returns_the_documented_document(fake, client):
    fake.reply("GET", "/healthcheck", 200, fixture_bytes("healthcheck.json"))
    health = client.healthcheck()
    assert health["isHealthy"] is True
    assert health["details"]["kafka"] == {"isHealthy": True}


def test_unreachable_server_says_where_and_how_to_start_it():
    port = free_port()
    with KsqlClient(f"http://127.0.0.1:{port}", timeout=2.0) as c, pytest.raises(KsqlUnavailable) as err:
        c.info()
    assert f"http://127.0.0.1:{port}" in str(err.value)
    assert "make up" in str(err.value)


# --- statements (POST /ksql) ------------------------------------------------------

def test_execute_sends_the_documented_request(fake, client):
    fake.reply("POST", "/ksql", 200, fixture_bytes("ksql_created.json"))
    statements = ksqldb.stream_statements()
    results = client.execute(statements, {"ksql.streams.auto.offset.reset": "earliest"})
    [request] = fake.requests
    assert (request["method"], request["path"]) == ("POST", "/ksql")
    assert request["headers"]["accept"] == ksqldb_client.KSQL_JSON
    assert request["headers"]["content-type"] == ksqldb_client.KSQL_JSON
    assert request["body"] == {
        "ksql": "\n".join(statements),
        "streamsProperties": {"ksql.streams.auto.offset.reset": "earliest"},
    }
    assert [r["commandStatus"]["status"] for r in results] == ["SUCCESS"] * 3


def test_execute_adds_missing_semicolons_and_skips_blanks(fake, client):
    fake.reply("POST", "/ksql", 200, b"[]")
    client.execute(["LIST STREAMS", "  ", "SHOW QUERIES;"])
    assert fake.requests[0]["body"]["ksql"] == "LIST STREAMS;\nSHOW QUERIES;"


def test_statement_error_carries_ksqldb_message(fake, client):
    fake.reply("POST", "/ksql", 400, fixture_bytes("ksql_statement_error.json"))
    with pytest.raises(KsqlError) as err:
        client.execute(ksqldb.buy_statements())
    message = str(err.value)
    assert message.startswith("ksqlDB rejected the statement `CREATE STREAM buy_stream")
    assert message.endswith(": Cannot add stream 'BUY_STREAM': A stream with the same name "
                            "already exists")
    assert err.value.error_code == 40001
    assert err.value.statement.startswith("CREATE STREAM buy_stream")


def test_command_status_error_in_a_200_answer_is_raised(fake, client):
    failed = [{"@type": "currentStatus", "statementText": "DROP STREAM X;",
               "commandStatus": {"status": "ERROR", "message": "Source X does not exist."},
               "commandSequenceNumber": -1}]
    fake.reply("POST", "/ksql", 200, json.dumps(failed).encode())
    with pytest.raises(KsqlError, match="rejected the statement `DROP STREAM X;`: "
                                        "Source X does not exist"):
        client.execute("DROP STREAM X;")


def test_error_without_json_body_names_the_status(fake, client):
    fake.reply("POST", "/ksql", 502, b"<html>Bad Gateway</html>")
    with pytest.raises(KsqlError, match="HTTP 502"):
        client.execute("LIST STREAMS;")


def test_create_buy_pipeline_sends_the_rendered_files_in_order(fake, client):
    fake.reply("POST", "/ksql", 200, fixture_bytes("ksql_created.json"))
    fake.reply("POST", "/ksql", 200, fixture_bytes("ksql_buy_created.json"))
    query_id = ksqldb.create_buy_pipeline(client, variation_threshold=0.03)
    first, second = (r["body"] for r in fake.requests)
    assert first == {"ksql": "\n".join(ksqldb.stream_statements() + ksqldb.drop_statements()),
                     "streamsProperties": {}}
    assert second == {"ksql": "\n".join(ksqldb.buy_statements(0.03)),
                      "streamsProperties": {"ksql.streams.auto.offset.reset": "earliest",
                                            "ksql.streams.processing.guarantee": "exactly_once_v2"},
                      "commandSequenceNumber": 12}
    assert threshold_in(second["ksql"]) == 0.03
    assert query_id == "CSAS_BUY_STREAM_13"
    assert ksqldb.query_group_suffix(query_id) == "query_CSAS_BUY_STREAM_13"


STATUS_PATH = "/status/stream/%60BUY_STREAM%60/create"   # the commandId, URL-encoded


def test_a_queued_statement_is_awaited_through_the_status_endpoint(fake, client):
    fake.reply("POST", "/ksql", 200, fixture_bytes("ksql_created.json"))
    fake.reply("POST", "/ksql", 200, fixture_bytes("ksql_buy_queued.json"))
    fake.reply("GET", STATUS_PATH, 200, fixture_bytes("status_executing.json"))
    fake.reply("GET", STATUS_PATH, 200, fixture_bytes("status_success.json"))
    assert ksqldb.create_buy_pipeline(client) == "CSAS_BUY_STREAM_13"
    assert fake.paths() == ["POST /ksql", "POST /ksql", f"GET {STATUS_PATH}", f"GET {STATUS_PATH}"]


def test_a_queued_statement_that_fails_later_is_an_error(fake, client):
    fake.reply("POST", "/ksql", 200, fixture_bytes("ksql_buy_queued.json"))
    fake.reply("GET", STATUS_PATH, 200, fixture_bytes("status_error.json"))
    with pytest.raises(KsqlError, match="Invalid join condition"):
        client.execute(ksqldb.buy_statements())


def test_a_503_while_ksqldb_catches_up_is_retried(fake, client, monkeypatch):
    naps = []
    monkeypatch.setattr(ksqldb_client.time, "sleep", naps.append)
    fake.reply("POST", "/ksql", 503, fixture_bytes("ksql_503_waiting.json"))
    fake.reply("POST", "/ksql", 503, fixture_bytes("ksql_503_waiting.json"))
    fake.reply("POST", "/ksql", 200, fixture_bytes("ksql_buy_created.json"))
    [result] = client.execute(ksqldb.buy_statements(), after=12)
    assert result["commandStatus"]["status"] == "SUCCESS"
    assert fake.paths() == ["POST /ksql"] * 3 and naps == [0.5, 1.0]


def test_a_503_that_lasts_is_an_error_quoting_ksqldb(fake, client, monkeypatch):
    monkeypatch.setattr(ksqldb_client.time, "sleep", lambda s: None)
    fake.reply("POST", "/ksql", 503, fixture_bytes("ksql_503_waiting.json"))
    with pytest.raises(KsqlError, match="Timed out while waiting for a previous command"):
        client.execute(ksqldb.buy_statements(), after=12)
    assert len(fake.requests) == ksqldb_client.RETRIES_503 + 1


@pytest.mark.parametrize("bad", ["0.05; DROP STREAM x", 5])
def test_bad_threshold_is_refused_before_anything_is_sent(fake, client, bad):
    fake.reply("POST", "/ksql", 200, fixture_bytes("ksql_created.json"))
    with pytest.raises(ValueError):
        ksqldb.create_buy_pipeline(client, variation_threshold=bad)

    assert fake.requests == []


# --- queries (POST /query-stream, POST /close-query) ---------------------------------

def ndjson(name: str) -> list[bytes]:
    return fixture_bytes(name).splitlines()


def test_pull_query_returns_rows_as_dicts_without_closing(fake, client):
    fake.stream = ndjson("query_stream_pull.ndjson")
    rows = client.query("SELECT * FROM prices WHERE ticker = 'AAPL';",
                        {"auto.offset.reset": "earliest"})
    assert rows == [{"TICKER": "AAPL", "TS": 1703082600000, "CLOSE": 195.31},
                    {"TICKER": "AAPL", "TS": 1703082660000, "CLOSE": 195.47}]
    [request] = fake.requests
    assert (request["method"], request["path"]) == ("POST", "/query-stream")
    assert request["headers"]["accept"] == ksqldb_client.DELIMITED
    assert request["body"] == {"sql": "SELECT * FROM prices WHERE ticker = 'AAPL';",
                               "properties": {"auto.offset.reset": "earliest"}}


def test_push_query_stops_after_limit_and_closes_the_query(fake, client):
    fake.stream, fake.hold_open = ndjson("query_stream_push.ndjson"), True
    started = time.monotonic()
    rows = client.query("SELECT * FROM buy_stream EMIT CHANGES;", limit=3, wait=5)
    assert time.monotonic() - started < 4
    assert len(rows) == 3
    assert rows[0] == {"TICKER_KEY": "AAPL", "ticker": "AAPL", "alert_ts": 1703082600000,
                       "variation_ts": 1703082600000, "close": 195.31,
                       "variation_ex": 0.0612, "variation_in": -0.0123}
    assert set(BUY_COLUMNS) <= set(rows[0])
    assert fake.paths() == ["POST /query-stream", "POST /close-query"]
    assert fake.requests[1]["body"] == {"queryId": "transient_BUY_STREAM_5374912312331406498"}


def test_push_query_stops_when_nothing_new_arrives(fake, client):
    fake.stream, fake.hold_open = ndjson("query_stream_push.ndjson")[:2], True
    started = time.monotonic()
    rows = client.query("SELECT * FROM buy_stream EMIT CHANGES;", wait=0.5)
    assert time.monotonic() - started < 3
    assert [r["ticker"] for r in rows] == ["AAPL"]
    assert fake.paths() == ["POST /query-stream", "POST /close-query"]


def test_error_written_mid_stream_is_raised(fake, client):
    error = {"@type": "generic_error", "error_code": 50000,
             "message": "Query terminated due to an error"}
    fake.stream = ndjson("query_stream_push.ndjson")[:2] + [json.dumps(error).encode()]
    with pytest.raises(KsqlError, match="Query terminated due to an error"):
        client.query("SELECT * FROM buy_stream EMIT CHANGES;")


def test_servers_older_than_0_24_refuse_http_1_1(fake, client):
    fake.reply("POST", "/query-stream", 400, fixture_bytes("query_stream_http2_only.json"))
    with pytest.raises(KsqlError) as err:
        client.query("SELECT * FROM buy_stream EMIT CHANGES;")
    assert "This endpoint is only available when using HTTP2" in str(err.value)
    assert "0.24" in str(err.value) and err.value.error_code == 40004


def test_close_query_sends_the_query_id(fake, client):
    fake.reply("POST", "/close-query", 200, b"")
    client.close_query("transient_BUY_STREAM_1")
    [request] = fake.requests
    assert request["body"] == {"queryId": "transient_BUY_STREAM_1"}


def test_close_query_of_an_unknown_id_is_an_error(fake, client):
    body = {"@type": "generic_error", "error_code": 40001,
            "message": "No query with id transient_X"}
    fake.reply("POST", "/close-query", 400, json.dumps(body).encode())
    with pytest.raises(KsqlError, match="rejected closing query transient_X: No query with id"):
        client.close_query("transient_X")


# --- the workbook's status of the stream-SQL engine ---------------------------------

def test_status_names_the_ksqldb_version(fake, tmp_path):
    from helpers.infra.environment import load_settings
    from helpers.infra.status import status_stream_sql

    fake.reply("GET", "/info", 200, fixture_bytes("info.json"))
    settings = load_settings({"WORKBOOK_STACK": "external", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                              "DATABASE_URL": "mysql+pymysql://u:p@127.0.0.1:1/x", "KSQLDB_URL": fake.url},
                             dotenv=tmp_path / ".env")
    status = status_stream_sql(settings)
    version = json.loads(fixture_bytes("info.json"))["KsqlServerInfo"]["version"]
    assert (status.up, status.version, status.address) == (True, f"ksqlDB {version}", fake.url)
    fake.httpd.shutdown()
    down = status_stream_sql(settings)
    assert not down.up and down.hint.startswith(f"ksqlDB does not answer at {fake.url}")


def test_a_course_reset_drops_the_buy_stream_before_its_inputs_in_every_namespace(fake, tmp_path):
    """`reset_course` on ksqlDB: the buy stream first (DROP STREAM also ends its query), then the inputs."""
    import base64
    from dataclasses import replace

    from helpers.classroom.course import drop_ksqldb_streams
    from helpers.infra.environment import load_settings
    from helpers.infra.workbook import Workbook

    fake.reply("POST", "/ksql", 200, fixture_bytes("ksql_created.json"))
    settings = replace(load_settings({"WORKBOOK_STACK": "local", "WORKBOOK_STUDENT": "alice",
                                      "KSQLDB_USERNAME": "alice", "KSQLDB_PASSWORD": "pw-2"},
                                     dotenv=tmp_path / "none"), ksqldb_url=fake.url)
    with Workbook(settings) as wb:
        dropped = drop_ksqldb_streams(wb)
    sent = [r["body"]["ksql"].split("\n") for r in fake.requests if r["path"] == "/ksql"]
    login = "Basic " + base64.b64encode(b"alice:pw-2").decode()     # a class server's ksqlDB asks for it
    assert {r["headers"].get("authorization") for r in fake.requests} == {login}
    names = ("buy", "alerts", "variations")
    assert sent[0] == [f"DROP STREAM IF EXISTS alice_{name}_stream;" for name in names]
    assert [lines[0] for lines in sent[1:]] == [f"DROP STREAM IF EXISTS alice_{ns}_buy_stream;"
                                                for ns in ("minute", "edges", "live")]
    assert len(dropped) == 12 and not any("DELETE TOPIC" in line for lines in sent for line in lines)


def test_basic_auth_is_sent_and_a_refused_login_is_one_sentence(fake):
    import base64

    fake.reply("GET", "/info", 200, fixture_bytes("info.json"))
    with KsqlClient(fake.url, timeout=5.0, auth=("alice", "pw-1")) as c:
        c.info()
    expected = "Basic " + base64.b64encode(b"alice:pw-1").decode()
    assert fake.requests[-1]["headers"]["authorization"] == expected
    fake.replies.clear()
    fake.reply("GET", "/info", 401, b"{}")     # the client reads the status only, not this body
    with KsqlClient(fake.url, timeout=5.0, auth=("alice", "wrong-pw")) as c, pytest.raises(KsqlError) as err:
        c.info()
    assert str(err.value) == (f"ksqlDB at {fake.url} refuses the login of 'alice': check KSQLDB_USERNAME "
                              "and KSQLDB_PASSWORD in .env.")
    assert err.value.status == 401 and len(fake.paths()) == 2         # refused at once, not retried


def test_status_reports_a_refused_ksqldb_login(fake, tmp_path):
    from helpers.infra.environment import load_settings
    from helpers.infra.status import status_stream_sql

    fake.reply("GET", "/info", 401, b"{}")
    s = load_settings({"WORKBOOK_STACK": "external", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                       "DATABASE_URL": "mysql+pymysql://u:p@127.0.0.1:1/x", "KSQLDB_URL": fake.url,
                       "KSQLDB_USERNAME": "alice", "KSQLDB_PASSWORD": "wrong-pw"}, dotenv=tmp_path / "none")
    status = status_stream_sql(s)
    assert not status.up and "refuses the login of 'alice'" in status.hint and "wrong-pw" not in status.hint


# --- SQL a student types, and the lesson statements, on ksqlDB -----------------------------

def ksqldb_workbook(fake, tmp_path):
    """A Workbook of a ksqlDB stack pointed at the fake server."""
    from dataclasses import replace

    from helpers.infra.environment import load_settings
    from helpers.infra.workbook import Workbook

    settings = replace(load_settings({"WORKBOOK_STACK": "local", "WORKBOOK_STREAM_ENGINE": "ksqldb"},
                                     dotenv=tmp_path / "none"), ksqldb_url=fake.url)
    return Workbook(settings)


def test_a_sql_cell_on_ksqldb_sends_statements_and_queries_where_documented(fake, tmp_path):
    from helpers.pipeline.sqlcell import SqlDone, SqlResult, run_sql

    fake.reply("POST", "/ksql", 200, fixture_bytes("ksql_created.json"))
    fake.stream = ndjson("query_stream_pull.ndjson")
    with ksqldb_workbook(fake, tmp_path) as wb:
        done, result = run_sql(wb, "CREATE STREAM s (ticker VARCHAR KEY) WITH (KAFKA_TOPIC='t', "
                                   "VALUE_FORMAT='JSON');\nSELECT * FROM prices WHERE ticker = 'AAPL';")
    assert isinstance(done, SqlDone) and isinstance(result, SqlResult)
    assert fake.paths() == ["POST /ksql", "POST /query-stream"]
    assert fake.requests[1]["body"]["properties"] == {"auto.offset.reset": "earliest"}
    assert result.table.to_dict("records") == [{"TICKER": "AAPL", "TS": 1703082600000, "CLOSE": 195.31},
                                               {"TICKER": "AAPL", "TS": 1703082660000, "CLOSE": 195.47}]
    assert result.engine == "ksqlDB" and (result.changes["op"] == "+").all()


def test_a_refused_ksqldb_statement_is_one_sentence(fake, tmp_path):
    from helpers.pipeline.sqlcell import run_sql

    fake.reply("POST", "/ksql", 400, fixture_bytes("ksql_statement_error.json"))
    with ksqldb_workbook(fake, tmp_path) as wb, pytest.raises(KsqlError) as refused:
        run_sql(wb, "CREATE STREAM broken;")
    assert "`CREATE STREAM broken;`" in str(refused.value) and "\n" not in str(refused.value)


def select_aliases(statement: str) -> list[str]:
    """The output column names of a SELECT: its aliases, or its plain columns (ksqlDB upper-cases
    unquoted names when it writes them: compared in lower case here)."""
    body = re.search(r"SELECT(.*?)FROM", statement, re.S).group(1)
    names = []
    for item in body.split(",\n"):
        item = item.strip()
        match = re.search(r"\bAS\s+`?(\w+)`?\s*$", item, re.I)
        names.append((match.group(1) if match else item.split(".")[-1].strip("` ")).lower())
    return names


@pytest.mark.parametrize("name", ["05_hourly_volume.sql", "06_moving_volume.sql", "07_sessions.sql"])
def test_each_window_statement_gives_the_same_columns_on_both_engines(name):
    from helpers.pipeline.sqlfiles import SQL_DIR, split_statements

    [ksql] = split_statements((SQL_DIR / name).read_text())
    [flink] = split_statements((SQL_DIR / "flink" / name).read_text())
    assert select_aliases(ksql) == select_aliases(flink)
    window = {"05": "WINDOW TUMBLING (SIZE 1 HOUR)",
              "06": "WINDOW HOPPING (SIZE 15 MINUTES, ADVANCE BY 5 MINUTES)",
              "07": "WINDOW SESSION (30 MINUTES)"}[name[:2]]
    assert window in ksql and ksql.rstrip().endswith("EMIT CHANGES;") and "GROUP BY ticker" in ksql


def test_the_lesson_streams_and_tables_declare_the_message_fields():
    from helpers.core.schemas import FIELDS, PRICELIST
    from helpers.pipeline.sqlfiles import SQL_DIR, split_statements

    [stream] = split_statements((SQL_DIR / "03_lesson_streams.sql").read_text())
    declared = [name.lower() for name, _ in declared_columns(stream)]
    assert set(declared) <= set(FIELDS[PRICELIST]) and "TIMESTAMP='ts'" in stream
    [table] = split_statements((SQL_DIR / "04_latest_price.sql").read_text())
    assert "LATEST_BY_OFFSET(close)" in table and "GROUP BY ticker" in table and "CREATE TABLE" in table


@pytest.mark.parametrize("notebook", ["06_stream_sql", "07_stream_joins"])
def test_every_ksqldb_solution_is_a_push_query_and_the_flink_twin_gives_its_columns(notebook):
    from helpers.classroom.solutions import read_solutions
    from helpers.core.settings import PROJECT_ROOT
    from helpers.pipeline.sqlfiles import split_statements

    text = (PROJECT_ROOT / "solutions" / "ksql" / f"{notebook}.sql").read_text()
    blocks = re.split(r"^-- EXERCISE (\d\d\.\d)\s*$", text, flags=re.M)[1:]
    ksql = {number: split_statements(body)[0] for number, body in zip(blocks[::2], blocks[1::2], strict=True)}
    flink = read_solutions(PROJECT_ROOT / "solutions" / f"{notebook}.py")
    assert ksql and set(ksql) <= set(flink)
    for number, statement in ksql.items():
        assert statement.rstrip().endswith("EMIT CHANGES;") and statement.lstrip().startswith("SELECT")
        flink_sql = re.search(r'"""(.*?)"""', flink[number], re.S).group(1)
        assert select_aliases(statement) == select_aliases(flink_sql), number
