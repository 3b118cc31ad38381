"""The embedded (in-process) implementation of the curate API over ``index`` and ``embedders``.

A workspace is one directory of LanceDB tables (see :mod:`curate._tables` for the data model).
``curate.connect(path)`` returns a :class:`Workspace`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
import pyarrow as pa

from curate import _tables as T
from curate._version import __version__
from curate.api import EmbedReport, IngestReport, LabelReport, Problem, RunRecord, SelectionResult
from curate.api import EmbeddingEvaluation, SearchResult, finite_or_none
from curate.embedding_eval import evaluate_embeddings
from curate.errors import CorruptDataError, InvalidInputError, NotFoundError
from curate.export import export_run
from curate.fusion import fuse_embeddings
from curate.interface import WorkspaceAPI
from curate.labels_import import import_labels
from curate.loop import run_loop
from curate.pretraining import CACHE_DIR, CHECKPOINT_DIR, pretrain
from curate.problems import check_on_error, clear_problems, list_problems, record_problems, summarise
from curate.progress import Progress, progress_bar
from curate.reports import ImportReport, LoopReport, PretrainReport
from curate.selectors import Selector, create_selector
from curate.selectors.base import check_budget
from curate.scores_table import SCORES, read_scores, score_runs, scores_rows
from curate.search import search
from curate.selectors._distances import min_sq_dist_to_set
from curate.selectors.sharded import Sharded
from curate.sources.base import BadFrame, FrameRecord, Source
from curate.store_queries import (
    check_embedding_name,
    embedding_names,
    next_run_id,
    read_boxes,
    require_embedding,
    require_samples,
)
from index.store import Store, string_array

__all__ = ["Workspace", "PlannedSelection"]

logger = logging.getLogger(__name__)

#: Row x centre pairs (1e7) above which the diagnostic coverage radius of a selection that does not
#: report one (random, uncertainty) is measured on a seeded sample of rows (a lower bound).
_COVERAGE_MAX_PAIRS = 10_000_000


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _id_in(ids: Sequence[str]) -> str:
    return "id IN (" + ", ".join(_sql_str(i) for i in ids) + ")"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class PlannedSelection:
    """A selection computed at pinned table versions and not stored yet (:meth:`Workspace.plan_selection`).

    Attributes
    ----------
    run : RunRecord
        The run record, ``run_id`` still empty.
    versions : dict of str -> int
        Version of every table the selection read (``samples``, the embedding, ``scores``).
    """

    __slots__ = ("run", "versions")

    def __init__(self, run: RunRecord, versions: dict[str, int]) -> None:
        self.run = run
        self.versions = dict(versions)

    def is_current(self, store: Store) -> bool:
        """Whether every table read still has the version the selection read (O(tables))."""
        return all(store.version(table) == version for table, version in self.versions.items())

    def conflicts(self, store: Store) -> list[str]:
        """Picked frames that are labeled or gone in the latest ``samples`` table (O(budget)).

        A planned run is a consistent snapshot at the versions it records (``reproduce`` gives
        the same ids), so a later write that does not touch its picks (labels of other frames,
        new frames, new vectors) does not invalidate it. Only picks that meanwhile became labeled
        or were removed would make the stored run wrong for the labeling queue.
        """
        picks = [str(i) for i in self.run.ids]
        if not picks or store.version(T.SAMPLES) == self.versions.get(T.SAMPLES):
            return []
        rows = store.read(T.SAMPLES, columns=["id", "labeled"], ids=picks, missing="ignore")
        still_free = {i for i, lab in zip(rows.column("id").to_pylist(), rows.column("labeled").to_pylist())
                      if not lab}
        return [i for i in picks if i not in still_free]


class Workspace(WorkspaceAPI):
    """A local curate workspace: frames, embeddings, labels and selection runs in one directory.

    Parameters
    ----------
    path : str or pathlib.Path
        Workspace directory; created when missing unless ``create=False``.
    create : bool
        Whether to create a missing directory.

    Examples
    --------
    >>> ws = curate.connect("./curate-workspace")          # doctest: +SKIP
    >>> ws.ingest(KittiSource("data/kitti"))                 # doctest: +SKIP
    >>> ws.embed("recon-tiny")                               # doctest: +SKIP
    >>> sel = ws.select("kcenter", 50, embedding="recon-tiny")  # doctest: +SKIP
    """

    def __init__(self, path: Union[str, Path], *, create: bool = True) -> None:
        self.path = Path(path)
        self.store = Store(self.path, create=create)

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    # ------------------------------------------------------------------ frames
    def ingest(
        self, source: Source, *, batch_size: int = 2000, progress: Optional[bool] = None,
        on_error: str = "skip",
    ) -> IngestReport:
        check_on_error(on_error)
        start = time.perf_counter()
        before = {t: self.store.version(t) for t in (T.SAMPLES, T.LABELS) if self.store.has_table(t)}
        frames = boxes = 0
        bad: list[Problem] = []
        good_ids: list[str] = []
        records = source.records(on_error=on_error) if hasattr(source, "records") else source
        try:
            batch: list[FrameRecord] = []
            total = len(source) if hasattr(source, "__len__") else None
            with progress_bar(total=total, desc="ingest", unit="frame", enable=progress) as bar:
                for record in records:
                    if isinstance(record, BadFrame):
                        bad.append(Problem(frame_id=record.id, stage="ingest", kind=record.kind,
                                           file=record.file, reason=record.reason))
                        bar.update(1)
                        continue
                    good_ids.append(record.id)
                    batch.append(record)
                    if len(batch) >= batch_size:
                        boxes += self._write_frames(batch)
                        frames += len(batch)
                        bar.update(len(batch))
                        batch = []
                if batch:
                    boxes += self._write_frames(batch)
                    frames += len(batch)
                    bar.update(len(batch))
        except BaseException:
            self._rollback(before)
            raise
        if self.store.has_table("problems") and good_ids:
            clear_problems(self.store, "ingest", good_ids)
        if bad:
            record_problems(self.store, bad)
            logger.warning("ingest of %s: %s", getattr(source, "name", source),
                           summarise(bad, "ingest"))
        if frames == 0:
            logger.warning("source %s yielded no frames", getattr(source, "name", source))
        return IngestReport(
            source=str(getattr(source, "name", type(source).__name__)),
            frames_seen=frames,
            frames_total=self.store.count(T.SAMPLES) if self.store.has_table(T.SAMPLES) else 0,
            boxes_seen=boxes,
            samples_version=self.store.version(T.SAMPLES) if self.store.has_table(T.SAMPLES) else 0,
            seconds=time.perf_counter() - start,
            frames_bad=len(bad),
        )

    def _write_frames(self, batch: list[FrameRecord]) -> int:
        ids = [r.id for r in batch]
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dup = next(i for i in ids if i in seen or seen.add(i))
            raise InvalidInputError(
                f"the source yields frame id {dup!r} twice; give each source a distinct prefix"
            )
        labeled: dict[str, bool] = {}
        if self.store.has_table(T.SAMPLES):
            existing = self.store.read(
                T.SAMPLES, columns=["id", "labeled"], ids=ids, missing="ignore"
            )
            labeled = dict(zip(existing["id"].to_pylist(), existing["labeled"].to_pylist()))
        self.store.upsert(T.SAMPLES, T.samples_rows(batch, labeled))
        rows = T.labels_rows(batch)
        if rows.num_rows:
            self.store.upsert(T.LABELS, rows)
        return rows.num_rows

    def _rollback(self, before: dict[str, int]) -> None:
        for table in (T.SAMPLES, T.LABELS):
            if not self.store.has_table(table):
                continue
            try:
                if table in before:
                    if self.store.version(table) != before[table]:
                        self.store.restore(table, before[table])
                else:
                    self.store.drop_table(table)
            except Exception:  # pragma: no cover - best effort, report the original error
                logger.exception("could not roll back table %s", table)

    def count(self, where: Optional[str] = None) -> int:
        if not self.store.has_table(T.SAMPLES):
            return 0
        return self.store.count(T.SAMPLES, where=where)

    def frames(
        self,
        *,
        where: Optional[str] = None,
        columns: Optional[Sequence[str]] = None,
        ids: Optional[Sequence[str]] = None,
        version: Optional[int] = None,
    ) -> pa.Table:
        self._require_samples()
        return self.store.read(
            T.SAMPLES, columns=list(columns) if columns else None, where=where, ids=ids,
            version=version,
        )

    def boxes(self, frame_ids: Sequence[str], *, labeled_only: bool = True) -> pa.Table:
        return read_boxes(self.store, frame_ids, labeled_only=labeled_only)

    def _require_samples(self) -> None:
        require_samples(self.store)

    # ------------------------------------------------------------------ labels
    def label(self, ids: Iterable[str]) -> LabelReport:
        self._require_samples()
        wanted = list(dict.fromkeys(str(i).strip() for i in ids if str(i).strip()))
        if not wanted:
            raise InvalidInputError("no frame ids given to label")
        state = self.store.read(T.SAMPLES, columns=["id", "labeled"], ids=wanted, missing="ignore")
        found = set(state["id"].to_pylist())
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFoundError(
                f"{len(missing)} of {len(wanted)} ids are not frames of this workspace "
                f"(first: {', '.join(missing[:5])}); nothing was labeled"
            )
        todo = [i for i, lab in zip(state["id"].to_pylist(), state["labeled"].to_pylist()) if not lab]
        version = self.store.version(T.SAMPLES)
        if todo:
            # One commit for any number of ids: the rows with the flag set, upserted by id.
            rows = self.store.read(T.SAMPLES, ids=todo)
            flag = rows.schema.get_field_index("labeled")
            rows = rows.set_column(flag, rows.schema.field(flag),
                                   pa.array([True] * rows.num_rows, rows.schema.field(flag).type))
            version = self.store.upsert(T.SAMPLES, rows)
        return LabelReport(
            requested=len(wanted),
            newly_labeled=len(todo),
            labeled_total=self.store.count(T.SAMPLES, where="labeled = true"),
            samples_version=version,
        )

    def labeled_ids(self) -> list[str]:
        self._require_samples()
        return [str(i) for i in self.store.ids(T.SAMPLES, where="labeled = true")]

    def problems(self, *, stage: Optional[str] = None, severity: Optional[str] = None) -> list[Problem]:
        return list_problems(self.store, stage=stage, severity=severity)

    # ------------------------------------------------------------------ embeddings
    def embeddings(self) -> list[str]:
        return embedding_names(self.store)

    def versions(self) -> dict[str, int]:
        out = {t: self.store.version(t) for t in (T.SAMPLES, T.LABELS, T.RUNS, SCORES)
               if self.store.has_table(t)}
        out.update({f"embedding:{n}": self.store.version(T.embedding_table(n)) for n in self.embeddings()})
        return out

    def embedding_info(self, name: str) -> dict[str, str]:
        self._require_embedding(name)
        return self.store.table_metadata(T.embedding_table(name))

    def _require_embedding(self, name: str) -> str:
        return require_embedding(self.store, name)

    def embed(
        self,
        model: Any,
        *,
        name: Optional[str] = None,
        batch_size: int = 8,
        write_every: int = 256,
        device: str = "auto",
        progress: Progress = None,
        num_workers: Optional[int] = None,
        precision: str = "auto",
        dtype: str = "float32",
        on_error: str = "skip",
        engine: str = "local",
        address: Optional[str] = None,
        workers: Optional[int] = None,
        **config: Any,
    ) -> EmbedReport:
        from curate.embedding import build_embedder
        from curate.jobs.embed import EmbedJob, run_embed_job

        self._require_samples()
        emb = build_embedder(model, **config)
        job = EmbedJob(
            name=check_embedding_name(name or emb.name), batch_size=batch_size, write_every=write_every,
            device=device, num_workers=num_workers, precision=precision, progress=progress,
            dtype=dtype, on_error=on_error,
        )
        if engine == "ray":
            import functools

            from curate.jobs.ray_engine import run_ray_embed_job

            build = functools.partial(build_embedder, model, **config) if isinstance(model, str) else None
            return run_ray_embed_job(self.store, emb, job, build=build, address=address,
                                     workers=workers)
        if engine != "local" or address is not None or workers is not None:
            raise InvalidInputError(
                f"engine must be 'local' or 'ray' (address= and workers= are for engine='ray'); "
                f"got engine={engine!r}"
            )
        return run_embed_job(self.store, emb, job)

    def fuse(
        self,
        sources: Sequence[str],
        *,
        name: str = "fused",
        weights: Optional[Sequence[float]] = None,
        method: str = "concat",
        progress: Optional[bool] = None,
    ) -> EmbedReport:
        self._require_samples()
        check_embedding_name(name)
        return fuse_embeddings(
            self.store, sources, name=name, weights=weights, method=method, progress=progress
        )

    def vectors(
        self, embedding: str, ids: Optional[Sequence[str]] = None, *, version: Optional[int] = None
    ) -> tuple[np.ndarray, np.ndarray]:
        table = self._require_embedding(embedding)
        return self.store.read_vectors(table, ids=ids, version=version)

    # ------------------------------------------------------------------ selection
    def select(
        self,
        strategy: Union[str, Selector],
        budget: int,
        *,
        embedding: str,
        where: Optional[str] = None,
        seed: int = 0,
        score_run: Optional[str] = None,
        shards: Optional[int] = None,
        engine: str = "local",
        **params: Any,
    ) -> SelectionResult:
        planned = self.plan_selection(strategy, budget, embedding=embedding, where=where, seed=seed,
                                      score_run=score_run, shards=shards, engine=engine, **params)
        return self.store_selection(planned)

    def plan_selection(
        self,
        strategy: Union[str, Selector],
        budget: int,
        *,
        embedding: str,
        where: Optional[str] = None,
        seed: int = 0,
        score_run: Optional[str] = None,
        shards: Optional[int] = None,
        engine: str = "local",
        **params: Any,
    ) -> "PlannedSelection":
        """Compute a selection at the current table versions without storing it.

        The first half of :meth:`select` (same arguments): reads the versions of ``samples``,
        the embedding and (with ``score_run``) ``scores``, then selects reading only those pinned
        versions. It writes nothing, so a server runs it outside its writer lock and then calls
        :meth:`store_selection` under the lock, after :meth:`PlannedSelection.is_current`
        confirmed that no write changed those tables in between (otherwise it plans again).

        Returns
        -------
        PlannedSelection
            The run record (``run_id`` empty) and the table versions it read.
        """
        check_budget(budget)  # type and sign, before any read; the pool size is checked below
        selector = strategy if isinstance(strategy, Selector) else create_selector(strategy, **params)
        if params and isinstance(strategy, Selector):
            raise InvalidInputError("pass parameters to the selector's constructor, not to select()")
        if shards is not None:
            selector = Sharded(selector, shards=shards, engine=engine)
        elif engine != "local":
            raise InvalidInputError(f"engine={engine!r} needs shards= (the number of partitions)")
        self._require_samples()
        table = self._require_embedding(embedding)
        if where is not None:
            self.store.validate_where(T.SAMPLES, where)
        versions = self._input_versions(table, score_run)
        run = self._run_selection(
            selector, budget, table=table, embedding=embedding, where=where, seed=seed,
            samples_version=versions[T.SAMPLES], embedding_version=versions[table],
            score_run=score_run,
        )
        return PlannedSelection(run=run, versions=versions)

    def _input_versions(self, table: str, score_run: Optional[str]) -> dict[str, int]:
        versions = {T.SAMPLES: self.store.version(T.SAMPLES), table: self.store.version(table)}
        if score_run is not None and self.store.has_table(T.SCORES):
            versions[T.SCORES] = self.store.version(T.SCORES)
        return versions

    def store_selection(self, planned: "PlannedSelection") -> SelectionResult:
        """Give a planned run the next run id and append it to ``runs`` (one commit)."""
        run = planned.run.model_copy(update={"run_id": self._next_run_id()})
        self.store.append(T.RUNS, T.run_row(run))
        logger.info("stored %s: %s picked %d frames", run.run_id, run.strategy, len(run.ids))
        return SelectionResult(run=run)

    def _run_selection(
        self,
        selector: Selector,
        budget: int,
        *,
        table: str,
        embedding: str,
        where: Optional[str],
        seed: int,
        samples_version: int,
        embedding_version: int,
        score_run: Optional[str] = None,
        scores_version: Optional[int] = None,
    ) -> RunRecord:
        start = time.perf_counter()
        if score_run is None and getattr(selector, "needs_scores", False):
            raise InvalidInputError(
                f"strategy {selector.name!r} needs uncertainty scores; pass score_run= (a stored "
                f"prediction run: {', '.join(self.score_runs()) or 'none yet, run `curate loop`'})"
            )
        candidates, labeled = self._pool_ids(where, samples_version)
        # Frames without a vector (not embedded yet, or bad frames the embedding job skipped) are
        # left out and counted: the vector gather below says which ids have one (its one scan
        # of the embedding's id column is the only one), so no extra pass over the ids.
        scope = f" matching {where!r}" if where else ""
        budget = check_budget(budget, len(candidates), pool=f"unlabeled frames{scope}")
        # ids stay Arrow string arrays: the id bytes plus 4-byte offsets, no Python str object
        # (about 60 bytes) and pointer per id
        pool = pa.concat_arrays([candidates, labeled])
        run_selector, pool = self._resolve_query_ids(selector, pool, samples_version)
        # A float16 table stays float16 for selectors that upcast block by block (half the
        # memory: the pool is never held as float32); every other selector gets float32.
        upcast = not getattr(run_selector, "accepts_float16", False)
        read_start = time.perf_counter()
        vecs, found = self.store.gather_vectors(table, pool, version=embedding_version,
                                                upcast=upcast)
        read_seconds = time.perf_counter() - read_start
        n_c, n_l = len(candidates), len(labeled)
        keep_c, keep_l = found[:n_c], found[n_c:n_c + n_l]
        skipped = {"candidates": int(n_c - keep_c.sum()), "labeled": int(n_l - keep_l.sum())}
        if skipped["candidates"] or skipped["labeled"]:
            logger.warning(
                "selection skips %d candidate and %d labeled frame(s) without a %r vector; run "
                "`curate embed` (or see `curate problems`) to include them",
                skipped["candidates"], skipped["labeled"], embedding,
            )
        if not found.all():
            candidates, labeled = candidates.filter(keep_c), labeled.filter(keep_l)
            if getattr(selector, "needs_query_ids", False):
                # Rare: query positions move with the dropped rows; resolve and gather again.
                run_selector, pool = self._resolve_query_ids(
                    selector, pa.concat_arrays([candidates, labeled]), samples_version)
                vecs, found = self.store.gather_vectors(table, pool, version=embedding_version,
                                                        upcast=upcast)
            else:
                # Drop the rows without a vector (one copy of the vectors, only in this case).
                pool, vecs, found = pool.filter(found), vecs[found], found[found]
        if not found.all():  # only query frames added by _resolve_query_ids can miss here
            missing = pool.take(np.flatnonzero(~found)).to_pylist()
            raise NotFoundError(
                f"{len(missing)} query frame(s) have no {embedding!r} vector "
                f"(first: {', '.join(missing[:5])}); run `curate embed` for them first"
            )
        budget = check_budget(budget, len(candidates), pool=f"unlabeled frames{scope}")
        mask = np.zeros(len(pool), dtype=bool)
        mask[len(candidates):] = True
        scores = None
        if score_run is not None:
            if scores_version is None and self.store.has_table(SCORES):
                scores_version = self.store.version(SCORES)
            _, cand_scores = read_scores(self.store, score_run, ids=candidates.to_pylist(),
                                         version=scores_version)
            scores = {
                k: np.concatenate([v, np.zeros(len(pool) - len(candidates))])
                for k, v in cand_scores.items()
            }
        constraints: dict[str, Any] = {}
        if getattr(selector, "needs_groups", False):
            # per-drive caps: the group of a frame is its scene (drive)
            rows = self.store.read(T.SAMPLES, columns=["id", "scene"], ids=pool, version=samples_version)
            constraints["groups"] = np.asarray(rows["scene"].to_pylist(), dtype=object)
        select_start = time.perf_counter()
        result = run_selector.select(vecs, budget, labeled=mask, scores=scores, seed=seed,
                                     **constraints)
        select_seconds = time.perf_counter() - select_start
        info = dict(result.info)
        if skipped["candidates"] or skipped["labeled"]:
            info["skipped_without_vector"] = skipped
        logger.info("selection %s over %d rows: vectors read in %.3f s, selector %.3f s",
                    selector.name, len(pool), read_seconds, select_seconds)
        if score_run is not None:
            info["score_run"] = score_run
            info["scores_version"] = scores_version
        if "coverage_radius" not in info:
            centers = np.concatenate([result.indices, np.flatnonzero(mask)])
            rows = vecs
            if len(vecs) * centers.size > _COVERAGE_MAX_PAIRS:
                # O(N * centers * d) would dwarf a cheap selector: measure on a seeded sample of
                # rows instead (a lower bound of the radius), and say so.
                sample = np.sort(np.random.default_rng(seed).choice(
                    len(vecs), size=max(1, _COVERAGE_MAX_PAIRS // max(centers.size, 1)),
                    replace=False))
                rows = vecs[sample]
                info["coverage_radius_sampled_rows"] = int(sample.size)
            radius_sq = min_sq_dist_to_set(np.asarray(rows, dtype=np.float32),
                                           np.asarray(vecs[centers], dtype=np.float32))
            info["coverage_radius"] = float(np.sqrt(radius_sq.max())) if centers.size else None
        return RunRecord(
            run_id="",
            created_at=_now(),
            strategy=selector.name,
            params=selector.params(),
            budget=int(budget),
            seed=int(seed),
            embedding=embedding,
            embedding_version=int(embedding_version),
            samples_version=int(samples_version),
            where=where,
            num_candidates=len(candidates),
            num_labeled=len(labeled),
            ids=pool.take(np.asarray(result.indices, dtype=np.int64)).to_pylist(),
            gains=[finite_or_none(g) for g in result.gains],
            info=info,
            package_version=__version__,
            seconds=time.perf_counter() - start,
        )

    def _pool_ids(self, where: Optional[str], samples_version: int) -> tuple[pa.Array, pa.Array]:
        """Sorted ids of the unlabeled frames (matching ``where``) and of the labeled frames, as
        Arrow string arrays (no Python object per id).

        Without a filter: one scan of ``samples``' ``id`` and ``labeled`` columns, split by the
        flag (O(N log N) for the sort). With one: the filtered candidates and the labeled frames
        (context whatever the filter) as two filtered reads.
        """
        if where is None:
            rows = self.store.read(T.SAMPLES, columns=["id", "labeled"], version=samples_version)
            flag = rows.column("labeled").to_numpy(zero_copy_only=False).astype(bool)
            ids = string_array(rows.column("id"))
            return ids.filter(~flag), ids.filter(flag)
        candidates = self.store.id_array(T.SAMPLES, where=f"({where}) AND labeled = false",
                                         version=samples_version)
        labeled = self.store.id_array(T.SAMPLES, where="labeled = true", version=samples_version)
        return candidates, labeled

    def _resolve_query_ids(
        self, selector: Selector, pool: pa.Array, samples_version: int
    ) -> tuple[Selector, pa.Array]:
        """Map a selector's ``query_ids`` / ``query_run`` (``query_similarity``) to pool rows.

        Query frames outside ``pool`` (filtered out by ``where``) are appended to it as context
        rows (never picked). Unknown ids raise :class:`NotFoundError` naming them. Other
        selectors pass through unchanged.
        """
        if not getattr(selector, "needs_query_ids", False):
            return selector, pool
        wanted = list(selector.query_ids or [])
        if selector.query_run is not None:
            wanted += self.run(selector.query_run).ids
        wanted = list(dict.fromkeys(str(i) for i in wanted))
        known = self.store.read(T.SAMPLES, columns=["id"], ids=wanted, version=samples_version,
                                missing="ignore")
        have = set(known.column("id").to_pylist())
        unknown = [i for i in wanted if i not in have]
        if unknown:
            raise NotFoundError(
                f"{len(unknown)} of {len(wanted)} query ids are not frames of {self.path}: "
                f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}; "
                "`curate search` / `curate runs` show valid frame ids"
            )
        position = {fid: r for r, fid in enumerate(pool.to_pylist())}
        extra = [i for i in wanted if i not in position]
        pool = pa.concat_arrays([pool, pa.array(extra, type=pool.type)])
        position.update({fid: len(pool) - len(extra) + r for r, fid in enumerate(extra)})
        return selector.with_query_rows([position[i] for i in wanted]), pool

    def reproduce(self, run_id: str) -> list[str]:
        run = self.run(run_id)
        selector = create_selector(run.strategy, **run.params)
        again = self._run_selection(
            selector, run.budget, table=self._require_embedding(run.embedding),
            embedding=run.embedding, where=run.where, seed=run.seed,
            samples_version=run.samples_version, embedding_version=run.embedding_version,
            score_run=run.info.get("score_run"), scores_version=run.info.get("scores_version"),
        )
        return again.ids

    # ------------------------------------------------------------------ scores
    def write_scores(
        self,
        run: str,
        ids: Sequence[str],
        columns: Any,
        *,
        predictions: Optional[Sequence[Any]] = None,
    ) -> int:
        self._require_samples()
        ids = [str(i) for i in ids]
        rows = scores_rows(run, ids, columns, predictions)
        known = self.store.read(T.SAMPLES, columns=["id"], ids=ids, missing="ignore")
        if known.num_rows != len(set(ids)):
            have = set(known.column("id").to_pylist())
            missing = [i for i in ids if i not in have]
            raise NotFoundError(
                f"{len(missing)} of {len(ids)} ids are not frames of {self.path} "
                f"(first: {', '.join(missing[:5])}); no scores written"
            )
        return self.store.upsert(SCORES, rows)

    def scores(self, run: str, ids: Optional[Sequence[str]] = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return read_scores(self.store, run, ids)

    def score_runs(self) -> list[str]:
        return score_runs(self.store)

    # ------------------------------------------------------------------ detector loop
    def loop(self, config: Any = None, **options: Any) -> LoopReport:
        return run_loop(self, config, **options)

    def _next_run_id(self) -> str:
        return next_run_id(self.store)

    def runs(
        self,
        kind: Optional[str] = None,
        *,
        run_ids: Optional[Sequence[str]] = None,
        where: Optional[str] = None,
    ) -> list[RunRecord]:
        if not self.store.has_table(T.RUNS):
            return []
        clauses = []
        if kind is not None:
            clauses.append(f"kind = {_sql_str(str(kind))}")
        if run_ids is not None:
            wanted = [str(i) for i in run_ids]
            if not wanted:
                return []
            clauses.append(_id_in(wanted))
        if where is not None:
            self.store.validate_where(T.RUNS, where)
            clauses.append(f"({where})")
        table = self.store.read(T.RUNS, where=" AND ".join(clauses) if clauses else None)
        return [T.run_from_row(r) for r in table.to_pylist()]

    def run(self, run_id: str) -> RunRecord:
        if self.store.has_table(T.RUNS):
            rows = self.store.read(T.RUNS, where=f"id = {_sql_str(run_id)}").to_pylist()
            if rows:
                return T.run_from_row(rows[0])
        known = [r.run_id for r in self.runs()][-5:]
        raise NotFoundError(
            f"no run {run_id!r} in {self.path} (latest: {', '.join(known) or 'none'}); "
            "`curate runs` lists them"
        )

    # ------------------------------------------------------------------ search
    def search(
        self,
        embedding: str,
        *,
        ids: Optional[Sequence[str]] = None,
        vectors: Any = None,
        k: int = 10,
        where: Optional[str] = None,
        metric: str = "l2",
        exclude_self: bool = True,
        version: Optional[int] = None,
        nprobe: Optional[int] = None,
    ) -> SearchResult:
        return search(self.store, embedding, ids=ids, vectors=vectors, k=k, where=where, metric=metric,
                      exclude_self=exclude_self, version=version, nprobe=nprobe)

    # ------------------------------------------------------------------ export
    def export(
        self,
        run_id: str,
        fmt: str,
        out: Union[str, Path],
        *,
        base_url: Optional[str] = None,
        path_root: Optional[str] = None,
    ) -> Path:
        return export_run(self.run(run_id), fmt, Path(out), workspace=self, base_url=base_url,
                          path_root=path_root)

    def import_labels(
        self,
        paths: Union[str, Path, Sequence[Union[str, Path]]],
        *,
        format: str = "kitti",
        prefix: Optional[str] = None,
    ) -> ImportReport:
        return import_labels(self.store, paths, format=format, prefix=prefix)

    # ------------------------------------------------------------------ pretraining
    def pretrain(self, config: Any = None, *, progress: Progress = None) -> PretrainReport:
        return pretrain(self.store, config, progress=progress)

    def pretrain_image(self, config: Any = None, *, progress: Progress = None) -> PretrainReport:
        from embedders import EmbedderError
        from embedders.pretrain_image import ImageReadError, load_image_config, load_images, train

        try:
            cfg = load_image_config(config)
        except EmbedderError as exc:
            raise InvalidInputError(str(exc)) from exc
        self._require_samples()
        rows = self.store.read(T.SAMPLES, columns=["id", "image_paths"],
                               where=cfg.data.where or None).to_pylist()
        rows.sort(key=lambda row: row["id"])
        cameras = [list(row["image_paths"] or []) for row in rows]
        paths = [p for c in cameras for p in (c if cfg.data.cameras == "all" else c[:1])]
        if not paths:
            raise InvalidInputError(
                f"no camera images among the {len(rows)} frames matching where={cfg.data.where!r}; "
                "ingest frames with images (image_paths) or change [data] where"
            )
        try:
            images = load_images(paths, cfg.data.image_size, cache_dir=self.path / CACHE_DIR,
                                 progress=progress)
            result = train(cfg, images, self.path / CHECKPOINT_DIR / cfg.name, progress=progress,
                           extra={"frames": len(rows), "images": len(paths)})
        except ImageReadError as exc:
            raise CorruptDataError(str(exc)) from exc
        except EmbedderError as exc:
            raise InvalidInputError(str(exc)) from exc
        return PretrainReport(
            run_name=cfg.name, run_dir=str(result.run_dir), checkpoint=str(result.checkpoint),
            steps=result.steps, start_step=result.start_step, frames=len(rows),
            final_losses=result.final_losses, seconds=result.seconds,
            embed_options={"image_size": list(cfg.data.image_size)}, model="image-ssl",
        )

    def evaluate_embeddings(
        self,
        names: Sequence[str],
        *,
        k: int = 10,
        window: int = 5,
        columns: Optional[Sequence[str]] = None,
        labels: str = "labeled",
        where: Optional[str] = None,
        duplicate_threshold: float = 0.98,
        test_fraction: float = 0.3,
        seed: int = 0,
        out: Optional[Union[str, Path]] = None,
    ) -> EmbeddingEvaluation:
        for name in names:
            self._require_embedding(name)
        return evaluate_embeddings(
            self, names, k=k, window=window, columns=columns, labels=labels, where=where,
            duplicate_threshold=duplicate_threshold, test_fraction=test_fraction, seed=seed,
            out=out,
        )
