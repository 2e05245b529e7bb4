"""Message schemas of the four topics, documented in one place (03_producing).

Every message is JSON, keyed by the ticker (UTF-8), so all bars of one stock
land in the same partition, in order. `ts` is the bar's start time in epoch
milliseconds UTC, everywhere: in MySQL (`candle_prices.ts`), in every message
value and as the Kafka message timestamp, so ksqlDB (`TIMESTAMP='ts'`) and
Flink (`TO_TIMESTAMP_LTZ(ts, 3)`) measure the join window on market time.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Any

import orjson

from helpers.core.errors import SchemaError

_orjson_dumps, _orjson_loads = orjson.dumps, orjson.loads

if TYPE_CHECKING:
    import pandas as pd

PRICELIST = "pricelist"
ALERTS = "alerts"
VARIATIONS = "variations"
BUY = "buy"
DEAD_LETTER = "pricelist.dlq"
TOPICS = (PRICELIST, ALERTS, VARIATIONS, BUY, DEAD_LETTER)


@dataclass(frozen=True)
class TopicNames:
    """The pipeline's topic names in one namespace: `settings.topics.pricelist`.

    On a laptop they are the plain names; a student on a shared cluster gets
    them with a prefix ('alice.pricelist'), and each test gets its own.
    """

    pricelist: str = PRICELIST
    alerts: str = ALERTS
    variations: str = VARIATIONS
    buy: str = BUY
    dead_letter: str = DEAD_LETTER

    @classmethod
    def with_prefix(cls, prefix: str) -> TopicNames:
        """The same topics with `prefix` in front of each name."""
        return cls(*(prefix + name for name in TOPICS))

    @property
    def all(self) -> tuple[str, ...]:
        """Every topic, in the order of TOPICS."""
        return astuple(self)

    def logical(self, name: str) -> str:
        """The schema name (pricelist, alerts...) of one of these topics."""
        return TOPICS[self.all.index(name)]

#: field name -> (type, meaning); the order is the order in the JSON value.
FIELDS: dict[str, dict[str, tuple[type, str]]] = {
    PRICELIST: {
        "ticker": (str, "stock symbol, also the message key"),
        "ts": (int, "bar start, epoch milliseconds UTC (event time)"),
        "open": (float, "first trade price of the bar, USD"),
        "high": (float, "highest trade price of the bar, USD"),
        "low": (float, "lowest trade price of the bar, USD"),
        "close": (float, "last trade price of the bar, USD"),
        "volume": (float, "shares traded in the bar"),
        "vwap": (float, "volume-weighted average price, USD (may be null)"),
        "transactions": (int, "number of trades in the bar (may be null)"),
    },
    VARIATIONS: {
        "ticker": (str, "stock symbol, also the message key"),
        "ts": (int, "bar start, epoch milliseconds UTC (event time)"),
        "variation_ex": (float, "high/low - 1, a fraction: 0.05 is 5 %"),
        "variation_in": (float, "close/open - 1, a fraction: -0.01 is -1 %"),
    },
    ALERTS: {
        "ticker": (str, "stock symbol, also the message key"),
        "ts": (int, "bar start, epoch milliseconds UTC (event time)"),
        "close": (float, "closing price of the bar, above the price threshold, USD"),
        "volume": (float, "shares traded in the bar"),
        "transactions": (int, "number of trades in the bar (may be null)"),
    },
    BUY: {
        "ticker": (str, "stock symbol, also the message key"),
        "alert_ts": (int, "event time of the alert, epoch milliseconds UTC"),
        "variation_ts": (int, "event time of the variation, epoch milliseconds UTC"),
        "close": (float, "closing price of the alert bar, USD"),
        "variation_ex": (float, "high/low - 1 of the variation bar, a fraction"),
        "variation_in": (float, "close/open - 1 of the variation bar, a fraction"),
    },
}

NULLABLE = {"vwap", "transactions"}
BIG_INT = 2.0**63               # orjson reads integers beyond 64 bits as floats at least this large
LONG_DIGITS = re.compile(rb"[0-9]{19}")     # such an integer has at least 19 digits
LONG_DIGITS_TEXT = re.compile(r"[0-9]{19}")
MAX_VALUE_BYTES = 16 * 1024     # a message is a few hundred bytes; anything this large is not ours
BAR_COLUMNS = list(FIELDS[PRICELIST])   # a bar: in MySQL, in a DataFrame, in a pricelist message


def encode(value: Mapping[str, Any]) -> bytes:
    """Serialize a message value as compact JSON (UTF-8); NaN and infinities raise ValueError.

    orjson writes it (about 5 times faster than the standard library); what
    orjson cannot write (an integer beyond 64 bits, a key that is not a
    string, a type of its own) is written by the standard library, and a
    non-finite number, which orjson would write as null, raises as before.
    """
    try:
        out = _orjson_dumps(value)
    except orjson.JSONEncodeError:
        return _std_encode(value)
    if b"null" in out and _has_non_finite(value):
        return _std_encode(value)                       # raises ValueError, as it always did
    return out


def _std_encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _has_non_finite(value: Any) -> bool:
    """True when a float anywhere in value is NaN or infinite."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(v) for v in value)
    return False


def loads(raw: bytes | str) -> Any:
    """Parse JSON exactly as the standard library's json.loads does, only faster.

    orjson parses the well-formed messages of the pipeline; whatever orjson
    refuses (NaN, Infinity, 1e400, UTF-16, a byte-order mark, a lone
    surrogate, nesting deeper than 1,024) is parsed, or refused, by json.loads,
    and so is an integer beyond 64 bits, which orjson would read as a float.
    """
    try:
        value = _orjson_loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)
    long_digits = LONG_DIGITS_TEXT.search(raw) if isinstance(raw, str) else LONG_DIGITS.search(raw)
    if long_digits is None:             # no run of 19 digits: no integer of 64 bits or more
        return value
    return json.loads(raw) if _may_be_big_int(value) else value


def _may_be_big_int(value: Any) -> bool:
    """True when a float anywhere in a parsed value is at least 2**63 in size."""
    items = value.values() if value.__class__ is dict else value if value.__class__ is list else (value,)
    for item in items:
        kind = item.__class__
        if kind is float:
            if not -BIG_INT < item < BIG_INT:
                return True
        elif (kind is dict or kind is list) and _may_be_big_int(item):
            return True
    return False


def decode(topic: str, raw: bytes | None, *, finite: bool = True) -> dict[str, Any]:
    """Parse and check one message value of `topic`, raising SchemaError when malformed.

    With finite=False, NaN and infinite numbers are let through for the caller
    to judge (the router hands them to `validation.bar_problem`).
    """
    if raw is None:
        raise SchemaError("the message has no value")
    if len(raw) > MAX_VALUE_BYTES:
        raise SchemaError(f"the value has {len(raw):,} bytes, more than a message of this topic can have")
    try:
        value = loads(raw)
    except (ValueError, RecursionError) as exc:     # bad UTF-8 or JSON, a number of 5,000 digits...
        raise SchemaError(f"the value is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise SchemaError("the value is not a JSON object")
    out: dict[str, Any] = {}
    for name, (kind, _) in FIELDS[topic].items():
        item = value.get(name)
        if item is None:
            if name in NULLABLE:
                out[name] = None
                continue
            raise SchemaError(f"field {name!r} is missing")
        if kind is str and not isinstance(item, str):
            raise SchemaError(f"field {name!r} must be a string")
        if kind is not str:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                raise SchemaError(f"field {name!r} must be a number")
            if not math.isfinite(item):
                if name in NULLABLE and math.isnan(item):
                    out[name] = None                 # NaN: an optional value that is absent
                    continue
                if finite:
                    raise SchemaError(f"field {name!r} must be finite")
                out[name] = float(item)
                continue
            if kind is int and item != int(item):
                raise SchemaError(f"field {name!r} must be a whole number")
            item = kind(item)
        out[name] = item
    return out


TIME_FIELDS = ("ts", "alert_ts", "variation_ts", "timestamp")


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """The same rows with every epoch-millisecond time as a UTC date and time, for people to read."""
    import pandas as pd

    times = {c: pd.to_datetime(frame[c], unit="ms", utc=True) for c in TIME_FIELDS if c in frame}
    return frame.assign(**times)


def schema_table(topic: str) -> pd.DataFrame:
    """The documented fields of a topic as a small table (03_producing)."""
    import pandas as pd

    return pd.DataFrame([{"field": name, "type": kind.__name__, "meaning": meaning}
                         for name, (kind, meaning) in FIELDS[topic].items()]).set_index("field")


def utc_day(ts: int) -> str:
    """'2009-10-20': the UTC day of an epoch-millisecond time."""
    return dt.datetime.fromtimestamp(int(ts) / 1000, tz=dt.UTC).strftime("%Y-%m-%d")


AVRO_TYPES = {str: "string", int: "long", float: "double"}


def avro_schema(topic: str) -> dict[str, Any]:
    """The Avro record schema of a topic's values, from FIELDS: its fields in order, each with its
    meaning as `doc`; a field that may be null is a union with null, null by default."""
    fields = []
    for name, (kind, meaning) in FIELDS[topic].items():
        avro = AVRO_TYPES[kind]
        fields.append({"name": name, "type": ["null", avro], "default": None, "doc": meaning}
                      if name in NULLABLE else {"name": name, "type": avro, "doc": meaning})
    return {"type": "record", "name": topic.replace(".", "_"), "namespace": "workbook", "fields": fields}
