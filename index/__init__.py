"""The store: versioned LanceDB tables (:class:`Store`) and FAISS vector indexes (:class:`VectorIndex`).

This package knows nothing of ``embedders`` or ``curate``. ``VectorIndex`` is imported lazily so
that using the store alone does not load FAISS.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from index.errors import (
    DeviceError,
    FilterError,
    NotFoundError,
    SchemaError,
    StoreError,
    TableNotFoundError,
    VersionError,
)
from index.store import Store

if TYPE_CHECKING:
    from index.vectors import VectorIndex

logger = logging.getLogger(__name__)

__all__ = [
    "DeviceError",
    "FilterError",
    "NotFoundError",
    "SchemaError",
    "Store",
    "StoreError",
    "TableNotFoundError",
    "VectorIndex",
    "VersionError",
]


def __getattr__(name: str) -> Any:
    if name == "VectorIndex":
        from index.vectors import VectorIndex

        return VectorIndex
    raise AttributeError(f"module 'index' has no attribute {name!r}")
