"""Timing primitives: run a call, keep its wall time, summarize samples in milliseconds."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Call fn and return (its result, the wall seconds it took)."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Sample count, median, p95, min and max of wall times, in milliseconds."""
    if not seconds:
        raise ValueError("A summary needs at least one timing sample.")
    ms = np.asarray(seconds, dtype=float) * 1000
    return {"n": int(ms.size), "median_ms": float(np.median(ms)),
            "p95_ms": float(np.percentile(ms, 95)), "min_ms": float(ms.min()),
            "max_ms": float(ms.max())}


def format_ms(summary: dict[str, float] | None) -> str:
    """'median / p95' of a summary, or a dash when it was not measured."""
    if not summary:
        return "-"
    return f"{_short(summary['median_ms'])} / {_short(summary['p95_ms'])}"


def _short(ms: float) -> str:
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}"
