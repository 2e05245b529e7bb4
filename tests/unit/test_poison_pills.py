"""Property-based: whatever a `pricelist` record holds, route_bar decides and never raises."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.core.rules import Thresholds
from helpers.core.schemas import ALERTS, DEAD_LETTER, PRICELIST, VARIATIONS, decode, encode
from helpers.core.validation import TICKER
from helpers.pipeline.route import route_bar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from strategies import NOW, records, valid_bars  # noqa: E402

THRESHOLDS = Thresholds(price=195.0, variation=0.05)


@settings(max_examples=1500, deadline=None)
@given(records)
def test_every_record_is_routed_or_dead_lettered_never_raised(raw):
    out = route_bar(raw, THRESHOLDS, now=NOW)
    topics = [topic for topic, _ in out]
    assert topics in ([DEAD_LETTER], [VARIATIONS], [VARIATIONS, ALERTS])
    if topics == [DEAD_LETTER]:
        reason = out[0][1]["reason"]
        assert reason.split(":")[0] in ("bad_message", "missing_field", "bad_ticker", "bad_ts", "bad_price",
                                        "high_below_low", "outside_range", "bad_volume", "not_finite")
        return
    # what is routed can be written by Kafka and read by Flink and ksqlDB: checked independently
    bar = json.loads(raw)
    for topic, value in out:
        assert decode(topic, encode(value)) == value          # finite, typed, JSON-compliant
        assert TICKER.fullmatch(value["ticker"]) and value["ticker"] == bar["ticker"]
        assert 0 <= value["ts"] <= NOW + 3_600_000
    variation = out[0][1]
    assert math.isclose(variation["variation_ex"], bar["high"] / bar["low"] - 1, rel_tol=1e-12)
    assert (len(out) == 2) == (bar["close"] > THRESHOLDS.price)


@settings(max_examples=300, deadline=None)
@given(valid_bars(), st.floats(0.01, 1000))
def test_a_valid_bar_is_never_dead_lettered(bar, price):
    topics = [topic for topic, _ in route_bar(json.dumps(bar).encode(), Thresholds(price=price), now=NOW)]
    assert topics == ([VARIATIONS, ALERTS] if bar["close"] > price else [VARIATIONS])


@settings(max_examples=1500, deadline=None)
@given(records)
def test_the_fast_path_agrees_with_decode_and_bar_problem(raw):
    """valid_bar returns a bar only when decode would return that same bar and bar_problem finds nothing."""
    from helpers.core.validation import bar_problem
    from helpers.pipeline.route import valid_bar

    fast = valid_bar(raw, NOW)
    if fast is not None:
        bar = decode(PRICELIST, raw, finite=False)
        assert fast == bar and list(fast) == list(bar)
        assert bar_problem(bar, NOW) == ""


@settings(max_examples=300, deadline=None)
@given(valid_bars())
def test_a_valid_bar_takes_the_fast_path(bar):
    from helpers.pipeline.route import valid_bar

    assert valid_bar(json.dumps(bar).encode(), NOW) == decode(PRICELIST, json.dumps(bar).encode())
