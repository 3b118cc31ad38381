"""Uniform random selection: the baseline every other strategy must beat."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from curate.selectors.base import ScoresLike, Selection, Selector, validate_inputs

__all__ = ["Random"]

logger = logging.getLogger(__name__)


class Random(Selector):
    """Pick ``budget`` unlabeled rows uniformly at random without replacement.

    Deterministic for a seed: the same candidates, budget and seed give the same picks.
    O(N) time and memory. Gains are all 1 (every pick is worth one frame).
    """

    name = "random"
    #: the vectors are not read (only counted): a float16 pool is taken as it is.
    accepts_float16 = True

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
    ) -> Selection:
        """Pick ``budget`` unlabeled rows uniformly at random; see :class:`Selector`."""
        inp = validate_inputs(vectors, budget, labeled, keep_float16=True)
        rng = np.random.default_rng(seed)
        picks = rng.choice(inp.candidates, size=inp.budget, replace=False)
        return Selection(
            indices=picks.astype(np.int64),
            gains=np.ones(inp.budget, dtype=np.float64),
            info={"candidates": int(inp.candidates.size)},
        )
