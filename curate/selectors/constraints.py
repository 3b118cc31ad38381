"""Hard constraints around any strategy: at most M frames per group, and a budget in cost units.

:class:`Constrained` (``"constrained"``) runs an inner strategy and accepts its picks in order
while they respect the constraints. At the first pick that would break one (its group is full or
its cost exceeds what is left), that pick and everything after it are discarded (greedy picks
after it assumed it was taken), rows that can no longer be taken (full groups, rows costlier
than the remaining budget) leave the pool, and the inner strategy is run again with the accepted
picks as labeled rows. For the greedy strategies (k-center, ProbCover, top-k, their hybrids)
treating accepted picks as labeled is exactly "continue the greedy run", so the result is the
constrained greedy selection. (TypiClust and the purity rule of ``probcover`` with
``delta="auto"`` recompute their clusters on each rerun, so for them it is an approximation.)

Budgets: ``budget_unit="frames"`` (default) counts frames; ``"cost"`` makes ``budget`` the total
cost (e.g. predicted boxes to annotate) and picks frames until no remaining frame fits. Costs come
from the ``costs=`` keyword, or else from the score column ``cost_score`` (``box_count`` of
:func:`curate.scoring.frame_scores` by default).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import numpy as np

from curate.errors import BudgetError, InvalidInputError
from curate.selectors._scores import check_row_array, get_score
from curate.selectors.base import ScoresLike, Selection, Selector, validate_inputs

__all__ = ["Constrained"]

logger = logging.getLogger(__name__)

_UNITS = ("frames", "cost")


def _subset_scores(scores: ScoresLike, rows: np.ndarray) -> ScoresLike:
    if scores is None:
        return None
    if isinstance(scores, Mapping):
        return {k: np.asarray(v)[rows] for k, v in scores.items()}
    return np.asarray(scores)[rows]


class Constrained(Selector):
    """Run a strategy under per-group caps and / or a cost budget.

    Parameters
    ----------
    inner : str
        Registered name of the inner strategy (not ``"constrained"``).
    inner_params : mapping, optional
        Its constructor parameters.
    max_per_group : int, optional
        At most this many selected frames per group (``groups=`` in ``select``). Labeled rows do
        not count against the cap.
    budget_unit : {"frames", "cost"}
        What ``budget`` counts.
    cost_score : str
        Score column holding the per-row cost when ``costs=`` is not given.

    Notes
    -----
    ``info``: ``reruns`` (inner runs), ``cost`` (total cost of the picks, when costs are known),
    ``full_groups`` and the last inner run's ``inner`` info. Worst case the inner strategy runs
    once per constraint hit (bounded by the number of groups plus the number of cost cut-offs);
    usually once or a few times.
    """

    name = "constrained"

    def __init__(
        self,
        inner: str = "kcenter",
        inner_params: Optional[Mapping[str, Any]] = None,
        max_per_group: Optional[int] = None,
        budget_unit: str = "frames",
        cost_score: str = "box_count",
    ) -> None:
        from curate.selectors.registry import SELECTORS, create_selector

        if inner == self.name or inner not in SELECTORS:
            valid = ", ".join(sorted(k for k in SELECTORS if k != self.name))
            raise InvalidInputError(f"inner strategy {inner!r} is not valid; choose one of {valid}")
        if max_per_group is not None and int(max_per_group) < 1:
            raise InvalidInputError(f"max_per_group must be >= 1; got {max_per_group!r}")
        if budget_unit not in _UNITS:
            raise InvalidInputError(f"budget_unit must be one of {_UNITS}; got {budget_unit!r}")
        self.inner = inner
        self.inner_params = dict(inner_params or {})
        self.max_per_group = None if max_per_group is None else int(max_per_group)
        self.budget_unit = budget_unit
        self.cost_score = str(cost_score)
        self._inner = create_selector(inner, **self.inner_params)

    @property
    def needs_scores(self) -> bool:  # type: ignore[override]
        """The inner strategy's need for scores."""
        return bool(self._inner.needs_scores)

    @property
    def needs_groups(self) -> bool:  # type: ignore[override]
        """Groups are needed when ``max_per_group`` is set."""
        return self.max_per_group is not None

    @property
    def needs_costs(self) -> bool:  # type: ignore[override]
        """Costs are needed for ``budget_unit="cost"`` (or taken from ``cost_score``)."""
        return self.budget_unit == "cost"

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
        groups: Any = None,
        costs: Any = None,
    ) -> Selection:
        """Pick rows with the inner strategy under the constraints; see :class:`Selector`.

        Parameters
        ----------
        groups : array-like, optional
            One hashable key per row (drive, scene); required with ``max_per_group``.
        costs : array-like, optional
            Non-negative cost per row; required (or ``cost_score`` in ``scores``) for
            ``budget_unit="cost"``.
        """
        by_cost = self.budget_unit == "cost"
        inp = validate_inputs(vectors, budget, labeled, allow_partial_budget=by_cost)
        x = inp.vectors
        n = x.shape[0]
        group_ids = None
        if self.max_per_group is not None:
            if groups is None:
                raise InvalidInputError(
                    "max_per_group is set: pass groups=... (one group key, e.g. the drive, per row)"
                )
            g = np.asarray(groups)
            if g.ndim != 1 or g.shape[0] != n:
                raise InvalidInputError(
                    f"groups must have one key per row of vectors ({n}); got shape {g.shape}"
                )
            group_ids = np.unique(g, return_inverse=True)[1].ravel()
        cost = None
        if costs is not None:
            cost = check_row_array(costs, n, "costs")
        elif by_cost:
            cost = get_score(scores, self.cost_score, n, who=self.name)
        if cost is not None and (cost < 0).any():
            raise InvalidInputError(f"costs must be non-negative; row {int(np.argmin(cost))} is {cost.min()}")
        if by_cost:
            frame_cap = inp.candidates.size
            cost_left = float(budget)
            if not cost_left >= 0:
                raise BudgetError(f"a cost budget must be >= 0; got {budget!r}")
        else:
            frame_cap = inp.budget
            cost_left = np.inf
        taken_per_group = (
            np.zeros(int(group_ids.max()) + 1, dtype=np.int64) if group_ids is not None else None
        )
        lab = inp.labeled.copy()
        blocked = np.zeros(n, dtype=bool)
        picks: list[int] = []
        gains: list[float] = []
        reruns = 0
        inner_info: dict[str, Any] = {}
        while len(picks) < frame_cap:
            if taken_per_group is not None:
                blocked |= taken_per_group[group_ids] >= self.max_per_group
            if cost is not None and by_cost:
                blocked |= cost > cost_left
            cand = ~lab & ~blocked
            n_cand = int(cand.sum())
            if n_cand == 0:
                break
            need = min(frame_cap - len(picks), n_cand)
            if by_cost:
                free = int((cand & (cost == 0)).sum())
                positive = cost[cand & (cost > 0)]
                fits = int(cost_left // positive.min()) if positive.size else 0
                need = min(n_cand, free + fits)
                if need == 0:
                    break
            rows = np.flatnonzero(lab | cand)
            sub = self._inner.select(
                x[rows], need, labeled=lab[rows], scores=_subset_scores(scores, rows), seed=seed
            )
            reruns += 1
            inner_info = sub.info
            accepted_any = False
            for r, gain in zip(rows[sub.indices], sub.gains):
                r = int(r)
                if taken_per_group is not None and taken_per_group[group_ids[r]] >= self.max_per_group:
                    break
                if by_cost and cost[r] > cost_left:
                    break
                picks.append(r)
                gains.append(float(gain))
                lab[r] = True
                accepted_any = True
                if taken_per_group is not None:
                    taken_per_group[group_ids[r]] += 1
                if by_cost:
                    cost_left -= float(cost[r])
                if len(picks) >= frame_cap:
                    break
            if not accepted_any or len(sub.indices) == 0:
                break  # cannot happen with a contract-abiding inner strategy; avoid looping
        info: dict[str, Any] = {"reruns": reruns, "inner": inner_info}
        if cost is not None:
            info["cost"] = float(cost[np.asarray(picks, dtype=np.int64)].sum()) if picks else 0.0
        if taken_per_group is not None:
            info["full_groups"] = int((taken_per_group >= self.max_per_group).sum())
        if not by_cost and len(picks) < inp.budget:
            info["short_by"] = inp.budget - len(picks)
            logger.warning(
                "constraints allow only %d of the %d requested frames", len(picks), inp.budget
            )
        return Selection(
            indices=np.asarray(picks, np.int64), gains=np.asarray(gains, np.float64), info=info
        )
