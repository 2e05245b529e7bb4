"""candle_prices of an older workbook is refused in one sentence, its rows kept (SQLite stands in)."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from helpers.core.errors import StoredDataError
from helpers.pipeline.db import count_bars, create_schema


def test_an_old_table_is_kept_with_its_rows_and_a_sentence_says_what_to_do(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:      # the first workbook's table: no timespan column
        conn.execute(text("CREATE TABLE candle_prices (id INTEGER PRIMARY KEY, ticker TEXT, ts BIGINT, "
                          "open REAL, high REAL, low REAL, close REAL, volume REAL)"))
        conn.execute(text("INSERT INTO candle_prices (ticker, ts, open, high, low, close, volume) VALUES "
                          "('AAPL', 1, 1, 2, 1, 2, 10), ('AAPL', 2, 2, 3, 2, 3, 10), "
                          "('MSFT', 1, 5, 6, 5, 6, 1)"))
    with pytest.raises(StoredDataError, match=r"^candle_prices holds 3 rows of an older workbook .* kept as "
                                              r"they are: rename it \(RENAME TABLE candle_prices TO"):
        create_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM candle_prices")).scalar_one() == 3


def test_a_new_or_current_table_is_made_or_left_alone(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'new.db'}")
    create_schema(engine)
    create_schema(engine)                # again: nothing to do
    assert count_bars(engine) == 0
