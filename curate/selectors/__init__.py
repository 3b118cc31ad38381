"""Selection strategies behind one contract (see :mod:`curate.selectors.base`).

Inside the code, pass selector objects. Names are only for the edges (CLI, HTTP, config files):
:func:`create_selector` maps a name to an object and lists the valid names when it does not know
one.
"""

from __future__ import annotations

import logging

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
from curate.selectors.registry import SELECTORS, create_selector, list_selectors, register_selector
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
    "register_selector",
    "validate_inputs",
]

logger = logging.getLogger(__name__)

for _cls in (
    Random,
    KCenterGreedy,
    ProbCover,
    UncertaintyProbCover,
    TypiClust,
    MaxHerding,
    UHerding,
    TopK,
    ClassQuota,
    UncertaintyKCenter,
    UncertaintyPrefilter,
    ClassBalance,
    QuerySimilarity,
    Composite,
    Constrained,
    Sharded,
    MGRAL,
):
    register_selector(_cls)
