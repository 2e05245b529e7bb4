"""Ingest → replay → route against the real stack: nothing lost, counts checked independently."""
import json

import pytest
from sqlalchemy import text

from helpers.clients import make_admin, make_producer
from helpers.db import count_bars, create_schema, make_engine, read_bars, store_bars
from helpers.produce import replay_bars
from helpers.route import RouterTopics, run_router
from helpers.rules import Thresholds
from helpers.sources import fetch_bars, validate_bars
from helpers.topics import ensure_topics, read_topic, topic_counts, delete_topics

pytestmark = pytest.mark.integration


@pytest.fixture
def topics(settings, prefix):
    """Prefixed copies of the router's topics, deleted after the test."""
    names = RouterTopics.prefixed(prefix)
    admin = make_admin(settings)
    ensure_topics(admin, [names.source, names.variations, names.alerts, names.dead_letter])
    yield names
    delete_topics(admin, [names.source, names.variations, names.alerts, names.dead_letter])


@pytest.fixture(scope="module")
def sample_in_mysql(settings):
    """The sample bars stored in candle_prices (idempotent: INSERT IGNORE)."""
    engine = make_engine(settings)
    create_schema(engine)
    good, _ = validate_bars(fetch_bars("sample"))
    store_bars(engine, good, progress=False)
    return engine


def test_rows_equal_pricelist_equal_variations_and_alerts_match_sql(settings, topics, sample_in_mysql, prefix):
    engine = sample_in_mysql
    bars = read_bars(engine)
    replay = replay_bars(bars, topic=topics.source, settings=settings, progress=False)
    report = run_router(settings, Thresholds(price=195), topics, group_id=prefix + "router", progress=False)

    with engine.connect() as conn:    # independent counts, straight from MySQL
        rows = conn.execute(text("SELECT COUNT(*) FROM candle_prices")).scalar_one()
        above = conn.execute(text("SELECT COUNT(*) FROM candle_prices WHERE close > 195")).scalar_one()
    counts = topic_counts([topics.source, topics.variations, topics.alerts, topics.dead_letter], settings)
    assert rows == count_bars(engine) == len(bars) > 3000
    assert replay.delivered == rows and replay.failed == 0
    assert counts[topics.source] == rows
    assert counts[topics.variations] == rows == report.variations
    assert counts[topics.alerts] == above == report.alerts > 0
    assert counts[topics.dead_letter] == 0

    alerts = read_topic(topics.alerts, schema="alerts", settings=settings)
    assert (alerts["close"] > 195).all()
    assert (alerts["key"] == alerts["ticker"]).all()
    variations = read_topic(topics.variations, schema="variations", settings=settings)
    merged = variations.merge(bars, on=["ticker", "ts"], validate="one_to_one")
    assert len(merged) == rows
    assert ((merged["variation_ex"] - (merged["high"] / merged["low"] - 1)).abs() < 1e-12).all()
    assert ((merged["variation_in"] - (merged["close"] / merged["open"] - 1)).abs() < 1e-12).all()


def test_malformed_records_go_to_dead_letter_and_routing_goes_on(settings, topics, prefix):
    bars = fetch_bars("synthetic", n_tickers=4, n_bars=250, seed=7)
    replay_bars(bars, topic=topics.source, settings=settings, progress=False)
    bad = [b"not json", b'{"ticker": "X", "ts": 5}', json.dumps(
        {"ticker": "Y", "ts": 6, "open": 1, "high": 1, "low": 0, "close": 1, "volume": 1}).encode()]
    producer = make_producer(settings)
    for value in bad:
        producer.produce(topics.source, value, b"BAD")
    assert producer.flush(10) == 0
    replay_bars(bars.assign(ts=bars["ts"] + 10**9), topic=topics.source, settings=settings, progress=False)

    report = run_router(settings, Thresholds(price=100), topics, group_id=prefix + "router", progress=False)
    assert report.consumed == 2 * len(bars) + 3
    assert report.dead_letters == 3
    assert report.variations == 2 * len(bars)
    assert report.alerts == 2 * int((bars["close"] > 100).sum())
    dead = read_topic(topics.dead_letter, settings=settings)
    assert sorted(dead["value"]) == sorted(v.decode() for v in bad)
    assert set(dead["source.topic"]) == {topics.source}
    assert any("not JSON" in r for r in dead["reason"])


def test_router_resumes_from_committed_offsets(settings, topics, prefix):
    bars = fetch_bars("synthetic", n_tickers=3, n_bars=100, seed=3)
    replay_bars(bars.iloc[:150], topic=topics.source, settings=settings, progress=False)
    first = run_router(settings, Thresholds(), topics, group_id=prefix + "router", progress=False)
    replay_bars(bars.iloc[150:], topic=topics.source, settings=settings, progress=False)
    second = run_router(settings, Thresholds(), topics, group_id=prefix + "router", progress=False)
    assert (first.consumed, second.consumed) == (150, 150)
    assert topic_counts([topics.variations], settings)[topics.variations] == 300
