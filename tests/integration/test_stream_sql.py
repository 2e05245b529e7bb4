"""The buy join on the stack's engine (Flink here) and live mode, against the pandas reference."""
import pytest

from helpers.clients import make_admin
from helpers.dashboard import what_if
from helpers.live import LivePipeline, apply_to_pipeline
from helpers.produce import replay_bars
from helpers.route import RouterTopics, run_router
from helpers.rules import Thresholds, alerts_frame, buy_signals, variations_frame
from helpers.sources import fetch_sample, fetch_synthetic
from helpers.streamsql import JoinTopics, compare_rows, read_buy, run_buy_query
from helpers.topics import delete_topics, ensure_topics, topic_counts

pytestmark = pytest.mark.integration


@pytest.fixture
def routed_sample(settings, prefix):
    """The sample bars replayed and routed into prefixed topics."""
    router, join = RouterTopics.prefixed(prefix), JoinTopics.prefixed(prefix)
    names = [router.source, router.variations, router.alerts, router.dead_letter, join.buy]
    admin = make_admin(settings)
    ensure_topics(admin, names)
    bars = fetch_sample()
    replay_bars(bars, router.source, settings, progress=False)
    run_router(settings, Thresholds(), router, group_id=prefix + "router", progress=False)
    yield bars, join
    delete_topics(admin, names)


@pytest.mark.parametrize("threshold", [0.05, 0.02])
def test_buy_topic_equals_reference_on_sample(settings, routed_sample, prefix, threshold):
    bars, join = routed_sample
    run = run_buy_query(settings, threshold, join, until_caught_up=True, group_id=prefix + "sql")
    got = read_buy(settings, join.buy)
    expected = buy_signals(alerts_frame(bars, 195), variations_frame(bars), threshold)
    assert len(expected) > 0
    assert compare_rows(got, expected).empty
    assert len(got) == len(expected)
    assert run.engine in ("flink", "ksqldb")


def test_live_pipeline_matches_what_if(settings, prefix):
    bars = fetch_synthetic(n_tickers=3, n_bars=400, seed=11)
    thresholds = Thresholds(price=100, variation=0.01)
    expected = buy_signals(alerts_frame(bars, thresholds.price), variations_frame(bars), thresholds.variation)
    live = LivePipeline(bars, thresholds, settings, rate=2000, prefix=prefix).start()
    goal = what_if(bars, thresholds).counts
    assert goal["buy"] == len(expected) > 0
    live.wait_for(goal, timeout=180)
    counts = topic_counts(live.topics, settings)
    assert counts[live.router_topics.source] == counts[live.router_topics.variations] == len(bars)
    assert counts[live.router_topics.alerts] == int((bars["close"] > thresholds.price).sum())
    assert compare_rows(read_buy(settings, live.join_topics.buy), expected).empty
    delete_topics(make_admin(settings), live.topics)


def test_apply_to_pipeline_reaches_the_what_if_counts(settings, prefix):
    bars = fetch_synthetic(n_tickers=2, n_bars=300, seed=4)
    thresholds = Thresholds(price=90, variation=0.008)
    counts = apply_to_pipeline(bars, thresholds, settings, prefix=prefix, timeout=180)
    expected = what_if(bars, thresholds).counts
    assert expected["buy"] > 0
    assert (counts == expected).all(), (counts, expected)
    delete_topics(make_admin(settings), LivePipeline(bars, thresholds, settings, prefix=prefix).topics)


def test_flink_job_process_reports_its_error_in_one_line(settings, prefix):
    from helpers.flinksql import FlinkJob
    from helpers.stack import flink_connector_jar

    with pytest.raises(RuntimeError, match=rf"Topics missing: {prefix}alerts"):
        FlinkJob.start(flink_connector_jar(settings), settings.bootstrap_servers,
                       alerts_topic=prefix + "alerts", variations_topic=prefix + "variations",
                       buy_topic=prefix + "buy", timeout=120)
