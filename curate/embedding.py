"""Glue between the workspace and the ``embedders`` package: build embedders, describe them."""

from __future__ import annotations

import json
import logging
from typing import Any

from curate.errors import InvalidInputError, NotFoundError

__all__ = ["build_embedder", "embedder_metadata", "list_models"]

logger = logging.getLogger(__name__)


def list_models() -> list[str]:
    """Registry names of the available embedders."""
    from embedders import list_embedders

    return list_embedders()


def build_embedder(model: Any, **config: Any) -> Any:
    """Return an embedder object from a registry name (with ``config``) or pass one through.

    Raises
    ------
    NotFoundError
        Unknown name; the message lists the valid ones.
    InvalidInputError
        Bad configuration.
    """
    from embedders import EmbedderError, create_embedder

    if not isinstance(model, str):
        if config:
            raise InvalidInputError("configuration is only taken with an embedder name")
        return model
    if model not in list_models():
        raise NotFoundError(f"unknown embedder {model!r}; valid embedders: {', '.join(list_models())}")
    try:
        return create_embedder(model, **config)
    except EmbedderError as exc:
        raise InvalidInputError(str(exc)) from exc


def embedder_metadata(emb: Any) -> dict[str, str]:
    """Schema metadata written into an embedding table: name, config, dim, weights checksum."""
    return {
        "embedder": str(emb.name),
        "config": json.dumps(emb.config(), sort_keys=True, default=str),
        "dim": str(int(emb.dim)),
        "modality": str(getattr(emb, "modality", "points")),
        "weights_sha256": str(emb.weights_sha256()),
    }
