"""Uncertainty sampling on stored per-frame scores (see :mod:`curate.scoring`).

* :class:`TopK`: the ``budget`` candidates with the highest (or lowest) value of one score column,
  ties by lowest row.
* :class:`ClassQuota`: per-class round-robin (MagLev-style): visit the classes in turn (or by
  largest deficit against given quotas) and take the best remaining frame for that class from the
  per-class score columns ``{score}__{class}``.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from curate.errors import InvalidInputError
from curate.selectors._scores import get_score, per_class_scores
from curate.selectors.base import ScoresLike, Selection, Selector, validate_inputs

__all__ = ["TopK", "ClassQuota", "rank_candidates"]

logger = logging.getLogger(__name__)


def rank_candidates(values: np.ndarray, candidates: np.ndarray, *, largest: bool = True) -> np.ndarray:
    """Candidates sorted by ``values`` (descending when ``largest``), ties by lowest row.

    O(N log N) time, O(N) memory.
    """
    v = values[candidates]
    key = -v if largest else v
    order = np.lexsort((candidates, key))
    return candidates[order]


class TopK(Selector):
    """The ``budget`` unlabeled rows with the highest value of a score (uncertainty sampling).

    Parameters
    ----------
    score : str
        Score column when ``scores`` is a mapping (``"entropy_mean"``, ``"mutual_information_max"``,
        ...). A plain 1-D ``scores`` array is used as is.
    largest : bool
        Take the highest values (default); ``False`` takes the lowest (e.g. ``margin_min``).

    Notes
    -----
    Gains are the score values. O(N log N) time, O(N) memory.
    """

    name = "topk"
    #: only the scores are read: a float16 pool is taken as it is.
    accepts_float16 = True
    needs_scores = True

    def __init__(self, score: str = "entropy_mean", largest: bool = True) -> None:
        self.score = str(score)
        self.largest = bool(largest)

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
    ) -> Selection:
        """Pick the ``budget`` best-scored unlabeled rows; see :class:`Selector`."""
        inp = validate_inputs(vectors, budget, labeled, keep_float16=True)
        u = get_score(scores, self.score, inp.vectors.shape[0], who=self.name)
        picks = rank_candidates(u, inp.candidates, largest=self.largest)[: inp.budget]
        return Selection(
            indices=picks.astype(np.int64),
            gains=u[picks].astype(np.float64),
            info={"score": self.score, "largest": self.largest},
        )


class ClassQuota(Selector):
    """Per-class round-robin: the best remaining frame for each class in turn (MagLev).

    Parameters
    ----------
    score : str
        Prefix of the per-class columns: ``{score}__{class}`` (e.g. ``entropy_max__Car``).
    classes : sequence of str, optional
        Classes to visit, in this order; default every ``{score}__*`` column, sorted.
    quotas : mapping of str to float, optional
        Target share of picks per class. The next class is the one furthest below its share
        (ties: order of ``classes``). Default: equal shares, i.e. plain round-robin.

    Notes
    -----
    A class whose remaining best score is 0 (no frame has it) is exhausted and skipped. When
    every class is exhausted, the remaining picks go by the per-class scores summed over classes
    (ties: lowest row), counted in ``info["fallbacks"]``. Gains are the per-class score of each
    pick. O(C N log N) time for the per-class rankings, O(C N) memory.
    """

    name = "class_quota"
    #: only the scores are read: a float16 pool is taken as it is.
    accepts_float16 = True
    needs_scores = True

    def __init__(
        self,
        score: str = "entropy_max",
        classes: Optional[Sequence[str]] = None,
        quotas: Optional[Mapping[str, float]] = None,
    ) -> None:
        self.score = str(score)
        self.classes = None if classes is None else [str(c) for c in classes]
        if quotas is not None:
            bad = {k: v for k, v in quotas.items() if not (float(v) >= 0)}
            if bad or sum(float(v) for v in quotas.values()) <= 0:
                raise InvalidInputError(
                    f"quotas must be non-negative with a positive total; got {dict(quotas)!r}"
                )
        self.quotas = None if quotas is None else {str(k): float(v) for k, v in quotas.items()}

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
    ) -> Selection:
        """Pick ``budget`` rows class by class; see :class:`Selector`."""
        inp = validate_inputs(vectors, budget, labeled, keep_float16=True)
        n = inp.vectors.shape[0]
        classes = self.classes
        if classes is None and self.quotas is not None:
            classes = list(self.quotas)
        names, table = per_class_scores(scores, self.score, n, classes=classes, who=self.name)
        if self.quotas is None:
            share = np.full(len(names), 1.0 / len(names))
        else:
            missing = [c for c in names if c not in self.quotas]
            if missing:
                raise InvalidInputError(f"quotas give no share for classes {missing}")
            share = np.array([self.quotas[c] for c in names], dtype=np.float64)
            share /= share.sum()
        rankings = [rank_candidates(table[j], inp.candidates) for j in range(len(names))]
        cursor = np.zeros(len(names), dtype=np.int64)
        taken = np.zeros(len(names), dtype=np.int64)
        exhausted = share <= 0
        available = ~inp.labeled
        picks: list[int] = []
        gains: list[float] = []
        per_class: dict[str, int] = {c: 0 for c in names}
        while len(picks) < inp.budget and not exhausted.all():
            deficit = share * (len(picks) + 1) - taken
            deficit[exhausted] = -np.inf
            j = int(np.argmax(deficit))
            rank = rankings[j]
            while cursor[j] < rank.size and not available[rank[cursor[j]]]:
                cursor[j] += 1
            if cursor[j] >= rank.size or not table[j, rank[cursor[j]]] > 0:
                exhausted[j] = True
                continue
            row = int(rank[cursor[j]])
            available[row] = False
            picks.append(row)
            gains.append(float(table[j, row]))
            taken[j] += 1
            per_class[names[j]] += 1
        fallbacks = inp.budget - len(picks)
        if fallbacks:
            rest = rank_candidates(table.sum(axis=0), np.flatnonzero(available))[:fallbacks]
            picks.extend(int(r) for r in rest)
            gains.extend([0.0] * rest.size)
        return Selection(
            indices=np.asarray(picks, np.int64),
            gains=np.asarray(gains, np.float64),
            info={"classes": names, "per_class": per_class, "fallbacks": int(fallbacks)},
        )
