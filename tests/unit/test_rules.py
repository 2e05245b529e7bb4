"""The pure rules and message handling: no services, checked against hand computations."""
import json
import math

import pandas as pd
import pytest

from helpers.core.rules import (
    Thresholds,
    alerts_frame,
    buy_signals,
    check_variation_threshold,
    is_alert,
    is_big_variation,
    to_alert,
    to_variation,
    variation_ex,
    variation_in,
    variations_frame,
)
from helpers.core.schemas import TopicNames, decode, encode
from helpers.pipeline.produce import bar_message, pause_between
from helpers.pipeline.route import route_bar
from helpers.pipeline.sqlfiles import render_sql, split_statements

BAR = {"ticker": "AAPL", "ts": 1_700_000_000_000, "open": 200.0, "high": 210.0, "low": 195.0,
       "close": 196.0, "volume": 1000.0, "vwap": 203.5, "transactions": 12}
MIN = 60_000


def test_variations_are_fractions():
    assert variation_ex(210.0, 200.0) == pytest.approx(0.05)
    assert variation_in(196.0, 200.0) == pytest.approx(-0.02)
    assert to_variation(BAR) == {"ticker": "AAPL", "ts": BAR["ts"],
                                 "variation_ex": 210 / 195 - 1, "variation_in": 196 / 200 - 1}


def test_alert_is_strictly_above_the_price():
    assert is_alert(195.01, 195) and not is_alert(195.0, 195)
    assert to_alert(BAR) == {"ticker": "AAPL", "ts": BAR["ts"], "close": 196.0, "volume": 1000.0,
                             "transactions": 12}


def test_big_variation_is_strict_and_compares_the_range_itself():
    """variation_ex = high/low − 1 is never negative: no absolute value (the original's ABS did nothing)."""
    assert not is_big_variation(0.05, 0.05)
    assert is_big_variation(0.0500001, 0.05) and not is_big_variation(-0.06, 0.05)


def test_rules_work_on_columns_too():
    closes = pd.Series([194.0, 195.0, 196.0])
    assert is_alert(closes, 195).tolist() == [False, False, True]


@pytest.mark.parametrize("bad, message", [(5, "Did you mean 0.05"), (-0.1, "between 0 and 1"),
                                          (float("nan"), "finite"), ("0.05", "finite"), (True, "finite")])
def test_variation_threshold_refuses_percent_and_junk(bad, message):
    with pytest.raises(ValueError, match=message):
        check_variation_threshold(bad)


def test_thresholds_validate_price():
    with pytest.raises(ValueError, match="above 0 dollars"):
        Thresholds(price=0)


def buy_case():
    """Every window edge, computed by hand: which (alert_ts, variation_ts) pairs must match."""
    alerts = pd.DataFrame({"ticker": ["A", "A", "B"], "ts": [10 * MIN, 100 * MIN, 10 * MIN],
                           "close": [200.0, 201.0, 300.0], "volume": 1.0, "transactions": 1})
    variations = pd.DataFrame({
        "ticker": ["A", "A", "A", "A", "B", "B"],
        "ts": [15 * MIN, 15 * MIN + 1, 5 * MIN, 100 * MIN, 10 * MIN, 12 * MIN],
        "variation_ex": [0.06, 0.07, 0.08, 0.05, 0.2, 0.01],
        "variation_in": [0.0, 0.0, 0.0, 0.0, 0.1, 0.0]})
    expected = {("A", 10 * MIN, 15 * MIN),      # exactly 5 minutes after: inclusive
                ("A", 10 * MIN, 5 * MIN),       # exactly 5 minutes before: the window reaches both ways
                ("B", 10 * MIN, 10 * MIN)}      # same instant
    # not: 5 min + 1 ms (too late), 0.05 at threshold (not strictly above), 0.01 (small)
    return alerts, variations, expected


def test_reference_join_edges():
    alerts, variations, expected = buy_case()
    got = buy_signals(alerts, variations, 0.05)
    assert set(zip(got["ticker"], got["alert_ts"], got["variation_ts"])) == expected
    assert len(got) == len(expected)
    assert list(got.columns) == ["ticker", "alert_ts", "variation_ts", "close", "variation_ex",
                                 "variation_in"]
    row = got[got["ticker"] == "B"].iloc[0]
    assert (row["close"], row["variation_ex"], row["variation_in"]) == (300.0, 0.2, 0.1)


def test_reference_join_matches_a_plain_loop_on_random_data():
    from helpers.pipeline.sources import fetch_synthetic

    bars = fetch_synthetic(n_tickers=3, n_bars=400, seed=2)
    alerts, variations = alerts_frame(bars, 100), variations_frame(bars)
    got = buy_signals(alerts, variations, 0.005)
    loop = sorted((a.ticker, a.ts, v.ts) for a in alerts.itertuples() for v in variations.itertuples()
                  if a.ticker == v.ticker and abs(a.ts - v.ts) <= 5 * MIN and v.variation_ex > 0.005)
    assert sorted(zip(got["ticker"], got["alert_ts"], got["variation_ts"])) == loop
    assert len(loop) > 0


def test_empty_inputs_give_an_empty_typed_frame():
    alerts, variations, _ = buy_case()
    got = buy_signals(alerts.iloc[:0], variations)
    assert got.empty and str(got["alert_ts"].dtype) == "int64"


def test_route_bar_sends_every_bar_to_variations_and_alerts_above_the_price():
    raw = bar_message(BAR)[1]
    assert [t for t, _ in route_bar(raw, Thresholds(price=195))] == ["variations", "alerts"]
    assert [t for t, _ in route_bar(raw, Thresholds(price=196))] == ["variations"]
    topics = TopicNames.with_prefix("t.")
    assert [t for t, _ in route_bar(raw, Thresholds(), topics)] == ["t.variations", "t.alerts"]


@pytest.mark.parametrize("raw, reason", [
    (b"not json", "not JSON"),
    (b"\xff\xfe{}", "not JSON"),                                    # not UTF-8
    (b'{"ticker": "AAPL", "ts": ' + b"9" * 5000 + b"}", "not JSON"),  # past Python's int limit
    (b"[" * 100_000, "more than a message"),                          # oversized
    (b"[" * 5_000 + b"]" * 5_000, "not JSON"),                        # nested too deep
    (None, "no value"),
    (b"[1, 2]", "not a JSON object"),
    (json.dumps({**BAR, "close": "high"}).encode(), "'close' must be a number"),
    (json.dumps({k: v for k, v in BAR.items() if k != "low"}).encode(), "'low' is missing"),
    (json.dumps({**BAR, "low": 0}).encode(), "bad_price"),
    (json.dumps({**BAR, "high": 1.0}).encode(), "high_below_low"),
    (json.dumps({**BAR, "ts": -5}).encode(), "bad_ts"),
    (json.dumps({**BAR, "ts": 1.5}).encode(), "whole number"),
])
def test_malformed_records_become_dead_letters_with_the_reason(raw, reason):
    [(topic, value)] = route_bar(raw, Thresholds())
    assert topic == "pricelist.dlq"
    assert reason in value["reason"]


def test_bar_message_keys_by_ticker_and_stamps_market_time():
    key, value, ts = bar_message({**BAR, "vwap": float("nan"), "transactions": pd.NA})
    assert key == b"AAPL" and ts == BAR["ts"]
    decoded = decode("pricelist", value)
    assert decoded["vwap"] is None and decoded["transactions"] is None
    assert list(json.loads(value)) == ["ticker", "ts", "open", "high", "low", "close", "volume",
                                       "vwap", "transactions"]


def test_encode_refuses_nan():
    with pytest.raises(ValueError):
        encode({"x": math.nan})


def test_pause_between_compresses_market_time_and_caps_pauses():
    assert pause_between(None, 0, 60) == 0
    assert pause_between(0, MIN, 60) == pytest.approx(1.0)
    assert pause_between(0, MIN, 600) == pytest.approx(0.1)
    assert pause_between(0, 86_400_000, 600) == 1.0           # a night never stalls the class
    assert pause_between(0, MIN, None) == 0


def test_sql_placeholders_are_filled_only_with_safe_values():
    text = "SELECT * FROM ${topic} WHERE x > ${threshold};"
    assert render_sql(text, topic="alerts", threshold=0.05) == "SELECT * FROM alerts WHERE x > 0.05;"
    with pytest.raises(ValueError, match="may hold only"):
        render_sql(text, topic="alerts; DROP TABLE x", threshold=0.05)
    with pytest.raises(ValueError, match="missing: threshold"):
        render_sql(text, topic="alerts")
    with pytest.raises(ValueError, match="finite"):
        render_sql(text, topic="alerts", threshold=float("inf"))


def test_split_statements_drops_comment_lines():
    text = "-- a comment; with a semicolon\nCREATE A;\n\n-- another\nINSERT B\n  VALUES 1;\n"
    assert split_statements(text) == ["CREATE A;", "INSERT B\n  VALUES 1;"]
