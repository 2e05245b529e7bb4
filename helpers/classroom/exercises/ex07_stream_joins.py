"""The checks of notebook 07_stream_joins' exercises."""
from __future__ import annotations

from typing import Any

import pandas as pd

from helpers.classroom.exercises.common import (
    FIVE_MINUTES_MS,
    PLACEHOLDER,
    CheckResult,
    call,
    failed,
    is_placeholder,
    lab,
    minute_bars,
    number,
    passed,
    query_answer,
    topic_exists,
)
from helpers.core import windows
from helpers.core.rules import (
    PRICE_THRESHOLD,
    VARIATION_THRESHOLD,
    alerts_frame,
    buy_signals,
    variations_frame,
)
from helpers.core.settings import Settings
from helpers.infra.database import open_engine
from helpers.infra.workbook import Workbook
from helpers.pipeline.db import read_bars
from helpers.pipeline.topics import count_messages, read_topic


def partition_by_partition(alerts: pd.DataFrame, variations: pd.DataFrame) -> int:
    """The check's own count: buy signals of a join that reads partition n of each input together."""
    return sum(len(buy_signals(a, variations[variations["partition"] == p], VARIATION_THRESHOLD))
               for p, a in alerts.groupby("partition"))


def check_copartitioning(partitions: Any, found: Any, settings: Settings) -> CheckResult:
    """07.2: a function counting the buy signals a partition-by-partition join finds, tried on the
    student's lab topics (not co-partitioned) and on the course's (co-partitioned)."""
    ex = "07.2"
    if is_placeholder(found):
        return failed(ex, f"found_partition_by_partition {PLACEHOLDER}")
    mine, course = lab("07", settings).topics, settings.topics
    counts = {t: topic_exists(t, settings) for t in (mine.alerts, mine.variations)}
    if not all(counts.values()):
        return failed(ex, "Run the exercise cell first: it copies alerts and variations into your "
                          "lab topics.")
    if counts[mine.variations] == counts[mine.alerts]:
        return failed(ex, f"Both lab topics have {counts[mine.alerts]} partitions: they are "
                          "co-partitioned, so nothing breaks. Set PARTITIONS to another count and run "
                          "the exercise cell again.")
    alerts = read_topic(mine.alerts, settings=settings)
    variations = read_topic(mine.variations, settings=settings)
    everything = buy_signals(alerts, variations, VARIATION_THRESHOLD)
    kept = partition_by_partition(alerts, variations)
    table = pd.DataFrame({
        "alerts in partition": alerts.groupby("ticker")["partition"].first(),
        "variations in partition": variations.groupby("ticker")["partition"].first(),
        "buy signals": everything.groupby("ticker").size(),
    }).fillna(0).astype(int).loc[lambda t: t["buy signals"] > 0]
    if kept == len(everything):
        return failed(ex, f"With {counts[mine.variations]} partitions every ticker with a signal "
                          "happens to land in the same partition number in both lab topics (see the "
                          "table): choose another PARTITIONS, so that at least one of them moves.", table)
    course_alerts = read_topic(course.alerts, settings=settings)
    course_variations = read_topic(course.variations, settings=settings)
    movers = sorted(buy_signals(course_alerts, course_variations, VARIATION_THRESHOLD)["ticker"].unique())
    moved = course_variations.assign(partition=course_variations["partition"].where(
        course_variations["ticker"] != movers[0], (course_variations["partition"] + 1) % 3))
    cases = [(f"{mine.alerts} ({counts[mine.alerts]} partitions) and {mine.variations} "
              f"({counts[mine.variations]})", alerts, variations, kept),
             (f"the course's {course.alerts} and {course.variations} (3 partitions each)",
              course_alerts, course_variations, partition_by_partition(course_alerts, course_variations)),
             (f"the course's topics with {movers[0]}'s variations moved to the next partition",
              course_alerts, moved, partition_by_partition(course_alerts, moved))]
    for name, a, v, expected in cases:
        got, error = call(ex, "found_partition_by_partition", found, a, v)
        if error:
            return error
        if number(got) != expected:
            return failed(ex, f"found_partition_by_partition says {got!r} for {name}. Such a join "
                              "never looks beyond its own partition number: an alert can only meet the "
                              "variations that sit in the partition with the same number, in the other "
                              "topic (each row's `partition` column says where it sits).", table)
    return passed(ex, f"A join that reads partition n of {mine.alerts} with partition n of "
                      f"{mine.variations} finds {kept} of {len(everything)} buy signals, and your "
                      f"function counts the same on the lab topics, on the co-partitioned course "
                      f"topics and on those with one ticker moved ({cases[2][3]} found). A ticker's "
                      "alerts and variations meet only where the two partition counts happen to "
                      "hash it to the same number. ksqlDB refuses such inputs; Flink "
                      "re-distributes both by ticker and finds them all.", table)


def as_pairs(result: Any) -> pd.DataFrame | None:
    """A student's buy signals as (ticker, alert_ts, variation_ts) rows, or None."""
    if not isinstance(result, pd.DataFrame) or result.shape[1] < 3:
        return None
    frame = result.iloc[:, :3].copy()
    frame.columns = ["ticker", "alert_ts", "variation_ts"]
    try:
        return frame.astype({"ticker": str, "alert_ts": "int64", "variation_ts": "int64"})
    except (TypeError, ValueError):
        return None


def pair_hint(got: pd.DataFrame, expected: pd.DataFrame, bars: pd.DataFrame, threshold: float) -> str:
    """What separates a student's pairs from the engine's: the window's edges, its direction, >=."""
    keys = ["ticker", "alert_ts", "variation_ts"]
    both = got.merge(expected, how="outer", on=keys, indicator=True)
    missing = both[both["_merge"] == "right_only"]
    extra = both[both["_merge"] == "left_only"]
    dt = lambda f: f["variation_ts"] - f["alert_ts"]  # noqa: E731
    if len(missing) and (dt(got) == 0).all() and (dt(missing) != 0).any():
        return ("You only pair a bar with itself (the two ts equal), which is all daily bars ever "
                "need; on minute bars an alert pairs with every big variation of its ticker at most "
                "5 minutes before or after it.")
    if len(missing) and (dt(missing).abs() == FIVE_MINUTES_MS).all():
        return "Pairs exactly 5 minutes apart are missing: the window is inclusive (<= 5 minutes)."
    if len(missing) and (dt(missing) < 0).any() and not (dt(got) < 0).any():
        return ("Pairs whose variation came before the alert are missing: the window works in "
                "both directions.")
    if len(extra) and (dt(extra).abs() > FIVE_MINUTES_MS).any():
        return ("Some of your pairs are more than 5 minutes apart: both times are epoch "
                "milliseconds (5 × 60,000).")
    var = variations_frame(bars).set_index(["ticker", "ts"])["variation_ex"]
    if len(extra):
        ex_values = var.reindex(list(zip(extra["ticker"], extra["variation_ts"], strict=True))).to_numpy()
        if (ex_values <= threshold).any():
            return (f"Some of your variations are not strictly above {threshold:.0%}: the rule is "
                    "high/low − 1 > threshold, as a fraction.")
    return (f"{len(missing)} engine rows are missing from yours and {len(extra)} of yours are not "
            f"the engine's; first difference: {both[both['_merge'] != 'both'].iloc[0][keys].to_dict()}.")


def check_my_buy_signals(my_buy_signals: Any, settings: Settings) -> CheckResult:
    """07.3: a pandas buy join that equals what the engine wrote, on daily (5 %) and minute (2 %) bars."""
    ex = "07.3"
    from helpers.pipeline.streamsql import read_buy

    cases = [("daily", "day", VARIATION_THRESHOLD, settings),
             ("minute", "minute", 0.02, settings.within("minute"))]
    lines = []
    for name, timespan, threshold, where in cases:
        if not count_messages(where.topics.buy, settings):
            return failed(ex, f"{where.topics.buy} is empty: run the lesson cells above first (the engine's "
                              "rows are what your function is compared with).")
        with open_engine(settings) as engine:
            bars = read_bars(engine, timespan)
        expected = read_buy(where)[["ticker", "alert_ts", "variation_ts"]].astype(
            {"alert_ts": "int64", "variation_ts": "int64"})
        got, error = call(ex, "my_buy_signals", my_buy_signals, bars, threshold)
        if error:
            return error
        pairs = as_pairs(got)
        if pairs is None:
            return failed(ex, f"my_buy_signals returned {type(got).__name__}; return a DataFrame whose first "
                              "three columns are ticker, the alert's ts and the variation's ts.")
        same = pairs.sort_values(list(pairs.columns), ignore_index=True).equals(
            expected.sort_values(list(expected.columns), ignore_index=True))
        if not same:
            return failed(ex, f"On the {name} bars at {threshold:.0%}, you found {len(pairs):,} pairs, the "
                              f"engine {len(expected):,}. {pair_hint(pairs, expected, bars, threshold)}")
        lines.append(f"{len(expected):,} {name} pairs at {threshold:.0%}")
    return passed(ex, f"Your pandas join equals the engine's rows: {' and '.join(lines)}. "
                      "Same rule, computed over the whole history at once.")


JOIN_COLUMNS = ["ticker", "alert_ts", "variation_ts"]
MY_THRESHOLD, MY_WINDOW_MS = 0.015, 3 * 60_000       # 07.1: 1.5 %, within 3 minutes


def check_my_join(joined: Any, wb: Workbook) -> CheckResult:
    """07.1: the interval join written by the student on the minute tables: every alert and variation
    of one ticker at most 3 minutes apart (either order) with variation_ex above 1.5 %, equal to pandas."""
    ex = "07.1"
    table = query_answer(ex, joined, wb, "joined", JOIN_COLUMNS)
    if isinstance(table, CheckResult):
        return table
    bars = minute_bars(wb)
    expected = buy_signals(alerts_frame(bars, PRICE_THRESHOLD), variations_frame(bars), MY_THRESHOLD,
                           window_ms=MY_WINDOW_MS)[JOIN_COLUMNS]
    got = table[JOIN_COLUMNS].astype({"alert_ts": "int64", "variation_ts": "int64"})
    diff = windows.compare_tables(got, expected, JOIN_COLUMNS)
    apart = int((expected["alert_ts"] != expected["variation_ts"]).sum())
    if diff.empty:
        return passed(ex, f"{len(got)} pairs, equal to pandas; {apart} of them join two different minutes: "
                          "the window really joins events, in both directions.")
    engine_only = diff[diff["side"] == "query only"]
    gaps = (engine_only["variation_ts"] - engine_only["alert_ts"]).abs() / 60_000
    if len(engine_only) and (gaps > MY_WINDOW_MS / 60_000).any():
        why = (f"some of your pairs are {gaps.max():g} minutes apart: how wide is your window, and is it "
               "measured on the event times of both sides?")
    elif len(engine_only):
        why = ("you have pairs pandas has not: is your variation threshold 1.5 % as a fraction, strictly "
               "above it, and is the alert's close above the price threshold?")
    else:
        why = ("pandas has pairs you have not: does your window reach both before and after the alert, "
               "ends included?")
    return failed(ex, f"{len(got)} pairs from your query, {len(expected)} from pandas; {why}")
