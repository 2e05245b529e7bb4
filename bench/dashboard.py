"""Dashboard benchmark: one recompute after a slider change, on 10k to 1M synthetic bars.

Three measurements per size:
- `what_if`: the pure what-if with precomputed variations (what a slider costs);
- `recompute`: the Dashboard's own path (ticker and date selection + what_if),
  driven by setting `price.value` / `variation.value` as a user would; the
  redraw that follows each change is timed apart (`draw`), and so is turning
  the figure into the PNG a notebook shows (`render`);
- `stress`: what_if at the sliders' minimums ($1, 0 %), where every bar is an
  alert, every variation is big and the buy join explodes (~11 pairs a bar).
"""
from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from helpers.dashboard import Dashboard, what_if
from helpers.rules import Thresholds, variations_frame
from helpers.sources import fetch_synthetic

from .timing import summarize, timed

SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
N_TICKERS = 20
SEED = 42
GOAL_BARS, GOAL_MS = 1_000_000, 200.0
#: (price $, variation fraction) pairs a class would try: default, notebook 06, and around
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
        self.render_s: list[float] = []
        original = dash.recompute

        def recompute():
            result, seconds = timed(original)
            self.recompute_s.append(seconds)
            return result

        dash.recompute = recompute  # type: ignore[method-assign]  # update() calls it: time it there

    def set(self, control, value, render: bool = False) -> None:
        """Set one control (which recomputes and redraws) unless it already shows `value`."""
        if control.value == value:
            return
        before = len(self.recompute_s)
        with contextlib.redirect_stdout(io.StringIO()):    # display() prints outside a kernel
            _, seconds = timed(setattr, control, "value", value)
        if len(self.recompute_s) != before + 1:
            raise RuntimeError(f"Setting {control.description} did not recompute the dashboard once.")
        self.draw_s.append(seconds - self.recompute_s[-1])
        if render:
            self.render_s.append(render_png(self.dash.figure))

    def sweep(self, repeat: int, render_first: bool = True) -> None:
        """Move price then variation through GRID, `repeat` passes; render once per pair on the first."""
        for n in range(repeat):
            for price, variation in GRID:
                self.set(self.dash.price, price)
                self.set(self.dash.variation, variation, render=render_first and n == 0)

    def reset(self) -> None:
        """Forget the samples taken so far."""
        for samples in (self.recompute_s, self.draw_s, self.render_s):
            samples.clear()


def render_png(figure) -> float:
    """Seconds to render a figure as the PNG an inline notebook would show."""
    start = time.perf_counter()
    figure.savefig(io.BytesIO(), format="png", bbox_inches="tight")
    return time.perf_counter() - start


def bench_dashboard(bars: pd.DataFrame, repeat: int) -> dict[str, Any]:
    """The Dashboard path: construction, then slider changes on all tickers and on one ticker."""
    dash, init_s = timed(Dashboard, bars)
    driver = SliderDriver(dash)
    driver.sweep(repeat)
    measured = {"init_ms": init_s * 1000, "recompute": summarize(driver.recompute_s),
                "draw": summarize(driver.draw_s), "render_png": summarize(driver.render_s)}
    driver.set(dash.ticker, dash.ticker.options[1])
    driver.reset()
    driver.sweep(repeat, render_first=False)
    measured["recompute_one_ticker"] = summarize(driver.recompute_s)
    return measured


def run(plan: Plan, log=print) -> dict[str, Any]:
    """Every dashboard measurement of the plan, one entry per size, and the goal verdict."""
    rows = []
    for size in plan.sizes:
        bars = make_bars(size)
        log(f"dashboard: {len(bars):,} bars ...")
        rows.append({"bars": len(bars), "tickers": N_TICKERS,
                     "what_if": bench_what_if(bars, plan.what_if_repeat),
                     **bench_dashboard(bars, plan.dashboard_repeat),
                     "stress": bench_stress(bars, plan.stress_repeat)})
    return {"grid": [list(pair) for pair in GRID], "stress_thresholds": [STRESS.price, STRESS.variation],
            "sizes": rows, "goal": goal_verdict(rows)}


def goal_verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether the recompute of GOAL_BARS bars stays under GOAL_MS at p95 (None if not measured)."""
    row = next((r for r in rows if r["bars"] == GOAL_BARS), None)
    verdict = {"bars": GOAL_BARS, "limit_ms": GOAL_MS, "met": None}
    if row:
        p95 = row["recompute"]["p95_ms"]
        verdict.update(p95_ms=p95, median_ms=row["recompute"]["median_ms"], met=p95 < GOAL_MS,
                       stress_met=row["stress"]["p95_ms"] < GOAL_MS)
    return verdict
