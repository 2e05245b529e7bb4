"""The dashboard: threshold sliders over the whole replayed history (08_dashboard).

Moving a slider recomputes alerts, variations and buy signals at once with the
same pure rules as the router and the same reference join as notebook 07
(`helpers.core.rules`), then redraws. Nothing here talks to Kafka while the sliders
move: the history is read once, the what-if is pure computation.
"""
from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING

import ipywidgets as widgets
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from IPython.display import display
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from helpers.core.errors import InputError
from helpers.core.plots import (
    MAX_LEGEND,
    MAX_POINTS,
    TOPIC_COLORS,
    decimate,
    figure_and_axes,
    ms_to_days,
    thin,
    ticker_color,
)
from helpers.core.rules import VARIATION_THRESHOLD, Thresholds, variations_frame
from helpers.core.schemas import ALERTS, BUY, PRICELIST
from helpers.core.whatif import WhatIf, sweep, what_if

if TYPE_CHECKING:
    from helpers.core.settings import Settings
    from helpers.infra.workbook import Workbook

ALL = "all tickers"


FIGSIZE = (13, 9)
PNG_LEVEL = 1                           # zlib level of the dashboard's PNG: fast, and small enough


def draw(result: WhatIf) -> Figure:
    """Price with alerts and buys, variation_ex with its band, counts per topic.

    A plain Figure, not registered with pyplot, so a notebook shows it once.
    """
    return DashboardFigure(result).figure


class DashboardFigure:
    """The dashboard's figure, built once and updated in place when the sliders move.

    Moving a threshold changes only some artists' data (the threshold lines,
    the alert and buy markers, the variations above the threshold, the bars
    and their labels): nothing is rebuilt. The price lines change only with
    the ticker or the dates, and are decimated to two points per pixel column
    (`plots.decimate`), so they look as with every bar. The PNG is encoded
    with light compression, once per change.
    """

    def __init__(self, result: WhatIf):
        self.figure = fig = Figure(figsize=FIGSIZE, layout="constrained")
        self.canvas = FigureCanvasAgg(fig)
        grid = fig.add_gridspec(2, 3)
        self.ax_price, self.ax_var = fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, :2])
        self.ax_counts = fig.add_subplot(grid[1, 2])
        ax, av, ac = self.ax_price, self.ax_var, self.ax_counts
        self.lines: list = []
        self.bars_key: tuple | None = None
        self.layout_stale = True
        self.background = None
        self.background_limits: tuple = ()
        self.threshold = ax.axhline(0, color="black", ls="--", lw=1.5, zorder=3.5)   # over the prices
        self.alerts = ax.scatter([], [], s=14, color="tab:orange", alpha=0.5, linewidths=0, zorder=3.2)
        self.buys = ax.scatter([], [], s=90, marker="^", color="tab:green", edgecolor="black", zorder=4)
        ax.set(xlabel="market time (UTC)", ylabel="price (USD)")
        self.small = av.scatter([], [], s=6, color="tab:gray", label="variation")
        self.big = av.scatter([], [], s=25, color="tab:purple")
        self.band = av.axhspan(0, 1, color="tab:purple", alpha=0.08, zorder=0.8)   # under the points
        self.var_threshold = av.axhline(0, color="tab:purple", ls="--", lw=1.5)
        av.yaxis.set_major_formatter(PercentFormatter(1.0))
        av.set(title="Intrabar range high/low − 1", xlabel="market time (UTC)", ylabel="variation_ex (%)")
        for axes in (ax, av):
            axes.xaxis.set_major_locator(locator := mdates.AutoDateLocator())
            axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        counts = result.counts
        colors = [TOPIC_COLORS.get(str(name), "tab:blue") for name in counts.index]
        self.count_bars = ac.bar([str(i) for i in counts.index], counts.to_numpy(), color=colors)
        self.count_labels = ac.bar_label(self.count_bars, padding=3)
        ac.set(title="What the topics would hold (what-if)", ylabel="messages")
        ac.margins(y=0.15)
        ac.tick_params(axis="x", labelrotation=20)
        self.update(result)

    def update(self, result: WhatIf) -> None:
        """Show another what-if: new thresholds, or another ticker or date range."""
        t, bars = result.thresholds, result.bars
        key = (len(bars), bars.index[0] if len(bars) else None, bars.index[-1] if len(bars) else None)
        if key != self.bars_key:                 # another ticker or date range
            self._draw_prices(bars)
            self.bars_key = key
            self.layout_stale = True
        ax = self.ax_price
        ax.set_title(f"Close > ${t.price:g} and |high/low − 1| > {t.variation:.1%} within 5 min")
        self.threshold.set_ydata([t.price, t.price])
        self.threshold.set_label(f"threshold ${t.price:g}")
        shown = thin(result.alerts)
        self.alerts.set_offsets(np.column_stack([ms_to_days(shown["ts"]), shown["close"].to_numpy(float)]))
        self.alerts.set_label(f"alerts ({len(result.alerts):,})" if len(result.alerts) else "_alerts")
        shown = thin(result.buys)
        self.buys.set_offsets(np.column_stack([ms_to_days(shown["alert_ts"]),
                                               shown["close"].to_numpy(float)]))
        self.buys.set_label(f"buy signals ({len(result.buys):,})" if len(result.buys) else "_buys")
        low, high = self.close_range
        pad = (max(high, t.price) - min(low, t.price)) * 0.05 or 1.0
        ax.set_ylim(min(low, t.price) - pad, max(high, t.price) + pad)
        shown = [a for a in (*self.lines, self.threshold, self.alerts, self.buys)
                 if not a.get_label().startswith("_")]
        ax.legend(handles=shown, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
        self._draw_variations(result.variations, t.variation)
        self._draw_counts(result.counts)

    def _draw_prices(self, bars: pd.DataFrame) -> None:
        """One line per ticker, two points per pixel column; the time axis spans the bars."""
        for line in self.lines:
            line.remove()
        self.lines = []
        ax = self.ax_price
        n_tickers = bars["ticker"].nunique()
        buckets = max(100, int(ax.bbox.width))
        for i, (ticker, group) in enumerate(bars.groupby("ticker", sort=True)):
            label = f"{ticker} close" if n_tickers <= MAX_LEGEND else (
                f"close of {n_tickers} tickers" if i == 0 else "_close")
            x, y = decimate(ms_to_days(group["ts"].to_numpy()), group["close"].to_numpy(float), buckets)
            self.lines.extend(ax.plot(x, y, lw=1.2, label=label, color=ticker_color(ticker), zorder=3))
        close = bars["close"].to_numpy(float)
        self.close_range = (float(close.min()), float(close.max())) if len(close) else (0.0, 1.0)
        if len(bars):
            days = ms_to_days([bars["ts"].iloc[0], bars["ts"].iloc[-1]])
            pad = (days[1] - days[0]) * 0.02 or 0.5
            for axes in (ax, self.ax_var):
                axes.set_xlim(days[0] - pad, days[1] + pad)

    def _draw_variations(self, variations: pd.DataFrame, threshold: float) -> None:
        """The variations below and above the threshold, the band above it and its line."""
        av = self.ax_var
        shown = len(variations) > 0
        for artist in (self.small, self.big, self.band, self.var_threshold):
            artist.set_visible(shown)
        if not shown:
            legend = av.get_legend()
            if legend:
                legend.remove()
            return
        days, var_ex = ms_to_days(variations["ts"].to_numpy()), variations["variation_ex"].to_numpy(float)
        big = np.abs(var_ex) > threshold
        small_idx, big_idx = np.flatnonzero(~big), np.flatnonzero(big)
        small_idx, big_idx = small_idx[::_step(len(small_idx))], big_idx[::_step(len(big_idx))]
        self.small.set_offsets(np.column_stack([days[small_idx], var_ex[small_idx]]))
        self.big.set_offsets(np.column_stack([days[big_idx], var_ex[big_idx]]))
        self.big.set_label(f"above threshold ({int(big.sum()):,})")
        top = max(threshold, float(var_ex.max())) * 1.05
        self.band.set_y(threshold)
        self.band.set_height(top - threshold)
        self.var_threshold.set_ydata([threshold, threshold])
        self.var_threshold.set_label(f"threshold {threshold:.1%}")
        low = min(float(var_ex.min()), threshold)
        pad = (top - low) * 0.05 or 0.01
        av.set_ylim(low - pad, top + pad)
        av.legend(loc="upper left")

    def _draw_counts(self, counts: pd.Series) -> None:
        """Bar heights and the counts written on them."""
        for bar, value in zip(self.count_bars, counts.to_numpy(), strict=True):
            bar.set_height(value)
        for label in self.count_labels:
            label.remove()
        self.count_labels = self.ax_counts.bar_label(
            self.count_bars, labels=[f"{int(v):,}" for v in counts.to_numpy()], padding=3)
        self.ax_counts.relim()
        self.ax_counts.autoscale_view()

    def dynamic_artists(self) -> list:
        """What a threshold changes: drawn over a cached background on every change."""
        ax, av = self.ax_price, self.ax_var
        return [a for a in (self.threshold, self.alerts, self.buys, ax.title, ax.get_legend(),
                            self.band, self.small, self.big, self.var_threshold, av.get_legend(),
                            *self.count_bars, *self.count_labels) if a is not None]

    def png(self) -> bytes:
        """The figure as PNG bytes, as the dashboard's Image widget shows it.

        Everything a threshold does not change (axes, ticks, labels, the price
        lines) is drawn once into a background image, again only when the
        axes' ranges change; each picture then restores that background and
        draws the changed artists over it. The constrained layout runs only for
        the first picture of a ticker or date range.
        """
        dynamic = self.dynamic_artists()
        for artist in dynamic:
            artist.set_animated(True)            # left out of canvas.draw(): drawn below
        limits = tuple(axes.get_ylim() for axes in (self.ax_price, self.ax_var, self.ax_counts))
        if self.layout_stale or self.background is None or limits != self.background_limits:
            if self.layout_stale:
                self.figure.set_layout_engine("constrained")
            self.canvas.draw()
            self.figure.set_layout_engine("none")
            self.layout_stale = False
            self.background = self.canvas.copy_from_bbox(self.figure.bbox)
            self.background_limits = limits
        else:
            self.canvas.restore_region(self.background)
        for artist in sorted(dynamic, key=lambda a: a.get_zorder()):
            if artist.get_visible():
                self.figure.draw_artist(artist)
        return encode_png(np.asarray(self.canvas.buffer_rgba()))


def encode_png(rgba: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """An RGB PNG of an RGBA pixel array (alpha dropped), compressed fast.

    No row filters and zlib level 1: for a chart of flat colours this is
    smaller than Pillow's default PNG and takes about a third less time.
    """
    height, width = rgba.shape[:2]
    rows = np.empty((height, width * 3 + 1), np.uint8)
    rows[:, 0] = 0                                  # filter type 0 (none) on every row
    rows[:, 1:] = rgba[:, :, :3].reshape(height, -1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)     # 8-bit RGB, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + chunk(b"IEND", b""))


def _step(n: int, limit: int = MAX_POINTS) -> int:
    """Every k-th point so that at most `limit` are drawn."""
    return max(1, -(-n // limit))


class Dashboard:
    """Sliders for the two thresholds, a ticker and a time range, redrawing on every change."""

    def __init__(self, bars: pd.DataFrame, thresholds: Thresholds = Thresholds(), wb: Workbook | None = None):
        """Sliders over `bars`; with a Workbook, an "Apply to the pipeline" button too."""
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
        self._figure: DashboardFigure | None = None
        for control in (self.price, self.variation, self.ticker, self.period):
            control.observe(lambda change: self.update(), names="value")
        self.wb = wb
        self.apply_button = widgets.Button(
            description="Apply to the pipeline", icon="play",
            tooltip="re-run replay, router and stream SQL with these thresholds",
            layout={"width": "220px", "display": "" if wb else "none"})
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
        if self._figure is None:
            self._figure = DashboardFigure(self.result)
        else:
            self._figure.update(self.result)
        self.figure = self._figure.figure
        self.output.value = self._figure.png()
        return self.result

    def apply(self) -> pd.Series:
        """Apply the sliders' thresholds to the real pipeline (07_live explains it); return its counts."""
        from helpers.pipeline.live import apply_to_pipeline

        t = self.thresholds
        if self.wb is None:
            raise InputError("This dashboard has no pipeline to apply to: make it with "
                             "Dashboard(bars, wb=wb).")
        self.apply_button.disabled = True
        self.applied.value = f"applying ${t.price:g} and {t.variation:.1%} to the pipeline…"
        try:
            counts = apply_to_pipeline(self.bars, t, self.wb)
        finally:
            self.apply_button.disabled = False
        self.applied.value = (f"pipeline now at ${t.price:g}, {t.variation:.1%}: <b>{counts['alerts']:,}"
                              f"</b> alerts, <b>{counts['buy']:,}</b> buys in the topics")
        return counts

    def show(self) -> None:
        """Display the controls and the plots (call once, at the end of a cell)."""
        self.update()
        display(self.controls, self.output)


def read_history(settings: Settings) -> pd.DataFrame:
    """The replayed history: every bar in `pricelist`, as a frame of bars."""
    from helpers.core.schemas import BAR_COLUMNS
    from helpers.pipeline.topics import read_topic

    frame = read_topic(settings.topics.pricelist, settings=settings)   # the student's own
    if frame.empty:
        return pd.DataFrame(columns=BAR_COLUMNS)
    return frame[BAR_COLUMNS].astype({"ts": "int64", "transactions": "Int64"})


def plot_sweep(bars: pd.DataFrame, prices: list[float], variations: list[float], ax=None):
    """Buy signals against the variation threshold, one line per price threshold.

    The y-axis is logarithmic above 1 and linear from 0 to 1 (symlog), so a
    threshold pair with no signal is drawn at 0, not left out.
    """
    from matplotlib.ticker import PercentFormatter

    table = sweep(bars, prices, variations)
    fig, ax = figure_and_axes(ax)
    for price in table.columns:
        ax.plot(table.index, table[price], marker="o", label=f"price > ${price:g}")
    ax.set_yscale("symlog", linthresh=1, linscale=0.5)
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.axvline(VARIATION_THRESHOLD, color="gray", ls=":", label="default 5 %")
    ax.set(title="Buy signals by threshold", xlabel="variation threshold",
           ylabel="buy signals (0, then log scale)")
    ax.legend()
    return fig, ax
