"""Benchmarks of the workbook (`make bench`): ratios and latencies measured in one run.

Parts: `dashboard` (slider -> new picture at 10k, 100k, 1M bars; no Kafka
needed), `kafka` (replay / raw producer, router / naive router / raw consume,
three rounds), `stream_sql` (pricelist -> buy latency through the router and
Flink at 1,000 bars/s), `run` (`make run` warm) and `stack` (cold and warm
start). `python -m bench` runs them all, `python -m bench PART ...` some,
`--quick` a smoke check (CI). Speed is measured here, not by timed tests: the
figures go to build/bench/results.json and results.md with the machine they
came from.
"""
