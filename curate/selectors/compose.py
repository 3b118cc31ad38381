"""A composite strategy that mixes objectives with strengths (like Lightly's selection config).

Each greedy pick maximises

    diversity * D(x) + weighting * W(x) + balance * B(x)

over the remaining candidates, where every term is scaled to ``[0, 1]`` over the candidates at
that step:

* ``D``: Euclidean distance to the nearest labeled-or-picked row divided by the largest such
  distance (1 for every row before there is any center);
* ``W``: the score column, min-max scaled over the candidates (constant 1 when all equal);
* ``B``: the decrease of the L1 distance between the predicted class distribution of labeled +
  picked rows and the target (see :mod:`curate.selectors.balance`), min-max scaled.

Ties go to the lowest row. With only ``diversity`` this is greedy k-center with a deterministic
first pick (the lowest row), with only ``weighting`` it is top-k by the score.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import numpy as np

from curate.errors import InvalidInputError
from curate.selectors._distances import min_sq_dist_to_set, sq_dist_to_point, squared_norms
from curate.selectors._scores import get_score, per_class_scores
from curate.selectors.balance import balance_gain, target_shares
from curate.selectors.base import ScoresLike, Selection, Selector, validate_inputs

__all__ = ["Composite", "minmax"]

logger = logging.getLogger(__name__)


def minmax(v: np.ndarray) -> np.ndarray:
    """Scale to ``[0, 1]``; a constant (or empty) vector maps to ones."""
    if v.size == 0:
        return v.astype(np.float64)
    lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        return np.ones_like(v, dtype=np.float64)
    return (v - lo) / (hi - lo)


class Composite(Selector):
    """Greedy selection on a weighted sum of diversity, score weighting and class balance.

    Parameters
    ----------
    diversity : float
        Strength of the k-center distance term.
    weighting : float
        Strength of the score term (needs ``scores``).
    balance : float
        Strength of the class-balance term (needs per-class counts in ``scores``).
    score : str, optional
        Score column for ``weighting``.
    counts : str
        Prefix of the per-class count columns for ``balance`` (``{counts}__{class}``).
    target : mapping of str to float, optional
        Target class distribution for ``balance`` (default uniform).

    Notes
    -----
    ``info["terms"]`` holds the strengths. Per pick O(N*d) for the distance update plus O(N*C)
    for the balance term: O(budget*N*(d + C)) time, O(N*C) memory beyond the vectors.
    """

    name = "composite"

    def __init__(
        self,
        diversity: float = 1.0,
        weighting: float = 0.0,
        balance: float = 0.0,
        score: Optional[str] = None,
        counts: str = "box_count",
        target: Optional[Mapping[str, float]] = None,
    ) -> None:
        for label, v in (("diversity", diversity), ("weighting", weighting), ("balance", balance)):
            if not float(v) >= 0:
                raise InvalidInputError(f"{label} strength must be >= 0; got {v!r}")
        if float(diversity) + float(weighting) + float(balance) <= 0:
            raise InvalidInputError("at least one of diversity, weighting, balance must be > 0")
        self.diversity = float(diversity)
        self.weighting = float(weighting)
        self.balance = float(balance)
        self.score = score
        self.counts = str(counts)
        self.target = None if target is None else {str(k): float(v) for k, v in target.items()}

    @property
    def needs_scores(self) -> bool:  # type: ignore[override]
        """Scores are read when ``weighting`` or ``balance`` is positive."""
        return self.weighting > 0 or self.balance > 0

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
    ) -> Selection:
        """Pick ``budget`` rows by the combined objective; see :class:`Selector`."""
        inp = validate_inputs(vectors, budget, labeled)
        x = inp.vectors
        n = x.shape[0]
        u = get_score(scores, self.score, n, who=self.name) if self.weighting > 0 else None
        counts = totals = target = None
        if self.balance > 0:
            classes = None if self.target is None else sorted(self.target)
            names, table = per_class_scores(scores, self.counts, n, classes=classes, who=self.name)
            target = target_shares(names, self.target)
            counts = np.ascontiguousarray(table.T)
            totals = counts[inp.labeled].sum(axis=0)
        norms = squared_norms(x) if self.diversity > 0 else None
        dist = None
        if self.diversity > 0:
            dist = min_sq_dist_to_set(x, x[inp.labeled], x_norms=norms)
        scratch = np.empty(n, dtype=np.float32)
        available = ~inp.labeled
        picks: list[int] = []
        gains: list[float] = []
        for _ in range(inp.budget):
            cand = np.flatnonzero(available)
            total = np.zeros(cand.size, dtype=np.float64)
            if dist is not None:
                dc = np.sqrt(dist[cand].astype(np.float64))
                if np.isinf(dc).all():
                    term = np.ones(cand.size)
                else:
                    term = dc / dc.max() if dc.max() > 0 else np.ones(cand.size)
                total += self.diversity * term
            if u is not None:
                total += self.weighting * minmax(u[cand])
            if counts is not None:
                total += self.balance * minmax(balance_gain(totals, counts[cand], target))
            j = int(np.argmax(total))
            row = int(cand[j])
            picks.append(row)
            gains.append(float(total[j]))
            available[row] = False
            if dist is not None:
                sq_dist_to_point(x, norms, x[row], out=scratch)
                np.minimum(dist, scratch, out=dist)
            if counts is not None:
                totals = totals + counts[row]
        return Selection(
            indices=np.asarray(picks, np.int64),
            gains=np.asarray(gains, np.float64),
            info={
                "terms": {
                    "diversity": self.diversity,
                    "weighting": self.weighting,
                    "balance": self.balance,
                }
            },
        )
