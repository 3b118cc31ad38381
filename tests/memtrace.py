"""Peak traced memory of one call (tracemalloc sees numpy's buffers): the memory tests' probe."""

from __future__ import annotations

import tracemalloc


def peak_extra(fn) -> tuple[object, int]:
    """Result of ``fn()`` and the peak of traced memory above what was held before it."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn()
        return out, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
