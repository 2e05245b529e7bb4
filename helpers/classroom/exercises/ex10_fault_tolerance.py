"""The checks of notebook 10_fault_tolerance's exercises."""
from __future__ import annotations

from typing import Any

from helpers.classroom.exercises.common import (
    PLACEHOLDER,
    CheckResult,
    call,
    failed,
    is_placeholder,
    not_a_number,
    number,
    passed,
    plural,
)
from helpers.core.settings import Settings


def check_brokers_may_fail(predicted: Any, predicted_if_one: Any, topic: Any, survived: Any,
                           refused: Any) -> CheckResult:
    """10.1: how many brokers may be down while acks=all writes into `topic` still succeed, with the
    topic's min.insync.replicas and with min.insync.replicas=1: two answers, so no one constant passes."""
    ex = "10.1"
    for name, value in (("MAY_FAIL", predicted), ("MAY_FAIL_IF_ONE", predicted_if_one)):
        if wrong := not_a_number(ex, name, value, " of brokers"):
            return wrong
    replicas = int(topic.replication_factor)
    needed = int((topic.config or {}).get("min.insync.replicas", 1))
    truth, truth_if_one = replicas - needed, replicas - 1
    evidence = (f"Above, with 3 replicas and min.insync.replicas=2: one broker down, "
                f"{len(survived.delivered):,} of {len(survived.sent):,} bars delivered; two down, "
                f"{refused.errors.get('NOT_ENOUGH_REPLICAS', 0):,} of {len(refused.sent):,} refused "
                "with NOT_ENOUGH_REPLICAS.")
    if predicted == truth and predicted_if_one == truth_if_one:
        return passed(ex, f"{truth} of {replicas} with min.insync.replicas={needed}, {truth_if_one} with "
                          f"1: an acks=all write needs that many in-sync copies, and every broker down "
                          f"beyond {replicas} − {needed} takes one of them. The second setting buys "
                          f"{truth_if_one - truth} more brokers of availability for a weaker promise: a "
                          f"write confirmed by one broker alone. {evidence}")
    if predicted == predicted_if_one:
        return failed(ex, "Your two answers are the same: what does min.insync.replicas decide, and does "
                          f"it change with 1 instead of {needed}? {evidence}")
    wrong_name, wrong, setting = (("MAY_FAIL", predicted, needed) if predicted != truth
                                  else ("MAY_FAIL_IF_ONE", predicted_if_one, 1))
    if wrong >= replicas:
        why = "with every replica gone, nothing can store the write"
    elif wrong == replicas - 1 and setting > 1:
        why = (f"one replica left would keep the data, but min.insync.replicas={setting} asks for "
               f"{setting} copies before a write is confirmed")
    else:
        why = (f"count the replicas still in sync when {wrong + 1} of the {replicas} brokers are down, "
               f"and compare with min.insync.replicas={setting}")
    return failed(ex, f"{wrong_name} = {wrong}: {why}. {evidence}")


def as_seqs(value: Any) -> set[int] | None:
    """A student's collection of sequence numbers as a set of ints, or None."""
    if isinstance(value, (str, bytes, dict)) or number(value) is not None:
        return None
    try:
        return {int(v) for v in value}
    except (TypeError, ValueError):
        return None


def check_missing_and_lost(solution: Any, settings: Settings,
                           runs: dict[str, tuple[Any, str]]) -> CheckResult:
    """10.2: `solution(run, topic)` -> (missing, lost) for each named (run, topic), against the topic as
    read here. One of the runs lost confirmed writes, so trusting the delivery reports does not pass."""
    from helpers.pipeline.replication import messages_in_topic, read_sequence_numbers

    ex = "10.2"
    lines = []
    for label, (run, topic) in runs.items():
        answer, error = call(ex, f"missing_and_lost({label}, {topic!r})", solution, run, topic)
        if error:
            return error
        if not isinstance(answer, tuple) or len(answer) != 2:
            return failed(ex, f"missing_and_lost must return two sets, (missing, lost); for {label} it "
                              f"returned {type(answer).__name__}.")
        for name, value in zip(("missing", "lost"), answer, strict=True):
            if is_placeholder(value):
                return failed(ex, f"{name} {PLACEHOLDER}")
            if as_seqs(value) is None:
                return failed(ex, f"{name} must be a set of sequence numbers, not {type(value).__name__}.")
        read = read_sequence_numbers(settings, topic)
        if len(read) != messages_in_topic(settings, topic):
            return failed(ex, f"{topic} changed while the check read it: run the check again.")
        present = set(read["seq"])
        sent, delivered = set(run.sent), set(run.delivered)
        truth_missing, truth_lost = sent - present, delivered - present
        yours, your_lost = as_seqs(answer[0]) or set(), as_seqs(answer[1]) or set()
        if yours != truth_missing:
            if yours & present:
                return failed(ex, f"For {label}, {plural(len(yours & present), 'number')} of your missing "
                                  f"are in {topic} (e.g. {min(yours & present):,}): a bar is missing only if "
                                  "the topic does not hold it, whatever its delivery report said.")
            if yours - sent:
                return failed(ex, f"For {label}, your missing holds numbers it never sent (e.g. "
                                  f"{min(yours - sent):,}).")
            example = min(truth_missing - yours)
            report = run.failed.get(example, "delivered")
            return failed(ex, f"For {label}, {plural(len(truth_missing - yours), 'sent number')} are neither "
                              f"in {topic} nor in your missing, e.g. {example:,} (its delivery report says "
                              f"{report}): what does the topic itself hold?")
        if your_lost != truth_lost:
            return failed(ex, f"For {label}, lost has {len(your_lost):,} numbers, {len(truth_lost):,} "
                              "expected: of the missing bars, which did the producer believe were written?")
        knew = len(truth_missing) - len(truth_lost)
        names = ", ".join(error_names(run, truth_missing)) or "no error"
        lines.append(f"{label}: {len(truth_missing):,} of {len(sent):,} bars never reached {topic}, {knew:,} "
                     f"reported failed ({names}: the producer knew) and {len(truth_lost):,} lost silently, "
                     "confirmed then gone")
    return passed(ex, "; ".join(lines) + ". Only reading the topic back tells the two apart: a delivery "
                      "report says what a broker confirmed, not what the cluster still holds.")


def error_names(run: Any, seqs: set[int]) -> list[str]:
    """The error names of a run's failed messages among `seqs`."""
    return sorted({run.failed[s] for s in seqs if s in run.failed})
