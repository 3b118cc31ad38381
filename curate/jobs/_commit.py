"""What the embedding jobs share around the model: what to embed, buffered commits, the report.

:func:`curate.jobs.embed.run_embed_job` (one process) and
:func:`curate.jobs.ray_engine.run_ray_embed_job` (Ray actors) differ only in where the vectors
are computed; both plan the same way (:func:`plan_embedding`: the table's metadata, which frames
still lack a vector, overwrite or upsert), write the same way (:class:`VectorCommitter`: vectors
buffered and written every ``write_every`` frames, problems recorded with them, the buffer written
on the way out of an error) and report the same way (:func:`embed_report`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate import _tables as T
from curate.api import EmbedReport, Problem
from curate.embedding import embedder_metadata
from curate.problems import clear_problems, list_problems, record_problems, summarise
from index.ids import isin as ids_isin
from index.store import Store

__all__ = ["EmbedPlan", "plan_embedding", "VectorCommitter", "embed_report", "missing_ids"]

logger = logging.getLogger(__name__)


def missing_ids(all_ids: np.ndarray, done: np.ndarray) -> list[str]:
    """Ids of ``all_ids`` not in ``done``, in ``all_ids`` order (one hashed join, O(N))."""
    if not len(done):
        return [str(i) for i in all_ids.tolist()]
    return all_ids[~ids_isin(all_ids, done)].tolist()


@dataclass
class EmbedPlan:
    """What an embedding job writes: its table, metadata, first write mode and frames to do."""

    table: str
    meta: dict[str, str]
    mode: str
    todo: list[str]
    skipped: int
    stage: str = field(default="")


def plan_embedding(store: Store, emb: Any, name: str, precision: str, dtype: str) -> EmbedPlan:
    """The frames of ``samples`` without a vector in embedding ``name`` from this model/setting.

    A table made by another model or setting (metadata differs) is recomputed from scratch
    (first write ``"overwrite"``); otherwise only the missing frames are done (``"upsert"``).
    O(N) in the number of frames (two id scans and one hashed join).
    """
    table = T.embedding_table(name)
    meta = embedder_metadata(emb)
    meta["precision"] = precision
    if dtype != "float32":  # float32 tables keep the metadata they always had
        meta["dtype"] = dtype
    all_ids = store.ids(T.SAMPLES)
    done = np.asarray([], dtype=object)
    mode = "overwrite"
    if store.has_table(table):
        old = store.table_metadata(table)
        if old == meta:
            done = store.ids(table)
            mode = "upsert"
        else:
            changed = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
            logger.info(
                "embedding %s was made by another model or setting (differs in %s); "
                "recomputing every frame", name, ", ".join(changed),
            )
    todo = missing_ids(all_ids, done)
    return EmbedPlan(table=table, meta=meta, mode=mode, todo=todo,
                     skipped=int(all_ids.size - len(todo)), stage=f"embed:{name}")


class VectorCommitter:
    """Buffers vectors and problems of one job and writes them to the store.

    ``add`` collects vectors; ``flush`` records the pending problems and writes the buffered
    vectors as one ``write_vectors`` commit (``overwrite`` for the very first write of a plan that
    recomputes everything, ``upsert`` after). ``finish`` flushes and clears the problems of frames
    that now succeeded. Memory: the buffer (``write_every`` vectors).
    """

    def __init__(self, store: Store, plan: EmbedPlan, dtype: str) -> None:
        self.store, self.plan, self.dtype = store, plan, dtype
        self.mode = plan.mode
        self.computed = 0
        self.bad = 0
        self.problems: list[Problem] = []
        self.ok_ids: list[str] = []
        self._ids: list[str] = []
        self._vecs: list[np.ndarray] = []

    @property
    def buffered(self) -> int:
        """Vectors waiting to be written."""
        return len(self._ids)

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        if ids:
            self._ids.extend(ids)
            self._vecs.append(vectors)

    def flush(self) -> None:
        if self.problems:
            record_problems(self.store, self.problems)
            self.problems.clear()
        if not self._ids:
            return
        self.store.write_vectors(self.plan.table, self._ids, np.concatenate(self._vecs, axis=0),
                                 metadata=self.plan.meta, mode=self.mode, dtype=self.dtype)
        self.mode = "upsert"
        self.computed += len(self._ids)
        self._ids.clear()
        self._vecs.clear()

    def flush_after_error(self, name: str) -> None:
        """Keep what was computed when the job stops on an error (also Ctrl-C)."""
        try:
            self.flush()
        except Exception:  # pragma: no cover - report the original error
            logger.exception("could not write the buffered vectors of %s", name)

    def finish(self) -> None:
        self.flush()
        if self.ok_ids:
            clear_problems(self.store, self.plan.stage, self.ok_ids)


def embed_report(store: Store, emb: Any, name: str, plan: EmbedPlan, computed: int, bad: int,
                 start: float) -> EmbedReport:
    """The job's :class:`EmbedReport` (and a warning summarising its bad frames, if any)."""
    if bad:
        logger.warning("embedding %s: %s", name,
                       summarise(list_problems(store, stage=plan.stage), f"embed {name}"))
    exists = store.has_table(plan.table)
    return EmbedReport(
        embedding=name,
        embedder=str(emb.name),
        dim=int(emb.dim),
        weights_sha256=plan.meta["weights_sha256"],
        computed=computed,
        skipped=plan.skipped,
        total=store.count(plan.table) if exists else 0,
        version=store.version(plan.table) if exists else 0,
        seconds=time.perf_counter() - start,
        frames_bad=bad,
    )
