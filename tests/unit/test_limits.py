"""The class server's limits without a broker: the numbers, the broker's settings, the ACLs, the notice."""
from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import AclOperation, AclPermissionType, ResourceType

from helpers.classroom.classserver import ClassServer, student_acls
from helpers.infra import clients
from helpers.infra.environment import load_settings
from helpers.infra.limits import MB, POLICY_CLASS, POLICY_SOURCE, ClassLimits, joined
from helpers.pipeline.topics import COMPACTED, compacted_config


def settings(tmp_path: Path, **env):
    return load_settings({"WORKBOOK_STACK": "local", "WORKBOOK_STATE_DIR": str(tmp_path), **env},
                         dotenv=tmp_path / "none.env")


def test_the_cap_on_a_students_topics_is_every_partition_full_plus_its_open_segment():
    limits = ClassLimits(student_partitions=10, partition_mb=3, segment_mb=1)
    assert limits.student_cap_mb == 40
    assert "at most 40 MB in all" in limits.summary()


def test_the_broker_deletes_beyond_the_cap_and_asks_the_policy_before_each_topic(tmp_path):
    limits = ClassLimits(topic_partitions=6, student_partitions=50, partition_mb=2, segment_mb=1)
    props = limits.broker_properties({"bootstrap.servers": "127.0.0.1:9094"})
    assert props["create.topic.policy.class.name"] == props["alter.config.policy.class.name"] == POLICY_CLASS
    assert props["log.retention.bytes"] == str(2 * MB) == props["workbook.limits.partition.bytes"]
    assert props["log.segment.bytes"] == str(MB) == props["workbook.limits.segment.bytes"]
    assert props["workbook.limits.topic.partitions"] == "6"
    assert props["workbook.limits.student.partitions"] == "50"
    assert props["workbook.limits.admin.bootstrap.servers"] == "127.0.0.1:9094"
    # every setting the Java policy reads is written (it refuses to start without one)
    source = POLICY_SOURCE.read_text()
    for name in ("topic.partitions", "student.partitions", "partition.bytes", "segment.bytes"):
        assert f'setting(configs, "{name}")' in source and f"workbook.limits.{name}" in props


def test_the_class_servers_broker_gets_the_limits_and_the_policys_classes(tmp_path):
    server = ClassServer.for_settings(settings(tmp_path, KAFKA_PORT="19500"))
    kafka = server.kafka()
    properties = kafka.properties(kafka.nodes[0])
    assert f"create.topic.policy.class.name={POLICY_CLASS}" in properties
    assert "workbook.limits.admin.bootstrap.servers=127.0.0.1:19500" in properties
    assert kafka.classpath == (tmp_path / "libs" / "class-server",)
    assert str(tmp_path / "libs" / "class-server") in " ".join(kafka._java(kafka.nodes[0]))


def test_quotas_are_kafkas_user_quota_keys_in_bytes_per_second():
    quotas = ClassLimits(produce_mb_s=2, fetch_mb_s=0.5, partition_mutations_s=4).quota_configs()
    assert quotas == {"producer_byte_rate": str(2 * MB), "consumer_byte_rate": str(MB // 2),
                      "controller_mutation_rate": "4"}
    assert joined(quotas) == (f"producer_byte_rate={2 * MB},consumer_byte_rate={MB // 2},"
                              "controller_mutation_rate=4")


def test_a_student_may_do_anything_with_their_prefix_but_add_partitions():
    acls = student_acls("alice")
    denied = [a for a in acls if a.permission_type == AclPermissionType.DENY]
    assert [(a.restype, a.name, a.operation) for a in denied] == [
        (ResourceType.TOPIC, "alice.", AclOperation.ALTER)]
    assert {a.restype for a in acls if a.operation == AclOperation.ALL} == {
        ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID}
    assert {a.principal for a in acls} == {"User:alice"}


def test_a_table_topic_also_deletes_in_a_namespace_so_a_class_server_takes_it(tmp_path):
    assert compacted_config(settings(tmp_path)) == COMPACTED
    shared = compacted_config(settings(tmp_path, WORKBOOK_STUDENT="alice"))
    assert shared["cleanup.policy"] == "compact,delete" and shared["retention.ms"] == "-1"
    assert {k: v for k, v in shared.items() if k not in ("cleanup.policy", "retention.ms")} == {
        k: v for k, v in COMPACTED.items() if k != "cleanup.policy"}


class Throttle:
    def __init__(self, seconds: float):
        self.throttle_time = seconds


def test_a_quota_is_said_once_per_process_in_one_sentence(monkeypatch, capsys):
    monkeypatch.setattr(clients, "THROTTLED", [])
    clients.say_throttled(Throttle(0.0))          # not held back: nothing to say
    assert capsys.readouterr().err == ""
    clients.say_throttled(Throttle(0.25))
    clients.say_throttled(Throttle(1.5))
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and said.count(". ") == 0
    assert "250 ms" in said and "quota" in said


def test_a_relative_ca_file_in_the_database_url_starts_at_the_workbooks_folder():
    from helpers.core.settings import PROJECT_ROOT
    from helpers.infra.database import with_ca_path

    assert with_ca_path("mysql+pymysql://a:p%40w@h:3306/db?ssl_ca=ca.pem") == \
        f"mysql+pymysql://a:p%40w@h:3306/db?ssl_ca={str(PROJECT_ROOT / 'ca.pem').replace('/', '%2F')}"
    for url in ("mysql+pymysql://a:p@h:3306/db?ssl_ca=/etc/ca.pem", "mysql+pymysql://a:p@h:3306/db"):
        assert with_ca_path(url) == url
