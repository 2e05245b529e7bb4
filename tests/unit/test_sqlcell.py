"""SQL cells without an engine: statements told apart, options read, changes applied, refusals said
in one sentence that quotes the line."""
from __future__ import annotations

import orjson
import pandas as pd
import pytest

from helpers.core.errors import InputError
from helpers.pipeline import sqlcell


@pytest.mark.parametrize("text, kind", [
    ("SELECT 1", "query"), ("  with t AS (SELECT 1) SELECT * FROM t", "query"),
    ("-- a comment\nSELECT ticker FROM bars", "query"), ("VALUES (1)", "query"),
    ("CREATE TABLE t (a INT)", "statement"), ("INSERT INTO t SELECT 1", "statement"),
    ("SET 'table.local-time-zone' = 'UTC'", "statement"),
])
def test_a_query_is_told_from_a_statement(text, kind):
    assert sqlcell.statement_kind(text) == kind


def test_the_magic_line_takes_its_options_and_refuses_others():
    assert sqlcell.parse_magic_line("--live --rows 30 --seconds 5 --save hours") == \
        {"live": True, "rows": 30, "seconds": 5.0, "save": "hours"}
    assert sqlcell.parse_magic_line("") == {"live": False, "rows": sqlcell.LIVE_ROWS,
                                            "seconds": sqlcell.LIVE_SECONDS, "save": None}
    with pytest.raises(InputError, match="--rows takes a number, got 'many'"):
        sqlcell.parse_magic_line("--rows many")
    with pytest.raises(InputError, match="%%sql takes --live, --rows N, --seconds T and --save NAME"):
        sqlcell.parse_magic_line("--fast")


def test_changes_applied_in_order_leave_the_table():
    changes = pd.DataFrame([("+", "TSLA", 1), ("−", "TSLA", 1), ("+", "TSLA", 2), ("+", "AAPL", 1),
                            ("−", "TSLA", 2), ("+", "TSLA", 3)], columns=["op", "ticker", "bars"])
    table = sqlcell.final_table(changes, ["ticker", "bars"])
    assert sorted(map(tuple, table.to_numpy())) == [("AAPL", 1), ("TSLA", 3)]


def test_a_debezium_record_is_an_insert_or_a_retraction():
    after = orjson.dumps({"before": None, "after": {"ticker": "A", "n": 2}, "op": "c"})
    before = orjson.dumps({"before": {"ticker": "A", "n": 1}, "after": None, "op": "d"})
    assert sqlcell.decode_change(after, ["ticker", "n"]) == ("+", "A", 2)
    assert sqlcell.decode_change(before, ["ticker", "n"]) == ("−", "A", 1)
    assert sqlcell.decode_change(b"", ["ticker"]) is None


def test_timestamps_come_back_as_utc_times():
    frame = sqlcell.as_frame([("+", "2016-10-07 00:05:00")], ["window_start"],
                             {"window_start": "TIMESTAMP(3) NOT NULL"})
    assert frame["window_start"][0] == pd.Timestamp("2016-10-07 00:05", tz="UTC")


def test_a_refusal_is_one_sentence_that_quotes_the_line():
    statement = "SELECT ticker,\n  clsoe\nFROM bars"
    error = sqlcell.refusal("at line 2, column 3: Column 'clsoe' not found in any table",
                            statement, "Flink SQL")
    assert str(error) == ("Flink SQL refused the statement at line 2, column 3 (`clsoe`): "
                          "Column 'clsoe' not found in any table.")
    java = sqlcell.refusal("org.apache.calcite.runtime.CalciteException: Non-query expression "
                           "encountered in illegal context", "SELEC 1", "Flink SQL")
    assert str(java) == ("Flink SQL refused the statement: Non-query expression encountered in "
                         "illegal context.")


def test_an_empty_cell_is_refused_before_anything_runs():
    with pytest.raises(InputError, match="No SQL statement to run"):
        sqlcell.run_sql(None, "-- only a comment\n")     # type: ignore[arg-type]
