"""The selector registry: strategy name -> selector class.

Names are for the edges (CLI, HTTP, config files); :func:`create_selector` maps one to an object.
:mod:`curate.selectors` registers every built-in strategy at import; composite selectors
(:class:`~curate.selectors.constraints.Constrained`, :class:`~curate.selectors.sharded.Sharded`)
build their inner strategy through this module, which imports no selector module, so the
selector modules and the package never import each other.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from curate.errors import InvalidInputError, NotFoundError
from curate.selectors.base import Selector

__all__ = ["SELECTORS", "register_selector", "list_selectors", "create_selector"]

logger = logging.getLogger(__name__)

#: Registry: strategy name -> selector class (filled by :func:`register_selector`).
SELECTORS: dict[str, type[Selector]] = {}


def register_selector(cls: Optional[type[Selector]] = None, *, name: Optional[str] = None) -> Any:
    """Register a selector class under ``name`` (default: its ``name`` attribute).

    Usable as a call (``register_selector(MySelector)``) or a class decorator (``@register_selector``
    or ``@register_selector(name="mine")``): the same style as
    :func:`embedders.register_embedder` and :func:`curate.sources.register_source`, one
    registration makes the strategy usable in Python, the CLI, HTTP and loop configs.

    Raises
    ------
    InvalidInputError
        The class has no name, or another class already holds it.
    """
    if cls is None:
        return lambda target: register_selector(target, name=name)
    key = name or getattr(cls, "name", "")
    if not key:
        raise InvalidInputError(f"selector class {cls.__name__} has no name to register it under")
    if SELECTORS.get(key, cls) is not cls:
        raise InvalidInputError(
            f"strategy name {key!r} is taken by {SELECTORS[key].__name__}; choose another name"
        )
    SELECTORS[key] = cls
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
