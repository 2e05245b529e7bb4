"""The Workbook: the settings read once, each long-lived client made on first use, all closed together."""
from __future__ import annotations

import pytest

from helpers.infra.environment import load_settings
from helpers.infra.workbook import Workbook


class Resource:
    """Something with a close(), like an engine or a session."""

    def __init__(self, log: list[str], name: str, alive: bool = True):
        self.log, self.name, self.alive = log, name, alive

    def close(self) -> None:
        self.log.append(self.name)


@pytest.fixture
def wb(tmp_path):
    return Workbook(load_settings({"WORKBOOK_STACK": "local", "MYSQL_PASSWORD": "pw"}, dotenv=tmp_path / "x"))


def test_a_resource_is_made_once_and_closed_with_the_workbook_last_made_first(wb):
    log, made = [], []
    first = wb.resource("a", lambda: made.append("a") or Resource(log, "a"))
    assert wb.resource("a", lambda: made.append("again") or Resource(log, "again")) is first
    wb.resource("b", lambda: Resource(log, "b"))
    wb.close()
    assert made == ["a"] and log == ["b", "a"]


def test_a_dead_resource_is_replaced_and_the_dead_one_closed(wb):
    log = []
    dead = wb.resource("flink", lambda: Resource(log, "dead"))
    dead.alive = False
    fresh = wb.resource("flink", lambda: Resource(log, "fresh"))
    assert fresh is not dead and log == ["dead"]


def test_a_workbook_within_shares_the_clients_and_leaves_closing_to_its_parent(wb):
    log = []
    inner = wb.within("minute")
    assert inner.settings.namespace == "minute" and wb.settings.namespace == ""
    shared = inner.resource("engine", lambda: Resource(log, "engine"))
    assert wb.resource("engine", lambda: Resource(log, "other")) is shared
    inner.close()
    assert log == []
    wb.close()
    assert log == ["engine"]


def test_the_engine_is_disposed_and_the_admin_made_lazily(wb):
    with wb:
        engine = wb.engine                  # no connection yet: SQLAlchemy connects on first use
        assert wb.engine is engine and "engine" in repr(wb)
    assert "nothing yet" in repr(wb)


def test_a_failure_to_close_one_resource_does_not_keep_the_others_open(wb):
    log = []

    class Broken(Resource):
        def close(self) -> None:
            raise OSError("already gone")

    wb.resource("a", lambda: Resource(log, "a"))
    wb.resource("b", lambda: Broken(log, "b"))
    wb.close()
    assert log == ["a"]


def test_from_env_reads_the_settings_once(tmp_path, monkeypatch):
    reads = []
    monkeypatch.setattr("helpers.infra.workbook.load_settings",
                        lambda env=None, dotenv=None: reads.append(1) or load_settings(
                            {"WORKBOOK_STACK": "local"}, dotenv=tmp_path / "x"))
    wb = Workbook.from_env()
    wb.settings.topics, wb.within("x").settings.topics
    assert reads == [1]


def test_a_closed_workbook_refuses_to_make_clients_again(wb):
    inner = wb.within("minute")
    wb.close()
    with pytest.raises(Exception, match="This Workbook is closed: make a new one"):
        inner.resource("engine", lambda: Resource([], "late"))
