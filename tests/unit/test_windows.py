"""The pandas side of the window lessons, on hand-made bars whose answers are known."""
from __future__ import annotations

import pandas as pd

from helpers.core import windows

T0 = int(pd.Timestamp("2023-05-25 13:00", tz="UTC").value // 10**6)
M = 60_000


def bars(rows):
    return pd.DataFrame(rows, columns=["ticker", "ts", "open", "high", "low", "close", "volume"])


def test_five_minute_bars_take_first_open_last_close_and_sum_volume():
    frame = bars([("X", T0 + 1 * M, 2, 5, 1, 3, 10), ("X", T0, 1, 4, 1, 2, 5),
                  ("X", T0 + 5 * M, 9, 9, 9, 9, 1)])
    got = windows.five_minute_bars(frame)[["open", "high", "low", "close", "volume"]]
    assert got.values.tolist() == [[1, 5, 1, 3, 15], [9, 9, 9, 9, 1]]


def test_each_bar_counts_in_three_hopping_windows_of_15_minutes_every_5():
    frame = bars([("X", T0 + 7 * M, 1, 1, 1, 1, 10)])
    got = windows.moving_volume(frame, "15min", "5min")
    starts = [t.strftime("%H:%M") for t in got["window_start"]]
    assert starts == ["12:55", "13:00", "13:05"] and got["volume"].sum() == 30


def test_a_gap_longer_than_the_session_gap_starts_a_new_session():
    frame = bars([("X", T0 + minutes * M, 1, 1, 1, 1, 1) for minutes in (0, 29, 61)])
    got = windows.sessions(frame, "30min")
    assert got["bars"].tolist() == [2, 1]
    assert got["window_end"][0] == pd.Timestamp("2023-05-25 13:59", tz="UTC")   # last bar + the gap


def test_the_final_watermark_is_the_oldest_partition_newest_minus_a_minute():
    messages = pd.DataFrame({"partition": [0, 0, 1], "ts": [T0, T0 + 10 * M, T0 + 5 * M]})
    assert windows.final_watermark(messages) == pd.Timestamp("2023-05-25 13:04", tz="UTC")


def test_tables_compare_as_multisets_with_float_sums_in_any_order():
    left = pd.DataFrame({"k": ["a", "a", "b"], "v": [0.1 + 0.2, 1.0, 2.0]})
    right = pd.DataFrame({"k": ["b", "a", "a"], "v": [2.0, 1.0, 0.3]})
    assert windows.compare_tables(left, right, ["k", "v"]).empty
    diff = windows.compare_tables(left, right.assign(v=[2.0, 1.0, 0.31]), ["k", "v"])
    assert sorted(diff["side"]) == ["pandas only", "query only"]
