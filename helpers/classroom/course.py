"""Start over: put the course's state back to the start of a notebook (classroom layer, 00_setup).

`reset_course(wb)` (or `workbook reset` in a terminal) deletes every
topic of the course in the student's namespace — the pipeline's five, the
lessons' own (`minute.…`, `edges.…`, `live.…`, `handmade.…`, `lesson05.…`,
`scratch.…`) and the exercises' (`ex01.…` to `ex09.…`) — forgets the course's
consumer groups (the router's, the stream-SQL query's, the lessons' and the
exercises'), drops the paper-trading bots' tables (notebook 09), drops the buy
query and its input streams on ksqlDB (Flink SQL keeps nothing between runs:
its offsets are the `workbook-flink-buy` group, forgotten with the others),
and creates the five pipeline topics again, empty.

`to="05"` then rebuilds what the notebooks before 05 leave behind, with the
same helpers they use: the daily bars replayed into `pricelist` (from 04 on),
routed into `alerts` and `variations` (from 05 on), the minute bars replayed
and routed too (from 07 on), joined into `buy` (from 08 on). `with_data=True`
also empties `candle_prices` and ingests the sample bars again, as notebook
01 does. Nothing outside the namespace is touched: other students' topics and
groups on a shared cluster stay as they are.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from confluent_kafka import KafkaError

from helpers.core.errors import InputError
from helpers.core.schemas import TOPICS
from helpers.core.settings import Settings
from helpers.infra.clients import refused_as_sentence
from helpers.pipeline.topics import admin_each, delete_topics, ensure_topics

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from helpers.infra.workbook import Workbook

#: namespaces the lessons create inside the student's own (notebooks 04 to 12)
LESSON_NAMESPACES = ("handmade", "lesson05", "minute", "edges", "live", "scratch", "bot", "sql",
                     "router",      # router.control: the live router's control topic (08)
                     "lesson11", "lesson12")
EXERCISE_NAMESPACE = re.compile(r"ex\d\d")
#: groups of the lessons that carry no namespace of their own (notebook 04)
LESSON_GROUPS = ("handmade-router",)
#: notebooks whose start `to=` can rebuild: what each needs from the ones before
STAGES = {"replay": "04", "route": "05", "minute": "07", "buy": "08"}
NOTEBOOKS = tuple(f"{n:02d}" for n in range(13))
PAPER_TABLES = ("paper_trades", "paper_positions")     # notebook 09's bots: paper_…, ex09_paper_…


@dataclass
class ResetReport:
    """What a reset removed and rebuilt."""

    topics_deleted: list[str] = field(default_factory=list)
    groups_forgotten: list[str] = field(default_factory=list)
    groups_in_use: list[str] = field(default_factory=list)
    streams_dropped: list[str] | None = None      # None: the engine keeps no streams (Flink SQL)
    tables_dropped: list[str] = field(default_factory=list)
    connectors_deleted: list[str] = field(default_factory=list)     # notebook 12's, when Connect runs
    topics_created: list[str] = field(default_factory=list)
    bars_ingested: int = 0
    rebuilt: dict[str, int] = field(default_factory=dict)     # topic -> messages

    def __str__(self) -> str:
        streams = ("" if self.streams_dropped is None
                   else f"{len(self.streams_dropped)} ksqlDB streams and ")
        lines = [f"deleted {len(self.topics_deleted)} topics, forgot {len(self.groups_forgotten)} "
                 f"consumer groups, dropped {streams}{len(self.tables_dropped)} paper-trading tables",
                 f"created empty: {', '.join(self.topics_created)}"]
        if self.connectors_deleted:
            lines.append(f"deleted connectors: {', '.join(self.connectors_deleted)}")
        if self.groups_in_use:
            lines.append(f"still in use, so kept (stop their consumers, then reset again): "
                         f"{', '.join(self.groups_in_use)}")
        if self.bars_ingested:
            lines.append(f"ingested {self.bars_ingested:,} sample bars into candle_prices")
        if self.rebuilt:
            lines.append("rebuilt: " + ", ".join(f"{t} {n:,}" for t, n in self.rebuilt.items()))
        return "\n".join(lines)


def in_namespace(name: str, prefix: str) -> str | None:
    """The part of `name` after the student's prefix, or None when it is someone else's."""
    return name[len(prefix):] if name.startswith(prefix) else None


def is_course_topic(name: str, settings: Settings) -> bool:
    """True for a topic the course creates in this namespace (pipeline, lessons, exercises)."""
    rest = in_namespace(name, settings.prefix)
    if rest is None:
        return False
    if rest in TOPICS:
        return True
    first, dot, _ = rest.partition(".")
    return bool(dot) and (first in LESSON_NAMESPACES or bool(EXERCISE_NAMESPACE.fullmatch(first)))


def is_course_group(group: str, settings: Settings) -> bool:
    """True for a consumer group of the course in this namespace."""
    rest = in_namespace(group, settings.prefix)
    if rest is None:
        return False
    if rest.startswith("workbook-") or rest in LESSON_GROUPS:
        return True
    first, dot, _ = rest.partition(".")
    return bool(dot) and (first in LESSON_NAMESPACES or bool(EXERCISE_NAMESPACE.fullmatch(first)))


def stream_sql_namespaces(settings: Settings) -> list[Settings]:
    """The namespaces in which the lessons run a buy query: the course's, minute, edges, live."""
    return [settings] + [settings.within(name) for name in ("minute", "edges", "live")]


def drop_ksqldb_streams(wb: Workbook) -> list[str]:
    """Drop the buy query's stream and its two input streams in every namespace (topics kept)."""
    from helpers.pipeline.ksqldb import stream_name

    dropped = []
    for where in stream_sql_namespaces(wb.settings):
        topics = where.topics
        names = [stream_name(t) for t in (topics.buy, topics.alerts, topics.variations)]
        wb.ksqldb.execute([f"DROP STREAM IF EXISTS {name};" for name in names])   # the buy stream first
        dropped += names
    return dropped


def check_stage(to: str | int | None) -> str | None:
    """'04' for '04', 4 or '04_routing'; None stays None; anything else raises InputError."""
    if to is None:
        return None
    text = f"{to:02d}" if isinstance(to, int) and not isinstance(to, bool) else str(to)[:2]
    if text not in NOTEBOOKS:
        raise InputError(f"to= must name a notebook from 00 to 12 (e.g. '05'), got {to!r}.")
    return text


def delete_lesson_connectors(settings: Settings) -> list[str]:
    """Delete notebook 12's connectors of this namespace (lesson and exercises), when Connect answers."""
    from helpers.infra.connect import connect_answers
    from helpers.pipeline.cdc import connect_call, delete_connector

    if not connect_answers(settings):
        return []
    names = [n for n in connect_call(settings, "GET", "/connectors")
             if (rest := in_namespace(n, settings.prefix)) is not None
             and (rest.startswith("lesson12-") or rest.startswith("ex12."))]
    return [n for n in sorted(names) if delete_connector(settings, n)]


def drop_paper_tables(engine: Engine) -> list[str]:
    """Drop the paper-trading bots' tables (notebook 09 and its exercises); return their names."""
    from sqlalchemy import MetaData, inspect

    names = [t for t in inspect(engine).get_table_names() if t.endswith(PAPER_TABLES)]
    if names:
        metadata = MetaData()
        metadata.reflect(engine, only=names)
        metadata.drop_all(engine)
    return sorted(names)


def reingest_samples(engine: Engine) -> int:
    """Empty candle_prices and store the sample bars again (daily and minute), as notebook 01 does."""
    from helpers.core.validation import validate_bars
    from helpers.pipeline.db import store_bars, truncate_bars
    from helpers.pipeline.sources import fetch_bars

    truncate_bars(engine)
    added = 0
    for timespan in ("day", "minute"):
        good, _ = validate_bars(fetch_bars("sample", timespan=timespan))
        added += store_bars(engine, good, timespan, progress=False)
    return added


def rebuild(wb: Workbook, stage: str) -> dict[str, int]:
    """Run the stages of the notebooks before `stage`: replay (04), route (05), the minute pipeline
    (07: what notebook 06 builds), the buy join (08)."""
    from helpers.pipeline.db import read_bars
    from helpers.pipeline.produce import replay_bars
    from helpers.pipeline.route import run_router
    from helpers.pipeline.streamsql import run_buy_query
    from helpers.pipeline.topics import topic_counts

    settings = wb.settings
    topics = settings.topics
    if stage < STAGES["replay"]:
        return {}
    bars = read_bars(wb.engine, "day")
    if bars.empty:
        raise InputError("candle_prices holds no daily bars to replay: reset with --with-data "
                         "(or run notebook 01) first.")
    replay_bars(bars, settings=settings, progress=False)
    if stage >= STAGES["route"]:
        run_router(settings, progress=False)
    if stage >= STAGES["minute"]:
        minute = settings.within("minute")
        ensure_topics(wb.admin, minute.topics.all)       # deleted with the course's other topics
        replay_bars(read_bars(wb.engine, "minute"), settings=minute, progress=False)
        run_router(minute, progress=False)
    if stage >= STAGES["buy"]:
        run_buy_query(wb)
    return topic_counts(topics.all, settings).loc[lambda c: c > 0].to_dict()


def reset_course(wb: Workbook, to: str | int | None = None, *,
                 with_data: bool = False) -> ResetReport:
    """Put the course back: its topics deleted and re-created empty, its groups and streams forgotten.

    to='05' then rebuilds what the notebooks before 05 produce; with_data=True
    first empties candle_prices and ingests the sample bars again.
    """
    settings, admin = wb.settings, wb.admin
    stage = check_stage(to)
    report = ResetReport()
    report.connectors_deleted = delete_lesson_connectors(settings)     # before their topics go
    if settings.stream_engine == "ksqldb":
        report.streams_dropped = drop_ksqldb_streams(wb)
    existing = [t for t in admin.list_topics(timeout=10).topics if is_course_topic(t, settings)]
    report.topics_deleted = delete_topics(admin, sorted(existing))
    with refused_as_sentence("list the consumer groups"):
        listed = admin.list_consumer_groups(request_timeout=30).result().valid
    groups = [g.group_id for g in listed if is_course_group(g.group_id, settings)]
    outcome = admin_each(lambda pending: admin.delete_consumer_groups(pending, request_timeout=30),
                         sorted(groups), accept={KafkaError.GROUP_ID_NOT_FOUND: "absent",
                                                 KafkaError.NON_EMPTY_GROUP: "in use"},
                         what="delete consumer group")
    report.groups_forgotten = [g for g, state in outcome.items() if state != "in use"]
    report.groups_in_use = [g for g, state in outcome.items() if state == "in use"]
    report.tables_dropped = drop_paper_tables(wb.engine)
    ensure_topics(admin, settings.topics.all)
    report.topics_created = list(settings.topics.all)
    if with_data:
        report.bars_ingested = reingest_samples(wb.engine)
    if stage:
        report.rebuilt = rebuild(wb, stage)
    return report
