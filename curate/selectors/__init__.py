"""Selection strategies behind one contract (see :mod:`curate.selectors.base`).

Inside the code, pass selector objects. Names are only for the edges (CLI, HTTP, config files):
:func:`create_selector` maps a name to an object and lists the valid names when it does not know
one.
"""

from __future__ import annotations

import logging
from typing import Any

from curate.errors import InvalidInputError, NotFoundError
from curate.selectors.base import Selection, Selector, validate_inputs
from curate.selectors.balance import ClassBalance, QuerySimilarity
from curate.selectors.compose import Composite
from curate.selectors.constraints import Constrained
from curate.selectors.hybrid import UncertaintyKCenter, UncertaintyPrefilter
from curate.selectors.herding import MaxHerding, UHerding
from curate.selectors.kcenter import KCenterGreedy
from curate.selectors.mgral import MGRAL
from curate.selectors.probcover import ProbCover, UncertaintyProbCover
from curate.selectors.random import Random
from curate.selectors.sharded import Sharded
from curate.selectors.typiclust import TypiClust
from curate.selectors.uncertainty import ClassQuota, TopK

__all__ = [
    "Selection",
    "Selector",
    "Random",
    "KCenterGreedy",
    "ProbCover",
    "UncertaintyProbCover",
    "TypiClust",
    "MaxHerding",
    "UHerding",
    "TopK",
    "ClassQuota",
    "UncertaintyKCenter",
    "UncertaintyPrefilter",
    "ClassBalance",
    "QuerySimilarity",
    "Composite",
    "Constrained",
    "Sharded",
    "MGRAL",
    "SELECTORS",
    "create_selector",
    "list_selectors",
    "validate_inputs",
]

logger = logging.getLogger(__name__)

#: Registry: strategy name -> selector class.
SELECTORS: dict[str, type[Selector]] = {
    Random.name: Random,
    KCenterGreedy.name: KCenterGreedy,
    ProbCover.name: ProbCover,
    UncertaintyProbCover.name: UncertaintyProbCover,
    TypiClust.name: TypiClust,
    MaxHerding.name: MaxHerding,
    UHerding.name: UHerding,
    TopK.name: TopK,
    ClassQuota.name: ClassQuota,
    UncertaintyKCenter.name: UncertaintyKCenter,
    UncertaintyPrefilter.name: UncertaintyPrefilter,
    ClassBalance.name: ClassBalance,
    QuerySimilarity.name: QuerySimilarity,
    Composite.name: Composite,
    Constrained.name: Constrained,
    Sharded.name: Sharded,
    MGRAL.name: MGRAL,
}


def list_selectors() -> list[str]:
    """Return the registered strategy names, sorted."""
    return sorted(SELECTORS)


def create_selector(name: str, **params: Any) -> Selector:
    """Build a selector from its registered name and constructor parameters.

    Raises
    ------
    NotFoundError
        Unknown name; the message lists the valid ones.
    InvalidInputError
        A parameter the strategy does not take.
    """
    try:
        cls = SELECTORS[name]
    except KeyError:
        raise NotFoundError(
            f"unknown strategy {name!r}; valid strategies: {', '.join(list_selectors())}"
        ) from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise InvalidInputError(f"bad parameters for strategy {name!r}: {exc}") from None
