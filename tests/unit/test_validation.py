"""One validation for ingestion and routing: each rule, and both paths giving the same verdict."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from helpers.core.bars import BAR_DTYPES
from helpers.core.rules import Thresholds
from helpers.core.schemas import BAR_COLUMNS, DEAD_LETTER
from helpers.core.validation import MAX_AHEAD_MS, REASONS, bar_problem, validate_bars
from helpers.pipeline.route import route_bar

NOW = 1_764_000_000_000          # a fixed "now" (2025-11-24), so the tests do not depend on the clock


def good_bar(**changes):
    """One valid bar, with some fields changed."""
    bar = {"ticker": "AAPL", "ts": 1702909800000, "open": 196.0, "high": 197.0, "low": 195.0,
           "close": 196.5, "volume": 1000.0, "vwap": 196.2, "transactions": 12}
    bar.update(changes)
    return bar


BAD_BARS = [
    ("missing_field", good_bar(ticker=None)),
    ("missing_field", good_bar(ts=None)),
    ("missing_field", good_bar(close=float("nan"))),
    ("missing_field", good_bar(volume=None)),
    ("bad_ticker", good_bar(ticker="  ")),
    ("bad_ticker", good_bar(ticker="")),
    ("bad_ticker", good_bar(ticker="A" * 17)),
    ("bad_ticker", good_bar(ticker="AA PL")),
    ("bad_ts", good_bar(ts=-1)),
    ("bad_ts", good_bar(ts=NOW + MAX_AHEAD_MS + 1)),
    ("bad_price", good_bar(low=0.0)),
    ("bad_price", good_bar(open=-1.0)),
    ("bad_price", good_bar(high=float("inf"))),
    ("bad_price", good_bar(close=-196.5, open=-196.0)),
    ("high_below_low", good_bar(high=194.0, low=195.0, open=194.5, close=194.5)),
    ("outside_range", good_bar(close=197.5)),
    ("outside_range", good_bar(open=194.0)),
    ("bad_volume", good_bar(volume=-5.0)),
    ("bad_volume", good_bar(transactions=-1)),
    ("bad_volume", good_bar(transactions=2**63)),
    ("not_finite", good_bar(open=1e308, high=1e308, low=1e-308, close=1e-308)),
]


@pytest.mark.parametrize("reason, bar", BAD_BARS)
def test_each_rule_has_its_reason(reason, bar):
    assert bar_problem(bar, NOW) == reason
    assert reason in REASONS


@pytest.mark.parametrize("reason, bar", BAD_BARS)
def test_ingestion_rejects_what_the_router_dead_letters(reason, bar):
    good, rejected = validate_bars(pd.DataFrame([good_bar(ts=1), bar]), now=NOW)
    assert good["ts"].tolist() == [1]
    assert rejected["reason"].tolist() == [reason]
    raw = json.dumps({k: v for k, v in bar.items() if v is not None}).encode()
    [(topic, value)] = route_bar(raw, Thresholds(), now=NOW)
    assert topic == DEAD_LETTER
    # the router names the same rule; a field absent from a message is the message's own flaw
    accepted = (reason, "bad_message") if reason == "missing_field" else (reason,)
    assert value["reason"].startswith(accepted)


def test_a_valid_bar_passes_both_paths():
    good, rejected = validate_bars(pd.DataFrame([good_bar()]), now=NOW)
    assert rejected.empty and len(good) == 1
    assert [t for t, _ in route_bar(json.dumps(good_bar()).encode(), Thresholds(), now=NOW)] == \
        ["variations", "alerts"]


def test_edges_that_are_valid():
    assert bar_problem(good_bar(ts=0), NOW) == ""                         # 1970 itself
    assert bar_problem(good_bar(ts=NOW + MAX_AHEAD_MS), NOW) == ""          # exactly an hour ahead
    assert bar_problem(good_bar(volume=0.0), NOW) == ""
    assert bar_problem(good_bar(vwap=None, transactions=None), NOW) == ""
    assert bar_problem(good_bar(ticker="BTC-USD"), NOW) == ""
    assert bar_problem(good_bar(ticker="9988.HK"), NOW) == ""
    assert bar_problem(good_bar(open=195.0, close=197.0), NOW) == ""       # open and close on the edges


def test_validate_keeps_the_first_of_duplicate_bars():
    bars = pd.DataFrame([good_bar(close=196.1), good_bar(ticker="MSFT"), good_bar(close=196.9)])
    good, rejected = validate_bars(bars)
    assert list(zip(good["ticker"], good["close"])) == [("AAPL", 196.1), ("MSFT", 196.5)]
    assert rejected["reason"].tolist() == ["duplicate"]
    assert rejected["close"].tolist() == [196.9]


def test_validate_a_bad_bar_does_not_shadow_a_later_good_duplicate():
    bars = pd.DataFrame([good_bar(high=190.0), good_bar()])
    good, rejected = validate_bars(bars)
    assert len(good) == 1 and good.loc[0, "high"] == 197.0
    assert rejected["reason"].tolist() == ["high_below_low"]


def test_first_failing_rule_names_the_reason():
    bars = pd.DataFrame([good_bar(open=-1.0, high=1.0, low=2.0, volume=None)])
    assert validate_bars(bars)[1]["reason"].tolist() == ["missing_field"]


def test_text_where_a_number_belongs_is_a_missing_field():
    bars = pd.DataFrame([good_bar(close="high")])
    assert validate_bars(bars)[1]["reason"].tolist() == ["missing_field"]


def test_validate_accepts_zero_volume_missing_optionals_and_vwap_outside_range():
    bars = pd.DataFrame([good_bar(ts=1, volume=0.0), good_bar(ts=2, vwap=None, transactions=None),
                         good_bar(ts=3, vwap=199.0)])
    good, rejected = validate_bars(bars)
    assert rejected.empty and len(good) == 3
    assert good["vwap"].isna().tolist() == [False, True, False]
    assert good["transactions"].isna().tolist() == [False, True, False]


def test_validate_returns_the_bar_dtypes():
    good, _ = validate_bars(pd.DataFrame([good_bar(ts=1, volume=7), good_bar(ts=2)]))
    assert list(good.columns) == BAR_COLUMNS
    assert good.dtypes.astype(str).to_dict() == BAR_DTYPES


def test_validate_names_missing_columns():
    with pytest.raises(ValueError, match="vwap"):
        validate_bars(pd.DataFrame([good_bar()]).drop(columns="vwap"))


def test_a_nan_optional_value_is_absent_not_a_crash():
    """Found by hypothesis: NaN transactions reached the alert and broke its JSON encoding."""
    raw = json.dumps(good_bar(transactions=float("nan"), vwap=float("nan"))).encode()
    out = dict(route_bar(raw, Thresholds(), now=NOW))
    assert out["alerts"]["transactions"] is None
    good, rejected = validate_bars(pd.DataFrame([good_bar(transactions=float("nan"))]), now=NOW)
    assert rejected.empty and good["transactions"].isna().all()
