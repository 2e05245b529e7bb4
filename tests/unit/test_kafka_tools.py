"""Kafka's command-line tools through `workbook`: the command lines and files, without a broker."""
from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML

from helpers import cli
from helpers.core.errors import InputError, StackError
from helpers.infra import kafka_tools
from helpers.infra.environment import load_settings
from helpers.infra.kafka_tools import (
    KAFKA_TOOLS,
    client_properties,
    kafka_tool_command,
    properties_value,
    run_kafka_tool,
    tool_files,
    uses_workbook_kafka,
)

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cr'et\"pw\\x"        # a quote of each kind and a backslash
FOLDER = Path("/tmp/tool-files")
DESCRIBE = ["--describe", "--topic", "pricelist"]


def settings(tmp_path: Path, **env):
    return load_settings({"WORKBOOK_STATE_DIR": str(tmp_path / "state"), **env}, dotenv=tmp_path / "none.env")


def secured(tmp_path: Path, mechanism: str = "SCRAM-SHA-512"):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    return settings(tmp_path, WORKBOOK_STACK="external", KAFKA_BOOTSTRAP_SERVERS="class.example.org:9092",
                    DATABASE_URL="mysql+pymysql://u:p@db:3306/x", KAFKA_SECURITY_PROTOCOL="SASL_SSL",
                    KAFKA_SASL_MECHANISM=mechanism, KAFKA_SASL_USERNAME="alice",
                    KAFKA_SASL_PASSWORD=PASSWORD, KAFKA_SSL_CA_LOCATION=str(ca))


def test_the_local_stack_runs_the_tools_class_from_the_downloaded_jars(tmp_path):
    s = settings(tmp_path, WORKBOOK_STACK="local", KAFKA_PORT="19092")
    assert kafka_tool_command(s, "kafka-topics", DESCRIBE, FOLDER) == [
        "java", "-Xmx256m", "-cp", f"{tmp_path}/state/libs/kafka/*",
        "-Dlog4j2.configurationFile=/tmp/tool-files/log4j2.properties",
        "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", "127.0.0.1:19092", *DESCRIBE]
    assert set(tool_files(s, "kafka-topics", DESCRIBE)) == {"log4j2.properties"}     # no login to give


def test_each_tool_has_its_own_class(tmp_path):
    s = settings(tmp_path, WORKBOOK_STACK="local")
    classes = {tool: kafka_tool_command(s, tool, [], FOLDER)[5] for tool in KAFKA_TOOLS}
    assert classes["kafka-consumer-groups"] == "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
    assert classes["kafka-console-consumer"] == "org.apache.kafka.tools.consumer.ConsoleConsumer"
    assert classes["kafka-share-groups"] == "org.apache.kafka.tools.consumer.group.ShareGroupCommand"
    assert len(set(classes.values())) == len(KAFKA_TOOLS) >= 5


def test_the_tools_log_warnings_to_stderr_only(tmp_path):
    log4j = tool_files(settings(tmp_path, WORKBOOK_STACK="local"), "kafka-topics", [])["log4j2.properties"]
    lines = dict(line.split("=", 1) for line in log4j.splitlines())
    assert lines["rootLogger.level"] == "WARN" and lines["appender.stderr.target"] == "SYSTEM_ERR"
    assert lines["status"] == "error"                    # no log4j status lines either
    assert not [k for k in lines if k.startswith("appender.") and k.endswith(".fileName")]


@pytest.mark.parametrize("given", [["--bootstrap-server", "other:9092"], ["--bootstrap-server=other:9092"],
                                   ["--bootstrap-controller", "other:9093"], ["--bootstrap", "other:9092"]])
@pytest.mark.parametrize("stack", ["local", "docker"])
def test_a_bootstrap_the_user_gives_is_the_only_one(tmp_path, given, stack):
    s = settings(tmp_path, WORKBOOK_STACK=stack)
    argv = kafka_tool_command(s, "kafka-configs", ["--describe", *given], FOLDER)
    assert [a for a in argv if a.startswith("--bootstrap")] == [given[0]]
    assert argv[-len(given) - 1:] == ["--describe", *given]          # passed on unchanged
    assert not uses_workbook_kafka(given)


def test_help_and_version_need_no_broker():
    assert uses_workbook_kafka(DESCRIBE)
    assert not uses_workbook_kafka(["--help"]) and not uses_workbook_kafka(["--version"])
    assert not uses_workbook_kafka(["-h"])


def test_a_secured_cluster_gets_a_login_file_and_no_password_on_the_command_line(tmp_path):
    s = secured(tmp_path)
    argv = kafka_tool_command(s, "kafka-console-consumer", ["--topic", "alice.pricelist"], FOLDER)
    assert not [a for a in argv if "s3cr" in a or "password" in a]
    assert argv[argv.index("--command-config") + 1] == "/tmp/tool-files/client.properties"
    assert argv[argv.index("--bootstrap-server") + 1] == "class.example.org:9092"
    login = tool_files(s, "kafka-console-consumer", [])["client.properties"]
    assert login.splitlines() == [
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-512",
        # the JAAS quoting (\" and \\), then the properties file's (every \ doubled)
        'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
        'username="alice" password="s3cr\'et\\\\"pw\\\\\\\\x";',
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={tmp_path}/ca.pem",
    ]


def test_plain_logins_use_the_plain_module(tmp_path):
    login = client_properties(secured(tmp_path, "PLAIN").kafka_security)
    assert "org.apache.kafka.common.security.plain.PlainLoginModule required" in login
    assert "Scram" not in login


def test_a_config_file_the_user_gives_replaces_the_login_file(tmp_path):
    s = secured(tmp_path)
    args = ["--list", "--command-config", "mine.properties"]
    assert "client.properties" not in tool_files(s, "kafka-topics", args)
    assert kafka_tool_command(s, "kafka-topics", args, FOLDER).count("--command-config") == 1


def test_properties_values_read_back_as_written():
    assert properties_value("a\\b") == "a\\\\b"
    assert properties_value(" lead") == "\\ lead"                   # a leading blank is kept
    assert properties_value("é\n😀") == "\\u00e9\\u000a\\ud83d\\ude00"     # ISO-8859-1 file: escaped
    assert client_properties(load_settings({"WORKBOOK_STACK": "local"}, Path("/none")).kafka_security) == ""


def test_the_docker_stack_runs_the_tool_in_the_brokers_container(tmp_path):
    s = settings(tmp_path, WORKBOOK_STACK="docker")
    assert kafka_tool_command(s, "kafka-consumer-groups", ["--list"], FOLDER) == [
        "docker", "compose", "exec", "-T", "kafka", "/opt/kafka/bin/kafka-consumer-groups.sh",
        "--bootstrap-server", "kafka:29092", "--list"]
    assert tool_files(s, "kafka-consumer-groups", ["--list"]) == {}
    cluster = settings(tmp_path, WORKBOOK_STACK="docker", WORKBOOK_BROKERS="3")
    argv = kafka_tool_command(cluster, "kafka-topics", ["--list"], FOLDER)
    assert argv[4] == "kafka-1" and argv[argv.index("--bootstrap-server") + 1] == \
        "kafka-1:29092,kafka-2:29092,kafka-3:29092"


def test_the_docker_address_is_the_brokers_in_network_listener():
    kafka = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())["services"]["kafka"]
    advertised = kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert f"INTERNAL://{kafka_tools.DOCKER_BOOTSTRAP}" in advertised
    assert kafka["hostname"] == kafka_tools.DOCKER_SERVICE


@pytest.mark.parametrize("call", [lambda s: kafka_tool_command(s, "kafka-producer", [], FOLDER),
                                  lambda s: tool_files(s, "kafka-producer", []),
                                  lambda s: run_kafka_tool(s, "kafka-producer", [])])
def test_an_unknown_tool_is_refused_with_the_list(tmp_path, call):
    with pytest.raises(InputError, match="kafka-topics, kafka-consumer-groups, .*'kafka-producer'"):
        call(settings(tmp_path, WORKBOOK_STACK="local"))


def test_missing_jars_say_run_workbook_up(tmp_path, monkeypatch):
    monkeypatch.setattr(kafka_tools, "wait_for", lambda *a, **k: pytest.fail("nothing may run"))
    with pytest.raises(StackError, match=r"run `workbook up` first\.$"):
        run_kafka_tool(settings(tmp_path, WORKBOOK_STACK="local"), "kafka-topics", ["--list"])


def test_the_files_live_while_the_tool_runs_and_go_with_it(tmp_path, monkeypatch):
    s = secured(tmp_path)
    jars = s.state_dir / "libs" / "kafka"
    jars.mkdir(parents=True)
    (jars / "kafka-tools-4.4.0.jar").touch()
    seen = {}

    def tool(argv, **_):
        path = Path(argv[argv.index("--command-config") + 1])
        seen.update(path=path, mode=path.stat().st_mode & 0o777, text=path.read_text())
        return 3

    monkeypatch.setattr(kafka_tools, "wait_for", tool)
    assert run_kafka_tool(s, "kafka-topics", ["--list"]) == 3           # the tool's exit status
    assert seen["mode"] == 0o600 and "ScramLoginModule" in seen["text"]
    assert not seen["path"].exists() and not seen["path"].parent.exists()


def test_the_command_hands_every_argument_to_the_tool(monkeypatch):
    calls = []
    monkeypatch.setattr(kafka_tools, "run_kafka_tool", lambda s, tool, args: calls.append((tool, args)) or 7)
    args = ["--describe", "--topic", "-x", "--", "--bootstrap-server=h:1", "-h"]
    assert cli.main(["kafka-topics", *args]) == 7
    assert cli.main(["kafka-console-consumer", "--help"]) == 7
    assert calls == [("kafka-topics", args), ("kafka-console-consumer", ["--help"])]


def test_other_commands_still_refuse_unknown_arguments():
    with pytest.raises(SystemExit) as exit_:
        cli.main(["topics", "--bogus"])
    assert exit_.value.code == 2
