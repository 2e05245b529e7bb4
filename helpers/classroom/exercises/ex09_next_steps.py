"""The checks of notebook 09_next_steps's exercises."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from helpers.classroom.exercises.common import CheckResult, call, failed, lab, not_a_number, number, passed
from helpers.core.schemas import utc_day
from helpers.core.settings import Settings
from helpers.infra.database import open_engine
from helpers.pipeline.db import read_bars


def reference_trailing_stop(entry: float, closes: Any, drop: float = 0.08,
                            days: int = 60) -> tuple[int, str] | None:
    """09.1's rule, written by the check: 8 % below the highest close so far, or the 60th day."""
    highest = entry
    for day, close in enumerate(list(closes)[:days]):
        if close <= highest * (1 - drop):
            return day, "trailing stop"
        highest = max(highest, close)
    return (days - 1, "time") if len(closes) >= days else None


def as_exit(decision: Any) -> tuple[int, str] | None | str:
    """A rule's answer as (day, reason) or None; a string saying what is wrong otherwise."""
    if decision is None:
        return None
    if (isinstance(decision, tuple) and len(decision) == 2 and number(decision[0]) is not None
            and float(decision[0]).is_integer()):
        return int(decision[0]), str(decision[1])
    return f"{decision!r} is neither (day, reason) nor None"


def check_trailing_stop(rule: Any, settings: Settings) -> CheckResult:
    """09.1: a trailing-stop exit rule, on every signal's following days, then in a bot of its own."""
    from helpers.pipeline.paper import PaperBot, Prices, backtest
    from helpers.pipeline.streamsql import read_buy

    ex = "09.1"
    with open_engine(settings) as engine:
        bars = read_bars(engine, "day")
    signals = read_buy(settings)
    prices = Prices(bars)
    cases = []
    for signal in signals.itertuples():
        ts, closes = prices.series[signal.ticker]
        start = int(np.searchsorted(ts, signal.alert_ts, side="right"))
        cases.append((f"{signal.ticker} bought at ${signal.close:,.2f} on {utc_day(signal.alert_ts)}",
                      float(signal.close), [float(c) for c in closes[start:]]))
    cases += [("A made-up entry at $100.00", 100.0, [101.0, 99.0, 93.0, 92.5, 120.0]),
              ("A made-up entry at $100.00", 100.0, [100.0] * 59),
              ("A made-up entry at $100.00", 100.0, [100.0] * 61)]
    for label, entry, closes in cases:
        answer, error = call(ex, "trailing_stop", rule, entry, list(closes))
        if error:
            return error
        got, expected = as_exit(answer), reference_trailing_stop(entry, closes)
        if isinstance(got, str):
            return failed(ex, f"trailing_stop returned {got}: return (day, reason), e.g. "
                              "(3, 'trailing stop'), or None while no day triggers.")
        if (None if got is None else got[0]) != (None if expected is None else expected[0]):
            return failed(ex, trailing_hint(label, entry, closes, got, expected))
    group = lab("09", settings).group("trailing")
    with PaperBot(settings, rule, tables="ex09_paper", group=group) as lab_bot:
        lab_bot.reset()
        lab_bot.run()
        book = lab_bot.read_trades()
    reference = backtest(bars, signals, reference_trailing_stop, lab_bot.amount)
    if not book.round(6).equals(reference.round(6)):
        return failed(ex, f"Your rule agrees with the check's on every signal, yet the bot's book "
                          f"({len(book)} trades) differs from the backtest ({len(reference)}): does "
                          "trailing_stop keep state between calls? A rule must depend only on its arguments.")
    sells = book[book["side"] == "sell"]
    profit = sells["amount"].sum() - book.loc[book["side"] == "buy", "amount"].sum()
    return passed(ex, f"Your rule sells on the same day as the check's on all {len(cases):,} cases; a bot "
                      f"using it made {len(sells)} round trips for ${profit:,.2f}, trade for trade equal to "
                      "the backtest.")


def trailing_hint(label: str, entry: float, closes: list[float], got: Any, expected: Any) -> str:
    """Where a student's trailing stop and the check's part ways, on one concrete case."""
    if expected is None:
        return (f"{label}, followed by only {len(closes)} closes that never fall 8 % below their "
                f"highest: you sell on day {got[0]}; return None while nothing triggers.")
    day = expected[0]
    peak = max([entry, *closes[:day]])
    said = "never" if got is None else f"on day {got[0]} ({got[1]})"
    if expected[1] == "time":
        return (f"{label}: your rule sells {said}; no close of the first 60 days falls 8 % below the "
                "highest close so far, so the rule sells on day 59, the 60th trading day (time).")
    return (f"{label}: your rule sells {said}; the trailing stop sells on day {day} "
            f"({expected[1]}), when the close ${closes[day]:,.2f} is {1 - closes[day] / peak:.1%} below the "
            f"highest close so far, ${peak:,.2f}.")


def written_twice(book: pd.DataFrame) -> int:
    """The check's own count: trades that repeat an earlier trade's (ticker, side, signal_ts)."""
    return int(book.duplicated(["ticker", "side", "signal_ts"]).sum())


def check_bot_restart(predicted: Any, doubled: Any, bot: Any, signals: pd.DataFrame) -> CheckResult:
    """09.2: a prediction of the trades a crash-and-restart writes twice into the bot's book, and a
    function `doubled(book)` that counts them, tried on the bot's book and on one with repeats."""
    from helpers.pipeline.paper import backtest

    ex = "09.2"
    if wrong := not_a_number(ex, "DOUBLED", predicted, " of trades"):
        return wrong
    runs = list(getattr(bot, "history", []))
    if len(runs) < 2 or not runs[-2].crashed:
        return failed(ex, "Run the whole exercise cell: reset, the run that crashes, then the restart.")
    book = bot.read_trades()
    reference = backtest(read_bars(bot.engine, "day"), signals, bot.rule, bot.amount)
    if not book.round(6).equals(reference.round(6)):
        return failed(ex, f"The lab bot's book ({len(book)} trades) differs from the backtest "
                          f"({len(reference)}): run the exercise cell again from lab.reset().")
    rng = np.random.default_rng()
    repeated = book.sample(n=int(rng.integers(5, 31)), random_state=rng)   # a new number every check
    careless = pd.concat([book, repeated], ignore_index=True).sample(frac=1, random_state=rng)
    for name, trades in (("the lab bot's book", book),
                         ("a book where a consumer without the unique key wrote some trades twice",
                          careless)):
        counted, error = call(ex, "doubled", doubled, trades.reset_index(drop=True))
        if error:
            return error
        if number(counted) != written_twice(trades):
            return failed(ex, f"doubled() says {counted!r} for {name} ({len(trades)} rows). Count the "
                              "rows that repeat a trade written before them, not the rows: what makes "
                              "two rows the same trade? (the keys of paper_trades in "
                              "helpers/pipeline/paper.py)")
    crashed, restart = runs[-2], runs[-1]
    story = (f"The first run handled {crashed.read} signals and died before committing them; the "
             f"restart read {restart.read}, those {crashed.read} again included")
    if number(predicted) != written_twice(book):
        return failed(ex, f"doubled() counts right, but the book does not agree with your prediction "
                          f"{predicted}. {story}. What happens when the restarted bot writes a trade "
                          "it already wrote? Look at the keys of the paper_trades table in "
                          "helpers/pipeline/paper.py.")
    return passed(ex, f"{story}, and the book still holds each of its {len(book)} trades once, equal "
                      f"to the backtest; your doubled() also found the {len(repeated)} repeats of a "
                      "careless book. A repeated signal finds its trade already written (a unique key "
                      "on ticker, side and signal) or its position already open: an idempotent "
                      "consumer turns at-least-once delivery into effectively-once results.")
