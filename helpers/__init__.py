"""Helpers of the Kafka teaching workbook: what the notebooks use, kept in one package.

Each module is one stage of the pipeline; this file re-exports only the names
the notebooks import.
"""
from .clients import make_admin, make_consumer, make_producer
from .config import load_settings
from .dashboard import Dashboard, plot_sweep, read_history, what_if
from .db import count_bars, create_schema, make_engine, read_bars, server_version, store_bars
from .live import LivePipeline, LiveView
from .plots import plot_counts, plot_partitions, plot_prices, plot_variations, use_style
from .produce import bar_message, replay_bars
from .route import ROUTER_GROUP, route_bar, run_router
from .rules import (PRICE_THRESHOLD, VARIATION_THRESHOLD, Thresholds, alerts_frame, buy_signals,
                    variation_ex, variation_in, variations_frame)
from .schemas import ALERTS, BUY, DEAD_LETTER, PRICELIST, TOPICS, VARIATIONS, schema_table
from .sources import fetch_bars, validate_bars
from .streamsql import compare_rows, read_buy, run_buy_query, sql_statement
from .stack import kafka_cluster_id, kafka_version, stack_status, status_table, stream_engine
from .topics import (count_messages, delete_topics, describe_topics, ensure_topics, read_topic,
                     reset_topics, topic_counts)

__all__ = [
    # 00 setup
    "load_settings", "stack_status", "status_table", "stream_engine", "kafka_cluster_id",
    "kafka_version", "make_engine", "server_version",
    # 01 ingestion
    "fetch_bars", "validate_bars", "create_schema", "store_bars", "count_bars", "read_bars",
    # 02 topics
    "TOPICS", "PRICELIST", "ALERTS", "VARIATIONS", "BUY", "DEAD_LETTER",
    "make_admin", "make_producer", "make_consumer", "ensure_topics", "reset_topics",
    "delete_topics", "describe_topics", "read_topic", "count_messages", "topic_counts",
    # 03 producing
    "schema_table", "bar_message", "replay_bars",
    # 04 routing
    "PRICE_THRESHOLD", "VARIATION_THRESHOLD", "Thresholds", "variation_ex", "variation_in",
    "route_bar", "run_router", "ROUTER_GROUP",
    # 05 stream SQL
    "alerts_frame", "variations_frame", "buy_signals", "sql_statement", "run_buy_query", "read_buy",
    "compare_rows",
    # 06 dashboard
    "Dashboard", "what_if", "read_history", "plot_sweep",
    # 07 live
    "LivePipeline", "LiveView",
    # plots
    "use_style", "plot_prices", "plot_variations", "plot_counts", "plot_partitions",
]
