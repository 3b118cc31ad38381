"""Constraints on what the selection looks like: class balance and similarity to a query set.

* :class:`ClassBalance` (``"class_balance"``): greedily add the frame whose predicted boxes bring
  the class distribution of labeled + selected frames closest (L1) to a target distribution.
* :class:`QuerySimilarity` (``"query_similarity"``): the candidates nearest to a set of query
  rows (e.g. frames showing a rare scenario), by distance to the nearest query row.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from curate.errors import InvalidInputError
from curate.selectors._neighbors import knn
from curate.selectors._scores import per_class_scores
from curate.selectors.base import ScoresLike, Selection, Selector, validate_inputs
from curate.selectors.uncertainty import rank_candidates

__all__ = ["ClassBalance", "QuerySimilarity", "balance_gain", "parse_id_list", "target_shares"]

logger = logging.getLogger(__name__)

#: L1 distance used when a class distribution is undefined (no boxes at all): the maximum.
_UNDEFINED_L1 = 2.0


def target_shares(names: list[str], target: Optional[Mapping[str, float]]) -> np.ndarray:
    """Normalised target distribution over ``names`` (uniform when ``target`` is None)."""
    if target is None:
        return np.full(len(names), 1.0 / len(names))
    missing = [c for c in names if c not in target]
    if missing:
        raise InvalidInputError(f"the target distribution gives no share for classes {missing}")
    t = np.array([float(target[c]) for c in names], dtype=np.float64)
    if (t < 0).any() or t.sum() <= 0:
        raise InvalidInputError(f"target shares must be non-negative with a positive total; got {target!r}")
    return t / t.sum()


def _l1_to_target(totals: np.ndarray, target: np.ndarray) -> np.ndarray:
    """L1 distance of the normalised rows of ``totals`` (M, C) to ``target``; 2 for empty rows."""
    s = totals.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.abs(totals / np.where(s > 0, s, 1.0) - target[None, :]).sum(axis=1)
    return np.where(s[:, 0] > 0, d, _UNDEFINED_L1)


def balance_gain(totals: np.ndarray, counts: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Decrease of the L1 distance to ``target`` when each row of ``counts`` is added to ``totals``.

    ``totals`` (C,), ``counts`` (M, C). O(M*C).
    """
    now = _l1_to_target(totals[None, :], target)[0]
    return now - _l1_to_target(totals[None, :] + counts, target)


class ClassBalance(Selector):
    """Select frames so that the predicted class distribution approaches a target.

    Parameters
    ----------
    counts : str
        Prefix of the per-class count columns in ``scores``: ``{counts}__{class}`` (default the
        ``box_count__<class>`` columns of :func:`curate.scoring.frame_scores`).
    target : mapping of str to float, optional
        Target share per class (normalised); default uniform over the classes found.

    Notes
    -----
    Totals start from the labeled rows' counts. Each pick maximises the decrease of the L1
    distance between the distribution of the totals and the target (the gain; ties: lowest row).
    O(budget * N * C) time, O(N * C) memory.
    """

    name = "class_balance"
    needs_scores = True

    def __init__(self, counts: str = "box_count", target: Optional[Mapping[str, float]] = None) -> None:
        self.counts = str(counts)
        self.target = None if target is None else {str(k): float(v) for k, v in target.items()}

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
    ) -> Selection:
        """Pick ``budget`` rows towards the target class distribution; see :class:`Selector`."""
        inp = validate_inputs(vectors, budget, labeled)
        n = inp.vectors.shape[0]
        classes = None if self.target is None else sorted(self.target)
        names, table = per_class_scores(scores, self.counts, n, classes=classes, who=self.name)
        if (table < 0).any():
            raise InvalidInputError(f"class counts '{self.counts}__*' must be non-negative")
        target = target_shares(names, self.target)
        counts = np.ascontiguousarray(table.T)  # (N, C)
        totals = counts[inp.labeled].sum(axis=0)
        available = ~inp.labeled
        picks: list[int] = []
        gains: list[float] = []
        for _ in range(inp.budget):
            cand = np.flatnonzero(available)
            g = balance_gain(totals, counts[cand], target)
            j = int(np.argmax(g))  # first max = lowest row
            row = int(cand[j])
            picks.append(row)
            gains.append(float(g[j]))
            totals = totals + counts[row]
            available[row] = False
        final = _l1_to_target(totals[None, :], target)[0]
        dist = totals / totals.sum() if totals.sum() > 0 else np.zeros_like(totals)
        return Selection(
            indices=np.asarray(picks, np.int64),
            gains=np.asarray(gains, np.float64),
            info={
                "classes": names,
                "distribution": [float(v) for v in dist],
                "l1_to_target": float(final),
            },
        )


def parse_id_list(value: Any, what: str) -> Optional[list[str]]:
    """Frame ids from a list, or from one comma-separated string (``"a,b,c"``, as the CLI's
    ``--param query_ids=a,b,c`` passes it). ``None`` stays ``None``; empty entries are dropped."""
    if value is None:
        return None
    if isinstance(value, (str, int)):
        items = str(value).split(",")
    elif isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        raise InvalidInputError(
            f"{what} must be a list of frame ids or a comma-separated string; got {value!r}"
        )
    ids = [i.strip() for i in items if i.strip()]
    if not ids:
        raise InvalidInputError(f"{what} holds no frame id; got {value!r}")
    return ids


class QuerySimilarity(Selector):
    """The candidates closest to a query set of rows (nearest-query Euclidean distance).

    Parameters
    ----------
    query_rows : sequence of int
        Row positions of the query examples in the ``vectors`` given to ``select``; they are
        never selected themselves.
    metric : {"l2", "cosine"}
        Distance used.
    query_ids : list of str or str, optional
        Query frames by id (a list, or ``"a,b,c"``). Ids are resolved to rows by the workspace
        (:meth:`curate.workspace.Workspace.select`), which adds query frames outside the
        candidate pool as context rows; ``select`` on bare arrays needs ``query_rows``.
    query_run : str, optional
        A stored run whose ids are the query frames (resolved by the workspace like
        ``query_ids``; both may be given, their union is used).

    Notes
    -----
    Gains are the negated distance to the nearest query row (higher is closer). Ties: lowest
    row. One FAISS kNN (k=1) of the N rows against the Q query rows: O(N*Q*d) time, O(N + Q*d)
    memory.
    """

    name = "query_similarity"

    def __init__(
        self,
        query_rows: Sequence[int] = (),
        metric: str = "l2",
        query_ids: Any = None,
        query_run: Optional[str] = None,
    ) -> None:
        rows = [int(r) for r in query_rows]
        if metric not in ("l2", "cosine"):
            raise InvalidInputError(f"metric must be 'l2' or 'cosine'; got {metric!r}")
        if query_run is not None and (not isinstance(query_run, str) or not query_run):
            raise InvalidInputError(f"query_run must be a run id string; got {query_run!r}")
        self.query_rows = rows
        self.metric = metric
        self.query_ids = parse_id_list(query_ids, "query_ids")
        self.query_run = query_run

    @property
    def needs_query_ids(self) -> bool:
        """Whether the workspace must map ``query_ids`` / ``query_run`` to rows first."""
        return self.query_ids is not None or self.query_run is not None

    def with_query_rows(self, rows: Sequence[int]) -> "QuerySimilarity":
        """A copy that uses the resolved ``rows`` (ids and run dropped)."""
        return QuerySimilarity(query_rows=rows, metric=self.metric)

    def params(self) -> dict[str, Any]:
        """Constructor parameters; the ids (not the rows they resolved to) when given by id."""
        out = super().params()
        if self.needs_query_ids:
            out["query_rows"] = []
        for key in ("query_ids", "query_run"):
            if out[key] is None:
                del out[key]
        return out

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
    ) -> Selection:
        """Pick the ``budget`` candidates nearest to the query rows; see :class:`Selector`."""
        from index.vectors import VectorIndex

        if self.needs_query_ids and not self.query_rows:
            raise InvalidInputError(
                "query_similarity got query_ids / query_run, which only a workspace can map to "
                "rows: call Workspace.select (or `curate select`), or pass query_rows=[...]"
            )
        inp = validate_inputs(vectors, budget, labeled)
        n = inp.vectors.shape[0]
        q = np.asarray(self.query_rows, dtype=np.int64)
        if q.size == 0:
            raise InvalidInputError(
                "query_similarity needs at least one query: pass query_ids=a,b,c (frame ids), "
                "query_run=RUN_ID (the ids of a stored run) or query_rows=[...] (row positions)"
            )
        if q.min() < 0 or q.max() >= n:
            raise InvalidInputError(
                f"query rows must lie in [0, {n}); got min {int(q.min())} and max {int(q.max())}"
            )
        is_query = np.zeros(n, dtype=bool)
        is_query[q] = True
        cand = inp.candidates[~is_query[inp.candidates]]
        if cand.size < inp.budget:
            raise InvalidInputError(
                f"budget {inp.budget} is larger than the {cand.size} unlabeled rows that are not "
                "query rows; lower the budget"
            )
        x = inp.vectors
        if self.metric == "cosine":
            from curate.selectors.probcover import normalize_rows

            x = normalize_rows(x)
        index = VectorIndex.build(x[np.unique(q)], metric="l2", kind="flat")
        dist, _ = knn(index, x[cand], 1)
        d = np.full(n, np.inf)
        d[cand] = dist[:, 0]
        picks = rank_candidates(d, cand, largest=False)[: inp.budget]
        return Selection(
            indices=picks.astype(np.int64),
            gains=-d[picks],
            info={"queries": int(np.unique(q).size), "metric": self.metric},
        )
