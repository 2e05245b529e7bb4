"""The checks of notebook 08_dashboard's exercises."""
from __future__ import annotations

from typing import Any

import pandas as pd

from helpers.classroom.exercises.common import (
    PLACEHOLDER,
    CheckResult,
    failed,
    is_placeholder,
    lab,
    not_a_number,
    number,
    passed,
    plural,
    year_of,
)
from helpers.core.rules import VARIATION_THRESHOLD
from helpers.core.schemas import utc_day
from helpers.core.settings import Settings
from helpers.infra.clients import make_admin
from helpers.pipeline.topics import consumer_lag, delete_topics, reset_topics


def check_one_signal_price(price: Any, bars: pd.DataFrame) -> CheckResult:
    """08.1: a price threshold that leaves exactly one buy signal at 5 %."""
    ex = "08.1"
    if is_placeholder(price):
        return failed(ex, f"PRICE {PLACEHOLDER}")
    if number(price) is None or price <= 0:
        return failed(ex, f"PRICE must be a positive number of dollars, got {price!r}.")
    wide = bars["high"] / bars["low"] - 1 > VARIATION_THRESHOLD      # daily: a signal is one bar
    signals = int(((bars["close"] > price) & wide).sum())
    if signals == 1:
        bar = bars[(bars["close"] > price) & wide].iloc[0]
        low, high = bars.loc[wide, "close"].nlargest(2).iloc[::-1]
        return passed(ex, f"At ${price:g} one day qualifies: {bar['ticker']} on {utc_day(bar['ts'])}, close "
                          f"${bar['close']:.2f}, range {bar['high'] / bar['low'] - 1:.1%}. Any price from "
                          f"${low:.2f} up to just below ${high:.2f} gives exactly one.")
    direction = "raise it" if signals > 1 else "lower it"
    return failed(ex, f"At ${price:g} there are {plural(signals, 'buy signal')} at 5 %: {direction}.")


def check_router_lag(predicted: Any, bars: pd.DataFrame, settings: Settings) -> CheckResult:
    """08.2: the router's lag after a replay it did not see, and what its restart routes."""
    from helpers.pipeline.produce import replay_bars
    from helpers.pipeline.route import run_router

    ex = "08.2"
    if wrong := not_a_number(ex, "LAG", predicted, " of bars"):
        return wrong
    mine = lab("08", settings)
    years = year_of(bars["ts"])
    before, during = bars[years == 2007], bars[years == 2008]
    admin = make_admin(settings)
    reset_topics(admin, mine.topics.all, groups=[mine.group("router")])
    replay_bars(before, settings=mine, progress=False)
    run_router(mine, progress=False)
    replay_bars(during, settings=mine, progress=False)
    lag = consumer_lag(admin, mine.group("router"), [mine.topics.pricelist], settings)
    restart = run_router(mine, progress=False)
    delete_topics(admin, mine.topics.all)
    message = (f"After routing 2007 ({len(before):,} bars) the router stopped; the replay then sent 2008: "
               f"its lag was {lag:,} bars, and its restart routed {restart.consumed:,}")
    if predicted == lag:
        return passed(ex, f"{message}. Lag = end of the partitions − the group's committed offsets: "
                          "exactly what is waiting for it.")
    return failed(ex, f"You predicted {predicted!r}. {message}. Lag counts the messages written after the "
                      "group's last committed offsets.")
