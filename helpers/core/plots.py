"""Figures of the workbook: each helper returns (fig, ax) so a notebook cell is one line.

Sized and labelled for a projector: large fonts, titles, axes with units.
"""
from __future__ import annotations

import zlib
from typing import Any

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator, PercentFormatter

STYLE: dict[str, Any] = {"figure.figsize": (10, 4.5), "font.size": 13, "axes.titlesize": 15,
         "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100}
TOPIC_COLORS = {"pricelist": "tab:blue", "variations": "tab:purple", "alerts": "tab:orange",
                "buy": "tab:green", "pricelist.dlq": "tab:red"}


# ticker lines: no orange or green, the colours of alerts and buy signals
LINE_COLORS = ["tab:blue", "tab:purple", "tab:brown", "tab:gray", "tab:cyan", "tab:olive",
               "tab:pink", "tab:red"]
#: one colour per ticker in every plot of the course, whichever tickers a plot shows
TICKER_COLORS = {"AAPL": "tab:blue", "FB": "tab:pink", "GOOG": "tab:purple", "IBM": "tab:brown",
                 "MSFT": "tab:gray", "BTC-USD": "tab:olive", "ETH-USD": "tab:cyan", "LTC-USD": "tab:red"}
MAX_POINTS = 5_000      # points per series on screen; labels always give the full counts
MAX_LEGEND = 6          # more tickers than this share one legend entry
EPOCH_DAYS = float(mdates.date2num(np.datetime64(0, "ms")))     # 0.0 with matplotlib's default epoch


def ticker_color(ticker: str) -> str:
    """The ticker's colour: fixed for the course's tickers, a stable pick by name for any other."""
    return TICKER_COLORS.get(ticker) or LINE_COLORS[zlib.crc32(ticker.encode()) % len(LINE_COLORS)]


def thin(frame: pd.DataFrame, limit: int = MAX_POINTS) -> pd.DataFrame:
    """Every k-th row so that at most `limit` rows are drawn."""
    step = max(1, -(-len(frame) // limit))
    return frame.iloc[::step]


def decimate(x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """A line of at most 2 points per bucket (its lowest and highest y), buckets even in x.

    With one bucket per pixel column the line looks as it would with every
    point (each column spans the same lowest to highest value), but draws in a
    fraction of the time: 50,000 points become at most 2 × `buckets`. `x` must
    be sorted.
    """
    if len(x) <= 2 * buckets:
        return x, y
    span = float(x[-1] - x[0]) or 1.0
    index = np.minimum(((x - x[0]) * (buckets / span)).astype(np.int64), buckets - 1)
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    lows, highs = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
    xs = np.repeat(x[starts], 2)
    ys = np.column_stack([lows, highs]).ravel()
    return xs, ys


def ms_to_days(ts) -> np.ndarray:
    """Epoch milliseconds -> matplotlib's date numbers (days since its epoch), as one array."""
    return EPOCH_DAYS + np.asarray(ts, dtype=np.float64) / 86_400_000.0


def use_style() -> None:
    """Apply the workbook's plot style (call once in a notebook's setup cell)."""
    plt.style.use(STYLE)


def to_datetime(ts: pd.Series):
    """Epoch milliseconds -> UTC datetimes for plotting (naive datetime64: matplotlib converts
    those as one array, tz-aware ones one by one)."""
    return pd.to_datetime(ts, unit="ms").to_numpy()


def plot_prices(bars: pd.DataFrame, price_threshold: float | None = None, *, alerts=None,
                buys=None, title: str | None = None, ax=None):
    """Closing price over time, the threshold line, and optional alert and buy markers."""
    fig, ax = figure_and_axes(ax)
    n_tickers = bars["ticker"].nunique()
    per_line = max(500, MAX_POINTS // max(1, n_tickers))
    for i, (ticker, group) in enumerate(bars.groupby("ticker", sort=True)):
        group = thin(group, per_line)
        label = f"{ticker} close" if n_tickers <= MAX_LEGEND else (
            f"close of {n_tickers} tickers" if i == 0 else None)
        ax.plot(to_datetime(group["ts"]), group["close"], lw=1.2, label=label,
                color=ticker_color(ticker), zorder=3)
    if price_threshold is not None:
        ax.axhline(price_threshold, color="black", ls="--", lw=1.5,
                   label=f"threshold ${price_threshold:g}")
    if alerts is not None and len(alerts):
        shown = thin(alerts)
        ax.scatter(to_datetime(shown["ts"]), shown["close"], s=14, color="tab:orange", alpha=0.5,
                   linewidths=0, zorder=2, label=f"alerts ({len(alerts):,})")
    if buys is not None and len(buys):
        shown = thin(buys)
        ax.scatter(to_datetime(shown["alert_ts"]), shown["close"], s=90, marker="^",
                   color="tab:green", edgecolor="black", zorder=4,
                   label=f"buy signals ({len(buys):,})")
    ax.set(title=title or "Closing price", xlabel="market time (UTC)", ylabel="price (USD)")
    _time_axis(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")   # beside, not over
    return fig, ax


def plot_variations(variations: pd.DataFrame, variation_threshold: float, *, ax=None):
    """variation_ex over time, with the band above the threshold shaded."""
    fig, ax = figure_and_axes(ax)
    big = variations["variation_ex"].abs() > variation_threshold
    small_shown, big_shown = thin(variations[~big]), thin(variations[big])
    ax.scatter(to_datetime(small_shown["ts"]), small_shown["variation_ex"], s=6, color="tab:gray",
               label="variation")
    ax.scatter(to_datetime(big_shown["ts"]), big_shown["variation_ex"], s=25, color="tab:purple",
               label=f"above threshold ({int(big.sum()):,})")
    ax.axhspan(variation_threshold, max(variation_threshold, variations["variation_ex"].max()) * 1.05,
               color="tab:purple", alpha=0.08)
    ax.axhline(variation_threshold, color="tab:purple", ls="--", lw=1.5,
               label=f"threshold {variation_threshold:.1%}")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set(title="Intrabar range high/low − 1", xlabel="market time (UTC)", ylabel="variation_ex (%)")
    _time_axis(ax)
    ax.legend(loc="upper left")
    return fig, ax


def plot_counts(counts: pd.Series, *, title: str = "Messages per topic", ax=None):
    """A bar per topic (or per anything), with the count written on it."""
    fig, ax = figure_and_axes(ax, figsize=(8, 4))
    colors = [TOPIC_COLORS.get(str(name), "tab:blue") for name in counts.index]
    bars = ax.bar([str(i) for i in counts.index], counts.to_numpy(), color=colors)
    ax.bar_label(bars, labels=[f"{int(v):,}" for v in counts.to_numpy()], padding=3)
    ax.set(title=title, ylabel="messages")
    ax.margins(y=0.15)
    return fig, ax


def plot_arrivals(timeline: pd.DataFrame, *, ax=None, lag_ax=None):
    """Messages per second arriving in each topic over wall-clock time; the router's lag below.

    `timeline` holds cumulative counts per topic (columns) and a 'router lag'
    column, indexed by wall-clock seconds.
    """
    fig, ax = figure_and_axes(ax)
    seconds = timeline.index.to_numpy()
    topics = [c for c in timeline.columns if c != "router lag"]
    rates = timeline[topics].diff().div(pd.Series(seconds, index=timeline.index).diff(), axis=0)
    for topic in topics:
        ax.plot(seconds, rates[topic], color=TOPIC_COLORS.get(topic, "tab:blue"), lw=1.5, label=topic)
    ax.set(title="Arrivals per topic", xlabel="wall-clock time (s)", ylabel="messages / s")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")   # beside the lines
    if lag_ax is not None and "router lag" in timeline:
        lag_ax.fill_between(seconds, timeline["router lag"], color="tab:red", alpha=0.3, step="post")
        lag_ax.plot(seconds, timeline["router lag"], color="tab:red", drawstyle="steps-post")
        lag_ax.set(title="Router lag: bars not yet committed", xlabel="wall-clock time (s)",
                   ylabel="bars")
        lag_ax.set_ylim(bottom=0)
    return fig, ax


def plot_partitions(messages: pd.DataFrame, partitions: int, *,
                    title: str = "Which partition each key went to", ax=None):
    """Messages per partition, stacked by key: one key always lands in one partition.

    Every one of the topic's `partitions` gets a bar, an empty one too.
    """
    fig, ax = figure_and_axes(ax, figsize=(8, 4))
    keys = messages["key"].fillna("(no key)").replace("", "(empty key)")
    table = (messages.assign(key=keys)
             .pivot_table(index="partition", columns="key", values="offset", aggfunc="count", fill_value=0)
             .reindex(range(partitions), fill_value=0))
    table.plot.bar(stacked=True, ax=ax, rot=0, width=0.6)
    for i, total in enumerate(table.sum(axis=1)):
        ax.annotate(f"{total:,}", (i, total), ha="center", va="bottom", xytext=(0, 3),
                    textcoords="offset points")
    ax.set(title=title, xlabel="partition", ylabel="messages")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(y=0.15)
    ax.legend(title="key", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig, ax


def _time_axis(ax) -> None:
    """Compact date ticks that do not overlap, whatever the time span."""
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def figure_and_axes(ax=None, figsize=None):
    """(fig, ax): the axes' own figure when `ax` is given, else a new figure of the workbook's style."""
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize or STYLE["figure.figsize"], layout="constrained")
    return fig, ax


def plot_equity(curve: pd.DataFrame, capital: float, *, title: str | None = None, ax=None):
    """The paper-trading bot's equity over market time (USD), with its starting capital (09_next_steps)."""
    fig, ax = figure_and_axes(ax)
    days = curve.index.tz_localize(None) if getattr(curve.index, "tz", None) else curve.index
    ax.plot(days, curve["equity"], color="tab:green", lw=1.8, label="equity = cash + holdings")
    ax.plot(days, curve["holdings"], color="tab:blue", lw=1, alpha=0.6, label="holdings at market value")
    ax.axhline(capital, color="black", ls="--", lw=1.2, label=f"starting capital ${capital:,.0f}")
    ax.set(title=title or "Paper-trading bot: equity at each daily close",
           xlabel="market time (UTC)", ylabel="USD")
    ax.yaxis.set_major_formatter(lambda value, _: f"${value:,.0f}")
    _time_axis(ax)
    ax.legend(loc="center left", fontsize="small")   # between the two lines
    return fig, ax


def plot_windows(windows: dict[str, pd.DataFrame], column: str, *, title: str, ylabel: str, ax=None):
    """Each window of each frame as a horizontal segment from its start to its end at its value:
    tumbling windows tile the time axis, hopping ones overlap (06_stream_sql)."""
    fig, ax = figure_and_axes(ax, figsize=(11, 4.5))
    for (label, frame), color in zip(windows.items(), ("tab:blue", "tab:orange", "tab:green"), strict=False):
        start = frame["window_start"].dt.tz_localize(None) if frame["window_start"].dt.tz else \
            frame["window_start"]
        end = frame["window_end"].dt.tz_localize(None) if frame["window_end"].dt.tz else frame["window_end"]
        ax.hlines(frame[column], start, end, colors=color, lw=2.5, label=f"{label} ({len(frame)} windows)")
    ax.set(title=title, ylabel=ylabel, xlabel="event time (UTC)")
    ax.set_ylim(bottom=0)
    _time_axis(ax)
    ax.legend(loc="upper right", fontsize="small")
    return fig, ax


PROTOCOL_COLORS = {"classic": "tab:gray", "consumer": "tab:blue"}


def plot_rebalances(runs: pd.DataFrame):
    """Rebalances under each group protocol, median of the rounds with their range: seconds until every
    partition has an owner again, partitions given up, and seconds an uninvolved member's partitions had
    no owner (05_consumer_groups). `runs` is indexed by (protocol, round, event)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained")
    events = list(dict.fromkeys(runs.index.get_level_values("event")))
    protocols = list(dict.fromkeys(runs.index.get_level_values("protocol")))
    width = 0.8 / len(protocols)
    panels = (("seconds", "until every partition has an owner", "seconds"),
              ("given up", "partitions A and B gave up", "partitions"),
              ("B's stopped", "B's partitions without owner", "seconds"))
    for ax, (column, title, unit) in zip(axes, panels, strict=True):
        for k, protocol in enumerate(protocols):
            values = runs.xs(protocol, level="protocol")[column].groupby(level="event")
            median, low, high = (values.median()[events], values.min()[events], values.max()[events])
            x = np.arange(len(events)) + (k - (len(protocols) - 1) / 2) * width
            ax.bar(x, median, width, color=PROTOCOL_COLORS.get(protocol), label=protocol,
                   yerr=[median - low, high - median], capsize=4)
            for xi, value in zip(x, median, strict=True):
                ax.annotate(f"{value:.1f}" if unit == "seconds" else f"{value:.0f}", (xi, value),
                            ha="center", va="bottom", xytext=(0, 3), textcoords="offset points",
                            fontsize="small")
        ax.set_xticks(np.arange(len(events)), events)
        ax.set(title=title, ylabel=unit)
        ax.set_ylim(bottom=0, top=max(1.0, float(runs[column].max())) * 1.25)
        if unit == "partitions":
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(title="group.protocol", fontsize="small")
    rounds = runs.index.get_level_values("round").nunique()
    fig.suptitle(f"Rebalances under each protocol: median of {rounds} rounds "
                 "(error bars: min to max)")
    return fig, axes
