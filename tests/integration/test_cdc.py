"""Change data capture for real (notebook 12): a Kafka Connect worker with Debezium streams
candle_prices from MariaDB into Kafka; counts and contents compared with the table itself."""
import random
import sys
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import text

from helpers.classroom.course import delete_lesson_connectors
from helpers.core.errors import InputError
from helpers.infra.clients import assign_from_start, batches_to_end, make_consumer
from helpers.infra.connect import connect_answers, ensure_connect, stop_connect
from helpers.pipeline.cdc import (
    connect_call,
    debezium_config,
    delete_connector,
    put_connector,
    wait_for_changes,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processes import run_workbook  # noqa: E402

pytestmark = pytest.mark.integration

INSERT = text("INSERT INTO candle_prices (ticker, timespan, ts, open, high, low, close, volume) "
              "VALUES ('CDC', :timespan, :ts, :close, :close, :close, :close, 1)")


@pytest.fixture(scope="module")
def connect(settings):
    """The stack's Kafka Connect worker: started if it does not run, and then stopped again."""
    was_running = connect_answers(settings)
    yield ensure_connect(settings)
    if not was_running:
        stop_connect(settings)


@pytest.fixture
def capture(settings, isolated, sample_in_mysql, connect):
    """A connector of this test's own (topics under its namespace) and a timespan of its own for the rows
    it writes; both removed afterwards. Yields (name, timespan, config factory)."""
    name = f"{isolated.prefix}cdc-{uuid.uuid4().hex[:6]}"
    timespan = isolated.namespace[:8]
    table = f"{settings.mysql_database}.candle_prices"

    def config(only_ours: bool) -> dict[str, str]:
        extra = {"topic.prefix": name, "schema.history.internal.kafka.topic": f"{name}.history"}
        if only_ours:          # a snapshot of this test's rows only: seconds saved
            extra |= {"snapshot.select.statement.overrides": table,
                      f"snapshot.select.statement.overrides.{table}":
                          f"SELECT * FROM {table} WHERE timespan = '{timespan}'"}
        return debezium_config(isolated, random.randint(10_000, 20_000), **extra)

    yield name, timespan, config
    delete_connector(settings, name)
    with sample_in_mysql.begin() as conn:
        conn.execute(text("DELETE FROM candle_prices WHERE timespan = :t"), {"t": timespan})


def topic_of(name, settings):
    return f"{name}.{settings.mysql_database}.candle_prices"


def test_the_snapshot_holds_every_row_then_each_change_follows_in_commit_order(settings, sample_in_mysql,
                                                                               capture):
    name, timespan, config = capture
    with sample_in_mysql.connect() as conn:
        table = dict(conn.execute(text("SELECT id, close FROM candle_prices")).all())
    put_connector(settings, name, config(only_ours=False))
    topic = topic_of(name, settings)
    snapshot = wait_for_changes(settings, topic, len(table), timeout=120)
    assert len(snapshot) >= len(table) and set(snapshot["op"]) <= {"r", "c", "u", "d", "tombstone"}
    read = snapshot[snapshot["op"] == "r"]
    assert len(read) == len(table) and read["id"].is_unique
    assert dict(zip(read["id"], read["after"].map(lambda row: row["close"]), strict=True)) == table

    with sample_in_mysql.begin() as conn:
        conn.execute(INSERT, {"timespan": timespan, "ts": 1, "close": 100.0})
    with sample_in_mysql.begin() as conn:
        conn.execute(text("UPDATE candle_prices SET close = 107.5 WHERE timespan = :t"), {"t": timespan})
    with sample_in_mysql.begin() as conn:
        conn.execute(text("DELETE FROM candle_prices WHERE timespan = :t"), {"t": timespan})
    log = wait_for_changes(settings, topic, len(snapshot) + 4)
    ours = log[log["op"] != "r"].sort_values("offset")
    ours = ours[ours["id"] == ours["id"].max()]           # the row inserted above (the newest id)
    assert list(ours["op"]) == ["c", "u", "d", "tombstone"]
    create, update, delete, _ = ours.itertuples()
    assert create.before is None and create.after["close"] == 100.0 and create.after["timespan"] == timespan
    assert (update.before["close"], update.after["close"]) == (100.0, 107.5)
    assert delete.before["close"] == 107.5 and delete.after is None


def test_a_connector_created_again_goes_on_from_its_stored_position(settings, sample_in_mysql, capture):
    name, timespan, config = capture
    with sample_in_mysql.begin() as conn:
        for n in range(3):
            conn.execute(INSERT, {"timespan": timespan, "ts": n, "close": 50.0 + n})
    put_connector(settings, name, config(only_ours=True))
    topic = topic_of(name, settings)
    assert list(wait_for_changes(settings, topic, 3)["op"]) == ["r"] * 3

    delete_connector(settings, name)
    with sample_in_mysql.begin() as conn:     # while no connector runs
        conn.execute(INSERT, {"timespan": timespan, "ts": 10, "close": 60.0})
    put_connector(settings, name, config(only_ours=True))
    log = wait_for_changes(settings, topic, 4)
    assert sorted(log["op"]) == ["c", "r", "r", "r"]          # no second snapshot, the insert not lost
    assert log.loc[log["op"] == "c", "after"].iloc[0]["close"] == 60.0


def test_the_workbook_lists_connectors_and_reset_deletes_the_lessons(settings, isolated, capture):
    name, _, config = capture
    lesson = f"{isolated.prefix}lesson12-x"
    try:
        put_connector(settings, name, config(only_ours=True))
        connect_call(settings, "PUT", f"/connectors/{lesson}/config",
                     config(only_ours=True) | {"topic.prefix": lesson, "database.server.id": "21001"})
        listed = run_workbook("connect", "status").stdout
        assert f"{name} " in listed and f"{lesson} " in listed and "RUNNING" in listed
        assert delete_lesson_connectors(isolated) == [lesson]      # the lesson's, not the test's own
        assert name in connect_call(settings, "GET", "/connectors")
    finally:
        delete_connector(settings, lesson)


def test_a_refused_configuration_is_one_sentence_naming_what_is_missing(settings, connect):
    with pytest.raises(InputError) as refused:
        put_connector(settings, f"refused-{uuid.uuid4().hex[:6]}",
                      {"connector.class": "io.debezium.connector.mariadb.MariaDbConnector"})
    message = str(refused.value)
    assert "\n" not in message and "'topic.prefix' value is invalid" in message
    assert "MYSQL_PASSWORD" not in message and settings.mysql_password not in message


def test_the_password_is_in_no_connector_configuration_the_worker_stores(settings, isolated, capture):
    name, _, config = capture
    put_connector(settings, name, config(only_ours=True))
    stored = connect_call(settings, "GET", f"/connectors/{name}/config")
    assert stored["database.password"] == "${env:MYSQL_PASSWORD}"
    with closing(make_consumer(isolated.group("configs-reader"), settings)) as consumer:
        assert assign_from_start(consumer, [settings.group("connect") + "-configs"])   # the worker's own
        stored = [msg.value() or b"" for batch in batches_to_end(consumer) for msg in batch]
    assert any(name.encode() in value for value in stored)
    assert not any(settings.mysql_password.encode() in value for value in stored)
