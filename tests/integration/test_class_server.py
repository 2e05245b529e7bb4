"""A class on one secure server: logins over TLS, one namespace per student, ACLs that hold.

The class server (`workbook class up`) runs beside the test stack, on free
ports and in a state folder of its own (the jars are shared), and is stopped
at the end: no process of it may be left.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pymysql
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from helpers.classroom.classserver import ClassServer
from helpers.core.errors import KafkaOperationError, ServiceUnavailable
from helpers.core.rules import Thresholds, alerts_frame, buy_signals, variations_frame
from helpers.core.settings import PROJECT_ROOT
from helpers.core.validation import validate_bars
from helpers.core.waiting import wait_until
from helpers.infra.clients import client_conf, make_admin, make_consumer, make_producer
from helpers.infra.environment import load_settings
from helpers.infra.flinkcluster import cluster_jobs
from helpers.infra.kafka_tools import kafka_tool_output
from helpers.infra.limits import MB
from helpers.infra.processes import free_port, running_process
from helpers.infra.status import require_services
from helpers.pipeline.flinksql import LOG_DIR, FlinkTarget
from helpers.pipeline.sources import fetch_bars
from helpers.pipeline.streamsql import compare_rows, read_buy
from helpers.pipeline.topics import delete_topics, ensure_topics, topic_counts

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processes import class_flink, processes_using, run_workbook  # noqa: E402

pytestmark = pytest.mark.integration
REFUSED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
           KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED}
#: each student runs the pipeline with their own thresholds, so their counts differ
THRESHOLDS = {"alice": Thresholds(), "bob": Thresholds(price=150.0, variation=0.03)}


def distinct_free_ports(n: int) -> list[int]:
    """`n` different free ports."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class CommandLineWatch:
    """Samples every process's command line while it runs: no password may ever show there."""

    def __init__(self):
        self.lines: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.wait(0.3):
            self.lines.update(processes_using("/"))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


@pytest.fixture(scope="module")
def classroom(settings):
    """A class server with students alice and bob; (server, {name: Student}, seconds to start). Its folder
    may be entered by every account, as the shared Flink cluster's own account must read ca.pem."""
    if settings.stack != "local":
        pytest.skip("starts a secure local Kafka and MariaDB beside the local stack")
    folder = Path(tempfile.mkdtemp(prefix="workbook-class-"))
    os.chmod(folder, 0o755)
    state = folder / "stack"
    state.mkdir()
    (state / "libs").symlink_to(settings.state_dir / "libs")
    kafka, controller, mysql = distinct_free_ports(3)
    instructor = load_settings({**os.environ, "WORKBOOK_STACK": "local", "WORKBOOK_STATE_DIR": str(state),
                                "KAFKA_PORT": str(kafka), "KAFKA_CONTROLLER_PORT": str(controller),
                                "MYSQL_PORT": str(mysql)})
    server = ClassServer.for_settings(instructor)
    started = time.perf_counter()
    try:
        students = {s.name: s for s in server.up(["alice", "bob"])}
        yield server, students, time.perf_counter() - started
    finally:
        server.down()
    assert processes_using(state) == []
    shutil.rmtree(folder, ignore_errors=True)


def student_env(server, student) -> dict[str, str]:
    """The environment of a student's process: ours, overlaid with their .env file."""
    return {**os.environ, **server.student_env(student), "WORKBOOK_PROGRESS": "0"}


def workbook(env, *args) -> str:
    """Run one `workbook` command as a student; its output, or a failure showing it."""
    result = subprocess.run([sys.executable, "-m", "helpers.cli", *args], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"workbook {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def run_pipeline(env, thresholds: Thresholds) -> str:
    """ingest -> topics --reset -> replay -> route -> stream-sql, as `make run`'s notebooks do it."""
    return "".join([
        workbook(env, "ingest"),
        workbook(env, "topics", "--reset"),
        workbook(env, "replay"),
        workbook(env, "route", "--until-caught-up", "--price-threshold", str(thresholds.price)),
        workbook(env, "stream-sql", "--until-caught-up", "--variation-threshold", str(thresholds.variation)),
    ])


def test_two_students_run_the_pipeline_at_once_and_each_gets_their_own_counts(classroom):
    server, students, _ = classroom
    outputs, errors = {}, {}

    def one(name):
        try:
            outputs[name] = run_pipeline(student_env(server, students[name]), THRESHOLDS[name])
        except BaseException as exc:    # reported below, with the other student's result
            errors[name] = exc

    with CommandLineWatch() as watch:
        started = time.perf_counter()
        threads = [threading.Thread(target=one, args=(name,)) for name in THRESHOLDS]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    assert errors == {}
    print(f"\ntwo students' pipelines at once: {seconds:.1f} s")

    bars, rejected = validate_bars(fetch_bars("sample", timespan="day"))
    assert len(bars) > 10_000 and rejected.empty
    admin_view = set(make_admin(server.admin_settings()).list_topics(timeout=10).topics)
    buys = {}
    for name, thresholds in THRESHOLDS.items():
        mine = server.student_settings(students[name])
        t = mine.topics
        reference = buy_signals(alerts_frame(bars, thresholds.price), variations_frame(bars),
                                thresholds.variation)
        expected = {t.pricelist: len(bars), t.variations: len(bars),
                    t.alerts: int((bars["close"] > thresholds.price).sum()), t.buy: len(reference),
                    t.dead_letter: 0}
        assert topic_counts(t.all, mine).to_dict() == expected, name
        buys[name] = read_buy(mine)
        assert compare_rows(buys[name], reference).empty, name
        assert set(t.all) <= admin_view and all(topic.startswith(f"{name}.") for topic in t.all)
    assert len(buys["bob"]) > len(buys["alice"]) > 0      # their own thresholds, their own signals
    print(f"buy signals: alice {len(buys['alice'])}, bob {len(buys['bob'])}")

    secrets = [s.kafka_password for s in students.values()] + [s.mysql_password for s in students.values()]
    secrets += [server.passwords()["admin"], server.passwords()["controller"]]
    assert watch.lines and not [line for line in watch.lines if any(p in line for p in secrets)]
    logs = [*server.root.rglob("*.log"), *LOG_DIR.glob("*.log")]
    assert not [p for p in logs if any(s in p.read_text(errors="replace") for s in secrets)]
    assert not [o for o in outputs.values() if any(s in o for s in secrets)]


def refusal(action) -> int | None:
    """The error code a refused Kafka call raised (None when it was allowed)."""
    try:
        action()
    except KafkaException as exc:
        return exc.args[0].code()
    return None


def read_until_error(consumer, seconds: float = 15):
    """The first error a consumer reports (not an end of partition), else None."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() and msg.error().code() != KafkaError._PARTITION_EOF:
                return msg.error().code()
    finally:
        consumer.close()
    return None


def test_a_student_cannot_read_write_or_delete_another_students_topics_or_groups(classroom):
    server, students, _ = classroom
    alice, bob = (server.student_settings(students[n]) for n in ("alice", "bob"))
    bob_admin = make_admin(bob)
    secret = "bob.secret"
    bob_admin.create_topics([NewTopic(secret, 1)])[secret].result(30)
    producer = make_producer(bob)
    for i in range(10):
        producer.produce(secret, f"{i}".encode(), b"k")
    assert producer.flush(30) == 0
    reader = make_consumer("bob.reader", bob)
    reader.subscribe([secret])
    got = 0
    while got < 10:
        msg = reader.poll(1.0)
        got += msg is not None and not msg.error()
    reader.commit(asynchronous=False)
    reader.close()

    admin = make_admin(alice)
    delivered = []
    thief = Producer({**client_conf(alice), "acks": "all"})
    thief.produce(secret, b"forged", on_delivery=lambda err, msg: delivered.append(err))
    thief.flush(15)
    cases = {
        "write to bob.secret": delivered[0].code() if delivered and delivered[0] else None,
        "read bob.secret (alice's own group)": read_until_error(
            subscribed(Consumer({**client_conf(alice), "group.id": "alice.thief",
                                 "auto.offset.reset": "earliest"}), secret)),
        "join bob's group bob.reader": read_until_error(
            subscribed(Consumer({**client_conf(alice), "group.id": "bob.reader"}), "alice.pricelist")),
        "delete topic bob.secret": refusal(lambda: admin.delete_topics([secret])[secret].result(15)),
        "delete group bob.reader": refusal(
            lambda: admin.delete_consumer_groups(["bob.reader"])["bob.reader"].result(15)),
        "create topic bob.planted": refusal(
            lambda: admin.create_topics([NewTopic("bob.planted", 1)])["bob.planted"].result(15)),
        "create topic pricelist (no prefix)": refusal(
            lambda: admin.create_topics([NewTopic("pricelist", 1)])["pricelist"].result(15)),
        "change retention of bob.secret": refusal(lambda: next(iter(admin.incremental_alter_configs(
            [config_change(secret)]).values())).result(15)),
        "transactional id bob.tx": refusal(lambda: Producer(
            {**client_conf(alice), "transactional.id": "bob.tx"}).init_transactions(15)),
        "grant herself bob.*": refusal(lambda: next(iter(admin.create_acls([AclBinding(
            ResourceType.TOPIC, "bob.", ResourcePatternType.PREFIXED, "User:alice", "*", AclOperation.ALL,
            AclPermissionType.ALLOW)]).values())).result(15)),
    }
    print("\n" + "\n".join(f"  {case:<38} {KafkaError(code).name() if code else 'ALLOWED'}"
                           for case, code in cases.items()))
    assert {case: code in REFUSED for case, code in cases.items()} == dict.fromkeys(cases, True), cases
    assert secret not in admin.list_topics(timeout=10).topics      # alice cannot even see it

    # nothing of bob's changed: still 10 messages, his group still at the end
    assert topic_counts([secret], bob).to_dict() == {secret: 10}
    from helpers.pipeline.topics import group_offsets

    offsets = group_offsets(bob_admin, "bob.reader", [secret], bob)
    assert offsets["committed"].tolist() == [10] and offsets["lag"].tolist() == [0]
    assert "bob.planted" not in bob_admin.list_topics(timeout=10).topics


def subscribed(consumer, topic):
    """`consumer`, subscribed to `topic`."""
    consumer.subscribe([topic])
    return consumer


def config_change(topic):
    """A request to set a topic's retention to one minute."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    resource.add_incremental_config(ConfigEntry("retention.ms", "60000",
                                                incremental_operation=AlterConfigOpType.SET))
    return resource


def one_sentence(text: str) -> bool:
    """One line, ending with a full stop."""
    return "\n" not in text.strip() and text.strip().endswith(".")


def test_a_wrong_password_or_certificate_is_refused_in_one_sentence(classroom):
    server, students, _ = classroom
    alice = server.student_settings(students["alice"])
    wrong = replace(alice, kafka_security=replace(alice.kafka_security, password="not-her-password"))
    with pytest.raises(ServiceUnavailable) as refused:
        require_services(wrong, "kafka")
    assert str(refused.value) == (f"Kafka at {alice.bootstrap_servers} refuses the login of 'alice' "
                                  "(SCRAM-SHA-512): check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD "
                                  "in .env.")
    untrusted = replace(alice, kafka_security=replace(alice.kafka_security, ca_location=""))
    with pytest.raises(ServiceUnavailable, match="presents a certificate this client does not trust") as tls:
        require_services(untrusted, "kafka")
    db = replace(alice, explicit_database_url=alice.database_url.replace(students["alice"].mysql_password,
                                                                         "not-her-password"))
    with pytest.raises(ServiceUnavailable, match="refuses the login of alice") as mysql:
        require_services(db, "mysql")
    assert all(one_sentence(str(e.value)) for e in (refused, tls, mysql))

    env = {**student_env(server, students["alice"]), "KAFKA_SASL_PASSWORD": "not-her-password"}
    result = subprocess.run([sys.executable, "-m", "helpers.cli", "topics"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"workbook topics: {refused.value}\n"


def test_a_student_added_later_gets_a_login_and_only_her_prefix(classroom):
    server, students, _ = classroom
    (carol,) = server.up(["carol"])             # the storage is formatted: added through the AdminClient
    assert carol.env_file.stat().st_mode & 0o777 == 0o600
    assert [s.kafka_password for s in server.students(["alice"])] == [students["alice"].kafka_password]
    mine = server.student_settings(carol)
    require_services(mine, "kafka", "mysql")
    admin = make_admin(mine)
    assert refusal(lambda: admin.create_topics([NewTopic("carol.x", 1)])["carol.x"].result(15)) is None
    assert refusal(lambda: admin.create_topics([NewTopic("alice.x", 1)])["alice.x"].result(15)) \
        == KafkaError.TOPIC_AUTHORIZATION_FAILED
    admin.delete_topics(["carol.x"])["carol.x"].result(15)
    assert all(running_process(n.pid_file) for n in server.kafka().nodes)


def test_a_roster_of_full_names_gives_each_an_id_a_login_and_the_instructor_the_mapping(classroom, tmp_path):
    server, _, _ = classroom
    roster = tmp_path / "roster.txt"
    roster.write_text("José Muñoz\n李雷\n", encoding="utf-8")
    instructor = {**os.environ, "WORKBOOK_STACK": "local",
                  "WORKBOOK_STATE_DIR": str(server.settings.state_dir),
                  "KAFKA_PORT": str(server.settings.kafka_port),
                  "KAFKA_CONTROLLER_PORT": str(server.settings.kafka_controller_port),
                  "MYSQL_PORT": str(server.settings.mysql_port), "WORKBOOK_PROGRESS": "0"}
    result = run_workbook("class", "up", "--roster", str(roster), env=instructor, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "jose-munoz" in result.stdout and "(José Muñoz)" in result.stdout and "(李雷)" in result.stdout
    mapping = (server.students_dir / "roster.csv").read_text(encoding="utf-8")
    assert mapping.splitlines() == ["full name,id", "José Muñoz,jose-munoz", "李雷,lilei"]
    (jose,) = server.students(["jose-munoz"])
    require_services(server.student_settings(jose), "kafka", "mysql")


def test_the_limits_refuse_a_students_topic_in_one_sentence_each(classroom):
    server, _, _ = classroom
    (erin,) = server.up(["erin"])                   # a student of her own: nothing of hers exists yet
    limits = server.limits
    admin = make_admin(server.student_settings(erin))

    def refused(**kwargs) -> str:
        with pytest.raises(KafkaOperationError) as refusal_:
            ensure_topics(admin, ["erin.t"], **kwargs)
        assert one_sentence(str(refusal_.value)), refusal_.value
        return str(refusal_.value)

    assert f"at most {limits.topic_partitions} partitions per topic" in \
        refused(partitions=limits.topic_partitions + 1)
    assert "retention.bytes of erin.t must be between 1 and" in refused(config={"retention.bytes": "-1"})
    assert "cleanup.policy=compact,delete" in refused(config={"cleanup.policy": "compact"})
    assert "segment.bytes" in refused(config={"segment.bytes": str(limits.segment_mb * MB + 1)})
    ensure_topics(admin, ["erin.t"], partitions=2)
    assert refusal(lambda: admin.create_partitions([NewPartitions("erin.t", 4)])["erin.t"].result(15)) \
        == KafkaError.TOPIC_AUTHORIZATION_FAILED           # more partitions: the ACL's DENY ALTER
    more = ConfigResource("TOPIC", "erin.t", incremental_configs=[ConfigEntry(
        "retention.bytes", str(limits.partition_mb * MB + 1), incremental_operation=AlterConfigOpType.SET)])
    assert refusal(lambda: admin.incremental_alter_configs([more])[more].result(15)) \
        == KafkaError.POLICY_VIOLATION

    # topics of 12 partitions until the cap: the refusal counts what the broker holds of hers
    names, used = [], 2
    while used + limits.topic_partitions <= limits.student_partitions:
        names.append(f"erin.fill{len(names)}")
        ensure_topics(admin, names[-1:], partitions=limits.topic_partitions)
        used += limits.topic_partitions
    with pytest.raises(KafkaOperationError) as full:
        ensure_topics(admin, ["erin.onemore"], partitions=limits.student_partitions - used + 1)
    listed = admin.list_topics(timeout=10).topics
    held = sum(len(t.partitions) for name, t in listed.items() if name.startswith("erin."))
    assert held == used
    assert f"allows erin at most {limits.student_partitions} partitions in all, {used} are in use" \
        in str(full.value) and one_sentence(str(full.value))
    ensure_topics(admin, ["erin.last"], partitions=limits.student_partitions - used)     # exactly full
    delete_topics(admin, ["erin.t", "erin.last", *names])


def test_a_runaway_producer_is_slowed_to_its_quota_told_once_and_keeps_at_most_its_cap(classroom):
    server, students, _ = classroom
    limits = server.limits
    quotas = kafka_tool_output(server.admin_settings(), "kafka-configs",
                               ["--describe", "--entity-type", "users", "--entity-default"])
    assert f"producer_byte_rate={limits.produce_mb_s * MB:.1f}" in quotas, quotas
    seconds = 12
    flood = subprocess.run([sys.executable, "-m", "bench.runaway", "--flood", str(seconds)],
                           cwd=PROJECT_ROOT, env=student_env(server, students["bob"]), capture_output=True,
                           text=True, timeout=120)
    assert flood.returncode == 0, flood.stderr[-2000:]
    written = json.loads(flood.stdout.strip().splitlines()[-1])
    # Kafka's rate is an average over an 11-s window: at most the quota over the loop plus that window
    assert written["records_acked"] * 1000 <= limits.produce_mb_s * MB * (seconds + 11)
    assert written["records_queued"] > written["records_acked"]          # held back, not refused
    assert flood.stderr.count("Kafka held back a request of yours") == 1, flood.stderr[-2000:]
    data = server.root / "kafka" / "node-1" / "data"
    most = (limits.partition_mb + limits.segment_mb) * MB

    def partitions_within_the_cap() -> bool:
        sizes = [sum(f.stat().st_size for f in folder.iterdir() if f.suffix == ".log")
                 for folder in data.glob("bob.flood-*")]
        return len(sizes) == 3 and max(sizes) <= most

    wait_until(partitions_within_the_cap, 60, "bob.flood's partitions to shrink to the cap")
    delete_topics(make_admin(server.student_settings(students["bob"])), ["bob.flood"])


def test_mysql_takes_a_student_over_tls_only_and_so_many_connections_at_once(classroom):
    server, students, _ = classroom
    alice = server.student_settings(students["alice"])
    address = {"host": "127.0.0.1", "port": server.settings.mysql_port, "user": "alice",
               "password": students["alice"].mysql_password}
    with pytest.raises(pymysql.err.OperationalError):                 # the same login without TLS
        pymysql.connect(**address, ssl_disabled=True)
    stranger = alice.database_url.split("?")[0] + "?ssl_ca=/etc/ssl/certs/ca-certificates.crt"
    with pytest.raises(OperationalError, match="CERTIFICATE_VERIFY_FAILED"):   # the client checks
        create_engine(stranger, poolclass=NullPool).connect()
    engine = create_engine(alice.database_url, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW STATUS LIKE 'Ssl_version'")).one()[1].startswith("TLS")
    held = [engine.connect() for _ in range(server.limits.mysql_connections)]
    try:
        with pytest.raises(OperationalError) as refused:
            engine.connect()
        assert refused.value.orig.args[0] == 1226           # ER_USER_LIMIT_REACHED
        with pytest.raises(ServiceUnavailable) as status:
            require_services(alice, "mysql")
        assert f"at most {server.limits.mysql_connections} connections at once" in str(status.value)
        assert one_sentence(str(status.value))
    finally:
        for connection in held:
            connection.close()
    require_services(alice, "mysql")
    binlogs = list((server.root / "mariadb" / "data").glob("binlog.0*"))     # kept for notebook 12
    assert binlogs and not [f for f in binlogs if students["alice"].mysql_password.encode() in f.read_bytes()]


def test_nbval_runs_the_notebooks_as_one_student(classroom, tmp_path):
    """The whole course, as alice, against the class server; checked outputs as on a laptop."""
    import importlib.util

    server, students, _ = classroom
    path = PROJECT_ROOT / "tests" / "notebooks" / "reference.py"
    spec = importlib.util.spec_from_file_location("reference", path)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    reference.REFERENCE = tmp_path / "nbval"
    built = reference.build()
    assert len(built) >= 8
    for notebook in built:      # 10 starts and kills brokers of its own: not on a shared cluster;
        if "fault_tolerance" in notebook.name or "change_data_capture" in notebook.name:
            notebook.unlink()   # 12 needs a Kafka Connect worker, which the class server does not run
    # alice's topics carry her prefix: compared without it, and without the spaces that pad a
    # table's columns to her longer names (nbval takes everything after 'replace: '). A text
    # table that pandas wraps at 80 columns wraps elsewhere with longer names: such a table
    # is compared in its HTML form only (the form a student sees), which holds every cell.
    sanitize = tmp_path / "sanitize.cfg"
    sanitize.write_text((PROJECT_ROOT / "tests/nbval_sanitize.cfg").read_text()
                        + "\n[student-prefix]\nregex: \\balice\\.\nreplace: \n"
                        + "\n[column-padding]\nregex: [ ]{2,}\nreplace:  \n"
                        + "\n[wrapped-text-table]\nregex: (?s)\\A(?!<).*? \\\\\\n.*\\Z"
                        + "\nreplace: WRAPPED TABLE\n")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
         "--nbval-cell-timeout=600", "--nbval-sanitize-with", str(sanitize), str(tmp_path / "nbval"), "-q"],
        cwd=PROJECT_ROOT, env=student_env(server, students["alice"]), capture_output=True, text=True,
        timeout=1800)
    summary = result.stdout.strip().splitlines()[-1]
    print(f"\nnbval as alice: {time.perf_counter() - started:.0f} s; {summary}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    alice = server.student_settings(students["alice"])
    counts = topic_counts(alice.topics.all, alice)
    assert counts[alice.topics.variations] == counts[alice.topics.pricelist] > 0
    assert json.dumps(result.stdout).count(students["alice"].kafka_password) == 0


def test_a_student_runs_the_kafka_tools_logged_in_through_a_file_that_goes_away(classroom, tmp_path):
    server, students, _ = classroom
    env = {**student_env(server, students["alice"]), "TMPDIR": str(tmp_path)}   # where login files go

    def tool(*args: str) -> subprocess.CompletedProcess[str]:
        return run_workbook(*args, env=env)

    created = tool("kafka-topics", "--create", "--topic", "alice.clitest", "--partitions", "2")
    assert created.returncode == 0, created.stdout + created.stderr
    mine = tool("kafka-topics", "--describe", "--topic", "alice.clitest")
    assert mine.returncode == 0 and "PartitionCount: 2\t" in mine.stdout, mine.stdout + mine.stderr
    theirs = tool("kafka-topics", "--create", "--topic", "bob.clitest")
    assert theirs.returncode == 1 and "Authorization failed." in theirs.stdout      # the ACLs hold
    outputs = "".join(r.stdout + r.stderr for r in (created, mine, theirs))
    assert students["alice"].kafka_password not in outputs
    assert list(tmp_path.iterdir()) == []                    # every login file went with its tool


def test_the_class_flink_runs_a_students_join_named_after_them_with_no_jvm_of_hers_and_cancels_orphans(
        classroom):
    """What a hub's servers do: FLINK_GATEWAY sends the join to the class's SQL Gateway, which runs it
    on the class's session cluster, named after the student; her own processes start no JVM. A job
    whose session was killed is cancelled by her next session."""
    server, students, _ = classroom
    with class_flink(server.settings, slots=3) as cluster:
        overview = cluster.overview()
        assert overview["slots-total"] == 3 and overview["taskmanagers"] == 1
        env = {**student_env(server, students["alice"]), **cluster.session_env}
        status = run_workbook("status", env=env).stdout
        assert f"the class's Flink SQL Gateway {cluster.gateway_address}" in status and "Flink 2.2" in status
        run_pipeline(env, THRESHOLDS["alice"])
        jobs = cluster_jobs(cluster.address)
        joins = [j["state"] for j in jobs if j["name"].startswith("alice: buy join (pid ")]
        assert joins == ["FINISHED"], jobs
        mine = server.student_settings(students["alice"])
        bars, _ = validate_bars(fetch_bars("sample", timespan="day"))
        reference = buy_signals(alerts_frame(bars, THRESHOLDS["alice"].price), variations_frame(bars),
                                THRESHOLDS["alice"].variation)
        assert compare_rows(read_buy(mine), reference).empty

        command = subprocess.Popen([sys.executable, "-m", "helpers.cli", "stream-sql"], cwd=PROJECT_ROOT,
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def running() -> list[dict]:
            return [j for j in cluster_jobs(cluster.address)
                    if j["state"] == "RUNNING" and j["name"].startswith("alice: buy join")]

        wait_until(running, 180, "alice's continuous join to run on the cluster")
        (orphan,) = running()
        hers = psutil.Process(command.pid).children(recursive=True)
        assert hers and not [p for p in hers if p.name().startswith("java")], hers
        session = int(orphan["name"].rsplit("pid ", 1)[1].rstrip(")"))
        os.kill(session, signal.SIGKILL)             # a kernel killed: nobody cancels its job
        command.kill()
        command.wait()
        assert FlinkTarget(cluster.address, "bob").cancel_orphans() == []      # not his to cancel
        assert FlinkTarget(cluster.address, "alice").cancel_orphans() == [orphan["name"]]
        wait_until(lambda: not running(), 60, "the orphan to be cancelled")
