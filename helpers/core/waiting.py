"""One way to wait for something: poll a check until it holds or a deadline passes."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from helpers.core.errors import WaitTimeout

T = TypeVar("T")


def wait_until(check: Callable[[], T | None], timeout: float, what: str, *, interval: float = 0.2,
               detail: Callable[[], str] | None = None) -> T:
    """Call `check()` until it returns something truthy and return that, else raise WaitTimeout.

    `what` completes the sentence "Gave up waiting for <what> after N s";
    `detail()` may add what was seen last (a log tail, the counts so far).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            extra = detail() if detail else ""
            raise WaitTimeout(f"Gave up waiting for {what} after {timeout:g} s{extra}.")
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
