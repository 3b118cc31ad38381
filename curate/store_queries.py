"""Queries on a workspace :class:`~index.store.Store` shared by the workspace and its helpers.

:class:`curate.workspace.Workspace` and the modules it delegates to (search, label import,
pretraining, the detector loop, the server) all need the same few checks and reads: "does this
workspace have frames / this embedding" with an error that says what to run, the next run id, the
stored boxes of some frames. They live here, over a ``Store``, so that no helper has to import the
workspace or call its private methods (the import graph of ``curate`` stays acyclic:
``workspace -> helpers -> store_queries``).
"""

from __future__ import annotations

import logging
from typing import Sequence

import pyarrow as pa

from curate import _tables as T
from curate.errors import InvalidInputError, NotFoundError
from index.store import Store

__all__ = [
    "require_samples",
    "require_embedding",
    "check_embedding_name",
    "embedding_names",
    "next_run_id",
    "read_boxes",
    "sql_str",
    "id_in",
]

logger = logging.getLogger(__name__)

#: Ids per ``IN (...)`` filter when reading rows of many frames.
ID_CHUNK = 2000


def sql_str(value: str) -> str:
    """``value`` as a SQL string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def id_in(ids: Sequence[str], column: str = "id") -> str:
    """A ``column IN (...)`` filter over ``ids`` (callers chunk long lists by :data:`ID_CHUNK`)."""
    return f"{column} IN (" + ", ".join(sql_str(i) for i in ids) + ")"


def require_samples(store: Store) -> None:
    """Raise :class:`NotFoundError` when the workspace has no frames yet.

    Raises
    ------
    NotFoundError
        No ``samples`` table; the message says to ingest a source first.
    """
    if not store.has_table(T.SAMPLES):
        raise NotFoundError(
            f"workspace {store.path} has no frames yet; ingest a source first "
            "(curate ingest kitti DIR)"
        )


def embedding_names(store: Store) -> list[str]:
    """Names of the user embeddings of the workspace, sorted (internal caches left out).

    Tables named with :data:`curate._tables.INTERNAL_EMBEDDING_PREFIX` (the pretraining teacher
    features) are caches of the pretraining job, not embeddings a user made; they are hidden.
    """
    n = len(T.EMBEDDING_PREFIX)
    return sorted(t[n:] for t in store.table_names() if t.startswith(T.EMBEDDING_PREFIX)
                  and not t[n:].startswith(T.INTERNAL_EMBEDDING_PREFIX))


def check_embedding_name(name: str) -> str:
    """``name`` if a user embedding may be called so; internal cache names are refused.

    Raises
    ------
    InvalidInputError
        ``name`` starts with :data:`curate._tables.INTERNAL_EMBEDDING_PREFIX`, the prefix of the
        pretraining teacher cache (such a table would be hidden from ``embeddings()``).
    """
    if str(name).startswith(T.INTERNAL_EMBEDDING_PREFIX):
        raise InvalidInputError(
            f"embedding name {name!r} starts with {T.INTERNAL_EMBEDDING_PREFIX!r}, the prefix of "
            "pretraining's internal teacher cache; choose another name"
        )
    return name


def require_embedding(store: Store, name: str) -> str:
    """The table of the embedding ``name``; :class:`NotFoundError` when it does not exist.

    Returns
    -------
    str
        The embedding's table name.

    Raises
    ------
    NotFoundError
        No such embedding (internal caches count as none); the message lists the available
        ones and says how to make one.
    """
    table = T.embedding_table(name)
    if str(name).startswith(T.INTERNAL_EMBEDDING_PREFIX) or not store.has_table(table):
        have = ", ".join(embedding_names(store)) or "none yet"
        raise NotFoundError(
            f"no embedding named {name!r} in {store.path} (available: {have}); "
            f"run `curate embed --model {name}` first"
        )
    return table


def next_run_id(store: Store) -> str:
    """The id the next row of ``runs`` gets (``run-000001``, ...); O(1) (a row count)."""
    n = store.count(T.RUNS) if store.has_table(T.RUNS) else 0
    return f"run-{n + 1:06d}"


def read_boxes(store: Store, frame_ids: Sequence[str], *, labeled_only: bool = True) -> pa.Table:
    """Rows of ``labels`` for the given frames; by default only for frames marked labeled.

    O(len(frame_ids)) filter terms, read in chunks of :data:`ID_CHUNK` ids.
    """
    if not store.has_table(T.LABELS):
        return T.LABELS_SCHEMA.empty_table()
    ids = [str(i) for i in frame_ids]
    if labeled_only:
        require_samples(store)
        state = store.read(T.SAMPLES, columns=["id", "labeled"], ids=ids)
        ids = [i for i, lab in zip(state["id"].to_pylist(), state["labeled"].to_pylist()) if lab]
    parts = [store.read(T.LABELS, where=id_in(ids[k : k + ID_CHUNK], "frame_id"))
             for k in range(0, len(ids), ID_CHUNK)]
    return pa.concat_tables(parts) if parts else T.LABELS_SCHEMA.empty_table()
