"""Error types raised by the curate service.

Every error a user can trigger with bad input derives from :class:`CurateError` and carries a
message that says what was wrong, where, and what to do about it. The CLI prints these messages
without a traceback.
"""

from __future__ import annotations

__all__ = [
    "CurateError",
    "InvalidInputError",
    "NotFoundError",
    "CorruptDataError",
    "BudgetError",
]


class CurateError(Exception):
    """Base class of all user-facing curate errors."""


class InvalidInputError(CurateError, ValueError):
    """An argument, vector, filter or configuration value is malformed."""


class NotFoundError(CurateError, KeyError):
    """A named thing (frame id, run id, table, embedder, strategy) does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


class CorruptDataError(CurateError, ValueError):
    """A file on disk is truncated, malformed or otherwise unreadable."""


class BudgetError(InvalidInputError):
    """A selection budget cannot be met (larger than the pool, negative, empty pool)."""
