"""Exercises that check themselves: what every check shares (classroom layer, 01–10).

A student edits a marked cell (first line `# EXERCISE 04.1 — edit this cell`);
the cell after it calls the exercise's check, which compares the answer with
an independent computation (pandas on the bars in MySQL, counts from Kafka's
offsets, what the stream-SQL engine wrote) and returns a `CheckResult`: ✅, or
❌ with a hint computed from the student's own answer. A wrong answer never
raises, so a notebook with unsolved exercises still runs top to bottom; only
a service that does not answer raises (one sentence, as everywhere).

Every exercise writes into a namespace of its own (`lab("04", settings)` is
`settings.within("ex04")`): its topics and groups never touch the course's,
which the next notebook reads. The solutions live in `solutions/`, apart from
the notebooks (`make solutions`).
"""
from __future__ import annotations

import html
import traceback
import uuid
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from helpers.core.errors import InputError
from helpers.core.settings import Settings
from helpers.infra.clients import assign_from_start, batches_to_end, make_admin, make_consumer, make_producer
from helpers.pipeline.topics import (
    reset_topics,
)

if TYPE_CHECKING:
    from helpers.infra.workbook import Workbook

__all__ = ["CheckResult", "call", "copy_topic", "failed", "lab", "not_a_number", "number", "passed", "plural"]

DAY_MS = 86_400_000
FIVE_MINUTES_MS = 5 * 60_000


# --- the result a check cell shows -------------------------------------------------

@dataclass
class CheckResult:
    """What a check says: passed or not, and a sentence that teaches either way."""

    exercise: str
    passed: bool
    message: str
    details: pd.DataFrame | None = None

    @property
    def title(self) -> str:
        """'✅ Exercise 04.1: passed' or '❌ Exercise 04.1: not yet'."""
        mark, verdict = ("✅", "passed") if self.passed else ("❌", "not yet")
        return f"{mark} Exercise {self.exercise}: {verdict}"

    def __repr__(self) -> str:
        text = f"{self.title}\n{self.message}"
        if self.details is not None and not self.details.empty:
            text += "\n" + self.details.to_string()
        return text

    def _repr_html_(self) -> str:
        color = "#2e7d32" if self.passed else "#c62828"
        table = self.details.to_html() if self.details is not None and not self.details.empty else ""
        return (f'<div style="border-left: 6px solid {color}; padding: 0.3em 0.8em">'
                f"<b>{html.escape(self.title)}</b><br>{html.escape(self.message)}{table}</div>")


def passed(exercise: str, message: str, details: pd.DataFrame | None = None) -> CheckResult:
    """A passing result."""
    return CheckResult(exercise, True, message, details)


def failed(exercise: str, message: str, details: pd.DataFrame | None = None) -> CheckResult:
    """A failing result whose message says what to look at."""
    return CheckResult(exercise, False, message, details)


PLACEHOLDER = ("still holds the placeholder `...`: replace it with your answer, "
               "run the exercise cell, then this one.")


def is_placeholder(value: Any) -> bool:
    """True for the starter's `...` (Ellipsis)."""
    return value is Ellipsis


def not_a_number(ex: str, name: str, value: Any, unit: str = "") -> CheckResult | None:
    """The failed result for an answer still `...` or not a number ('must be a number of bars'), else None."""
    if is_placeholder(value):
        return failed(ex, f"{name} {PLACEHOLDER}")
    if number(value) is None:
        return failed(ex, f"{name} must be a number{unit}, got {value!r}.")
    return None


def raised(exc: BaseException) -> str:
    """'KeyError: 'close' (in your line `bar["close"]`)': an exception a student's code raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if "helpers" not in f.filename.replace("\\", "/").split("/")]
    where = f" in your line `{mine[-1].line.strip()}`" if mine and mine[-1].line else ""
    return f"{type(exc).__name__}: {exc}{where}"


def call(exercise: str, what: str, fn: Any, *args: Any) -> tuple[Any, CheckResult | None]:
    """Call a student's function; on an exception, a failing result that quotes it."""
    if not callable(fn):
        return None, failed(exercise, f"{what} is not a function ({type(fn).__name__}): "
                            "run the exercise cell that defines it.")
    try:
        return fn(*args), None
    except Exception as exc:  # noqa: BLE001 - any error of the student's code becomes a hint
        return None, failed(exercise, f"{what} raised {raised(exc)}.")


def lab(notebook: str, settings: Settings) -> Settings:
    """The namespace of a notebook's exercises: topics `ex04.…`, groups `ex04.workbook-…`."""
    return settings.within(f"ex{notebook}")


def number(value: Any) -> int | float | None:
    """A plain number from a student's answer, or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def plural(count: int, word: str) -> str:
    """'1 message', '2,997 messages'."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def year_of(ts: Any) -> Any:
    """UTC year of epoch-millisecond times (a number or a column)."""
    if isinstance(ts, pd.Series):
        return pd.to_datetime(ts, unit="ms", utc=True).dt.year
    return pd.Timestamp(int(ts), unit="ms", tz="UTC").year


# --- Kafka plumbing the labs share -----------------------------------------------

def read_raw(topic: str, settings: Settings) -> list[Any]:
    """Every committed message of a topic as confluent-kafka Messages (to look at keys and times)."""
    messages: list[Any] = []
    group = f"{settings.prefix}workbook-exercise-{uuid.uuid4().hex[:8]}"
    with closing(make_consumer(group, settings)) as consumer:
        if assign_from_start(consumer, [topic]):
            for batch in batches_to_end(consumer, timeout=60, size=1000):
                messages += batch
    return messages


def topic_exists(topic: str, settings: Settings) -> int:
    """The partition count of a topic, 0 when it does not exist."""
    meta = make_admin(settings).list_topics(timeout=10).topics.get(topic)
    return 0 if meta is None or meta.error else len(meta.partitions)


def copy_topic(source: str, target: str, settings: Settings, partitions: int = 3) -> int:
    """Copy every message of `source` (key, value, timestamp) into a new, empty `target`.

    `target` is deleted and created again with `partitions` partitions; the
    producer hashes each key as Java clients do. Returns the messages copied (07.2).
    """
    if isinstance(partitions, bool) or not isinstance(partitions, int) or not 1 <= partitions <= 64:
        raise InputError(f"partitions must be a whole number from 1 to 64, got {partitions!r}.")
    reset_topics(make_admin(settings), [target], partitions=partitions)
    producer = make_producer(settings)
    messages = read_raw(source, settings)
    for msg in messages:
        producer.produce(target, msg.value(), msg.key(), timestamp=msg.timestamp()[1])
        producer.poll(0)
    producer.flush(60)
    return len(messages)


# --- SQL the student wrote (06, 07) ------------------------------------------------------

def query_answer(ex: str, result: Any, wb: Workbook, what: str, columns: list[str]
                 ) -> pd.DataFrame | CheckResult:
    """The table of the student's query, run again on the engine (what they saved with
    `%%sql --save <what>`), or the failed check that says why there is none: not a saved query
    result, not a SELECT, or without one of `columns`."""
    from helpers.pipeline.sqlcell import SqlResult, run_sql

    if not isinstance(result, SqlResult):
        return failed(ex, f"{what} is not a query's result: run your %%sql cell, which saves it "
                          f"with --save {what}, then this check.")
    [again] = run_sql(wb, result.statement)
    if not isinstance(again, SqlResult):
        return failed(ex, "Your statement is not a query: write a SELECT.")
    absent = [c for c in columns if c not in again.table.columns]
    if absent:
        return failed(ex, f"Your query gives the columns {', '.join(again.table.columns)}; the "
                          f"check needs {', '.join(columns)}. Name each with AS.")
    return again.table


def minute_bars(wb: Workbook) -> pd.DataFrame:
    """The stored minute bars (what notebook 06 replayed into minute.pricelist)."""
    from helpers.infra.database import open_engine
    from helpers.pipeline.db import read_bars

    with open_engine(wb.settings) as engine:
        return read_bars(engine, "minute")
