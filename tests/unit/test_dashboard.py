"""The dashboard driven from code: widget values in, computed results and figure data out."""
import numpy as np
import pandas as pd
import pytest

from helpers.core.rules import Thresholds
from helpers.core.whatif import sweep, what_if
from helpers.pipeline.dashboard import ALL, Dashboard
from helpers.pipeline.sources import fetch_sample, fetch_synthetic


@pytest.fixture(scope="module")
def bars():
    return fetch_sample()


def naive_buys(bars, price, variation, window_ms=300_000):
    """Independent O(n²) reference: plain loops over bars, no helpers."""
    records = bars.to_dict("records")
    alerts = [b for b in records if b["close"] > price]
    big = [b for b in records if abs(b["high"] / b["low"] - 1) > variation]
    return sorted((a["ticker"], a["ts"], v["ts"]) for a in alerts for v in big
                  if a["ticker"] == v["ticker"] and abs(a["ts"] - v["ts"]) <= window_ms)


def test_defaults_match_loops(bars):
    result = what_if(bars, Thresholds())
    assert result.counts.to_dict() == {"pricelist": len(bars), "variations": len(bars),
                                       "alerts": int((bars["close"] > 195).sum()),
                                       "buy": len(naive_buys(bars, 195, 0.05))}
    assert len(result.buys) > 0


def test_moving_sliders_recomputes_and_redraws(bars):
    dash = Dashboard(bars)
    dash.update()
    before = dash.result.counts.copy()
    dash.variation.value = 0.03          # as a drag would do
    assert len(dash.result.buys) == len(naive_buys(bars, 195, 0.03)) > before["buy"]
    dash.price.value = 250
    assert dash.result.counts["alerts"] == int((bars["close"] > 250).sum()) < before["alerts"]
    buys = dash.result.buys
    got = sorted(zip(buys["ticker"], buys["alert_ts"], buys["variation_ts"]))
    assert got == naive_buys(bars, 250, 0.03)
    assert f"<b>{dash.result.counts['alerts']:,}</b> alerts" in dash.summary.value


def test_figure_data_follows_the_thresholds(bars):
    dash = Dashboard(bars)
    dash.price.value = 220
    ax_price, ax_var, ax_counts = dash.figure.axes
    threshold_lines = [line for line in ax_price.get_lines() if line.get_label().startswith("threshold")]
    assert np.allclose(threshold_lines[0].get_ydata(), 220)
    buy_markers = [c for c in ax_price.collections if c.get_label().startswith("buy signals")]
    assert len(buy_markers[0].get_offsets()) == len(dash.result.buys)
    heights = [int(p.get_height()) for p in ax_counts.patches]
    assert heights == dash.result.counts.tolist()
    var_lines = [line for line in ax_var.get_lines() if line.get_label().startswith("threshold")]
    assert np.allclose(var_lines[0].get_ydata(), dash.variation.value)


def test_ticker_and_date_range_filter(bars):
    many = fetch_synthetic(n_tickers=3, n_bars=500, seed=5)
    dash = Dashboard(many)
    ticker = sorted(many["ticker"].unique())[1]
    dash.ticker.value = ticker
    assert set(dash.result.bars["ticker"]) == {ticker}
    assert dash.result.counts["pricelist"] == int((many["ticker"] == ticker).sum())
    dash.ticker.value = ALL
    assert dash.result.counts["pricelist"] == len(many)


def test_date_range_keeps_whole_days_inclusive(bars):
    dash = Dashboard(bars)
    options = dash.period.options
    dash.period.index = (10, 20)
    first, last = options[10][1], options[20][1]
    day_ms = 86_400_000
    lo, hi = first.value // 10**6, last.value // 10**6 + day_ms - 1
    expected = bars[(bars["ts"] >= lo) & (bars["ts"] <= hi)]
    assert dash.result.counts["pricelist"] == len(expected) > 0
    assert dash.result.counts["alerts"] == int((expected["close"] > dash.price.value).sum())


def test_sweep_is_monotonic(bars):
    table = sweep(bars, prices=[195, 250], variations=[0.02, 0.05, 0.10])
    assert (table.diff().dropna() <= 0).all().all()            # higher variation, fewer buys
    assert (table[250] <= table[195]).all()                     # higher price, fewer buys


def test_empty_history_is_a_clear_error():
    with pytest.raises(ValueError, match="replay some into pricelist"):
        Dashboard(fetch_sample().iloc[:0])


def test_apply_button_sends_the_sliders_thresholds(bars, monkeypatch):
    import helpers.pipeline.live

    calls = []
    monkeypatch.setattr(helpers.pipeline.live, "apply_to_pipeline",
                        lambda b, t, wb: calls.append((len(b), t, wb)) or
                        pd.Series({"alerts": 7, "buy": 3}))
    dash = Dashboard(bars, wb="the-workbook")
    dash.price.value, dash.variation.value = 210, 0.04
    dash.apply_button.click()
    assert calls == [(len(bars), Thresholds(210, 0.04), "the-workbook")]
    assert "<b>7</b> alerts" in dash.applied.value and not dash.apply_button.disabled
    assert Dashboard(bars).apply_button.layout.display == "none"   # no Workbook, no button


def test_fast_picture_equals_a_full_redraw(bars):
    """The PNG drawn over the cached background shows what a full redraw of the figure shows."""
    import io

    from PIL import Image

    dash = Dashboard(bars)
    dash.update()
    dash.price.value, dash.variation.value = 230, 0.03     # redrawn over the background
    fast = np.asarray(Image.open(io.BytesIO(bytes(dash.output.value))).convert("RGB"))
    figure = dash._figure
    for artist in figure.dynamic_artists():
        artist.set_animated(False)
    figure.canvas.draw()                                   # everything, same layout
    full = np.asarray(figure.canvas.buffer_rgba())[:, :, :3]
    assert fast.shape == full.shape
    assert (fast != full).any(axis=2).mean() < 0.002       # only where a line crosses an axis spine


def test_price_lines_keep_every_extreme():
    """Decimated to pixel columns, each ticker's line still reaches its lowest and highest close."""
    many = fetch_synthetic(n_tickers=2, n_bars=20_000, seed=9)
    dash = Dashboard(many)
    dash.update()
    lines = [line for line in dash.figure.axes[0].get_lines() if line.get_label().endswith("close")]
    assert [line.get_label() for line in lines] == [f"{t} close" for t in sorted(many["ticker"].unique())]
    for line, (_, group) in zip(lines, many.groupby("ticker", sort=True)):
        y = np.asarray(line.get_ydata())
        assert len(y) <= 2 * 1300 < len(group)
        assert y.max() == group["close"].max() and y.min() == group["close"].min()


# --- a price change while the router runs -------------------------------------------------

def test_each_bar_is_judged_at_the_price_in_force_in_its_partition():
    from helpers.core.whatif import PriceChange, price_in_force

    bars = pd.DataFrame({"partition": [0, 0, 0, 1, 1, 2], "offset": [0, 1, 2, 0, 1, 0]})
    first = PriceChange(150.0, {0: 2, 1: 0})            # partition 2 had nothing routed yet
    second = PriceChange(400.0, {0: 3, 1: 1, 2: 1})
    assert list(price_in_force(bars, 300, [])) == [300] * 6
    assert list(price_in_force(bars, 300, [first])) == [300, 300, 150, 150, 150, 150]
    assert list(price_in_force(bars, 300, [first, second])) == [300, 300, 150, 150, 400, 150]


def test_what_if_changed_equals_two_what_ifs_split_at_the_change():
    from helpers.core.rules import Thresholds
    from helpers.core.whatif import PriceChange, what_if, what_if_changed
    from helpers.pipeline.sources import fetch_synthetic

    bars = fetch_synthetic(n_tickers=2, n_bars=200, seed=3).reset_index(drop=True)
    bars = bars.assign(partition=0, offset=range(len(bars)))
    change = PriceChange(bars["close"].median(), {0: 120})
    changed = what_if_changed(bars, Thresholds(price=1.0, variation=0.01), [change])
    before = what_if(bars[bars["offset"] < 120], Thresholds(price=1.0, variation=0.01))
    after = what_if(bars[bars["offset"] >= 120], Thresholds(price=change.price, variation=0.01))
    assert len(changed.alerts) == len(before.alerts) + len(after.alerts) < len(bars)
    assert changed.counts["variations"] == len(bars)


@pytest.mark.parametrize("raw, said", [
    (b"oops", "must be JSON"), (None, "must be JSON"), (b"[1]", "the new alert price only"),
    (b'{"price": 1, "variation": 0.1}', "the new alert price only"), (b'{"price": -5}', "above 0"),
    (b'{"price": "high"}', "finite number")])
def test_a_malformed_control_message_is_one_sentence(raw, said):
    from helpers.core.errors import InputError
    from helpers.pipeline.route import parse_price_change

    assert parse_price_change(b'{"price": 250}') == 250.0
    with pytest.raises(InputError, match=said):
        parse_price_change(raw)
