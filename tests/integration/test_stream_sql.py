"""The buy join on the stack's engine (Flink here) and live mode, against the pandas reference."""
from contextlib import closing

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from helpers.core.errors import StreamSqlError, WaitTimeout
from helpers.core.rules import Thresholds, alerts_frame, buy_signals, variations_frame
from helpers.core.whatif import what_if
from helpers.infra.clients import batches_to_end, make_admin, make_consumer
from helpers.infra.workbook import Workbook
from helpers.pipeline.flinksql import FlinkJob
from helpers.pipeline.live import LivePipeline, apply_to_pipeline
from helpers.pipeline.produce import replay_bars
from helpers.pipeline.route import run_router
from helpers.pipeline.sources import fetch_sample, fetch_synthetic
from helpers.pipeline.streamsql import compare_rows, read_buy, run_buy_query, wait_until_caught_up
from helpers.pipeline.topics import delete_groups, topic_counts

pytestmark = pytest.mark.integration


@pytest.fixture
def routed_sample(isolated):
    """The daily sample bars replayed and routed in the test's namespace."""
    bars = fetch_sample()
    replay_bars(bars, settings=isolated, progress=False)
    run_router(isolated, Thresholds(), progress=False)
    return bars


@pytest.mark.parametrize("threshold", [0.05, 0.02])
def test_buy_topic_equals_reference_on_sample(isolated, isolated_wb, routed_sample, threshold):
    run = run_buy_query(isolated_wb, threshold, until_caught_up=True)
    got = read_buy(isolated)
    expected = buy_signals(alerts_frame(routed_sample, 195), variations_frame(routed_sample), threshold)
    assert len(expected) > 0
    assert compare_rows(got, expected).empty
    assert len(got) == len(expected)
    assert run.engine in ("flink", "ksqldb")


def test_live_pipeline_matches_what_if(isolated, isolated_wb):
    bars = fetch_synthetic(n_tickers=3, n_bars=400, seed=11)
    thresholds = Thresholds(price=100, variation=0.01)
    expected = buy_signals(alerts_frame(bars, thresholds.price), variations_frame(bars), thresholds.variation)
    live = LivePipeline(bars, thresholds, isolated_wb, rate=2000).start()
    goal = what_if(bars, thresholds).counts
    assert goal["buy"] == len(expected) > 0
    live.wait_for(goal, timeout=180)
    topics = isolated.topics
    counts = topic_counts(live.topics, isolated)
    assert counts[topics.pricelist] == counts[topics.variations] == len(bars)
    assert counts[topics.alerts] == int((bars["close"] > thresholds.price).sum())
    assert compare_rows(read_buy(isolated), expected).empty


def test_a_price_change_on_the_control_topic_applies_from_the_next_bar_routed(isolated, isolated_wb):
    """Mid-replay, a malformed control message changes nothing and a valid one raises the alert price;
    the topics then hold exactly the what-if of each bar at the price the router recorded for it."""
    from helpers.core.waiting import wait_until
    from helpers.core.whatif import price_in_force
    from helpers.infra.clients import make_producer
    from helpers.pipeline.topics import read_topic

    bars = fetch_synthetic(n_tickers=3, n_bars=400, seed=11)
    thresholds = Thresholds(price=100, variation=0.01)
    live = LivePipeline(bars, thresholds, isolated_wb, rate=300).start()
    try:
        wait_until(lambda: live.router.report.consumed >= 300, 60, "300 bars routed")
        producer = make_producer(isolated)
        producer.produce(live.control_topic, b"oops", b"price")
        producer.produce(live.control_topic, b'{"price": 135}', b"price")
        producer.flush(10)
        wait_until(lambda: live.price_changes, 10, "the router to take the new price")
        wait_until(lambda: live.replayed.is_set(), 60, "the replay to end")
        due = live.expected()
        wait_until(lambda: (topic_counts(live.topics, isolated)[[isolated.topics.alerts, isolated.topics.buy]]
                            .to_numpy() >= due[["alerts", "buy"]].to_numpy()).all(), 120, "every message due")
    finally:
        live.stop()
    [change] = live.price_changes
    assert change.price == 135 and live.router.control_errors[0].startswith("A control message must be JSON")
    routed = read_topic(isolated.topics.pricelist, settings=isolated)
    prices = price_in_force(routed, 100, [change])
    assert 0 < int((prices == 135).sum()) < len(bars)            # the change came mid-replay
    alerts = read_topic(isolated.topics.alerts, settings=isolated)
    judged = routed.assign(price=prices)
    assert len(alerts) == int((judged["close"] > judged["price"]).sum())
    assert (live.counts()[[isolated.topics.alerts, isolated.topics.buy]].to_numpy()
            == live.expected()[["alerts", "buy"]].to_numpy()).all()
    assert live.expected()["alerts"] < what_if(bars, thresholds).counts["alerts"]   # $135 lets fewer in


def test_apply_to_pipeline_reaches_the_what_if_counts(isolated_wb):
    bars = fetch_synthetic(n_tickers=2, n_bars=300, seed=4)
    thresholds = Thresholds(price=90, variation=0.008)
    counts = apply_to_pipeline(bars, thresholds, isolated_wb, timeout=180)
    expected = what_if(bars, thresholds).counts
    assert expected["buy"] > 0
    assert (counts == expected).all(), (counts, expected)


def test_flink_job_process_reports_its_error_in_one_line(settings, prefix):
    missing = settings.with_namespace(prefix)          # no topic of this namespace exists
    with Workbook(missing) as wb, \
            pytest.raises(StreamSqlError, match=rf"Topics missing: {missing.topics.alerts}"):
        FlinkJob.start(wb, timeout=120)


def test_caught_up_looks_only_at_the_current_query_group(isolated, prefix):
    """ksqlDB names a query's group after its id; an old query's group must not count."""
    topic = isolated.topics.alerts
    replay_bars(fetch_synthetic(n_tickers=1, n_bars=20, seed=1), topic=topic, settings=isolated,
                progress=False)
    old, current = (f"_confluent-ksql-{prefix}query_CSAS_BUY_STREAM_{n}" for n in (1, 2))
    with closing(make_consumer(current, isolated)) as consumer:   # the current query has read everything
        consumer.subscribe([topic])
        read = sum(len(batch) for batch in batches_to_end(consumer, timeout=60))
        consumer.commit(asynchronous=False)
    assert read == 20
    admin = make_admin(isolated)
    admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(  # the old one is behind
        old, [TopicPartition(topic, p, 0) for p in range(3)])])[old].result()
    with Workbook(isolated) as wb:
        wait_until_caught_up(wb, "query_CSAS_BUY_STREAM_2", [topic], timeout=20)
        with pytest.raises(WaitTimeout, match="query_CSAS_BUY_STREAM_1"):
            wait_until_caught_up(wb, "query_CSAS_BUY_STREAM_1", [topic], timeout=3)
    delete_groups(admin, [old, current])
