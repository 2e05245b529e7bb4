"""The common frame of bars: one row per bar, the same columns and dtypes whatever the source (01_ingestion).

ticker (str), ts (int64, bar start in epoch milliseconds UTC), open, high, low,
close, volume, vwap (float64, USD and shares; vwap may be NaN) and
transactions (nullable Int64), sorted by (ts, ticker), the replay order.
"""
from __future__ import annotations

import pandas as pd

from helpers.core.errors import InputError
from helpers.core.schemas import BAR_COLUMNS

PRICE_COLUMNS = ["open", "high", "low", "close"]
BAR_DTYPES = {"ticker": "object", "ts": "int64", "open": "float64", "high": "float64",
              "low": "float64", "close": "float64", "volume": "float64", "vwap": "float64",
              "transactions": "Int64"}

def empty_bars() -> pd.DataFrame:
    """A frame with the bar columns and dtypes and no rows."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in BAR_DTYPES.items()})


def as_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` with exactly the bar columns, in order, with their dtypes."""
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"The bars lack the column(s) {', '.join(missing)}.")
    out = frame[BAR_COLUMNS].copy()
    out["ticker"] = out["ticker"].astype(object)
    out["ts"] = out["ts"].astype("int64")
    for column in PRICE_COLUMNS + ["volume", "vwap"]:
        out[column] = pd.to_numeric(out[column]).astype("float64")
    out["transactions"] = pd.to_numeric(out["transactions"]).astype("Int64")
    return out


def sort_bars(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort bars by (ts, ticker), the order in which they are replayed."""
    return frame.sort_values(["ts", "ticker"], kind="stable", ignore_index=True)
