"""The SQL Gateway client's pure parts: the result table a query is written to, a session's settings,
the gateway jar's version, and a gateway that does not answer (the REST calls themselves run against a
real gateway in tests/integration/test_sql_cells.py and test_class_server.py)."""
import xml.etree.ElementTree as ET
from importlib.metadata import version

import pytest

from helpers.core.errors import ServiceUnavailable
from helpers.core.settings import PROJECT_ROOT
from helpers.infra.processes import free_port
from helpers.pipeline.flinkgateway import GatewaySession, result_options, session_properties, sink_table
from helpers.pipeline.flinksql import BUFFER_TIMEOUT, IDLE_TIMEOUT, TABLE_CONFIG
from helpers.pipeline.sqlfiles import WithOptions


def test_a_querys_result_table_quotes_its_columns_and_its_options():
    login = WithOptions({"properties.sasl.jaas.config": "x password=\"it's\";"})
    ddl = sink_table("result_1", [("ticker", "STRING"), ("odd`name", "TIMESTAMP(3)")],
                     result_options("alice.sql.result.1", "127.0.0.1:9092", login))
    assert ddl.startswith("CREATE TEMPORARY TABLE `result_1` (\n"
                          "  `ticker` STRING,\n  `odd``name` TIMESTAMP(3)\n)")
    assert "'topic' = 'alice.sql.result.1'," in ddl and "'sink.delivery-guarantee' = 'at-least-once'," in ddl
    assert "'properties.sasl.jaas.config' = 'x password=\"it''s\";'," in ddl     # a quote doubled
    assert ddl.endswith("'format' = 'debezium-json'\n)")


def test_a_gateway_session_gets_the_settings_a_local_flink_gets():
    properties = session_properties("alice: sql (pid 1)", TABLE_CONFIG)
    assert properties == {"parallelism.default": "1", "table.local-time-zone": "UTC",
                          "table.exec.source.idle-timeout": IDLE_TIMEOUT,
                          "execution.buffer-timeout.interval": BUFFER_TIMEOUT,
                          "pipeline.name": "alice: sql (pid 1)"}


def test_the_gateway_jar_is_the_version_of_the_installed_apache_flink():
    pom = ET.parse(PROJECT_ROOT / "stack" / "pom.xml").getroot()
    assert pom.find("{*}properties/{*}flink.version").text == version("apache-flink")


def test_a_gateway_that_does_not_answer_is_one_sentence_naming_it():
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ServiceUnavailable, match=rf"^The class's Flink does not answer at {address}: .*\.$"):
        GatewaySession(address, session_properties("alice: sql (pid 1)", TABLE_CONFIG))
