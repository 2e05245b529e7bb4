"""Local-stack preparation without services: prerequisites, ports, pid files, broker configuration."""
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.core.errors import ServiceUnavailable, StackError
from helpers.core.settings import pom_property
from helpers.infra import kafka as local_kafka
from helpers.infra import prereqs, processes, status
from helpers.infra.environment import load_settings


def test_missing_program_as_non_root_names_the_exact_command(monkeypatch):
    monkeypatch.setattr(prereqs, "find_program", lambda name: None if name == "mariadbd" else "/bin/" + name)
    monkeypatch.setattr(prereqs.shutil, "which", lambda name, **kw: "/usr/bin/apt-get")
    monkeypatch.setattr(prereqs.os, "geteuid", lambda: 1000)
    with pytest.raises(StackError,
                       match=r"mariadbd not found: run `sudo apt-get update && "
                             r"sudo apt-get install -y mariadb-server`"):
        prereqs.ensure_programs(("java", "mariadbd"))


def test_a_notebook_kernel_never_runs_apt_and_says_what_to_run(monkeypatch):
    calls = []
    monkeypatch.setattr(prereqs, "find_program", lambda name: None if name == "java" else "/bin/" + name)
    monkeypatch.setattr(prereqs.shutil, "which", lambda name, **kw: "/usr/bin/apt-get")
    monkeypatch.setattr(prereqs.os, "geteuid", lambda: 0)                # root: apt would be allowed
    monkeypatch.setattr(prereqs, "run_command", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(prereqs, "running_in_kernel", lambda: True)
    with pytest.raises(StackError, match=r"^java not found: run `make up` in a terminal, which installs "
                                         r"openjdk-17-jre-headless \(a notebook never installs"):
        prereqs.ensure_programs(("java", "mvn"))
    assert calls == []


def test_outside_a_kernel_running_in_kernel_is_false():
    assert prereqs.running_in_kernel() is False        # pytest: IPython may be imported, no kernel runs


def test_missing_java_and_maven_without_apt(monkeypatch):
    monkeypatch.setattr(prereqs, "find_program", lambda name: None)
    monkeypatch.setattr(prereqs.shutil, "which", lambda name, **kw: None)
    with pytest.raises(StackError,
                       match=r"java, mvn not found and apt-get is missing: .*openjdk-17-jre-headless maven"):
        prereqs.ensure_programs(("java", "mvn"))


def test_present_programs_need_nothing(monkeypatch):
    calls = []
    monkeypatch.setattr(prereqs, "find_program", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(prereqs, "run_command", lambda *a, **k: calls.append(a))
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


def properties_of(kafka, node) -> dict:
    """One node's server.properties as a dict."""
    return dict(line.split("=", 1) for line in kafka.properties(node).splitlines() if line)


def test_workbook_cluster_of_three_keeps_its_own_state_folder(tmp_path):
    settings = load_settings({"WORKBOOK_STACK": "local", "WORKBOOK_BROKERS": "3", "KAFKA_PORT": "19092",
                              "KAFKA_CONTROLLER_PORT": "19093", "WORKBOOK_STATE_DIR": str(tmp_path)},
                             dotenv=tmp_path / "none")
    kafka = local_kafka.LocalKafka.for_settings(settings)
    assert [n.root for n in kafka.nodes] == [tmp_path / "kafka-cluster" / f"node-{i}" for i in (1, 2, 3)]
    assert kafka.bootstrap_servers == settings.bootstrap_servers
    assert {properties_of(kafka, n)["controller.quorum.voters"] for n in kafka.nodes} == \
        {"1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"}
    one = local_kafka.LocalKafka.for_settings(load_settings(
        {"WORKBOOK_STACK": "local", "WORKBOOK_STATE_DIR": str(tmp_path)}, dotenv=tmp_path / "none"))
    assert one.nodes[0].root == tmp_path / "kafka" / "node-1"


def test_lab_cluster_has_brokers_and_a_controller_apart(tmp_path):
    from helpers.infra.lab import LAB_PROPERTIES, lab_kafka

    settings = load_settings({"WORKBOOK_STACK": "local"}, dotenv=tmp_path / "none")
    kafka = lab_kafka(settings, tmp_path / "lab", [29092, 29094, 29096, 29093])
    brokers, controller = kafka.nodes[:3], kafka.nodes[3]
    assert kafka.bootstrap_servers == "127.0.0.1:29092,127.0.0.1:29094,127.0.0.1:29096"
    for node in brokers:
        props = properties_of(kafka, node)
        assert props["process.roles"] == "broker"
        assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{node.port}"
        assert props["controller.quorum.voters"] == "4@127.0.0.1:29093"
        assert props["default.replication.factor"] == "3" and props["transaction.state.log.min.isr"] == "2"
        assert {k: props[k] for k in LAB_PROPERTIES} == LAB_PROPERTIES
    props = properties_of(kafka, controller)
    assert (props["process.roles"], props["node.id"]) == ("controller", "4")
    assert props["listeners"] == "CONTROLLER://127.0.0.1:29093"
    assert "advertised.listeners" not in props and "inter.broker.listener.name" not in props
    assert kafka.die_with_parent and "-XX:TieredStopAtLevel=1" in kafka.jvm_options


def test_extra_properties_override_the_defaults(tmp_path):
    settings = load_settings({"WORKBOOK_STACK": "local"}, dotenv=tmp_path / "none")
    kafka = local_kafka.LocalKafka.cluster(settings, tmp_path, [(29092, 29093)],
                                           extra={"num.partitions": "6"})
    text = kafka.properties(kafka.nodes[0])
    assert text.count("num.partitions=") == 2
    assert properties_of(kafka, kafka.nodes[0])["num.partitions"] == "6"


def test_a_cluster_needs_a_broker_and_a_controller(tmp_path):
    settings = load_settings({"WORKBOOK_STACK": "local"}, dotenv=tmp_path / "none")
    with pytest.raises(StackError, match="at least one broker and one controller"):
        local_kafka.LocalKafka.cluster(settings, tmp_path, [(1, 0), (2, 0)], roles=["broker", "broker"])


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
    code = ("import sys, helpers.cli, helpers.infra.status; "
            "from helpers.infra.environment import load_settings; "
            "helpers.infra.status.stack_status(load_settings({'WORKBOOK_STACK': 'local', 'KAFKA_PORT': '1', "
            "'MYSQL_PORT': '1', 'MYSQL_PASSWORD': 'x'})); "
            "print(sorted(m for m in ('matplotlib', 'ipywidgets', 'IPython', 'pyflink', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
