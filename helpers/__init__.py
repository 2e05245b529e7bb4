"""Helpers of the Kafka teaching workbook: what the notebooks use, kept in one package.

Each module is one stage of the pipeline; this file re-exports only the names
the notebooks import, and imports a module only when one of its names is first
used (PEP 562), so `workbook status` does not load matplotlib or ipywidgets.
"""
from __future__ import annotations

import importlib
from typing import Any

#: name -> the module that defines it, in the order the notebooks meet them
_EXPORTS = {
    # 00 setup
    "load_settings": "config", "require_services": "stack", "stack_status": "stack",
    "status_table": "stack", "kafka_cluster_id": "stack", "kafka_version": "stack",
    "make_engine": "db", "server_version": "db", "WorkbookError": "errors",
    "wait_until": "waiting",
    # 01 ingestion
    "fetch_bars": "sources", "validate_bars": "validation", "bar_problem": "validation",
    "create_schema": "db", "store_bars": "db", "count_bars": "db", "read_bars": "db",
    # 02 topics
    "TOPICS": "schemas", "PRICELIST": "schemas", "ALERTS": "schemas", "VARIATIONS": "schemas",
    "BUY": "schemas", "DEAD_LETTER": "schemas", "client_conf": "clients", "make_admin": "clients",
    "make_producer": "clients",
    "make_consumer": "clients", "ensure_topics": "topics", "reset_topics": "topics",
    "delete_topics": "topics", "describe_topics": "topics", "read_topic": "topics",
    "count_messages": "topics", "topic_counts": "topics", "group_offsets": "topics",
    # 03 producing
    "schema_table": "schemas", "readable": "schemas", "bar_message": "produce", "replay_bars": "produce",
    # 04 routing
    "PRICE_THRESHOLD": "rules", "VARIATION_THRESHOLD": "rules", "Thresholds": "rules",
    "variation_ex": "rules", "variation_in": "rules", "route_bar": "route", "run_router": "route",
    "Router": "route", "ROUTER_GROUP": "route", "route_naively": "route",
    # 05 stream SQL
    "alerts_frame": "rules", "variations_frame": "rules", "buy_signals": "rules",
    "sql_statement": "streamsql", "run_buy_query": "streamsql", "read_buy": "streamsql",
    "compare_rows": "streamsql",
    # 06 dashboard
    "Dashboard": "dashboard", "plot_sweep": "dashboard", "read_history": "dashboard",
    "what_if": "whatif", "sweep": "whatif",
    # 07 live
    "LivePipeline": "live", "LiveView": "live", "apply_to_pipeline": "live",
    # 09 fault tolerance
    "start_lab_cluster": "replication", "describe_partitions": "replication",
    "partition_leaders": "replication", "wait_for_isr": "replication", "watch_partitions": "replication",
    "replay_numbered": "replication", "read_sequence_numbers": "replication",
    "messages_in_topic": "replication", "tally_runs": "replication", "election_seconds": "replication",
    "recovery_seconds": "replication", "isr_at": "replication", "plot_fault_timeline": "replication",
    # plots
    "use_style": "plots", "plot_prices": "plots", "plot_variations": "plots", "plot_counts": "plots",
    "plot_partitions": "plots", "plot_arrivals": "plots",
    # the classroom: exercises that check themselves, and a reset
    "reset_course": "course", "CheckResult": "exercises", "copy_topic": "exercises",
    "crash_router": "exercises", "check_rejection": "exercises", "check_days_above": "exercises",
    "check_one_partition": "exercises", "check_max_partitions": "exercises",
    "check_send_bars": "exercises", "check_double_replay": "exercises",
    "check_sell_route": "exercises", "check_duplicates": "exercises",
    "check_idle_consumers": "exercises", "check_offset_reset": "exercises",
    "check_alert_counts": "exercises", "check_copartitioning": "exercises",
    "check_my_buy_signals": "exercises", "check_one_signal_price": "exercises",
    "check_router_lag": "exercises", "check_trailing_stop": "exercises",
    "check_bot_restart": "exercises", "check_brokers_may_fail": "exercises",
    "check_missing_and_lost": "exercises",
    # 08 next steps: an e-mail per signal, a paper-trading bot
    "smtp_server": "notify", "signal_email": "notify", "email_signals": "notify",
    "PaperBot": "paper", "ExitRule": "paper", "backtest": "paper", "profit_and_loss": "paper",
    "equity_curve": "paper", "plot_equity": "plots",
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
