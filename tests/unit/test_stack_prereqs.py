"""Local-stack preparation without services: prerequisites, ports, pid files, broker configuration."""
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.config import load_settings, pom_property
from helpers.errors import ServiceUnavailable, StackError
from helpers.stack import kafka as local_kafka
from helpers.stack import prereqs, processes, status


def test_missing_program_as_non_root_names_the_exact_command(monkeypatch):
    monkeypatch.setattr(prereqs, "find_program", lambda name: None if name == "mariadbd" else "/bin/" + name)
    monkeypatch.setattr(prereqs.shutil, "which", lambda name, **kw: "/usr/bin/apt-get")
    monkeypatch.setattr(prereqs.os, "geteuid", lambda: 1000)
    with pytest.raises(StackError,
                       match=r"mariadbd not found: run `sudo apt-get update && "
                             r"sudo apt-get install -y mariadb-server`"):
        prereqs.ensure_programs(("java", "mariadbd"))


def test_missing_java_and_maven_without_apt(monkeypatch):
    monkeypatch.setattr(prereqs, "find_program", lambda name: None)
    monkeypatch.setattr(prereqs.shutil, "which", lambda name, **kw: None)
    with pytest.raises(StackError,
                       match=r"java, mvn not found and apt-get is missing: .*openjdk-17-jre-headless maven"):
        prereqs.ensure_programs(("java", "mvn"))


def test_present_programs_need_nothing(monkeypatch):
    calls = []
    monkeypatch.setattr(prereqs, "find_program", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(prereqs.subprocess, "run", lambda *a, **k: calls.append(a))
    prereqs.ensure_programs(("java", "mvn", "mariadbd"))
    assert calls == []


def test_taken_port_names_port_and_variable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not processes.port_is_free(port) and processes.port_answers(port)
        with pytest.raises(StackError, match=rf"Port {port} for MariaDB .* set MYSQL_PORT"):
            processes.check_port_free(port, "MariaDB", "MYSQL_PORT")


def test_pid_file_finds_its_process_and_never_a_reused_pid(tmp_path):
    pid_file = tmp_path / "sleep.pid"
    proc = processes.start_detached([sys.executable, "-c", "import time; time.sleep(60)"],
                                    tmp_path / "sleep.log", pid_file)
    assert processes.running_process(pid_file).pid == proc.pid
    record = json.loads(pid_file.read_text())
    pid_file.write_text(json.dumps({**record, "started": record["started"] - 100}))   # a reused pid
    assert processes.running_process(pid_file) is None
    pid_file.write_text(json.dumps(record))
    assert processes.stop_process(pid_file, timeout=10) == proc.pid
    assert processes.running_process(pid_file) is None and not pid_file.exists()
    assert processes.stop_process(pid_file) is None          # stopping twice is fine


def test_kafka_properties_single_node_kraft(tmp_path):
    settings = load_settings({"WORKBOOK_STACK": "local", "KAFKA_PORT": "19092",
                              "KAFKA_CONTROLLER_PORT": "19093", "WORKBOOK_STATE_DIR": str(tmp_path)},
                             dotenv=tmp_path / "none")
    kafka = local_kafka.LocalKafka.for_settings(settings)
    props = dict(line.split("=", 1) for line in kafka.properties(kafka.nodes[0]).splitlines() if line)
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "node-1" / "data")
    assert kafka.bootstrap_servers == "127.0.0.1:19092"


def test_three_node_cluster_has_three_voters_and_replicates_internal_topics(tmp_path):
    settings = load_settings({"WORKBOOK_STACK": "local"}, dotenv=tmp_path / "none")
    ports = [(29092, 29093), (29094, 29095), (29096, 29097)]
    kafka = local_kafka.LocalKafka.cluster(settings, tmp_path / "c", ports)
    props = [dict(line.split("=", 1) for line in kafka.properties(n).splitlines() if line)
             for n in kafka.nodes]
    assert {p["controller.quorum.voters"] for p in props} == \
        {"1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097"}
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert {p["offsets.topic.replication.factor"] for p in props} == {"3"}
    assert {p["transaction.state.log.min.isr"] for p in props} == {"2"}
    assert len({p["log.dirs"] for p in props}) == 3
    assert kafka.bootstrap_servers == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"


def test_status_down_says_how_to_start(monkeypatch, tmp_path):
    settings = load_settings({"WORKBOOK_STACK": "local", "KAFKA_PORT": "1", "MYSQL_PORT": "1",
                              "MYSQL_PASSWORD": "x"}, dotenv=tmp_path / "none")
    monkeypatch.setattr(status, "kafka_cluster_id", lambda s, timeout=3.0: None)
    kafka, mysql = status.status_kafka(settings), status.status_mysql(settings)
    assert not kafka.up and kafka.hint == ("Kafka does not answer at 127.0.0.1:1: start the services "
                                           "with `make up` (or `workbook up`).")
    assert not mysql.up and mysql.hint.startswith("MySQL does not answer at 127.0.0.1:1: start the services")
    assert "x@" not in mysql.url and "***" in mysql.url
    with pytest.raises(ServiceUnavailable, match="^Kafka does not answer at 127.0.0.1:1") as failure:
        status.require_services(settings, "kafka", "mysql")
    assert failure.value.service == "kafka"


def test_pom_is_the_single_source_of_versions():
    assert pom_property("kafka.version").startswith("4.")
    jar = load_settings({"WORKBOOK_STACK": "local"}, dotenv=Path("/nonexistent")).flink_connector_jar
    assert jar.name == f"flink-sql-connector-kafka-{pom_property('flink.kafka.connector.version')}.jar"


def test_light_commands_do_not_import_the_notebook_libraries():
    code = ("import sys, helpers.cli, helpers.stack; from helpers.config import load_settings; "
            "helpers.stack.stack_status(load_settings({'WORKBOOK_STACK': 'local', 'KAFKA_PORT': '1', "
            "'MYSQL_PORT': '1', 'MYSQL_PASSWORD': 'x'})); "
            "print(sorted(m for m in ('matplotlib', 'ipywidgets', 'IPython', 'pyflink', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
