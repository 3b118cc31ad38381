"""Export a stored selection for labeling: CSV, JSON, Parquet, KITTI ``ImageSets``, Label Studio
tasks and (when the detector loop is installed) an mmdet3d info pkl of the subset.

Every export carries the run record (strategy, parameters, seed, table versions, package
version) so that a labeling batch can be traced back to the run that chose it: embedded where the
format has room for it (``json``: a ``run`` key; ``parquet``: the ``curate.run`` schema metadata)
and as a sidecar ``<out>.manifest.json`` for the others (``csv``, ``imagesets``, ``labelstudio``,
``mmdet3d``). See :func:`manifest_path` and :func:`read_manifest`.

Writes are atomic: each file is written next to its destination under a hidden temporary name
and renamed into place, so a reader never sees a half-written export (the data file is renamed
before its sidecar, and a failed export removes its temporary files).

Formats that describe frames (``labelstudio``, ``mmdet3d``) need the workspace the run came from;
:meth:`curate.workspace.Workspace.export` passes it.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

from curate._version import __version__
from curate.api import RunRecord
from curate.errors import InvalidInputError, NotFoundError
from curate.sources.kitti import kitti_frame_id

__all__ = [
    "EXPORT_FORMATS",
    "ExportFormat",
    "ExportOptions",
    "export_run",
    "format_from_suffix",
    "kitti_frame_id",
    "manifest_path",
    "read_manifest",
    "run_manifest",
    "path_to_url",
    "labelstudio_tasks",
]

logger = logging.getLogger(__name__)

#: Version of the sidecar manifest layout.
MANIFEST_SCHEMA = 1

_FRAME_COLUMNS = [
    "id", "scene", "frame_index", "timestamp", "lidar_path", "image_paths", "calib_path",
    "time_of_day", "weather", "location",
]


def run_manifest(run: RunRecord) -> dict[str, Any]:
    """The run record without its id list: what every export's manifest holds under ``run``."""
    return run.model_dump(exclude={"ids", "gains"})


# Kept for callers of the first version of this module.
_manifest = run_manifest


def manifest_path(out: Path) -> Path:
    """Sidecar manifest of an export file: ``<out>.manifest.json``."""
    out = Path(out)
    return out.with_name(f"{out.name}.manifest.json")


def read_manifest(out: Path) -> dict[str, Any]:
    """The manifest of an export: the sidecar when there is one, else the embedded record.

    Returns a dict with at least ``format``, ``count`` and ``run`` (the run record without ids).

    Raises
    ------
    NotFoundError
        Neither a sidecar nor an embedded manifest exists.
    """
    out = Path(out)
    side = manifest_path(out)
    if side.is_file():
        return json.loads(side.read_text())
    if out.suffix.lower() == ".json" and out.is_file():
        doc = json.loads(out.read_text())
        if isinstance(doc, dict) and "run" in doc:
            return {"format": "json", "count": len(doc.get("items", [])), "run": doc["run"]}
    if out.suffix.lower() in (".parquet", ".pq") and out.is_file():
        meta = pq.read_schema(out).metadata or {}
        if b"curate.run" in meta:
            return {
                "format": "parquet",
                "count": pq.read_metadata(out).num_rows,
                "run": json.loads(meta[b"curate.run"]),
            }
    raise NotFoundError(f"{out}: no curate manifest (neither {side.name} nor an embedded run record)")


@dataclass(frozen=True)
class ExportOptions:
    """Everything an export format may need beyond the run record.

    Attributes
    ----------
    workspace : object, optional
        The workspace the run came from (anything with ``frames(ids=..., columns=...)``); needed
        by the formats that describe frames (``labelstudio``, ``mmdet3d``).
    base_url : str, optional
        Label Studio: URL prefix that replaces ``path_root`` in file paths (for example
        ``http://files.example/kitti/`` or ``/data/local-files/?d=``). ``None`` writes absolute
        file paths.
    path_root : str, optional
        Label Studio: the folder that ``base_url`` stands for (default: the deepest folder
        holding every exported file).
    """

    workspace: Any = None
    base_url: Optional[str] = None
    path_root: Optional[str] = None


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes
    ----------
    name : str
        Name used by ``curate export --format``.
    write : callable
        ``write(run, tmp_path, options) -> dict`` writes the file and returns extra manifest
        fields (may be empty).
    embeds_manifest : bool
        Whether the run record lives inside the file (otherwise a sidecar is written).
    needs_workspace : bool
        Whether the format reads frame rows from the workspace.
    suffixes : tuple of str
        File suffixes that imply this format (first = default).
    description : str
        One line for help texts.
    """

    name: str
    write: Callable[[RunRecord, Path, ExportOptions], dict[str, Any]]
    embeds_manifest: bool
    needs_workspace: bool
    suffixes: tuple[str, ...]
    description: str


# ---------------------------------------------------------------------------------- writers


def _write_csv(run: RunRecord, out: Path, options: ExportOptions) -> dict[str, Any]:
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["rank", "id", "gain"])
        for rank, (fid, gain) in enumerate(zip(run.ids, run.gains)):
            writer.writerow([rank, fid, "" if gain is None else repr(gain)])
    return {}


def _write_json(run: RunRecord, out: Path, options: ExportOptions) -> dict[str, Any]:
    doc = {
        "run": run_manifest(run),
        "items": [
            {"rank": rank, "id": fid, "gain": gain}
            for rank, (fid, gain) in enumerate(zip(run.ids, run.gains))
        ],
    }
    out.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return {}


def _write_parquet(run: RunRecord, out: Path, options: ExportOptions) -> dict[str, Any]:
    table = pa.table(
        {
            "rank": pa.array(range(len(run.ids)), type=pa.int32()),
            "id": pa.array(run.ids, type=pa.string()),
            "gain": pa.array(run.gains, type=pa.float64()),
        }
    )
    meta = {b"curate.run": json.dumps(run_manifest(run), sort_keys=True).encode()}
    pq.write_table(table.replace_schema_metadata(meta), out)
    return {}


def _write_imagesets(run: RunRecord, out: Path, options: ExportOptions) -> dict[str, Any]:
    out.write_text("".join(f"{kitti_frame_id(fid)}\n" for fid in run.ids))
    return {}


def _write_tokens(run: RunRecord, out: Path, options: ExportOptions) -> dict[str, Any]:
    """nuScenes sample tokens of the selection, one per line in pick order (frames of other
    sources: their id)."""
    if options.workspace is None:
        raise InvalidInputError(
            "the 'tokens' export reads the frames' sample tokens and needs the workspace; use "
            "Workspace.export(run_id, 'tokens', out)"
        )
    table = options.workspace.frames(ids=list(run.ids), columns=["id", "extra"])
    token_of: dict[str, str] = {}
    for row in table.to_pylist():
        meta = json.loads(row["extra"] or "{}")
        nusc = meta.get("nuscenes") if isinstance(meta, dict) else None
        token_of[row["id"]] = nusc["sample_token"] if isinstance(nusc, dict) else row["id"]
    missing = [i for i in run.ids if i not in token_of]
    if missing:
        raise NotFoundError(
            f"{len(missing)} frames of {run.run_id} are no longer in the workspace "
            f"(first: {', '.join(missing[:5])}); nothing was exported"
        )
    out.write_text("".join(f"{token_of[i]}\n" for i in run.ids))
    return {}


def path_to_url(path: str, base_url: Optional[str], path_root: Optional[str]) -> str:
    """Map a file path to what a labeling tool should load.

    Parameters
    ----------
    path : str
        Absolute file path (as stored in ``samples``).
    base_url : str or None
        ``None``: the absolute path itself. Otherwise ``base_url`` + the URL-quoted path relative
        to ``path_root`` (a ``/`` is inserted unless ``base_url`` ends with ``/`` or ``=``).
    path_root : str or None
        Folder that ``base_url`` stands for; required when ``base_url`` is given.

    Raises
    ------
    InvalidInputError
        ``path`` does not lie under ``path_root``.
    """
    absolute = os.path.abspath(path)
    if base_url is None:
        return absolute
    if path_root is None:
        raise InvalidInputError("path_to_url: a base_url needs the path_root it stands for")
    root = os.path.abspath(path_root)
    rel = os.path.relpath(absolute, root)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise InvalidInputError(
            f"file {absolute!r} is not under the path root {root!r}; pass a path_root "
            "(--path-root) that holds every exported file"
        )
    sep = "" if base_url.endswith(("/", "=")) else "/"
    return f"{base_url}{sep}{quote(rel.replace(os.sep, '/'))}"


def _frame_rows(run: RunRecord, options: ExportOptions, fmt: str) -> list[dict[str, Any]]:
    if options.workspace is None:
        raise InvalidInputError(
            f"the {fmt!r} export describes frames and needs the workspace; use "
            "Workspace.export(run_id, ...) or pass ExportOptions(workspace=ws)"
        )
    table = options.workspace.frames(ids=list(run.ids), columns=_FRAME_COLUMNS)
    by_id = {row["id"]: row for row in table.to_pylist()}
    missing = [i for i in run.ids if i not in by_id]
    if missing:
        raise NotFoundError(
            f"{len(missing)} frames of {run.run_id} are no longer in the workspace "
            f"(first: {', '.join(missing[:5])}); nothing was exported"
        )
    return [by_id[i] for i in run.ids]


def _frame_files(row: dict[str, Any]) -> list[str]:
    files = [row["lidar_path"], *(row["image_paths"] or [])]
    if row["calib_path"]:
        files.append(row["calib_path"])
    return [f for f in files if f]


def labelstudio_tasks(
    run: RunRecord, rows: Sequence[dict[str, Any]], *, base_url: Optional[str], path_root: Optional[str]
) -> list[dict[str, Any]]:
    """Label Studio tasks, one per selected frame, in pick order.

    Each task is ``{"data": {...}, "meta": {...}}``: ``data`` holds ``pointcloud`` (the LiDAR
    file), ``image`` (the first camera image, when there is one), ``images`` (all of them),
    ``calib`` and the frame's id and metadata; ``meta`` holds ``rank``, ``gain``, ``run_id``,
    ``strategy`` and ``frame_id``. Reference the data keys from the labeling config
    (``<Image value="$image"/>``).

    Notes
    -----
    O(len(run.ids)) time and memory.
    """
    tasks = []
    for rank, (row, gain) in enumerate(zip(rows, run.gains)):
        images = [path_to_url(p, base_url, path_root) for p in (row["image_paths"] or [])]
        data: dict[str, Any] = {
            "frame_id": row["id"],
            "pointcloud": path_to_url(row["lidar_path"], base_url, path_root),
        }
        if images:
            data["image"] = images[0]
        data["images"] = images
        if row["calib_path"]:
            data["calib"] = path_to_url(row["calib_path"], base_url, path_root)
        for key in ("scene", "frame_index", "timestamp", "time_of_day", "weather", "location"):
            if row.get(key) is not None:
                data[key] = row[key]
        tasks.append(
            {
                "data": data,
                "meta": {
                    "rank": rank,
                    "gain": gain,
                    "run_id": run.run_id,
                    "strategy": run.strategy,
                    "frame_id": row["id"],
                },
            }
        )
    return tasks


def _write_labelstudio(run: RunRecord, out: Path, options: ExportOptions) -> dict[str, Any]:
    rows = _frame_rows(run, options, "labelstudio")
    root = options.path_root
    if options.base_url is not None and root is None:
        files = [f for row in rows for f in _frame_files(row)]
        root = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files]) if files else "/"
    tasks = labelstudio_tasks(run, rows, base_url=options.base_url, path_root=root)
    out.write_text(json.dumps(tasks, indent=1, allow_nan=False) + "\n")
    return {"base_url": options.base_url, "path_root": None if root is None else os.path.abspath(root)}


def _load_info_writer() -> Optional[Callable[..., Any]]:
    try:
        from curate.loop.infos import write_info_pkl
    except ImportError:
        return None
    return write_info_pkl


def _write_mmdet3d(run: RunRecord, out: Path, options: ExportOptions) -> dict[str, Any]:
    writer = _load_info_writer()
    if writer is None:
        raise InvalidInputError(
            "the 'mmdet3d' export needs curate.loop.infos.write_info_pkl (the detector loop), "
            "which this installation does not have"
        )
    if options.workspace is None:
        raise InvalidInputError(
            "the 'mmdet3d' export needs the workspace; use Workspace.export(run_id, 'mmdet3d', out)"
        )
    writer(options.workspace, list(run.ids), out)
    return {}


EXPORT_FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("csv", _write_csv, False, False, (".csv",), "rank,id,gain rows"),
        ExportFormat("json", _write_json, True, False, (".json",), "run record + items"),
        ExportFormat("parquet", _write_parquet, True, False, (".parquet", ".pq"),
                     "rank/id/gain table, run record in the schema metadata"),
        ExportFormat("imagesets", _write_imagesets, False, False, (".txt",),
                     "KITTI ImageSets list of bare frame ids"),
        ExportFormat("labelstudio", _write_labelstudio, False, True, (),
                     "Label Studio task list (point cloud and image URLs)"),
        ExportFormat("mmdet3d", _write_mmdet3d, False, True, (".pkl",),
                     "mmdet3d v2 info pkl of the selected frames (KITTI or nuScenes layout)"),
        ExportFormat("tokens", _write_tokens, False, True, (),
                     "nuScenes sample tokens, one per line"),
    )
}

_SUFFIXES = {suffix: f.name for f in EXPORT_FORMATS.values() for suffix in f.suffixes}


def format_from_suffix(path: Path) -> str:
    """Export format implied by a file name (``.csv``, ``.json``, ``.parquet``, ``.txt``, ``.pkl``)."""
    try:
        return _SUFFIXES[Path(path).suffix.lower()]
    except KeyError:
        raise InvalidInputError(
            f"cannot tell the export format of {str(path)!r} from its suffix; use one of "
            f"{', '.join(sorted(_SUFFIXES))} or pass --format ({', '.join(EXPORT_FORMATS)})"
        ) from None


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def export_run(
    run: RunRecord,
    fmt: str,
    out: Path,
    *,
    workspace: Any = None,
    base_url: Optional[str] = None,
    path_root: Optional[str] = None,
) -> Path:
    """Write ``run``'s selection to ``out`` in format ``fmt``; returns the path written.

    Parameters
    ----------
    run : RunRecord
        The stored run.
    fmt : str
        A key of :data:`EXPORT_FORMATS`.
    out : pathlib.Path
        Destination file; its folder must exist.
    workspace : Workspace, optional
        Needed by ``labelstudio`` and ``mmdet3d``.
    base_url, path_root : str, optional
        URL mapping of the ``labelstudio`` format (see :class:`ExportOptions`).

    Returns
    -------
    pathlib.Path

    Notes
    -----
    Formats without room for the run record get a sidecar ``<out>.manifest.json``. The files are
    written under temporary names and renamed into place; on error nothing is left behind.
    O(len(run.ids)) time and memory.
    """
    try:
        spec = EXPORT_FORMATS[fmt]
    except KeyError:
        raise InvalidInputError(
            f"unknown export format {fmt!r}; valid formats: {', '.join(EXPORT_FORMATS)}"
        ) from None
    out = Path(out)
    if not out.parent.exists():
        raise InvalidInputError(f"cannot write {str(out)!r}: directory {str(out.parent)!r} does not exist")
    if out.is_dir():
        raise InvalidInputError(f"cannot write {str(out)!r}: it is a directory; give a file name")
    options = ExportOptions(workspace=workspace, base_url=base_url, path_root=path_root)
    tmp = _tmp_name(out)
    side = manifest_path(out)
    side_tmp = _tmp_name(side)
    try:
        extra = spec.write(run, tmp, options) or {}
        if not spec.embeds_manifest:
            manifest = {
                "curate_manifest": MANIFEST_SCHEMA,
                "format": spec.name,
                "file": out.name,
                "count": len(run.ids),
                "exported_by": __version__,
                **extra,
                "run": run_manifest(run),
            }
            side_tmp.write_text(json.dumps(manifest, indent=2, allow_nan=False, default=str) + "\n")
        tmp.replace(out)
        if not spec.embeds_manifest:
            side_tmp.replace(side)
    finally:
        for leftover in (tmp, side_tmp):
            if leftover.exists():
                leftover.unlink()
    logger.info("exported %s (%d ids) to %s as %s", run.run_id, len(run.ids), out, fmt)
    return out
