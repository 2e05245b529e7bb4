"""Progress bars that work in a notebook, a terminal and CI logs alike."""
from __future__ import annotations

import sys
from typing import Any


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True) -> Any:
    """A tqdm bar, silent when not enabled (settings.progress: off in CI and in `make run`).

    tqdm's notebook flavour loads ipywidgets: it is imported only when a bar is made.
    """
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr,
                mininterval=0.5, dynamic_ncols=True)
