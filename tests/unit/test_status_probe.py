"""The Kafka probe on a busy server: a broker whose port takes connections gets a second, longer try
before anyone is told it does not answer; a closed port or a refused login is said at once; a class
gateway that does not answer says whom to ask."""
import pytest

from helpers.infra import status
from helpers.infra.environment import load_settings


@pytest.fixture
def settings(tmp_path):
    return load_settings({"WORKBOOK_STACK": "external", "KAFKA_BOOTSTRAP_SERVERS": "10.0.0.7:9092",
                          "DATABASE_URL": "mysql+pymysql://ann:x@10.0.0.7/workbook_ann"},
                         tmp_path / "none.env")


def probes(monkeypatch, answers: list, port_open: bool) -> list[float]:
    """Make probe_kafka_once answer `answers` in turn; return the timeouts it was given."""
    given: list[float] = []

    def once(settings, timeout):
        given.append(timeout)
        return answers[len(given) - 1]

    monkeypatch.setattr(status, "probe_kafka_once", once)
    monkeypatch.setattr(status, "port_answers",
                        lambda port, host: (host, port) == ("10.0.0.7", 9092) and port_open)
    return given


def test_a_slow_broker_whose_port_is_open_gets_a_longer_second_try(monkeypatch, settings):
    slow = (None, "Kafka does not answer at 10.0.0.7:9092: …")
    given = probes(monkeypatch, [slow, ("cluster-1", "")], True)
    assert status.probe_kafka(settings) == ("cluster-1", "")
    assert given == [status.PROBE_TIMEOUT, status.BUSY_PROBE_TIMEOUT]


def test_a_closed_port_is_called_down_after_one_short_try(monkeypatch, settings):
    given = probes(monkeypatch, [(None, "Kafka does not answer at 10.0.0.7:9092: …")], False)
    assert status.probe_kafka(settings)[0] is None
    assert given == [status.PROBE_TIMEOUT]


def test_a_refused_login_is_said_at_once(monkeypatch, settings):
    refused = (None, "Kafka at 10.0.0.7:9092 refuses the login of 'ann' (SCRAM-SHA-512): …")
    given = probes(monkeypatch, [refused], True)
    assert "refuses the login" in status.probe_kafka(settings)[1]
    assert given == [status.PROBE_TIMEOUT]


def test_a_class_gateway_that_does_not_answer_is_down_with_whom_to_ask(settings):
    import dataclasses

    from helpers.infra.processes import free_port
    from helpers.infra.status import status_stream_sql

    port = free_port()
    hub = dataclasses.replace(settings, flink_cluster=f"127.0.0.1:{free_port()}",
                              flink_gateway=f"127.0.0.1:{port}")
    found = status_stream_sql(hub)
    assert not found.up and found.address == f"the class's Flink SQL Gateway 127.0.0.1:{port}"
    assert found.hint == (f"The class's Flink SQL Gateway does not answer at 127.0.0.1:{port}: "
                          "ask your instructor (`workbook class up --hub` starts it).")
