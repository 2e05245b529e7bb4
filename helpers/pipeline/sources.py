"""Where bars come from: the committed sample, a seeded generator, or Massive (01_ingestion).

Every source returns the same frame, one row per bar, sorted by (ts, ticker):
ticker (str), ts (int64, bar start in epoch milliseconds UTC), open, high, low,
close, volume, vwap (float64, USD and shares; vwap may be NaN) and
transactions (nullable Int64). `helpers.core.validation.validate_bars` splits such a
frame into the bars worth storing and the rejected ones, each with the reason.

The Massive API key is read from the settings (MASSIVE_API_KEY or
POLYGON_API_KEY in the environment or `.env`) and never printed: error
messages are built from the server's answer with the key scrubbed out.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.bars import PRICE_COLUMNS, as_bars, empty_bars, sort_bars
from helpers.core.errors import ConfigError, InputError, SourceError
from helpers.core.schemas import BAR_COLUMNS
from helpers.core.settings import PROJECT_ROOT, Settings, mask_secrets

SOURCES = ("sample", "synthetic", "massive")
DATA_DIR = PROJECT_ROOT / "data"
SAMPLE_TIMESPANS = ("day", "minute")   # data/bars_day.csv, data/bars_minute.csv
MARKET_TZ = "America/New_York"
MASSIVE_REQUESTS_PER_MINUTE = 5      # the free plan's limit
MASSIVE_PAGE_LIMIT = 50_000          # the largest `limit` the aggregates endpoint accepts

def to_ms(value: Any, *, end: bool = False) -> int | None:
    """Epoch ms UTC of a time bound; a 'YYYY-MM-DD' date is a whole New York trading day.

    With end=True a date means the last millisecond of that day, so both bounds
    are inclusive. Naive times are taken as UTC; integers are already epoch ms.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(f"A time bound must be a date, a time or epoch ms, got {value!r}.")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = value.isoformat()
    if isinstance(value, str) and len(value) == 10:
        day = pd.Timestamp(value).tz_localize(MARKET_TZ)
        if end:
            return int((day + pd.Timedelta(days=1)).value // 10**6) - 1
        return int(day.value // 10**6)
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 10**6)


def ticker_list(tickers: str | Iterable[str] | None) -> list[str] | None:
    """Normalize one ticker or many into a list of upper-case symbols (None stays None)."""
    if tickers is None:
        return None
    if isinstance(tickers, str):
        tickers = [tickers]
    symbols = [str(t).strip().upper() for t in tickers]
    if not symbols or not all(symbols):
        raise InputError(f"Tickers must be non-empty symbols such as 'AAPL', got {tickers!r}.")
    return symbols


# --- sample: real bars committed in data/ ------------------------------------

def sample_path(timespan: str) -> Path:
    """The committed file of real bars of one timespan (see data/README.md)."""
    if timespan not in SAMPLE_TIMESPANS:
        raise InputError(f"The sample has {' and '.join(SAMPLE_TIMESPANS)} bars, not {timespan!r}.")
    return DATA_DIR / f"bars_{timespan}.csv"


def fetch_sample(tickers: str | Iterable[str] | None = None, start: Any = None,
                 end: Any = None, *, timespan: str = "day", path: str | Path | None = None) -> pd.DataFrame:
    """Real bars of one timespan from data/ (daily: 5 stocks 2000-2013), optionally filtered."""
    path = Path(path or sample_path(timespan))
    if not path.is_file():
        raise SourceError(f"The sample file {path} is missing: run `python data/make_sample.py`.")
    bars = as_bars(pd.read_csv(path, dtype={"ticker": str}))
    keep = np.ones(len(bars), dtype=bool)
    symbols = ticker_list(tickers)
    if symbols is not None:
        keep &= bars["ticker"].isin(symbols).to_numpy()
    lo, hi = to_ms(start), to_ms(end, end=True)
    if lo is not None:
        keep &= bars["ts"].to_numpy() >= lo
    if hi is not None:
        keep &= bars["ts"].to_numpy() <= hi
    return sort_bars(bars[keep])


# --- synthetic: a seeded geometric random walk ------------------------------

def synthetic_tickers(n_tickers: int) -> list[str]:
    """Made-up symbols SYN000, SYN001, ... (never real tickers)."""
    width = max(3, len(str(n_tickers - 1)))
    return [f"SYN{i:0{width}d}" for i in range(n_tickers)]


def fetch_synthetic(n_tickers: int = 5, n_bars: int = 1_000, *, seed: int = 0,
                    start: Any = "2023-12-18T14:30:00Z", interval_ms: int = 60_000,
                    jump_probability: float = 0.002) -> pd.DataFrame:
    """Seeded random bars: a geometric random walk per ticker, same seed -> same frame.

    Prices start around $150 (some above $195), move about 0.1-0.3 % per bar
    and jump now and then (`jump_probability` per bar, about 5 % in size), so
    a large history shows alerts, big variations and buys at the defaults.
    Every bar satisfies low <= open, close, vwap <= high and all prices > 0.
    """
    if n_tickers < 1 or n_bars < 1 or interval_ms < 1:
        raise InputError("n_tickers, n_bars and interval_ms must be positive integers.")
    rng = np.random.default_rng(seed)
    shape = (n_bars, n_tickers)                          # row = time step, column = ticker
    sigma = rng.uniform(0.001, 0.003, n_tickers)
    start_price = rng.lognormal(math.log(150.0), 0.25, n_tickers)
    steps = rng.standard_normal(shape) * sigma
    jumps = rng.random(shape) < jump_probability
    steps += jumps * rng.normal(0.0, 0.05, shape)
    gaps = rng.standard_normal(shape) * sigma * 0.1
    log_close = np.log(start_price) + np.cumsum(steps + gaps, axis=0)
    log_open = log_close - steps
    open_, close = np.exp(log_open), np.exp(log_close)
    wick = np.abs(rng.standard_normal((2,) + shape)) * sigma * 0.7
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    vwap = np.clip(low + (high - low) * rng.beta(2.0, 2.0, shape), low, high)
    volume = np.round(rng.lognormal(9.0, 0.8, shape) * (1 + 9 * jumps))
    trade_size = rng.uniform(60.0, 160.0, n_tickers)
    transactions = np.maximum(1, np.round(volume / trade_size)).astype(np.int64)
    ts = int(to_ms(start) or 0) + np.arange(n_bars, dtype=np.int64) * interval_ms
    names = np.array(synthetic_tickers(n_tickers), dtype=object)
    return pd.DataFrame({
        "ticker": np.tile(names, n_bars),
        "ts": np.repeat(ts, n_tickers),
        "open": open_.ravel(), "high": high.ravel(), "low": low.ravel(),
        "close": close.ravel(), "volume": volume.ravel(), "vwap": vwap.ravel(),
        "transactions": pd.array(transactions.ravel(), dtype="Int64"),
    })


# --- massive: the REST API through the official client ----------------------

class RateLimiter:
    """At most `calls` calls in any `period` seconds; the clock and sleep are injectable."""

    def __init__(self, calls: int = MASSIVE_REQUESTS_PER_MINUTE, period: float = 60.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if calls < 1 or period <= 0:
            raise InputError("A rate limit needs at least 1 call per positive period.")
        self.calls, self.period = calls, period
        self.clock, self.sleep = clock, sleep
        self.history: deque[float] = deque()

    def wait(self) -> float:
        """Block until one more call fits in the window, record it, return the seconds slept."""
        now = self.clock()
        while self.history and self.history[0] <= now - self.period:
            self.history.popleft()
        waited = 0.0
        if len(self.history) >= self.calls:
            waited = self.history[0] + self.period - now
            self.sleep(waited)
            now = self.clock()
            self.history.popleft()
        self.history.append(now)
        return waited


def require_api_key(api_key: str | None) -> str:
    """Return the Massive API key (settings.massive_api_key, from MASSIVE_API_KEY), or raise ConfigError."""
    key = (api_key or "").strip()
    if not key:
        raise ConfigError("No Massive API key: add the line MASSIVE_API_KEY=<your key> to .env "
                          "(or export MASSIVE_API_KEY), or use source='sample'.")
    return key


class MalformedAnswer(Exception):
    """Massive answered 200 with a body that is not JSON (the client would return [])."""


def make_massive_client(api_key: str, limiter: RateLimiter | None, *, base_url: str | None = None,
                        retries: int = 3, timeout: float = 10.0):
    """A massive.RESTClient whose every request waits for `limiter`: pages, and retries too.

    The client's own retries (429 and 5xx answers, time-outs) happen inside
    urllib3, below the client's `_get`: they pace themselves through
    `PacedRetry.sleep`, so a retry never breaks the rate limit either.
    """
    from massive import RESTClient
    from massive.rest import BASE
    from urllib3.util.retry import Retry

    class PacedRetry(Retry):
        """urllib3's retry, waiting for the rate limiter after its own back-off."""

        def sleep(self, response=None) -> None:
            super().sleep(response)
            if limiter is not None:
                limiter.wait()

    class PacedClient(RESTClient):
        """RESTClient that paces its requests and refuses a non-JSON answer."""

        def _get(self, *args, **kwargs):
            if limiter is not None:
                limiter.wait()
            return super()._get(*args, **kwargs)

        def _decode(self, resp):
            try:
                return super()._decode(resp)
            except ValueError:
                raise MalformedAnswer() from None

        def __repr__(self) -> str:
            return f"PacedClient(base={self.BASE!r})"

    retry = PacedRetry(total=retries, status_forcelist=[429, 500, 502, 503, 504], backoff_factor=0.5,
                       allowed_methods=["GET"], raise_on_status=False)
    return PacedClient(api_key=api_key, base=base_url or BASE, retries=retries, connect_timeout=timeout,
                       read_timeout=timeout, connection_pool_kw={"retries": retry})


@cache
def shared_limiter() -> RateLimiter:
    """One limiter for the whole process: back-to-back fetches share the free plan's 5 per minute."""
    return RateLimiter()


def describe_failure(exc: Exception, secret: str) -> str:
    """One line about a failed request, from the server's JSON error when there is one."""
    text = str(exc)
    try:
        body = json.loads(text)
        text = body.get("error") or body.get("message") or body.get("status") or text
    except (ValueError, AttributeError):
        pass
    return mask_secrets(" ".join(str(text).split())[:200], [secret]) or exc.__class__.__name__


def agg_rows(ticker: str, aggs: Iterable[Any]) -> list[tuple]:
    """Rows in BAR_COLUMNS order from massive `Agg` objects (None stays missing)."""
    return [(ticker, a.timestamp, a.open, a.high, a.low, a.close, a.volume, a.vwap, a.transactions)
            for a in aggs]


def rows_to_bars(rows: list[tuple]) -> pd.DataFrame:
    """A bar frame from row tuples; missing numbers become NaN or <NA>, ts stays int64 when complete."""
    if not rows:
        return empty_bars()
    frame = pd.DataFrame(rows, columns=BAR_COLUMNS)
    for column in PRICE_COLUMNS + ["volume", "vwap"]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    frame["transactions"] = pd.to_numeric(frame["transactions"], errors="coerce").astype("Int64")
    frame["ts"] = pd.to_numeric(frame["ts"], errors="coerce")
    if frame["ts"].notna().all():
        frame["ts"] = frame["ts"].astype("int64")
    return frame


def massive_bound(value: Any, *, end: bool) -> str | int:
    """A from_/to value for list_aggs: dates pass as 'YYYY-MM-DD', times as epoch ms."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, str) and len(value) == 10:
        return value
    ms = to_ms(value, end=end)
    if ms is None:
        raise InputError("Massive needs a start and an end date.")
    return ms


def fetch_massive(tickers: str | Iterable[str] = "AAPL", start: Any = None, end: Any = None, *,
                  timespan: str = "minute", multiplier: int = 1, adjusted: bool = True,
                  settings: Settings | None = None, api_key: str | None = None, base_url: str | None = None,
                  limiter: RateLimiter | None = None, retries: int = 3, timeout: float = 10.0,
                  progress: bool = False) -> pd.DataFrame:
    """Aggregate bars from Massive (formerly Polygon.io), one paginated list_aggs per ticker.

    Dates are inclusive New York trading days; by default the last 7 days up to
    today. Requests wait for `limiter` (default: one limiter per process at the
    free plan's 5 per minute, pages and retries included); 429 and 5xx answers
    and time-outs are retried. Any failure raises SourceError and returns
    nothing: no partial batch. The rows are returned as sent, unvalidated:
    pass them to validate_bars. The key and the API's address come from
    `settings` (MASSIVE_API_KEY, MASSIVE_BASE_URL) unless given as arguments.
    """
    if settings is not None:
        api_key = api_key or settings.massive_api_key
        base_url = base_url or settings.massive_base_url
    key = require_api_key(api_key)
    symbols = ticker_list(tickers) or []
    end = end if end is not None else dt.date.today()
    start = start if start is not None else to_date(end) - dt.timedelta(days=7)
    limiter = limiter if limiter is not None else shared_limiter()
    client = make_massive_client(key, limiter, base_url=base_url or None,
                                 retries=retries, timeout=timeout)
    rows: list[tuple] = []
    for ticker in progress_iter(symbols, progress, desc="massive"):
        rows += fetch_massive_ticker(client, key, ticker, multiplier, timespan,
                                     massive_bound(start, end=False),
                                     massive_bound(end, end=True), adjusted)
    return sort_bars(rows_to_bars(rows)) if rows else empty_bars()


def fetch_massive_ticker(client, key: str, ticker: str, multiplier: int, timespan: str,
                         from_: str | int, to: str | int, adjusted: bool) -> list[tuple]:
    """All pages of one ticker's aggregates, as rows; failures become SourceError."""
    import urllib3
    from massive.exceptions import BadResponse

    try:
        aggs = client.list_aggs(ticker, multiplier, timespan, from_, to, adjusted=adjusted,
                                sort="asc", limit=MASSIVE_PAGE_LIMIT)
        return agg_rows(ticker, aggs)
    except BadResponse as exc:
        detail = describe_failure(exc, key)
    except urllib3.exceptions.HTTPError as exc:
        detail = f"no answer after retries ({describe_failure(exc, key)})"
    except MalformedAnswer:
        detail = "the answer is not JSON"
    raise SourceError(f"Massive request for {ticker} failed: {detail}.")


def to_date(value: Any) -> dt.date:
    """The New York calendar date of a bound (a date, a 'YYYY-MM-DD' string, a time or epoch ms)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    stamp = pd.Timestamp(to_ms(value), unit="ms", tz="UTC").tz_convert(MARKET_TZ)
    return stamp.date()


def progress_iter(items: list[str], progress: bool, desc: str) -> Iterable[str]:
    """`items`, wrapped in a tqdm progress bar when `progress` is true."""
    if not progress:
        return items
    from tqdm.auto import tqdm
    return tqdm(items, desc=desc, unit="ticker")


# --- one entry point ----------------------------------------------------------

FETCHERS: dict[str, Callable[..., pd.DataFrame]] = {
    "sample": fetch_sample, "synthetic": fetch_synthetic, "massive": fetch_massive}


def fetch_bars(source: str = "sample", **options: Any) -> pd.DataFrame:
    """Bars from `source` ('sample', 'synthetic' or 'massive'); options go to its fetch_ function."""
    if source not in FETCHERS:
        raise InputError(f"Unknown source {source!r}: choose one of {', '.join(SOURCES)}.")
    return FETCHERS[source](**options)
