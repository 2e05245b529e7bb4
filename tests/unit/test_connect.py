"""Kafka Connect and Debezium without a worker (notebook 12): the worker's properties, the connector's
configuration on each stack, Connect's refusals as one sentence, the on-demand status."""
from __future__ import annotations

import pytest

from helpers.core.errors import ServiceUnavailable
from helpers.core.settings import settings_from
from helpers.infra.connect import worker_properties
from helpers.infra.processes import free_port
from helpers.infra.status import ServiceStatus, status_connect
from helpers.pipeline.cdc import cdc_topic, connect_call, debezium_config, one_line


def settings_of(**values: str):
    return settings_from({"WORKBOOK_STACK": "local", "MYSQL_PASSWORD": "s3cret-pw", **values}, lambda: False)


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_the_worker_keeps_its_state_in_kafka_and_never_holds_the_password(tmp_path):
    settings = settings_of(KAFKA_PORT="19092", CONNECT_PORT="18083", WORKBOOK_STUDENT="alice")
    props = properties(worker_properties(settings, tmp_path / "plugins"))
    assert props["bootstrap.servers"] == "127.0.0.1:19092"
    assert props["listeners"] == "http://127.0.0.1:18083"
    assert props["group.id"] == "alice.workbook-connect"
    assert {props[f"{k}.storage.topic"] for k in ("config", "offset", "status")} == {
        "alice.workbook-connect-configs", "alice.workbook-connect-offsets", "alice.workbook-connect-status"}
    assert props["plugin.path"] == str(tmp_path / "plugins")
    assert "s3cret-pw" not in worker_properties(settings, tmp_path)


@pytest.mark.parametrize("brokers, replicas", [("1", "1"), ("3", "3")])
def test_state_topics_and_change_topics_have_one_replica_per_broker(tmp_path, brokers, replicas):
    settings = settings_of(WORKBOOK_BROKERS=brokers)
    assert properties(worker_properties(settings, tmp_path))["offset.storage.replication.factor"] == replicas
    assert debezium_config(settings)["topic.creation.default.replication.factor"] == replicas


def test_the_connector_names_the_password_and_reaches_mysql_from_where_the_worker_runs():
    local = debezium_config(settings_of(MYSQL_PORT="13306"), 5555)
    assert local["connector.class"].endswith("MariaDbConnector")
    assert (local["database.hostname"], local["database.port"]) == ("127.0.0.1", "13306")
    assert local["database.password"] == "${env:MYSQL_PASSWORD}"
    assert local["database.server.id"] == "5555"
    docker = debezium_config(settings_from({"WORKBOOK_STACK": "docker", "MYSQL_PASSWORD": "x"}, lambda: True))
    assert docker["connector.class"].endswith("MySqlConnector")
    assert (docker["database.hostname"], docker["database.port"]) == ("mysql", "3306")
    assert docker["schema.history.internal.kafka.bootstrap.servers"] == "kafka:29092"
    assert all("s3cret-pw" not in value for value in local.values())


def test_a_students_change_topics_carry_her_prefix():
    alice = settings_of(WORKBOOK_STUDENT="alice")
    assert debezium_config(alice)["topic.prefix"] == "alice.cdc"
    assert cdc_topic(alice) == f"alice.cdc.{alice.mysql_database}.candle_prices"
    assert debezium_config(alice, **{"snapshot.mode": "no_data"})["snapshot.mode"] == "no_data"


def test_connects_list_of_errors_becomes_one_line():
    message = ("Connector configuration is invalid and contains the following 2 error(s):\n"
               "The 'topic.prefix' value is invalid: A value is required\n"
               "The 'database.user' value is invalid: A value is required\n"
               "You can also find the above list of errors at the endpoint `/connector-plugins/x/…`")
    line = one_line(message)
    assert "\n" not in line and "endpoint" not in line
    assert line.endswith("'topic.prefix' value is invalid: A value is required; "
                         "The 'database.user' value is invalid: A value is required")
    assert len(one_line("x" * 1000)) == 400 and one_line("") == "no reason given"


def test_a_worker_that_does_not_answer_is_one_sentence_and_an_off_status_is_no_fault():
    settings = settings_of(CONNECT_PORT=str(free_port()))
    sentence = (r"^Kafka Connect does not answer at http://127\.0\.0\.1:\d+: "
                r"start it with `workbook connect up`\.$")
    with pytest.raises(ServiceUnavailable, match=sentence):
        connect_call(settings, "GET", "/connectors")
    status = status_connect(settings)
    assert (status.up, status.on_demand, status.fine) == (False, True, True)
    assert status.as_dict()["on_demand"] is True
    assert not ServiceStatus("mysql", "x", False).fine
    assert "on_demand" not in ServiceStatus("kafka", "x", True).as_dict()
