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
    "ResourceLimitError",
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


class ResourceLimitError(InvalidInputError):
    """A job would need more memory than the machine has; the message says how to split it.

    Raised before the work that would not fit (for example ProbCover's ball graph on a pool too
    large for one process), so the caller gets advice instead of the kernel's out-of-memory
    killer. Nothing was written when it is raised.
    """
