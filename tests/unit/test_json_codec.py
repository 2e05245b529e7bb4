"""The fast JSON path (orjson) reads and writes exactly what the standard library does.

`schemas.loads` must return what `json.loads` returns, or fail where it fails,
for every input the router can meet: NaN, infinities, huge integers, bad
UTF-8, UTF-16, a byte-order mark, lone surrogates, deep nesting, oversized
values. `schemas.encode` must write JSON that reads back as the standard
library's own output does, and refuse NaN and infinities as it always did.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.core.schemas import PRICELIST, decode, encode, loads
from helpers.pipeline.produce import bar_message, bar_messages, iter_bar_messages
from helpers.pipeline.sources import fetch_sample, fetch_synthetic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from strategies import JUNK_VALUES, records  # noqa: E402


def outcome(parse, raw):
    """('ok', repr of the result) or ('error', exception class): repr tells nan, -0.0 and ints apart."""
    try:
        return "ok", repr(parse(raw))
    except (ValueError, RecursionError) as exc:
        return "error", type(exc).__name__


json_texts = st.recursive(
    st.none() | st.booleans() | st.integers(-2**80, 2**80) | st.text(max_size=8)
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8).map(lambda v: json.dumps(v).encode())

EDGES = [b"NaN", b'{"a":NaN}', b'{"a":-Infinity}', b'{"a":1e400}', b'{"a":1.7976931348623159e308}',
         b'{"a":123456789012345678901234567890}', b'{"a":-9223372036854775809}',
         b'{"a":18446744073709551615}', b'{"a":[1,{"b":18446744073709551616}]}',
         b'\xef\xbb\xbf{"a":1}', '{"a":1}'.encode("utf-16"), '{"a":1}'.encode("utf-32"),
         b'{"a":"\\ud800"}', b'{"a":"\xff"}', b'\xff\xfe\xfd', b'{"a":1,"a":2}', b'{"a":"\\u0000"}',
         b"[" * 5000 + b"]" * 5000, b"1" * 5000, b'{"a":1}\x00', b"", b" ", b'{"a":01}']


@pytest.mark.parametrize("raw", EDGES + [b"[" * d + b"]" * d for d in (990, 1000, 1023, 1024, 1025)])
def test_loads_equals_json_loads_on_edges(raw):
    assert outcome(loads, raw) == outcome(json.loads, raw)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(records.filter(lambda r: r is not None), json_texts, st.binary(max_size=40)))
def test_loads_equals_json_loads(raw):
    assert outcome(loads, raw) == outcome(json.loads, raw)


@settings(max_examples=500, deadline=None)
@given(st.one_of(records, st.binary(max_size=40)))
def test_decode_is_unchanged(raw):
    """decode over the fast path agrees with decode over json.loads, error messages included."""
    import helpers.core.schemas as schemas

    def slow(topic, value, finite):
        original = schemas.loads
        schemas.loads = json.loads
        try:
            return outcome(lambda r: schemas.decode(topic, r, finite=finite), value)
        finally:
            schemas.loads = original

    for finite in (True, False):
        fast = outcome(lambda r, f=finite: decode(PRICELIST, r, finite=f), raw)
        assert fast == slow(PRICELIST, raw, finite)


def std_encode(value):
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


@settings(max_examples=1000, deadline=None)
@given(st.dictionaries(st.text(max_size=6) | st.integers(-3, 3), JUNK_VALUES, max_size=6))
def test_encode_reads_back_as_the_standard_library_writes(value):
    try:
        expected = ("ok", repr(json.loads(std_encode(value))))
    except ValueError:
        expected = ("error", "ValueError")
    assert outcome(lambda v: json.loads(encode(v)), value) == expected


@pytest.mark.parametrize("value", [{"a": float("nan")}, {"a": [1, float("inf")]},
                                   {"a": {"b": -float("inf")}}])
def test_encode_refuses_non_finite_numbers(value):
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode(value)


def test_encode_writes_what_orjson_cannot():
    value = {"big": 2**70, 1: "int key", "np": np.float64(1.5), "none": None}
    assert json.loads(encode(value)) == json.loads(std_encode(value))


def test_bar_messages_equal_bar_message_row_by_row():
    odd = pd.DataFrame({"ticker": ["A", "B", "C"], "ts": [1.0, 2.0, 3.0], "open": [1, 2, 3],
                        "high": [np.nan, 2.5, 3], "low": pd.array([1, None, 2], dtype="Int64"),
                        "close": ["1.5", None, 2.0], "volume": [True, False, 1.0],
                        "transactions": [1.7, np.nan, 3.0]})          # no vwap column at all
    for bars in (fetch_sample().head(3000), fetch_synthetic(n_tickers=4, n_bars=500, seed=3), odd):
        expected = [bar_message(record) for record in bars.to_dict("records")]
        assert bar_messages(bars) == expected
        assert [m for chunk in iter_bar_messages(bars, chunk=7) for m in chunk] == expected
