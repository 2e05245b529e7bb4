"""Local-stack preparation without services: prerequisites, ports, broker configuration."""
import socket
from pathlib import Path

import pytest

from helpers import stack
from helpers.config import load_settings


def test_missing_program_as_non_root_names_the_exact_command(monkeypatch):
    monkeypatch.setattr(stack, "find_program", lambda name: None if name == "mariadbd" else "/bin/" + name)
    monkeypatch.setattr(stack.shutil, "which", lambda name, **kw: "/usr/bin/apt-get")
    monkeypatch.setattr(stack.os, "geteuid", lambda: 1000)
    with pytest.raises(stack.StackError,
                       match=r"mariadbd not found: run `sudo apt-get update && sudo apt-get install -y mariadb-server`"):
        stack.ensure_programs(("java", "mariadbd"))


def test_missing_java_and_maven_without_apt(monkeypatch):
    monkeypatch.setattr(stack, "find_program", lambda name: None)
    monkeypatch.setattr(stack.shutil, "which", lambda name, **kw: None)
    with pytest.raises(stack.StackError, match=r"java, mvn not found and apt-get is missing: .*openjdk-17-jre-headless maven"):
        stack.ensure_programs(("java", "mvn"))


def test_present_programs_need_nothing(monkeypatch):
    calls = []
    monkeypatch.setattr(stack, "find_program", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(stack.subprocess, "run", lambda *a, **k: calls.append(a))
    stack.ensure_programs(("java", "mvn", "mariadbd"))
    assert calls == []


def test_taken_port_names_port_and_variable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(stack.StackError, match=rf"Port {port} for MariaDB .* set MYSQL_PORT"):
            stack.check_port_free(port, "MariaDB", "MYSQL_PORT")


def test_kafka_properties_single_node_kraft(tmp_path):
    settings = load_settings({"WORKBOOK_STACK": "local", "KAFKA_PORT": "19092",
                              "KAFKA_CONTROLLER_PORT": "19093"}, dotenv=tmp_path / "none")
    props = dict(line.split("=", 1) for line in
                 stack.kafka_properties(settings, stack.LocalPaths(tmp_path)).splitlines() if line)
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")


def test_status_down_says_how_to_start(monkeypatch, tmp_path):
    settings = load_settings({"WORKBOOK_STACK": "local", "KAFKA_PORT": "1", "MYSQL_PORT": "1",
                              "MYSQL_PASSWORD": "x"}, dotenv=tmp_path / "none")
    monkeypatch.setattr(stack, "kafka_cluster_id", lambda s, timeout=3.0: None)
    kafka, mysql = stack.status_kafka(settings), stack.status_mysql(settings)
    assert not kafka.up and "run `make up`" in kafka.hint
    assert not mysql.up and "run `make up`" in mysql.hint
    assert "x@" not in mysql.url and "***" in mysql.url


def test_pom_is_the_single_source_of_versions():
    assert stack.pom_property("kafka.version").startswith("4.")
    jar = stack.flink_connector_jar(load_settings({"WORKBOOK_STACK": "local"}, dotenv=Path("/nonexistent")))
    assert jar.name == f"flink-sql-connector-kafka-{stack.pom_property('flink.kafka.connector.version')}.jar"
