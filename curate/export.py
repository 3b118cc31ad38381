"""Export a stored selection for labeling: CSV, JSON, Parquet and KITTI ``ImageSets`` txt.

Every format carries the ordered ids; the richer ones carry the whole run record (strategy,
parameters, seed, table versions, package version) so that a labeling batch can be traced back to
the run that chose it.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from curate.api import RunRecord
from curate.errors import InvalidInputError

__all__ = ["EXPORT_FORMATS", "export_run", "format_from_suffix", "kitti_frame_id"]

logger = logging.getLogger(__name__)


def kitti_frame_id(frame_id: str) -> str:
    """The bare KITTI frame id of a workspace id (``kitti/000123`` -> ``000123``)."""
    return frame_id.rsplit("/", 1)[-1]


def _manifest(run: RunRecord) -> dict:
    return run.model_dump(exclude={"ids", "gains"})


def _write_csv(run: RunRecord, out: Path) -> None:
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["rank", "id", "gain"])
        for rank, (fid, gain) in enumerate(zip(run.ids, run.gains)):
            writer.writerow([rank, fid, "" if gain is None else repr(gain)])


def _write_json(run: RunRecord, out: Path) -> None:
    doc = {
        "run": _manifest(run),
        "items": [
            {"rank": rank, "id": fid, "gain": gain}
            for rank, (fid, gain) in enumerate(zip(run.ids, run.gains))
        ],
    }
    out.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")


def _write_parquet(run: RunRecord, out: Path) -> None:
    table = pa.table(
        {
            "rank": pa.array(range(len(run.ids)), type=pa.int32()),
            "id": pa.array(run.ids, type=pa.string()),
            "gain": pa.array(run.gains, type=pa.float64()),
        }
    )
    meta = {b"curate.run": json.dumps(_manifest(run), sort_keys=True).encode()}
    pq.write_table(table.replace_schema_metadata(meta), out)


def _write_imagesets(run: RunRecord, out: Path) -> None:
    out.write_text("".join(f"{kitti_frame_id(fid)}\n" for fid in run.ids))


EXPORT_FORMATS: dict[str, Callable[[RunRecord, Path], None]] = {
    "csv": _write_csv,
    "json": _write_json,
    "parquet": _write_parquet,
    "imagesets": _write_imagesets,
}

_SUFFIXES = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet", ".txt": "imagesets"}


def format_from_suffix(path: Path) -> str:
    """Export format implied by a file name (``.csv``, ``.json``, ``.parquet``, ``.txt``)."""
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise InvalidInputError(
            f"cannot tell the export format of {str(path)!r} from its suffix; use one of "
            f"{', '.join(sorted(_SUFFIXES))} or pass --format ({', '.join(EXPORT_FORMATS)})"
        ) from None


def export_run(run: RunRecord, fmt: str, out: Path) -> Path:
    """Write ``run``'s selection to ``out`` in format ``fmt``; returns the path written.

    The file is written next to its destination and renamed into place, so a reader never sees
    a half-written export.
    """
    try:
        writer = EXPORT_FORMATS[fmt]
    except KeyError:
        raise InvalidInputError(
            f"unknown export format {fmt!r}; valid formats: {', '.join(EXPORT_FORMATS)}"
        ) from None
    out = Path(out)
    if not out.parent.exists():
        raise InvalidInputError(f"cannot write {str(out)!r}: directory {str(out.parent)!r} does not exist")
    tmp = out.with_name(f".{out.name}.tmp")
    writer(run, tmp)
    tmp.replace(out)
    logger.info("exported %s (%d ids) to %s as %s", run.run_id, len(run.ids), out, fmt)
    return out
