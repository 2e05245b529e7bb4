"""Faults on the real stack, counted exactly: poison pills, a router killed mid-stream, a broker restart.

Every test works in a namespace of its own (`isolated`), so its topics and
groups start empty. Lost = bars that never reached `variations`; doubled =
bars that reached it more than once. Both are counted by reading the topic back.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from helpers.core.rules import Thresholds
from helpers.core.settings import PROJECT_ROOT
from helpers.infra.clients import make_producer
from helpers.infra.environment import child_env
from helpers.infra.kafka import LocalKafka
from helpers.infra.status import wait_kafka_ready
from helpers.pipeline.produce import replay_bars
from helpers.pipeline.route import run_router
from helpers.pipeline.sources import fetch_synthetic
from helpers.pipeline.topics import count_messages, read_topic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from strategies import records  # noqa: E402

pytestmark = pytest.mark.integration
BARS = 200_000


def outcome(variations, sent) -> dict:
    """Lost and doubled bars of `sent` (a frame of bars) in the `variations` read back."""
    got = Counter(zip(variations["ticker"], variations["ts"]))
    want = Counter(zip(sent["ticker"], sent["ts"]))
    return {"sent": sum(want.values()), "read": sum(got.values()),
            "lost": sum((want - got).values()), "doubled": sum((got - want).values()),
            "unexpected": len(set(got) - set(want))}


# --- poison pills: generated records through a running router --------------------

@hypothesis_settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(payloads=st.lists(st.tuples(records, st.none() | st.binary(max_size=12)), min_size=50, max_size=150))
def test_a_running_router_puts_every_record_in_exactly_one_place(settings, payloads):
    """Whatever arrives, the router neither dies nor loses or doubles a record."""
    import uuid

    from helpers.infra.clients import make_admin
    from helpers.pipeline.topics import delete_topics, ensure_topics

    mine = settings.with_namespace(f"h{uuid.uuid4().hex[:10]}")
    admin = make_admin(mine)
    ensure_topics(admin, mine.topics.all)
    try:
        producer = make_producer(mine)
        for value, key in payloads:
            producer.produce(mine.topics.pricelist, value, key)
        assert producer.flush(30) == 0
        report = run_router(mine, Thresholds(price=195), progress=False)
        assert report.consumed == len(payloads)
        dead = read_topic(mine.topics.dead_letter, settings=mine)
        routed = read_topic(mine.topics.variations, settings=mine)
        refused = {(int(p), int(o)) for p, o in zip(dead.get("source.partition", []),
                                                     dead.get("source.offset", []))}
        assert len(refused) == len(dead) == report.dead_letters      # each refused once
        assert len(routed) + len(dead) == len(payloads)               # each record in one place
        originals = read_topic(mine.topics.pricelist, settings=mine, schema="raw")
        kept = originals[[(p, o) not in refused for p, o in zip(originals["partition"], originals["offset"])]]
        expected = Counter((json.loads(v)["ticker"], json.loads(v)["ts"]) for v in kept["value"])
        assert Counter(zip(routed["ticker"], routed["ts"])) == expected
    finally:
        delete_topics(admin, mine.topics.all)


# --- a router killed in the middle of 200,000 bars ----------------------------------

def route_in_background(namespace: str, exactly_once: bool) -> subprocess.Popen:
    """`workbook route --until-caught-up` in a process of its own, in the test's namespace."""
    args = [sys.executable, "-m", "helpers.cli", "route", "--until-caught-up"]
    args += ["--exactly-once"] if exactly_once else []
    return subprocess.Popen(args, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(WORKBOOK_STUDENT=namespace, WORKBOOK_PROGRESS="0"))


def test_router_killed_mid_stream_loses_nothing(isolated):
    """Both delivery modes side by side, each in a namespace of its own: the restarted router
    waits out its dead twin's session (45 s) in both at once."""
    from helpers.infra.clients import make_admin
    from helpers.pipeline.topics import delete_topics, ensure_topics

    modes = {"at-least-once": isolated.with_namespace(isolated.namespace + "-alo"),
             "exactly-once": isolated.with_namespace(isolated.namespace + "-eos")}
    admin = make_admin(isolated)
    bars = fetch_synthetic(n_tickers=20, n_bars=BARS // 20, seed=5)
    try:
        for mine in modes.values():
            ensure_topics(admin, mine.topics.all)
            assert replay_bars(bars, settings=mine, progress=False).delivered == BARS
        first = {mode: route_in_background(mine.namespace, mode == "exactly-once")
                 for mode, mine in modes.items()}
        deadline, running = time.monotonic() + 120, set(modes)
        while running:                                     # kill each at a third of the way
            for mode in sorted(running):
                assert first[mode].poll() is None, first[mode].communicate()
                if count_messages(modes[mode].topics.variations, modes[mode]) >= BARS // 3:
                    first[mode].send_signal(signal.SIGKILL)    # a crash: no flush, no commit, no goodbye
                    first[mode].wait()
                    running.discard(mode)
            assert time.monotonic() < deadline, f"no progress from the routers of {sorted(running)}"
            time.sleep(0.05)
        second = {mode: route_in_background(mine.namespace, mode == "exactly-once")
                  for mode, mine in modes.items()}
        for mode, mine in modes.items():
            out, err = second[mode].communicate(timeout=300)
            assert second[mode].returncode == 0, err
            result = outcome(read_topic(mine.topics.variations, settings=mine, timeout=120), bars)
            print(f"\nrouter SIGKILLed at 1/3 ({mode}): {result}")
            assert result["lost"] == 0 and result["unexpected"] == 0
            if mode == "exactly-once":
                assert result["doubled"] == 0 and result["read"] == BARS
    finally:
        delete_topics(admin, [name for mine in modes.values() for name in mine.topics.all])


def test_a_second_exactly_once_router_of_the_group_does_not_fence_the_first(isolated):
    """Each exactly-once router has a transactional id of its own. Both are started (each runs
    init_transactions) before the first routes anything: with one id shared by the group, the
    second's init_transactions fenced the first, whose transactions then failed."""
    from helpers.infra.clients import make_admin
    from helpers.pipeline.route import Router
    from helpers.pipeline.topics import delete_topics, ensure_topics

    admin = make_admin(isolated)
    bars = fetch_synthetic(n_tickers=10, n_bars=2_000, seed=9)
    try:
        ensure_topics(admin, isolated.topics.all)
        assert replay_bars(bars, settings=isolated, progress=False).delivered == len(bars)
        with Router(isolated, exactly_once=True) as first, Router(isolated, exactly_once=True) as second:
            assert first.producer is not second.producer
            report = first.run(until_caught_up=True, progress=False)
            assert report.consumed == len(bars)
            assert second.run(until_caught_up=True, progress=False).consumed == 0   # all committed
        result = outcome(read_topic(isolated.topics.variations, settings=isolated, timeout=120), bars)
        assert result["lost"] == result["doubled"] == result["unexpected"] == 0, result
    finally:
        delete_topics(admin, isolated.topics.all)


# --- the broker stopped and restarted in the middle of a replay --------------------

#: what the replay's producer can have in flight: 5 requests per partition of 3, each about 20 ms
#: (linger.ms) of bars at the test's 20,000 bars/s, rounded up
IN_FLIGHT_BARS = 2_000


def test_broker_restart_mid_replay_loses_no_bar_and_doubles_at_most_what_was_in_flight(isolated):
    """The idempotent producer loses nothing across a broker restart, and usually doubles nothing.
    Not always: after some errors librdkafka bumps the producer's epoch and sends again the
    batches it had in flight, which the broker may already have written (librdkafka issue #4953,
    open). Seen once in CI under load, the broker down 21 s: 82 bars twice. Only transactions
    rule it out (notebook 05). Also seen in CI: the broker down over a minute, and a replay that
    flushed for 60 s counted 98,774 bars still on their way as failed; it now waits for every
    delivery report."""
    if isolated.stack != "local":
        pytest.skip("restarts the local stack's broker")
    bars = fetch_synthetic(n_tickers=20, n_bars=5_000, seed=6)        # 100,000 bars
    kafka = LocalKafka.for_settings(isolated)
    report: dict = {}
    replay = threading.Thread(target=lambda: report.update(
        r=replay_bars(bars, settings=isolated, rate=20_000, progress=False)))
    replay.start()
    time.sleep(1.5)                                   # about 30,000 bars in
    stopped_at = time.monotonic()
    kafka.stop()                                      # a controlled shutdown, then a new start
    kafka.start()
    wait_kafka_ready(isolated, 120)
    down_s = time.monotonic() - stopped_at
    replay.join(timeout=400)                          # a message's report may take message.timeout.ms
    assert not replay.is_alive() and "r" in report, f"broker down {down_s:.1f} s; the replay failed"
    assert report["r"].failed == 0, report
    back = read_topic(isolated.topics.pricelist, settings=isolated, timeout=120)
    result = outcome(back, bars)
    print(f"\nbroker down {down_s:.1f} s mid-replay: {result}")
    assert result["lost"] == result["unexpected"] == 0 and result["sent"] == len(bars), result
    assert result["read"] == len(bars) + result["doubled"] and result["doubled"] <= IN_FLIGHT_BARS, result
