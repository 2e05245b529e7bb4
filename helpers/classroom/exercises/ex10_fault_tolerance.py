"""The checks of notebook 10_fault_tolerance's exercises."""
from __future__ import annotations

from typing import Any

from helpers.classroom.exercises.common import (
    PLACEHOLDER,
    CheckResult,
    failed,
    is_placeholder,
    not_a_number,
    number,
    passed,
    plural,
)
from helpers.core.settings import Settings


def check_brokers_may_fail(predicted: Any, topic: Any, survived: Any, refused: Any) -> CheckResult:
    """10.1: how many brokers may be down while acks=all writes into `topic` still succeed."""
    ex = "10.1"
    if wrong := not_a_number(ex, "MAY_FAIL", predicted, " of brokers"):
        return wrong
    replicas = int(topic.replication_factor)
    needed = int((topic.config or {}).get("min.insync.replicas", 1))
    truth = replicas - needed
    evidence = (f"Above, with 3 replicas and min.insync.replicas=2: one broker down, "
                f"{len(survived.delivered):,} of {len(survived.sent):,} bars delivered; two down, "
                f"{refused.errors.get('NOT_ENOUGH_REPLICAS', 0):,} of {len(refused.sent):,} refused "
                "with NOT_ENOUGH_REPLICAS.")
    if predicted == truth:
        return passed(ex, f"{truth} of {replicas}: a write with acks=all needs {needed} in-sync replicas, "
                          f"so {replicas} − {needed} = {truth} brokers holding a replica may be down. "
                          f"{evidence}")
    if predicted == replicas - 1:
        why = (f"one replica left would keep the data, but min.insync.replicas={needed} asks for {needed} "
               "copies before a write is confirmed")
    elif predicted >= replicas:
        why = "with every replica gone, nothing can store the write"
    else:
        why = f"count the replicas that stay in sync when {predicted + 1} brokers are down"
    return failed(ex, f"You said {predicted}: {why}. {evidence}")


def as_seqs(value: Any) -> set[int] | None:
    """A student's collection of sequence numbers as a set of ints, or None."""
    if isinstance(value, (str, bytes, dict)) or number(value) is not None:
        return None
    try:
        return {int(v) for v in value}
    except (TypeError, ValueError):
        return None


def check_missing_and_lost(missing: Any, lost: Any, run: Any, settings: Settings, topic: str) -> CheckResult:
    """10.2: the sequence numbers a replay sent that never reached the topic, and those lost silently."""
    from helpers.pipeline.replication import messages_in_topic, read_sequence_numbers

    ex = "10.2"
    for name, value in (("MISSING", missing), ("LOST", lost)):
        if is_placeholder(value):
            return failed(ex, f"{name} {PLACEHOLDER}")
        if as_seqs(value) is None:
            return failed(ex, f"{name} must be a set of sequence numbers, not {type(value).__name__}: "
                              "set(fast.sent) is one.")
    read = read_sequence_numbers(settings, topic)
    if len(read) != messages_in_topic(settings, topic):
        return failed(ex, f"{topic} changed while the check read it: run the exercise cell again.")
    present = set(read["seq"])
    sent, delivered = set(run.sent), set(run.delivered)
    truth_missing, truth_lost = sent - present, delivered - present
    yours, your_lost = as_seqs(missing) or set(), as_seqs(lost) or set()
    if yours != truth_missing:
        if yours & present:
            return failed(ex, f"{plural(len(yours & present), 'number')} of your MISSING are in the topic "
                              f"(e.g. {min(yours & present):,}): keep only what was sent and never read "
                              "back.")
        example = min(truth_missing - yours)
        reason = run.failed.get(example, "delivered")
        return failed(ex, f"{plural(len(truth_missing - yours), 'sent number')} are neither in the topic nor "
                          f"in your MISSING, e.g. {example:,} (its delivery report: {reason}). "
                          "MISSING = set(fast.sent) − the numbers read back.")
    if your_lost != truth_lost:
        return failed(ex, f"LOST has {len(your_lost):,} numbers, {len(truth_lost):,} expected: the missing "
                          "ones that the producer reported delivered (fast.delivered holds the numbers "
                          "reported delivered). The others were reported failed: the producer knew.")
    knew = len(truth_missing) - len(truth_lost)
    names = ", ".join(error_names(run, truth_missing)) or "no error"
    return passed(ex, f"{len(truth_missing):,} of {len(sent):,} bars never reached {topic}: {knew:,} "
                      f"reported failed ({names}: the producer knew), and {len(truth_lost):,} lost silently, "
                      "confirmed then gone. A killed broker leaves its writes in the page cache; a power "
                      "cut or a dead disk would not, and with one replica nothing else has a copy.")


def error_names(run: Any, seqs: set[int]) -> list[str]:
    """The error names of a run's failed messages among `seqs`."""
    return sorted({run.failed[s] for s in seqs if s in run.failed})
