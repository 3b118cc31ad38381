"""Sharded selection: any coverage selector over partitions of the pool, merged GreeDi-style.

:class:`Sharded` (``"sharded"``) runs in three steps:

1. **Partition** every row (candidates and labeled) into ``shards`` parts: k-means over the
   vectors (``partition="kmeans"``, seeded, ``4 * shards`` cells trained on at most
   ``1024 * shards`` rows, every row assigned to its nearest centroid, then the cells packed
   largest-first into the least-full shard, so shards are balanced: raw k-means cells are not)
   or whole groups (``partition="groups"``, e.g. drives, packed the same way).
2. **Per shard**: the budget is split in proportion to each shard's candidate count (largest
   remainder, never more than a shard holds), times ``oversample``; the inner selector runs on
   each shard's rows (its labeled rows are context) in parallel: worker processes
   (``engine="local"``) or Ray tasks (``engine="ray"``) that read their own rows of the vectors
   put once in Ray's object store.
3. **Merge** (the second round of GreeDi, Mirzasoleiman et al., NeurIPS 2013), over the union
   of the shard picks. ``merge="gain"`` (default): the picks are put in one global order by a
   k-way merge on each shard's running-minimum gain (each shard keeps its own order) and the
   first ``budget`` are kept, O(U log U) for U picks in the union. For greedy selectors whose
   gains do not increase (k-center's distance to the nearest centre, ProbCover's newly covered
   count) this keeps every pick whose gain is above a global threshold: with ``oversample > 1``
   a shard that needs more than its proportional share (an outlying region, for k-center) gets
   it. ``merge="rerun"``: the inner selector runs once more on the union plus every labeled row
   and picks the final ``budget`` rows (GreeDi's own second round; k-center over a union of
   100k picks costs more than all the shards together).

Loss against the unsharded selector
    With ``measure_loss`` (default: when the pool has at most :data:`MEASURE_LOSS_MAX_ROWS`
    rows) the inner selector also runs unsharded on the whole pool and ``info["loss"]`` holds,
    for both runs, the **coverage radius** (largest distance of a row to its nearest pick or
    labeled row; k-center's objective) and, when the inner selector has a ball radius delta
    (ProbCover), the **ball coverage** (fraction of rows within delta of a pick or labeled row on
    L2-normalised vectors; ProbCover's objective), with the relative loss of the sharded run.
    Without it ``info`` holds the cheap bounds from the shards (``coverage_radius_bound``: the
    largest shard radius, an upper bound of the global radius; ``coverage_bound``: the
    mass-weighted mean of the shard coverages, a lower bound of the global coverage).

Costs
    Partition O(T * 4 shards * d * iters + N * 4 shards * d) with ``T = min(N, 1024 * shards)``;
    shards cost what the inner selector costs on ``N / shards`` rows each, ``shards / workers``
    rounds; the merge O(U log U) for the U = ``budget * oversample`` picks of the union
    (``merge="gain"``), or what the inner selector costs on ``U + labeled`` rows
    (``merge="rerun"``). Memory: the vectors once (float16 pools
    stay float16: :attr:`Sharded.accepts_float16`; the partition upcasts its training sample and
    one block at a time, shards are written as float32), plus one shard's rows per worker
    process (written to a temporary ``.npy`` file
    block by block and loaded by the worker; at most ``workers`` shards in flight, so the parent
    holds no shard copy and the disk at most ``workers`` shard files) or, on Ray, one
    more copy of the vectors in the object store (tasks read that shared object). Measuring the loss adds an unsharded run and two
    O(N * (budget + labeled) * d) blocked distance passes.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from typing import Any, Mapping, Optional, Union

import numpy as np

from curate.errors import BudgetError, InvalidInputError
from curate.resources import peak_rss_mib
from curate.selectors._distances import min_sq_dist_to_set
from curate.selectors.base import ScoresLike, Selection, Selector, check_budget, validate_inputs

__all__ = ["Sharded", "split_budget", "gain_ordered_merge", "ball_coverage", "coverage_radius",
           "MEASURE_LOSS_MAX_ROWS"]

logger = logging.getLogger(__name__)

_PARTITIONS = ("kmeans", "groups")
_MERGES = ("gain", "rerun")
#: ``measure_loss=None`` measures the loss against the unsharded selector up to this many rows.
MEASURE_LOSS_MAX_ROWS = 200_000
#: k-means of the partition trains on at most this many rows per shard.
PARTITION_SAMPLE_PER_SHARD = 1024
#: k-means cells per shard; cells are packed into shards largest first (balanced shards).
CELLS_PER_SHARD = 4
#: Rows per block when a shard's rows are written for a worker process.
WRITE_BLOCK_ROWS = 65536


def split_budget(mass: np.ndarray, budget: int, cap: Optional[np.ndarray] = None) -> np.ndarray:
    """Split ``budget`` over shards in proportion to ``mass`` (largest remainder), within ``cap``.

    Parameters
    ----------
    mass : numpy.ndarray
        Non-negative weight per shard (its candidate count).
    budget : int
        Total to split; ``budget <= cap.sum()``.
    cap : numpy.ndarray, optional
        Most each shard may get (default: ``mass``).

    Returns
    -------
    numpy.ndarray
        int64 share per shard, summing to ``budget``. Deterministic: ties go to the lower shard.
        O(shards log shards).
    """
    mass = np.asarray(mass, dtype=np.float64)
    cap = np.asarray(mass if cap is None else cap).astype(np.int64)
    check_budget(budget, int(cap.sum()), pool="rows the shards hold")
    share = np.zeros(mass.shape[0], dtype=np.int64)
    left = int(budget)
    while left > 0:
        room = cap - share
        open_ = room > 0
        w = np.where(open_, mass, 0.0)
        if w.sum() <= 0:
            w = open_.astype(np.float64)
        exact = left * w / w.sum()
        add = np.minimum(np.floor(exact).astype(np.int64), room)
        rest = left - int(add.sum())
        if rest > 0:
            frac = np.where(open_ & (add < room), exact - np.floor(exact), -1.0)
            order = np.argsort(-frac, kind="stable")
            for s in order[:rest]:
                if frac[s] < 0:
                    break
                add[s] += 1
        share += add
        left -= int(add.sum())
    return share


def coverage_radius(x: np.ndarray, centers: np.ndarray) -> float:
    """Largest distance of a row of ``x`` to its nearest row of ``centers`` (k-center objective).

    O(N * K * d) time in blocks, O(N) memory.
    """
    if centers.shape[0] == 0:
        return float("inf")
    return float(np.sqrt(min_sq_dist_to_set(x, centers).max()))


def ball_coverage(x: np.ndarray, centers: np.ndarray, delta: float) -> float:
    """Fraction of rows of ``x`` strictly within ``delta`` of a row of ``centers``, L2-normalised.

    ProbCover's objective (its balls are ``d < delta`` on normalised vectors). O(N * K * d).
    """
    from curate.selectors.probcover import normalize_rows

    if centers.shape[0] == 0:
        return 0.0
    d2 = min_sq_dist_to_set(normalize_rows(x), normalize_rows(centers))
    return float(np.mean(np.sqrt(d2) < delta))


def gain_ordered_merge(
    picks: list[np.ndarray], gains: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """One global pick order for the shards' picks: a k-way merge by gain.

    Each shard's picks keep their own order; across shards the pick with the larger running
    minimum of its shard's gains comes first (ties: lower shard, then earlier pick). For
    greedy selectors whose gains do not increase (k-center's distance, ProbCover's newly
    covered count) this is the order of the gains themselves. O(B log B) for B picks.

    Returns
    -------
    picks, gains : numpy.ndarray
        int64 rows and float64 gains, in the merged order.
    """
    if not picks:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    rows = np.concatenate([np.asarray(p, np.int64) for p in picks])
    gain = np.concatenate([np.asarray(g, np.float64) for g in gains])
    keys = []
    for g in gains:
        g = np.nan_to_num(np.asarray(g, np.float64), nan=-np.inf)
        keys.append(np.minimum.accumulate(g) if g.size else g)
    key = np.concatenate(keys)
    shard = np.concatenate([np.full(len(p), i, np.int64) for i, p in enumerate(picks)])
    pos = np.concatenate([np.arange(len(p), dtype=np.int64) for p in picks])
    order = np.lexsort((pos, shard, -key))
    return rows[order], gain[order]


def _subset_scores(scores: ScoresLike, rows: np.ndarray) -> ScoresLike:
    if scores is None:
        return None
    if isinstance(scores, Mapping):
        return {k: np.asarray(v)[rows] for k, v in scores.items()}
    return np.asarray(scores)[rows]


def _select_rows(
    inner: Selector, x: np.ndarray, rows: np.ndarray, labeled: np.ndarray, budget: int,
    scores: ScoresLike, seed: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any], float]:
    """Run ``inner`` on ``x[rows]`` (``rows=None``: all of ``x``, no copy); returns global pick
    rows, gains, info and seconds."""
    start = time.perf_counter()
    if rows is None:
        sub = inner.select(x, int(budget), labeled=labeled, scores=scores, seed=seed)
        picks = np.asarray(sub.indices, dtype=np.int64)
    else:
        sub = inner.select(np.ascontiguousarray(x[rows]), int(budget), labeled=labeled[rows],
                           scores=_subset_scores(scores, rows), seed=seed)
        picks = rows[sub.indices]
    return picks, np.asarray(sub.gains, np.float64), dict(sub.info), time.perf_counter() - start


def _pack_largest_first(counts: np.ndarray, shards: int) -> np.ndarray:
    """Shard of each group of ``counts`` rows: largest group first into the least-full shard.

    Deterministic (ties: lower group, lower shard). The largest shard holds at most the mean
    plus the largest group. O(G log G + G * shards) for G groups.
    """
    order = np.argsort(-np.asarray(counts), kind="stable")
    load = np.zeros(shards, dtype=np.int64)
    shard_of = np.empty(len(counts), dtype=np.int64)
    for g in order:
        s = int(np.argmin(load))
        shard_of[g] = s
        load[s] += counts[g]
    return shard_of


def _log_shard(i: int, total: int, rows: int, budget: int, seconds: float,
               done: Optional[int] = None) -> None:
    """Progress: one line per finished shard (``done`` of ``total``)."""
    logger.info("shard %d/%d done (%d of %d finished): %d picks from %d rows in %.1f s",
                i + 1, total, i + 1 if done is None else done, total, budget, rows, seconds)


def _write_rows(path: str, x: np.ndarray, rows: np.ndarray) -> None:
    """Write ``x[rows]`` as float32 to a ``.npy`` file in blocks of :data:`WRITE_BLOCK_ROWS`
    (memory: one block, never a copy of all the rows; float16 rows are upcast per block)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                    shape=(rows.size, x.shape[1]))
    for s in range(0, rows.size, WRITE_BLOCK_ROWS):
        out[s : s + WRITE_BLOCK_ROWS] = x[rows[s : s + WRITE_BLOCK_ROWS]]
    out.flush()
    del out


def _exit_with_parent(parent: int, period: float = 1.0) -> None:
    """Worker-process initializer: a daemon thread ends this worker once ``parent`` is gone.

    A parent killed with SIGKILL cannot stop its pool; without this its workers would finish
    their shards (minutes, gigabytes) as orphans. Checked every ``period`` seconds.
    """
    import threading

    def watch() -> None:
        while True:
            time.sleep(period)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="curate-parent-watch", daemon=True).start()


def _shard_task(inner: Selector, x: Union[np.ndarray, str], rows: Optional[np.ndarray], labeled: np.ndarray,
                budget: int, scores: ScoresLike, seed: int) -> tuple[Any, ...]:
    """One shard (module level, so worker processes and Ray tasks can import it); ``rows=None``
    when ``x`` already holds just the shard's rows: worker processes get it as the path of a
    ``.npy`` file (:func:`_write_rows`), removed once loaded."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if isinstance(x, str):
        path, x = x, np.load(x)
        os.remove(path)
    picks, gains, info, seconds = _select_rows(inner, x, rows, labeled, budget, scores, seed)
    info["worker_peak_mib"] = peak_rss_mib()
    return picks, gains, info, seconds


class Sharded(Selector):
    """Select with ``inner`` per shard of the pool in parallel, then merge (module docstring).

    Parameters
    ----------
    inner : str or Selector
        Registered name of a coverage strategy (``kcenter``, ``probcover``, ``typiclust``,
        their weighted variants, ...) or such a selector object. Strategies that take
        ``groups=`` or ``costs=`` (per-group caps, cost budgets) are refused: per-shard caps
        would not add up to the global ones.
    inner_params : mapping, optional
        Constructor parameters when ``inner`` is a name.
    shards : int
        Number of partitions (>= 1, at most the number of candidates and the budget).
    engine : {"local", "ray"}
        Worker processes on this machine, or Ray tasks.
    partition : {"kmeans", "groups"}
        How rows are split; ``"groups"`` needs ``groups=`` in ``select`` (the workspace passes
        each frame's drive).
    oversample : float, optional
        Each shard picks ``oversample`` times its share (>= 1); the merge round keeps ``budget``.
        Default: the inner selector's ``shard_oversample`` (2 for k-center: at 1M rows and 32
        shards its coverage radius lost 15.9% with 1 and 0.8% with 2, see
        ``benchmarks/results/scale-1000000-kcenter-sharded-32*.json``), else 1.
    merge : {"gain", "rerun"}
        How the union of the shard picks becomes the selection (module docstring).
    measure_loss : bool, optional
        Also run the unsharded selector and report the loss in ``info["loss"]``; default: when
        the pool has at most :data:`MEASURE_LOSS_MAX_ROWS` rows.
    workers : int, optional
        Parallel shard runs (default: one per usable CPU, at most ``shards``); 1 runs them in
        this process. Not part of :meth:`params` (it does not change the result).
    address : str, optional
        Ray cluster for ``engine="ray"`` (default: a local cluster, or the one this process is
        connected to). Not part of :meth:`params`.

    Notes
    -----
    The result depends only on the data, the parameters and the seed, never on ``workers`` or
    ``engine`` (each shard is a deterministic call of ``inner``).
    """

    name = "sharded"
    #: float16 pools are partitioned and written to the shards block by block (see Costs).
    accepts_float16 = True

    def __init__(
        self,
        inner: Union[str, Selector] = "kcenter",
        inner_params: Optional[Mapping[str, Any]] = None,
        shards: int = 4,
        engine: str = "local",
        partition: str = "kmeans",
        oversample: Optional[float] = None,
        merge: str = "gain",
        measure_loss: Optional[bool] = None,
        workers: Optional[int] = None,
        address: Optional[str] = None,
    ) -> None:
        from curate._ray import check_engine
        from curate.selectors.registry import SELECTORS, create_selector

        if isinstance(inner, Selector):
            if inner_params:
                raise InvalidInputError("pass inner_params only with an inner strategy name")
            inner_obj = inner
            inner_name = inner.name
        else:
            inner_name = str(inner)
            if inner_name == self.name or inner_name not in SELECTORS:
                valid = ", ".join(sorted(k for k in SELECTORS if k != self.name))
                raise InvalidInputError(
                    f"inner strategy {inner_name!r} is not valid; choose one of {valid}"
                )
            inner_obj = create_selector(inner_name, **dict(inner_params or {}))
        if inner_obj.name == self.name or inner_obj.needs_groups or inner_obj.needs_costs:
            raise InvalidInputError(
                f"strategy {inner_obj.name!r} cannot be sharded (it takes groups or costs, or is "
                "itself sharded); shard a coverage strategy such as kcenter, probcover or typiclust"
            )
        if isinstance(shards, bool) or int(shards) != shards or int(shards) < 1:
            raise InvalidInputError(f"shards must be a positive integer; got {shards!r}")
        if partition not in _PARTITIONS:
            raise InvalidInputError(f"partition must be one of {_PARTITIONS}; got {partition!r}")
        if merge not in _MERGES:
            raise InvalidInputError(f"merge must be one of {_MERGES}; got {merge!r}")
        if oversample is None:
            oversample = float(getattr(inner_obj, "shard_oversample", 1.0))
        if not float(oversample) >= 1.0:
            raise InvalidInputError(f"oversample must be >= 1; got {oversample!r}")
        if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
            raise InvalidInputError(f"workers must be a positive integer; got {workers!r}")
        self.inner = inner_obj.name
        self.inner_params = inner_obj.params()
        self.shards = int(shards)
        self.engine = check_engine(engine)
        self.partition = partition
        self.oversample = float(oversample)
        self.merge = merge
        self.measure_loss = None if measure_loss is None else bool(measure_loss)
        self._inner = inner_obj
        self._workers = None if workers is None else int(workers)
        self._address = address

    @property
    def needs_scores(self) -> bool:  # type: ignore[override]
        """The inner strategy's need for scores."""
        return bool(self._inner.needs_scores)

    @property
    def needs_groups(self) -> bool:  # type: ignore[override]
        """Groups are needed for ``partition="groups"``."""
        return self.partition == "groups"

    # ------------------------------------------------------------------ steps
    def _partition(self, x: np.ndarray, seed: int, groups: Any) -> np.ndarray:
        """Shard of every row (int64, values in ``[0, shards)``)."""
        n = x.shape[0]
        if self.partition == "groups":
            if groups is None:
                raise InvalidInputError(
                    "partition='groups' needs groups=... (one key per row, e.g. the drive)"
                )
            g = np.asarray(groups)
            if g.ndim != 1 or g.shape[0] != n:
                raise InvalidInputError(
                    f"groups must have one key per row of vectors ({n}); got shape {g.shape}"
                )
            keys, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
            if keys.size < self.shards:
                raise BudgetError(
                    f"shards={self.shards} is larger than the {keys.size} groups; use at most "
                    f"{keys.size} shards or partition='kmeans'"
                )
            return _pack_largest_first(counts, self.shards)[inverse.ravel()]
        if self.shards == 1:
            return np.zeros(n, dtype=np.int64)
        from curate.selectors._kmeans import kmeans

        # k-means cells are uneven (at 10M rows and 64 cells they held 495 to 646 200 rows, and
        # the largest shard sets the wall time and a worker's memory): cut CELLS_PER_SHARD times
        # more cells than shards and pack them largest first into the least-full shard.
        cells = min(n, self.shards * CELLS_PER_SHARD)
        labels, _ = kmeans(x, cells, seed=seed,
                           sample_per_cluster=max(1, PARTITION_SAMPLE_PER_SHARD // CELLS_PER_SHARD))
        counts = np.bincount(labels, minlength=cells)
        return _pack_largest_first(counts, self.shards)[labels]

    def _run_shards(self, x: np.ndarray, tasks: list[tuple[np.ndarray, int]], labeled: np.ndarray,
                    scores: ScoresLike, seed: int) -> list[tuple[Any, ...]]:
        from curate._ray import usable_cpus

        workers = self._workers or min(len(tasks), usable_cpus())
        if self.engine == "ray":
            from curate._ray import ray_session

            with ray_session(self._address) as ray:
                remote = ray.remote(num_cpus=1)(_shard_task)
                x_ref, lab_ref, scores_ref = ray.put(x), ray.put(labeled), ray.put(scores)
                refs = [remote.remote(self._inner, x_ref, rows, lab_ref, b, scores_ref, seed)
                        for rows, b in tasks]
                return list(ray.get(refs))
        if workers <= 1 or len(tasks) <= 1:
            out_seq = []
            for i, (rows, b) in enumerate(tasks):
                out_seq.append(_select_rows(self._inner, x, rows, labeled, b, scores, seed))
                _log_shard(i, len(tasks), rows.size, b, out_seq[-1][3])
            return out_seq
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait

        # At most ``workers`` shards in flight, each handed over as a .npy file written block by
        # block (pickling a shard would hold ~4 copies of its rows in this process; submitting all
        # shards at once would copy the whole pool). The worker loads its file: one copy there.
        out: list[Any] = [None] * len(tasks)
        with tempfile.TemporaryDirectory(prefix="curate-shards-") as tmp, ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context("spawn"),
            initializer=_exit_with_parent, initargs=(os.getpid(),),
        ) as pool:
            running: dict[Any, int] = {}
            for i, (rows, b) in enumerate(tasks):
                if len(running) >= workers:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        self._collect(out, tasks, running.pop(fut), fut)
                path = os.path.join(tmp, f"shard-{i}.npy")
                _write_rows(path, x, rows)
                fut = pool.submit(_shard_task, self._inner, path, None,
                                  labeled[rows], b, _subset_scores(scores, rows), seed)
                running[fut] = i
            for fut in as_completed(list(running)):
                self._collect(out, tasks, running.pop(fut), fut)
        return out

    @staticmethod
    def _collect(out: list[Any], tasks: list[tuple[np.ndarray, int]], i: int, fut: Any) -> None:
        """Store the result of shard ``i`` (local rows mapped back to pool rows)."""
        local, gains, info, secs = fut.result()
        out[i] = (tasks[i][0][local], gains, info, secs)
        _log_shard(i, len(tasks), tasks[i][0].size, tasks[i][1], secs,
                   done=sum(r is not None for r in out))

    # ------------------------------------------------------------------ select
    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
        groups: Any = None,
    ) -> Selection:
        """Pick ``budget`` rows shard by shard, then merge; see :class:`Selector`.

        Raises
        ------
        BudgetError
            ``shards`` larger than the candidates or than a positive budget (each shard must
            get at least one pick), besides the checks of every selector.
        """
        inp = validate_inputs(vectors, budget, labeled, keep_float16=True)
        x, lab, b = inp.vectors, inp.labeled, inp.budget
        n = x.shape[0]
        if b == 0:
            return Selection(np.zeros(0, np.int64), np.zeros(0, np.float64),
                             {"shards": 0, "engine": self.engine})
        if self.shards > inp.candidates.size:
            raise BudgetError(
                f"shards={self.shards} is larger than the {inp.candidates.size} unlabeled "
                f"candidates; use at most {inp.candidates.size} shards"
            )
        if self.shards > b:
            raise BudgetError(
                f"shards={self.shards} is larger than the budget {b}; every shard needs at least "
                f"one pick: use at most {b} shards (or a larger budget)"
            )
        t0 = time.perf_counter()
        shard_of = self._partition(x, seed, groups)
        t_partition = time.perf_counter() - t0
        order = np.argsort(shard_of, kind="stable")
        bounds = np.searchsorted(shard_of[order], np.arange(self.shards + 1))
        shard_rows = [order[bounds[s]:bounds[s + 1]] for s in range(self.shards)]
        cand_count = np.array([int((~lab[r]).sum()) for r in shard_rows], dtype=np.int64)
        share = split_budget(cand_count, b)
        want = np.minimum(cand_count, np.ceil(share * self.oversample).astype(np.int64))
        tasks = [(shard_rows[s], int(want[s])) for s in range(self.shards) if want[s] > 0]
        t1 = time.perf_counter()
        results = self._run_shards(x, tasks, lab, scores, seed)
        t_shards = time.perf_counter() - t1
        union = np.sort(np.concatenate([r[0] for r in results]).astype(np.int64))
        t2 = time.perf_counter()
        if self.merge == "gain":
            picks, gains = gain_ordered_merge([r[0] for r in results], [r[1] for r in results])
            picks, gains = picks[:b], gains[:b]
            merge_info: dict[str, Any] = {"order": "shard gains (k-way merge)", "rows": int(b),
                                          "union": int(union.size)}
        else:
            merge_rows = np.union1d(union, np.flatnonzero(lab)).astype(np.int64)
            picks, gains, merge_info, _ = _select_rows(self._inner, x, merge_rows, lab, b, scores,
                                                       seed)
        t_merge = time.perf_counter() - t2
        info: dict[str, Any] = {
            "shards": len(tasks),
            "engine": self.engine,
            "partition": self.partition,
            "oversample": self.oversample,
            "shard_rows": [int(r.size) for r in shard_rows],
            "shard_budgets": [int(v) for v in share],
            "union": int(union.size),
            "seconds_partition": round(t_partition, 4),
            "seconds_shards": round(t_shards, 4),
            "seconds_shard_max": round(max(r[3] for r in results), 4),
            "seconds_merge": round(t_merge, 4),
            "merge": merge_info,
        }
        peaks = [v for v in (r[2].get("worker_peak_mib") for r in results)
                 if isinstance(v, float) and math.isfinite(v)]
        if peaks:
            info["worker_peak_mib"] = max(peaks)
        radii = [r[2].get("coverage_radius") for r in results]
        # the shard objectives bound the global one only when every shard pick was kept
        kept_all = union.size == b
        if kept_all and all(isinstance(v, (int, float)) for v in radii):
            info["coverage_radius_bound"] = float(max(radii))
        covs = [r[2].get("coverage") for r in results]
        if kept_all and all(isinstance(v, (int, float)) for v in covs):
            sizes = np.array([rows.size for rows, _ in tasks], dtype=np.float64)
            info["coverage_bound"] = float(np.dot(sizes, covs) / sizes.sum())
        measure = self.measure_loss if self.measure_loss is not None else n <= MEASURE_LOSS_MAX_ROWS
        if measure:
            info["loss"] = self._loss(x, lab, b, scores, seed, picks, merge_info)
            info["coverage_radius"] = info["loss"]["coverage_radius"]["sharded"]
        else:
            info["loss"] = (f"not measured ({n} rows > {MEASURE_LOSS_MAX_ROWS}); pass "
                            "measure_loss=True to run the unsharded selector too")
        return Selection(indices=picks.astype(np.int64), gains=gains, info=info)

    def _loss(self, x: np.ndarray, lab: np.ndarray, budget: int, scores: ScoresLike, seed: int,
              picks: np.ndarray, merge_info: dict[str, Any]) -> dict[str, Any]:
        """Objectives of the sharded and the unsharded run on the whole pool."""
        x = np.asarray(x, dtype=np.float32)  # a float16 pool: one float32 copy, only here
        start = time.perf_counter()
        full = self._inner.select(x, budget, labeled=lab, scores=scores, seed=seed)
        seconds = time.perf_counter() - start
        known = np.flatnonzero(lab)
        sharded_c = x[np.concatenate([picks, known])]
        full_c = x[np.concatenate([full.indices, known])]
        r_s, r_u = coverage_radius(x, sharded_c), coverage_radius(x, full_c)
        out: dict[str, Any] = {
            "unsharded_seconds": round(seconds, 4),
            "coverage_radius": {"sharded": r_s, "unsharded": r_u,
                                "relative": (r_s / r_u - 1.0) if r_u > 0 else 0.0},
        }
        delta = full.info.get("delta", merge_info.get("delta"))
        if isinstance(delta, (int, float)):
            c_s, c_u = ball_coverage(x, sharded_c, delta), ball_coverage(x, full_c, delta)
            out["ball_coverage"] = {"delta": float(delta), "sharded": c_s, "unsharded": c_u,
                                    "relative": (c_u - c_s) / c_u if c_u > 0 else 0.0}
        return out

