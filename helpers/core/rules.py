"""The trading rules, as pure functions (04_routing, 07_stream_joins, 08_dashboard).

One definition of "$195 and 5 %" serves the router (one bar at a time), the
dashboard (whole columns at once: every rule works on floats and on pandas
Series alike) and the reference buy join that checks ksqlDB and Flink.

Variations are fractions: 0.05 is 5 %. The original stored percent
(`(high/low - 1) * 100`) and then filtered `> 0.02`, i.e. 0.02 %: nearly every
bar became a "big" variation.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.errors import InputError

PRICE_THRESHOLD = 195.0          # USD: an alert when the close is strictly above
VARIATION_THRESHOLD = 0.05       # fraction: a big variation when |high/low - 1| > 5 %
JOIN_WINDOW_MS = 5 * 60 * 1000   # alert and variation at most 5 minutes apart, inclusive

BUY_COLUMNS = ["ticker", "alert_ts", "variation_ts", "close", "variation_ex", "variation_in"]
_TS_BITS = 42                     # epoch ms below 2**42 (year 2109) leave room for a ticker code


def check_price_threshold(value: Any) -> float:
    """Return the price threshold as a float, or raise InputError with a one-sentence reason."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"The price threshold must be a finite number of dollars, got {value!r}.")
    if value <= 0:
        raise InputError(f"The price threshold must be above 0 dollars, got {value!r}.")
    return float(value)


def check_variation_threshold(value: Any) -> float:
    """Return the variation threshold as a fraction, or raise InputError (5 is not 5 %)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"The variation threshold must be a finite fraction, got {value!r}.")
    if not 0 <= value < 1:
        hint = f" Did you mean {value / 100:g} ({value:g} %)?" if 1 <= value < 100 else ""
        raise InputError(
            f"The variation threshold is a fraction between 0 and 1 (0.05 means 5 %), got {value!r}.{hint}"
        )
    return float(value)


@dataclass(frozen=True)
class Thresholds:
    """The two numbers a class tunes: alert price (USD) and big-variation fraction."""

    price: float = PRICE_THRESHOLD
    variation: float = VARIATION_THRESHOLD

    def __post_init__(self) -> None:
        object.__setattr__(self, "price", check_price_threshold(self.price))
        object.__setattr__(self, "variation", check_variation_threshold(self.variation))


# --- the rules: each works on one bar's numbers or on whole columns ---------

def variation_ex(high, low):
    """Intrabar range high/low - 1, a fraction (0.05 is 5 %)."""
    return high / low - 1


def variation_in(close, open_):
    """Change within the bar close/open - 1, a fraction (negative when it fell)."""
    return close / open_ - 1


def is_alert(close, price_threshold: float = PRICE_THRESHOLD):
    """True when the close is strictly above the price threshold."""
    return close > price_threshold


def is_big_variation(var_ex, variation_threshold: float = VARIATION_THRESHOLD):
    """True when variation_ex (high/low − 1, never negative) is strictly above the variation threshold."""
    return var_ex > variation_threshold


# --- one bar -> the messages the router sends --------------------------------

def to_variation(bar: Mapping[str, Any]) -> dict[str, Any]:
    """The `variations` message of a `pricelist` bar."""
    return {
        "ticker": bar["ticker"],
        "ts": bar["ts"],
        "variation_ex": variation_ex(bar["high"], bar["low"]),
        "variation_in": variation_in(bar["close"], bar["open"]),
    }


def to_alert(bar: Mapping[str, Any]) -> dict[str, Any]:
    """The `alerts` message of a `pricelist` bar (send it only when is_alert)."""
    return {
        "ticker": bar["ticker"],
        "ts": bar["ts"],
        "close": bar["close"],
        "volume": bar["volume"],
        "transactions": bar.get("transactions"),
    }


# --- whole history at once (reference for the stream SQL, dashboard) --------

def variations_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """The `variations` rows of a frame of bars (same rule as to_variation)."""
    return pd.DataFrame({
        "ticker": bars["ticker"].to_numpy(),
        "ts": bars["ts"].to_numpy(dtype="int64"),
        "variation_ex": variation_ex(bars["high"].to_numpy(float), bars["low"].to_numpy(float)),
        "variation_in": variation_in(bars["close"].to_numpy(float), bars["open"].to_numpy(float)),
    })


def alerts_frame(bars: pd.DataFrame, price_threshold: float = PRICE_THRESHOLD) -> pd.DataFrame:
    """The `alerts` rows of a frame of bars (same rule as is_alert)."""
    hit = is_alert(bars["close"].to_numpy(float), check_price_threshold(price_threshold))
    return pd.DataFrame({name: bars[name].to_numpy()[hit]
                         for name in ["ticker", "ts", "close", "volume", "transactions"]})


def buy_signals(alerts: pd.DataFrame, variations: pd.DataFrame,
                variation_threshold: float = VARIATION_THRESHOLD,
                window_ms: int = JOIN_WINDOW_MS) -> pd.DataFrame:
    """Reference buy join: every (alert, big variation) pair of one ticker at most window_ms apart.

    Vectorized with sorted keys and searchsorted, so it stays fast on a
    million bars; ksqlDB and Flink must return exactly these rows.
    """
    big = variations[is_big_variation(variations["variation_ex"].to_numpy(float),
                                      check_variation_threshold(variation_threshold))]
    if alerts.empty or big.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            BUY_COLUMNS, ["object", "int64", "int64", "float64", "float64", "float64"], strict=True)})
    codes = pd.Index(pd.unique(np.concatenate([alerts["ticker"].to_numpy(object),
                                               big["ticker"].to_numpy(object)])))
    a_key = (codes.get_indexer(alerts["ticker"]).astype(np.int64) << _TS_BITS) \
        + alerts["ts"].to_numpy(np.int64)
    v_key = (codes.get_indexer(big["ticker"]).astype(np.int64) << _TS_BITS) \
        + big["ts"].to_numpy(np.int64)
    order = np.argsort(v_key, kind="stable")
    v_sorted = v_key[order]
    lo = np.searchsorted(v_sorted, a_key - window_ms, side="left")
    hi = np.searchsorted(v_sorted, a_key + window_ms, side="right")
    counts = hi - lo
    a_idx = np.repeat(np.arange(len(a_key)), counts)
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
    v_idx = order[starts + np.arange(counts.sum())]
    out = pd.DataFrame({
        "ticker": alerts["ticker"].to_numpy(object)[a_idx],
        "alert_ts": alerts["ts"].to_numpy(np.int64)[a_idx],
        "variation_ts": big["ts"].to_numpy(np.int64)[v_idx],
        "close": alerts["close"].to_numpy(float)[a_idx],
        "variation_ex": big["variation_ex"].to_numpy(float)[v_idx],
        "variation_in": big["variation_in"].to_numpy(float)[v_idx],
    })
    return out.sort_values(["ticker", "alert_ts", "variation_ts"], ignore_index=True)
