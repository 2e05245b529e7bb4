"""Connection security without a broker: settings, client keys, Flink options, the class server's files."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers.classroom.classserver import ClassServer
from helpers.core.errors import ConfigError, InputError
from helpers.core.settings import PROJECT_ROOT
from helpers.infra.clients import client_conf
from helpers.infra.environment import load_settings
from helpers.infra.security import BrokerSecurity, subject_names
from helpers.pipeline.flinksql import SHADED, kafka_login, render_buy_sql
from helpers.pipeline.sqlfiles import WithOptions, render_sql

PASSWORD = "s3cr'et\"pw\\x"        # a quote of each kind and a backslash
SASL = {"WORKBOOK_STACK": "external", "KAFKA_BOOTSTRAP_SERVERS": "kafka.example.org:9092",
        "DATABASE_URL": "mysql+pymysql://u:p@db:3306/x", "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "KAFKA_SASL_MECHANISM": "scram-sha-512", "KAFKA_SASL_USERNAME": "alice",
        "KAFKA_SASL_PASSWORD": PASSWORD}


def settings(tmp_path: Path, **env):
    return load_settings(env, dotenv=tmp_path / "none.env")


def test_a_laptop_needs_no_security_and_clients_get_none(tmp_path):
    s = settings(tmp_path, WORKBOOK_STACK="local")
    assert s.kafka_security.protocol == "PLAINTEXT"
    assert set(client_conf(s)) == {"bootstrap.servers", "logger", "throttle_cb"}
    assert kafka_login(s.kafka_security) == {}


def test_sasl_ssl_settings_reach_every_librdkafka_client(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    s = settings(tmp_path, **SASL, KAFKA_SSL_CA_LOCATION=str(ca))
    conf = client_conf(s, {"group.id": "alice.g"})
    assert {k: v for k, v in conf.items() if k not in ("logger", "throttle_cb")} == {
        "bootstrap.servers": "kafka.example.org:9092", "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice", "sasl.password": PASSWORD,
        "ssl.ca.location": str(ca), "group.id": "alice.g"}
    assert PASSWORD not in repr(s) and PASSWORD not in repr(s.kafka_security)
    assert s.kafka_security.describe() == "SASL_SSL SCRAM-SHA-512 as alice"


def test_a_relative_ca_file_is_found_in_the_workbook_folder(tmp_path):
    s = settings(tmp_path, **SASL, KAFKA_SSL_CA_LOCATION="README.md")     # any file of the project
    assert s.kafka_security.ca_location == str(PROJECT_ROOT / "README.md")


@pytest.mark.parametrize(("change", "message"), [
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL must be one of PLAINTEXT, SSL, SASL_"),
    ({"KAFKA_SASL_MECHANISM": ""}, "needs KAFKA_SASL_MECHANISM, one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "needs KAFKA_SASL_MECHANISM"),
    ({"KAFKA_SASL_PASSWORD": ""}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
    ({"KAFKA_SSL_CA_LOCATION": "no/such/ca.pem"}, "KAFKA_SSL_CA_LOCATION names no file"),
])
def test_incomplete_security_settings_are_one_clear_sentence(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message) as refused:
        settings(tmp_path, **{**SASL, **change})
    assert PASSWORD not in str(refused.value) and "\n" not in str(refused.value)


def test_ksqldb_basic_auth_comes_from_the_environment(tmp_path):
    s = settings(tmp_path, **SASL, KSQLDB_URL="https://ksql.example.org", KSQLDB_USERNAME="key",
                 KSQLDB_PASSWORD="ksql-secret")
    assert s.ksqldb_auth == ("key", "ksql-secret") and "ksql-secret" not in repr(s)
    assert settings(tmp_path, WORKBOOK_STACK="local").ksqldb_auth is None


def test_flink_tables_log_in_with_the_shaded_login_module_and_quoted_values(tmp_path):
    s = settings(tmp_path, **SASL)
    options = kafka_login(s.kafka_security)
    jaas = options["properties.sasl.jaas.config"]
    assert jaas == (f"{SHADED}org.apache.kafka.common.security.scram.ScramLoginModule required "
                    'username="alice" password="s3cr\'et\\"pw\\\\x";')
    ddl, _ = render_buy_sql(s.bootstrap_servers, 0.05, "alice.alerts", "alice.variations", "alice.buy",
                            "alice.workbook-flink-buy", True, s.kafka_security)
    assert len(ddl) == 3
    for statement in ddl:       # each table logs in once; the quote is doubled inside the SQL literal
        assert statement.count("'properties.security.protocol' = 'SASL_SSL',") == 1
        assert statement.count("password=\"s3cr''et\\\"pw\\\\x\";',") == 1
    assert "WithOptions" in repr(options) and PASSWORD not in repr(options)


def test_a_truststore_is_named_only_when_a_ca_file_is_given(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert "properties.ssl.truststore.location" not in kafka_login(settings(tmp_path, **SASL).kafka_security)
    with_ca = kafka_login(settings(tmp_path, **SASL, KAFKA_SSL_CA_LOCATION=str(ca)).kafka_security)
    assert (with_ca["properties.ssl.truststore.type"], with_ca["properties.ssl.truststore.location"]) == \
        ("PEM", str(ca))


@pytest.mark.parametrize("options", [WithOptions({"properties.x": "a\nb"}), WithOptions({"Bad Key": "v"}),
                                     WithOptions({"properties.x": 3})])
def test_with_options_refuse_line_breaks_odd_keys_and_non_text(options):
    with pytest.raises(InputError, match="SQL parameter opts"):
        render_sql("WITH (${opts} 'a' = 'b')", opts=options)


def test_the_class_broker_takes_only_logins_and_checks_acls(tmp_path):
    security = BrokerSecurity(tmp_path, "admin-pw", "controller-pw", users=(("alice", "alice-pw"),))
    lines = security.listener_lines(9094, 9095) + security.properties()
    assert "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL" in lines
    assert "listeners=SASL_SSL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095" in lines
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in lines
    assert "super.users=User:admin" in lines and "allow.everyone.if.no.acl.found=false" in lines
    assert not [line for line in lines if "PLAINTEXT://" in line]      # no port without a password
    assert security.format_args() == [
        "--add-scram", "SCRAM-SHA-256=[name=admin,password=admin-pw]",
        "--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-pw]",
        "--add-scram", "SCRAM-SHA-256=[name=alice,password=alice-pw]",
        "--add-scram", "SCRAM-SHA-512=[name=alice,password=alice-pw]"]
    assert security.scrub("alice-pw and controller-pw") == "*** and ***"
    assert "alice-pw" not in repr(security)


def test_certificate_names_and_host_checks(tmp_path):
    assert subject_names(["127.0.0.1", "localhost", "kafka.dept.example.edu", "127.0.0.1"]) == \
        "IP:127.0.0.1,DNS:localhost,DNS:kafka.dept.example.edu"
    s = settings(tmp_path, WORKBOOK_STACK="local", WORKBOOK_STATE_DIR=str(tmp_path))
    assert ClassServer.for_settings(s).bind == "127.0.0.1"
    assert ClassServer.for_settings(s, "kafka.dept.example.edu").bind == "0.0.0.0"
    with pytest.raises(ConfigError, match="--host must be a host name"):
        ClassServer.for_settings(s, "evil host;")
