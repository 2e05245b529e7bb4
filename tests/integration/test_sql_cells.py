"""SQL a student types, on the real Flink and Kafka: bounded results equal pandas, a table's changelog,
a compacted topic compacted by the broker, a live query that stops by itself, refusals in one sentence."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from helpers.core import windows
from helpers.core.errors import StreamSqlError
from helpers.infra.workbook import Workbook
from helpers.pipeline.produce import replay_bars
from helpers.pipeline.sources import fetch_synthetic
from helpers.pipeline.sqlcell import SqlResult, course_sql, register_lesson_tables, run_sql
from helpers.pipeline.topics import compact_now, records_in, table_from_topic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processes import class_flink  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["local Flink", "class SQL Gateway"])
def lesson(request, settings):
    """A namespace of its own with synthetic minute bars in its pricelist and the lesson tables
    declared in one Workbook's Flink session: on a laptop, one JVM for every test of the module; on a
    class server, a session of the class's SQL Gateway (and no JVM of the student's)."""
    import dataclasses
    import uuid
    from contextlib import ExitStack

    from helpers.infra.clients import make_admin
    from helpers.pipeline.topics import delete_topics, ensure_topics

    mine = settings.with_namespace(f"t{uuid.uuid4().hex[:10]}")
    admin = make_admin(mine)
    ensure_topics(admin, mine.topics.all)
    bars = fetch_synthetic(n_tickers=3, n_bars=150, seed=9)
    replay_bars(bars, settings=mine, progress=False)
    with ExitStack() as stack:
        if request.param == "class SQL Gateway":
            cluster = stack.enter_context(class_flink(mine))
            mine = dataclasses.replace(mine, flink_cluster=cluster.address,
                                       flink_gateway=cluster.gateway_address)
        wb = stack.enter_context(Workbook(mine))
        register_lesson_tables(wb, mine)
        yield wb, bars
    delete_topics(admin, [t for t in admin.list_topics(timeout=10).topics if t.startswith(mine.prefix)])


def test_a_bounded_query_gives_the_table_pandas_computes(lesson):
    wb, bars = lesson
    [result] = run_sql(wb, "SELECT ticker, COUNT(*) AS bars, MIN(low) AS low, MAX(high) AS high\n"
                           "FROM bars GROUP BY ticker")
    assert isinstance(result, SqlResult)
    columns = ["ticker", "bars", "low", "high"]
    assert windows.compare_tables(result.table, windows.per_ticker_summary(bars), columns).empty
    retractions = int((result.changes["op"] == "−").sum())
    assert retractions == len(bars) - bars["ticker"].nunique()     # every bar after a ticker's first updates


def test_the_course_windows_equal_pandas(lesson):
    wb, bars = lesson
    [hourly] = run_sql(wb, course_sql(wb, "05_hourly_volume.sql", wb.settings))
    assert windows.compare_tables(hourly.table, windows.hourly_volume(bars),
                                  ["ticker", "window_start", "window_end", "bars", "volume"]).empty
    [found] = run_sql(wb, course_sql(wb, "07_sessions.sql", wb.settings))
    assert windows.compare_tables(found.table, windows.sessions(bars, "30min"),
                                  ["ticker", "window_start", "window_end", "bars"]).empty


def test_a_latest_price_table_is_compacted_by_the_broker(lesson):
    wb, bars = lesson
    topic = wb.settings.prefix + "latest_price"
    run_sql(wb, course_sql(wb, "04_latest_price.sql", wb.settings))
    assert records_in(topic, wb.settings) == len(bars)               # one record per update
    seconds = compact_now(wb.admin, topic, wb.settings, keys=bars["ticker"].nunique(), timeout=120)
    assert records_in(topic, wb.settings) <= bars["ticker"].nunique() + 1 and seconds < 120
    kept = table_from_topic(topic, wb.settings)
    assert windows.compare_tables(kept, windows.latest_close(bars), ["ticker", "close", "ts"]).empty


def test_a_live_query_stops_by_itself_after_its_rows_or_its_seconds(lesson):
    wb, _ = lesson
    started = time.monotonic()
    [few] = run_sql(wb, "SELECT ticker, ts FROM bars_live", live=True, rows=5, seconds=60)
    assert len(few.changes) == 5 and few.stopped == "5 changes"
    [timed] = run_sql(wb, "SELECT ticker, ts FROM bars_live WHERE ticker = 'nobody'", live=True,
                      rows=5, seconds=3)
    assert len(timed.changes) == 0 and timed.stopped == "3 s"
    assert time.monotonic() - started < 120


def test_a_refused_statement_is_one_sentence_that_quotes_the_line(lesson):
    wb, _ = lesson
    with pytest.raises(StreamSqlError) as refused:
        run_sql(wb, "SELECT ticker,\n  clsoe\nFROM bars")
    assert str(refused.value).startswith("Flink SQL refused the statement at line 2, column 3 (`clsoe`): ")
    assert "\n" not in str(refused.value)


def test_a_students_session_runs_a_jvm_only_without_the_class_gateway(lesson):
    """With FLINK_GATEWAY the student's session sends SQL over REST: no JVM of its own (the memory a
    class of 30 saves); on a laptop its JVM runs Flink itself."""
    import psutil

    from helpers.pipeline.flinksql import flink_session

    wb, _ = lesson
    run_sql(wb, "SELECT ticker FROM bars WHERE ticker = 'nobody'")
    session = psutil.Process(flink_session(wb).proc.pid)
    jvms = [p for p in session.children(recursive=True) if p.name().startswith("java")]
    assert len(jvms) == (0 if wb.settings.flink_gateway else 1), session.children(recursive=True)
