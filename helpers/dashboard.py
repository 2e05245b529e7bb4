"""The dashboard: threshold sliders over the whole replayed history (07_dashboard).

Moving a slider recomputes alerts, variations and buy signals at once with the
same pure rules as the router and the same reference join as notebook 05
(`helpers.rules`), then redraws. Nothing here talks to Kafka while the sliders
move: the history is read once, the what-if is pure computation.
"""
from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import pandas as pd
from IPython.core.pylabtools import print_figure
from IPython.display import display
from matplotlib.figure import Figure

from .errors import InputError
from .plots import figure_and_axes, plot_counts, plot_prices, plot_variations
from .rules import VARIATION_THRESHOLD, Thresholds, variations_frame
from .schemas import ALERTS, BUY, PRICELIST
from .whatif import WhatIf, sweep, what_if

ALL = "all tickers"


def draw(result: WhatIf) -> Figure:
    """Price with alerts and buys, variation_ex with its band, counts per topic.

    A plain Figure, not registered with pyplot, so a notebook shows it once.
    """
    fig = Figure(figsize=(13, 9), layout="constrained")
    grid = fig.add_gridspec(2, 3)
    ax_price, ax_var = fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, :2])
    ax_counts = fig.add_subplot(grid[1, 2])
    t = result.thresholds
    plot_prices(result.bars, t.price, alerts=result.alerts, buys=result.buys,
                title=f"Close > ${t.price:g} and |high/low − 1| > {t.variation:.1%} within 5 min",
                ax=ax_price)
    if len(result.variations):
        plot_variations(result.variations, t.variation, ax=ax_var)
    plot_counts(result.counts, title="What the topics would hold (what-if)", ax=ax_counts)
    ax_counts.tick_params(axis="x", labelrotation=20)
    return fig


class Dashboard:
    """Sliders for the two thresholds, a ticker and a time range, redrawing on every change."""

    def __init__(self, bars: pd.DataFrame, thresholds: Thresholds = Thresholds(), settings=None):
        if bars.empty:
            raise InputError("The dashboard needs bars: replay some into pricelist first (notebook 03).")
        self.bars = bars.sort_values(["ts", "ticker"], ignore_index=True)
        self._variations = variations_frame(self.bars)
        self._ts = self.bars["ts"].to_numpy()
        days = pd.to_datetime(self.bars["ts"], unit="ms", utc=True).dt.normalize().unique()
        low, high = self.bars["close"].min(), self.bars["close"].max()
        self.price = widgets.FloatSlider(value=thresholds.price, min=max(1.0, np.floor(low * 0.8)),
                                         max=max(np.ceil(high * 1.2), thresholds.price), step=1,
                                         description="price ($)", continuous_update=False,
                                         readout_format=".0f", layout={"width": "420px"})
        self.variation = widgets.FloatSlider(value=thresholds.variation, min=0.005, max=0.20, step=0.001,
                                             description="variation", readout_format=".1%",
                                             continuous_update=False, layout={"width": "420px"})
        self.ticker = widgets.Dropdown(options=[ALL, *sorted(self.bars["ticker"].unique())],
                                       value=ALL, description="ticker")
        labels = [(d.strftime("%Y-%m-%d"), d) for d in days]
        self.period = widgets.SelectionRangeSlider(options=labels, index=(0, len(labels) - 1),
                                                   description="dates", continuous_update=False,
                                                   readout=False, layout={"width": "720px"})
        self.summary = widgets.HTML()
        # An Image widget, not an Output: Voilà/nbclient can hang on Output widgets
        # updated from later cells (nbclient#312, voila#1428).
        self.output = widgets.Image(format="png", layout={"max_width": "100%"})
        self.result: WhatIf | None = None
        self.figure: Figure | None = None
        for control in (self.price, self.variation, self.ticker, self.period):
            control.observe(lambda change: self.update(), names="value")
        self.settings = settings
        self.apply_button = widgets.Button(
            description="Apply to the pipeline", icon="play",
            tooltip="re-run replay, router and stream SQL with these thresholds",
            layout={"width": "220px", "display": "" if settings else "none"})
        self.apply_button.on_click(lambda button: self.apply())
        self.applied = widgets.HTML()
        self.controls = widgets.VBox([widgets.HBox([self.price, self.variation]),
                                      widgets.HBox([self.ticker, self.apply_button, self.applied]),
                                      self.period, self.summary])

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds the sliders show now."""
        return Thresholds(price=self.price.value, variation=self.variation.value)

    def recompute(self) -> WhatIf:
        """The what-if of the current controls (no drawing).

        The bars are sorted by time, so the date range is a slice found by
        binary search (no copy); a ticker mask is applied only when one is chosen.
        """
        start, end = self.period.value
        end_ms = int((end + pd.Timedelta(days=1)).value // 10**6) - 1
        lo = np.searchsorted(self._ts, int(start.value // 10**6), side="left")
        hi = np.searchsorted(self._ts, end_ms, side="right")
        bars, variations = self.bars.iloc[lo:hi], self._variations.iloc[lo:hi]
        if self.ticker.value != ALL:
            mine = (bars["ticker"] == self.ticker.value).to_numpy()
            bars, variations = bars[mine], variations[mine]
        return what_if(bars, self.thresholds, variations)

    def update(self) -> WhatIf:
        """Recompute and redraw; returns the new what-if."""
        self.result = self.recompute()
        counts = self.result.counts
        first, last = (label for label, _ in (self.period.options[i] for i in self.period.index))
        self.summary.value = (
            f"<b>{counts[ALERTS]:,}</b> alerts · <b>{counts[BUY]:,}</b> buy signals · "
            f"{counts[PRICELIST]:,} bars from {first} to {last} · "
            f"recomputed in {self.result.seconds * 1000:.0f} ms")
        self.figure = draw(self.result)
        self.output.value = print_figure(self.figure, "png")
        return self.result

    def apply(self) -> pd.Series:
        """Apply the sliders' thresholds to the real pipeline (see 07_dashboard); return its counts."""
        from .live import apply_to_pipeline

        t = self.thresholds
        self.apply_button.disabled = True
        self.applied.value = f"applying ${t.price:g} and {t.variation:.1%} to the pipeline…"
        try:
            counts = apply_to_pipeline(self.bars, t, self.settings)
        finally:
            self.apply_button.disabled = False
        self.applied.value = (f"pipeline now at ${t.price:g}, {t.variation:.1%}: <b>{counts['alerts']:,}"
                              f"</b> alerts, <b>{counts['buy']:,}</b> buys in the topics")
        return counts

    def show(self) -> None:
        """Display the controls and the plots (call once, at the end of a cell)."""
        self.update()
        display(self.controls, self.output)


def read_history(settings=None) -> pd.DataFrame:
    """The replayed history: every bar in `pricelist`, as a frame of bars."""
    from .config import load_settings
    from .schemas import BAR_COLUMNS
    from .topics import read_topic

    settings = settings or load_settings()
    frame = read_topic(settings.topics.pricelist, settings=settings)   # the student's own
    if frame.empty:
        return pd.DataFrame(columns=BAR_COLUMNS)
    return frame[BAR_COLUMNS].astype({"ts": "int64", "transactions": "Int64"})


def plot_sweep(bars: pd.DataFrame, prices: list[float], variations: list[float], ax=None):
    """Buy signals against the variation threshold, one line per price threshold.

    The y axis is linear up to 10 and logarithmic above (symlog), so 0 is drawn
    as 0 and the large counts of low thresholds still fit; ticks are plain numbers.
    """
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    table = sweep(bars, prices, variations)
    fig, ax = figure_and_axes(ax)
    for price in table.columns:
        ax.plot(table.index, table[price], marker="o", label=f"close > ${price:g}")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:,.0f}"))
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.axvline(VARIATION_THRESHOLD, color="gray", ls=":", label="course default 5 %")
    ax.set(title="Buy signals for each pair of thresholds", xlabel="variation threshold",
           ylabel="buy signals (0 to 10 linear, then log)")
    ax.legend()
    return fig, ax
