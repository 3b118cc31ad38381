"""Arrow schemas and row builders of the workspace tables (``samples``, ``labels``, ``runs``).

Kept apart from :mod:`curate.workspace` so that the data model is readable in one place.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa

from curate.api import RunRecord
from curate.scores_table import SCORES, SCORES_SCHEMA  # the ``scores`` table (prediction runs)
from curate.sources.base import METADATA_FIELDS, Box3D, FrameRecord

__all__ = [
    "SAMPLES",
    "LABELS",
    "RUNS",
    "SCORES",
    "SCORES_SCHEMA",
    "EMBEDDING_PREFIX",
    "INTERNAL_EMBEDDING_PREFIX",
    "SAMPLES_SCHEMA",
    "LABELS_SCHEMA",
    "RUNS_SCHEMA",
    "samples_rows",
    "labels_rows",
    "box_rows",
    "run_row",
    "run_from_row",
    "embedding_table",
]

logger = logging.getLogger(__name__)

SAMPLES = "samples"
LABELS = "labels"
RUNS = "runs"
#: Embedding tables are named ``emb_<embedding name>``.
EMBEDDING_PREFIX = "emb_"
#: Embeddings curate keeps for itself (the pretraining teacher cache); not listed to users.
INTERNAL_EMBEDDING_PREFIX = "pretrain-teacher-"

SAMPLES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("dataset", pa.string()),
        pa.field("split", pa.string()),
        pa.field("scene", pa.string()),
        pa.field("frame_index", pa.int64()),
        pa.field("timestamp", pa.float64()),
        pa.field("lidar_path", pa.string()),
        pa.field("image_paths", pa.list_(pa.string())),
        pa.field("calib_path", pa.string()),
        pa.field("label_path", pa.string()),
        pa.field("num_points", pa.int64()),
        *[pa.field(name, pa.string()) for name in METADATA_FIELDS],
        pa.field("extra", pa.string()),
        pa.field("num_gt_boxes", pa.int32()),
        pa.field("labeled", pa.bool_()),
    ]
)

LABELS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # "<frame id>#<box index>"
        pa.field("frame_id", pa.string()),
        pa.field("box_index", pa.int32()),
        pa.field("origin", pa.string()),  # "source" (ground truth shipped with the data), "import"
        pa.field("type", pa.string()),
        pa.field("truncated", pa.float32()),
        pa.field("occluded", pa.int32()),
        pa.field("alpha", pa.float32()),
        pa.field("bbox", pa.list_(pa.float32(), 4)),
        pa.field("dimensions", pa.list_(pa.float32(), 3)),
        pa.field("location", pa.list_(pa.float32(), 3)),
        pa.field("rotation_y", pa.float32()),
    ]
)

RUNS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("kind", pa.string()),
        pa.field("created_at", pa.string()),
        pa.field("strategy", pa.string()),
        pa.field("params", pa.string()),
        pa.field("budget", pa.int64()),
        pa.field("seed", pa.int64()),
        pa.field("embedding", pa.string()),
        pa.field("embedding_version", pa.int64()),
        pa.field("samples_version", pa.int64()),
        pa.field("where", pa.string()),
        pa.field("num_candidates", pa.int64()),
        pa.field("num_labeled", pa.int64()),
        pa.field("ids", pa.list_(pa.string())),
        pa.field("gains", pa.list_(pa.float64())),
        pa.field("info", pa.string()),
        pa.field("package_version", pa.string()),
        pa.field("seconds", pa.float64()),
    ]
)


def embedding_table(name: str) -> str:
    """Table name of the embedding called ``name``."""
    return f"{EMBEDDING_PREFIX}{name}"


def samples_rows(records: Iterable[FrameRecord], labeled: dict[str, bool]) -> pa.Table:
    """Build ``samples`` rows; ``labeled`` carries the label state of frames already stored."""
    cols: dict[str, list] = {f.name: [] for f in SAMPLES_SCHEMA}
    for r in records:
        meta = dict(r.metadata)
        cols["id"].append(r.id)
        cols["dataset"].append(r.dataset)
        cols["split"].append(r.split)
        cols["scene"].append(r.scene)
        cols["frame_index"].append(int(r.frame_index))
        cols["timestamp"].append(float(r.timestamp))
        cols["lidar_path"].append(r.lidar_path)
        cols["image_paths"].append(list(r.image_paths))
        cols["calib_path"].append(r.calib_path)
        cols["label_path"].append(r.label_path)
        cols["num_points"].append(int(r.num_points))
        for name in METADATA_FIELDS:
            value = meta.pop(name, None)
            cols[name].append(None if value is None else str(value))
        cols["extra"].append(json.dumps(meta, sort_keys=True, default=str))
        cols["num_gt_boxes"].append(len(r.boxes))
        cols["labeled"].append(bool(labeled.get(r.id, False)))
    return pa.table(cols, schema=SAMPLES_SCHEMA)


def box_rows(frames: Iterable[tuple[str, Sequence[Box3D]]], origin: str = "source") -> pa.Table:
    """Build ``labels`` rows, one per box, from ``(frame id, boxes)`` pairs.

    Boxes shipped with the source are keyed ``<frame id>#<box index>``; boxes of any other
    origin (``import``, ...) ``<frame id>#<origin>#<box index>`` so they never overwrite the
    source's ground truth.
    """
    ids: list[str] = []
    frame_ids: list[str] = []
    box_index: list[int] = []
    types: list[str] = []
    scalars: list[tuple[float, int, float, float]] = []  # truncated, occluded, alpha, rotation_y
    flat: dict[str, list[float]] = {"bbox": [], "dimensions": [], "location": []}
    bbox, dims, loc = flat["bbox"], flat["dimensions"], flat["location"]
    for frame_id, boxes in frames:
        key = f"{frame_id}#" if origin == "source" else f"{frame_id}#{origin}#"
        for i, b in enumerate(boxes):
            if len(b.bbox) != 4 or len(b.dimensions) != 3 or len(b.location) != 3:
                raise ValueError(f"box {i} of frame {frame_id!r}: bbox needs 4 values, dimensions and "
                                 f"location 3 each (got {b.bbox}, {b.dimensions}, {b.location})")
            ids.append(f"{key}{i}")
            frame_ids.append(frame_id)
            box_index.append(i)
            types.append(b.type)
            scalars.append((b.truncated, b.occluded, b.alpha, b.rotation_y))
            bbox.extend(b.bbox)
            dims.extend(b.dimensions)
            loc.extend(b.location)
    n = len(ids)
    num = np.array(scalars, dtype=np.float64).reshape(n, 4)
    cols: dict[str, Any] = {
        "id": ids, "frame_id": frame_ids, "box_index": box_index, "origin": [origin] * n, "type": types,
        "truncated": num[:, 0].astype(np.float32), "occluded": num[:, 1].astype(np.int32),
        "alpha": num[:, 2].astype(np.float32), "rotation_y": num[:, 3].astype(np.float32),
    }
    for name, width in (("bbox", 4), ("dimensions", 3), ("location", 3)):
        values = pa.array(np.asarray(flat[name], dtype=np.float32).reshape(-1))
        cols[name] = pa.FixedSizeListArray.from_arrays(values, width)
    return pa.table({f.name: cols[f.name] for f in LABELS_SCHEMA}, schema=LABELS_SCHEMA)


def labels_rows(records: Iterable[FrameRecord], origin: str = "source") -> pa.Table:
    """Build ``labels`` rows for the ground-truth boxes of source records."""
    return box_rows(((r.id, r.boxes) for r in records), origin)


def run_row(run: RunRecord) -> pa.Table:
    """Serialise a run record as one ``runs`` row (dicts as JSON, non-finite gains as NaN)."""
    row = {
        "id": [run.run_id],
        "kind": [run.kind],
        "created_at": [run.created_at],
        "strategy": [run.strategy],
        "params": [json.dumps(run.params, sort_keys=True)],
        "budget": [run.budget],
        "seed": [run.seed],
        "embedding": [run.embedding],
        "embedding_version": [run.embedding_version],
        "samples_version": [run.samples_version],
        "where": [run.where],
        "num_candidates": [run.num_candidates],
        "num_labeled": [run.num_labeled],
        "ids": [list(run.ids)],
        "gains": [[float("nan") if g is None else float(g) for g in run.gains]],
        "info": [json.dumps(run.info, sort_keys=True, default=str)],
        "package_version": [run.package_version],
        "seconds": [run.seconds],
    }
    return pa.table(row, schema=RUNS_SCHEMA)


def run_from_row(row: dict) -> RunRecord:
    """Inverse of :func:`run_row` for one row given as a Python dict."""
    from curate.api import finite_or_none

    return RunRecord(
        run_id=row["id"],
        kind=row["kind"],
        created_at=row["created_at"],
        strategy=row["strategy"],
        params=json.loads(row["params"] or "{}"),
        budget=row["budget"],
        seed=row["seed"],
        embedding=row["embedding"],
        embedding_version=row["embedding_version"],
        samples_version=row["samples_version"],
        where=row["where"],
        num_candidates=row["num_candidates"],
        num_labeled=row["num_labeled"],
        ids=list(row["ids"]),
        gains=[finite_or_none(g) for g in row["gains"]],
        info=json.loads(row["info"] or "{}"),
        package_version=row["package_version"],
        seconds=row["seconds"],
    )
