"""Exceptions raised by the :mod:`index` package.

Every message is written for a person: it says what went wrong, where (table, column, id,
version, filter) and what to do about it. Each class also derives from the closest built-in
exception (``ValueError``, ``KeyError``, ``LookupError``, ``RuntimeError``) so callers that do not
know this package can still catch them generically.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

__all__ = [
    "DeviceError",
    "FilterError",
    "NotFoundError",
    "SchemaError",
    "StoreError",
    "TableNotFoundError",
    "VersionError",
]


class StoreError(Exception):
    """Base class of all errors raised by :mod:`index`."""


class _PlainKeyMessage:
    """Mixin that stops ``KeyError`` from wrapping the message in quotes when printed."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FilterError(StoreError, ValueError):
    """A ``where`` filter is not valid LanceDB SQL or names an unknown column.

    Parameters
    ----------
    where : str
        The filter text as given by the caller.
    table : str
        The table the filter was applied to.
    reason : str
        The parser's (or planner's) complaint.
    """

    def __init__(self, where: str, table: str, reason: str) -> None:
        self.where = where
        self.table = table
        self.reason = reason
        super().__init__(
            f"invalid where-filter {where!r} on table {table!r}: {reason}. "
            "Filters are SQL expressions over the table's columns, for example "
            "\"weather = 'rain' AND frame_index < 10\" (strings in single quotes, "
            "combine with AND / OR, lists with IN ('a', 'b'))."
        )


class TableNotFoundError(_PlainKeyMessage, StoreError, KeyError):
    """A table does not exist in the workspace.

    Parameters
    ----------
    table : str
        The requested table.
    path : str
        The workspace directory.
    existing : list of str
        The tables that do exist.
    """

    def __init__(self, table: str, path: str, existing: list[str]) -> None:
        self.table = table
        self.existing = list(existing)
        listing = ", ".join(repr(name) for name in existing) if existing else "none"
        super().__init__(
            f"table {table!r} does not exist in workspace {path}; existing tables: {listing}. "
            "Check the name, or write rows first (upsert/append/write_vectors create the table)."
        )


class NotFoundError(_PlainKeyMessage, StoreError, KeyError):
    """Some requested keys (ids) are not where they were looked up.

    Parameters
    ----------
    missing : list
        All missing keys; the message lists at most five of them.
    where : str
        What was searched, e.g. ``"table 'samples'"`` or ``"the vector index"``.
    key : str, default "id"
        The key column.
    hint : str, optional
        Advice appended to the message.
    """

    def __init__(self, missing: list, *, where: str, key: str = "id", hint: str = "") -> None:
        self.missing = list(missing)
        shown = ", ".join(repr(m) for m in self.missing[:5])
        more = f" (and {len(self.missing) - 5} more)" if len(self.missing) > 5 else ""
        message = f"{len(self.missing)} {key} value(s) not found in {where}: {shown}{more}."
        if hint:
            message = f"{message} {hint}"
        super().__init__(message)


class SchemaError(StoreError, ValueError):
    """Rows or vectors do not fit a table: wrong columns, types, dimension, metadata, values."""


class VersionError(StoreError, LookupError):
    """A requested table version does not exist (never written, or cleaned up)."""


class DeviceError(StoreError, RuntimeError):
    """A requested compute device (e.g. ``"cuda"`` for FAISS) is not available."""
