"""MySQL: the engine and the `candle_prices` table (01_ingestion).

Rows are inserted through SQLAlchemy with bound parameters (the original
pasted tuple text into SQL). A unique key on (ticker, timespan, ts) makes a
re-run of the ingestion add nothing: `INSERT IGNORE` skips rows already
stored. Daily and minute bars sit in one table, told apart by `timespan`,
and are read back one timespan at a time: a pipeline runs on one timespan.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

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
    func,
    insert,
    inspect,
    select,
    text,
)

from helpers.core.errors import InputError, StoredDataError
from helpers.core.progress import progress_bar
from helpers.core.schemas import BAR_COLUMNS

if TYPE_CHECKING:          # pandas is imported where bars are read: `workbook status` stays light
    import pandas as pd

TIMESPANS = ("minute", "hour", "day", "week", "month", "quarter", "year")   # Massive's words

metadata = MetaData()

candle_prices = Table(
    "candle_prices", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ticker", String(16), nullable=False),
    Column("timespan", String(8), nullable=False, comment="length of the bar: day, minute..."),
    Column("ts", BigInteger, nullable=False, comment="bar start, epoch milliseconds UTC"),
    Column("open", Double, nullable=False),
    Column("high", Double, nullable=False),
    Column("low", Double, nullable=False),
    Column("close", Double, nullable=False),
    Column("volume", Double, nullable=False),
    Column("vwap", Double, nullable=True),
    Column("transactions", BigInteger, nullable=True),
    UniqueConstraint("ticker", "timespan", "ts", name="uq_candle_prices_bar"),
)


def check_timespan(timespan: str) -> str:
    """Return `timespan` if it is one of TIMESPANS, else raise InputError."""
    if timespan not in TIMESPANS:
        raise InputError(f"The timespan must be one of {', '.join(TIMESPANS)}, got {timespan!r}.")
    return timespan


def create_schema(engine: Engine) -> None:
    """Create `candle_prices` if it does not exist; refuse, touching nothing, one of an older workbook."""
    columns = {c["name"] for c in inspect(engine).get_columns("candle_prices")} \
        if inspect(engine).has_table("candle_prices") else set()
    if columns and "timespan" not in columns:   # an earlier version's table: its rows are not ours to drop
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(text("candle_prices"))).scalar_one()
        raise StoredDataError(
            f"candle_prices holds {rows:,} rows of an older workbook (it has no timespan column), kept as "
            "they are: rename it (RENAME TABLE candle_prices TO candle_prices_old) or drop it, then run "
            "again.")
    metadata.create_all(engine)


def count_bars(engine: Engine, timespan: str | None = None) -> int:
    """Number of rows in `candle_prices` (of one timespan, or all)."""
    query = select(func.count()).select_from(candle_prices)
    if timespan:
        query = query.where(candle_prices.c.timespan == timespan)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def store_bars(engine: Engine, bars: pd.DataFrame, timespan: str = "day", chunk: int = 5000,
               progress: bool = True) -> int:
    """Insert validated bars of one timespan, skipping bars already stored; return rows added.

    All rows go in one transaction: a failure stores none of them.
    """
    check_timespan(timespan)
    create_schema(engine)
    frame = bars[BAR_COLUMNS].astype(object).where(bars[BAR_COLUMNS].notna(), None)
    records = frame.assign(timespan=timespan).to_dict("records")
    added = 0
    statement = insert(candle_prices).prefix_with("IGNORE")
    with progress_bar(total=len(records), desc="storing bars", unit="bar", enabled=progress) as bar, \
            engine.begin() as conn:
        for start in range(0, len(records), chunk):
            batch = records[start:start + chunk]
            added += conn.execute(statement, batch).rowcount
            bar.update(len(batch))
    return added


def read_bars(engine: Engine, timespan: str = "day") -> pd.DataFrame:
    """The stored bars of one timespan in replay order (ts, then ticker), with plain dtypes."""
    query = (select(*[candle_prices.c[c] for c in BAR_COLUMNS])
             .where(candle_prices.c.timespan == check_timespan(timespan))
             .order_by(candle_prices.c.ts, candle_prices.c.ticker))
    import pandas as pd

    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    return frame.astype({"ticker": object, "ts": "int64", "transactions": "Int64"})


def truncate_bars(engine: Engine) -> None:
    """Delete every stored bar (tests and `workbook ingest --reset`)."""
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(candle_prices.delete())
