"""The selector registry: strategy name -> selector class.

Names are for the edges (CLI, HTTP, config files); :func:`create_selector` maps one to an object.
:mod:`curate.selectors` registers every built-in strategy at import; composite selectors
(:class:`~curate.selectors.constraints.Constrained`, :class:`~curate.selectors.sharded.Sharded`)
build their inner strategy through this module, which imports no selector module, so the
selector modules and the package never import each other.
"""

from __future__ import annotations

import logging
from typing import Any

from curate.errors import InvalidInputError, NotFoundError
from curate.selectors.base import Selector

__all__ = ["SELECTORS", "register", "list_selectors", "create_selector"]

logger = logging.getLogger(__name__)

#: Registry: strategy name -> selector class (filled by :func:`register`).
SELECTORS: dict[str, type[Selector]] = {}


def register(cls: type[Selector]) -> type[Selector]:
    """Register a selector class under its ``name`` (usable as a class decorator).

    Raises
    ------
    InvalidInputError
        The class has no name, or another class already holds it.
    """
    name = getattr(cls, "name", "")
    if not name:
        raise InvalidInputError(f"selector class {cls.__name__} has no name to register it under")
    if SELECTORS.get(name, cls) is not cls:
        raise InvalidInputError(
            f"strategy name {name!r} is taken by {SELECTORS[name].__name__}; choose another name"
        )
    SELECTORS[name] = cls
    return cls


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
