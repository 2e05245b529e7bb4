"""Contract tests of the Massive (formerly Polygon.io) client: a local fake server answers
with recorded responses (tests/fixtures/massive), since the real API cannot be reached here.
Also the rate limiter that paces the requests (a fake clock, no server).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from helpers.core.bars import BAR_DTYPES
from helpers.core.errors import ConfigError
from helpers.core.validation import validate_bars
from helpers.infra.environment import load_settings
from helpers.pipeline import sources

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "massive"
SECRET = "test-key-5f3b9c2e-not-real"
MINUTE = 60_000


# --- rate limiter ---------------------------------------------------------------

class FakeClock:
    """A clock that only moves when sleep() or advance() is called."""

    def __init__(self):
        self.now, self.sleeps = 1000.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_limiter_lets_five_through_then_waits_for_the_window():
    clock = FakeClock()
    limiter = sources.RateLimiter(5, 60.0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        assert limiter.wait() == 0.0
        clock.now += 1.0
    assert limiter.wait() == pytest.approx(55.0)
    assert clock.sleeps == [pytest.approx(55.0)] and clock.now == pytest.approx(1060.0)


def test_rate_limiter_window_slides():
    clock = FakeClock()
    limiter = sources.RateLimiter(2, 10.0, clock=clock, sleep=clock.sleep)
    limiter.wait()
    clock.now += 6
    limiter.wait()
    clock.now += 5                  # the first call left the window 1 s ago
    assert limiter.wait() == 0.0
    assert limiter.wait() == pytest.approx(5.0)     # until the second call leaves it
    assert clock.sleeps == [pytest.approx(5.0)]


def test_rate_limiter_rejects_a_zero_rate():
    with pytest.raises(ValueError):
        sources.RateLimiter(0, 60.0)


# --- Massive: contract tests against a local server -------------------------------

class FakeMassive(BaseHTTPRequestHandler):
    """Answers like the aggregates endpoint, from the fixture files."""

    requests: list[dict] = []
    failures_left = {"FLAKY": 1, "LIMITED": 1}

    def do_GET(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.requests.append({"path": url.path, "query": query,
                              "authorization": self.headers.get("Authorization")})
        ticker = url.path.split("/")[4]
        if ticker == "AAPL":
            self.reply(200, "aapl_minute_page2.json" if "cursor" in query else "aapl_minute_page1.json")
        elif ticker == "MSFT":
            self.reply(200, "msft_minute_bad_bar.json")
        elif ticker == "FLAKY" and self.failures_left["FLAKY"] > 0:
            self.failures_left["FLAKY"] -= 1
            self.reply(503, body=b'{"status":"ERROR","error":"try again"}')
        elif ticker == "FLAKY":
            self.reply(200, "aapl_minute_page2.json")
        elif ticker == "LIMITED" and self.failures_left["LIMITED"] > 0:
            self.failures_left["LIMITED"] -= 1
            self.reply(429, body=b'{"status":"ERROR","error":"You\'ve exceeded the maximum requests"}')
        elif ticker == "LIMITED":
            self.reply(200, "aapl_minute_page2.json")
        elif ticker == "BROKEN":
            self.reply(500, body=b'{"status":"ERROR","error":"internal error"}')
        elif ticker == "SLOW":
            time.sleep(1.5)
            self.reply(200, "aapl_minute_page2.json")
        elif ticker == "GARBLED":
            self.reply(200, body=b"<html>gateway says hello</html>")
        elif ticker == "ECHO":
            auth = self.headers.get("Authorization", "")
            self.reply(400, body=json.dumps({"status": "ERROR", "error": f"bad {auth}"}).encode())
        else:
            self.reply(401, "error_unknown_key.json")

    def reply(self, status, fixture=None, body=None):
        body = body if body is not None else (FIXTURES / fixture).read_bytes()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def massive_url():
    """Base URL of a local fake Massive server, serving the fixtures on 127.0.0.1."""
    FakeMassive.requests = []
    FakeMassive.failures_left = {"FLAKY": 1, "LIMITED": 1}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeMassive)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def fast_limiter():
    """A limiter that never blocks the tests (its clock is fake)."""
    clock = FakeClock()
    return sources.RateLimiter(5, 60.0, clock=clock, sleep=clock.sleep)


def test_contract_massive_follows_next_url_across_pages(massive_url):
    bars = sources.fetch_bars("massive", tickers="AAPL", start="2023-12-18", end="2023-12-18",
                              api_key=SECRET, base_url=massive_url, limiter=fast_limiter())
    assert bars["ts"].tolist() == [1702909800000 + i * MINUTE for i in range(5)]
    assert bars.dtypes.astype(str).to_dict() == BAR_DTYPES
    assert bars.iloc[0][["open", "high", "low", "close", "volume", "vwap"]].tolist() == \
        [196.09, 196.38, 195.89, 196.21, 1176093.0, 196.1456]
    assert bars["transactions"].tolist() == [13107, 4826, 3903, 3511, 3288]
    first, second = FakeMassive.requests
    assert first["path"] == "/v2/aggs/ticker/AAPL/range/1/minute/2023-12-18/2023-12-18"
    assert first["query"] == {"adjusted": "true", "sort": "asc", "limit": "50000"}
    assert second["path"] == "/v2/aggs/ticker/AAPL/range/1/minute/1702909980000/1702947540000"
    assert "cursor" in second["query"]
    assert {r["authorization"] for r in FakeMassive.requests} == {f"Bearer {SECRET}"}


def test_contract_massive_pages_wait_for_the_rate_limiter(massive_url):
    clock = FakeClock()
    limiter = sources.RateLimiter(1, 60.0, clock=clock, sleep=clock.sleep)
    bars = sources.fetch_massive(["AAPL", "MSFT"], "2023-12-18", "2023-12-18", api_key=SECRET,
                                 base_url=massive_url, limiter=limiter)
    assert len(FakeMassive.requests) == 3 and len(bars) == 8
    assert clock.sleeps == [pytest.approx(60.0)] * 2


def test_contract_massive_bad_bar_is_kept_for_validation(massive_url):
    bars = sources.fetch_massive("MSFT", "2023-12-18", "2023-12-18", api_key=SECRET,
                                 base_url=massive_url, limiter=fast_limiter())
    good, rejected = validate_bars(bars)
    assert len(bars) == 3
    assert rejected["reason"].tolist() == ["high_below_low"]
    assert rejected["ts"].tolist() == [1702909800000 + MINUTE]
    assert good["vwap"].isna().tolist() == [False, True]
    assert good["transactions"].isna().tolist() == [False, True]


def test_contract_massive_retries_a_503(massive_url):
    bars = sources.fetch_massive("FLAKY", "2023-12-18", "2023-12-18", api_key=SECRET,
                                 base_url=massive_url, limiter=fast_limiter())
    assert len(bars) == 2 and set(bars["ticker"]) == {"FLAKY"}
    assert len(FakeMassive.requests) == 2


def test_contract_massive_unknown_key_is_a_clear_error(massive_url):
    with pytest.raises(sources.SourceError, match="Massive request for NOPE failed: Unknown API Key"):
        sources.fetch_massive("NOPE", "2023-12-18", "2023-12-18", api_key=SECRET,
                              base_url=massive_url, limiter=fast_limiter())


def test_contract_massive_never_shows_the_key(massive_url, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(sources.SourceError) as failure:
        sources.fetch_massive("ECHO", "2023-12-18", "2023-12-18", api_key=SECRET,
                              base_url=massive_url, limiter=fast_limiter())
    client = sources.make_massive_client(SECRET, None, base_url=massive_url)
    shown = [str(failure.value), repr(failure.value), repr(client), caplog.text,
             *capsys.readouterr()]
    assert "***" in str(failure.value)
    assert all(SECRET not in text for text in shown)
    assert failure.value.__cause__ is None and failure.value.__context__ is None


def test_massive_without_a_key_says_how_to_set_it():
    with pytest.raises(ConfigError, match=r"MASSIVE_API_KEY=<your key> to \.env"):
        sources.fetch_bars("massive", tickers="AAPL")
    with pytest.raises(ConfigError, match=r"MASSIVE_API_KEY=<your key> to \.env"):
        sources.fetch_bars("massive", tickers="AAPL", api_key="  ")


def test_massive_key_comes_from_the_settings(tmp_path):
    (tmp_path / ".env").write_text(f"POLYGON_API_KEY={SECRET}\n")
    settings = load_settings(env={"WORKBOOK_STACK": "local"}, dotenv=tmp_path / ".env")
    assert sources.require_api_key(settings.massive_api_key) == SECRET
    assert SECRET not in repr(settings)


def test_contract_massive_a_429_is_retried_and_the_retry_waits_for_the_limiter(massive_url):
    clock = FakeClock()
    limiter = sources.RateLimiter(1, 60.0, clock=clock, sleep=clock.sleep)
    bars = sources.fetch_massive("LIMITED", "2023-12-18", "2023-12-18", api_key=SECRET,
                                 base_url=massive_url, limiter=limiter)
    assert len(bars) == 2 and len(FakeMassive.requests) == 2
    assert clock.sleeps == [pytest.approx(60.0)]     # the retry was paced like a new request


def test_contract_massive_a_lasting_500_is_one_sentence_after_the_retries(massive_url):
    with pytest.raises(sources.SourceError, match=r"^Massive request for BROKEN failed: internal error\.$"):
        sources.fetch_massive("BROKEN", "2023-12-18", "2023-12-18", api_key=SECRET,
                              base_url=massive_url, limiter=fast_limiter(), retries=2)
    assert len(FakeMassive.requests) == 3           # the first try and two retries


def test_contract_massive_a_401_is_not_retried(massive_url):
    with pytest.raises(sources.SourceError, match="Unknown API Key"):
        sources.fetch_massive("NOPE", "2023-12-18", "2023-12-18", api_key=SECRET,
                              base_url=massive_url, limiter=fast_limiter())
    assert len(FakeMassive.requests) == 1


def test_contract_massive_a_silent_server_is_retried_then_reported(massive_url):
    started = time.monotonic()
    with pytest.raises(sources.SourceError, match=r"SLOW failed: no answer after retries"):
        sources.fetch_massive("SLOW", "2023-12-18", "2023-12-18", api_key=SECRET, base_url=massive_url,
                              limiter=fast_limiter(), retries=1, timeout=0.3)
    assert len(FakeMassive.requests) == 2 and time.monotonic() - started < 5


def test_contract_massive_an_answer_that_is_not_json_is_an_error_not_an_empty_result(massive_url):
    with pytest.raises(sources.SourceError, match=r"GARBLED failed: the answer is not JSON\.$"):
        sources.fetch_massive("GARBLED", "2023-12-18", "2023-12-18", api_key=SECRET,
                              base_url=massive_url, limiter=fast_limiter())


def test_contract_massive_a_failing_ticker_returns_nothing_of_the_others(massive_url):
    with pytest.raises(sources.SourceError, match="BROKEN"):
        sources.fetch_massive(["AAPL", "BROKEN"], "2023-12-18", "2023-12-18", api_key=SECRET,
                              base_url=massive_url, limiter=fast_limiter(), retries=0)
    assert [r["path"].split("/")[4] for r in FakeMassive.requests] == ["AAPL", "AAPL", "BROKEN"]


def test_contract_massive_calls_share_one_limiter(massive_url, monkeypatch):
    clock = FakeClock()
    shared = sources.RateLimiter(5, 60.0, clock=clock, sleep=clock.sleep)
    monkeypatch.setattr(sources, "shared_limiter", lambda: shared)
    for _ in range(3):                   # 2 pages each: the sixth request must wait
        sources.fetch_massive("AAPL", "2023-12-18", "2023-12-18", api_key=SECRET, base_url=massive_url)
    assert len(FakeMassive.requests) == 6
    assert clock.sleeps == [pytest.approx(60.0)]


def test_contract_massive_takes_its_key_and_address_from_the_settings(massive_url, tmp_path):
    settings = load_settings(env={"WORKBOOK_STACK": "local", "MASSIVE_API_KEY": SECRET,
                                  "MASSIVE_BASE_URL": massive_url}, dotenv=tmp_path / ".env")
    bars = sources.fetch_bars("massive", tickers="AAPL", start="2023-12-18", end="2023-12-18",
                              settings=settings, limiter=fast_limiter())
    assert len(bars) == 5
    assert {r["authorization"] for r in FakeMassive.requests} == {f"Bearer {SECRET}"}
