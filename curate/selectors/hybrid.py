"""Hybrids of diversity and uncertainty.

* :class:`UncertaintyKCenter` (``"kcenter_weighted"``): greedy k-center whose gain is
  ``min distance to the centers * u ** beta``.
* :class:`UncertaintyPrefilter` (``"prefilter"``, CRB-style): keep the ``factor * budget`` most
  uncertain candidates, then run k-center or ProbCover among them (labeled rows stay as initial
  centers / covered balls).
* :class:`~curate.selectors.probcover.UncertaintyProbCover` (``"probcover_weighted"``): a ball is
  worth the summed uncertainty of its uncovered members, with ProbCover's incremental updates.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import numpy as np

from curate.errors import InvalidInputError
from curate.selectors._scores import get_score, get_uncertainty
from curate.selectors.base import ScoresLike, Selection, Selector, validate_inputs
from curate.selectors.kcenter import KCenterGreedy, greedy_kcenter, resolve_backend
from curate.selectors.probcover import ProbCover, UncertaintyProbCover
from curate.selectors.uncertainty import rank_candidates

__all__ = ["UncertaintyKCenter", "UncertaintyPrefilter", "UncertaintyProbCover"]

logger = logging.getLogger(__name__)

_INNER: dict[str, type[Selector]] = {KCenterGreedy.name: KCenterGreedy, ProbCover.name: ProbCover}


class UncertaintyKCenter(Selector):
    """Uncertainty-weighted greedy k-center: maximise ``min distance * u ** beta``.

    Labeled rows are the initial centers; with none, the first pick is the most uncertain
    candidate (lowest row on ties; gain ``inf``). ``beta = 0`` is plain k-center after that first
    pick.

    Parameters
    ----------
    beta : float
        Exponent of the uncertainty weight (``>= 0``).
    score : str, optional
        Score column when ``scores`` is a mapping.
    device, backend : str
        As :class:`~curate.selectors.kcenter.KCenterGreedy`.

    Notes
    -----
    Same cost as k-center: O(budget*N*d) time, O(N) memory beyond the vectors.
    """

    name = "kcenter_weighted"
    needs_scores = True

    def __init__(
        self,
        beta: float = 1.0,
        score: Optional[str] = None,
        device: str = "auto",
        backend: str = "auto",
    ) -> None:
        if not float(beta) >= 0:
            raise InvalidInputError(f"beta must be >= 0; got {beta!r}")
        self.beta = float(beta)
        self.score = score
        self.device = device
        self.backend = backend

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
    ) -> Selection:
        """Pick ``budget`` rows by weighted farthest-first traversal; see :class:`Selector`."""
        inp = validate_inputs(vectors, budget, labeled)
        u = get_uncertainty(scores, self.score, inp.vectors.shape[0], who=self.name)
        backend, device = resolve_backend(self.backend, self.device)
        weights = u**self.beta
        first = None
        if not inp.labeled.any() and inp.budget > 0:
            first = int(rank_candidates(u, inp.candidates)[0])
        picks, gains, radius, _ = greedy_kcenter(
            inp.vectors,
            inp.labeled,
            inp.budget,
            first_pick=first,
            weights=weights,
            backend=backend,
            device=device,
        )
        return Selection(
            indices=picks,
            gains=gains,
            info={"coverage_radius": radius, "beta": self.beta, "backend": backend},
        )


class UncertaintyPrefilter(Selector):
    """Keep the ``factor * budget`` most uncertain candidates, then diversify among them.

    Parameters
    ----------
    factor : float
        Prefilter size as a multiple of the budget (``>= 1``); the pool is capped at the number
        of candidates.
    score : str, optional
        Score column when ``scores`` is a mapping.
    inner : str
        ``"kcenter"`` or ``"probcover"``.
    inner_params : mapping, optional
        Constructor parameters of the inner strategy.

    Notes
    -----
    Labeled rows are passed to the inner strategy with the prefiltered candidates (as centers or
    covered balls). The inner strategy's ``info`` is returned under ``info["inner"]``. Cost: the
    inner strategy on ``M = labeled + factor * budget`` rows plus O(N log N) for the ranking.
    """

    name = "prefilter"
    needs_scores = True

    def __init__(
        self,
        factor: float = 10.0,
        score: Optional[str] = None,
        inner: str = "kcenter",
        inner_params: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if not float(factor) >= 1.0:
            raise InvalidInputError(f"factor must be >= 1; got {factor!r}")
        if inner not in _INNER:
            raise InvalidInputError(
                f"inner strategy must be one of {', '.join(sorted(_INNER))}; got {inner!r}"
            )
        self.factor = float(factor)
        self.score = score
        self.inner = inner
        self.inner_params = dict(inner_params or {})
        try:
            self._inner = _INNER[inner](**self.inner_params)
        except TypeError as exc:
            raise InvalidInputError(f"bad inner_params for {inner!r}: {exc}") from None

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
    ) -> Selection:
        """Prefilter by uncertainty, then run the inner strategy; see :class:`Selector`."""
        inp = validate_inputs(vectors, budget, labeled)
        u = get_score(scores, self.score, inp.vectors.shape[0], who=self.name)
        if inp.budget == 0:
            return Selection(np.empty(0, np.int64), np.empty(0), {"prefiltered": 0, "inner": {}})
        keep = int(min(inp.candidates.size, max(inp.budget, int(np.ceil(self.factor * inp.budget)))))
        top = rank_candidates(u, inp.candidates)[:keep]
        rows = np.sort(np.concatenate([np.flatnonzero(inp.labeled), top]))
        sub = self._inner.select(
            inp.vectors[rows], inp.budget, labeled=inp.labeled[rows], seed=seed
        )
        return Selection(
            indices=rows[sub.indices].astype(np.int64),
            gains=sub.gains,
            info={"prefiltered": int(keep), "inner": sub.info},
        )
