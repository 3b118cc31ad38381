"""Greedy k-center (core-set) selection of Sener & Savarese (ICLR 2018).

The greedy loop lives in :func:`greedy_kcenter`, shared with the uncertainty-weighted variant in
:mod:`curate.selectors.hybrid`. It runs on numpy (BLAS matrix-vector products) or on torch
(``device="cuda"`` when a GPU is present; ``backend="torch", device="cpu"`` exists so that the
torch path is tested against the numpy path on machines without a GPU).

Across devices the picks agree up to near-ties: on an H200 (``benchmarks/results/gpu_paths-h200.json``)
torch on CUDA and the numpy loop shared 1998 of 2000 picks of a 200k x 256 pool and first parted
where the two candidates' exact distances differed by 2.1e-6 relative (cuBLAS and OpenBLAS sum in
different orders). On CPU, torch and numpy pick identically. ``info["device"]`` records where a run
went; pass ``device="cpu"`` where picks must match between GPU and CPU machines.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from typing import Any, Optional

import numpy as np

from curate.errors import InvalidInputError
from curate.selectors._distances import (
    UPCAST_ROWS,
    min_sq_dist_to_set,
    sq_dist_to_point,
    squared_norms,
)
from curate.selectors._kcenter_pruned import pruned_greedy_kcenter
from curate.selectors.base import ScoresLike, Selection, Selector, validate_inputs

__all__ = ["KCenterGreedy", "greedy_kcenter", "resolve_backend"]

logger = logging.getLogger(__name__)

_BACKENDS = ("auto", "numpy", "torch")
_DEVICES = ("auto", "cpu", "cuda")
_ALGORITHMS = ("auto", "pruned", "naive")
#: ``algorithm="auto"`` prunes (numpy backend) when the vectors hold at least this many numbers
#: (32 MiB of float32: below, a full pass runs from cache) and the budget is at least
#: ``sqrt(N)`` picks (the partition costs about as much as ``sqrt(N)`` full passes).
PRUNE_MIN_ELEMENTS = 8 * 1024 * 1024


def _torch_cuda_available() -> bool:
    """Whether torch sees a CUDA GPU; avoids importing torch (seconds) when no NVIDIA device exists."""
    if "torch" not in sys.modules and not (
        os.path.exists("/dev/nvidia0") or os.path.exists("/proc/driver/nvidia")
    ):
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    return bool(torch.cuda.is_available())


def resolve_backend(backend: str, device: str) -> tuple[str, str]:
    """Resolve ``("auto"|"numpy"|"torch", "auto"|"cpu"|"cuda")`` to a concrete pair.

    ``device="auto"`` is CUDA when torch sees a GPU, else CPU. ``backend="auto"`` is torch on
    CUDA and numpy on CPU (numpy BLAS is as fast as torch on CPU and needs no copy).

    Raises
    ------
    InvalidInputError
        Unknown names, or ``device="cuda"`` without a CUDA-enabled torch.
    """
    if backend not in _BACKENDS:
        raise InvalidInputError(f"backend must be one of {_BACKENDS}; got {backend!r}")
    if device not in _DEVICES:
        raise InvalidInputError(f"device must be one of {_DEVICES}; got {device!r}")
    if device == "auto":
        device = "cuda" if _torch_cuda_available() else "cpu"
    elif device == "cuda" and not _torch_cuda_available():
        raise InvalidInputError(
            "device='cuda' was requested but torch sees no CUDA GPU; use device='auto' or 'cpu', "
            "or install a CUDA build of torch"
        )
    if backend == "auto":
        backend = "torch" if device == "cuda" else "numpy"
    if backend == "numpy" and device == "cuda":
        raise InvalidInputError("backend='numpy' cannot run on device='cuda'; use backend='torch'")
    return backend, device


def greedy_kcenter(
    x: np.ndarray,
    labeled: np.ndarray,
    budget: int,
    *,
    first_pick: Optional[int] = None,
    weights: Optional[np.ndarray] = None,
    stop_sq: Optional[float] = None,
    backend: str = "numpy",
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """Greedy farthest-point selection with optional multiplicative weights.

    Each pick is the non-center row maximising ``dist(row, centers) * weights[row]`` (plain
    k-center when ``weights`` is None), lowest row on ties; labeled rows are the initial centers.

    Parameters
    ----------
    x : numpy.ndarray
        ``(N, d)`` C-contiguous float32, float64, or float16 (a half-precision pool: upcast
        block by block, never as a whole; same picks, gains and radius as its float32 upcast).
    labeled : numpy.ndarray
        Boolean mask of the initial centers.
    budget : int
        Number of picks.
    first_pick : int, optional
        Row to pick first when there are no labeled rows (its gain is ``inf``). Required when
        ``labeled`` is empty and ``budget > 0``.
    weights : numpy.ndarray, optional
        Non-negative per-row weights (e.g. ``u ** beta``).
    stop_sq : float, optional
        Stop once the best squared distance falls below this.
    backend, device : str
        Concrete backend (``"numpy"`` or ``"torch"``) and device (``"cpu"`` or ``"cuda"``).

    Returns
    -------
    picks : numpy.ndarray
        int64 rows in pick order.
    gains : numpy.ndarray
        float64 ``distance * weight`` of each pick (``inf`` for ``first_pick``).
    radius : float
        Largest distance of a non-center row to its nearest center after the last pick.
    stopped_early : bool
        Whether ``stop_sq`` ended the loop.

    Notes
    -----
    Time O(N*L*d) for the distances to ``L`` labeled rows (chunked BLAS, at most
    :data:`~curate.selectors._distances.UPCAST_ROWS` rows per block) plus O(budget*N*d): one
    matrix-vector product per pick, a single pass over ``x``, so the loop is bound by memory
    bandwidth. Memory O(N) beyond ``x`` plus one upcast block of a float16 ``x``
    (:data:`curate.selectors._distances.UPCAST_ROWS` rows). On CUDA ``x`` is copied to the GPU
    once (a float16 ``x`` as float16, upcast there to float32 in GPU memory); the torch backend
    on CPU (a test path, never chosen by ``"auto"``) upcasts a float16 ``x`` to one float32 copy.
    """
    if budget > 0 and not labeled.any() and first_pick is None:
        raise InvalidInputError("greedy_kcenter needs first_pick when there are no labeled rows")
    norms = squared_norms(x)
    # row blocks capped for every dtype: a float16 pool then runs the very GEMMs of its upcast
    dist = min_sq_dist_to_set(x, x[labeled], x_norms=norms, max_rows=UPCAST_ROWS)
    if backend == "torch":
        return _greedy_torch(x, norms, dist, labeled, budget, first_pick, weights, stop_sq, device)
    return _greedy_numpy(x, norms, dist, labeled, budget, first_pick, weights, stop_sq)


def _greedy_numpy(
    x: np.ndarray,
    norms: np.ndarray,
    dist: np.ndarray,
    labeled: np.ndarray,
    budget: int,
    first_pick: Optional[int],
    weights: Optional[np.ndarray],
    stop_sq: Optional[float],
) -> tuple[np.ndarray, np.ndarray, float, bool]:
    # dist: squared distance to the nearest center; -1 marks centers (never picked again).
    dist[labeled] = -1.0
    w2 = None if weights is None else (weights.astype(np.float64) ** 2).astype(dist.dtype)
    objective = None if w2 is None else np.empty_like(dist)
    picks: list[int] = []
    gains: list[float] = []
    stopped = False
    scratch = np.empty(x.shape[0], dtype=dist.dtype)
    for step in range(budget):
        if step == 0 and not labeled.any():
            pick = int(first_pick)  # type: ignore[arg-type]
            gain = float("inf")
        else:
            if w2 is None:
                pick = int(np.argmax(dist))
                best = float(dist[pick])
            else:
                np.multiply(dist, w2, out=objective)
                objective[dist < 0] = -1.0
                pick = int(np.argmax(objective))
                best = float(dist[pick])
            if stop_sq is not None and best < stop_sq:
                stopped = True
                break
            gain = float(np.sqrt(max(best, 0.0)))
            if weights is not None:
                gain *= float(weights[pick])
        picks.append(pick)
        gains.append(gain)
        sq_dist_to_point(x, norms, x[pick], out=scratch)
        np.minimum(dist, scratch, out=dist)
        dist[pick] = -1.0
    remaining = dist[dist >= 0]
    radius = float(np.sqrt(remaining.max())) if remaining.size else 0.0
    return np.asarray(picks, dtype=np.int64), np.asarray(gains, dtype=np.float64), radius, stopped


def _greedy_torch(
    x: np.ndarray,
    norms: np.ndarray,
    dist: np.ndarray,
    labeled: np.ndarray,
    budget: int,
    first_pick: Optional[int],
    weights: Optional[np.ndarray],
    stop_sq: Optional[float],
    device: str,
) -> tuple[np.ndarray, np.ndarray, float, bool]:
    import torch

    dev = torch.device(device)
    xt = torch.from_numpy(x).to(dev)
    if xt.dtype == torch.float16:  # exact upcast, on the device (host memory holds float16 only)
        xt = xt.float()
    nt = torch.from_numpy(norms).to(dev)
    dt = torch.from_numpy(dist).to(dev)
    lab = torch.from_numpy(labeled).to(dev)
    dt[lab] = -1.0
    w2 = None
    if weights is not None:
        w2 = torch.from_numpy((weights.astype(np.float64) ** 2).astype(np.float32)).to(dev)
    picks: list[int] = []
    gains: list[float] = []
    stopped = False
    scratch = torch.empty_like(dt)
    any_labeled = bool(labeled.any())
    for step in range(budget):
        if step == 0 and not any_labeled:
            pick = int(first_pick)  # type: ignore[arg-type]
            gain = float("inf")
        else:
            if w2 is None:
                pick = int(torch.argmax(dt))
            else:
                obj = dt * w2
                obj[dt < 0] = -1.0
                pick = int(torch.argmax(obj))
            best = float(dt[pick])
            if stop_sq is not None and best < stop_sq:
                stopped = True
                break
            gain = float(np.sqrt(max(best, 0.0)))
            if weights is not None:
                gain *= float(weights[pick])
        picks.append(pick)
        gains.append(gain)
        # Same arithmetic as sq_dist_to_point: |x|^2 - 2 x.c + |c|^2, clamped at 0.
        c = xt[pick]
        c_norm = float(np.dot(x[pick].astype(np.float64), x[pick].astype(np.float64)))
        torch.mv(xt, c, out=scratch)
        scratch.mul_(-2.0).add_(nt).add_(np.float32(c_norm).item()).clamp_(min=0.0)
        torch.minimum(dt, scratch, out=dt)
        dt[pick] = -1.0
    rem = dt[dt >= 0]
    radius = float(torch.sqrt(rem.max())) if rem.numel() else 0.0
    return np.asarray(picks, dtype=np.int64), np.asarray(gains, dtype=np.float64), radius, stopped


class KCenterGreedy(Selector):
    """Exact greedy k-center: repeatedly pick the row farthest from every chosen or labeled row.

    Labeled rows are the initial centers. With no labeled rows the first center is a seeded
    random candidate (its gain is ``inf``). Each further pick is the candidate whose Euclidean
    distance to its nearest center is largest (ties: lowest row), and its gain is that distance.
    The result's ``info["coverage_radius"]`` is the largest distance from any row to its nearest
    selected-or-labeled row after the last pick (the k-center objective).

    Parameters
    ----------
    min_distance : float, optional
        Stop early once the farthest candidate is closer than this to a center (the pool is then
        covered at that radius); the selection may be shorter than the budget
        (``info["stopped_early"]``).
    device : {"auto", "cpu", "cuda"}
        Where the loop runs; ``"auto"`` is CUDA when torch sees a GPU.
    backend : {"auto", "numpy", "torch"}
        ``"auto"``: torch on CUDA, numpy on CPU. ``"torch"`` on CPU gives the same picks as numpy
        (used to test the GPU code path without a GPU).
    algorithm : {"auto", "pruned", "naive"}
        ``"naive"``: one pass over every row per pick (the reference). ``"pruned"``: cluster-level
        triangle-inequality pruning (:mod:`curate.selectors._kcenter_pruned`), numpy backend
        only; its picks, gains, ties and radius equal the naive loop's bit for bit (rows it skips
        are provably left unchanged by the naive update, rounding included). ``"auto"`` (default):
        pruned on the numpy backend when ``N * d >= PRUNE_MIN_ELEMENTS`` (8 Mi numbers) and the
        budget is at least ``sqrt(N)``, naive otherwise and on torch.
    n_clusters : int, optional
        Clusters of the pruned path's partition (default ``sqrt(N)``); speed only.
    dtype : {"float32", "float64"}
        Precision of the distances. ``"float32"`` (default) reads half the bytes per pick, but
        two candidates whose distances differ by a few float32 ulps can swap: on the 10k
        benchmark the picks equal scikit-activeml's ``CoreSet`` (float64) up to pick 569, where
        the two best squared distances differ by 3.2e-7 relative. ``"float64"`` (numpy backend,
        CPU; a float64 copy of the vectors) gives float64 parity with such peers at twice the
        memory traffic.

    Notes
    -----
    Time O(N*L*d) for the initial distances to ``L`` labeled rows (chunked BLAS) plus
    O(budget*N*d) for the picks (one matrix-vector product per pick, memory-bandwidth bound).
    Memory O(N*d) for the input plus O(N) working arrays; no N x N matrix.

    Half-precision pools (:attr:`accepts_float16`): float16 ``vectors`` are read as they are and
    upcast block by block (at most 32k rows, or the BLAS block of the initial distances; the
    labeled rows are gathered as float16 and upcast 4096 at a time), so the pool is held once in
    float16 and never as a float32 copy. Picks, gains, ties and radius equal those of
    ``vectors.astype(np.float32)`` bit for bit, on both algorithms (same kernels, same block
    shapes). ``dtype="float64"`` still makes its float64 copy; the torch backend on CPU makes a
    float32 copy (on CUDA the upcast copy lives on the GPU). The pruned path does
    O(K d) per pick plus the rows of the clusters the new center can improve (``info["pruning"]``
    reports the mean touched fraction), after an O(N sqrt(N) d) partition.
    """

    name = "kcenter"
    #: default ``oversample`` of :class:`~curate.selectors.sharded.Sharded` around k-center:
    #: the radius is set by the worst-covered region, which a proportional share starves.
    shard_oversample = 2.0
    #: float16 pools are upcast block by block (see Notes): no float32 copy of the pool.
    accepts_float16 = True

    def __init__(
        self,
        min_distance: Optional[float] = None,
        device: str = "auto",
        backend: str = "auto",
        dtype: str = "float32",
        algorithm: str = "auto",
        n_clusters: Optional[int] = None,
    ) -> None:
        if algorithm not in _ALGORITHMS:
            raise InvalidInputError(f"algorithm must be one of {_ALGORITHMS}; got {algorithm!r}")
        if algorithm == "pruned" and backend == "torch":
            raise InvalidInputError("algorithm='pruned' runs on the numpy backend; use backend='numpy'")
        if n_clusters is not None and int(n_clusters) < 1:
            raise InvalidInputError(f"n_clusters must be >= 1; got {n_clusters!r}")
        if dtype not in ("float32", "float64"):
            raise InvalidInputError(f"dtype must be 'float32' or 'float64'; got {dtype!r}")
        if dtype == "float64" and backend == "torch":
            raise InvalidInputError("dtype='float64' runs on the numpy backend; use backend='numpy'")
        if min_distance is not None and not (float(min_distance) >= 0.0):
            raise InvalidInputError(f"min_distance must be >= 0; got {min_distance!r}")
        if backend not in _BACKENDS:
            raise InvalidInputError(f"backend must be one of {_BACKENDS}; got {backend!r}")
        if device not in _DEVICES:
            raise InvalidInputError(f"device must be one of {_DEVICES}; got {device!r}")
        self.min_distance = None if min_distance is None else float(min_distance)
        self.device = device
        self.backend = backend
        self.dtype = dtype
        self.algorithm = algorithm
        self.n_clusters = None if n_clusters is None else int(n_clusters)

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
    ) -> Selection:
        """Pick up to ``budget`` rows by greedy k-center; see :class:`Selector`."""
        inp = validate_inputs(vectors, budget, labeled, keep_float16=True)
        backend, device = resolve_backend(
            "numpy" if self.dtype == "float64" else self.backend,
            "cpu" if self.dtype == "float64" else self.device,
        )
        x = inp.vectors.astype(np.float64) if self.dtype == "float64" else inp.vectors
        first = None
        if not inp.labeled.any() and inp.budget > 0:
            rng = np.random.default_rng(seed)
            first = int(inp.candidates[rng.integers(inp.candidates.size)])
        stop_sq = None if self.min_distance is None else self.min_distance**2
        algorithm = self.algorithm
        if algorithm == "pruned" and backend != "numpy":
            raise InvalidInputError("algorithm='pruned' runs on the numpy backend (CPU)")
        if algorithm == "auto":
            big = x.size >= PRUNE_MIN_ELEMENTS and inp.budget >= max(64, math.sqrt(x.shape[0]))
            algorithm = "pruned" if backend == "numpy" and big else "naive"
        pruning: Optional[dict] = None
        if algorithm == "pruned":
            picks, gains, radius, stopped, pruning = pruned_greedy_kcenter(
                x,
                inp.labeled,
                inp.budget,
                first_pick=first,
                stop_sq=stop_sq,
                n_clusters=self.n_clusters,
                seed=seed,
            )
        else:
            picks, gains, radius, stopped = greedy_kcenter(
                x,
                inp.labeled,
                inp.budget,
                first_pick=first,
                stop_sq=stop_sq,
                backend=backend,
                device=device,
            )
        info = {
            "algorithm": algorithm,
            "coverage_radius": radius,
            "stopped_early": stopped,
            "initial_centers": int(inp.labeled.sum()),
            "backend": backend,
            "device": device,
            "dtype": self.dtype,
        }
        if pruning is not None:
            info["pruning"] = pruning
        return Selection(indices=picks, gains=gains, info=info)
