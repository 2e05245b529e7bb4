"""Notebook 10's cluster for real: a broker SIGKILLed mid-replay of 100,000 bars, nothing lost or doubled;
and the throw-away cluster leaves no process behind, whatever happens to its Python process."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from confluent_kafka.admin import NewTopic

from helpers.core.errors import WaitTimeout
from helpers.core.settings import PROJECT_ROOT
from helpers.core.waiting import wait_until
from helpers.infra.clients import make_admin
from helpers.infra.lab import start_lab_cluster, sweep_stale_labs
from helpers.pipeline.replication import (
    election_seconds,
    messages_in_topic,
    partition_leaders,
    read_sequence_numbers,
    replay_numbered,
    tally_runs,
    wait_for_isr,
    wait_for_leader,
    watch_partitions,
)
from helpers.pipeline.sources import fetch_sample

pytestmark = pytest.mark.integration

BARS = 100_000
RATE = 10_000      # messages per second: the replay lasts about 10 s, the kill lands after 3 s


@pytest.fixture
def lab(settings):
    """A lab cluster of its own (three brokers, one controller), removed after the test."""
    cluster = start_lab_cluster(settings)
    yield cluster
    cluster.close()


def hundred_thousand_bars() -> pd.DataFrame:
    """The 12,154 real daily bars, repeated until there are 100,000 of them."""
    sample = fetch_sample()
    return pd.concat([sample] * (BARS // len(sample) + 1), ignore_index=True).head(BARS)


def test_broker_killed_mid_replay_of_100k_bars_loses_and_doubles_nothing(lab):
    admin = make_admin(lab.settings)
    topic = "pricelist"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3,
                                  config={"min.insync.replicas": "2", "retention.ms": "-1"})])[topic].result()
    wait_for_isr(admin, topic, 3)
    victim = partition_leaders(admin, topic)[0]
    watch = watch_partitions(lab, topic)
    safe = {"acks": "all", "enable.idempotence": True, "delivery.timeout.ms": 60_000, "linger.ms": 20}
    faults = {BARS * 3 // 10: lambda: lab.kill(victim), BARS * 7 // 10: lambda: lab.restart(victim)}
    try:
        run = replay_numbered(lab.conf(safe), topic, hundred_thousand_bars(), rate=RATE, faults=faults)
        wait_for_isr(admin, topic, 3, timeout=120)
    finally:
        watch.stop()
    (killed, what), _ = lab.events
    assert what == f"kill broker {victim}"
    # the kill really was in the middle: deliveries on both sides of it, and a new leader was elected
    after_kill = sum(1 for t in run.delivered.values() if t > killed)
    assert 30_000 < after_kill < BARS - 10_000, after_kill
    assert election_seconds(watch.frame(topic), 0, killed, victim) is not None
    assert run.most_queued > 1_000           # the producer held the bars during the election

    counted = tally_runs([run], read_sequence_numbers(lab.settings, topic))
    assert (counted.sent, counted.delivered, counted.failed, counted.unreported) == (BARS, BARS, 0, 0)
    assert (counted.lost, counted.doubled, counted.missing, counted.unknown) == (0, 0, 0, 0)
    assert counted.read_back == counted.distinct == messages_in_topic(lab.settings, topic) == BARS


def lab_processes(root: str) -> list[int]:
    """Pids of running processes whose command line mentions the lab's folder."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if root in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("unclean", [True, False])
def test_unclean_election_loses_exactly_the_writes_the_old_leader_confirmed_alone(lab, unclean):
    """Notebook 10's last section: the follower dies, the leader confirms 100 bars alone (acks=1),
    the leader dies, the follower returns. Unclean: it leads at once and those 100 are gone for
    good; clean (the default): the partition waits, offline, for the old leader, and keeps them."""
    admin = make_admin(lab.settings)
    topic = "unclean" if unclean else "clean"
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2]], config={
        "min.insync.replicas": "1", "unclean.leader.election.enable": str(unclean).lower()})])[topic].result()
    wait_for_isr(admin, topic, 2)
    bars = fetch_sample().head(300)
    acks1 = {"acks": "1", "enable.idempotence": False}
    both = replay_numbered(lab.conf({**acks1, "acks": "all"}), topic, bars.head(200))
    lab.kill(2)
    wait_for_isr(admin, topic, 1)
    alone = replay_numbered(lab.conf(acks1), topic, bars.iloc[200:], first_seq=200)
    assert len(both.delivered) == 200 and len(alone.delivered) == 100
    lab.kill(1)
    lab.restart(2)
    if unclean:
        wait_for_leader(admin, topic, 2)
    else:
        with pytest.raises(WaitTimeout):
            wait_for_leader(admin, topic, 2, timeout=15)       # offline: no replica in sync is up
    lab.restart(1)
    wait_for_isr(admin, topic, 2)
    result = tally_runs([both, alone], read_sequence_numbers(lab.settings, topic))
    assert result.delivered == 300 and result.doubled == 0
    assert result.lost == (100 if unclean else 0)
    assert messages_in_topic(lab.settings, topic) == (200 if unclean else 300)


@pytest.mark.parametrize("ending", ["os._exit(1)", "sys.exit(0)"])
def test_lab_cluster_never_outlives_its_process(settings, ending):
    """Crash (no atexit: the JVMs die with their parent) or plain exit (atexit closes the cluster)."""
    code = ("import os, sys; from helpers.infra.lab import start_lab_cluster; "
            "from helpers.infra.environment import load_settings; "
            "lab = start_lab_cluster(load_settings()); print(lab.root, flush=True); " + ending)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                         cwd=PROJECT_ROOT, env={**os.environ, "WORKBOOK_STACK": "local"})
    root = out.stdout.split()[0]
    assert Path(root).parent == settings.state_dir / "lab", out.stdout + out.stderr[-2000:]
    assert wait_until(lambda: lab_processes(root) == [], 20, f"the lab's JVMs under {root} to die") is True
    if ending == "sys.exit(0)":
        assert not Path(root).exists()       # closed at exit: folder removed too
    else:                                    # killed: the folder stays until a later lab sweeps it
        assert Path(root).is_dir()
        # a JVM's command line is gone as soon as it starts to exit, its process a little later
        swept = wait_until(lambda: Path(root) in sweep_stale_labs(settings, min_age=0), 20,
                           f"the sweep to take {root}")
        assert swept is True and not Path(root).exists()
