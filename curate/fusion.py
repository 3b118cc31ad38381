"""Fused frame vectors: several embeddings of the same frames combined into one embedding table.

Each source vector is L2-normalised (zero vectors stay zero), multiplied by its source's weight
(default 1), and the sources are combined per frame:

``"concat"``
    ``[w_1 * v_1 / |v_1|, ..., w_k * v_k / |v_k|]``, dimension ``sum(d_i)``. The squared distance
    between two fused vectors is the weighted sum of the per-source squared distances between
    normalised vectors, so each source counts by its weight whatever its dimension or scale.
``"mean"``
    ``sum_i w_i * v_i / |v_i| / sum_i w_i``; all sources must have the same dimension.

The fused vectors are not re-normalised. The result is written as an ordinary embedding table
(selectable by name) whose metadata records ``embedder = "fusion"``, the method, the weights, and
for every source its embedding name, pinned table version, embedder, dimension and weights
checksum (``sources``), plus a checksum over all of that (``weights_sha256``).

Every frame of ``samples`` must have a vector in every source, else :class:`NotFoundError` names
the source and the first missing frames, and nothing is written. Work is done in chunks of frames:
memory O(chunk * sum(d_i)), time O(N * sum(d_i)).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np

from curate import _tables as T
from curate.api import EmbedReport
from curate.errors import InvalidInputError, NotFoundError
from curate.progress import progress_bar
from index.ids import isin as ids_isin
from index.store import Store

__all__ = ["FUSION_METHODS", "FusionSource", "fuse_embeddings", "fuse_vectors"]

logger = logging.getLogger(__name__)

#: Supported ways of combining the normalised source vectors.
FUSION_METHODS = ("concat", "mean")
#: Frames per chunk of work.
DEFAULT_CHUNK = 4096
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class FusionSource:
    """One source embedding of a fusion, pinned to a table version.

    Attributes
    ----------
    embedding : str
        Embedding name.
    version : int
        Table version read.
    embedder : str
        Embedder that made the vectors (from the table metadata).
    dim : int
        Vector size.
    weights_sha256 : str
        Checksum of the weights that made the vectors.
    weight : float
        Multiplier of the normalised vectors.
    """

    embedding: str
    version: int
    embedder: str
    dim: int
    weights_sha256: str
    weight: float

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable form (as stored in the table metadata)."""
        return {
            "embedding": self.embedding,
            "version": self.version,
            "embedder": self.embedder,
            "dim": self.dim,
            "weights_sha256": self.weights_sha256,
            "weight": self.weight,
        }


def fuse_vectors(
    blocks: Sequence[np.ndarray], weights: Sequence[float], method: str = "concat"
) -> np.ndarray:
    """Fuse row-aligned blocks of vectors (one block per source) for the same frames.

    Parameters
    ----------
    blocks : sequence of numpy.ndarray
        ``(n, d_i)`` arrays, row ``j`` of every block belonging to the same frame.
    weights : sequence of float
        One weight per block.
    method : {"concat", "mean"}
        See the module docstring.

    Returns
    -------
    numpy.ndarray
        float32 ``(n, sum(d_i))`` for concat, ``(n, d)`` for mean.
    """
    if method not in FUSION_METHODS:
        raise InvalidInputError(f"unknown fusion method {method!r}; valid: {', '.join(FUSION_METHODS)}")
    parts = []
    for block, weight in zip(blocks, weights):
        block = np.asarray(block, dtype=np.float32)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        scale = np.float32(weight) / np.maximum(norms, np.float32(1e-12))
        parts.append(block * scale)
    if method == "concat":
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)
    total = np.float32(sum(float(w) for w in weights))
    fused = parts[0].copy()
    for part in parts[1:]:
        fused += part
    fused /= total
    return fused


def _check_weights(weights: Optional[Sequence[float]], count: int) -> list[float]:
    if weights is None:
        return [1.0] * count
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise InvalidInputError(f"weights must be a list of {count} numbers, got {weights!r}")
    if len(weights) != count:
        raise InvalidInputError(
            f"got {len(weights)} weights for {count} source embeddings; give one weight per source"
        )
    out = []
    for index, weight in enumerate(weights):
        try:
            value = float(weight)
        except (TypeError, ValueError):
            raise InvalidInputError(f"weight {index} is not a number: {weight!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise InvalidInputError(f"weight {index} must be a finite number > 0, got {weight!r}")
        out.append(value)
    return out


def _describe_sources(
    store: Store, sources: Sequence[str], weights: list[float]
) -> list[FusionSource]:
    described = []
    available = sorted(
        t[len(T.EMBEDDING_PREFIX):] for t in store.table_names() if t.startswith(T.EMBEDDING_PREFIX)
    )
    for source, weight in zip(sources, weights):
        table = T.embedding_table(source)
        if not store.has_table(table):
            raise NotFoundError(
                f"no embedding named {source!r} to fuse (available: {', '.join(available) or 'none'}); "
                f"run `curate embed --model {source}` first"
            )
        meta = store.table_metadata(table)
        schema = store.schema(table)
        dim = int(schema.field("vector").type.list_size)
        described.append(
            FusionSource(
                embedding=source,
                version=int(store.version(table)),
                embedder=meta.get("embedder", "?"),
                dim=dim,
                weights_sha256=meta.get("weights_sha256", ""),
                weight=weight,
            )
        )
    return described


def _metadata(sources: list[FusionSource], method: str, dim: int) -> dict[str, str]:
    described = [s.to_dict() for s in sources]
    config = {"method": method, "sources": [s.embedding for s in sources],
              "weights": [s.weight for s in sources]}
    digest = hashlib.sha256(
        json.dumps({"method": method, "sources": described}, sort_keys=True).encode("utf-8")
    ).hexdigest()
    return {
        "embedder": "fusion",
        "config": json.dumps(config, sort_keys=True),
        "dim": str(dim),
        "modality": "fused",
        "method": method,
        "sources": json.dumps(described, sort_keys=True),
        "weights_sha256": digest,
    }


def fuse_embeddings(
    store: Store,
    sources: Sequence[str],
    *,
    name: str = "fused",
    weights: Optional[Sequence[float]] = None,
    method: str = "concat",
    chunk_size: int = DEFAULT_CHUNK,
    progress: Optional[bool] = None,
) -> EmbedReport:
    """Write the fused vectors of every frame as the embedding table ``name``.

    Parameters
    ----------
    store : index.store.Store
        The workspace store (``samples`` and the source embedding tables).
    sources : sequence of str
        Source embedding names (at least one, no repeats).
    name : str, default "fused"
        Name of the new embedding; replaced (new table version) if it exists.
    weights : sequence of float, optional
        One positive weight per source; default all 1.
    method : {"concat", "mean"}, default "concat"
        See the module docstring.
    chunk_size : int
        Frames per chunk (bounds memory).
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).

    Returns
    -------
    EmbedReport
        ``embedder="fusion"``; ``weights_sha256`` is the checksum of the fusion recipe.

    Raises
    ------
    InvalidInputError
        Bad name, method, weights, repeated sources, or dims that differ with ``method="mean"``.
    NotFoundError
        A source embedding does not exist, or lacks vectors for some frames (names them).

    Notes
    -----
    All validation happens before the first write. The table is replaced in its first chunk
    (``overwrite``) and completed by upserts; an interrupted fusion leaves an incomplete table,
    which selection reports (missing vectors); run the fusion again to complete it.
    Time O(N * sum(d_i)); memory O(chunk_size * sum(d_i)).
    """
    start = time.perf_counter()
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInputError(
            f"fused embedding name {name!r} must be letters, digits, '_', '-' or '.'"
        )
    if isinstance(sources, str) or not isinstance(sources, Sequence) or not sources:
        raise InvalidInputError(
            f"sources must be a non-empty list of embedding names, got {sources!r}"
        )
    sources = [str(s) for s in sources]
    if len(set(sources)) != len(sources):
        raise InvalidInputError(f"source embeddings repeat: {sources}; list each once")
    if name in sources:
        raise InvalidInputError(
            f"the fused embedding cannot overwrite its source {name!r}; choose another name"
        )
    if method not in FUSION_METHODS:
        raise InvalidInputError(f"unknown fusion method {method!r}; valid: {', '.join(FUSION_METHODS)}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidInputError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not store.has_table(T.SAMPLES):
        raise NotFoundError(f"workspace {store.path} has no frames yet; ingest a source first")
    described = _describe_sources(store, sources, _check_weights(weights, len(sources)))
    dims = [s.dim for s in described]
    if method == "mean" and len(set(dims)) != 1:
        raise InvalidInputError(
            "method='mean' needs sources of equal dimension, got "
            + ", ".join(f"{s.embedding}: {s.dim}" for s in described)
            + "; use method='concat'"
        )
    dim = sum(dims) if method == "concat" else dims[0]
    frame_ids = store.ids(T.SAMPLES)
    for source in described:
        have = store.ids(T.embedding_table(source.embedding), version=source.version)
        missing = frame_ids[~ids_isin(frame_ids, have)]
        if missing.size:
            raise NotFoundError(
                f"embedding {source.embedding!r} has no vector for {missing.size} of "
                f"{frame_ids.size} frames (first: {', '.join(map(str, missing[:5]))}); "
                f"run `curate embed --model {source.embedder} --name {source.embedding}` to "
                "complete it, then fuse again"
            )
    meta = _metadata(described, method, dim)
    table = T.embedding_table(name)
    version = store.version(table) if store.has_table(table) else 0
    mode = "overwrite"
    weights_list = [s.weight for s in described]
    with progress_bar(total=int(frame_ids.size), desc=f"fuse {name}", unit="frame",
                      enable=progress) as bar:
        for begin in range(0, frame_ids.size, chunk_size):
            chunk = frame_ids[begin : begin + chunk_size].tolist()
            blocks = [
                store.read_vectors(T.embedding_table(s.embedding), ids=chunk, version=s.version)[1]
                for s in described
            ]
            fused = fuse_vectors(blocks, weights_list, method)
            version = store.write_vectors(table, chunk, fused, metadata=meta, mode=mode)
            mode = "upsert"
            bar.update(len(chunk))
    logger.info("fused %s into %s (%s, %d-d, %d frames)", sources, name, method, dim, frame_ids.size)
    return EmbedReport(
        embedding=name,
        embedder="fusion",
        dim=int(dim),
        weights_sha256=meta["weights_sha256"],
        computed=int(frame_ids.size),
        skipped=0,
        total=store.count(table) if store.has_table(table) else 0,
        version=int(version),
        seconds=time.perf_counter() - start,
    )
