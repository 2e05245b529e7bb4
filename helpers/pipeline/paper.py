"""Paper trading: a bot that buys on `buy` signals and keeps its book in MySQL (09_next_steps).

A toy on the daily prices of 2000-2013, not advice. Its rule, stated once:
- on a buy signal, if it holds nothing of that ticker, it buys `amount`
  dollars' worth at the signal's close (fractional shares);
- it sells at the close of the first later trading day that closes at least
  10 % above the entry (take profit) or at least 5 % below it (stop loss), or
  else at the close of the 20th trading day (`ExitRule`);
- a position still open when the data ends is valued at the last close.

The bot consumes `buy` in a group of its own and writes each signal's trades
in one MySQL transaction (SQLAlchemy, bound parameters); it commits the
offsets of a batch of signals once all their transactions are done. A trade
is unique per (ticker, side, signal): a signal delivered twice after a crash
buys once.

What it is, honestly: a signal-driven backtest run as a consumer. When a
signal arrives, the bot books the exit of the previous position from the
bars that followed it, read from MySQL — bars a live bot would not have seen
yet. A live bot would consume `pricelist` too and sell when a bar crosses
its exit. `backtest` computes the same book
from the bars and the signals with no Kafka and no database, to check it.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from confluent_kafka import TopicPartition
from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    delete,
    insert,
    select,
)

from helpers.core.errors import InputError
from helpers.core.schemas import BUY, decode
from helpers.core.settings import Settings
from helpers.infra.clients import batches_to_end, make_admin, make_consumer
from helpers.infra.database import make_engine
from helpers.pipeline.db import read_bars
from helpers.pipeline.topics import delete_groups

TRADE_COLUMNS = ["ticker", "side", "signal_ts", "ts", "price", "shares", "amount", "reason"]
#: an exit rule: (entry price, the closes of the following days) -> (index of the day to sell, reason)
ExitRuleType = Callable[[float, Sequence[float]], "tuple[int, str] | None"]


@dataclass(frozen=True)
class ExitRule:
    """Sell at +take_profit, at -stop_loss, or on the max_days-th trading day, whichever comes first."""

    take_profit: float = 0.10
    stop_loss: float = 0.05
    max_days: int = 20

    def __call__(self, entry: float, closes: Sequence[float]) -> tuple[int, str] | None:
        """(index of the day to sell among `closes`, reason), or None if no day triggers yet."""
        for day, close in enumerate(closes[:self.max_days]):
            if close >= entry * (1 + self.take_profit):
                return day, "take profit"
            if close <= entry * (1 - self.stop_loss):
                return day, "stop loss"
        return (self.max_days - 1, "time") if len(closes) >= self.max_days else None

    def __str__(self) -> str:
        return (f"sell at +{self.take_profit:.0%} (take profit), at -{self.stop_loss:.0%} (stop loss), "
                f"or after {self.max_days} trading days")


def define_tables(prefix: str) -> tuple[MetaData, Table, Table]:
    """The bot's two tables, named `<prefix>_trades` and `<prefix>_positions`."""
    metadata = MetaData()
    trades = Table(
        f"{prefix}_trades", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("ticker", String(16), nullable=False),
        Column("side", String(4), nullable=False, comment="buy or sell"),
        Column("signal_ts", BigInteger, nullable=False, comment="alert_ts of the signal that opened it"),
        Column("ts", BigInteger, nullable=False, comment="trade time: the bar's start, epoch ms UTC"),
        Column("price", Double, nullable=False, comment="USD per share"),
        Column("shares", Double, nullable=False),
        Column("amount", Double, nullable=False, comment="price * shares, USD"),
        Column("reason", String(16), nullable=False),
        UniqueConstraint("ticker", "side", "signal_ts", name=f"uq_{prefix}_trade"),
    )
    positions = Table(
        f"{prefix}_positions", metadata,
        Column("ticker", String(16), primary_key=True),
        Column("signal_ts", BigInteger, nullable=False),
        Column("entry_ts", BigInteger, nullable=False),
        Column("entry_price", Double, nullable=False),
        Column("shares", Double, nullable=False),
    )
    return metadata, trades, positions


class Prices:
    """Each ticker's daily closes in time order, to find the day a position exits."""

    def __init__(self, bars: pd.DataFrame):
        self.series = {t: (g["ts"].to_numpy(np.int64), g["close"].to_numpy(float))
                       for t, g in bars.sort_values("ts").groupby("ticker")}
        self.last_ts = int(bars["ts"].max()) if len(bars) else 0

    def exit(self, rule: ExitRuleType, ticker: str, entry_ts: int,
             entry_price: float) -> tuple[int, float, str] | None:
        """(ts, close, reason) of the day the rule sells a position, or None within the data."""
        ts, closes = self.series[ticker]
        start = int(np.searchsorted(ts, entry_ts, side="right"))
        decision = rule(entry_price, closes[start:])
        if decision is None:
            return None
        day, reason = decision
        return int(ts[start + day]), float(closes[start + day]), reason


@dataclass
class BotReport:
    """What one run of the bot did with the signals it read."""

    read: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    crashed: bool = False

    def __str__(self) -> str:
        parts = ", ".join(f"{n:,} {what}" for what, n in sorted(self.outcomes.items()))
        crashed = " (then crashed)" if self.crashed else ""
        return f"{self.read:,} signals read: {parts or 'nothing new'}{crashed}"


class PaperBot:
    """Consume `buy`, trade on paper by `ExitRule`, keep positions and trades in MySQL."""

    def __init__(self, settings: Settings, rule: ExitRuleType | None = None, *,
                 amount: float = 10_000.0, capital: float = 100_000.0, tables: str = "paper",
                 group: str | None = None, engine: Engine | None = None):
        if not amount > 0 or not capital >= amount:
            raise InputError(f"amount must be positive and capital at least amount, got {amount!r} "
                             f"and {capital!r}.")
        self.settings = settings
        self.rule: ExitRuleType = rule or ExitRule()
        self.amount, self.capital = float(amount), float(capital)
        self.group = group or self.settings.group("paper-bot")
        self._own_engine = engine is None          # an engine made here is disposed of by close()
        self.engine = engine or make_engine(self.settings)
        self.metadata, self.trades, self.positions = define_tables(tables)
        try:
            self.prices = Prices(read_bars(self.engine, "day"))
        except BaseException:
            self.close()
            raise
        self.history: list[BotReport] = []        # one report per run, the last one last

    def close(self) -> None:
        """Dispose of the bot's engine if it made its own (one passed in belongs to its caller)."""
        if self._own_engine:
            self.engine.dispose()

    def __enter__(self) -> PaperBot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self) -> None:
        """Start from an empty book: drop and create the tables, forget the group's offsets."""
        self.metadata.drop_all(self.engine)
        self.metadata.create_all(self.engine)
        delete_groups(make_admin(self.settings), [self.group])

    def _sell_if_due(self, conn, ticker: str, now: int) -> bool:
        """Close the ticker's position if the rule sold it at or before `now`; True if it did."""
        row = conn.execute(select(self.positions).where(self.positions.c.ticker == ticker)).first()
        if row is None:
            return False
        due = self.prices.exit(self.rule, ticker, row.entry_ts, row.entry_price)
        if due is None or due[0] > now:
            return False
        ts, price, reason = due
        conn.execute(insert(self.trades).prefix_with("IGNORE").values(
            ticker=ticker, side="sell", signal_ts=row.signal_ts, ts=ts, price=price, shares=row.shares,
            amount=price * row.shares, reason=reason))
        conn.execute(delete(self.positions).where(self.positions.c.ticker == ticker))
        return True

    def on_signal(self, conn, signal: dict[str, Any]) -> str:
        """Apply one buy signal in the open transaction `conn`; return what happened."""
        ticker, now, price = signal["ticker"], int(signal["alert_ts"]), float(signal["close"])
        if ticker not in self.prices.series:
            return "unknown ticker"
        sold = self._sell_if_due(conn, ticker, now)
        held = conn.execute(select(self.positions.c.entry_ts).where(
            self.positions.c.ticker == ticker)).scalar()
        if held is not None:
            return "already held" if held < now else "seen before"
        shares = self.amount / price
        bought = conn.execute(insert(self.trades).prefix_with("IGNORE").values(
            ticker=ticker, side="buy", signal_ts=now, ts=now, price=price, shares=shares,
            amount=self.amount, reason="signal")).rowcount
        if not bought:                                 # this signal was traded before a crash
            return "seen before"
        conn.execute(insert(self.positions).values(ticker=ticker, signal_ts=now, entry_ts=now,
                                                    entry_price=price, shares=shares))
        return "bought after a sell" if sold else "bought"

    def settle(self) -> int:
        """Sell every position whose exit day has come by the end of the data; return how many."""
        with self.engine.begin() as conn:
            tickers = conn.execute(select(self.positions.c.ticker)).scalars().all()
            return sum(self._sell_if_due(conn, t, self.prices.last_ts) for t in tickers)

    def run(self, *, crash_after: int | None = None) -> BotReport:
        """Read `buy` until caught up, one transaction per signal, committing offsets per batch.

        crash_after=N stops dead after the N-th signal's transaction, before
        the batch's offsets are committed (the failure lab of 09.2).
        """
        topic = self.settings.topics.buy
        consumer = make_consumer(self.group, self.settings)
        consumer.subscribe([topic])
        report = BotReport()
        self.history.append(report)
        try:
            for batch in batches_to_end(consumer):
                done: dict[int, int] = {}
                for msg in batch:
                    with self.engine.begin() as conn:
                        outcome = self.on_signal(conn, decode(BUY, msg.value()))
                    report.read += 1
                    report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
                    done[msg.partition()] = msg.offset() + 1
                    if crash_after is not None and report.read >= crash_after:
                        report.crashed = True
                        return report                  # no commit: the finally only closes
                if done:
                    consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in done.items()],
                                    asynchronous=False)
        finally:
            consumer.close()
        sold = self.settle()
        if sold:
            report.outcomes["sold at the end"] = sold
        return report

    def read_trades(self) -> pd.DataFrame:
        """Every trade of the book, in time order."""
        with self.engine.connect() as conn:
            frame = pd.read_sql(select(*[self.trades.c[c] for c in TRADE_COLUMNS]), conn)
        return sort_trades(frame)

    def read_positions(self) -> pd.DataFrame:
        """The positions still open."""
        with self.engine.connect() as conn:
            return pd.read_sql(select(self.positions), conn)


def sort_trades(frame: pd.DataFrame) -> pd.DataFrame:
    """Trades in time order, buys before sells of the same instant, with plain dtypes."""
    frame = frame.astype({"ticker": object, "side": object, "reason": object,
                          "signal_ts": "int64", "ts": "int64"})
    return frame.sort_values(["ts", "ticker", "side"], ignore_index=True)[TRADE_COLUMNS]


def backtest(bars: pd.DataFrame, signals: pd.DataFrame, rule: ExitRuleType | None = None,
             amount: float = 10_000.0) -> pd.DataFrame:
    """The bot's trades computed in plain Python from bars and signals: no Kafka, no MySQL."""
    rule = rule or ExitRule()
    prices = Prices(bars)
    rows: list[dict[str, Any]] = []
    for ticker, group in signals.sort_values("alert_ts").groupby("ticker"):
        if ticker not in prices.series:
            continue
        position: dict[str, Any] | None = None
        for signal in group.itertuples():
            now = int(signal.alert_ts)
            if position and position["exit"] and position["exit"][0] <= now:
                rows.append(sell_row(ticker, position))
                position = None
            if position is None:
                price = float(signal.close)
                rows.append({"ticker": ticker, "side": "buy", "signal_ts": now, "ts": now, "price": price,
                             "shares": amount / price, "amount": amount, "reason": "signal"})
                position = {"signal_ts": now, "shares": amount / price,
                            "exit": prices.exit(rule, ticker, now, price)}
        if position and position["exit"]:
            rows.append(sell_row(ticker, position))
    return sort_trades(pd.DataFrame(rows, columns=TRADE_COLUMNS))


def sell_row(ticker: str, position: dict[str, Any]) -> dict[str, Any]:
    """The sell trade that closes a backtest position."""
    ts, price, reason = position["exit"]
    return {"ticker": ticker, "side": "sell", "signal_ts": position["signal_ts"], "ts": ts, "price": price,
            "shares": position["shares"], "amount": price * position["shares"], "reason": reason}


def profit_and_loss(trades: pd.DataFrame) -> pd.DataFrame:
    """One row per round trip: entry, exit, reason and profit in USD and percent (open ones: no exit)."""
    buys = trades[trades["side"] == "buy"].set_index(["ticker", "signal_ts"])
    sells = trades[trades["side"] == "sell"].set_index(["ticker", "signal_ts"])
    trips = buys[["ts", "price", "amount"]].join(sells[["ts", "price", "amount", "reason"]], rsuffix="_sell")
    trips.columns = ["bought", "buy price", "cost", "sold", "sell price", "proceeds", "reason"]
    trips["profit"] = trips["proceeds"] - trips["cost"]
    trips["return"] = trips["profit"] / trips["cost"]
    for column in ("bought", "sold"):                    # people read dates, not epoch ms
        trips[column] = pd.to_datetime(trips[column], unit="ms", utc=True).dt.strftime("%Y-%m-%d")
    return trips.reset_index().drop(columns="signal_ts")


def equity_curve(trades: pd.DataFrame, bars: pd.DataFrame, capital: float = 100_000.0) -> pd.DataFrame:
    """Cash, holdings at market value, and equity (their sum) at every daily close, in USD."""
    days = np.sort(bars["ts"].unique())
    if not trades.empty:
        days = days[days >= trades["ts"].min()]
    signed = trades.assign(held=np.where(trades["side"] == "buy", trades["shares"], -trades["shares"]),
                           cash=np.where(trades["side"] == "buy", -trades["amount"], trades["amount"]))
    closes = (bars.pivot_table(index="ts", columns="ticker", values="close")
              .reindex(days).ffill())
    held = (signed.pivot_table(index="ts", columns="ticker", values="held", aggfunc="sum")
            .reindex(days, fill_value=0).fillna(0).cumsum())
    cash = capital + signed.groupby("ts")["cash"].sum().reindex(days, fill_value=0).cumsum()
    holdings = (held * closes[held.columns]).sum(axis=1) if len(held.columns) else cash * 0
    curve = pd.DataFrame({"cash": cash.to_numpy(), "holdings": holdings.to_numpy()},
                         index=pd.to_datetime(days, unit="ms", utc=True))
    curve["equity"] = curve["cash"] + curve["holdings"]
    curve.index.name = "day"
    return curve
