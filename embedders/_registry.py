"""Name -> entry function registry: :func:`create_embedder` and :func:`list_embedders`.

Adding an embedder is one entry function (``def my_model(**options) -> Embedder``) and one line
in :data:`_REGISTRY`. Names are used only at the edges (CLI, HTTP, config files); inside the code
pass :class:`~embedders.base.Embedder` objects.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, Optional

from embedders.base import Embedder
from embedders.errors import EmbedderError
from embedders.models.bev import bev_hist
from embedders.models.image import effnet_lite0
from embedders.models.image_ssl import image_ssl
from embedders.models.recon import recon_base, recon_small, recon_tiny

__all__ = ["create_embedder", "list_embedders", "register_embedder", "EmbedderFactory"]

logger = logging.getLogger(__name__)

EmbedderFactory = Callable[..., Embedder]

_REGISTRY: dict[str, EmbedderFactory] = {
    "bev-hist": bev_hist,
    "effnet-lite0": effnet_lite0,
    "image-ssl": image_ssl,
    "recon-base": recon_base,
    "recon-small": recon_small,
    "recon-tiny": recon_tiny,
}


def list_embedders() -> list[str]:
    """Return the sorted names of all registered embedders."""
    return sorted(_REGISTRY)


def register_embedder(
    name: str, factory: Optional[EmbedderFactory] = None, *, replace: bool = False
) -> Any:
    """Register ``factory`` under ``name``; with no factory, a decorator that registers its target.

    The same style as :func:`curate.selectors.register_selector` and
    :func:`curate.sources.register_source`: one registration (a call, or a decorator on the
    definition) makes a name usable everywhere (Python, CLI, HTTP, configs).

    Parameters
    ----------
    name : str
        Registry name.
    factory : callable, optional
        ``factory(**options) -> Embedder``. Omit it to use ``@register_embedder(name)``.
    replace : bool, default False
        Allow overwriting an existing name.

    Returns
    -------
    callable
        ``factory`` (or the decorator when it is omitted).

    Raises
    ------
    EmbedderError
        ``factory`` is not callable, or ``name`` is taken and ``replace`` is false.
    """
    if factory is None:
        return lambda target: register_embedder(name, target, replace=replace)
    if not callable(factory):
        raise EmbedderError(f"embedder factory for {name!r} must be callable")
    if name in _REGISTRY and _REGISTRY[name] is not factory and not replace:
        raise EmbedderError(
            f"embedder {name!r} is already registered; pass replace=True to override"
        )
    _REGISTRY[name] = factory
    return factory


def _check_options(name: str, factory: EmbedderFactory, options: dict[str, Any]) -> None:
    """Reject options the factory's signature cannot take (``**options`` factories check)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = [p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise EmbedderError(f"{name}: unknown option(s) {unknown}; valid options: {accepted}")


def create_embedder(name: str, **options: Any) -> Embedder:
    """Build a registered embedder.

    Parameters
    ----------
    name : str
        One of :func:`list_embedders`.
    **options
        Embedder options (``create_embedder(e.name, **e.config())`` rebuilds ``e``).

    Returns
    -------
    Embedder

    Raises
    ------
    EmbedderError
        Unknown name (the message lists the valid names), unknown option (named), or bad value.
    """
    try:
        factory = _REGISTRY[name]
    except (KeyError, TypeError):
        raise EmbedderError(
            f"unknown embedder {name!r}; valid names: {', '.join(list_embedders())}"
        ) from None
    _check_options(name, factory, options)
    embedder = factory(**options)
    logger.debug("created embedder %s (dim %d)", name, embedder.dim)
    return embedder
