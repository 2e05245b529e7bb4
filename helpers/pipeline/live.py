"""Live mode: apply chosen thresholds to the running pipeline and watch the
real topics fill while a replay runs (08_dashboard).

The replay, the router and the stream-SQL query run together in the
background, exactly as in separate terminals; a LiveView consumes the real
topics and redraws as messages arrive. The router also reads a compacted
control topic (`<namespace>.router.control`): a message `{"price": …}`
there changes its alert price while it runs.
"""
from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING

import ipywidgets as widgets
import pandas as pd
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition
from IPython.core.pylabtools import print_figure
from IPython.display import display
from matplotlib.figure import Figure

from helpers.core.errors import KafkaOperationError, WaitTimeout, WorkbookError
from helpers.core.plots import plot_arrivals, plot_prices, to_datetime
from helpers.core.rules import Thresholds
from helpers.core.schemas import decode
from helpers.core.whatif import PriceChange, price_in_force, what_if, what_if_changed
from helpers.infra.clients import make_consumer
from helpers.pipeline.produce import replay_bars
from helpers.pipeline.route import Router
from helpers.pipeline.streamsql import StreamSqlRun, run_buy_query
from helpers.pipeline.topics import (
    compacted_config,
    consumer_lag,
    delete_topics,
    ensure_topics,
    read_topic,
    reset_topics,
    topic_counts,
)

if TYPE_CHECKING:
    from helpers.infra.workbook import Workbook


class LivePipeline:
    """Replay → router → stream SQL, all running at once with the given thresholds."""

    def __init__(self, bars: pd.DataFrame, thresholds: Thresholds, wb: Workbook, rate: float | None = 500):
        self.bars, self.thresholds = bars, thresholds
        self.wb, self.settings = wb, wb.settings
        self.rate = rate
        self.router: Router | None = None
        self.query: StreamSqlRun | None = None
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self.replayed = threading.Event()
        self._stop_replay = threading.Event()
        self.control_topic = self.settings.prefix + "router.control"   # one partition, compacted

    @property
    def topics(self) -> list[str]:
        """Every topic this pipeline writes."""
        return list(self.settings.topics.all)

    def _background(self, target) -> None:
        def guarded():
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - reported by check()
                self.errors.append(exc)
        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        self._threads.append(thread)

    def start(self) -> LivePipeline:
        """Empty the topics and the router's offsets, start the stream-SQL query, the router, the replay.

        If a stage cannot start, those already started are stopped before the error is raised.
        """
        reset_topics(self.wb.admin, self.topics, groups=[self.settings.group("router")])
        delete_topics(self.wb.admin, [self.control_topic])        # no price change of an earlier run
        ensure_topics(self.wb.admin, [self.control_topic], partitions=1,
                      config=compacted_config(self.settings))
        self.query = run_buy_query(self.wb, self.thresholds.variation, until_caught_up=False)
        try:
            router = self.router = Router(self.settings, self.thresholds, control_topic=self.control_topic)
        except BaseException:
            self.stop()
            raise
        self._background(lambda: router.run(until_caught_up=False, progress=False))

        def replay():
            replay_bars(self.bars, settings=self.settings, rate=self.rate, progress=False,
                        stop=self._stop_replay)
            self.replayed.set()
        self._background(replay)
        return self

    def check(self) -> None:
        """Raise the first error of a background stage, if any."""
        if self.errors:
            error = self.errors[0]
            if isinstance(error, WorkbookError):
                raise error
            raise WorkbookError(f"A live stage failed: {error!r}.") from error

    def counts(self) -> pd.Series:
        """Messages in each topic now (from the brokers' offsets)."""
        return topic_counts(self.topics, self.settings)

    @property
    def price_changes(self) -> list[PriceChange]:
        """The alert prices the router took from the control topic, in order."""
        return list(self.router.price_changes) if self.router else []

    def expected(self) -> pd.Series:
        """What the topics must hold once every replayed bar is through: the what-if of the bars in
        `pricelist`, each judged at the alert price in force when the router routed it."""
        bars = read_topic(self.settings.topics.pricelist, settings=self.settings)
        if bars.empty:
            return what_if(self.bars.iloc[:0], self.thresholds).counts
        return what_if_changed(bars, self.thresholds, self.price_changes).counts

    def wait_for(self, expected: pd.Series, timeout: float = 300) -> pd.Series:
        """Wait until the topics hold the expected counts (pricelist, variations, alerts, buy), then stop."""
        t = self.settings.topics
        names = {"pricelist": t.pricelist, "variations": t.variations, "alerts": t.alerts, "buy": t.buy}
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.check()
                counts = topic_counts([names[k] for k in expected.index], self.settings)
                counts.index = expected.index
                if self.replayed.is_set() and (counts >= expected).all():
                    return counts
                if time.monotonic() > deadline:
                    raise WaitTimeout(f"The live pipeline did not reach {expected.to_dict()} "
                                       f"within {timeout:.0f} s: {counts.to_dict()}.")
                time.sleep(0.5)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop the replay (after the message in hand), the router (it finishes its batch) and the
        stream-SQL query."""
        self._stop_replay.set()
        if self.router:
            self.router.stop()
        for thread in self._threads:
            thread.join(timeout=60)
        stuck = sum(thread.is_alive() for thread in self._threads)
        if self.query:
            self.query.stop()
            self.query = None
        if stuck:
            raise WaitTimeout(f"{stuck} live stage(s) did not stop within 60 s of being asked.")

    def __enter__(self) -> LivePipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def apply_to_pipeline(bars: pd.DataFrame, thresholds: Thresholds, wb: Workbook,
                      timeout: float = 300) -> pd.Series:
    """Re-run the real pipeline with new thresholds (as fast as possible); return the topic counts."""
    expected = what_if(bars, thresholds).counts
    return LivePipeline(bars, thresholds, wb, rate=None).start().wait_for(expected, timeout)


class LiveView:
    """Consumes the pipeline's topics from the start and redraws as they fill.

    Besides the prices replayed so far, it records over wall-clock time how
    many messages each topic has received and the router's consumer lag (bars
    in `pricelist` that the router has not committed yet).
    """

    def __init__(self, pipeline: LivePipeline):
        self.pipeline = pipeline
        t = pipeline.settings.topics
        self.schemas = {t.pricelist: "pricelist", t.variations: "variations", t.alerts: "alerts",
                        t.buy: "buy"}
        self.frames: dict[str, list[dict]] = {topic: [] for topic in self.schemas}
        self.history: list[dict] = []
        self.started = time.monotonic()
        self.admin = pipeline.wb.admin
        group = pipeline.settings.group(f"live-{uuid.uuid4().hex[:8]}")
        self.consumer = make_consumer(group, pipeline.settings)
        parts = []
        for topic in self.schemas:
            meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
            parts += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        self.consumer.assign(parts)
        self.output = widgets.Image(format="png", layout={"max_width": "100%"})
        self.status = widgets.HTML()

    def poll(self, seconds: float = 0.5) -> int:
        """Consume what arrived within `seconds`, record a sample; return how many messages."""
        got = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(1000, timeout=0.1):
                if msg.error():
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        raise KafkaOperationError(f"Reading {msg.topic()} failed: {msg.error().str()}.")
                    continue
                self.frames[msg.topic()].append({**decode(self.schemas[msg.topic()], msg.value()),
                                                 "partition": msg.partition(), "offset": msg.offset()})
                got += 1
        self.history.append({"seconds": time.monotonic() - self.started,
                             **{name: len(self.frames[topic]) for topic, name in self.schemas.items()},
                             "router lag": self.router_lag()})
        return got

    def router_lag(self) -> int:
        """Bars in pricelist that the router has not committed yet."""
        settings = self.pipeline.settings
        try:
            return consumer_lag(self.admin, settings.group("router"), [settings.topics.pricelist], settings)
        except (KafkaException, KafkaOperationError):          # the group is still forming
            return 0

    def frame(self, topic: str) -> pd.DataFrame:
        """What has been consumed from one topic so far."""
        return pd.DataFrame(self.frames[topic])

    def timeline(self) -> pd.DataFrame:
        """Messages received per topic and the router's lag, one row per poll (wall-clock seconds)."""
        return pd.DataFrame(self.history).set_index("seconds")

    def draw(self) -> Figure:
        """The prices replayed so far with alerts and buys; arrivals and lag over wall-clock time."""
        t = self.pipeline.settings.topics
        fig = Figure(figsize=(14, 5.5), layout="constrained")
        grid = fig.add_gridspec(2, 2, width_ratios=[3, 2])
        ax_price = fig.add_subplot(grid[:, 0])
        ax_rate, ax_lag = fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 1])
        prices = self.frame(t.pricelist)
        changes = self.pipeline.price_changes
        if len(prices):
            prices = prices.sort_values("ts")
            plot_prices(prices, None if changes else self.pipeline.thresholds.price,
                        alerts=self.frame(t.alerts), buys=self.frame(t.buy),
                        title="Live: what the topics hold so far", ax=ax_price)
            if changes:                 # the alert price each bar was routed with, over market time
                in_force = price_in_force(prices, self.pipeline.thresholds.price, changes)
                ax_price.step(to_datetime(prices["ts"]), in_force, where="post",
                              color="black", ls="--", lw=1.5, label="alert price in force")
                ax_price.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
        if len(self.history) > 1:
            plot_arrivals(self.timeline(), ax=ax_rate, lag_ax=ax_lag)
        return fig

    def run(self, until, timeout: float = 180, every: float = 1.0, sample: float = 0.25) -> pd.DataFrame:
        """Redraw every `every` s, recording a sample every `sample` s, until `until()` is true;
        return the timeline."""
        display(self.status, self.output)
        while True:
            self.pipeline.check()
            for _ in range(max(1, round(every / sample))):
                self.poll(sample)
            self.output.value = print_figure(self.draw(), "png")
            done = until()
            counts = {name: len(self.frames[topic]) for topic, name in self.schemas.items()}
            self.status.value = (f"{time.monotonic() - self.started:5.1f} s · " +
                                 " · ".join(f"{t}: <b>{n:,}</b>" for t, n in counts.items()))
            if done:
                return self.timeline()
            if time.monotonic() - self.started > timeout:
                raise WaitTimeout(f"The live view did not reach its goal within {timeout:.0f} s: {counts}.")

    def close(self) -> None:
        """Close the view's consumer."""
        self.consumer.close()
