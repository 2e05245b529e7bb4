"""What makes a bar valid: one check for ingestion (01_ingestion) and routing (04_routing).

`bar_problem` looks at one bar and names the first rule it breaks. Ingestion
rejects such a bar with that reason before it reaches MySQL; the router sends
such a record to the dead-letter topic with the same reason, and goes on.
"""
from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from helpers.core.bars import as_bars
from helpers.core.errors import InputError
from helpers.core.schemas import BAR_COLUMNS, NULLABLE

MAX_AHEAD_MS = 3_600_000        # Kafka 4 refuses timestamps more than an hour ahead of its clock
MAX_COUNT = 2**63               # a BIGINT in MySQL, Flink and ksqlDB holds counts below this
TICKER = re.compile(r"[A-Za-z0-9][A-Za-z0-9.^=_/\-]{0,15}")
PRICES = ("open", "high", "low", "close")

#: reason code -> what is wrong with a bar (the first failing rule wins, in this order)
REASONS = {
    "missing_field": "ticker, ts, a price or the volume is missing",
    "bad_ticker": "the ticker is not 1-16 letters, digits or . ^ = _ / -",
    "bad_ts": "ts is before 1970 or more than an hour ahead of now",
    "bad_price": "a price is zero, negative or not finite",
    "high_below_low": "high is below low",
    "outside_range": "open or close lies outside [low, high]",
    "bad_volume": "volume or transactions is negative or too large",
    "not_finite": "high/low or close/open is too large to be a number",
    "duplicate": "an earlier bar has the same (ticker, ts)",        # ingestion only
}


def missing(value: Any) -> bool:
    """True for None, NaN and pandas' NA."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def bar_problem(bar: Mapping[str, Any], now: int | None = None) -> str:
    """The REASONS code of the first rule a bar breaks, or '' when it is valid.

    `bar` holds typed values (a decoded message or a row of bars); `now` is
    the current time in epoch ms (default: the clock).
    """
    if any(missing(bar.get(name)) for name in BAR_COLUMNS if name not in NULLABLE):
        return "missing_field"
    if not isinstance(bar["ticker"], str) or not TICKER.fullmatch(bar["ticker"]):
        return "bad_ticker"
    latest = (now_ms() if now is None else now) + MAX_AHEAD_MS
    if not 0 <= bar["ts"] <= latest:
        return "bad_ts"
    open_, high, low, close = (bar[name] for name in PRICES)
    if not all(0 < p < math.inf for p in (open_, high, low, close)):
        return "bad_price"
    if high < low:
        return "high_below_low"
    if not (low <= open_ <= high and low <= close <= high):
        return "outside_range"
    transactions = bar.get("transactions")
    counts = [bar["volume"]] + ([] if missing(transactions) else [transactions])
    if not all(0 <= count < MAX_COUNT for count in counts):
        return "bad_volume"
    if not (math.isfinite(high / low) and math.isfinite(close / open_)):
        return "not_finite"
    return ""


def validate_bars(bars: pd.DataFrame, now: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split bars into (good, rejected); rejected keeps its rows as given plus a `reason` code.

    Every bar goes through `bar_problem`, the router's own check; then the
    second and later bars of one (ticker, ts) are rejected as duplicates.
    vwap may lie outside [low, high]: Massive counts trades in the volume and
    vwap that do not set the high or low.
    """
    absent = [c for c in BAR_COLUMNS if c not in bars.columns]
    if absent:
        raise InputError(f"The bars lack the column(s) {', '.join(absent)}.")
    frame = bars.reset_index(drop=True)
    now = now_ms() if now is None else now
    typed = frame[BAR_COLUMNS].copy()
    for column in BAR_COLUMNS[1:]:          # anything that is not a number becomes missing
        typed[column] = pd.to_numeric(typed[column], errors="coerce")
    records = typed.astype(object).to_dict("records")
    reasons = pd.Series([bar_problem(record, now) for record in records], dtype=object)
    good = reasons == ""
    keys = frame.loc[good, ["ticker", "ts"]]
    reasons[keys.index[keys.duplicated(keep="first").to_numpy()]] = "duplicate"
    good = reasons == ""
    rejected = frame[~good].assign(reason=reasons[~good])
    return as_bars(frame[good]).reset_index(drop=True), rejected.reset_index(drop=True)
