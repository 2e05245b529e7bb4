"""`python -m bench --quick` runs end to end on the stack and writes every figure the README table needs.

A smoke check of the benchmark code, not of speed: nothing here is timed or
compared with a goal. The benchmark itself checks its counts (every bar
replayed, routed and written once, every buy signal accounted for) and exits
non-zero when one is wrong.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.core.settings import PROJECT_ROOT
from helpers.infra.environment import child_env

pytestmark = pytest.mark.integration

KEYS = ["replay.ratio_vs_raw", "router.ratio_vs_naive", "router.ratio_vs_raw_consume",
        "router.exactly_once_ratio_vs_naive", "dashboard.10k.slider_to_picture_ms",
        "stream_sql.latency_ms", "router.ratio_vs_producer_ceiling", "formats.avro_vs_json_bytes",
        "formats.avro_vs_json_produce", "formats.avro_vs_json_consume"]


def value_at(results: dict, path: str):
    for part in path.split("."):
        results = results[part]
    return results


def test_quick_bench_writes_every_figure(settings, tmp_path):
    output = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-m", "bench", "--quick", "--output", str(output)],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
                         env=child_env(WORKBOOK_PROGRESS="0"))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads(output.read_text())
    for key in KEYS:
        assert value_at(results, key), f"results.json has no {key}"
    assert value_at(results, "replay.ratio_vs_raw")["median"] > 0
    assert set(value_at(results, "stream_sql.latency_ms")) >= {"p50", "p95", "p99"}
    sql = results["stream_sql"]
    assert sql["buys_read"] == sql["buys_expected"] > 0 and sql["buys_missing"] == 0
    table = output.with_suffix(".md").read_text()
    assert "| replay / raw producer" in table and "CPUs" in table
    assert (tmp_path / "dashboard_10k.png").read_bytes().startswith(b"\x89PNG")
