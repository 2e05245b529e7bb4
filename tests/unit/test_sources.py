"""Unit tests of helpers.pipeline.sources: validation, synthetic bars, the sample, the Massive contract."""
from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.core import rules
from helpers.core.bars import BAR_DTYPES
from helpers.core.validation import validate_bars
from helpers.pipeline import sources

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "massive"
SECRET = "test-key-5f3b9c2e-not-real"
NY_MIDNIGHT_2023_12_18 = 1702875600000      # 2023-12-18 00:00 America/New_York
MINUTE = 60_000


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
    assert bars.dtypes.astype(str).to_dict() == BAR_DTYPES
    assert (lo > 0).all() and (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
    assert ((vw >= lo) & (vw <= h)).all()
    assert (bars["volume"] >= 0).all() and (bars["transactions"] >= 1).all()
    assert bars["ts"].is_monotonic_increasing and not bars.duplicated(["ticker", "ts"]).any()
    assert bars["ticker"].nunique() == 20 and set(np.diff(np.unique(bars["ts"]))) == {MINUTE}
    assert validate_bars(bars)[1].empty


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

def read_sample_rows(timespan):
    """One sample CSV read with the csv module only (an independent reader)."""
    with open(sources.sample_path(timespan), newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("timespan", sources.SAMPLE_TIMESPANS)
def test_sample_files_are_small_and_have_the_columns(timespan):
    assert sources.sample_path(timespan).stat().st_size < 3_000_000
    with open(sources.sample_path(timespan)) as file:
        assert file.readline().strip().split(",") == sources.BAR_COLUMNS


@pytest.mark.parametrize("timespan, tickers", [
    ("day", {"AAPL", "FB", "GOOG", "IBM", "MSFT"}),
    ("minute", {"AAPL", "GOOGL", "TSLA", "BTC-USD", "ETH-USD", "LTC-USD"})])
def test_sample_loads_with_the_bar_dtypes_and_no_rejects(timespan, tickers):
    bars = sources.fetch_bars("sample", timespan=timespan)
    assert len(bars) == len(read_sample_rows(timespan)) > 10_000
    assert bars.dtypes.astype(str).to_dict() == BAR_DTYPES
    assert bars["ts"].is_monotonic_increasing
    assert set(bars["ticker"]) == tickers
    assert validate_bars(bars)[1].empty


def test_sample_daily_bars_start_at_new_york_midnight():
    bars = sources.fetch_sample()
    local = pd.to_datetime(bars["ts"], unit="ms", utc=True).dt.tz_convert(sources.MARKET_TZ)
    assert (local.dt.hour == 0).all() and (local.dt.minute == 0).all()
    assert local.dt.date.min().isoformat() == "2000-03-01"


def test_sample_minute_bars_are_a_minute_apart_per_ticker():
    bars = sources.fetch_sample(timespan="minute")
    steps = bars.groupby("ticker")["ts"].diff().dropna()
    assert (steps % MINUTE == 0).all() and (steps >= MINUTE).all()
    assert steps.value_counts().idxmax() == MINUTE


def test_sample_date_bounds_are_inclusive_new_york_days():
    rows = [r for r in read_sample_rows("day") if r["ticker"] == "GOOG"
            and pd.Timestamp(int(r["ts"]), unit="ms", tz="UTC").tz_convert(sources.MARKET_TZ)
            .date().isoformat() in ("2008-10-01", "2008-10-02")]
    bars = sources.fetch_sample("goog", start="2008-10-01", end="2008-10-02")
    assert len(bars) == len(rows) == 2
    assert sources.fetch_sample("NVDA").empty
    with pytest.raises(ValueError, match="day and minute bars, not 'hour'"):
        sources.fetch_sample(timespan="hour")


@pytest.mark.parametrize("timespan", sources.SAMPLE_TIMESPANS)
def test_sample_alerts_variations_and_buys_at_defaults_match_plain_loops(timespan):
    rows = read_sample_rows(timespan)
    expected_alerts = [(r["ticker"], int(r["ts"])) for r in rows if float(r["close"]) > 195]
    big = [(r["ticker"], int(r["ts"])) for r in rows if float(r["high"]) / float(r["low"]) - 1 > 0.05]
    big_by_ticker = {}
    for ticker, ts in big:
        big_by_ticker.setdefault(ticker, []).append(ts)
    expected_buys = {(t, a, v) for t, a in expected_alerts for v in big_by_ticker.get(t, [])
                     if abs(a - v) <= 5 * MINUTE}

    bars = sources.fetch_bars("sample", timespan=timespan)
    alerts, variations = rules.alerts_frame(bars), rules.variations_frame(bars)
    buys = rules.buy_signals(alerts, variations)
    assert list(zip(alerts["ticker"], alerts["ts"])) == expected_alerts and len(alerts) > 0
    assert len(variations) == len(rows)
    assert set(zip(buys["ticker"], buys["alert_ts"], buys["variation_ts"])) == expected_buys
    assert len(buys) == len(expected_buys)
    assert (len(buys) > 0) == (timespan == "day")   # no real minute bar moves 5 % in a minute


def test_day_sample_regenerates_identically_from_its_package():
    pytest.importorskip("bokeh_sampledata")
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_sample", sources.DATA_DIR / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    made = module.day_bars()
    made[["vwap", "transactions"]] = np.nan           # empty columns: NA in the frame, NaN from the CSV
    committed = pd.read_csv(sources.sample_path("day"))
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
