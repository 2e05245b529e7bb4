"""The classroom layer on the real stack: reset, the checks' hints, the mailer, the paper-trading bot.

That every exercise's check fails on its starter and passes on its solution is
proven by nbval over the solved notebooks (`make test-notebooks`); here the
checks meet the wrong answers students actually write, and each must answer
with the hint that fits, computed from what it saw.
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from confluent_kafka import KafkaError, Producer, TopicPartition
from sqlalchemy import inspect

from helpers.classroom.course import reset_course
from helpers.classroom.exercises.ex02_topics import check_one_partition
from helpers.classroom.exercises.ex03_producing import check_send_bars
from helpers.classroom.exercises.ex04_routing import check_sell_route
from helpers.core.errors import ServiceUnavailable
from helpers.core.rules import alerts_frame, buy_signals, variations_frame
from helpers.core.schemas import encode
from helpers.core.settings import PROJECT_ROOT
from helpers.infra.clients import client_conf, make_admin, make_consumer, make_producer
from helpers.infra.database import make_engine
from helpers.infra.environment import child_env, load_settings
from helpers.infra.mariadb import LocalMariaDB
from helpers.infra.processes import free_port
from helpers.infra.smtp import LocalSmtpSink, SmtpServer
from helpers.infra.workbook import Workbook
from helpers.pipeline.db import create_schema, read_bars, store_bars
from helpers.pipeline.notify import email_signals
from helpers.pipeline.paper import ExitRule, PaperBot, backtest, define_tables
from helpers.pipeline.produce import bar_message
from helpers.pipeline.sources import fetch_bars
from helpers.pipeline.streamsql import read_buy
from helpers.pipeline.topics import (
    consumer_lag,
    count_messages,
    delete_groups,
    delete_topics,
    ensure_topics,
    topic_counts,
)

pytestmark = [pytest.mark.integration,
              pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")]


@pytest.fixture(scope="module")
def daily(sample_in_mysql):
    """The daily sample bars, stored in candle_prices and read back."""
    return read_bars(sample_in_mysql, "day")


# --- reset ------------------------------------------------------------------------------------

@pytest.fixture
def student(settings):
    """A student of a shared class: a namespace and a MySQL database of their own."""
    if settings.stack != "local":
        pytest.skip("creates a database user on the local stack")
    name = f"r{uuid.uuid4().hex[:8]}"
    env = child_env(WORKBOOK_STUDENT=name, MYSQL_USER=name, MYSQL_PASSWORD=uuid.uuid4().hex,
                    WORKBOOK_PROGRESS="0")
    mine = load_settings(env)
    mariadb = LocalMariaDB.for_settings(mine)
    mariadb.ensure_database_user(mine)
    yield mine, env
    admin = make_admin(mine)
    delete_topics(admin, [t for t in admin.list_topics(timeout=10).topics if t.startswith(mine.prefix)])
    mariadb.drop_database_user(mine)


def commit_offsets(group, topic, settings):
    """Give `group` committed offsets on `topic`, as a consumer that read it would have."""
    consumer = make_consumer(group, settings)
    consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    consumer.close()


def test_reset_course_clears_a_students_state_only_and_rebuilds_the_start_of_05(student, settings):
    mine, env = student
    admin = make_admin(mine)
    neighbour = settings.with_namespace(f"n{uuid.uuid4().hex[:8]}")
    lessons = [mine.within("minute").topics.buy, mine.prefix + "ex04.sell", mine.prefix + "scratch.keys",
               mine.within("edges").topics.alerts]
    ensure_topics(admin, [*mine.topics.all, *lessons, *neighbour.topics.all])
    producer = make_producer(mine)
    for topic in [mine.topics.alerts, mine.topics.buy, *lessons, neighbour.topics.pricelist]:
        producer.produce(topic, b"{}", b"AAPL")
    producer.flush(30)
    groups = [mine.group("router"), mine.within("ex05").group("count") + "-x", mine.group("mailer")]
    for group in [*groups, neighbour.group("router")]:
        commit_offsets(group, mine.topics.alerts if group in groups else neighbour.topics.pricelist, mine)
    engine = make_engine(mine)
    for prefix in ("paper", "ex09_paper"):
        define_tables(prefix)[0].create_all(engine)
    create_schema(engine)
    synthetic = fetch_bars("synthetic", n_tickers=1, n_bars=5, seed=1)
    store_bars(engine, synthetic, "minute", progress=False)

    with Workbook(mine) as wb:
        report = reset_course(wb, to="05", with_data=True)

    topics = set(admin.list_topics(timeout=10).topics)
    assert not topics & set(lessons) and set(mine.topics.all) <= topics
    assert set(report.topics_deleted) >= set(lessons) | set(mine.topics.all)
    bars = read_bars(engine, "day")
    counts = topic_counts(mine.topics.all, mine)
    assert counts[mine.topics.pricelist] == counts[mine.topics.variations] == len(bars) > 12_000
    assert counts[mine.topics.alerts] == len(alerts_frame(bars)) and counts[mine.topics.buy] == 0
    assert consumer_lag(admin, mine.group("router"), [mine.topics.pricelist], mine) == 0   # rebuilt
    listed = {g.group_id for g in admin.list_consumer_groups().result().valid}
    assert not {groups[1], groups[2]} & listed
    assert neighbour.group("router") in listed and count_messages(neighbour.topics.pricelist, settings) == 1
    assert not any(t.endswith(("paper_trades", "paper_positions")) for t in inspect(engine).get_table_names())
    assert len(read_bars(engine, "minute")) == len(fetch_bars("sample", timespan="minute"))   # synthetic gone
    assert report.bars_ingested > 12_000 and "rebuilt: " in str(report)

    result = subprocess.run([sys.executable, "-m", "helpers.cli", "reset"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "created empty: " in result.stdout
    assert topic_counts(mine.topics.all, mine).sum() == 0
    result = subprocess.run([sys.executable, "-m", "helpers.cli", "reset", "--to", "07"], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr            # the minute topics, deleted, are made again
    minute = mine.within("minute")
    minute_counts = topic_counts(minute.topics.all, minute)
    assert minute_counts[minute.topics.pricelist] == minute_counts[minute.topics.variations] == len(
        read_bars(engine, "minute"))
    result = subprocess.run([sys.executable, "-m", "helpers.cli", "reset", "--to", "13"], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "from 00 to 12" in result.stderr
    delete_groups(admin, [neighbour.group("router")])
    delete_topics(admin, [*neighbour.topics.all, *minute.topics.all])


# --- the checks' hints --------------------------------------------------------------------

def test_send_bars_check_answers_each_mistake_with_its_own_hint(isolated, daily):
    bars = daily[daily["ticker"] == "IBM"].head(200)

    def sender(timestamp=True, flush=True, count=True):
        def send_bars(producer, topic, bars):
            confirmed = []
            for record in bars.to_dict("records"):
                key, value, ts = bar_message(record)
                extra = {"timestamp": ts} if timestamp else {}
                producer.produce(topic, value, key, on_delivery=lambda err, msg: confirmed.append(msg),
                                 **extra)
            if flush:
                producer.flush()
            return len(confirmed) if count else 0
        return send_bars

    unflushed = check_send_bars(sender(flush=False), bars, isolated)
    assert "still waited in the producer's queue" in unflushed.message
    assert "Count in the delivery callback" in check_send_bars(sender(count=False), bars, isolated).message
    assert "pass timestamp=ts" in check_send_bars(sender(timestamp=False), bars, isolated).message
    result = check_send_bars(sender(), bars, isolated)
    assert result.passed and "200 bars sent, 200 confirmed" in result.message
    assert "raised ZeroDivisionError" in check_send_bars(lambda p, t, b: 1 / 0, bars, isolated).message


def test_one_partition_check_counts_partitions_and_messages(isolated, daily):
    bars = daily.groupby("ticker").head(20)
    topic = isolated.prefix + "ex02.one"
    assert "does not exist yet" in check_one_partition(topic, bars, isolated).message
    ensure_topics(make_admin(isolated), [topic], partitions=3)
    assert "has 3 partitions" in check_one_partition(topic, bars, isolated).message
    other = isolated.prefix + "ex02.single"
    ensure_topics(make_admin(isolated), [other], partitions=1)
    producer = Producer(client_conf(isolated))
    for bar in bars.itertuples():
        producer.produce(other, json.dumps({"ticker": bar.ticker}), None)
    producer.flush(30)
    assert "have no key" in check_one_partition(other, bars, isolated).message
    for bar in bars.itertuples():
        producer.produce(other, json.dumps({"ticker": bar.ticker}), bar.ticker)
    producer.flush(30)
    assert "ran more than once" in check_one_partition(other, bars, isolated).message


def sell_loop(decide, flush_first=True, commit=True, stop_at_end=True):
    """A student's route_sells: `decide(msg, producer, topic)` for each bar, as the notebook's loop."""
    def route_sells(consumer, producer, topic):
        read, at_end, assigned = 0, set(), set()
        while not (stop_at_end and assigned and assigned <= at_end):
            in_batch = 0
            for msg in consumer.consume(500, timeout=0.5):
                if not msg.error():
                    decide(msg, producer, topic)
                    in_batch += 1
                elif msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
            if not flush_first and in_batch:
                consumer.commit(asynchronous=False)
            producer.flush()
            if flush_first and commit and in_batch:
                consumer.commit(asynchronous=False)
            read += in_batch
            assigned = {p.partition for p in consumer.assignment()}
        return read
    return route_sells


def test_sell_route_check_tells_a_wrong_rule_from_a_wrong_loop(isolated, daily, monkeypatch):
    from helpers.classroom.exercises import ex04_routing
    from helpers.pipeline.produce import replay_bars

    replay_bars(daily, settings=isolated, progress=False)

    def is_sell(bar):
        return bar["close"] / bar["open"] - 1 < -0.05

    def route_sell(msg, producer, topic):
        bar = json.loads(msg.value())
        if is_sell(bar):
            producer.produce(topic, msg.value(), msg.key(), timestamp=bar["ts"])

    def route_nothing(msg, producer, topic):
        pass

    def route_without_time(msg, producer, topic):
        if is_sell(json.loads(msg.value())):
            producer.produce(topic, msg.value(), msg.key())

    sells = int((daily["close"] / daily["open"] - 1 < -0.05).sum())
    too_wide = check_sell_route(lambda bar: bar["close"] / bar["open"] - 1 <= -0.04, sell_loop(route_sell),
                                isolated)
    assert "is_sell says" in too_wide.message and f"pandas finds {sells}" in too_wide.message
    assert "produced nothing" in check_sell_route(is_sell, sell_loop(route_nothing), isolated).message
    assert "timestamp=" in check_sell_route(is_sell, sell_loop(route_without_time), isolated).message
    early = check_sell_route(is_sell, sell_loop(route_sell, flush_first=False), isolated)
    assert "still held sells it had not delivered" in early.message
    uncommitted = check_sell_route(is_sell, sell_loop(route_sell, commit=False), isolated)
    assert f"{len(daily):,} bars not committed" in uncommitted.message
    monkeypatch.setattr(ex04_routing, "LOOP_PATIENCE_S", 2.0)          # 2 s, not 20, in a test
    endless = check_sell_route(is_sell, sell_loop(route_sell, stop_at_end=False), isolated)
    assert "still consuming 2 s after every partition had reached its end" in endless.message
    right = check_sell_route(is_sell, sell_loop(route_sell), isolated)
    assert right.passed and f"{len(daily):,} bars read, {sells:,} sells routed" in right.message


# --- notebook 09: the mailer and the bot ---------------------------------------------------------

def signals_into(settings, bars):
    """The buy signals of `bars`, computed with pandas, produced into the namespace's `buy` topic."""
    signals = buy_signals(alerts_frame(bars), variations_frame(bars))
    producer = make_producer(settings)
    for row in signals.to_dict("records"):
        producer.produce(settings.topics.buy, encode(row), row["ticker"].encode(), timestamp=row["alert_ts"])
    producer.flush(30)
    return signals


def test_mailer_logs_in_sends_one_email_per_signal_commits_and_never_shows_the_password(isolated, daily):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    signals = signals_into(isolated, daily[daily["ts"] < daily["ts"].quantile(0.6)])
    password = f"planted-{uuid.uuid4().hex}"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == password.encode()
        return AuthResult(success=ok)

    sink = LocalSmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), authenticator=authenticator,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    try:
        server = SmtpServer("127.0.0.1", controller.port, "student", password)
        group = isolated.group("mailer")
        report = email_signals(isolated, server, group=group, limit=5)
        assert report.sent == len(sink.messages) == 5
        report = email_signals(isolated, server, group=group)
        assert report.sent == len(signals) - 5 and len(sink.messages) == len(signals) > 5
        assert consumer_lag(make_admin(isolated), group, [isolated.topics.buy], isolated) == 0
        assert email_signals(isolated, server, group=group).sent == 0
        subjects = sorted(str(m["Subject"]) for m in sink.messages)
        assert len(set(subjects)) == len(signals) and all("not investment advice" in m.get_content()
                                                         for m in sink.messages)
        with pytest.raises(ServiceUnavailable) as refused:
            SmtpServer("127.0.0.1", controller.port, "student", "wrong-" + password).connect(timeout=2)
        assert "refused the login of student" in str(refused.value) and password not in str(refused.value)
    finally:
        controller.stop()
    with pytest.raises(ServiceUnavailable, match="No SMTP server answers"):
        SmtpServer("127.0.0.1", free_port(), "student", password).connect(timeout=5)


def test_bot_restarted_after_a_crash_keeps_each_trade_once_and_equals_the_backtest(isolated, daily):
    signals = signals_into(isolated, daily)
    tables = f"{isolated.namespace}_paper"
    bot = PaperBot(isolated, ExitRule(), tables=tables, group=isolated.group("paper-bot"))
    bot.reset()
    try:
        crashed = bot.run(crash_after=60)
        restart = bot.run()
        book = bot.read_trades()
        assert crashed.crashed and crashed.read == 60 and restart.read == len(signals)
        assert restart.outcomes.get("seen before", 0) > 0
        assert not book.duplicated(["ticker", "side", "signal_ts"]).any()
        assert book.round(6).equals(backtest(daily, read_buy(isolated), ExitRule()).round(6))
        assert book.round(6).equals(backtest(daily, signals, ExitRule()).round(6))
        assert bot.run().read == 0 and len(bot.read_trades()) == len(book)
    finally:
        bot.metadata.drop_all(bot.engine)
