"""MySQL: the engine and the `candle_prices` table (01_ingestion).

Rows are inserted through SQLAlchemy with bound parameters (the original
pasted tuple text into SQL). A unique key on (ticker, ts) makes a re-run of
the ingestion add nothing: `INSERT IGNORE` skips rows already stored.
"""
from __future__ import annotations

import pandas as pd
from sqlalchemy import (BigInteger, Column, Double, Engine, Integer, MetaData, String, Table,
                        UniqueConstraint, create_engine, func, insert, select, text)

from .config import Settings, load_settings
from .progress import progress_bar
from .schemas import BAR_COLUMNS

metadata = MetaData()

candle_prices = Table(
    "candle_prices", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticker", String(16), nullable=False),
    Column("ts", BigInteger, nullable=False, comment="bar start, epoch milliseconds UTC"),
    Column("open", Double, nullable=False),
    Column("high", Double, nullable=False),
    Column("low", Double, nullable=False),
    Column("close", Double, nullable=False),
    Column("volume", Double, nullable=False),
    Column("vwap", Double, nullable=True),
    Column("transactions", BigInteger, nullable=True),
    UniqueConstraint("ticker", "ts", name="uq_candle_prices_ticker_ts"),
)



def make_engine(settings: Settings | None = None, connect_timeout: int = 10) -> Engine:
    """A SQLAlchemy engine for the workbook database."""
    settings = settings or load_settings()
    return create_engine(settings.database_url, pool_pre_ping=True,
                         connect_args={"connect_timeout": connect_timeout})


def server_version(engine: Engine) -> str:
    """The server's version string, e.g. 11.8.3-MariaDB or 8.4.3."""
    with engine.connect() as conn:
        return conn.execute(text("SELECT VERSION()")).scalar_one()


def create_schema(engine: Engine) -> None:
    """Create `candle_prices` if it does not exist yet."""
    metadata.create_all(engine)


def count_bars(engine: Engine) -> int:
    """Number of rows in `candle_prices`."""
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(candle_prices)).scalar_one()


def store_bars(engine: Engine, bars: pd.DataFrame, chunk: int = 5000, progress: bool = True) -> int:
    """Insert validated bars, skipping (ticker, ts) already stored; return rows added."""
    create_schema(engine)
    records = bars[BAR_COLUMNS].astype(object).where(bars[BAR_COLUMNS].notna(), None).to_dict("records")
    added = 0
    statement = insert(candle_prices).prefix_with("IGNORE")
    with progress_bar(total=len(records), desc="storing bars", unit="bar", enabled=progress) as bar:
        for start in range(0, len(records), chunk):
            batch = records[start:start + chunk]
            with engine.begin() as conn:
                added += conn.execute(statement, batch).rowcount
            bar.update(len(batch))
    return added


def read_bars(engine: Engine) -> pd.DataFrame:
    """All stored bars in replay order (ts, then ticker), with plain dtypes."""
    query = select(*[candle_prices.c[c] for c in BAR_COLUMNS]).order_by(
        candle_prices.c.ts, candle_prices.c.ticker)
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    return frame.astype({"ticker": object, "ts": "int64", "transactions": "Int64"})


def truncate_bars(engine: Engine) -> None:
    """Delete every stored bar (tests and `workbook ingest --reset`)."""
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(candle_prices.delete())
