"""A workspace directory of versioned LanceDB tables.

:class:`Store` wraps one LanceDB database directory and adds what the curation service needs on
top of it: idempotent upsert-by-key (ingesting the same rows twice changes nothing, not even the
version), reads restricted to a list of keys in the caller's order, reads pinned at an old
version, SQL where-filters validated with clear errors, and embedding tables (``id`` +
fixed-size float32 ``vector``) whose producing model is recorded in the schema metadata.

Every read is O(rows read) in memory; upsert is O(rows given) in memory (existing rows are
compared against the input chunk by chunk). Writes from one process are serialised by a lock per
workspace directory; every write is a single LanceDB commit, so a failing write leaves the table
at its previous version.

Writes cost what they add: an upsert finds the stored rows of its keys through a BTREE index on
``id`` (created once a table has :data:`_KEY_INDEX_MIN_ROWS` rows) or, for long key lists, one scan
of the key column (never of the other columns); rows with only new keys are appended without a
join (``merge_insert`` only when some keys exist), and a per-table :class:`index._keyset.KeySet`
(hashes of the stored keys, valid at one version) tells most new keys apart without asking the
table at all, so appending new keys costs the same at 10M rows as at 0. After a write, a table with
:data:`_COMPACT_SMALL_FRAGMENTS` small data files is compacted: only fragments under
:data:`_COMPACT_TARGET_ROWS` rows are merged (so a compaction rewrites about what was appended
since the last one) and the new rows get a delta segment of the key index (with ``pylance``;
LanceDB's ``optimize`` otherwise). No version is pruned, so every version a stored run pinned stays
readable. Vector reads scatter Arrow batches (zero-copy numpy views) into one float32 array: the
vectors are held once, float16 tables upcast batch by batch, and a read of a small share of the
table fetches only its rows by row id.

Examples
--------
>>> import pyarrow as pa
>>> store = Store(tmp_path)  # doctest: +SKIP
>>> store.upsert("samples", pa.table({"id": ["a", "b"], "weather": ["rain", "sun"]}))  # doctest: +SKIP
1
>>> store.read("samples", where="weather = 'rain'").to_pylist()  # doctest: +SKIP
[{'id': 'a', 'weather': 'rain'}]
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from index._keyset import KeySet, hash_keys, keyset_supported
from index.errors import (
    FilterError,
    NotFoundError,
    SchemaError,
    StoreError,
    TableNotFoundError,
    VersionError,
)

logger = logging.getLogger(__name__)

__all__ = ["Store"]

#: Key lists up to this length are pushed down to LanceDB as ``key IN (...)`` filters (one query
#: per chunk of this size); longer lists are matched in a single streaming scan instead.
_IN_LIST_MAX_IDS = 1024
#: Rows per record batch when streaming a scan.
_SCAN_BATCH_ROWS = 65_536
#: Input rows compared against stored rows per step of an upsert.
_UPSERT_COMPARE_CHUNK = 65_536
#: Tables with at least this many rows get a BTREE index on their ``id`` key, so that key lookups
#: (upsert, reads by id) cost O(keys log N + unindexed rows) instead of a scan of the key column.
_KEY_INDEX_MIN_ROWS = 50_000
#: With an index on the key, key lists up to this length, and at most 1/_INDEXED_LOOKUP_SHARE of
#: the table's rows, are looked up by ``IN`` chunks (longer ones: one scan of the key column).
_INDEXED_LOOKUP_MAX_IDS = 65_536
_INDEXED_LOOKUP_SHARE = 40
#: A table is compacted (small data files merged, the key index brought up to date) once it has
#: this many small fragments (each append adds one).
_COMPACT_SMALL_FRAGMENTS = 64
#: Compaction merges fragments smaller than this many rows into fragments of about this size and
#: leaves bigger ones alone, so one compaction rewrites about the rows appended since the last one
#: (amortised O(1) rewrites per row, whatever the table holds). LanceDB's own ``optimize`` targets
#: 1M rows per fragment and so rewrites up to 1M rows (1 GB of 256-d vectors) each time.
_COMPACT_TARGET_ROWS = 131_072
#: Delta segments of the key index (one per compaction) merged into one past this many, so an
#: index lookup probes a bounded number of segments; the merge is O(N) once every this many
#: compactions, i.e. amortised O(N / (this * _COMPACT_TARGET_ROWS)) per row.
_MAX_INDEX_SEGMENTS = 8
#: Fetch rows by row id instead of scanning every column when at most this share of rows is wanted.
_TAKE_MAX_SHARE = 0.25
#: Versions are never pruned by compaction: runs pin table versions (``ws.reproduce``).
_KEEP_VERSIONS = timedelta(days=365 * 100)
#: Storage types of embedding vectors (``write_vectors(dtype=...)``).
VECTOR_DTYPES = ("float32", "float16")

_LOCKS: dict[Path, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()
#: Key sets (hashes of the stored keys) by (workspace, table, key); each valid at one version.
_KEYSETS: dict[tuple[Path, str, str], KeySet] = {}


def _workspace_lock(path: Path) -> threading.RLock:
    """Return the process-wide write lock of one workspace directory."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(path)
        if lock is None:
            lock = threading.RLock()
            _LOCKS[path] = lock
        return lock


class Store:
    """One workspace directory of LanceDB tables.

    Parameters
    ----------
    path : str or pathlib.Path
        The workspace directory. Each table is a ``<name>.lance`` folder inside it.
    create : bool, default True
        Create the directory when it does not exist. With ``create=False`` a missing directory
        raises :class:`~index.errors.StoreError`.

    Raises
    ------
    StoreError
        If ``path`` is a file, or is missing and ``create`` is False.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        path = Path(path).expanduser()
        if path.exists() and not path.is_dir():
            raise StoreError(
                f"workspace path {path} exists but is not a directory; "
                "pass a directory (new or existing) for the store."
            )
        if not path.exists():
            if not create:
                raise StoreError(
                    f"workspace directory {path} does not exist; check the path, "
                    "or open it with create=True to start a new workspace."
                )
            path.mkdir(parents=True, exist_ok=True)
            logger.info("created workspace directory %s", path)
        self._path = path.resolve()
        self._db = lancedb.connect(str(self._path))
        self._lock = _workspace_lock(self._path)

    def __repr__(self) -> str:
        return f"Store({str(self._path)!r})"

    # ------------------------------------------------------------------ tables
    @property
    def path(self) -> Path:
        """pathlib.Path: the workspace directory (absolute)."""
        return self._path

    def table_names(self) -> list[str]:
        """Return the names of all tables in the workspace, sorted.

        A table whose creation was interrupted (its directory exists but no version was ever
        committed, e.g. after ``kill -9`` mid-create) is not a table: it is left out, so that
        ``has_table`` is false and the next write creates it afresh.
        """
        names: list[str] = []
        token: str | None = None
        while True:
            response = self._db.list_tables(page_token=token)
            names.extend(response.tables)
            token = response.page_token
            if not token:
                break
        return sorted(n for n in names if self._has_committed_version(n))

    def _has_committed_version(self, name: str) -> bool:
        versions = self._path / f"{name}.lance" / "_versions"
        return versions.is_dir() and any(versions.iterdir())

    def has_table(self, name: str) -> bool:
        """Return whether table ``name`` exists."""
        return name in self.table_names()

    def _open(self, name: str, version: int | None = None) -> Any:
        """Open a fresh handle on ``name`` (latest, or checked out at ``version``).

        A handle opened at a version is separate from the latest one, so pinned reads never
        disturb later writes.
        """
        if not isinstance(name, str) or not name:
            raise StoreError(f"table name must be a non-empty string, got {name!r}.")
        if version is not None:
            if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
                raise VersionError(
                    f"version of table {name!r} must be a positive integer, got {version!r}; "
                    "see store.list_versions(table)."
                )
            version = int(version)
        try:
            if version is None:
                return self._db.open_table(name)
            return self._db.open_table(name, version=version)
        except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
            if not self.has_table(name):
                raise TableNotFoundError(name, str(self._path), self.table_names()) from None
            if version is not None:
                latest = self._db.open_table(name)
                available = [v["version"] for v in latest.list_versions()]
                raise VersionError(
                    f"version {version} of table {name!r} does not exist (available: "
                    f"{_summarise_versions(available)}); it was never written or was cleaned "
                    "up. Use store.list_versions(table) to see the versions."
                ) from exc
            raise StoreError(f"could not open table {name!r} in {self._path}: {exc}") from exc

    def version(self, table: str) -> int:
        """Return the latest version number of ``table``."""
        return int(self._open(table).version)

    def list_versions(self, table: str) -> list[dict[str, Any]]:
        """Return every version of ``table`` as ``{"version": int, "timestamp": datetime}``."""
        out: list[dict[str, Any]] = []
        for entry in self._open(table).list_versions():
            timestamp = entry["timestamp"]
            if not isinstance(timestamp, datetime):
                timestamp = datetime.fromisoformat(str(timestamp))
            out.append({"version": int(entry["version"]), "timestamp": timestamp})
        return sorted(out, key=lambda e: e["version"])

    def schema(self, table: str, *, version: int | None = None) -> pa.Schema:
        """Return the Arrow schema of ``table`` (with its metadata)."""
        return self._open(table, version).schema

    def table_metadata(self, table: str, *, version: int | None = None) -> dict[str, str]:
        """Return the schema metadata of ``table`` decoded to ``str -> str``."""
        return _decode_metadata(self.schema(table, version=version).metadata)

    # ----------------------------------------------------------------- filters
    def validate_where(self, table: str, where: str) -> None:
        """Check a where-filter against ``table`` without reading any data.

        Parameters
        ----------
        table : str
            The table the filter is for.
        where : str
            LanceDB SQL expression over the table's columns.

        Raises
        ------
        FilterError
            If the filter does not parse or names an unknown column.
        TableNotFoundError
            If the table does not exist.
        """
        self._validate_where_on(self._open(table), table, where)

    @staticmethod
    def _validate_where_on(handle: Any, table: str, where: str) -> None:
        if not isinstance(where, str):
            raise FilterError(str(where), table, f"a filter must be a string, got {type(where).__name__}")
        if not where.strip():
            raise FilterError(where, table, "the filter is empty")
        try:
            handle.search().where(where).limit(None).explain_plan()
        except (ValueError, RuntimeError) as exc:
            raise FilterError(where, table, _clean_lance_message(str(exc))) from None

    # ------------------------------------------------------------------- reads
    def read(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        where: str | None = None,
        version: int | None = None,
        ids: Sequence[Any] | np.ndarray | pa.Array | pa.ChunkedArray | None = None,
        key: str = "id",
        missing: Literal["raise", "ignore"] = "raise",
    ) -> pa.Table:
        """Read rows of ``table`` as an Arrow table.

        Parameters
        ----------
        table : str
            Table name.
        columns : sequence of str, optional
            Columns to return (default: all), in this order.
        where : str, optional
            LanceDB SQL filter, e.g. ``"weather = 'rain' AND frame_index < 10"``.
        version : int, optional
            Read the table as it was at this version (default: latest).
        ids : sequence, optional
            Restrict to rows whose ``key`` is in ``ids``. Works for any number of ids: short lists
            are pushed down as ``IN`` filters, long ones matched in one streaming scan.
        key : str, default "id"
            The key column.
        missing : {"raise", "ignore"}, default "raise"
            What to do with ids that match no row (absent, or excluded by ``where``).

        Returns
        -------
        pyarrow.Table
            Sorted by ``key`` when ``ids`` is None (storage order when the table has no ``key``
            column), otherwise one row per entry of ``ids`` in that order (repeated ids repeat
            the row; ignored missing ids are dropped).

        Raises
        ------
        NotFoundError
            Some ids match no row and ``missing="raise"``; lists up to five of them.
        FilterError, SchemaError, TableNotFoundError, VersionError

        Notes
        -----
        Memory is O(rows read + len(ids)); time is one scan (or one indexed lookup per 1024 ids).
        """
        if missing not in ("raise", "ignore"):
            raise ValueError(f"missing must be 'raise' or 'ignore', got {missing!r}.")
        handle = self._open(table, version)
        schema = handle.schema
        wanted = _check_columns(table, schema, columns)
        if where is not None:
            self._validate_where_on(handle, table, where)
        has_key = key in schema.names
        if ids is None:
            select = list(wanted) if (not has_key or key in wanted) else [*wanted, key]
            result = _query(handle, select, where).to_arrow()
            if has_key and result.num_rows > 1:
                result = result.sort_by(key)
            return result.select(wanted)
        if not has_key:
            raise SchemaError(
                f"table {table!r} has no key column {key!r} (columns: {', '.join(schema.names)}); "
                "pass key= naming one of them to read by ids."
            )
        requested = _as_key_array(ids, schema.field(key).type, table, key)
        select = list(wanted) if key in wanted else [*wanted, key]
        lookup = requested
        keys = self._keyset(handle, table, key, build=False) if version is None else None
        if keys is not None and len(requested):
            # Keys the set surely lacks are not stored: look up only the possible ones.
            lookup = requested.filter(pa.array(keys.may_contain(hash_keys(requested))))
        found = _read_keys(handle, select, lookup, key, where)
        positions = pc.index_in(requested, value_set=found.column(key))
        if positions.null_count:
            if missing == "raise":
                absent = requested.filter(pc.is_null(positions)).to_pylist()
                hint = "Pass missing='ignore' to skip unknown ids."
                if where:
                    hint += f" (Rows excluded by the where-filter {where!r} count as missing.)"
                raise NotFoundError(
                    list(dict.fromkeys(absent)), where=f"table {table!r}", key=key, hint=hint
                )
            positions = positions.drop_null()
        return found.take(positions).select(wanted)

    def read_matching(
        self,
        table: str,
        column: str,
        values: Sequence[Any] | np.ndarray | pa.Array,
        *,
        columns: Sequence[str] | None = None,
        version: int | None = None,
    ) -> pa.Table:
        """Every row whose ``column`` is one of ``values`` (a column that may repeat, e.g. the
        frame id of boxes), sorted by ``column``.

        Long value lists are one scan of ``column`` and a hashed join, then only the matching
        rows are fetched by row id; short ones are ``IN`` filters (indexed when ``column`` is):
        never a filter string per chunk of values. Memory O(rows found + len(values)).
        """
        handle = self._open(table, version)
        schema = handle.schema
        wanted = _check_columns(table, schema, columns)
        if column not in schema.names:
            raise SchemaError(f"table {table!r} has no column {column!r} (columns: "
                              f"{', '.join(schema.names)}).")
        keys = _as_key_array(values, schema.field(column).type, table, column)
        select = list(wanted) if column in wanted else [*wanted, column]
        found = _read_keys(handle, select, keys, column, None)
        if found.num_rows > 1:
            order = [(column, "ascending")] + ([("id", "ascending")] if "id" in select and column != "id" else [])
            found = found.sort_by(order)
        return found.select(wanted)

    def count(self, table: str, *, where: str | None = None, version: int | None = None) -> int:
        """Return the number of rows of ``table`` (matching ``where``) at ``version``."""
        handle = self._open(table, version)
        if where is None:
            return int(handle.count_rows())
        self._validate_where_on(handle, table, where)
        return int(handle.count_rows(where))

    def ids(self, table: str, *, where: str | None = None, version: int | None = None) -> np.ndarray:
        """Return the ``id`` column (sorted) as a numpy array of ``str`` objects."""
        return _strings_to_numpy(self.id_array(table, where=where, version=version))

    def id_array(self, table: str, *, where: str | None = None, version: int | None = None) -> pa.Array:
        """Return the ``id`` column (sorted) as one Arrow ``string`` array: no Python object per id.

        O(N) beyond the read; use it where ids are joined or filtered through Arrow compute.
        """
        return string_array(self.read(table, columns=["id"], where=where, version=version).column("id"))

    # ------------------------------------------------------------------ writes
    def upsert(self, table: str, rows: pa.Table | pa.RecordBatch, *, key: str = "id") -> int:
        """Insert new rows and update changed rows of ``table`` by ``key``.

        Creates the table from the rows' schema when it does not exist. Rows whose key is already
        stored with identical values are skipped, so ingesting the same rows twice changes
        nothing and creates no new version.

        Parameters
        ----------
        table : str
            Table name.
        rows : pyarrow.Table or pyarrow.RecordBatch
            Rows with exactly the table's columns (any order; numeric widths are cast).
        key : str, default "id"
            The key column; must be unique and non-null in ``rows``.

        Returns
        -------
        int
            The table version after the write (unchanged when nothing differed).

        Raises
        ------
        SchemaError
            Duplicate or null keys in ``rows``, a missing, extra or incompatible column.

        Notes
        -----
        Memory O(len(rows)); time O(len(rows) log N) with the key index (tables of at least
        :data:`_KEY_INDEX_MIN_ROWS` rows, inputs up to 1/40 of the table), else one scan of the
        key column per 65 536 input rows; only the stored rows of matching keys are read in full.
        New keys only: a plain append. The write is one commit (compaction, when due, is a later
        one): on error the table is left as it was.
        """
        rows = _as_arrow_table(rows, "rows")
        _check_keys(rows, table, key)
        with self._lock:
            if not self.has_table(table):
                return self._create(table, rows)
            handle = self._open(table)
            rows = _conform(rows, handle.schema, table)
            if rows.num_rows == 0:
                return int(handle.version)
            keys = self._keyset(handle, table, key, build=True)
            before = int(handle.version)
            changed, n_existing = _changed_rows_known(handle, rows, key, keys)
            if changed.num_rows == 0:
                logger.debug("upsert into %r: all %d rows unchanged", table, rows.num_rows)
                return int(handle.version)
            try:
                if n_existing == 0:
                    # Only new keys: a plain append, no join against the stored table.
                    result = handle.add(changed)
                    inserted, updated = changed.num_rows, 0
                else:
                    result = (
                        handle.merge_insert(key)
                        .when_matched_update_all()
                        .when_not_matched_insert_all()
                        .execute(changed)
                    )
                    inserted, updated = result.num_inserted_rows, result.num_updated_rows
            except (ValueError, RuntimeError, OSError) as exc:
                self._forget_keys(table)
                raise StoreError(f"upsert into table {table!r} failed, table unchanged: {exc}") from exc
            if keys is not None:
                if int(result.version) == before + 1:
                    # Our commit sits right on the version the set describes: add the new keys
                    # (updated keys are already in; a repeat hash is harmless).
                    keys.add(hash_keys(changed.column(key)))
                    keys.version, keys.rows = int(result.version), keys.rows + int(inserted)
                else:  # another writer committed in between: rebuild on next use
                    self._forget_keys(table)
            logger.info(
                "upsert into %r: %d inserted, %d updated, %d unchanged -> version %d",
                table, inserted, updated, rows.num_rows - changed.num_rows, result.version,
            )
            return self._maintain(handle, table, keys)

    def append(self, table: str, rows: pa.Table | pa.RecordBatch) -> int:
        """Insert ``rows`` as they are (no key matching); for append-only tables like ``runs``.

        Creates the table when missing. Returns the new version (unchanged for zero rows).
        """
        rows = _as_arrow_table(rows, "rows")
        with self._lock:
            if not self.has_table(table):
                return self._create(table, rows)
            handle = self._open(table)
            rows = _conform(rows, handle.schema, table)
            if rows.num_rows == 0:
                return int(handle.version)
            self._forget_keys(table)
            try:
                handle.add(rows)
            except (ValueError, RuntimeError, OSError) as exc:
                raise StoreError(f"append to table {table!r} failed, table unchanged: {exc}") from exc
            return self._maintain(handle, table)

    def compact(self, table: str) -> int:
        """Merge the small data files of ``table`` and bring its key index up to date.

        Every earlier version stays readable (nothing is pruned), so runs pinned to a version
        still reproduce. Writes call this by themselves once a table has
        :data:`_COMPACT_SMALL_FRAGMENTS` small files; call it directly after bulk loads. Returns
        the latest version (compaction commits a new one when it rewrote anything).
        """
        with self._lock:
            handle = self._open(table)
            self._compact_handle(handle, table)
            return int(self._open(table).version)

    def _compact_handle(self, handle: Any, table: str) -> None:
        """Merge small fragments and index the rows written since the last compaction.

        With ``pylance`` (``curate[scale]``): fragments under :data:`_COMPACT_TARGET_ROWS` rows are
        merged (bigger ones are left alone), then the rows not yet in the key index get a delta
        index segment, and segments are merged past :data:`_MAX_INDEX_SEGMENTS`. Without it,
        LanceDB's ``optimize`` (which rewrites every fragment under 1M rows). No version is pruned.
        """
        dataset = _lance_dataset(handle)
        try:
            if dataset is None:
                handle.optimize(cleanup_older_than=_KEEP_VERSIONS)
            else:
                dataset.optimize.compact_files(target_rows_per_fragment=_COMPACT_TARGET_ROWS)
                dataset = _lance_dataset(handle, latest=True)
                segments = sum(len(ix.segments) for ix in dataset.describe_indices()
                               if list(ix.field_names) == ["id"])
                if segments:
                    merge = segments if segments >= _MAX_INDEX_SEGMENTS else 0
                    dataset.optimize.optimize_indices(num_indices_to_merge=merge)
                handle.checkout_latest()
        except (ValueError, RuntimeError, OSError) as exc:  # pragma: no cover - disk errors
            logger.warning("compaction of %r failed (the table is unchanged): %s", table, exc)
            try:
                handle.checkout_latest()
            except (ValueError, RuntimeError, OSError):
                pass
            return
        logger.info("compacted table %r -> version %d", table, handle.version)

    def _maintain(self, handle: Any, table: str, keys: KeySet | None = None) -> int:
        """After a write: index the ``id`` key of large tables, compact fragmented ones.

        O(1) when nothing is due (reads the manifest statistics); amortised O(rows added) since
        compaction only rewrites the small files written since the last one, and is due after
        :data:`_COMPACT_SMALL_FRAGMENTS` writes. Returns the latest version.
        """
        try:
            stats = handle.stats()
        except (ValueError, RuntimeError, OSError):  # pragma: no cover
            return int(handle.version)
        fragments = stats.get("fragment_stats", {}) or {}
        dataset = _lance_dataset(handle)
        if dataset is not None:
            small = sum(1 for f in dataset.get_fragments()
                        if f.metadata.physical_rows < _COMPACT_TARGET_ROWS // 2)
            fragments = {**fragments, "num_small_fragments": small}
        if "id" in handle.schema.names and int(stats.get("num_rows", 0)) >= _KEY_INDEX_MIN_ROWS:
            if not _has_key_index(handle, "id"):
                try:
                    from lancedb.index import BTree

                    handle.create_index("id", config=BTree())
                    logger.info("created a BTREE index on %r.id (%d rows)", table, stats["num_rows"])
                except (ValueError, RuntimeError, OSError) as exc:  # pragma: no cover
                    logger.warning("could not index %r.id: %s", table, exc)
        if int(fragments.get("num_small_fragments", 0)) >= _COMPACT_SMALL_FRAGMENTS:
            self._compact_handle(handle, table)
        version = int(handle.version)
        if keys is not None and keys.version != version:
            # Index creation and compaction change versions, not rows: the set stays valid
            # unless another writer changed the row count meanwhile.
            if int(handle.count_rows()) == keys.rows:
                keys.version = version
            else:
                self._forget_keys(table)
        return version

    # ---------------------------------------------------------------- key sets
    def _keyset(self, handle: Any, table: str, key: str, *, build: bool) -> KeySet | None:
        """The key set of ``table`` valid at ``handle``'s version (built by one key scan if
        ``build``), or None (key type without hashing, or not built and ``build`` is False)."""
        if key not in handle.schema.names or not keyset_supported(handle.schema.field(key).type):
            return None
        slot = (self._path, table, key)
        keys = _KEYSETS.get(slot)
        if keys is not None and keys.version == int(handle.version):
            return keys
        if not build:
            return None
        try:
            keys = KeySet.scan(handle, key, _SCAN_BATCH_ROWS)
        except (ValueError, RuntimeError, OSError) as exc:  # pragma: no cover - disk errors
            logger.warning("could not read the keys of %r (falling back to lookups): %s", table, exc)
            return None
        _KEYSETS[slot] = keys
        return keys

    def _forget_keys(self, table: str) -> None:
        """Drop the key sets of ``table`` (after a write they do not account for)."""
        for slot in [s for s in list(_KEYSETS) if s[0] == self._path and s[1] == table]:
            _KEYSETS.pop(slot, None)

    def update(self, table: str, *, where: str, values: Mapping[str, Any]) -> int:
        """Set ``values`` (column -> new value) on the rows matching ``where``; return new version."""
        if not isinstance(values, Mapping) or not values:
            raise SchemaError(f"update of table {table!r} needs a non-empty dict of column -> value.")
        with self._lock:
            handle = self._open(table)
            self._validate_where_on(handle, table, where)
            unknown = [name for name in values if name not in handle.schema.names]
            if unknown:
                raise SchemaError(
                    f"cannot update table {table!r}: unknown column {unknown[0]!r}; "
                    f"columns are {', '.join(handle.schema.names)}."
                )
            self._forget_keys(table)
            try:
                result = handle.update(where=where, values=dict(values))
            except (ValueError, RuntimeError, TypeError, pa.ArrowException) as exc:
                raise SchemaError(
                    f"update of table {table!r} with {dict(values)!r} failed, table unchanged: {exc}"
                ) from exc
            return int(result.version)

    def delete(self, table: str, where: str) -> int:
        """Delete the rows matching ``where``; return the new version."""
        with self._lock:
            handle = self._open(table)
            self._validate_where_on(handle, table, where)
            self._forget_keys(table)
            return int(handle.delete(where).version)

    def restore(self, table: str, version: int) -> int:
        """Make the content of ``version`` the latest again, as a new version; return it.

        Older versions stay readable; nothing is deleted.
        """
        with self._lock:
            self._open(table, version)  # VersionError / TableNotFoundError with a clear message
            handle = self._open(table)
            self._forget_keys(table)
            handle.restore(int(version))
            logger.info("restored table %r to version %d -> version %d", table, version, handle.version)
            return int(handle.version)

    def drop_table(self, table: str, *, missing_ok: bool = False) -> None:
        """Delete ``table`` with all its versions (TableNotFoundError unless ``missing_ok``)."""
        with self._lock:
            if not self.has_table(table):
                if missing_ok:
                    return
                raise TableNotFoundError(table, str(self._path), self.table_names())
            self._forget_keys(table)
            self._db.drop_table(table)
            logger.info("dropped table %r", table)

    def _create(self, table: str, rows: pa.Table) -> int:
        try:
            # mode="overwrite": only reached when no version was ever committed, so what may be
            # there is the debris of an interrupted create (see table_names).
            handle = self._db.create_table(table, rows, mode="overwrite")
        except (ValueError, RuntimeError, OSError, pa.ArrowException) as exc:
            raise StoreError(f"could not create table {table!r} in {self._path}: {exc}") from exc
        logger.info("created table %r with %d rows", table, rows.num_rows)
        self._forget_keys(table)
        if "id" in rows.column_names and keyset_supported(rows.schema.field("id").type):
            keys = KeySet(int(handle.version), rows.num_rows)
            keys.add(hash_keys(rows.column("id")))
            _KEYSETS[(self._path, table, "id")] = keys
        return int(handle.version)

    # ----------------------------------------------------------------- vectors
    def write_vectors(
        self,
        table: str,
        ids: Sequence[str] | np.ndarray,
        vectors: np.ndarray,
        *,
        metadata: Mapping[str, str] | None = None,
        mode: Literal["upsert", "overwrite"] = "upsert",
        dtype: str | None = None,
    ) -> int:
        """Write an embedding table: ``id`` string + ``vector`` fixed_size_list<float32>[dim].

        Parameters
        ----------
        table : str
            Embedding table name (one per embedder).
        ids : sequence of str
            One unique id per row of ``vectors``.
        vectors : numpy.ndarray
            (n, dim) finite numbers; stored as float32.
        metadata : dict of str to str, optional
            The embedder's name, config (JSON) and weights sha256; stored as schema metadata.
        mode : {"upsert", "overwrite"}, default "upsert"
            ``"upsert"`` adds / updates rows (identical rows are skipped). ``"overwrite"``
            replaces the whole table content (and dimension and metadata; ``None`` clears the
            metadata) in one new version.
        dtype : {"float32", "float16"}, optional
            Storage type of the vectors. Default: the existing table's (float32 for a new one).
            float16 halves the table; reads upcast to float32 chunk by chunk. Values beyond the
            float16 range (65504) raise :class:`SchemaError`.

        Returns
        -------
        int
            The table version after the write.

        Raises
        ------
        SchemaError
            Not 2-D, non-finite values (names the first bad id), ``len(ids) != len(vectors)``,
            duplicate ids, a dimension different from the table's, or (upsert) metadata different
            from the table's: vectors of two models must not be mixed.
        """
        if mode not in ("upsert", "overwrite"):
            raise ValueError(f"mode must be 'upsert' or 'overwrite', got {mode!r}.")
        meta = _check_metadata(metadata, table)
        matrix = _check_vectors(vectors, table)
        id_array = _check_vector_ids(ids, matrix.shape[0], table)
        bad = ~np.isfinite(matrix).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SchemaError(
                f"vectors for table {table!r} contain NaN or inf: first at row {row} "
                f"(id {id_array[row].as_py()!r}), {int(bad.sum())} bad row(s) in all; "
                "fix the embedder output before storing."
            )
        dim = matrix.shape[1]
        with self._lock:
            exists = self.has_table(table)
            if dtype is None:
                dtype = "float32"
                if exists and mode == "upsert":
                    dtype = _vector_storage_dtype(self._open(table).schema, table)
            if dtype not in VECTOR_DTYPES:
                raise SchemaError(f"vector dtype must be one of {', '.join(VECTOR_DTYPES)}, got {dtype!r}.")
            if dtype == "float16":
                too_big = (np.abs(matrix) > float(np.finfo(np.float16).max)).any(axis=1)
                if too_big.any():
                    row = int(np.flatnonzero(too_big)[0])
                    raise SchemaError(
                        f"vectors for table {table!r} exceed the float16 range (65504) at row {row} "
                        f"(id {id_array[row].as_py()!r}); store them as float32."
                    )
                flat = pa.array(matrix.reshape(-1).astype(np.float16), type=pa.float16())
                value_type = pa.float16()
            else:
                flat = pa.array(matrix.reshape(-1), type=pa.float32())
                value_type = pa.float32()
            schema = pa.schema(
                [pa.field("id", pa.string()), pa.field("vector", pa.list_(value_type, dim))],
                metadata=meta or None,
            )
            data = pa.Table.from_arrays(
                [id_array, pa.FixedSizeListArray.from_arrays(flat, dim)], schema=schema
            )
            if not exists:
                return self._create(table, data)
            handle = self._open(table)
            if mode == "overwrite":
                self._forget_keys(table)
                try:
                    result = handle.add(data, mode="overwrite")
                except (ValueError, RuntimeError, OSError) as exc:
                    raise StoreError(f"overwrite of table {table!r} failed, table unchanged: {exc}") from exc
                logger.info("overwrote %r with %d vectors -> version %d", table, len(data), result.version)
                return self._maintain(handle, table)
            stored_dim = _vector_dim(handle.schema, table)
            stored_dtype = _vector_storage_dtype(handle.schema, table)
            if stored_dtype != dtype:
                raise SchemaError(
                    f"table {table!r} stores {stored_dtype} vectors, got dtype={dtype!r}; use "
                    "mode='overwrite' to change the storage type."
                )
            if stored_dim != dim:
                raise SchemaError(
                    f"vector dimension mismatch for table {table!r}: the table stores {stored_dim}-d "
                    f"vectors, got {dim}-d. Use another table, or mode='overwrite' to replace it."
                )
            stored_meta = _decode_metadata(handle.schema.metadata)
            if metadata is not None and stored_meta != meta:
                changed = sorted(k for k in set(stored_meta) | set(meta) if stored_meta.get(k) != meta.get(k))
                raise SchemaError(
                    f"table {table!r} holds vectors from another model (metadata differs in "
                    f"{', '.join(changed)}: stored {_pick(stored_meta, changed)}, given "
                    f"{_pick(meta, changed)}); upserting would mix vectors from two models. "
                    "Use mode='overwrite' to replace the table, or write to another table."
                )
            return self.upsert(table, data, key="id")

    def read_vectors(
        self,
        table: str,
        *,
        ids: Sequence[str] | np.ndarray | None = None,
        version: int | None = None,
        where: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read an embedding table as numpy arrays.

        Returns
        -------
        ids : numpy.ndarray
            Object array of ``str``; sorted unless ``ids`` was given (then in that order).
        vectors : numpy.ndarray
            float32, shape (n, dim), C-contiguous; float16 tables are upcast chunk by chunk.

        Raises
        ------
        NotFoundError
            Unknown ids.
        SchemaError
            The table is not an embedding table.

        Notes
        -----
        Memory: the (n, dim) float32 result plus one record batch; the vectors are never held
        twice (each batch is a zero-copy view of the Arrow buffer, copied once into the result).
        """
        handle = self._open(table, version)
        _vector_dim(handle.schema, table)
        if where is not None:
            self._validate_where_on(handle, table, where)
        if ids is None:
            stored = _query(handle, ["id"], where).to_arrow().column("id")
            wanted = pc.array_sort_indices(stored) if len(stored) else None
            wanted = stored.take(wanted).combine_chunks() if wanted is not None else pa.array([], pa.string())
            vectors, _ = self._gather(handle, table, wanted, where=where)
            return _strings_to_numpy(wanted), vectors
        requested = _as_key_array(ids, pa.string(), table, "id")
        vectors, found = self._gather(handle, table, requested, where=where)
        if not found.all():
            absent = requested.filter(pa.array(~found)).to_pylist()
            hint = "Pass missing='ignore' to skip unknown ids."
            if where:
                hint += f" (Rows excluded by the where-filter {where!r} count as missing.)"
            raise NotFoundError(list(dict.fromkeys(absent)), where=f"table {table!r}", key="id",
                                hint=hint)
        return _strings_to_numpy(requested), vectors

    def gather_vectors(
        self,
        table: str,
        ids: Sequence[str] | np.ndarray | pa.Array,
        *,
        version: int | None = None,
        upcast: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of ``ids`` in that order, and which ids have one (no error for missing ids).

        Parameters
        ----------
        upcast : bool
            Return float32 (default). ``False`` keeps the stored type: a float16 table then
            gives float16 rows, half the memory (10M x 256 vectors: 5.1 GB instead of 10.2 GB),
            for consumers that upcast block by block (see ``Selector.accepts_float16``).

        Returns
        -------
        vectors : numpy.ndarray
            float32 (or the stored float16 with ``upcast=False``), (len(ids), dim); rows of ids
            without a vector are zero.
        found : numpy.ndarray
            bool (len(ids),).

        Notes
        -----
        One scan of the ``id`` column (hashed join with ``ids``, O(N + len(ids))), then either the
        matching rows fetched by row id (a small share of the table: a filtered select reads
        only its rows) or one streamed pass over the vectors. Memory: the result plus one batch.
        """
        handle = self._open(table, version)
        _vector_dim(handle.schema, table)
        dtype = np.float32 if upcast else np.dtype(_vector_storage_dtype(handle.schema, table))
        return self._gather(handle, table, _as_key_array(ids, pa.string(), table, "id"), where=None,
                            dtype=dtype)

    def iter_vectors(
        self, table: str, *, version: int | None = None, batch_rows: int = _SCAN_BATCH_ROWS
    ) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(ids, float32 vectors)`` chunks in storage order (memory: one chunk)."""
        handle = self._open(table, version)
        dim = _vector_dim(handle.schema, table)
        for batch in _query(handle, ["id", "vector"], None).to_batches(batch_rows):
            if batch.num_rows:
                yield (_strings_to_numpy(batch.column(0)),
                       _vectors_view(batch.column(1), dim).astype(np.float32, copy=False))

    def _gather(
        self, handle: Any, table: str, wanted: pa.Array, *, where: str | None,
        dtype: Any = np.float32,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scatter the vectors of ``wanted`` (in order) into one ``dtype`` array (float32, or the
        stored float16); see gather_vectors."""
        dim = _vector_dim(handle.schema, table)
        unique = pc.unique(wanted)
        if len(unique) != len(wanted):
            # Repeated ids: gather each once, then expand (one extra copy only in this case).
            vectors, found = self._gather(handle, table, unique, where=where, dtype=dtype)
            inverse = pc.index_in(wanted, value_set=unique).to_numpy(zero_copy_only=False)
            return vectors[inverse], found[inverse]
        out = np.zeros((len(wanted), dim), dtype=dtype)
        found = np.zeros(len(wanted), dtype=bool)
        if len(wanted) == 0:
            return out, found
        keys, rowids = _locate_keys(handle, wanted, "id", where)
        if len(rowids) == 0:
            return out, found
        located = pc.index_in(keys, value_set=wanted).to_numpy(zero_copy_only=False)
        order = np.argsort(rowids, kind="stable")
        sorted_rowids, sorted_pos = rowids[order], located[order]

        def place(batch: pa.RecordBatch | pa.Table) -> None:
            hit, where_in = _member_sorted(sorted_rowids, _column_numpy(batch.column("_rowid")))
            if not hit.any():
                return
            rows = sorted_pos[where_in[hit]]
            block = _vectors_view(batch.column("vector"), dim)
            out[rows] = block[hit] if not hit.all() else block
            found[rows] = True

        total = max(int(handle.count_rows()), 1)
        if len(rowids) <= _TAKE_MAX_SHARE * total:
            for begin in range(0, len(sorted_rowids), _SCAN_BATCH_ROWS):
                part = sorted_rowids[begin : begin + _SCAN_BATCH_ROWS].tolist()
                place(handle.take_row_ids(part).with_row_id().select(["vector"]).to_arrow())
        else:
            reader = _query(handle, ["vector"], where).with_row_id(True).to_batches(_SCAN_BATCH_ROWS)
            for batch in reader:
                place(batch)
        return out, found


# ---------------------------------------------------------------------- helpers
def _lance_dataset(handle: Any, *, latest: bool = False) -> Any:
    """The ``lance`` dataset under a LanceDB table handle (at its version, or the latest), or
    None without ``pylance`` (then the store falls back to LanceDB's own ``optimize``)."""
    try:
        import lance
    except ImportError:
        return None
    try:
        if latest:
            return lance.dataset(handle.to_lance().uri)
        return handle.to_lance()
    except (ValueError, RuntimeError, OSError, AttributeError):  # pragma: no cover
        return None


def _summarise_versions(versions: list[int]) -> str:
    if not versions:
        return "none"
    if len(versions) <= 6:
        return ", ".join(str(v) for v in versions)
    return f"{versions[0]}..{versions[-1]} ({len(versions)} versions)"


def _clean_lance_message(message: str) -> str:
    return message.replace("Invalid input, ", "").strip().rstrip(".")


def _decode_metadata(metadata: Mapping[bytes, bytes] | None) -> dict[str, str]:
    if not metadata:
        return {}
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
        for k, v in metadata.items()
    }


def _pick(meta: Mapping[str, str], keys: Iterable[str]) -> dict[str, str | None]:
    return {k: _shorten(meta.get(k)) for k in keys}


def _shorten(value: str | None, limit: int = 40) -> str | None:
    if value is None or len(value) <= limit:
        return value
    return value[: limit - 3] + "..."


def _query(handle: Any, columns: Sequence[str] | None, where: str | None) -> Any:
    """A LanceDB query over all rows (no limit) with optional projection and filter."""
    query = handle.search()
    if where is not None:
        query = query.where(where)
    if columns is not None:
        query = query.select(list(columns))
    return query.limit(None)


def _check_columns(table: str, schema: pa.Schema, columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return list(schema.names)
    if isinstance(columns, str):
        columns = [columns]
    columns = list(columns)
    for name in columns:
        if name not in schema.names:
            raise SchemaError(
                f"table {table!r} has no column {name!r}; columns are {', '.join(schema.names)}."
            )
    return columns


def _as_arrow_table(rows: Any, what: str) -> pa.Table:
    if isinstance(rows, pa.RecordBatch):
        return pa.Table.from_batches([rows])
    if isinstance(rows, pa.Table):
        return rows
    raise SchemaError(
        f"{what} must be a pyarrow.Table or RecordBatch, got {type(rows).__name__}; "
        "build one with pyarrow.table({...}) or pyarrow.Table.from_pylist([...])."
    )


def _check_keys(rows: pa.Table, table: str, key: str) -> None:
    if key not in rows.column_names:
        raise SchemaError(
            f"rows for table {table!r} have no key column {key!r} (columns: "
            f"{', '.join(rows.column_names)}); add it or pass key= naming the key column."
        )
    column = rows.column(key)
    if column.null_count:
        raise SchemaError(f"rows for table {table!r} have {column.null_count} null {key!r} value(s).")
    counts = pc.value_counts(column)
    if len(counts) != rows.num_rows:
        duplicated = counts.filter(pc.greater(counts.field("counts"), 1))
        first = duplicated.field("values")[0].as_py()
        raise SchemaError(
            f"rows for table {table!r} repeat {key} {first!r} "
            f"({len(duplicated)} duplicated key(s) in all); each {key} may appear once per write."
        )


_FAMILIES: tuple[tuple[str, Any], ...] = (
    ("integer", pa.types.is_integer),
    ("floating", pa.types.is_floating),
    ("string", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)),
    ("binary", lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t)),
    (
        "list",
        lambda t: pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t),
    ),
    ("timestamp", pa.types.is_timestamp),
    ("date", pa.types.is_date),
    ("boolean", pa.types.is_boolean),
    ("struct", pa.types.is_struct),
)


def _family(dtype: pa.DataType) -> str:
    for name, test in _FAMILIES:
        if test(dtype):
            return name
    return str(dtype)


def _compatible(source: pa.DataType, target: pa.DataType) -> bool:
    if source == target or pa.types.is_null(source):
        return True
    src, dst = _family(source), _family(target)
    return src == dst or (src == "integer" and dst == "floating")


def _conform(rows: pa.Table, schema: pa.Schema, table: str) -> pa.Table:
    """Reorder and cast ``rows`` to ``schema``; SchemaError naming the offending column."""
    given = set(rows.column_names)
    for name in schema.names:
        if name not in given:
            raise SchemaError(
                f"rows for table {table!r} lack column {name!r}; the table has columns "
                f"{', '.join(schema.names)}. Add the column (null values are allowed)."
            )
    for name in rows.column_names:
        if name not in schema.names:
            raise SchemaError(
                f"rows for table {table!r} have column {name!r} that the table does not; the "
                f"table has columns {', '.join(schema.names)}. Drop it, or write to a new table."
            )
    arrays = []
    for field in schema:
        column = rows.column(field.name)
        if column.type != field.type:
            if not _compatible(column.type, field.type):
                raise SchemaError(
                    f"column {field.name!r} of rows for table {table!r} has type {column.type}, "
                    f"incompatible with the table's {field.type}."
                )
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(
                    f"column {field.name!r} of rows for table {table!r} cannot be converted from "
                    f"{column.type} to the table's {field.type}: {exc}"
                ) from None
        if not field.nullable and column.null_count:
            raise SchemaError(
                f"column {field.name!r} of rows for table {table!r} has {column.null_count} "
                "null value(s) but the table's column is not nullable."
            )
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=schema)


def _as_key_array(ids: Any, key_type: pa.DataType, table: str, key: str) -> pa.Array:
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if isinstance(ids, str):
        raise SchemaError(f"ids for table {table!r} must be a sequence of keys, not one string {ids!r}.")
    try:
        array = ids if isinstance(ids, pa.Array) else pa.array(list(ids) if not isinstance(ids, np.ndarray) else ids)
        if array.type != key_type:
            array = array.cast(key_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError) as exc:
        raise SchemaError(
            f"ids for table {table!r} cannot be converted to the {key!r} column type {key_type}: {exc}"
        ) from None
    if array.null_count:
        raise SchemaError(f"ids for table {table!r} contain {array.null_count} null value(s).")
    return array


def _sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def _read_keys(
    handle: Any, columns: list[str], keys: pa.Array, key: str, where: str | None
) -> pa.Table:
    """Rows whose ``key`` is in ``keys`` (unordered, each stored row at most once).

    Up to :data:`_IN_LIST_MAX_IDS` distinct keys (or :data:`_INDEXED_LOOKUP_MAX_IDS` when the key
    is indexed) are looked up with ``IN`` filters that return the rows directly. More are
    located by one scan of the key column (one hashed join), then only the matching rows are
    fetched by row id, or, when they are more than :data:`_TAKE_MAX_SHARE` of the table, one
    streamed scan keeps them. Memory O(rows found + len(keys)) (+ the key column for a scan).
    """
    unique = pc.unique(keys)
    if len(unique) == 0:
        return _empty(handle, columns)
    if _pushdown_ok(handle, unique, key):
        pieces = []
        for begin in range(0, len(unique), _IN_LIST_MAX_IDS):
            condition = _in_condition(key, unique.slice(begin, _IN_LIST_MAX_IDS), where)
            pieces.append(_query(handle, columns, condition).to_arrow())
        return pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
    _, rowids = _locate_keys(handle, unique, key, where)
    if len(rowids) == 0:
        return _empty(handle, columns)
    sorted_rowids = np.sort(rowids)
    pieces: list[pa.Table] = []
    if len(rowids) <= _TAKE_MAX_SHARE * max(int(handle.count_rows()), 1):
        for begin in range(0, len(sorted_rowids), _SCAN_BATCH_ROWS):
            part = sorted_rowids[begin : begin + _SCAN_BATCH_ROWS].tolist()
            pieces.append(handle.take_row_ids(part).select(list(columns)).to_arrow())
    else:
        reader = _query(handle, columns, where).with_row_id(True).to_batches(_SCAN_BATCH_ROWS)
        for batch in reader:
            hit, _ = _member_sorted(sorted_rowids, _column_numpy(batch.column("_rowid")))
            if hit.any():
                pieces.append(pa.Table.from_batches([batch.filter(pa.array(hit))]).select(columns))
    if not pieces:
        return _empty(handle, columns)
    return pa.concat_tables(pieces)


def _pushdown_ok(handle: Any, unique: pa.Array, key: str) -> bool:
    typed = (pa.types.is_string(unique.type) or pa.types.is_large_string(unique.type)
             or pa.types.is_integer(unique.type))
    if not typed:
        return False
    if len(unique) <= _IN_LIST_MAX_IDS:
        return True
    if len(unique) > _INDEXED_LOOKUP_MAX_IDS:
        return False
    # An indexed IN-list of 1024 keys costs about what a scan of 40k keys does: scan beyond that.
    return len(unique) * _INDEXED_LOOKUP_SHARE <= int(handle.count_rows()) and _has_key_index(handle, key)


def _in_condition(key: str, values: pa.Array, where: str | None) -> str:
    literals = ", ".join(_sql_literal(v) for v in values.to_pylist())
    condition = f"`{key}` IN ({literals})"
    if where is not None:
        condition = f"({condition}) AND ({where})"
    return condition


def _locate_keys(
    handle: Any, unique: pa.Array, key: str, where: str | None
) -> tuple[pa.Array, np.ndarray]:
    """``(keys found, their row ids)`` for the distinct ``unique`` keys (matching ``where``).

    Index / ``IN`` lookups for short lists (see :func:`_read_keys`); otherwise one scan of the key
    column and one hashed ``is_in`` (O(N + len(unique))).
    """
    if _pushdown_ok(handle, unique, key):
        pieces = []
        for begin in range(0, len(unique), _IN_LIST_MAX_IDS):
            condition = _in_condition(key, unique.slice(begin, _IN_LIST_MAX_IDS), where)
            pieces.append(_query(handle, [key], condition).with_row_id(True).to_arrow())
        found = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
    else:
        batches = list(_query(handle, [key], where).with_row_id(True).to_batches(_SCAN_BATCH_ROWS))
        if not batches:
            return pa.array([], type=unique.type), np.zeros(0, dtype=np.uint64)
        stored = pa.Table.from_batches(batches)
        found = stored.filter(pc.is_in(stored.column(key), value_set=unique))
    column = found.column(key)
    keys = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return keys, _column_numpy(found.column("_rowid")).astype(np.uint64, copy=False)


def _has_key_index(handle: Any, key: str) -> bool:
    try:
        return any(list(getattr(ix, "columns", [])) == [key] for ix in handle.list_indices())
    except (ValueError, RuntimeError, OSError):  # pragma: no cover
        return False


def _member_sorted(sorted_values: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hit, index)``: whether each of ``values`` is in ``sorted_values`` and where (O(B log M))."""
    if len(sorted_values) == 0:
        return np.zeros(len(values), dtype=bool), np.zeros(len(values), dtype=np.int64)
    index = np.searchsorted(sorted_values, values)
    clipped = np.minimum(index, len(sorted_values) - 1)
    return sorted_values[clipped] == values, clipped


def _column_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column.to_numpy(zero_copy_only=False)


def _empty(handle: Any, columns: list[str]) -> pa.Table:
    schema = handle.schema
    return pa.schema([schema.field(name) for name in columns]).empty_table()


def _changed_rows_known(
    handle: Any, rows: pa.Table, key: str, keys: KeySet | None
) -> tuple[pa.Table, int]:
    """:func:`_changed_rows`, asking the table only about keys the key set may hold.

    Rows whose key the set surely lacks are new without a lookup, so an append of new keys costs
    O(len(rows) log^2 N) in memory, whatever the table holds.
    """
    if keys is None:
        return _changed_rows(handle, rows, key)
    maybe = keys.may_contain(hash_keys(rows.column(key)))
    if not maybe.any():
        return rows, 0
    changed, existing = _changed_rows(handle, rows.filter(pa.array(maybe)), key)
    if maybe.all():
        return changed, existing
    return pa.concat_tables([rows.filter(pa.array(~maybe)), changed]), existing


def _changed_rows(handle: Any, rows: pa.Table, key: str) -> tuple[pa.Table, int]:
    """The rows of ``rows`` that are new or differ from the stored row, and how many keys exist.

    Compares chunk by chunk (:data:`_UPSERT_COMPARE_CHUNK` rows), so memory stays O(len(rows)).
    """
    keep_parts: list[np.ndarray] = []
    names = rows.column_names
    existing = 0
    for start in range(0, rows.num_rows, _UPSERT_COMPARE_CHUNK):
        chunk = rows.slice(start, _UPSERT_COMPARE_CHUNK)
        stored = _read_keys(handle, names, chunk.column(key).combine_chunks(), key, None)
        keep = np.ones(chunk.num_rows, dtype=bool)
        if stored.num_rows:
            positions = pc.index_in(chunk.column(key), value_set=stored.column(key))
            matched = pc.is_valid(positions).to_numpy(zero_copy_only=False)
            existing += int(matched.sum())
            if matched.any():
                given = chunk.filter(pa.array(matched))
                aligned = stored.take(positions.drop_null())
                equal = np.ones(given.num_rows, dtype=bool)
                for name in names:
                    equal &= _column_equal(given.column(name), aligned.column(name))
                keep[np.flatnonzero(matched)[equal]] = False
        keep_parts.append(keep)
    if not keep_parts:
        return rows, existing
    keep_all = np.concatenate(keep_parts)
    if keep_all.all():
        return rows, existing
    return rows.filter(pa.array(keep_all)), existing


def _column_equal(left: pa.ChunkedArray | pa.Array, right: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Row-wise equality of two same-typed columns (null == null, NaN == NaN)."""
    if isinstance(left, pa.ChunkedArray):
        left = left.combine_chunks()
    if isinstance(right, pa.ChunkedArray):
        right = right.combine_chunks()
    n = len(left)
    both_null = (pc.is_null(left).to_numpy(zero_copy_only=False)
                 & pc.is_null(right).to_numpy(zero_copy_only=False))
    dtype = left.type
    if pa.types.is_fixed_size_list(dtype) and (
        pa.types.is_floating(dtype.value_type) or pa.types.is_integer(dtype.value_type)
    ) and left.null_count == 0 and right.null_count == 0:
        width = dtype.list_size
        a = left.flatten().to_numpy(zero_copy_only=False)
        b = right.flatten().to_numpy(zero_copy_only=False)
        if len(a) == n * width and len(b) == n * width:
            a = a.reshape(n, width)
            b = b.reshape(n, width)
            same = a == b
            if pa.types.is_floating(dtype.value_type):
                same |= np.isnan(a) & np.isnan(b)
            return same.all(axis=1)
    nested = pa.types.is_nested(dtype) or pa.types.is_dictionary(dtype)
    if not nested:
        try:
            equal = pc.fill_null(pc.equal(left, right), False).to_numpy(zero_copy_only=False)
            if pa.types.is_floating(dtype):
                nan = pc.fill_null(pc.and_(pc.is_nan(left), pc.is_nan(right)), False)
                equal = equal | nan.to_numpy(zero_copy_only=False)
            return equal | both_null
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            pass
    return np.fromiter(
        (x == y for x, y in zip(left.to_pylist(), right.to_pylist())), dtype=bool, count=n
    )


def string_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One contiguous Arrow ``string`` array of a string column (chunks combined, large_string
    cast; O(N))."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], type=column.type)
    return column if column.type == pa.string() else column.cast(pa.string())


def _strings_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    out = string_array(column).to_numpy(zero_copy_only=False)
    return out.astype(object, copy=False)


def _vectors_to_numpy(column: pa.ChunkedArray, dim: int) -> np.ndarray:
    """fixed_size_list<float> column -> float32 (n, dim) C-contiguous array without row loops."""
    n = len(column)
    out = np.empty((n, dim), dtype=np.float32)
    begin = 0
    for chunk in (column.chunks if isinstance(column, pa.ChunkedArray) else [column]):
        out[begin : begin + len(chunk)] = _vectors_view(chunk, dim)
        begin += len(chunk)
    return out


def _vectors_view(column: pa.Array | pa.ChunkedArray, dim: int) -> np.ndarray:
    """(n, dim) numpy view of a fixed_size_list column's value buffer (zero-copy for one chunk).

    The dtype is the stored one (float32 or float16); callers upcast while copying.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if column.null_count:
        raise SchemaError(f"the vector column holds {column.null_count} null vector(s).")
    values = column.flatten()  # honours the slice offset; zero-copy without nulls
    try:
        flat = values.to_numpy(zero_copy_only=True)
    except pa.ArrowInvalid:  # pragma: no cover - values with nulls
        flat = values.to_numpy(zero_copy_only=False)
    return flat.reshape(len(column), dim)


def _vector_storage_dtype(schema: pa.Schema, table: str) -> str:
    value_type = schema.field("vector").type.value_type
    return "float16" if pa.types.is_float16(value_type) else "float32"


def _vector_dim(schema: pa.Schema, table: str) -> int:
    if "id" not in schema.names or "vector" not in schema.names:
        raise SchemaError(
            f"table {table!r} is not an embedding table (needs columns 'id' and 'vector', has "
            f"{', '.join(schema.names)})."
        )
    dtype = schema.field("vector").type
    if not pa.types.is_fixed_size_list(dtype):
        raise SchemaError(
            f"column 'vector' of table {table!r} has type {dtype}; embedding tables store "
            "fixed_size_list<float32>[dim]. Rewrite it with write_vectors(..., mode='overwrite')."
        )
    return int(dtype.list_size)


def _check_metadata(metadata: Mapping[str, str] | None, table: str) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise SchemaError(f"metadata for table {table!r} must be a dict of str -> str.")
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise SchemaError(
                f"metadata for table {table!r} must map str -> str; entry {k!r}: {v!r} is "
                f"{type(k).__name__} -> {type(v).__name__} (encode configs with json.dumps)."
            )
    return dict(metadata)


def _check_vectors(vectors: Any, table: str) -> np.ndarray:
    matrix = np.asarray(vectors)
    if matrix.ndim != 2:
        raise SchemaError(
            f"vectors for table {table!r} must be a 2-D array (n, dim), got shape {matrix.shape}."
        )
    if matrix.shape[1] == 0:
        raise SchemaError(f"vectors for table {table!r} have dimension 0.")
    if not (np.issubdtype(matrix.dtype, np.floating) or np.issubdtype(matrix.dtype, np.integer)):
        raise SchemaError(f"vectors for table {table!r} must be numeric, got dtype {matrix.dtype}.")
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(matrix, dtype=np.float32)


def _check_vector_ids(ids: Any, n: int, table: str) -> pa.Array:
    if isinstance(ids, str):
        raise SchemaError(f"ids for table {table!r} must be a sequence of strings, not one string.")
    values = list(ids)
    if len(values) != n:
        raise SchemaError(
            f"write_vectors to table {table!r}: {len(values)} ids for {n} vectors; "
            "pass exactly one id per row."
        )
    for position, value in enumerate(values):
        if not isinstance(value, str):
            raise SchemaError(
                f"ids for table {table!r} must be strings; row {position} is "
                f"{type(value).__name__} {value!r}."
            )
    array = pa.array(values, type=pa.string())
    _check_keys(pa.table({"id": array}), table, "id")
    return array
