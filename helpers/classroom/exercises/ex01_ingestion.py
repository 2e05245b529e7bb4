"""The checks of notebook 01_ingestion's exercises."""
from __future__ import annotations

from typing import Any

import pandas as pd

from helpers.classroom.exercises.common import PLACEHOLDER, CheckResult, call, failed, is_placeholder, passed
from helpers.core.rules import PRICE_THRESHOLD
from helpers.core.validation import REASONS, validate_bars
from helpers.pipeline.db import read_bars


def check_rejection(predicted: Any) -> CheckResult:
    """01.1: which reason `validate_bars` gives a bar whose open is above its high."""
    ex = "01.1"
    if is_placeholder(predicted):
        return failed(ex, f"PREDICTED_REASON {PLACEHOLDER}")
    if predicted not in REASONS:
        return failed(ex, f"{predicted!r} is not a reason validate_bars gives: choose one of "
                          f"{', '.join(REASONS)}.")
    from helpers.pipeline.sources import fetch_bars

    bar = fetch_bars("sample", timespan="day").head(1).copy()
    bar.loc[bar.index[0], "open"] = bar["high"].iloc[0] + 1
    _, rejected = validate_bars(bar)
    actual = str(rejected["reason"].iloc[0])
    shown = (f"open ${bar['open'].iloc[0]:.2f}, high ${bar['high'].iloc[0]:.2f}, "
             f"low ${bar['low'].iloc[0]:.2f}")
    if predicted == actual:
        return passed(ex, f"validate_bars rejected the bar ({shown}) as {actual!r}: {REASONS[actual]}.")
    why = {"high_below_low": "high is still above low: only the open moved",
           "bad_price": "every price is still positive and finite",
           "missing_field": "no field is missing"}.get(predicted, f"{predicted!r} does not apply")
    return failed(ex, f"You predicted {predicted!r}, but {why} ({shown}). validate_bars tries its "
                      f"rules in order (REASONS in helpers/core/validation.py) and names the first one "
                      f"the bar breaks: {actual!r}, {REASONS[actual]}.")


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
