"""The router's report counts each record once, even when an exactly-once transaction is aborted and its
records are read again (no broker: the clients are stand-ins)."""
from __future__ import annotations

import pytest

from helpers.core.rules import Thresholds
from helpers.infra.environment import load_settings
from helpers.pipeline import route
from helpers.pipeline.produce import bar_message


class Message:
    """A pricelist record as the consumer hands it over."""

    def __init__(self, offset: int, value: bytes, key: bytes = b"AAPL"):
        self._offset, self._value, self._key = offset, value, key

    def error(self):
        return None

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return self._key

    def topic(self) -> str:
        return "pricelist"

    def timestamp(self):
        return (1, 0)


class Consumer:
    def __init__(self):
        self.seeks = []

    def assignment(self):
        return []

    def committed(self, partitions, timeout):
        return []

    def seek(self, tp):
        self.seeks.append(tp)

    def close(self):
        pass


class Producer:
    def __init__(self):
        self.produced, self.aborted = [], 0

    def produce(self, topic, value, key, timestamp=None, headers=None, on_delivery=None):
        self.produced.append(topic)

    def poll(self, timeout):
        return 0

    def init_transactions(self, timeout):
        pass

    def begin_transaction(self):
        pass

    def abort_transaction(self, timeout):
        self.aborted += 1

    def flush(self, timeout):
        return 0


class Bar:
    def update(self, n):
        pass


@pytest.fixture
def router(tmp_path, monkeypatch):
    monkeypatch.setattr(route, "make_consumer", lambda group, settings, extra=None: Consumer())
    monkeypatch.setattr(route, "make_producer", lambda settings, extra=None: Producer())
    settings = load_settings({"WORKBOOK_STACK": "local"}, dotenv=tmp_path / "x")
    return route.Router(settings, Thresholds(price=100), exactly_once=True)


def records(n: int, start: int = 0) -> list[Message]:
    bar = {"ticker": "AAPL", "ts": 1_000_000, "open": 150.0, "high": 160.0, "low": 140.0, "close": 150.0,
           "volume": 10.0, "vwap": None, "transactions": None}
    return [Message(start + i, bar_message({**bar, "ts": bar["ts"] + i})[1]) for i in range(n)]


def test_an_aborted_transaction_leaves_the_counts_of_the_committed_ones(router):
    router._batch(records(5), set(), Bar())              # transaction 1
    router._in_transaction = False                       # ... committed
    committed = (router.report.consumed, router.report.variations, router.report.alerts)
    assert committed == (5, 5, 5)
    router._batch(records(3, start=5), set(), Bar())     # transaction 2 ...
    assert router.report.consumed == 8
    router._abort_and_rewind()                           # ... aborted: its 3 records will be read again
    assert (router.report.consumed, router.report.variations, router.report.alerts) == committed
    router._batch(records(3, start=5), set(), Bar())     # read again, counted once
    assert (router.report.consumed, router.report.variations, router.report.alerts) == (8, 8, 8)
    assert router.producer.aborted == 1


def test_a_router_closes_its_consumer_once_whatever_happens(router):
    closed = []
    router.consumer.close = lambda: closed.append(1)
    with router:
        pass
    router.close()
    assert closed == [1]
