"""Exercises that check themselves, one module per notebook (`ex04_routing` holds 04's checks)."""
from __future__ import annotations

from helpers.classroom.exercises.common import CheckResult, copy_topic, lab
from helpers.classroom.exercises.ex01_ingestion import check_days_above, check_rejection
from helpers.classroom.exercises.ex02_topics import check_max_partitions, check_one_partition
from helpers.classroom.exercises.ex03_producing import check_double_replay, check_send_bars
from helpers.classroom.exercises.ex04_routing import check_duplicates, check_sell_route, crash_router
from helpers.classroom.exercises.ex05_consumer_groups import (
    check_alert_counts,
    check_given_up,
    check_idle_consumers,
    check_lag_read,
    check_offset_reset,
    lagging_group,
)
from helpers.classroom.exercises.ex06_stream_sql import check_day_ranges, check_five_minute_bars
from helpers.classroom.exercises.ex07_stream_joins import (
    check_copartitioning,
    check_my_buy_signals,
    check_my_join,
)
from helpers.classroom.exercises.ex08_dashboard import check_one_signal_price, check_router_lag
from helpers.classroom.exercises.ex09_next_steps import check_bot_restart, check_trailing_stop
from helpers.classroom.exercises.ex10_fault_tolerance import check_brokers_may_fail, check_missing_and_lost
from helpers.classroom.exercises.ex11_queues import check_decide, check_members_with_work
from helpers.classroom.exercises.ex12_change_data_capture import check_rebuild, check_slim_connector

__all__ = ["CheckResult", "lab", "copy_topic", "crash_router", "check_rejection", "check_days_above",
           "check_one_partition", "check_max_partitions", "check_send_bars", "check_double_replay",
           "check_sell_route", "check_duplicates", "check_idle_consumers", "check_offset_reset",
           "check_alert_counts", "check_copartitioning", "check_my_buy_signals",
           "check_one_signal_price", "check_router_lag", "check_trailing_stop", "check_bot_restart",
           "check_brokers_may_fail", "check_missing_and_lost", "check_five_minute_bars", "check_day_ranges",
           "check_my_join", "check_decide", "check_members_with_work", "check_given_up", "check_lag_read",
           "lagging_group", "check_rebuild", "check_slim_connector"]
