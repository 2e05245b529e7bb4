"""Helpers of the Kafka teaching workbook: what the notebooks use, kept in one package.

Each module is one stage of the pipeline; this file re-exports only the names
the notebooks import.
"""
from .clients import make_admin, make_consumer, make_producer
from .config import load_settings
from .db import make_engine, server_version
from .stack import kafka_cluster_id, kafka_version, stack_status, status_table, stream_engine

__all__ = [
    "load_settings",
    "stack_status", "status_table", "stream_engine", "kafka_cluster_id", "kafka_version",
    "make_engine", "server_version",
    "make_admin", "make_producer", "make_consumer",
]
