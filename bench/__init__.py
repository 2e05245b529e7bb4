"""Benchmarks of the workbook: dashboard recompute, replay and router throughput (`make bench`).

`python -m bench` runs everything, `python -m bench dashboard` only the
recompute part (no Kafka needed), `--quick` smaller sizes for a smoke check.
Speed is measured here, not by timed tests: the figures go to a table on
stdout and to build/bench/results.json with the machine they came from.
"""
