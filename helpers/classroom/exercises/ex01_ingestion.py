"""The checks of notebook 01_ingestion's exercises."""
from __future__ import annotations

from typing import Any

import pandas as pd

from helpers.classroom.exercises.common import PLACEHOLDER, CheckResult, call, failed, is_placeholder, passed
from helpers.core.rules import PRICE_THRESHOLD
from helpers.core.validation import REASONS, validate_bars
from helpers.pipeline.db import read_bars

# 01.1: three ways to break a valid bar; each name is the key of PREDICTED_REASONS
BROKEN_BARS = {
    "open above high": lambda bar: {"open": bar["high"] + 1},
    "high and low swapped": lambda bar: {"high": bar["low"], "low": bar["high"]},
    "low zero, volume negative": lambda bar: {"low": 0.0, "volume": -1.0},
}


def broken_bars() -> pd.DataFrame:
    """One valid daily bar of the sample, broken in each of the BROKEN_BARS ways (index: the way)."""
    from helpers.pipeline.sources import fetch_bars

    bar = fetch_bars("sample", timespan="day").iloc[0].to_dict()
    return pd.DataFrame([{**bar, **breaks(bar)} for breaks in BROKEN_BARS.values()],
                        index=pd.Index(list(BROKEN_BARS), name="broken"))


def check_rejection(predicted: Any) -> CheckResult:
    """01.1: the reason `validate_bars` gives each of three broken bars (a dict: way -> reason)."""
    ex = "01.1"
    if is_placeholder(predicted):
        return failed(ex, f"PREDICTED_REASONS {PLACEHOLDER}")
    if not isinstance(predicted, dict) or set(predicted) != set(BROKEN_BARS):
        return failed(ex, "PREDICTED_REASONS must be a dict with one reason for each of "
                          f"{', '.join(repr(k) for k in BROKEN_BARS)}.")
    if any(is_placeholder(v) for v in predicted.values()):
        return failed(ex, f"A reason in PREDICTED_REASONS {PLACEHOLDER}")
    unknown = [v for v in predicted.values() if not isinstance(v, str) or v not in REASONS]
    if unknown:
        return failed(ex, f"{unknown[0]!r} is not a reason validate_bars gives: choose among "
                          f"{', '.join(REASONS)}.")
    bars = broken_bars()
    _, rejected = validate_bars(bars)             # every one is rejected, in the order given
    bars["reason"] = rejected["reason"].to_numpy()
    bars["you predicted"] = [predicted[way] for way in bars.index]
    if (bars["reason"] != bars["you predicted"]).any():      # not how many: that could be searched
        return failed(ex, "Not all three predictions are right. A bar may break more than one rule, "
                          "and validate_bars names only the first it tries: for each bar, list the "
                          "rules it breaks, then look at the order of REASONS in "
                          "helpers/core/validation.py.")
    shown = bars[["open", "high", "low", "close", "volume", "reason"]]
    return passed(ex, "validate_bars gave each bar the reason you predicted: the first rule, in "
                      "the order of REASONS, that the bar breaks.", shown)


def as_counts(result: Any) -> dict[str, int] | None:
    """A student's per-ticker counts (Series, two-column DataFrame or dict) as {ticker: n}, or None."""
    if isinstance(result, pd.DataFrame):
        if "ticker" in result.columns:
            result = result.set_index("ticker")
        if result.shape[1] != 1:
            return None
        result = result.iloc[:, 0]
    if isinstance(result, pd.Series):
        result = result.to_dict()
    if not isinstance(result, dict):
        return None
    try:
        return {str(k): int(v) for k, v in result.items() if int(v) != 0}
    except (TypeError, ValueError):
        return None


def check_days_above(days_above: Any, engine: Any) -> CheckResult:
    """01.2: a query with a bound parameter: daily bars per ticker whose close is above a price."""
    from sqlalchemy import event

    ex = "01.2"
    bars = read_bars(engine, "day")
    statements: list[tuple[str, Any]] = []

    def spy(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", spy)
    try:
        for price in (PRICE_THRESHOLD, 333.25):
            statements.clear()
            got, error = call(ex, "days_above", days_above, engine, price)
            if error:
                return error
            counts = as_counts(got)
            if counts is None:
                return failed(ex, f"days_above returned {type(got).__name__}, not counts per ticker: "
                                  "return a Series indexed by ticker (`.set_index('ticker')['days']`).")
            pasted = [s for s, _ in statements if f"{price:g}" in s]
            if pasted:
                return failed(ex, f"The SQL text sent to MySQL contains the price itself "
                                  f"(`{' '.join(pasted[0].split())[:90]}`): you pasted the value into "
                                  "the statement. Write `:price` in the SQL and pass "
                                  "params={'price': price}: the value then travels apart from the text.")
            expected = bars[bars["close"] > price].groupby("ticker").size().to_dict()
            if counts != expected:
                return failed(ex, days_hint(price, counts, expected, engine))
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    return passed(ex, f"At $195 and at $333.25 your counts match pandas on the same rows "
                      f"({', '.join(f'{t} {n:,}' for t, n in expected.items())} at $333.25), "
                      "and the price travelled as a bound parameter.")


def days_hint(price: float, counts: dict[str, int], expected: dict[str, int], engine: Any) -> str:
    """Why per-ticker counts differ from pandas: no filter, minute bars counted, >= instead of >."""
    day = read_bars(engine, "day")
    both = pd.concat([day, read_bars(engine, "minute")])

    def per_ticker(frame: pd.DataFrame) -> dict[str, int]:
        return frame.groupby("ticker").size().to_dict()

    if counts == per_ticker(both):
        return ("You counted every row of candle_prices, of both timespans and at any price: which "
                "rows does the question ask about, and where in the query does a price come in?")
    if counts == per_ticker(day):
        return ("You counted every daily bar, at any price: where does your query compare the close with "
                "the price it was given?")
    if counts == per_ticker(both[both["close"] > price]):
        return (f"At ${price:g} you also counted minute bars: candle_prices holds both timespans, "
                "and the question asks about days.")
    if counts == per_ticker(day[day["close"] >= price]):
        return f"You counted closes equal to ${price:g} too: the question says strictly above (>)."
    wrong = sorted(set(counts) | set(expected), key=lambda t: (counts.get(t, 0) == expected.get(t, 0), t))
    t = wrong[0]
    return (f"At ${price:g} you counted {counts.get(t, 0):,} days for {t}; pandas finds "
            f"{expected.get(t, 0):,} daily closes strictly above ${price:g}. Compare your WHERE clause "
            "with the question.")
