"""Windows and tables in pandas: the independent computations the stream SQL is checked against
(06_stream_sql). Pure functions of a frame of bars; times are UTC.

Each mirrors one query of the lesson: the same rows, computed without any
engine, so that a query's result can be compared with it row by row
(`compare_tables`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

MINUTE = pd.Timedelta(minutes=1)


def event_time(bars: pd.DataFrame) -> pd.Series:
    """The bars' event time (`ts`, epoch ms) as UTC timestamps."""
    return pd.to_datetime(bars["ts"], unit="ms", utc=True)


def per_ticker_summary(bars: pd.DataFrame) -> pd.DataFrame:
    """Bars, lowest low and highest high of each ticker: a GROUP BY ticker."""
    grouped = bars.groupby("ticker")
    return pd.DataFrame({"bars": grouped.size(), "low": grouped["low"].min(),
                         "high": grouped["high"].max()}).reset_index()


def latest_close(bars: pd.DataFrame) -> pd.DataFrame:
    """Each ticker's close and time of its last bar: what a latest-price table holds at the end."""
    last = bars.sort_values("ts").groupby("ticker").tail(1)
    return last[["ticker", "close", "ts"]].sort_values("ticker", ignore_index=True)


def tumbling(bars: pd.DataFrame, size: str) -> pd.core.groupby.DataFrameGroupBy:
    """The bars grouped by ticker and tumbling window of `size` ('5min', '1h', '1D')."""
    start = event_time(bars).dt.floor(size).rename("window_start")
    return bars.groupby([bars["ticker"], start])


def hourly_volume(bars: pd.DataFrame) -> pd.DataFrame:
    """Bars and volume of each ticker per whole hour (05_hourly_volume.sql)."""
    grouped = tumbling(bars, "1h")
    frame = pd.DataFrame({"bars": grouped.size(), "volume": grouped["volume"].sum()}).reset_index()
    return frame.assign(window_end=frame["window_start"] + pd.Timedelta(hours=1))


def five_minute_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """Open, high, low, close and volume of each ticker per 5 minutes: pandas' resample of the bars."""
    ordered = bars.sort_values("ts")
    grouped = tumbling(ordered, "5min")
    return pd.DataFrame({"open": grouped["open"].first(), "high": grouped["high"].max(),
                         "low": grouped["low"].min(), "close": grouped["close"].last(),
                         "volume": grouped["volume"].sum()}).reset_index()


def moving_volume(bars: pd.DataFrame, size: str = "15min", every: str = "5min") -> pd.DataFrame:
    """The volume of each hopping window `size` long, one starting every `every` (06_moving_volume.sql)."""
    size_td, every_td = pd.Timedelta(size), pd.Timedelta(every)
    times, rows = event_time(bars), []
    for k in range(int(size_td / every_td)):          # each bar lies in size/every windows
        start = (times - k * every_td).dt.floor(every)
        rows.append(bars.assign(window_start=start)[["ticker", "window_start", "volume"]])
    frame = pd.concat(rows).groupby(["ticker", "window_start"])["volume"].sum().reset_index()
    return frame.assign(window_end=frame["window_start"] + size_td)


def sessions(bars: pd.DataFrame, gap: str = "30min") -> pd.DataFrame:
    """Each ticker's sessions: bars closer than `gap` to the previous one belong together; a session
    ends `gap` after its last bar (Flink's window_end)."""
    gap_td = pd.Timedelta(gap)
    frame = bars.assign(time=event_time(bars)).sort_values(["ticker", "ts"])
    new = frame.groupby("ticker")["time"].diff().gt(gap_td) | frame["ticker"].ne(frame["ticker"].shift())
    frame["session"] = new.cumsum()
    grouped = frame.groupby(["ticker", "session"])["time"]
    return pd.DataFrame({"window_start": grouped.min(), "window_end": grouped.max() + gap_td,
                         "bars": grouped.size()}).reset_index().drop(columns="session")


def day_ranges(bars: pd.DataFrame) -> pd.DataFrame:
    """Bars, low and high of each ticker per UTC day."""
    grouped = tumbling(bars, "1D")
    return pd.DataFrame({"bars": grouped.size(), "low": grouped["low"].min(),
                         "high": grouped["high"].max()}).reset_index()


def compare_tables(got: pd.DataFrame, expected: pd.DataFrame, columns: list[str],
                   rtol: float = 1e-9) -> pd.DataFrame:
    """Rows of `columns` present on one side only; empty when both agree.

    Rows are matched on their columns that are not floats (as multisets);
    floats then agree within `rtol` (a sum may add the same numbers in
    another order, and differ in its last digits).
    """
    floats = [c for c in columns if pd.api.types.is_float_dtype(expected[c])]
    keys = [c for c in columns if c not in floats]

    def keyed(frame: pd.DataFrame) -> pd.DataFrame:
        part = frame[columns].copy()
        for column in keys:
            if pd.api.types.is_datetime64_any_dtype(part[column]):
                part[column] = pd.to_datetime(part[column], utc=True)
        part = part.sort_values(columns, ignore_index=True)
        return part.assign(_n=part.groupby(keys, dropna=False).cumcount())

    both = keyed(got).merge(keyed(expected), how="outer", on=[*keys, "_n"], suffixes=("_q", "_p"),
                            indicator="side")
    close = pd.Series(True, index=both.index)
    for column in floats:
        close &= np.isclose(both[f"{column}_q"], both[f"{column}_p"], rtol=rtol, atol=0, equal_nan=True)
    wrong = both[(both["side"] != "both") | ~close]
    rows = []
    for side, suffix, alone in (("query only", "_q", "left_only"), ("pandas only", "_p", "right_only")):
        present = wrong[wrong["side"].astype(str).isin(["both", alone])]
        part = present[keys].copy()
        for column in floats:
            part[column] = present[f"{column}{suffix}"]
        rows.append(part.assign(side=side))
    return pd.concat(rows, ignore_index=True)[[*columns, "side"]]


def final_watermark(messages: pd.DataFrame, delay: pd.Timedelta = MINUTE) -> pd.Timestamp:
    """Where a Kafka source's watermark stops once it has read everything: the oldest of its partitions'
    newest event times, minus the delay. One partition without newer data holds every window back.

    `messages` has a `partition` and a `ts` column (a topic read with read_topic).
    """
    newest = messages.groupby("partition")["ts"].max()
    return pd.to_datetime(int(newest.min()), unit="ms", utc=True) - delay
