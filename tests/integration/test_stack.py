"""The stack for real: Kafka and MariaDB answer, keep every message and row, and stop cleanly."""
import json
import os
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import NewTopic

from helpers.core.errors import StackError
from helpers.core.settings import PROJECT_ROOT
from helpers.infra.clients import make_admin, make_consumer, make_producer
from helpers.infra.database import make_engine
from helpers.infra.environment import load_settings
from helpers.infra.processes import free_port, port_is_free
from helpers.infra.stack import local_up, stack_down, stack_up
from helpers.infra.status import stack_status
from helpers.pipeline.db import candle_prices, read_bars, store_bars
from helpers.pipeline.topics import reset_topics

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from processes import processes_using  # noqa: E402

pytestmark = pytest.mark.integration


def test_status_reports_every_service_up(settings):
    statuses = {s.name: s for s in stack_status(settings)}
    assert set(statuses) == {"kafka", "mysql", "stream-sql", "connect"}
    assert all(s.up for s in statuses.values() if not s.on_demand), statuses
    assert statuses["connect"].on_demand and statuses["connect"].fine       # up or off, never a fault
    assert statuses["kafka"].version.startswith("4.")
    assert "***" in statuses["mysql"].url and settings.mysql_password not in statuses["mysql"].url


def test_status_json_from_the_console_command(settings):
    out = subprocess.run([sys.executable, "-m", "helpers.cli", "status", "--json"],
                         capture_output=True, text=True, check=True, cwd=PROJECT_ROOT).stdout
    services = {s["name"]: s for s in json.loads(out)["services"]}
    assert {"name", "address", "up", "version"} <= set(services["kafka"])
    assert services["mysql"]["url"].endswith(f"@127.0.0.1:{settings.mysql_port}/{settings.mysql_database}")
    assert settings.mysql_password not in out


def test_thousand_keyed_messages_none_lost(settings, prefix):
    topic = prefix + "keyed"
    admin = make_admin(settings)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(15)
    sent = [(f"K{i % 7}", json.dumps({"i": i})) for i in range(1000)]
    delivered, failed = [], []
    producer = make_producer(settings)
    for key, value in sent:
        producer.produce(topic, value, key,
                         on_delivery=lambda err, msg: (failed if err else delivered).append(msg))
        producer.poll(0)
    assert producer.flush(30) == 0
    assert (len(delivered), failed) == (1000, [])

    consumer = make_consumer(prefix + "reader", settings)
    consumer.subscribe([topic])
    got, partitions_of, at_end = [], defaultdict(set), set()
    while len(at_end) < 3:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
            at_end.add(msg.partition())
            continue
        got.append((msg.key().decode(), msg.value().decode()))
        partitions_of[msg.key()].add(msg.partition())
    consumer.close()
    assert len(got) == 1000
    assert sorted(got) == sorted(sent)
    assert all(len(p) == 1 for p in partitions_of.values()), "one key, one partition"
    for key in {k for k, _ in sent}:   # order per key is preserved
        assert [v for k, v in got if k == key] == [v for k, v in sent if k == key]
    admin.delete_topics([topic])


def test_mysql_rows_written_and_read_back_once(settings, prefix):
    engine = make_engine(settings)
    ticker = prefix.upper()[:16]
    bars = pd.DataFrame({"ticker": ticker, "ts": [1_700_000_000_000 + i * 60_000 for i in range(50)],
                         "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0,
                         "vwap": None, "transactions": pd.array([5] * 50, dtype="Int64")})
    try:
        assert store_bars(engine, bars, "minute", progress=False) == 50
        assert store_bars(engine, bars, "minute", progress=False) == 0   # unique: no duplicates
        assert store_bars(engine, bars.head(3), "day", progress=False) == 3   # another timespan
        back = read_bars(engine, "minute")
        back = back[back["ticker"] == ticker].reset_index(drop=True)
        assert back["ts"].tolist() == bars["ts"].tolist()
        assert back["vwap"].isna().all() and back["transactions"].tolist() == [5] * 50
    finally:
        with engine.begin() as conn:
            conn.execute(candle_prices.delete().where(candle_prices.c.ticker == ticker))


@pytest.fixture
def second_stack(settings, tmp_path):
    """A second local stack on free ports with its own state folder (jars shared)."""
    state = tmp_path / "stack"
    (state / "libs").parent.mkdir(parents=True)
    (state / "libs").symlink_to(settings.state_dir / "libs")
    env = {"WORKBOOK_STACK": "local", "WORKBOOK_STATE_DIR": str(state),
           "KAFKA_PORT": str(free_port()), "KAFKA_CONTROLLER_PORT": str(free_port()),
           "MYSQL_PORT": str(free_port()), "MYSQL_PASSWORD": "second-stack-pw"}
    return load_settings({**os.environ, **env})


def test_up_is_idempotent_and_down_leaves_nothing(second_stack):
    s = second_stack
    try:
        stack_up(s)        # freshly formatted: returns only once groups and transactions work
        # what notebook 02 does first, at once: forgetting a group needs the group coordinator
        outcome = reset_topics(make_admin(s), ["pricelist"], groups=["workbook-router"])
        assert outcome == {"pricelist": "created"}
        local_up(s)   # reuses what runs
        assert all(x.up for x in stack_status(s)[:2])
        assert len([p for p in processes_using(s.state_dir) if "kafka.Kafka" in p]) == 1
    finally:
        stopped = stack_down(s)
    assert stopped == ["kafka", "mariadb"]
    assert processes_using(s.state_dir) == []
    for port in (s.kafka_port, s.kafka_controller_port, s.mysql_port):
        assert port_is_free(port), port
    assert stack_down(s) == []   # nothing left to stop


def test_port_in_use_names_port_and_variable(second_stack):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", second_stack.kafka_port))
        blocker.listen()
        with pytest.raises(StackError, match=rf"Port {second_stack.kafka_port} .*KAFKA_PORT"):
            local_up(second_stack)
    assert processes_using(second_stack.state_dir) == []


def six_free_ports() -> int:
    """A port p such that p..p+5 are all free: the client and controller ports of three nodes."""
    for _ in range(50):
        base = free_port()
        if base + 5 <= 65535 and all(port_is_free(base + i) for i in range(6)):
            return base
    raise AssertionError("no six consecutive free ports")


@pytest.fixture
def three_node_settings(settings, tmp_path):
    """Settings of a three-node local Kafka on free ports with its own state folder (jars shared)."""
    state = tmp_path / "stack"
    state.mkdir()
    (state / "libs").symlink_to(settings.state_dir / "libs")
    base = six_free_ports()
    env = {"WORKBOOK_STACK": "local", "WORKBOOK_STATE_DIR": str(state), "WORKBOOK_BROKERS": "3",
           "KAFKA_PORT": str(base), "KAFKA_CONTROLLER_PORT": str(base + 1),
           "MYSQL_PORT": str(free_port()), "MYSQL_PASSWORD": "three-node-pw"}
    return load_settings({**os.environ, **env})


def test_three_node_kafka_status_per_node_and_down_leaves_nothing(three_node_settings):
    from helpers.infra.kafka import LocalKafka
    from helpers.infra.status import status_kafka_nodes, wait_kafka_ready

    s = three_node_settings
    kafka = LocalKafka.for_settings(s)
    try:
        assert len(kafka.start()) == 3
        wait_kafka_ready(s)            # groups and transactions work on a replicated cluster
        statuses = status_kafka_nodes(s)
        assert [(x.name, x.address, x.up) for x in statuses] == [
            (f"kafka-{i}", f"127.0.0.1:{port}", True) for i, (port, _) in enumerate(s.kafka_node_ports, 1)]
        outcome = reset_topics(make_admin(s), ["pricelist"], groups=["workbook-router"])
        assert outcome == {"pricelist": "created"}
        kafka.kill_node(kafka.node(2))
        assert [x.up for x in status_kafka_nodes(s)] == [True, False, True]
        assert len([p for p in processes_using(s.state_dir) if "kafka.Kafka" in p]) == 2
    finally:
        stopped = stack_down(s)
    assert stopped == ["kafka (3 nodes)"]
    assert processes_using(s.state_dir) == []
    for port in (p for pair in s.kafka_node_ports for p in pair):
        assert port_is_free(port), port
    assert [x.up for x in status_kafka_nodes(s)] == [False, False, False]
