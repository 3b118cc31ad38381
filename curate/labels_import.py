"""Import annotations made outside curate (KITTI ``label_2`` files) into the ``labels`` table.

A labeling team returns one ``<frame id>.txt`` per frame; :func:`import_labels` turns them into
``labels`` rows with ``origin = "import"`` (replacing the frame's earlier imported boxes, never its
source ground truth) and marks the frames labeled. Everything is validated first: an unknown
frame id or a malformed line raises an error that names the file and line, and nothing is
written. If a write fails part-way the tables are restored to the versions they had before.

Imported rows are keyed ``<frame id>#import#<box index>`` so that they never collide with the
boxes a source shipped (``<frame id>#<box index>``, ``origin = "source"``);
:func:`frame_labels` gives each frame's effective labels (imported when it has any, else source).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Optional, Protocol, Sequence, Union

import pyarrow as pa
import pyarrow.compute as pc

from curate import _tables as T
from curate.errors import CorruptDataError, InvalidInputError, NotFoundError
from curate.reports import ImportReport
from curate.sources.base import Box3D
from curate.sources.kitti import kitti_frame_id, parse_label_file
from curate.store_queries import require_samples
from index.store import Store

__all__ = ["ImportReport", "import_labels", "resolve_label_files", "frame_labels", "boxes_by_frame",
           "IMPORT_FORMATS"]

logger = logging.getLogger(__name__)

#: Formats :func:`import_labels` reads.
IMPORT_FORMATS: tuple[str, ...] = ("kitti",)
#: ``origin`` of imported rows in the ``labels`` table.
ORIGIN = "import"

_CHUNK = 500
_MAX_LISTED = 5

PathArg = Union[str, Path, Sequence[Union[str, Path]]]


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_list(column: str, values: Sequence[str]) -> str:
    return f"{column} IN (" + ", ".join(_sql_str(v) for v in values) + ")"


def resolve_label_files(paths: PathArg) -> list[Path]:
    """The label files named by ``paths``: files as given, folders as their ``*.txt`` files.

    Raises
    ------
    NotFoundError
        A path does not exist.
    InvalidInputError
        No label file found, a file that is not ``.txt``, or two files for the same frame.
    """
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not items:
        raise InvalidInputError("no label files or folders given to import")
    files: list[Path] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix == ".txt" and f.is_file())
            if not found:
                hint = " (it has a label_2 folder: pass that)" if (p / "label_2").is_dir() else ""
                raise InvalidInputError(f"{p}: folder holds no KITTI label files (*.txt){hint}")
            files.extend(found)
        elif p.is_file():
            if p.suffix != ".txt":
                raise InvalidInputError(f"{p}: a KITTI label file is named <frame id>.txt")
            files.append(p)
        else:
            raise NotFoundError(f"{p}: no such label file or folder")
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen and seen[f.stem].resolve() != f.resolve():
            raise InvalidInputError(
                f"two label files for frame {f.stem!r}: {seen[f.stem]} and {f}; import one of them"
            )
        seen[f.stem] = f
    return list(seen.values())


def _match_frames(
    stems: Sequence[str], ids: Sequence[str], prefix: Optional[str]
) -> tuple[dict[str, str], list[str], list[str]]:
    """Map file stems to workspace ids; returns the mapping, unknown and ambiguous stems."""
    id_set = set(ids)
    by_bare: dict[str, list[str]] = {}
    for fid in ids:
        by_bare.setdefault(kitti_frame_id(fid), []).append(fid)
    mapping: dict[str, str] = {}
    problems: list[str] = []
    ambiguous: list[str] = []
    for stem in stems:
        if prefix is not None:
            target = f"{prefix}/{stem}"
            if target in id_set:
                mapping[stem] = target
            else:
                problems.append(f"{stem}.txt: frame {target!r} is not in the workspace")
            continue
        if stem in id_set:
            mapping[stem] = stem
            continue
        candidates = by_bare.get(stem, [])
        if len(candidates) == 1:
            mapping[stem] = candidates[0]
        elif candidates:
            ambiguous.append(
                f"{stem}.txt: frame id {stem!r} is ambiguous ({', '.join(sorted(candidates)[:3])}); "
                "pass prefix= (--prefix) to say which source the labels belong to"
            )
        else:
            problems.append(f"{stem}.txt: no frame {stem!r} in the workspace")
    return mapping, problems, ambiguous


def _rows(frames: dict[str, list[Box3D]]) -> pa.Table:
    return T.box_rows(frames.items(), ORIGIN)


def _rollback(store: Store, before: dict[str, Optional[int]]) -> None:
    for table, version in before.items():
        try:
            if not store.has_table(table):
                continue
            if version is None:
                store.drop_table(table)
            elif store.version(table) != version:
                store.restore(table, version)
        except Exception:  # pragma: no cover - best effort; the original error is re-raised
            logger.exception("could not roll back table %s", table)


def import_labels(
    store: Store,
    paths: PathArg,
    *,
    format: str = "kitti",
    prefix: Optional[str] = None,
) -> ImportReport:
    """Import KITTI ``label_2`` files into ``labels`` and mark their frames labeled.

    Parameters
    ----------
    store : index.store.Store
        The target workspace's store (its frames must already be ingested);
        ``Workspace.import_labels`` passes its own.
    paths : str, Path or sequence of them
        Label files named ``<frame id>.txt`` and/or folders of them.
    format : str
        Annotation format; only ``"kitti"``.
    prefix : str, optional
        Source prefix of the frame ids (``kitti`` for ids like ``kitti/000123``). Without it a
        stem matches the id itself, or the one id whose last ``/`` part equals it.

    Returns
    -------
    ImportReport

    Raises
    ------
    NotFoundError
        A path or frame does not exist (every unknown frame file is listed, up to five).
    CorruptDataError
        A malformed line; the message names the file and the line number.
    InvalidInputError
        An unknown format, or ambiguous / duplicate frame files.

    Notes
    -----
    Each frame's earlier imported boxes are replaced; its source boxes stay. An empty file is a
    frame with no objects: it becomes labeled with zero imported boxes. Detection scores (a 16th
    field) are ignored. Time O(files + boxes + frames in the workspace), memory O(boxes + frames);
    nothing is written unless every file is valid.
    """
    start = time.perf_counter()
    if format not in IMPORT_FORMATS:
        raise InvalidInputError(
            f"unknown label format {format!r}; valid formats: {', '.join(IMPORT_FORMATS)}"
        )
    require_samples(store)
    files = resolve_label_files(paths)

    # 1. validate everything: frame ids and every line of every file
    all_ids = [str(i) for i in store.ids(T.SAMPLES)]
    mapping, problems, ambiguous = _match_frames([f.stem for f in files], all_ids, prefix)
    if ambiguous:
        raise InvalidInputError(
            f"{len(ambiguous)} label files match frames of several sources: "
            f"{'; '.join(ambiguous[:_MAX_LISTED])}. Nothing was imported"
        )
    if problems:
        shown = "; ".join(problems[:_MAX_LISTED])
        more = f" (and {len(problems) - _MAX_LISTED} more)" if len(problems) > _MAX_LISTED else ""
        raise NotFoundError(
            f"{len(problems)} of {len(files)} label files do not match a frame: {shown}{more}. "
            "Nothing was imported"
        )
    parsed: dict[str, list[Box3D]] = {}
    errors: list[str] = []
    scored = 0
    for f in files:
        try:
            boxes = parse_label_file(f)
        except CorruptDataError as exc:
            errors.append(str(exc))
            continue
        scored += sum(b.score is not None for b in boxes)
        parsed[mapping[f.stem]] = boxes
    if errors:
        shown = "; ".join(errors[:_MAX_LISTED])
        more = f" (and {len(errors) - _MAX_LISTED} more)" if len(errors) > _MAX_LISTED else ""
        raise CorruptDataError(
            f"{len(errors)} label files are malformed: {shown}{more}. Fix them and import again; "
            "nothing was imported"
        )
    if scored:
        logger.warning("ignored the detection score of %d imported boxes", scored)

    # 2. write: upsert the new boxes, delete stale imported ones, mark the frames labeled
    rows = _rows(parsed)
    counts = {fid: len(b) for fid, b in parsed.items()}
    frame_ids = list(parsed)
    before = {
        T.LABELS: store.version(T.LABELS) if store.has_table(T.LABELS) else None,
        T.SAMPLES: store.version(T.SAMPLES),
    }
    replaced = 0
    try:
        if store.has_table(T.LABELS):
            for k in range(0, len(frame_ids), _CHUNK):
                chunk = frame_ids[k : k + _CHUNK]
                replaced += store.count(
                    T.LABELS, where=f"origin = '{ORIGIN}' AND {_in_list('frame_id', chunk)}"
                )
        if rows.num_rows:
            store.upsert(T.LABELS, rows)
        if store.has_table(T.LABELS):
            for k in range(0, len(frame_ids), _CHUNK):
                chunk = frame_ids[k : k + _CHUNK]
                stale = " OR ".join(
                    f"(frame_id = {_sql_str(f)} AND box_index >= {counts[f]})" for f in chunk
                )
                where = f"origin = '{ORIGIN}' AND ({stale})"
                if store.count(T.LABELS, where=where):
                    store.delete(T.LABELS, where)
        state = store.read(T.SAMPLES, columns=["id", "labeled"], ids=frame_ids)
        todo = [i for i, lab in zip(state["id"].to_pylist(), state["labeled"].to_pylist()) if not lab]
        for k in range(0, len(todo), _CHUNK):
            store.update(T.SAMPLES, where=_in_list("id", todo[k : k + _CHUNK]),
                            values={"labeled": True})
    except BaseException:
        _rollback(store, before)
        raise
    report = ImportReport(
        files=len(files),
        frames=len(frame_ids),
        boxes=rows.num_rows,
        replaced=replaced,
        newly_labeled=len(todo),
        labeled_total=store.count(T.SAMPLES, where="labeled = true"),
        labels_version=store.version(T.LABELS) if store.has_table(T.LABELS) else 0,
        samples_version=store.version(T.SAMPLES),
        seconds=time.perf_counter() - start,
    )
    logger.info("imported %d boxes for %d frames from %d files", report.boxes, report.frames, report.files)
    return report


def boxes_by_frame(labels: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """The effective boxes of each frame of ``labels`` rows, as row dicts in box order.

    A frame's imported boxes (``origin = "import"``) replace the boxes its source shipped; a frame
    without imported boxes keeps its source boxes. O(rows log rows).
    """
    rows = sorted(labels.to_pylist(), key=lambda r: (r["frame_id"], r["box_index"]))
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["frame_id"], []).append(r)
    for fid, boxes in out.items():
        imported = [b for b in boxes if b.get("origin") == ORIGIN]
        if imported:
            out[fid] = imported
    return out


class BoxReader(Protocol):
    """Anything with the workspace's ``boxes`` method (a local or a remote workspace)."""

    def boxes(self, frame_ids: Sequence[str], *, labeled_only: bool = True) -> pa.Table:
        """Rows of ``labels`` of the given frames."""
        ...


def frame_labels(ws: BoxReader, frame_ids: Sequence[str], *, labeled_only: bool = False) -> pa.Table:
    """Effective label boxes of frames: the imported boxes of a frame when it has any, else its
    source boxes. Rows are ordered by frame (as given) and box index.

    Notes
    -----
    O(boxes of these frames).
    """
    ids = list(dict.fromkeys(frame_ids))
    table = ws.boxes(ids, labeled_only=labeled_only)
    if table.num_rows == 0:
        return table
    imported = set(
        pc.unique(table.filter(pc.equal(table["origin"], ORIGIN))["frame_id"]).to_pylist()
    )
    origin = table["origin"].to_pylist()
    frame = table["frame_id"].to_pylist()
    keep = [(o == ORIGIN) == (f in imported) for o, f in zip(origin, frame)]
    table = table.filter(pa.array(keep, type=pa.bool_()))
    position = {fid: i for i, fid in enumerate(ids)}
    frames = table["frame_id"].to_pylist()
    index = table["box_index"].to_pylist()
    order = sorted(range(table.num_rows), key=lambda r: (position.get(frames[r], len(ids)), index[r]))
    return table.take(pa.array(order, type=pa.int64()))
