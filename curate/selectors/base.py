"""The selector contract shared by every selection strategy.

A selector stores its parameters in ``__init__`` (no work there) and does all work in
:meth:`Selector.select`::

    select(vectors, budget, *, labeled=None, scores=None, seed=0) -> Selection

``vectors`` is an ``(N, d)`` float32 array holding the candidates and the labeled frames together,
``labeled`` a boolean mask or an index array over its rows, ``scores`` optional per-row uncertainty
(a 1-D array or a mapping of named 1-D arrays). The returned :class:`Selection` holds row positions
in pick order, the per-pick gains and diagnostics. Selectors never return a labeled row or the same
row twice, are deterministic for a seed and never build an ``N x N`` matrix.

Constraints that need per-row data that is neither a vector nor a score declare it with
:attr:`Selector.needs_groups` / :attr:`Selector.needs_costs`; such selectors (only those) also
accept the optional keyword-only arguments ``groups=`` (one group key per row, e.g. the drive,
for "at most M frames per drive") and ``costs=`` (annotation cost per row, e.g. predicted boxes,
for a budget in boxes). Callers pass them only when the flag is true, so every other selector
keeps the plain signature above.

Half-precision pools: a selector that sets :attr:`Selector.accepts_float16` takes ``vectors`` as
float16 too (a float16 embedding table read without a float32 copy: half the memory) and upcasts
block by block; the workspace then reads such tables as float16. Every other selector gets
float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import numpy as np

from curate.errors import BudgetError, InvalidInputError

__all__ = ["Selection", "Selector", "ScoresLike", "check_budget", "validate_inputs", "ValidatedInputs"]

logger = logging.getLogger(__name__)

ScoresLike = Union[np.ndarray, Mapping[str, np.ndarray], None]


@dataclass(frozen=True)
class Selection:
    """Result of a selector.

    Attributes
    ----------
    indices : numpy.ndarray
        int64 row positions into the ``vectors`` given to ``select``, in pick order.
    gains : numpy.ndarray
        float64 gain of each pick (meaning depends on the strategy: the distance to the nearest
        center for k-center, the number of newly covered points for ProbCover, ...).
    info : dict
        Diagnostics such as the coverage radius, the delta used or fallbacks taken.
    """

    indices: np.ndarray
    gains: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.indices.shape[0])


@dataclass(frozen=True)
class ValidatedInputs:
    """Inputs of ``select`` after validation.

    Attributes
    ----------
    vectors : numpy.ndarray
        C-contiguous float32 ``(N, d)`` array.
    labeled : numpy.ndarray
        Boolean mask of length ``N``.
    candidates : numpy.ndarray
        int64 row positions of the unlabeled rows, ascending.
    budget : int
        The validated budget.
    """

    vectors: np.ndarray
    labeled: np.ndarray
    candidates: np.ndarray
    budget: int


def _as_mask(labeled: Any, n: int) -> np.ndarray:
    if labeled is None:
        return np.zeros(n, dtype=bool)
    arr = np.asarray(labeled)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise InvalidInputError(
                f"labeled mask has shape {arr.shape}, expected ({n},) to match the {n} rows of "
                "vectors"
            )
        return arr.copy()
    if arr.size == 0:
        return np.zeros(n, dtype=bool)
    if not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1:
        raise InvalidInputError(
            "labeled must be a boolean mask of length N or a 1-D integer array of row positions; "
            f"got dtype {arr.dtype} and shape {arr.shape}"
        )
    if arr.min() < 0 or arr.max() >= n:
        raise InvalidInputError(
            f"labeled row positions must lie in [0, {n}); got min {arr.min()} and max {arr.max()}"
        )
    mask = np.zeros(n, dtype=bool)
    mask[arr] = True
    return mask


def check_budget(
    budget: Any,
    available: Optional[int] = None,
    *,
    pool: str = "unlabeled candidates",
    minimum: int = 0,
    name: str = "budget",
) -> int:
    """Validate a selection budget; the one check the workspace, the selectors and the loop use.

    Parameters
    ----------
    budget : int
        Number of frames (rows) to pick.
    available : int, optional
        How many may be picked; without it only the type and ``minimum`` are checked.
    pool : str
        What ``available`` counts, for the message ("unlabeled frames matching 'x'").
    minimum : int
        Smallest valid budget (0 for a selection, 1 for a loop round).
    name : str
        The parameter's name in the message (``budget``, ``initial``).

    Returns
    -------
    int
        The budget as a Python int.

    Raises
    ------
    InvalidInputError
        Not an integer (bools included).
    BudgetError
        Below ``minimum``; larger than ``available``; ``available`` is 0 and the budget is not.
    """
    integral = isinstance(budget, (int, np.integer)) or (
        isinstance(budget, (float, np.floating)) and float(budget).is_integer())
    if not integral or isinstance(budget, (bool, np.bool_)):
        raise InvalidInputError(f"{name} must be an integer; got {budget!r}")
    b = int(budget)
    if b < minimum:
        wanted = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
        raise BudgetError(f"{name} must be {wanted}; got {budget!r}")
    if available is not None:
        if available <= 0 and b > 0:
            raise BudgetError(f"there are no {pool} to select from ({name} {b})")
        if b > available:
            raise BudgetError(
                f"{name} {b} is larger than the {available} {pool}; lower the {name} to at most "
                f"{available} or widen the filter"
            )
    return b


#: Rows per block of the finiteness check (bounds its boolean temporary to ~16 MiB at d = 256).
FINITE_CHECK_ROWS = 65536


def _nonfinite_rows(arr: np.ndarray) -> np.ndarray:
    """Rows of ``arr`` holding NaN or inf, in blocks (an (N, d) boolean mask would be N*d bytes:
    2.5 GB at 10M x 256). One fast sum per block; rows are only inspected in a block whose sum
    is not finite. O(N*d) time, O(FINITE_CHECK_ROWS * d) memory."""
    bad = []
    for s in range(0, arr.shape[0], FINITE_CHECK_ROWS):
        blk = arr[s : s + FINITE_CHECK_ROWS]
        if not np.isfinite(blk.sum(dtype=np.float64)):
            bad.append(s + np.flatnonzero(~np.isfinite(blk).all(axis=1)))
    return np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)


def validate_inputs(
    vectors: Any,
    budget: Any,
    labeled: Any = None,
    *,
    allow_partial_budget: bool = False,
    keep_float16: bool = False,
) -> ValidatedInputs:
    """Check the arguments of ``select`` and normalise them.

    Parameters
    ----------
    vectors : array-like
        ``(N, d)`` finite numbers.
    budget : int
        Number of rows to pick, ``0 <= budget <= number of unlabeled rows``.
    labeled : array-like, optional
        Boolean mask or row positions of labeled rows.
    allow_partial_budget : bool
        If true, a budget larger than the pool is clipped instead of rejected.
    keep_float16 : bool
        Keep float16 ``vectors`` as float16 (no float32 copy); for selectors that set
        :attr:`Selector.accepts_float16`.

    Returns
    -------
    ValidatedInputs

    Raises
    ------
    InvalidInputError
        Wrong shape, non-finite values or a malformed ``labeled``.
    BudgetError
        Negative budget, empty pool, or budget larger than the number of candidates.

    Notes
    -----
    O(N*d) time for the finiteness check, no copy when ``vectors`` is already C-contiguous
    float32.
    """
    arr = np.asarray(vectors)
    if arr.ndim != 2:
        raise InvalidInputError(
            f"vectors must be a 2-D (N, d) array; got {arr.ndim}-D with shape {arr.shape}"
        )
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InvalidInputError(f"vectors must be numeric; got dtype {arr.dtype}")
    keep = keep_float16 and arr.dtype == np.float16
    arr = np.ascontiguousarray(arr, dtype=np.float16 if keep else np.float32)
    n = arr.shape[0]
    if n == 0:
        raise BudgetError(
            "the pool is empty: no vectors to select from (check the where filter, and that the "
            "frames were ingested and embedded)"
        )
    if arr.shape[1] == 0:
        raise InvalidInputError("vectors have dimension 0")
    bad = _nonfinite_rows(arr)
    if bad.size:
        raise InvalidInputError(
            f"vectors contain NaN or inf in {bad.size} row(s), first at row {int(bad[0])}; "
            "re-embed those frames or drop them before selecting"
        )
    b = check_budget(budget)
    mask = _as_mask(labeled, n)
    candidates = np.flatnonzero(~mask).astype(np.int64)
    if allow_partial_budget and candidates.size:
        b = min(b, int(candidates.size))
    check_budget(b, int(candidates.size), pool=f"unlabeled candidates among the {n} rows")
    return ValidatedInputs(vectors=arr, labeled=mask, candidates=candidates, budget=b)


class Selector:
    """Base class of selection strategies.

    Subclasses set :attr:`name`, store parameters in ``__init__`` and implement :meth:`select`.
    :meth:`params` returns the constructor parameters, which the workspace stores with each run so
    that the run can be repeated.
    """

    name: str = ""
    #: whether the strategy reads ``scores`` (uncertainty); the workspace then requires them.
    needs_scores: bool = False
    #: whether ``select`` takes ``groups=`` (one group key per row, e.g. the drive).
    needs_groups: bool = False
    #: whether ``select`` takes ``costs=`` (annotation cost per row, e.g. predicted boxes).
    needs_costs: bool = False
    #: whether ``select`` takes float16 ``vectors`` as they are (upcasting block by block), so
    #: the workspace reads a float16 table without a float32 copy of the pool.
    accepts_float16: bool = False

    def params(self) -> dict[str, Any]:
        """Return the JSON-serialisable constructor parameters of this selector."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
    ) -> Selection:
        """Pick ``budget`` unlabeled rows of ``vectors``; see the module docstring."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
