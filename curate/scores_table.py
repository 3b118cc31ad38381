"""The ``scores`` table: per-frame uncertainty scores (and the raw predictions) of prediction runs.

One row per (prediction run, frame), keyed ``<run>/<frame id>``:

* ``names`` / ``values``: the per-frame score columns of :func:`curate.scoring.frame_scores`
  (``entropy_mean``, ``box_count``, ``mutual_information_max``, per-class columns, ...);
* ``boxes`` (``n * 7`` LiDAR ``x, y, z_bottom, l, w, h, yaw``), ``labels``, ``box_scores`` and
  ``probs`` (``n * C`` member-mean class scores, ``classes`` order): the detections that survived
  NMS, so other measures can be computed later without re-running the detector.

Writes are upserts by key, so re-scoring a frame in the same run replaces its row (resumable).
Reads return arrays aligned with the requested ids.

Complexity: writes and reads are O(rows); memory O(rows * columns).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pyarrow as pa

from curate.errors import InvalidInputError, NotFoundError

__all__ = ["SCORES", "SCORES_SCHEMA", "FramePrediction", "scores_rows", "read_scores", "read_predictions", "score_runs"]

logger = logging.getLogger(__name__)

SCORES = "scores"

SCORES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # "<run>/<frame id>"
        pa.field("run", pa.string()),
        pa.field("frame_id", pa.string()),
        pa.field("names", pa.list_(pa.string())),
        pa.field("values", pa.list_(pa.float64())),
        pa.field("classes", pa.list_(pa.string())),
        pa.field("members", pa.int32()),
        pa.field("boxes", pa.list_(pa.float32())),
        pa.field("labels", pa.list_(pa.int32())),
        pa.field("box_scores", pa.list_(pa.float32())),
        pa.field("probs", pa.list_(pa.float32())),
    ]
)


@dataclass
class FramePrediction:
    """Detections of one frame after NMS, with the class scores of every kept box.

    Attributes
    ----------
    frame_id : str
    boxes : numpy.ndarray
        ``(n, 7)`` LiDAR boxes ``x, y, z_bottom, l, w, h, yaw`` (mmdet3d's LiDAR convention).
    labels : numpy.ndarray
        ``(n,)`` class indices into ``classes``.
    scores : numpy.ndarray
        ``(n,)`` detection confidence.
    probs : numpy.ndarray
        ``(n, C)`` class scores (sigmoid, member mean) of each box.
    member_probs : numpy.ndarray, optional
        ``(S, n, C)`` class scores of each ensemble member / MC-dropout sample.
    classes : tuple of str
    """

    frame_id: str
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    probs: np.ndarray
    classes: tuple[str, ...]
    member_probs: Optional[np.ndarray] = None
    extra: dict = field(default_factory=dict)

    @property
    def members(self) -> int:
        """Number of members (1 for a single deterministic model)."""
        return 1 if self.member_probs is None else int(self.member_probs.shape[0])


def _key(run: str, frame_id: str) -> str:
    return f"{run}/{frame_id}"


def scores_rows(
    run: str,
    ids: Sequence[str],
    columns: Mapping[str, Any],
    predictions: Optional[Sequence[FramePrediction]] = None,
) -> pa.Table:
    """Rows of the ``scores`` table for ``ids`` (``columns``: name -> per-frame values)."""
    if not run or "/" in run:
        raise InvalidInputError(f"score run name must be non-empty and contain no '/'; got {run!r}")
    ids = [str(i) for i in ids]
    names = [str(k) for k in columns]
    values = []
    for k in names:
        arr = np.asarray(columns[k], dtype=np.float64).reshape(-1)
        if arr.shape[0] != len(ids):
            raise InvalidInputError(f"score column {k!r} has {arr.shape[0]} values for {len(ids)} frames")
        values.append(arr)
    matrix = np.stack(values, axis=1) if values else np.zeros((len(ids), 0))
    if predictions is not None and len(predictions) != len(ids):
        raise InvalidInputError(f"got {len(predictions)} predictions for {len(ids)} frames")
    cols: dict[str, list] = {f.name: [] for f in SCORES_SCHEMA}
    for i, fid in enumerate(ids):
        cols["id"].append(_key(run, fid))
        cols["run"].append(run)
        cols["frame_id"].append(fid)
        cols["names"].append(names)
        cols["values"].append(matrix[i].tolist())
        p = predictions[i] if predictions is not None else None
        if p is not None and p.frame_id != fid:
            raise InvalidInputError(f"prediction {i} is for frame {p.frame_id!r}, expected {fid!r}")
        cols["classes"].append(list(p.classes) if p else [])
        cols["members"].append(p.members if p else 0)
        cols["boxes"].append(np.asarray(p.boxes, np.float32).reshape(-1).tolist() if p else [])
        cols["labels"].append(np.asarray(p.labels, np.int32).reshape(-1).tolist() if p else [])
        cols["box_scores"].append(np.asarray(p.scores, np.float32).reshape(-1).tolist() if p else [])
        cols["probs"].append(np.asarray(p.probs, np.float32).reshape(-1).tolist() if p else [])
    return pa.table(cols, schema=SCORES_SCHEMA)


def _sql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def score_runs(store: Any) -> list[str]:
    """Names of the score runs stored, sorted."""
    if not store.has_table(SCORES):
        return []
    runs = store.read(SCORES, columns=["run"]).column("run").to_pylist()
    return sorted(set(runs))


def _read_rows(
    store: Any, run: str, ids: Optional[Sequence[str]], columns: list[str], version: Optional[int] = None
) -> pa.Table:
    if not store.has_table(SCORES) or store.count(SCORES, where=f"run = {_sql(run)}", version=version) == 0:
        have = ", ".join(score_runs(store)) or "none yet"
        raise NotFoundError(
            f"no scores stored for run {run!r} (available: {have}); run a prediction round "
            "(curate loop) or Workspace.write_scores first"
        )
    if ids is None:
        return store.read(SCORES, columns=columns, where=f"run = {_sql(run)}", version=version)
    keys = [_key(run, str(i)) for i in ids]
    got = store.read(SCORES, columns=columns, ids=keys, missing="ignore", version=version)
    if got.num_rows != len(keys):
        have = set(got.column("frame_id").to_pylist())
        missing = [str(i) for i in ids if str(i) not in have]
        raise NotFoundError(
            f"{len(missing)} of {len(keys)} frames have no scores in run {run!r} "
            f"(first: {', '.join(missing[:5])}); predict them first"
        )
    return got


def read_scores(
    store: Any, run: str, ids: Optional[Sequence[str]] = None, *, version: Optional[int] = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(frame ids, {column: values})`` of a score run, aligned with ``ids`` when given.

    ``version`` pins the scores table (a selection records the version it read, so
    ``reproduce`` sees the same scores even if the run name is rewritten later).

    Raises
    ------
    NotFoundError
        Unknown run, or some ids without scores (lists up to five).
    """
    rows = _read_rows(store, run, ids, ["frame_id", "names", "values"], version)
    frame_ids = np.asarray(rows.column("frame_id").to_pylist(), dtype=object)
    names_col = rows.column("names").to_pylist()
    vals = rows.column("values").to_pylist()
    names = names_col[0] if names_col else []
    if any(n != names for n in names_col):
        raise InvalidInputError(f"score run {run!r} mixes rows with different score columns")
    matrix = np.asarray(vals, dtype=np.float64).reshape(len(vals), len(names))
    return frame_ids, {n: matrix[:, j].copy() for j, n in enumerate(names)}


def read_predictions(store: Any, run: str, ids: Optional[Sequence[str]] = None) -> list[FramePrediction]:
    """The stored detections of a score run (member-mean class scores only)."""
    rows = _read_rows(store, run, ids, ["frame_id", "classes", "members", "boxes", "labels", "box_scores", "probs"])
    out = []
    for r in rows.to_pylist():
        n = len(r["labels"])
        c = len(r["classes"])
        out.append(
            FramePrediction(
                frame_id=r["frame_id"],
                boxes=np.asarray(r["boxes"], dtype=np.float64).reshape(n, 7),
                labels=np.asarray(r["labels"], dtype=np.int64),
                scores=np.asarray(r["box_scores"], dtype=np.float64),
                probs=np.asarray(r["probs"], dtype=np.float64).reshape(n, c),
                classes=tuple(r["classes"]),
            )
        )
    return out
