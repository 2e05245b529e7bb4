"""Progress bars that work in a notebook, a terminal and CI logs alike."""
from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True):
    """A tqdm bar; silent when disabled or when WORKBOOK_PROGRESS=0 (CI logs)."""
    disable = not enabled or os.environ.get("WORKBOOK_PROGRESS") == "0"
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr,
                mininterval=0.5, dynamic_ncols=True)
