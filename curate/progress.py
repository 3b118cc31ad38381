"""Progress of long jobs: tqdm on a terminal, periodic log lines otherwise, or a callback.

Every long workspace method takes ``progress``: ``True``/``False`` show or hide a bar (``None``:
shown when stderr is a terminal), and a callable ``progress(done, total, unit)`` receives each
advance instead of a bar. The HTTP server's background jobs use the callback
(:mod:`curate.server.jobs`), so a job's progress is what the job itself reports.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Protocol, Union

from tqdm.auto import tqdm

__all__ = ["progress_bar", "Progress", "ProgressCallback"]

logger = logging.getLogger(__name__)


class ProgressCallback(Protocol):
    """Receives the advance of a job: ``done`` of ``total`` (None: unknown) ``unit`` s."""

    def __call__(self, done: int, total: Optional[int], unit: str) -> None: ...


#: What a ``progress=`` argument may be: show a bar (True), hide it (False), decide from the
#: terminal (None), or report every advance to a callback.
Progress = Union[bool, None, ProgressCallback]


class _CallbackBar:
    """The part of tqdm's interface that the jobs use, reporting to a callback."""

    def __init__(self, callback: ProgressCallback, total: Optional[int], unit: str) -> None:
        self._callback = callback
        self.total = total
        self.unit = unit
        self.n = 0
        self._callback(0, total, unit)

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        self._callback(self.n, self.total, self.unit)

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        """Ignored (postfixes are for terminals)."""

    def close(self) -> None:
        """Nothing to release."""


@contextmanager
def progress_bar(
    *, total: Optional[int], desc: str, unit: str = "it", enable: Progress = None
) -> Iterator[Any]:
    """A tqdm bar shown when ``enable`` is true (default: stderr is a terminal); when ``enable``
    is a callable, an object with the same ``update`` that calls ``enable(done, total, unit)``."""
    if callable(enable):
        yield _CallbackBar(enable, total, unit)
        return
    show = sys.stderr.isatty() if enable is None else bool(enable)
    bar = tqdm(total=total, desc=desc, unit=unit, disable=not show, dynamic_ncols=True, leave=False)
    try:
        yield bar
    finally:
        bar.close()
