"""Helpers of the Kafka teaching workbook: what the notebooks use, kept in one package.

Its folders are its layers, lowest first, each importing only from those below:

    core/       settings, errors, schemas, rules, bars, plots: pure, no I/O
    infra/      the stack, processes, the lab cluster, SMTP, clients, the Workbook
    pipeline/   one module per stage: sources, db, topics, produce, route, stream SQL...
    classroom/  exercises (one module per notebook), solutions, reset, the class server
    cli.py      the `workbook` command, on top

This file re-exports only the names the notebooks import, and imports a module
only when one of its names is first used (PEP 562), so `workbook status` does
not load matplotlib or ipywidgets.
"""
from __future__ import annotations

import importlib
from typing import Any

#: name -> the module that defines it, in the order the notebooks meet them
_EXPORTS = {
    # 00 setup
    "Workbook": "infra.workbook", "load_settings": "infra.environment", "require_services": "infra.status",
    "stack_status": "infra.status",
    "status_table": "infra.status", "kafka_cluster_id": "infra.status", "kafka_version": "infra.status",
    "make_engine": "infra.database", "server_version": "infra.database", "WorkbookError": "core.errors",
    "wait_until": "core.waiting",
    # 01 ingestion
    "fetch_bars": "pipeline.sources", "validate_bars": "core.validation", "bar_problem": "core.validation",
    "create_schema": "pipeline.db", "store_bars": "pipeline.db", "count_bars": "pipeline.db",
    "read_bars": "pipeline.db",
    # 02 topics
    "TOPICS": "core.schemas", "PRICELIST": "core.schemas", "ALERTS": "core.schemas",
    "VARIATIONS": "core.schemas",
    "BUY": "core.schemas", "DEAD_LETTER": "core.schemas", "client_conf": "infra.clients",
    "make_admin": "infra.clients",
    "make_producer": "infra.clients",
    "make_consumer": "infra.clients", "ensure_topics": "pipeline.topics", "reset_topics": "pipeline.topics",
    "delete_topics": "pipeline.topics", "describe_topics": "pipeline.topics",
    "read_topic": "pipeline.topics",
    "count_messages": "pipeline.topics", "topic_counts": "pipeline.topics",
    "group_offsets": "pipeline.topics",
    # 03 producing
    "schema_table": "core.schemas", "readable": "core.schemas", "encode": "core.schemas",
    "bar_message": "pipeline.produce", "replay_bars": "pipeline.produce",
    # 04 routing
    "PRICE_THRESHOLD": "core.rules", "VARIATION_THRESHOLD": "core.rules", "Thresholds": "core.rules",
    "variation_ex": "core.rules", "variation_in": "core.rules", "route_bar": "pipeline.route",
    "run_router": "pipeline.route",
    "Router": "pipeline.route", "ROUTER_GROUP": "pipeline.route", "route_naively": "pipeline.route",
    # 07 stream SQL: the buy join
    "alerts_frame": "core.rules", "variations_frame": "core.rules", "buy_signals": "core.rules",
    "sql_statement": "pipeline.streamsql", "run_buy_query": "pipeline.streamsql",
    "read_buy": "pipeline.streamsql",
    "compare_rows": "pipeline.streamsql",
    # 06 stream SQL you write: tables, changelogs, compaction, windows
    "load_sql_magic": "pipeline.sqlcell", "run_sql": "pipeline.sqlcell", "SqlResult": "pipeline.sqlcell",
    "register_lesson_tables": "pipeline.sqlcell", "course_sql": "pipeline.sqlcell",
    "records_in": "pipeline.topics", "compact_now": "pipeline.topics", "table_from_topic": "pipeline.topics",
    "final_watermark": "core.windows", "plot_windows": "core.plots",
    "per_ticker_summary": "core.windows", "latest_close": "core.windows", "hourly_volume": "core.windows",
    "moving_volume": "core.windows", "sessions": "core.windows", "five_minute_bars": "core.windows",
    "day_ranges": "core.windows", "compare_tables": "core.windows",
    "check_five_minute_bars": "classroom.exercises", "check_day_ranges": "classroom.exercises",
    "check_my_join": "classroom.exercises",
    # 08 dashboard
    "Dashboard": "pipeline.dashboard", "plot_sweep": "pipeline.dashboard",
    "read_history": "pipeline.dashboard",
    "what_if": "core.whatif", "sweep": "core.whatif",
    # 08 live
    "LivePipeline": "pipeline.live", "LiveView": "pipeline.live", "apply_to_pipeline": "pipeline.live",
    # 10 fault tolerance
    "start_lab_cluster": "infra.lab", "describe_partitions": "pipeline.replication",
    "partition_leaders": "pipeline.replication", "wait_for_isr": "pipeline.replication",
    "wait_for_leader": "pipeline.replication",
    "watch_partitions": "pipeline.replication",
    "replay_numbered": "pipeline.replication", "read_sequence_numbers": "pipeline.replication",
    "messages_in_topic": "pipeline.replication", "tally_runs": "pipeline.replication",
    "election_seconds": "pipeline.replication",
    "recovery_seconds": "pipeline.replication", "isr_at": "pipeline.replication",
    "plot_fault_timeline": "pipeline.replication",
    # plots
    "use_style": "core.plots", "plot_prices": "core.plots", "plot_variations": "core.plots",
    "plot_counts": "core.plots",
    "plot_partitions": "core.plots", "plot_arrivals": "core.plots",
    # the classroom: exercises that check themselves, and a reset
    "reset_course": "classroom.course", "CheckResult": "classroom.exercises",
    "copy_topic": "classroom.exercises",
    "crash_router": "classroom.exercises", "check_rejection": "classroom.exercises",
    "check_days_above": "classroom.exercises",
    "check_one_partition": "classroom.exercises", "check_max_partitions": "classroom.exercises",
    "check_send_bars": "classroom.exercises", "check_double_replay": "classroom.exercises",
    "check_sell_route": "classroom.exercises", "check_duplicates": "classroom.exercises",
    "check_idle_consumers": "classroom.exercises", "check_offset_reset": "classroom.exercises",
    "check_alert_counts": "classroom.exercises", "check_copartitioning": "classroom.exercises",
    "check_my_buy_signals": "classroom.exercises", "check_one_signal_price": "classroom.exercises",
    "check_router_lag": "classroom.exercises", "check_trailing_stop": "classroom.exercises",
    "check_bot_restart": "classroom.exercises", "check_brokers_may_fail": "classroom.exercises",
    "check_missing_and_lost": "classroom.exercises",
    # 09 next steps: an e-mail per signal, a paper-trading bot
    "smtp_server": "pipeline.notify", "signal_email": "pipeline.notify", "email_signals": "pipeline.notify",
    "PaperBot": "pipeline.paper", "ExitRule": "pipeline.paper", "backtest": "pipeline.paper",
    "profit_and_loss": "pipeline.paper",
    "equity_curve": "pipeline.paper", "plot_equity": "core.plots",
    # 05 consumer groups: two rebalance protocols
    "plot_rebalances": "core.plots", "check_given_up": "classroom.exercises",
    "check_lag_read": "classroom.exercises", "lagging_group": "classroom.exercises",
    # 11 queues: share groups
    "share_group_settings": "pipeline.queues", "make_share_consumer": "pipeline.queues",
    "plot_deliveries": "pipeline.queues",
    "check_decide": "classroom.exercises", "check_members_with_work": "classroom.exercises",
    # 12 change data capture
    "ensure_connect": "infra.connect", "connect_memory_mb": "infra.connect", "connect_sees": "pipeline.cdc",
    "change_log": "pipeline.cdc", "wait_for_changes": "pipeline.cdc", "plot_paused": "pipeline.cdc",
    "OPS": "pipeline.cdc",
    "check_rebuild": "classroom.exercises", "check_slim_connector": "classroom.exercises",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the defining module on first use of one of the exported names."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'helpers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
