"""ProbCover refuses a delta-ball graph that would not fit, before building it (issue 11).

The memory model (:func:`graph_bytes`) is checked against tracemalloc's peak of the real builds;
the edge estimate against the real graph; the ceiling against the builders of every path (flat,
IVF join over all rows and over some rows, kNN); the refusal through the workspace leaves no run.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.scale import drive_vectors
from curate.errors import InvalidInputError, ResourceLimitError
from curate.resources import available_memory_bytes
from curate.selectors import ProbCover
from curate.selectors._csr import EdgeBudget, transpose_csr
from curate.selectors._graph_memory import (
    ESTIMATE_ROWS,
    ball_graph_budget,
    graph_bytes,
    resolve_graph_limit,
)
from curate.selectors._neighbors import build_neighbors, knn_rows, range_graph_rows
from curate.selectors.probcover import build_ball_graph, normalize_rows
from memtrace import peak_extra

N = 12_000  # above 8 * ESTIMATE_ROWS: the estimate samples
DELTA = 0.12


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    return normalize_rows(drive_vectors(N, 16, seed=3, frames_per_drive=100))


@pytest.fixture(scope="module")
def graphs(pool):
    """The exact graph (flat index) and the IVF join's graph of ``pool`` at ``DELTA``."""
    flat = build_neighbors(pool, kind="flat")
    ivf = build_neighbors(pool, kind="ivf", seed=0)
    return {"flat": (flat, build_ball_graph(pool, DELTA, index=flat)),
            "ivf": (ivf, build_ball_graph(pool, DELTA, index=ivf))}


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_memory_model_bounds_the_measured_build_and_transpose(pool, graphs, kind) -> None:
    index, ref = graphs[kind]

    def build():
        g = build_ball_graph(pool, DELTA, index=index)
        return g, transpose_csr(g, N)

    (g, _), peak = peak_extra(build)
    assert g.n_edges == ref.n_edges > 20 * N  # a graph worth measuring (mean ball > 20)
    assert peak <= graph_bytes(g.n_edges)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_ceiling_stops_every_builder_and_leaves_the_graph_unchanged_below_it(pool, graphs,
                                                                             kind) -> None:
    index, ref = graphs[kind]
    with pytest.raises(ResourceLimitError, match="passed .* edges.*split it"):
        build_ball_graph(pool, DELTA, index=index, budget=EdgeBudget(ref.n_edges // 2, "split it"))
    roomy = EdgeBudget(ref.n_edges + N)  # + N: self edges the builders may add at the end
    g = build_ball_graph(pool, DELTA, index=index, budget=roomy)
    assert np.array_equal(g.ptr, ref.ptr) and np.array_equal(g.idx, ref.idx)
    assert ref.n_edges - N <= roomy.count <= ref.n_edges
    # some rows only (the IVF join's directed path, the flat index's row subset)
    rows = np.arange(0, N, 7)
    part = range_graph_rows(index, pool, DELTA, rows)
    with pytest.raises(ResourceLimitError):
        range_graph_rows(index, pool, DELTA, rows, budget=EdgeBudget(part.n_edges // 2))


def test_ceiling_counts_the_knn_graph_once(pool, graphs) -> None:
    index, ref = graphs["flat"]
    knn = knn_rows(index, pool, 32)
    full = EdgeBudget(10**9)
    g = build_ball_graph(pool, DELTA, index=index, knn_result=knn, budget=full)
    assert np.array_equal(g.idx, ref.idx)
    # the incomplete rows' kNN edges are replaced by their range search, not counted twice
    assert ref.n_edges - N <= full.count <= ref.n_edges
    with pytest.raises(ResourceLimitError):
        build_ball_graph(pool, DELTA, index=index, knn_result=knn,
                         budget=EdgeBudget(ref.n_edges // 2))


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_estimate_is_close_and_refuses_before_the_build(pool, graphs, kind) -> None:
    index, ref = graphs[kind]
    calls: list[int] = []

    def range_rows(rows, budget):
        calls.append(rows.size)
        return range_graph_rows(index, pool, DELTA, rows, budget=budget)

    # a limit just under the real graph's price: refused from the sample alone
    limit = int(graph_bytes(ref.n_edges) * 0.7)
    with pytest.raises(ResourceLimitError) as err:
        ball_graph_budget(range_rows, N, DELTA, limit, seed=0)
    assert sum(calls) <= ESTIMATE_ROWS  # only the sample was searched, never the pool
    msg = str(err.value)
    assert "shards=" in msg and "max_graph_bytes=None" in msg and f"{N:,} rows" in msg
    est = float(msg.split("about ")[1].split(" edges")[0].replace(",", ""))
    assert 0.8 * ref.n_edges <= est <= 1.25 * ref.n_edges
    # a roomy limit passes and hands the build its ceiling
    calls.clear()
    budget = ball_graph_budget(range_rows, N, DELTA, int(graph_bytes(ref.n_edges) * 2), seed=0)
    assert isinstance(budget, EdgeBudget) and budget.max_edges > ref.n_edges
    assert sum(calls) == ESTIMATE_ROWS
    assert ball_graph_budget(range_rows, N, DELTA, None) is None


def test_a_delta_that_connects_everything_is_refused_within_the_first_chunk(pool) -> None:
    index = build_neighbors(pool, kind="flat")
    seen: list[int] = []

    def range_rows(rows, budget):
        try:
            return range_graph_rows(index, pool, 1.99, rows, budget=budget)
        finally:
            seen.append(budget.count)

    with pytest.raises(ResourceLimitError, match="about"):
        ball_graph_budget(range_rows, N, 1.99, int(graph_bytes(40 * N)), seed=0)
    assert len(seen) == 1  # the first chunk of the sample decided it


def test_probcover_picks_do_not_depend_on_the_check(pool) -> None:
    x = pool.astype(np.float16)
    a = ProbCover(loss_sample=None).select(x, 40, seed=5)
    b = ProbCover(loss_sample=None, max_graph_bytes=None).select(x, 40, seed=5)
    c = ProbCover(loss_sample=None, max_graph_bytes=10**10).select(x, 40, seed=5)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.indices, c.indices)
    with pytest.raises(ResourceLimitError, match=r"shards=\d+.*max_ball \(now 64\)"):
        ProbCover(loss_sample=None, max_graph_bytes=2_000_000).select(x, 40, seed=5)
    with pytest.raises(ResourceLimitError, match=r"smaller delta \(now 1\.5\)"):
        ProbCover(delta=1.5, max_graph_bytes=2_000_000).select(x, 40, seed=5)


@pytest.mark.parametrize("bad", [0, -5, 1.5, "big", True])
def test_bad_limits_are_clear_errors(bad) -> None:
    with pytest.raises(InvalidInputError, match="max_graph_bytes must be"):
        ProbCover(max_graph_bytes=bad)


def test_auto_limit_reads_available_memory() -> None:
    avail = available_memory_bytes()
    assert avail is not None and avail > 0  # Linux: /proc/meminfo
    assert 0 < resolve_graph_limit("auto") <= avail
    assert resolve_graph_limit(None) is None and resolve_graph_limit(123) == 123


def test_workspace_refusal_stores_nothing(ws) -> None:
    runs = len(ws.runs())
    with pytest.raises(ResourceLimitError, match="shards="):
        ws.select("probcover", 5, embedding="bev-hist", max_graph_bytes=1000)
    assert len(ws.runs()) == runs
    ok = ws.select("probcover", 5, embedding="bev-hist")
    assert len(ok.ids) == 5 and len(ws.runs()) == runs + 1


def test_cli_refusal_is_one_clear_line(ws) -> None:
    from test_cli import run_cli

    res = run_cli("select", "--strategy", "probcover", "--budget", "5", "--embedding", "bev-hist",
                  "--param", "max_graph_bytes=1000", "--workspace", str(ws.path))
    assert res.returncode != 0
    assert "shards=" in res.stderr and "Traceback" not in res.stderr
    ok = run_cli("select", "--strategy", "probcover", "--budget", "5", "--embedding", "bev-hist",
                 "--param", "max_graph_bytes=null", "--workspace", str(ws.path))
    assert ok.returncode == 0, ok.stderr
