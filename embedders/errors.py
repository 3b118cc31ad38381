"""Error types raised by the :mod:`embedders` package.

Every error a caller can trigger with bad input (an unknown embedder name, a bad option, a
malformed point cloud, an incompatible checkpoint) is an :class:`EmbedderError`. It subclasses
:class:`ValueError` so generic callers can catch it without importing this package, and its
message says what was wrong, where, and what to do about it.
"""

from __future__ import annotations

import logging

__all__ = ["EmbedderError", "CheckpointError"]

logger = logging.getLogger(__name__)


class EmbedderError(ValueError):
    """Bad input to an embedder: unknown name or option, malformed cloud, wrong device."""


class CheckpointError(EmbedderError):
    """A checkpoint file or state dict cannot be loaded into a model (missing key, wrong shape)."""
