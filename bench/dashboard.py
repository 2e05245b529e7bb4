"""Dashboard benchmark: one recompute after a slider change, on 10k to 1M synthetic bars.

Measurements per size:
- `slider_to_picture`: what a student waits for, from setting `price.value` /
  `variation.value` as a drag does to the new PNG bytes in the dashboard's
  Image widget (recompute + redraw + PNG encoding, all of it);
- `what_if`: the pure what-if with precomputed variations (what a slider costs);
- `recompute`: the Dashboard's own path (ticker and date selection + what_if),
  timed inside the slider change; `draw` is the rest of the change (figure
  update and PNG);
- `stress`: what_if at the sliders' minimums ($1, 0 %), where every bar is an
  alert, every variation is big and the buy join explodes (~11 pairs a bar).
"""
from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.core.rules import Thresholds, variations_frame
from helpers.core.whatif import what_if
from helpers.pipeline.dashboard import ALL, Dashboard
from helpers.pipeline.sources import fetch_synthetic

from .timing import summarize, timed

SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000,)
N_TICKERS = 20
SEED = 42
#: (price $, variation fraction) pairs a class would try: default, notebook 08, and around
GRID = ((195.0, 0.05), (250.0, 0.03), (180.0, 0.02), (150.0, 0.01), (220.0, 0.08), (300.0, 0.10))
STRESS = Thresholds(price=1.0, variation=0.0)   # the sliders' minimums
STRESS_BUDGET_S = 5.0      # stop repeating the stress case once it has taken this long


@dataclass(frozen=True)
class Plan:
    """How much to measure: sizes and repetitions."""

    sizes: tuple[int, ...] = SIZES
    what_if_repeat: int = 5        # passes over GRID for the pure what_if
    dashboard_repeat: int = 2      # passes over GRID through the sliders (each redraws)
    stress_repeat: int = 2

    @classmethod
    def quick(cls) -> Plan:
        """A smoke check: small sizes, few repetitions."""
        return cls(sizes=QUICK_SIZES, what_if_repeat=2, dashboard_repeat=1, stress_repeat=1)


def make_bars(size: int) -> pd.DataFrame:
    """`size` seeded synthetic bars of N_TICKERS tickers."""
    return fetch_synthetic(n_tickers=N_TICKERS, n_bars=max(1, size // N_TICKERS), seed=SEED)


def bench_what_if(bars: pd.DataFrame, repeat: int) -> dict[str, Any]:
    """Wall times of what_if over GRID, `repeat` passes, variations precomputed once."""
    variations = variations_frame(bars)
    what_if(bars, Thresholds(*GRID[0]), variations=variations)      # warm-up
    samples = [timed(what_if, bars, Thresholds(p, v), variations=variations)[1]
               for _ in range(repeat) for p, v in GRID]
    return summarize(samples)


def bench_stress(bars: pd.DataFrame, repeat: int) -> dict[str, Any]:
    """Wall times of what_if at the sliders' minimums (within a time budget), with the buy join's size."""
    variations = variations_frame(bars)
    samples: list[float] = []
    buys = 0
    while len(samples) < repeat and sum(samples) < STRESS_BUDGET_S:
        result, seconds = timed(what_if, bars, STRESS, variations=variations)
        samples.append(seconds)
        buys = len(result.buys)
        del result
    return {**summarize(samples), "buys": buys}


class SliderDriver:
    """Moves a Dashboard's sliders and times each recompute, redraw and PNG render."""

    def __init__(self, dash: Dashboard):
        self.dash = dash
        self.recompute_s: list[float] = []
        self.draw_s: list[float] = []
        self.total_s: list[float] = []
        self.cpu_s: list[float] = []           # CPU time of this process: what load on the machine hides
        original = dash.recompute

        def recompute():
            result, seconds = timed(original)
            self.recompute_s.append(seconds)
            return result

        dash.recompute = recompute  # type: ignore[method-assign]  # update() calls it: time it there

    def set(self, control, value) -> None:
        """Set one control (which recomputes, redraws and re-renders) unless it already shows `value`."""
        if control.value == value:
            return
        before, picture = len(self.recompute_s), bytes(self.dash.output.value)
        cpu = time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):    # display() prints outside a kernel
            _, seconds = timed(setattr, control, "value", value)
        self.cpu_s.append(time.process_time() - cpu)
        if len(self.recompute_s) != before + 1:
            raise RuntimeError(f"Setting {control.description} did not recompute the dashboard once.")
        new = bytes(self.dash.output.value)
        if new == picture or not new.startswith(PNG):
            raise RuntimeError(f"Setting {control.description} did not put a new PNG in the dashboard.")
        self.total_s.append(seconds)
        self.draw_s.append(seconds - self.recompute_s[-1])

    def sweep(self, repeat: int) -> None:
        """Move price then variation through GRID, `repeat` passes."""
        for _ in range(repeat):
            for price, variation in GRID:
                self.set(self.dash.price, price)
                self.set(self.dash.variation, variation)

    def reset(self) -> None:
        """Forget the samples taken so far."""
        for samples in (self.recompute_s, self.draw_s, self.total_s, self.cpu_s):
            samples.clear()


PNG = b"\x89PNG"


def bench_dashboard(bars: pd.DataFrame, repeat: int, snapshot: Path | None = None) -> dict[str, Any]:
    """The Dashboard path: construction, then slider changes on all tickers and on one ticker."""
    dash, init_s = timed(Dashboard, bars)
    with contextlib.redirect_stdout(io.StringIO()):
        _, first_s = timed(dash.update)                   # what show() draws first
    driver = SliderDriver(dash)
    driver.sweep(repeat)
    measured = {"init_ms": init_s * 1000, "first_picture_ms": first_s * 1000,
                "slider_to_picture": summarize(driver.total_s),
                "slider_to_picture_cpu": summarize(driver.cpu_s),
                "recompute": summarize(driver.recompute_s), "draw": summarize(driver.draw_s)}
    if snapshot:
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_bytes(bytes(dash.output.value))          # the last picture a student saw
    driver.reset()
    for ticker in (*dash.ticker.options[1:3], ALL):     # another selection: lines and layout redone
        driver.set(dash.ticker, ticker)
    measured["ticker_to_picture"] = summarize(driver.total_s)
    driver.set(dash.ticker, dash.ticker.options[1])
    driver.reset()
    driver.sweep(repeat)
    measured["recompute_one_ticker"] = summarize(driver.recompute_s)
    measured["slider_to_picture_one_ticker"] = summarize(driver.total_s)
    return measured


def size_key(bars: int) -> str:
    """10k, 100k, 1M: the key of a size in results.json."""
    return f"{bars // 1_000_000}M" if bars >= 1_000_000 else f"{bars // 1000}k"


def run(plan: Plan, log=print, snapshots: Path | None = None) -> dict[str, Any]:
    """Every dashboard measurement of the plan, one entry per size (key 10k, 100k, 1M)."""
    sizes: dict[str, Any] = {}
    for size in plan.sizes:
        bars = make_bars(size)
        log(f"dashboard: {len(bars):,} bars ...")
        snapshot = snapshots / f"dashboard_{size_key(len(bars))}.png" if snapshots else None
        row = {"bars": len(bars), "tickers": N_TICKERS,
               **bench_dashboard(bars, plan.dashboard_repeat, snapshot),
               "what_if": bench_what_if(bars, plan.what_if_repeat),
               "stress": bench_stress(bars, plan.stress_repeat)}
        row["slider_to_picture_ms"] = {"p50": row["slider_to_picture"]["median_ms"],
                                       "p95": row["slider_to_picture"]["p95_ms"],
                                       "cpu_p50": row["slider_to_picture_cpu"]["median_ms"]}
        sizes[size_key(len(bars))] = row
    return {"grid": [list(pair) for pair in GRID], "stress_thresholds": [STRESS.price, STRESS.variation],
            **sizes}
