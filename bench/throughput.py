"""Kafka throughput, as ratios measured side by side on the same payloads and topics.

One round, on one scratch namespace (`bench<id>.pricelist`, ...):
1. raw producer: the replay's own JSON payloads, pre-encoded, produced by two
   bare confluent-kafka loops with the replay's own producer settings
   (PRODUCER_DEFAULTS), one asking for a delivery report per message, one for
   failures only, as the replay does: the faster is the ceiling of the Python
   client on this machine (the two ran within 5 % of each other; the replay's
   own time also holds encoding each bar, which the raw loops do not);
2. `replay_bars`: the same bars, from a DataFrame, into `pricelist`;
3. raw consume: read `pricelist` to its end, no processing;
4. the naive router of notebook 04 (`route_naively`), then `Router` in its
   default at-least-once mode, then `Router` in exactly-once mode: each reads
   the same `pricelist` with a group of its own into emptied output topics;
   every consumer is timed from its first record (joining its group is not
   reading), and the router is also set against the producer ceiling it is
   bound by: it writes about 1.25 records per bar;
5. JSON against Avro on the same bars: encode and produce, then consume and
   decode, with the same producer settings, and the bytes per message. Avro
   goes through confluent-kafka's AvroSerializer in the Confluent wire format
   (a magic byte and a 4-byte schema id in front); its schema registry client
   is the in-process one of confluent-kafka (`mock://`): after the first
   message a serializer asks its registry nothing, so the per-message work
   measured is a real registry's too.
Every run's counts are checked against the bars (a fast but lossy run is an
error). Rounds repeat the whole set; ratios come from the same round, so the
load that other programs put on the machine cancels out as far as it can, and
the spread over rounds shows how far it could not.
"""
from __future__ import annotations

import contextlib
import socket
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pandas as pd
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from helpers.core.errors import WaitTimeout
from helpers.core.rules import Thresholds
from helpers.core.schemas import avro_schema, encode
from helpers.core.settings import Settings
from helpers.core.waiting import wait_until
from helpers.infra.clients import PRODUCER_DEFAULTS, client_conf, make_admin
from helpers.pipeline.produce import bar_message, replay_bars
from helpers.pipeline.route import Router, RouteReport, route_naively
from helpers.pipeline.sources import fetch_synthetic
from helpers.pipeline.topics import count_messages, delete_groups, delete_topics, ensure_topics, read_topic

BARS, QUICK_BARS = 100_000, 5_000
ROUNDS, QUICK_ROUNDS = 3, 1
N_TICKERS = 20
SEED = 42
#: the raw loops use the replay's own producer settings: like is compared with like
RAW_LOOPS = {"every_report": {}, "errors_only": {"delivery.report.only.error": True}}
#: JSON against Avro: ratio name -> the measurement it divides
FORMAT_RATIOS = {"produce": "produce_per_s", "consume": "consume_per_s", "bytes": "bytes_per_message"}


class BenchError(RuntimeError):
    """A benchmark could not run or produced wrong counts."""


def require_kafka(settings: Settings, timeout: float = 3.0) -> None:
    """Raise BenchError unless a bootstrap server accepts a TCP connection."""
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
            return
        except (OSError, ValueError):
            continue
    raise BenchError(f"Kafka does not answer at {settings.bootstrap_servers}: start it with "
                     f"`make up`, or run only `python -m bench dashboard`.")


def scratch_settings(settings: Settings) -> Settings:
    """The settings in a namespace of this run: its own topics and groups."""
    return settings.with_namespace(f"bench{uuid.uuid4().hex[:12]}")


def make_bars(n_bars: int) -> pd.DataFrame:
    """`n_bars` seeded synthetic bars of N_TICKERS tickers."""
    return fetch_synthetic(n_tickers=N_TICKERS, n_bars=max(1, n_bars // N_TICKERS), seed=SEED)


def payloads_of(bars: pd.DataFrame) -> list[tuple[bytes, bytes, int]]:
    """(key, value, ts) of every bar, in replay order: exactly what replay_bars sends."""
    ordered = bars.sort_values(["ts", "ticker"], kind="stable")
    return [bar_message(record) for record in ordered.to_dict("records")]


def raw_produce(payloads: list[tuple[bytes, bytes, int]], topic: str, settings: Settings,
                extra: dict[str, Any] | None = None) -> float:
    """Produce pre-encoded payloads with a bare loop and the replay's producer settings (plus `extra`);
    return the seconds until all are confirmed."""
    producer = Producer(client_conf(settings, {**PRODUCER_DEFAULTS, **(extra or {})}))
    start = time.perf_counter()
    for n, (key, value, ts) in enumerate(payloads):
        while True:
            try:
                producer.produce(topic, value, key, timestamp=ts)
                break
            except BufferError:
                producer.poll(0.05)
        if n % 1000 == 0:
            producer.poll(0)
    if producer.flush(60):
        raise BenchError("The raw producer could not deliver every message within 60 s.")
    return time.perf_counter() - start


def read_to_end(topic: str, settings: Settings,
                handle: Callable[[bytes], Any]) -> tuple[list[Any], float, float]:
    """Read a topic to its end with a new group, `handle` applied to each value: the results, the
    seconds until the first record (joining the group) and until the last one."""
    consumer = Consumer(client_conf(settings, {
        "group.id": f"{settings.prefix}read-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "enable.partition.eof": True}))
    results: list[Any] = []
    at_end: set[int] = set()
    start = time.perf_counter()
    first = last = start
    consumer.subscribe([topic])
    try:
        while True:
            for msg in consumer.consume(1000, timeout=0.05):
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(msg.error())
                    at_end.add(msg.partition())
                    continue
                if not results:
                    first = time.perf_counter()
                results.append(handle(msg.value()))
                last = time.perf_counter()
            assigned = {tp.partition for tp in consumer.assignment()}
            if assigned and at_end >= assigned:
                break
    finally:
        consumer.close()
    return results, first - start, last - start


def raw_consume(topic: str, settings: Settings) -> RouteReport:
    """Read a topic to its end with a new group and no processing; a report of count and times."""
    values, waited, seconds = read_to_end(topic, settings, len)
    report = RouteReport()
    report.consumed, report.waited, report.seconds = len(values), waited, seconds
    return report


def codecs() -> dict[str, tuple[Callable[[dict], bytes], Callable[[bytes], dict]]]:
    """(serialize, deserialize) of a pricelist value: JSON as the course writes it, and Avro in the
    Confluent wire format through a schema registry client."""
    import json

    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    registry = SchemaRegistryClient.new_client({"url": "mock://"})       # in-process: see the docstring
    context = SerializationContext("pricelist", MessageField.VALUE)
    to_avro = AvroSerializer(registry, json.dumps(avro_schema("pricelist")))
    from_avro = AvroDeserializer(registry)
    return {"json": (encode, orjson.loads),
            "avro": (lambda value: to_avro(value, context), lambda raw: from_avro(raw, context))}


def serialized_round(values: list[dict], fmt: str, settings: Settings) -> dict[str, Any]:
    """Encode and produce `values` in one format into a topic of their own, then consume and decode
    them; rates of both and bytes per message. Counts and contents are checked."""
    serialize, deserialize = codecs()[fmt]
    topic = f"{settings.prefix}{fmt}"
    admin = make_admin(settings)
    ensure_topics(admin, [topic])
    try:
        producer = Producer(client_conf(settings, {**PRODUCER_DEFAULTS, **RAW_LOOPS["errors_only"]}))
        start, size = time.perf_counter(), 0
        for value in values:
            data = serialize(value)
            size += len(data)
            while True:
                try:
                    producer.produce(topic, data, value["ticker"].encode(), timestamp=value["ts"])
                    break
                except BufferError:
                    producer.poll(0.05)
        if producer.flush(60):
            raise BenchError(f"The {fmt} producer could not deliver every message within 60 s.")
        produce_s = time.perf_counter() - start
        decoded, waited, until_last = read_to_end(topic, settings, deserialize)
        consume_s = until_last - waited                 # from the first record on
    finally:
        delete_topics(admin, [topic])
    def in_order(found: list[dict]) -> list[dict]:
        return sorted(found, key=lambda v: (v["ts"], v["ticker"]))

    if in_order(decoded) != in_order(values):
        raise BenchError(f"{fmt}: {len(decoded):,} of {len(values):,} values came back, or changed.")
    return {"messages": len(values), "bytes_per_message": size / len(values),
            "produce_per_s": len(values) / produce_s, "consume_per_s": len(values) / consume_s}


def expected_counts(bars: pd.DataFrame) -> dict[str, int]:
    """What routing the bars must give with the default thresholds."""
    return {"consumed": len(bars), "variations": len(bars),
            "alerts": int((bars["close"] > Thresholds().price).sum()), "dead_letters": 0}


def check_route(name: str, report: RouteReport, bars: pd.DataFrame, settings: Settings,
                transactional: bool = False) -> None:
    """Raise BenchError unless a router consumed each bar once and wrote each output once."""
    expected = expected_counts(bars)
    actual = {"consumed": report.consumed, "variations": report.variations,
              "alerts": report.alerts, "dead_letters": report.dead_letters}
    topics = settings.topics
    if transactional:           # offsets also count commit markers: read the topics instead
        actual["variations in topic"] = read_committed(topics.variations, expected["variations"], settings)
        actual["alerts in topic"] = read_committed(topics.alerts, expected["alerts"], settings)
    else:
        actual["variations in topic"] = count_messages(topics.variations, settings)
        actual["alerts in topic"] = count_messages(topics.alerts, settings)
    expected["variations in topic"], expected["alerts in topic"] = expected["variations"], expected["alerts"]
    wrong = {k: (actual[k], v) for k, v in expected.items() if actual[k] != v}
    if wrong:
        raise BenchError(f"{name} lost or duplicated messages (got, expected): {wrong}.")


def read_committed(topic: str, expected: int, settings: Settings, timeout: float = 30.0) -> int:
    """Messages a read_committed reader sees, once it sees `expected` (or after `timeout` s).

    commit_transaction() returns once the commit is decided; the markers that
    make the messages visible reach the partitions a moment later, so a reader
    that starts at once can still stop short of the last transaction.
    """
    seen = 0

    def enough() -> bool:
        nonlocal seen
        seen = len(read_topic(topic, settings=settings, timeout=60))
        return seen >= expected

    with contextlib.suppress(WaitTimeout):
        wait_until(enough, timeout, f"{topic} to show {expected:,} committed messages", interval=0.5)
    return seen


def route_figures(report: RouteReport) -> dict[str, float]:
    """A router run's rates: over its whole run and from its first record on."""
    return {"bars": report.consumed, "seconds": report.seconds, "waited_s": report.waited,
            "bars_per_s": report.rate, "busy_bars_per_s": report.busy_rate}


def one_round(bars: pd.DataFrame, payloads, base: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """Raw producer, replay, raw consume, naive router, Router (both modes) on one namespace."""
    settings = scratch_settings(base)
    topics = settings.topics
    raw_topic = f"{settings.prefix}raw"
    outputs = [topics.variations, topics.alerts, topics.dead_letter]
    names, groups = [*topics.all, *(f"{raw_topic}-{loop}" for loop in RAW_LOOPS)], []
    admin = make_admin(settings)
    try:
        ensure_topics(admin, names)
        raw_s = {}
        for loop, extra in RAW_LOOPS.items():
            log(f"  raw producer ({loop.replace('_', ' ')}): {len(payloads):,} messages ...")
            raw_s[loop] = raw_produce(payloads, f"{raw_topic}-{loop}", settings, extra)
        log("  replay_bars ...")
        replay = replay_bars(bars, settings=settings, progress=False)
        if replay.delivered != len(bars) or count_messages(topics.pricelist, settings) != len(bars):
            raise BenchError(f"The replay delivered {replay.delivered:,} of {len(bars):,} bars.")
        log("  raw consume ...")
        consumed = raw_consume(topics.pricelist, settings)
        if consumed.consumed != len(bars):
            raise BenchError(f"The raw consumer read {consumed.consumed:,} of {len(bars):,} bars.")
        runs: dict[str, RouteReport] = {}
        for name, route in (
                ("naive", lambda g: route_naively(settings, Thresholds(), group_id=g)),
                ("router", lambda g: Router(settings, Thresholds(), group_id=g).run(True, progress=False)),
                ("router_exactly_once", lambda g: Router(settings, Thresholds(), exactly_once=True,
                                                         group_id=g).run(True, progress=False))):
            log(f"  {name} ...")
            group = settings.group(name)
            groups.append(group)
            delete_topics(admin, outputs)
            ensure_topics(admin, outputs)
            runs[name] = route(group)
            check_route(name, runs[name], bars, settings, transactional=name.endswith("exactly_once"))
        values = [orjson.loads(value) for _, value, _ in payloads]
        formats = {}
        for fmt in ("json", "avro"):
            log(f"  {fmt}: encode, produce, consume, decode ...")
            formats[fmt] = serialized_round(values, fmt, settings)
    finally:
        delete_topics(admin, names)
        delete_groups(admin, groups)
    rates = {loop: len(payloads) / seconds for loop, seconds in raw_s.items()}
    raw_rate, replay_rate = max(rates.values()), replay.rate
    naive, router, eos = (runs[k].busy_rate for k in ("naive", "router", "router_exactly_once"))
    written = (runs["router"].variations + runs["router"].alerts) / runs["router"].consumed
    return {"raw_producer": {"messages": len(payloads), "seconds": min(raw_s.values()),
                             "messages_per_s": raw_rate, "fastest": max(rates, key=rates.__getitem__),
                             **{f"{loop}_per_s": rate for loop, rate in rates.items()}},
            "replay": {"messages": replay.delivered, "seconds": replay.seconds,
                       "messages_per_s": replay_rate},
            "raw_consume": route_figures(consumed),
            **{name: route_figures(report) for name, report in runs.items()},
            "formats": formats,
            "ratios": {"replay_vs_raw": replay_rate / raw_rate,
                       "router_vs_naive": router / naive,
                       "router_vs_raw_consume": router / consumed.busy_rate,
                       "router_records_per_bar": written,
                       "router_vs_producer_ceiling": router * written / raw_rate,
                       **{f"avro_vs_json_{what}": formats["avro"][key] / formats["json"][key]
                          for what, key in FORMAT_RATIOS.items()},
                       "router_exactly_once_vs_naive": eos / naive}}


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of a few measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def run(n_bars: int, rounds: int, settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """`rounds` rounds of every Kafka measurement on `n_bars` bars; per round and summarized."""
    require_kafka(settings)
    bars = make_bars(n_bars)
    payloads = payloads_of(bars)
    per_round = []
    for n in range(rounds):
        log(f"kafka round {n + 1}/{rounds}, {len(bars):,} bars:")
        per_round.append(one_round(bars, payloads, settings, log))

    def over_rounds(path: tuple[str, str]) -> dict[str, float]:
        return spread([r[path[0]][path[1]] for r in per_round])

    return {
        "bars": len(bars), "tickers": N_TICKERS, "rounds": per_round,
        "replay": {"ratio_vs_raw": over_rounds(("ratios", "replay_vs_raw")),
                   "messages_per_s": over_rounds(("replay", "messages_per_s")),
                   "raw_messages_per_s": over_rounds(("raw_producer", "messages_per_s"))},
        "router": {"ratio_vs_naive": over_rounds(("ratios", "router_vs_naive")),
                   "ratio_vs_raw_consume": over_rounds(("ratios", "router_vs_raw_consume")),
                   "exactly_once_ratio_vs_naive": over_rounds(("ratios", "router_exactly_once_vs_naive")),
                   "bars_per_s": over_rounds(("router", "busy_bars_per_s")),
                   "exactly_once_bars_per_s": over_rounds(("router_exactly_once", "busy_bars_per_s")),
                   "naive_bars_per_s": over_rounds(("naive", "busy_bars_per_s")),
                   "raw_consume_per_s": over_rounds(("raw_consume", "busy_bars_per_s")),
                   "ratio_vs_producer_ceiling": over_rounds(("ratios", "router_vs_producer_ceiling")),
                   "records_per_bar": over_rounds(("ratios", "router_records_per_bar"))},
        "formats": {
            **{f"{fmt}_{key}": spread([r["formats"][fmt][key] for r in per_round])
               for fmt in ("json", "avro") for key in FORMAT_RATIOS.values()},
            **{f"avro_vs_json_{what}": over_rounds(("ratios", f"avro_vs_json_{what}"))
               for what in FORMAT_RATIOS}},
    }
