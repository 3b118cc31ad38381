"""In-memory sets of the keys a table holds, so that appends of new keys skip the stored table.

An upsert must know which of its keys are already stored. Asking the table (an ``IN`` lookup on
the key index plus a scan of the rows written since the index was last updated) costs more as the
table grows. A :class:`KeySet` remembers 64-bit hashes of every stored key of one table at one
version, in sorted runs merged geometrically (a log-structured set):

- membership of B keys: O(B log^2 N) (one binary search per run, O(log N) runs);
- adding B keys: amortised O(B log N) (each hash is re-merged O(log N) times);
- memory: 8 bytes per stored key (+ duplicates of updated keys until the next merge);
- building it for a table already on disk: one streamed scan of the key column, O(N).

A hash hit is only a *maybe*: the caller looks those keys up in the table (exactly as before), so
the answer never depends on hash quality, only the speed does. A miss is certain, as long as the
set is valid for the table version it is used on (the store checks the version before every use
and drops the set after any write it did not account for).

Hashes: strings and binaries get a polynomial hash over their bytes (mod 2^64, vectorised over the
Arrow buffers, no Python objects) finished with the SplitMix64 mixer; integers get the mixer alone.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import pyarrow as pa

logger = logging.getLogger(__name__)

__all__ = ["KeySet", "hash_keys", "keyset_supported"]

_P = np.uint64(0x100000001B3)  # FNV-64 prime: odd, so x -> P*x is a bijection mod 2^64
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_POWERS = np.ones(1, dtype=np.uint64)
_POWERS_LOCK = threading.Lock()
#: Keys hashed per step when hashing a long column (bounds the temporary byte arrays).
_HASH_CHUNK = 65_536


def keyset_supported(dtype: pa.DataType) -> bool:
    """Whether keys of ``dtype`` can be hashed (strings, binaries, integers)."""
    return (
        pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_binary(dtype)
        or pa.types.is_large_binary(dtype) or pa.types.is_integer(dtype)
    )


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (uint64 in, uint64 out, wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _MIX1
        x = x ^ (x >> np.uint64(27))
        x = x * _MIX2
        return x ^ (x >> np.uint64(31))


def _powers(n: int) -> np.ndarray:
    """``P**i mod 2**64`` for ``i < n`` (cached, grown by doubling)."""
    global _POWERS
    if len(_POWERS) < n:
        with _POWERS_LOCK:
            size = max(n, 2 * len(_POWERS))
            out = np.empty(size, dtype=np.uint64)
            out[0] = 1
            with np.errstate(over="ignore"):
                for i in range(1, size):  # size is the longest key in bytes: tiny
                    out[i] = out[i - 1] * _P
            _POWERS = out
    return _POWERS


def _hash_binary(array: pa.Array) -> np.ndarray:
    array = array.cast(pa.large_binary())
    n = len(array)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64, count=n + 1, offset=8 * array.offset)
    data = (np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None
            else np.zeros(0, dtype=np.uint8))
    begin, end = int(offsets[0]), int(offsets[-1])
    lengths = np.diff(offsets)
    starts = offsets[:-1] - begin
    segment = data[begin:end].astype(np.uint64)
    sums = np.zeros(n, dtype=np.uint64)
    if len(segment):
        position = np.arange(len(segment), dtype=np.int64) - np.repeat(starts, lengths)
        with np.errstate(over="ignore"):
            weighted = segment * _powers(int(lengths.max()))[position]
        nonempty = lengths > 0
        sums[nonempty] = np.add.reduceat(weighted, starts[nonempty])
    with np.errstate(over="ignore"):
        return _mix(sums ^ (lengths.astype(np.uint64) * _GOLDEN))


def hash_keys(values: Any) -> np.ndarray:
    """64-bit hashes of an Arrow key column (string, binary or integer), one per row. O(bytes)."""
    if isinstance(values, pa.ChunkedArray):
        parts = [hash_keys(chunk) for chunk in values.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    if not isinstance(values, pa.Array):
        values = pa.array(values)
    if pa.types.is_integer(values.type):
        with np.errstate(over="ignore"):
            return _mix(values.to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64) + _GOLDEN)
    if len(values) <= _HASH_CHUNK:
        return _hash_binary(values)
    return np.concatenate([_hash_binary(values.slice(i, _HASH_CHUNK))
                           for i in range(0, len(values), _HASH_CHUNK)])


class KeySet:
    """Hashes of the keys of one table at one version (see the module docstring).

    Parameters
    ----------
    version : int
        The table version the set describes.
    rows : int
        The table's row count at that version (a cheap consistency check after maintenance).
    """

    def __init__(self, version: int, rows: int) -> None:
        self.version = int(version)
        self.rows = int(rows)
        self._runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    def add(self, hashes: np.ndarray) -> None:
        """Add hashes; merge the newest runs while a run is at most twice the size of the next."""
        if len(hashes) == 0:
            return
        runs = list(self._runs)
        runs.append(np.sort(np.asarray(hashes, dtype=np.uint64)))
        while len(runs) > 1 and len(runs[-2]) <= 2 * len(runs[-1]):
            last = runs.pop()
            runs[-1] = np.sort(np.concatenate([runs[-1], last]), kind="stable")
        self._runs = runs  # one assignment: readers see the old or the new list

    def may_contain(self, hashes: np.ndarray) -> np.ndarray:
        """Boolean mask: True where the key may be stored (hash seen), False where it surely is not."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        hit = np.zeros(len(hashes), dtype=bool)
        for run in self._runs:
            if len(run) == 0:
                continue
            index = np.minimum(np.searchsorted(run, hashes), len(run) - 1)
            hit |= run[index] == hashes
        return hit

    @classmethod
    def scan(cls, handle: Any, key: str, batch_rows: int = 65_536) -> "KeySet":
        """Build the set of ``handle``'s table at its checked-out version: one scan of ``key``."""
        version = int(handle.version)
        parts = []
        rows = 0
        reader = handle.search().select([key]).limit(None).to_batches(batch_rows)
        for batch in reader:
            parts.append(hash_keys(batch.column(0)))
            rows += batch.num_rows
        out = cls(version, rows)
        if parts:
            out.add(np.concatenate(parts))
        logger.debug("key set of %d rows built at version %d", rows, version)
        return out
