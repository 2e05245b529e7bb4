"""Hypothesis strategies for `pricelist` records: valid bars, near misses and plain garbage.

Shared by the unit test of `route_bar` and the integration test of a running router.
"""
from __future__ import annotations

import json

from hypothesis import strategies as st

NOW = 1_764_000_000_000          # a fixed "now" for pure tests (2025-11-24)
TICKERS = ["AAPL", "GOOG", "BTC-USD", "9988.HK"]


@st.composite
def valid_bars(draw, now: int = NOW) -> dict:
    """A bar every rule accepts."""
    low = draw(st.floats(0.01, 10_000, allow_nan=False))
    high = low * draw(st.floats(1.0, 1.3))
    return {
        "ticker": draw(st.sampled_from(TICKERS)),
        "ts": draw(st.integers(0, now)),
        "open": draw(st.floats(low, high)), "high": high, "low": low,
        "close": draw(st.floats(low, high)),
        "volume": draw(st.floats(0, 1e9)),
        "vwap": draw(st.none() | st.floats(low, high)),
        "transactions": draw(st.none() | st.integers(0, 10**6)),
    }


JUNK_VALUES = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=20)
               | st.floats(allow_nan=True, allow_infinity=True) | st.lists(st.integers(), max_size=3)
               | st.sampled_from([1e308, -1e308, 1e-308, 0, -1]))


@st.composite
def near_misses(draw, now: int = NOW) -> dict:
    """A valid bar with one or two fields replaced, dropped, or an extra field added."""
    bar = draw(valid_bars(now))
    for _ in range(draw(st.integers(1, 2))):
        field = draw(st.sampled_from(list(bar) + ["extra"]))
        action = draw(st.sampled_from(["replace", "drop", "future", "huge"]))
        if action == "drop":
            bar.pop(field, None)
        elif action == "future" and field == "ts":
            bar["ts"] = now + draw(st.integers(3_600_001, 10**12))
        elif action == "huge":
            bar.update(open=1e308, high=1e308, low=1e-308, close=1e-308)
        else:
            bar[field] = draw(JUNK_VALUES)
    return bar


def to_bytes(value: dict) -> bytes:
    """JSON as a producer would send it (NaN and Infinity as Python's json writes them)."""
    return json.dumps(value).encode()


records = st.one_of(
    valid_bars().map(to_bytes),
    near_misses().map(to_bytes),
    st.binary(max_size=64),                                         # not JSON, not even UTF-8
    st.text(max_size=40).map(str.encode),
    st.recursive(JUNK_VALUES, lambda inner: st.dictionaries(st.text(max_size=8), inner, max_size=4),
                 max_leaves=6).map(lambda v: json.dumps(v).encode()),
    st.just(b'{"ticker": "AAPL", "ts": 1, "open": ' + b"1" * 20_000 + b"}"),   # oversized
    st.none(),                                                     # a record without a value
)
