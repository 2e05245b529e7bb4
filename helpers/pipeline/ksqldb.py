"""The buy join on ksqlDB: the course's statements of `ksql/*.sql`, filled and sent (07_stream_joins).

`buy_statements` fills the variation threshold only after
`rules.check_variation_threshold` has accepted it; `create_buy_pipeline`
registers the two input streams and (re)creates the buy query through a
`KsqlClient` (helpers.infra.ksqldb_client).
"""
from __future__ import annotations

import re

from helpers.core.errors import KsqlError
from helpers.core.rules import VARIATION_THRESHOLD, check_variation_threshold
from helpers.core.schemas import TopicNames
from helpers.infra.ksqldb_client import KsqlClient
from helpers.pipeline.sqlfiles import load_sql

# the buy query reads its inputs from the start, and only committed messages (exactly-once)
QUERY_PROPERTIES = {"ksql.streams.auto.offset.reset": "earliest",
                    "ksql.streams.processing.guarantee": "exactly_once_v2"}


def stream_name(topic: str) -> str:
    """The ksqlDB stream over a topic: 'alerts' -> 'alerts_stream', 'alice.buy' -> 'alice_buy_stream'."""
    return re.sub(r"\W", "_", topic) + "_stream"


def stream_statements(topics: TopicNames = TopicNames()) -> list[str]:
    """CREATE STREAM statements for the two input topics (01_create_streams.sql)."""
    return load_sql("01_create_streams.sql", alerts_topic=topics.alerts, variations_topic=topics.variations,
                    alerts_stream=stream_name(topics.alerts),
                    variations_stream=stream_name(topics.variations))


def buy_statements(variation_threshold: float = VARIATION_THRESHOLD,
                   topics: TopicNames = TopicNames()) -> list[str]:
    """The buy join for one validated threshold, a fraction (02_buy_signals.sql)."""
    threshold = check_variation_threshold(variation_threshold)
    return load_sql("02_buy_signals.sql", buy_topic=topics.buy, buy_stream=stream_name(topics.buy),
                    alerts_stream=stream_name(topics.alerts),
                    variations_stream=stream_name(topics.variations), variation_threshold=threshold)


def drop_statements(topics: TopicNames = TopicNames()) -> list[str]:
    """Statements that stop and remove the buy query, keeping every topic (00_drop.sql)."""
    return load_sql("00_drop.sql", buy_stream=stream_name(topics.buy))


def create_buy_pipeline(client: KsqlClient, variation_threshold: float = VARIATION_THRESHOLD,
                        topics: TopicNames = TopicNames()) -> str:
    """Register the inputs and (re)create the buy query (empty `buy` first); return its query id."""
    buy = buy_statements(variation_threshold, topics)  # validate before sending anything
    first = client.execute(stream_statements(topics) + drop_statements(topics))
    done = [r["commandSequenceNumber"] for r in first if r.get("commandSequenceNumber", -1) >= 0]
    created = client.execute(buy, QUERY_PROPERTIES, after=max(done) if done else None)
    for result in created:
        status = result.get("commandStatus", {})
        match = re.search(r"query with ID (\w+)", status.get("message", ""))
        query_id = status.get("queryId") or (match.group(1) if match else None)
        if query_id:
            return query_id
    raise KsqlError("ksqlDB created the buy stream but named no query id.")


def query_group_suffix(query_id: str) -> str:
    """How a persistent query's consumer group id ends: `..._confluent-ksql-<service>query_<id>`."""
    return f"query_{query_id}"
