"""The checks of notebook 06_stream_sql's exercises: SQL the student writes, run again by the check on
the stack's engine and compared with an independent pandas computation."""
from __future__ import annotations

from typing import Any

from helpers.classroom.exercises.common import CheckResult, failed, minute_bars, passed, plural, query_answer
from helpers.core import windows
from helpers.infra.workbook import Workbook

OHLC = ["ticker", "window_start", "open", "high", "low", "close", "volume"]
DAY_RANGE = ["ticker", "window_start", "bars", "low", "high"]


def check_five_minute_bars(ohlc: Any, wb: Workbook) -> CheckResult:
    """06.1: a query that cuts every ticker's minute bars into 5-minute bars (open, high, low, close,
    volume), equal to pandas' resample of the same bars."""
    ex = "06.1"
    table = query_answer(ex, ohlc, wb, "ohlc", OHLC)
    if isinstance(table, CheckResult):
        return table
    expected = windows.five_minute_bars(minute_bars(wb))
    if len(table) != len(expected):
        return failed(ex, f"Your query gives {plural(len(table), 'row')}, pandas {len(expected):,} windows "
                          "of 5 minutes: look at the size of your windows, and at what your GROUP BY "
                          "names (one row per ticker and window).")
    diff = windows.compare_tables(table, expected, OHLC)
    if diff.empty:
        return passed(ex, f"{len(table):,} five-minute bars, equal to pandas' resample: a tumbling "
                          "window on event time, one row per ticker and window.")
    first = diff.iloc[0]
    column = next((c for c in ("open", "close", "high", "low", "volume")
                   if c in diff and diff[c].nunique() > 1), "a value")
    where = f"{first['ticker']} at {first['window_start']}"
    return failed(ex, f"{len(diff) // 2:,} windows differ, e.g. {where}: look at {column}. The open of a "
                      "window is its first bar's, the close its last bar's (in event time): which "
                      "aggregate keeps the first or the last value?")


def check_day_ranges(ranges: Any, wb: Workbook) -> CheckResult:
    """06.2: a query giving each ticker's bars, low and high per UTC day, equal to pandas."""
    ex = "06.2"
    table = query_answer(ex, ranges, wb, "ranges", DAY_RANGE)
    if isinstance(table, CheckResult):
        return table
    expected = windows.day_ranges(minute_bars(wb))
    diff = windows.compare_tables(table.astype({"bars": "int64"}), expected, DAY_RANGE)
    if diff.empty:
        return passed(ex, f"{len(table)} ticker-days, each with its bars, low and high, equal to pandas: "
                          "a tumbling window of one day.")
    days = table["window_start"].dt.strftime("%Y-%m-%d %H:%M").unique()[:3] if len(table) else []
    return failed(ex, f"{len(table)} rows from your query, {len(expected)} ticker-days in pandas. Your "
                      f"windows start at {', '.join(days)}…: does each window cover a whole UTC day, "
                      "and does each row count, bound and group the bars of one ticker?")
