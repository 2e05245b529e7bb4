"""The dashboard (notebooks/dashboard.ipynb) in headless Chromium under Voilà.

A slider moves; counts and plot follow.

Expected counts come from `helpers.core.rules` over the bars of `pricelist`,
independently of `helpers.pipeline.dashboard`. Screenshots go to build/browser/.
"""
import base64
import re
import time
from typing import NamedTuple

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from helpers.core.rules import alerts_frame, buy_signals, variations_frame
from helpers.core.schemas import PRICELIST
from helpers.pipeline.topics import read_topic

pytestmark = pytest.mark.browser

PAGE_LOAD_MS = 120_000   # Voilà runs every cell of the notebook before the page has loaded
UPDATE_MS = 30_000       # one slider change: recompute, redraw, send a new PNG
PRICE, VARIATION = "price ($)", "variation"
SUMMARY = ".widget-html-content"
PLOT = ".widget-output img, img.widget-image"   # figure shown by an Output or an Image widget
TRACEBACK = '[data-mime-type="application/vnd.jupyter.stderr"]:has-text("Traceback")'
SUMMARY_RE = re.compile(r"([\d,]+) alerts · ([\d,]+) buy signals · ([\d,]+) bars")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Counts(NamedTuple):
    """What the summary line reports."""

    alerts: int
    buys: int
    bars: int


def expected_counts(bars, price: float, variation: float) -> Counts:
    """Alerts and buy signals of `bars` at these thresholds, straight from helpers.core.rules."""
    alerts = alerts_frame(bars, price)
    return Counts(len(alerts), len(buy_signals(alerts, variations_frame(bars), variation)), len(bars))


def parse_summary(text: str) -> Counts | None:
    """The counts in the summary line, or None when it does not read like one."""
    match = SUMMARY_RE.search(text)
    return Counts(*(int(g.replace(",", "")) for g in match.groups())) if match else None


def slider(page, description: str):
    """The ipywidgets slider whose label reads `description`."""
    label = page.locator("label.widget-label", has_text=re.compile(rf"^{re.escape(description)}$"))
    return page.locator(".widget-slider", has=label)


def slider_value(page, description: str) -> float:
    """The value a slider holds now (its handle's aria-valuetext, unrounded)."""
    return float(slider(page, description).locator("[role=slider]").get_attribute("aria-valuetext"))


def plot_src(page) -> str:
    """The src of the figure's <img>: a data: URL (Output widget) or a blob: URL (Image widget)."""
    return page.locator(PLOT).get_attribute("src")


def plot_png(page) -> bytes:
    """The bytes the figure's <img> shows, fetched by the page itself; fails unless PNG."""
    encoded = page.evaluate(
        """async sel => {
            const response = await fetch(document.querySelector(sel).src);
            const bytes = new Uint8Array(await response.arrayBuffer());
            let text = "";
            for (let i = 0; i < bytes.length; i += 0x8000)
                text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
            return btoa(text);
        }""", PLOT)
    image = base64.b64decode(encoded)
    assert image.startswith(PNG_MAGIC), f"The plot is not a PNG: it starts with {image[:8]!r}."
    return image


def stuck_cell(page) -> str:
    """'k of n' from the last cell marker Voilà streamed into a page that never finished loading."""
    marks = re.findall(r"voila_process\((\d+), (\d+)\)", page.content())
    return " of ".join(marks[-1]) if marks else "(none yet)"


def wait_for_dashboard(page, voila) -> None:
    """Load the page, fail on a notebook traceback, wait for sliders, summary and plot."""
    try:
        page.goto(voila.url, timeout=PAGE_LOAD_MS)
    except PlaywrightTimeout:
        pytest.fail(f"Voilà did not finish the page within {PAGE_LOAD_MS / 1000:.0f} s: it was "
                    f"executing cell {stuck_cell(page)}; last lines of {voila.log}:\n{voila.tail()}")
    errors = page.locator(TRACEBACK)
    if errors.count():
        pytest.fail("A notebook cell failed under Voilà:\n" + errors.first.inner_text()[-3000:])
    for description in (PRICE, VARIATION):
        slider(page, description).locator("[role=slider]").wait_for(timeout=PAGE_LOAD_MS)
    page.locator(PLOT).wait_for(timeout=PAGE_LOAD_MS)
    page.wait_for_function(
        """([sel, re]) => [...document.querySelectorAll(sel)]
            .some(e => new RegExp(re).test(e.innerText))""",
        arg=[SUMMARY, SUMMARY_RE.pattern], timeout=PAGE_LOAD_MS)


def read_counts(page) -> Counts:
    """The counts the summary line shows now."""
    texts = page.locator(SUMMARY).all_inner_texts()
    found = [c for c in map(parse_summary, texts) if c]
    assert len(found) == 1, f"Expected one summary line, found {texts!r}."
    return found[0]


def wait_for_counts(page, want: Counts, what: str) -> None:
    """Wait until the summary shows `want`; fail with what it shows instead."""
    text = f"{want.alerts:,} alerts · {want.buys:,} buy signals · {want.bars:,} bars"
    try:
        page.wait_for_function(
            """([sel, text]) => [...document.querySelectorAll(sel)]
                .some(e => e.innerText.trim().startsWith(text))""",
            arg=[SUMMARY, text], timeout=UPDATE_MS)
    except PlaywrightTimeout:
        pytest.fail(f"After {what}, the summary shows {read_counts(page)} instead of {want} "
                    f"within {UPDATE_MS / 1000:.0f} s.")


def wait_for_new_plot(page, old_src: str, what: str) -> None:
    """Wait until the plot's <img> src differs from `old_src`."""
    try:
        page.wait_for_function(
            "([sel, old]) => { const img = document.querySelector(sel); return img && img.src !== old; }",
            arg=[PLOT, old_src], timeout=UPDATE_MS)
    except PlaywrightTimeout:
        pytest.fail(f"After {what}, the plot was not redrawn within {UPDATE_MS / 1000:.0f} s.")


def type_into_readout(page, description: str, value: float) -> None:
    """Set a slider by editing its readout text and pressing Enter, as a person would."""
    readout = slider(page, description).locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(f"{value:g}")
    page.keyboard.press("Enter")


def press_on_handle(page, description: str, key: str) -> None:
    """Move a slider with the keyboard: focus its handle, press `key` once."""
    slider(page, description).locator("[role=slider]").press(key)


class View(NamedTuple):
    """What the dashboard shows: the summary counts and the figure."""

    counts: Counts
    src: str
    png: bytes


def read_view(page) -> View:
    """The counts, the figure's src and its PNG bytes, now."""
    return View(read_counts(page), plot_src(page), plot_png(page))


def raise_price(page, bars, before: View, new_price: float, variation: float, move, what: str) -> View:
    """Move the price slider up with `move()`; check counts, slider value and figure follow."""
    want = expected_counts(bars, new_price, variation)
    move()
    wait_for_counts(page, want, what)
    wait_for_new_plot(page, before.src, what)
    assert slider_value(page, PRICE) == new_price, (
        f"After {what}, the price slider holds {slider_value(page, PRICE):g}, not {new_price:g}.")
    after = read_view(page)
    assert after.counts.alerts <= before.counts.alerts and after.counts.buys <= before.counts.buys, (
        f"After {what}, a higher price gave more alerts or buys: {before.counts} -> {after.counts}.")
    assert after.png != before.png, f"After {what}, the figure's PNG did not change."
    return after


def dashboard_shot(page, artifacts, name: str) -> None:
    """Screenshot of the dashboard cell (controls, summary, figure) into build/browser/."""
    cell = page.locator(".jp-Cell-outputArea", has=page.locator(PLOT))
    cell.screenshot(path=str(artifacts / name), timeout=UPDATE_MS)


@pytest.fixture(scope="module")
def bars(settings):
    """Every bar of pricelist: the data the notebook reads."""
    frame = read_topic(PRICELIST, settings=settings)
    if frame.empty:
        pytest.fail("pricelist is empty: run notebooks 00 to 07 (make run) before the browser test.")
    return frame


def test_price_slider_updates_counts_and_plot(page, voila, bars, artifacts, capsys):
    start = time.perf_counter()
    wait_for_dashboard(page, voila)
    loaded = time.perf_counter()
    price, variation = slider_value(page, PRICE), slider_value(page, VARIATION)
    first = read_view(page)
    dashboard_shot(page, artifacts, "dashboard-before.png")
    assert first.counts == expected_counts(bars, price, variation), (
        f"At price ${price:g} and variation {variation:.1%} the page shows {first.counts}, "
        f"helpers.core.rules over pricelist gives {expected_counts(bars, price, variation)}.")

    what = f"typing {price + 10:g} into the price readout"
    typed = raise_price(page, bars, first, price + 10, variation,
                        lambda: type_into_readout(page, PRICE, price + 10), what)
    assert typed.counts.alerts < first.counts.alerts, (
        f"Raising the price from ${price:g} by $10 should lower the alerts: "
        f"{first.counts} -> {typed.counts}.")
    typed_at = time.perf_counter()
    stepped = raise_price(page, bars, typed, price + 11, variation,     # ArrowRight: one $1 step
                          lambda: press_on_handle(page, PRICE, "ArrowRight"),
                          "pressing ArrowRight on the price handle")
    dashboard_shot(page, artifacts, "dashboard.png")

    end = time.perf_counter()
    with capsys.disabled():     # shown even without -s
        print(f"\nbrowser test: page and first plot {loaded - start:.1f} s, "
              f"typed price {typed_at - loaded:.2f} s, arrow key {end - typed_at:.2f} s, "
              f"total {end - start:.1f} s; alerts "
              f"{first.counts.alerts} -> {typed.counts.alerts} -> {stepped.counts.alerts}, buys "
              f"{first.counts.buys} -> {typed.counts.buys} -> {stepped.counts.buys}")
