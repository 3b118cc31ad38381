"""Progress bars for long jobs (tqdm on a terminal, periodic log lines otherwise)."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Iterator, Optional

from tqdm.auto import tqdm

__all__ = ["progress_bar"]

logger = logging.getLogger(__name__)


@contextmanager
def progress_bar(
    *, total: Optional[int], desc: str, unit: str = "it", enable: Optional[bool] = None
) -> Iterator[tqdm]:
    """A tqdm bar that is shown when ``enable`` is true (default: stderr is a terminal)."""
    show = sys.stderr.isatty() if enable is None else bool(enable)
    bar = tqdm(total=total, desc=desc, unit=unit, disable=not show, dynamic_ncols=True, leave=False)
    try:
        yield bar
    finally:
        bar.close()
