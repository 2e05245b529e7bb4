"""What-if: the routed streams of a whole history under chosen thresholds (08_dashboard).

Pure computation with the same rules as the router and the same reference
join as notebook 07 (`helpers.core.rules`): no Kafka, no plotting.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from helpers.core.rules import JOIN_WINDOW_MS, Thresholds, alerts_frame, buy_signals, variations_frame
from helpers.core.schemas import ALERTS, BUY, PRICELIST, VARIATIONS


@dataclass
class WhatIf:
    """The routed streams for one choice of thresholds, and how long computing them took."""

    thresholds: Thresholds
    bars: pd.DataFrame
    variations: pd.DataFrame
    alerts: pd.DataFrame
    buys: pd.DataFrame
    seconds: float

    @property
    def counts(self) -> pd.Series:
        """Messages each topic would hold: pricelist, variations, alerts, buy."""
        return pd.Series({PRICELIST: len(self.bars), VARIATIONS: len(self.variations),
                          ALERTS: len(self.alerts), BUY: len(self.buys)}, name="messages")


def what_if(bars: pd.DataFrame, thresholds: Thresholds, variations: pd.DataFrame | None = None,
            window_ms: int = JOIN_WINDOW_MS) -> WhatIf:
    """Alerts, variations and buy signals of `bars` under `thresholds`, all at once.

    `variations` may be passed precomputed: they do not depend on the thresholds.
    """
    start = time.perf_counter()
    variations = variations_frame(bars) if variations is None else variations
    alerts = alerts_frame(bars, thresholds.price)
    buys = buy_signals(alerts, variations, thresholds.variation, window_ms)
    return WhatIf(thresholds, bars, variations, alerts, buys, time.perf_counter() - start)


@dataclass(frozen=True)
class PriceChange:
    """A new alert price that a running router took from its control topic (08_dashboard).

    `from_offsets`: partition -> the first offset of `pricelist` routed at the
    new price; a partition absent from it had no bar routed before the change,
    so all of its bars were.
    """

    price: float
    from_offsets: Mapping[int, int] = field(default_factory=dict)
    seconds: float = 0.0          # after the router started


def price_in_force(bars: pd.DataFrame, price: float, changes: Sequence[PriceChange]) -> np.ndarray:
    """The alert price each bar was routed with: `price`, then each change from its offsets on.

    `bars` needs the `partition` and `offset` of each bar in `pricelist`.
    """
    prices = np.full(len(bars), float(price))
    partitions, offsets = bars["partition"].to_numpy(), bars["offset"].to_numpy()
    for change in changes:
        first = np.array([change.from_offsets.get(int(p), 0) for p in partitions], dtype=np.int64)
        prices[offsets >= first] = change.price
    return prices


def what_if_changed(bars: pd.DataFrame, thresholds: Thresholds,
                    changes: Sequence[PriceChange]) -> WhatIf:
    """`what_if` for a run whose alert price changed while it ran: each bar is judged at the price in
    force when the router routed it (the variation threshold stays: it belongs to the join)."""
    start = time.perf_counter()
    prices = price_in_force(bars, thresholds.price, changes)
    variations = variations_frame(bars)
    alerts = pd.concat([alerts_frame(bars[prices == p], p) for p in np.unique(prices)],
                       ignore_index=True)
    buys = buy_signals(alerts, variations, thresholds.variation)
    return WhatIf(thresholds, bars, variations, alerts, buys, time.perf_counter() - start)


def sweep(bars: pd.DataFrame, prices: list[float], variations: list[float]) -> pd.DataFrame:
    """Buy signals for every pair of thresholds: rows = variation, columns = price."""
    var_frame = variations_frame(bars)
    return pd.DataFrame(
        {p: [len(what_if(bars, Thresholds(p, v), var_frame).buys) for v in variations] for p in prices},
        index=pd.Index(variations, name="variation threshold"))
