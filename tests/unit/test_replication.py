"""Notebook 10's counting and timing, without services: exact tallies, elections, ISR tables, plots."""
import importlib

import numpy as np
import pandas as pd
import pytest

from helpers.core.errors import InputError
from helpers.infra.lab import check_broker
from helpers.pipeline.replication import (
    ReplayRun,
    Tally,
    election_seconds,
    isr_at,
    merge_events,
    per_second,
    plot_fault_timeline,
    recovery_seconds,
    replay_numbered,
    tally,
    tally_runs,
    with_gaps,
)

# --- tally: every number counted exactly --------------------------------------------

def test_everything_delivered_and_read_once():
    assert tally(range(5), range(5), [], [3, 1, 0, 4, 2]) == Tally(
        sent=5, delivered=5, failed=0, unreported=0, read_back=5, distinct=5,
        lost=0, missing=0, doubled=0, failed_but_present=0, unknown=0)


def test_each_kind_of_trouble_is_counted_once():
    # 0-5 delivered; 6, 7 failed; 8 unreported. Read back: 0-3 (2 twice, 3 three times), 7 (failed yet
    # written), 99 (never sent); 4 and 5 delivered but gone: silently lost.
    counted = tally(range(9), range(6), [6, 7], [0, 1, 2, 2, 3, 3, 3, 7, 99])
    assert counted == Tally(sent=9, delivered=6, failed=2, unreported=1, read_back=9, distinct=6,
                            lost=2, missing=4, doubled=3, failed_but_present=1, unknown=1)
    # the identity notebook 10 asserts against the broker's count
    assert counted.read_back == counted.delivered - counted.lost + counted.failed_but_present \
        + counted.doubled + counted.unknown


def test_failed_messages_that_never_arrived_are_missing_not_lost():
    counted = tally(range(4), [0, 1], [2, 3], [0, 1])
    assert (counted.lost, counted.missing, counted.failed_but_present) == (0, 2, 0)


def test_a_sequence_number_sent_twice_is_refused():
    with pytest.raises(InputError, match="unique"):
        tally([1, 1], [1], [], [1])


def test_a_message_both_delivered_and_failed_is_refused():
    with pytest.raises(InputError, match="both delivered and failed"):
        tally([1, 2], [1, 2], [2], [1, 2])


def test_a_resend_must_number_every_bar_it_sends_before_anything_is_produced():
    bars = pd.DataFrame({"ticker": ["AAPL"] * 3})
    with pytest.raises(InputError, match="2 numbers for 3 bars"):
        replay_numbered({"bootstrap.servers": "nowhere:1"}, "t", bars, seqs=[7, 8])


def test_tally_runs_adds_replays_into_one_topic():
    first, second = ReplayRun("t", sent=[0, 1, 2]), ReplayRun("t", sent=[3, 4])
    first.delivered = {0: 1.0, 1: 1.0, 2: 1.0}
    second.failed, second.delivered = {3: "NOT_ENOUGH_REPLICAS"}, {4: 2.0}
    counted = tally_runs([first, second], pd.DataFrame({"seq": [0, 1, 2, 4, 4]}))
    assert (counted.sent, counted.delivered, counted.failed, counted.missing,
            counted.doubled) == (5, 4, 1, 1, 1)
    assert second.errors == {"NOT_ENOUGH_REPLICAS": 1}


def test_run_summary_counts_slow_deliveries():
    run = ReplayRun("t", sent=[0, 1, 2], delivered={0: 1.0, 1: 1.0}, failed={2: "_MSG_TIMED_OUT"},
                    latency={0: 0.01, 1: 3.2, 2: 5.0}, queued=[(0.0, 10), (1.0, 250)],
                    started=0.0, finished=2.0)
    assert run.slow(1.0) == 1          # the failed one is not a slow delivery
    assert run.most_queued == 250
    assert str(run) == ("3 sent, 2 delivered, failed: 1 _MSG_TIMED_OUT, in 2.0 s; at most 250 messages "
                        "held by the producer; slowest delivery 3.2 s after produce()")


# --- samples of leaders and ISR -------------------------------------------------------

def samples() -> pd.DataFrame:
    """Partition 0 led by broker 1, killed at t=10; new leader 2 seen at 13.2; ISR back at 20.5."""
    rows = []
    for t in np.arange(9.0, 22.0, 0.1).round(1):
        for p in (0, 1):
            isr = (1, 2, 3) if t < 13.2 or t >= 20.5 else (2, 3)
            if p == 1 and 20.5 <= t < 20.8:
                isr = (2, 3)           # partition 1 catches up 0.3 s later
            leader = (1 if t < 13.2 else 2) if p == 0 else 3
            rows.append({"time": float(t), "topic": "t", "partition": p, "leader": leader,
                         "isr": isr, "isr_size": len(isr)})
    return pd.DataFrame(rows)


def test_election_is_measured_from_the_kill_to_the_first_sample_with_another_leader():
    assert election_seconds(samples(), 0, 10.0, victim=1) == pytest.approx(3.2)
    assert election_seconds(samples(), 0, 10.0, victim=2) == pytest.approx(0.0)   # already not the victim
    assert election_seconds(samples()[samples()["time"] < 13], 0, 10.0, victim=1) is None


def test_recovery_waits_for_every_partition():
    assert recovery_seconds(samples(), 15.0, 3) == pytest.approx(20.8 - 15.0)
    assert recovery_seconds(samples(), 15.0, 1) is None


def test_isr_at_named_moments():
    table = isr_at(samples(), {"before": 10.0, "during": 14.05, "after": 21.0})
    assert table.loc["before", "partition 0"] == [1, 2, 3]
    assert table.loc["during", "partition 1"] == [2, 3]
    assert table.map(len).loc["after"].tolist() == [3, 3]


def test_per_second_counts_in_buckets():
    rates = per_second([0.1, 0.2, 0.9], 0.0, 1.0, 0.25)
    assert rates.tolist() == [8.0, 0.0, 0.0, 4.0, 4.0]    # the last entry closes the step plot
    assert rates.index.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_gaps_in_sampling_are_shown_as_gaps():
    times, values = with_gaps(np.array([0.0, 0.1, 1.5]), np.array([3.0, 3.0, 2.0]))
    assert times.tolist() == pytest.approx([0.0, 0.1, 0.2, 1.5])
    assert np.isnan(values[2]) and values[[0, 1, 3]].tolist() == [3.0, 3.0, 2.0]


def test_simultaneous_events_share_one_mark():
    events = [(5.1, "restart broker 2"), (1.0, "kill broker 1"), (5.0, "restart broker 1")]
    assert merge_events(events) == [(1.0, "kill broker 1"), (5.0, "restart broker 1 + restart broker 2")]


def test_only_brokers_may_be_killed():
    check_broker(2)
    with pytest.raises(InputError, match="controller"):
        check_broker(4)


def test_timeline_plot_has_rates_queue_and_isr():
    import matplotlib

    matplotlib.use("Agg")
    run = ReplayRun("t", sent=list(range(4)), delivered={0: 9.5, 1: 9.6, 2: 14.0}, failed={3: "x"},
                    failed_at={3: 14.1}, queued=[(9.0, 1), (12.0, 40)], started=9.0, finished=15.0)
    fig, axes = plot_fault_timeline(run, samples(), [(10.0, "kill broker 1")], title="test")
    assert len(axes) == 3 and axes[0].get_title() == "test"
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["delivered (3)", "failed (1)"]
    assert axes[2].get_ylabel() == "in-sync replicas" and "UTC" in axes[2].get_xlabel()
    assert any("kill broker 1" in t.get_text() for t in axes[0].texts)


def test_docker_lab_runs_compose_kill_start_and_rm(monkeypatch, tmp_path):
    """With Docker, the lab is the `faults` profile: the commands are recorded here (no engine)."""
    from helpers.infra import lab as replication
    from helpers.infra.environment import load_settings
    # helpers.infra.compose is also a function
    compose_module = importlib.import_module("helpers.infra.compose")

    calls = []
    monkeypatch.setattr(compose_module, "compose", lambda *args, env=None: calls.append((args, env)))
    monkeypatch.setattr(replication, "wait_for_brokers", lambda lab, count, timeout: None)
    settings = load_settings({"WORKBOOK_STACK": "docker"}, dotenv=tmp_path / "none")
    lab = replication.start_lab_cluster(settings)
    lab.kill(2)
    lab.restart(2)
    lab.close()
    ports = [address.rsplit(":", 1)[1] for address in lab.bootstrap_servers.split(",")]
    services = ("lab-controller", "lab-kafka-1", "lab-kafka-2", "lab-kafka-3")
    assert [args for args, _ in calls] == [
        ("--profile", "faults", "up", "-d", "--wait", *services),
        ("--profile", "faults", "kill", "lab-kafka-2"),
        ("--profile", "faults", "start", "lab-kafka-2"),
        ("--profile", "faults", "rm", "--stop", "--force", "--volumes", *services)]
    assert calls[0][1] == {f"LAB_KAFKA_PORT_{i}": port for i, port in zip((1, 2, 3), ports)}
    assert [what for _, what in lab.events] == ["kill broker 2", "restart broker 2"]
    assert replication._OPEN == []


def test_docker_lab_that_fails_to_start_is_removed(monkeypatch, tmp_path):
    from helpers.core.errors import StackError
    from helpers.infra import lab as replication
    from helpers.infra.environment import load_settings
    # helpers.infra.compose is also a function
    compose_module = importlib.import_module("helpers.infra.compose")

    calls = []

    def compose(*args, env=None):
        calls.append(args)
        if "up" in args:
            raise StackError("`docker compose up` failed (exit 1).")

    monkeypatch.setattr(compose_module, "compose", compose)
    with pytest.raises(StackError, match="failed"):
        replication.start_lab_cluster(load_settings({"WORKBOOK_STACK": "docker"}, dotenv=tmp_path / "none"))
    assert calls[-1][:3] == ("--profile", "faults", "rm") and replication._OPEN == []


def test_external_stack_cannot_host_the_lab(tmp_path):
    from helpers.core.errors import StackError
    from helpers.infra import lab as replication
    from helpers.infra.environment import load_settings

    settings = load_settings({"WORKBOOK_STACK": "external", "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
                              "DATABASE_URL": "mysql+pymysql://u:p@h/d"}, dotenv=tmp_path / "none")
    with pytest.raises(StackError, match="local or the Docker stack"):
        replication.start_lab_cluster(settings)


def test_sweep_removes_only_old_lab_folders_with_nothing_running(tmp_path):
    import json
    import os

    import psutil

    from helpers.infra import lab as replication
    from helpers.infra.environment import load_settings

    settings = load_settings({"WORKBOOK_STACK": "local", "WORKBOOK_STATE_DIR": str(tmp_path)},
                             dotenv=tmp_path / "none")
    labs = tmp_path / "lab"
    dead, alive, young = (labs / name / "node-1" for name in ("run-dead", "run-alive", "run-young"))
    for node in (dead, alive, young):
        node.mkdir(parents=True)
    me = psutil.Process()
    (alive / "kafka.pid").write_text(json.dumps({"pid": me.pid, "started": me.create_time()}))
    (dead / "kafka.pid").write_text(json.dumps({"pid": me.pid, "started": me.create_time() - 100}))
    for folder in (dead.parent, alive.parent):
        os.utime(folder, (0, 0))
    assert replication.sweep_stale_labs(settings) == [dead.parent]
    assert sorted(p.name for p in labs.iterdir()) == ["run-alive", "run-young"]
