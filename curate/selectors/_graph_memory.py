"""Will a delta-ball graph fit in memory? An estimate before the build, a ceiling during it.

ProbCover's graph holds about ``N * mean ball`` edges. With ``delta="auto"`` the ball cap keeps
the median ball near ``max_ball`` (64) rows, so at 10M rows the graph alone is some 640M edges:
more than a 24 GB machine holds while it is built. Instead of letting the kernel's out-of-memory
killer end the process (and a server with it), :func:`ball_graph_budget`

1. estimates the edge count from the balls of a seeded sample of rows (a range search of
   :data:`ESTIMATE_ROWS` rows through the same index the graph uses: O(sample * search));
2. prices it with :func:`graph_bytes`, a memory model of the build;
3. raises :class:`curate.errors.ResourceLimitError` naming ``shards=`` when the price exceeds the
   limit (by default 90% of the memory available now), and otherwise returns an
   :class:`curate.selectors._csr.EdgeBudget` that stops the real build within one block should
   the estimate have been low.

The memory model: the IVF join's build (per-block column parts, the CSR, the cross-list
transpose and the merge) and the graph plus its transpose at rest are priced at
:data:`GRAPH_BYTES_PER_EDGE` bytes per edge, and the transposes' sort temporaries at
:data:`TRANSPOSE_BYTES_PER_EDGE` bytes per edge of one chunk of at most
:data:`curate.selectors._csr.EDGE_CHUNK` edges. ``tests/test_graph_memory.py`` checks with
tracemalloc that the model bounds the measured peak of the flat and IVF builds.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional, Union

import numpy as np

from curate.errors import InvalidInputError, ResourceLimitError
from curate.resources import available_memory_bytes
from curate.selectors._csr import EDGE_CHUNK, EdgeBudget

__all__ = [
    "ESTIMATE_ROWS",
    "GRAPH_BYTES_PER_EDGE",
    "MEMORY_FRACTION",
    "TRANSPOSE_BYTES_PER_EDGE",
    "ball_graph_budget",
    "graph_bytes",
    "resolve_graph_limit",
]

logger = logging.getLogger(__name__)

#: Bytes per edge of the build and of the graph with its transpose (see the module docstring).
GRAPH_BYTES_PER_EDGE = 28
#: Bytes per edge of one transpose chunk's sort temporaries.
TRANSPOSE_BYTES_PER_EDGE = 44
#: Rows whose balls are range-searched to estimate the mean ball.
ESTIMATE_ROWS = 1000
#: ``"auto"`` limit: this fraction of the memory available when the selection starts.
MEMORY_FRACTION = 0.9


def graph_bytes(edges: float) -> float:
    """Modelled peak bytes of building a graph of ``edges`` edges and its transpose. O(1)."""
    return GRAPH_BYTES_PER_EDGE * edges + TRANSPOSE_BYTES_PER_EDGE * min(edges, EDGE_CHUNK)


def resolve_graph_limit(max_graph_bytes: Union[int, str, None]) -> Optional[int]:
    """Bytes the graph may use: ``"auto"`` is :data:`MEMORY_FRACTION` of the available memory
    (``None`` where it cannot be read), an int is taken as given, ``None`` means no limit."""
    if max_graph_bytes is None:
        return None
    if isinstance(max_graph_bytes, str):
        if max_graph_bytes != "auto":
            raise InvalidInputError(
                f"max_graph_bytes must be a positive int, 'auto' or None; got {max_graph_bytes!r}"
            )
        avail = available_memory_bytes()
        return None if avail is None else int(MEMORY_FRACTION * avail)
    if isinstance(max_graph_bytes, bool) or not isinstance(max_graph_bytes, (int, np.integer)) \
            or int(max_graph_bytes) <= 0:
        raise InvalidInputError(
            f"max_graph_bytes must be a positive int, 'auto' or None; got {max_graph_bytes!r}"
        )
    return int(max_graph_bytes)


def _max_edges(limit: int) -> int:
    """Largest edge count whose :func:`graph_bytes` stays within ``limit``."""
    small = limit / (GRAPH_BYTES_PER_EDGE + TRANSPOSE_BYTES_PER_EDGE)
    if small <= EDGE_CHUNK:
        return max(int(small), 1)
    return max(int((limit - TRANSPOSE_BYTES_PER_EDGE * EDGE_CHUNK) / GRAPH_BYTES_PER_EDGE), 1)


def _gib(b: float) -> str:
    return f"{b / 2**30:.1f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB"


def _shards_for(need: float, limit: int) -> int:
    """Shards to advise: each shard's graph within a quarter of ``limit`` (shard workers run
    side by side, next to the parent's copy of the vectors), rounded up to a power of two."""
    return 1 << max(1, math.ceil(math.log2(max(4 * need / limit, 2))))


def ball_graph_budget(
    range_rows: Any,
    n: int,
    delta: float,
    limit: Optional[int],
    *,
    who: str = "probcover",
    seed: int = 0,
    knobs: str = "",
) -> Optional[EdgeBudget]:
    """Refuse a delta-ball graph that would not fit; else the ceiling for its build.

    Parameters
    ----------
    range_rows : callable
        ``range_rows(rows, budget) -> CSRGraph``: the balls of the given rows through the index
        the graph will use (:func:`curate.selectors._neighbors.range_graph_rows`).
    n : int
        Rows in the pool.
    delta : float
        Ball radius.
    limit : int or None
        Bytes allowed (:func:`resolve_graph_limit`); ``None`` checks nothing.
    who : str
        The selector's registry name, for the advice.
    seed : int
        Seed of the sample (a stream of its own: the picks do not depend on it).
    knobs : str
        The selector's own ways to shrink the graph, appended to the advice.

    Returns
    -------
    EdgeBudget or None
        The build's ceiling (``None`` without a limit).

    Raises
    ------
    ResourceLimitError
        When the estimated graph exceeds ``limit``.

    Notes
    -----
    Pools of at most ``8 * ESTIMATE_ROWS`` rows are not sampled (the ceiling alone guards them).
    The sample is searched in 8 chunks, each under an eighth of the ceiling, and the estimate is
    checked after each: a delta that connects everything is refused within one block of the
    first chunk, not after the whole sample.
    """
    if limit is None:
        return None
    max_edges = _max_edges(limit)

    def advice(edges: Optional[float]) -> str:
        need = graph_bytes(edges) if edges is not None else None
        shards = _shards_for(need, limit) if need is not None else 8
        size = (f"about {edges:,.0f} edges, about {_gib(need)} while it is built"
                if edges is not None else f"more than {max_edges:,} edges")
        return (
            f"{who} on {n:,} rows at delta {delta:.4g} needs a delta-ball graph of {size}; "
            f"{_gib(limit)} may be used (max_graph_bytes). Select in shards instead: "
            f"ws.select({who!r}, budget, ..., shards={shards}) (CLI: curate select --strategy "
            f"{who} ... --shards {shards}; Python: Sharded({_type_name(who)}(), "
            f"shards={shards})){knobs}; max_graph_bytes=None (CLI: --param "
            f"max_graph_bytes=null) skips this check."
        )

    budget_advice = advice(None)
    if n > 8 * ESTIMATE_ROWS:
        rng = np.random.default_rng([int(seed), 0x62616C6C])  # "ball": not the picks' stream
        rows = np.sort(rng.choice(n, ESTIMATE_ROWS, replace=False))
        edges = done = 0
        for chunk in np.array_split(rows, 8):
            # a chunk past max_edges / 8 means balls of > max_edges / ESTIMATE_ROWS rows on
            # average, a graph far over the ceiling: it is stopped there and counted as is
            share = EdgeBudget(max_edges // 8 + chunk.size)
            try:
                edges += range_rows(chunk, share).n_edges
            except ResourceLimitError:
                edges += share.count
            done += chunk.size
            estimate = edges / done * n  # the sampled balls hold their own row
            if graph_bytes(estimate) > limit:
                raise ResourceLimitError(advice(estimate))
        logger.info("%s: delta-ball graph estimated at %.0f edges (mean ball %.1f rows over %d "
                    "sampled rows), %s modelled, limit %s", who, estimate, estimate / n,
                    done, _gib(graph_bytes(estimate)), _gib(limit))
    return EdgeBudget(max_edges, budget_advice)


def _type_name(who: str) -> str:
    """Class name for a registry name, for the advice text."""
    return {"probcover": "ProbCover", "probcover_weighted": "UncertaintyProbCover"}.get(
        who, who)
