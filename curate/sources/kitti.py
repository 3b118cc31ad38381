"""KITTI 3-D object benchmark reader (and ``label_2`` parser / writer).

Expected layout::

    <root>/<split>/velodyne/NNNNNN.bin     LiDAR scans (required)
    <root>/<split>/image_2/NNNNNN.png      left colour image (optional)
    <root>/<split>/calib/NNNNNN.txt        calibration (optional)
    <root>/<split>/label_2/NNNNNN.txt      ground truth (optional; missing folder = no boxes)
    <root>/ImageSets/{train,val,trainval,test}.txt   frame-id lists (optional)
    <root>/metadata.jsonl                  per-frame metadata (optional, see below)
    <root>/devkit/mapping/train_mapping.txt + train_rand.txt   KITTI raw mapping (optional)

Frame metadata comes from the first of these that exists:

1. ``metadata.jsonl``: one JSON object per line with ``id`` and any of ``scene``, ``frame_index``,
   ``timestamp``, ``time_of_day``, ``weather``, ``location``; other keys go into the record's
   metadata as they are. (:mod:`curate.sources.synthetic` writes this file.)
2. The official raw-data mapping of the object benchmark: ``scene`` is the raw drive
   (``2011_09_26_drive_0005_sync``), ``frame_index`` the raw frame number, ``date`` goes to
   metadata. Only the ``training`` split has a mapping.
3. Nothing: ``scene = "unknown"``, ``frame_index = int(frame id)``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

from curate.confine import PathOutsideRootError, inside
from curate.errors import CorruptDataError, CurateError, InvalidInputError, NotFoundError
from curate.sources.base import METADATA_FIELDS, BadFrame, Box3D, FrameRecord
from curate.sources.calib import (
    Calibration,
    format_calibration,
    read_calibration,
    write_calibration,
)
from curate.sources.registry import SourceOption, register_source

__all__ = [
    "KittiSource",
    "Calibration",
    "read_calibration",
    "format_calibration",
    "write_calibration",
    "parse_label_line",
    "parse_label_file",
    "format_label_line",
    "write_label_file",
    "KITTI_CLASSES",
    "IMAGE_SET_NAMES",
    "kitti_frame_id",
]

logger = logging.getLogger(__name__)


def kitti_frame_id(frame_id: str) -> str:
    """The bare KITTI frame id of a workspace id (``kitti/000123`` -> ``000123``)."""
    return frame_id.rsplit("/", 1)[-1]

PathLike = Union[str, "os.PathLike[str]"]

#: Object classes of the KITTI benchmark (``DontCare`` marks ignored regions).
KITTI_CLASSES: tuple[str, ...] = (
    "Car",
    "Van",
    "Truck",
    "Pedestrian",
    "Person_sitting",
    "Cyclist",
    "Tram",
    "Misc",
    "DontCare",
)
#: ImageSets files read from ``<root>/ImageSets``.
IMAGE_SET_NAMES: tuple[str, ...] = ("train", "val", "trainval", "test")

_KITTI_RECORD_BYTES = 16


# ----------------------------------------------------------------------------------------------
# label_2
# ----------------------------------------------------------------------------------------------


def _where(path: Optional[PathLike], line_number: Optional[int]) -> str:
    if path is None:
        return "label line" if line_number is None else f"label line {line_number}"
    return f"{path}:{line_number}" if line_number is not None else str(path)


def parse_label_line(
    line: str, *, path: Optional[PathLike] = None, line_number: Optional[int] = None
) -> Box3D:
    """Parse one ``label_2`` line (15 fields, or 16 with a detection score).

    Fields: ``type truncated occluded alpha left top right bottom h w l x y z rotation_y [score]``.

    Raises
    ------
    CorruptDataError
        Wrong number of fields, a non-numeric value, or an ``occluded`` value outside ``-1..3``;
        the message names the file and line when given.
    """
    where = _where(path, line_number)
    parts = line.split()
    if len(parts) not in (15, 16):
        raise CorruptDataError(
            f"{where}: a KITTI label line has 15 fields (16 with a score), found {len(parts)}: "
            f"{line.strip()[:80]!r}"
        )
    try:
        values = [float(v) for v in parts[1:]]
    except ValueError as exc:
        raise CorruptDataError(f"{where}: non-numeric value in {line.strip()[:80]!r}") from exc
    if not all(math.isfinite(v) for v in values):
        raise CorruptDataError(f"{where}: NaN or inf value in {line.strip()[:80]!r}")
    occluded_f = values[1]
    if occluded_f != int(occluded_f) or not -1 <= occluded_f <= 3:
        raise CorruptDataError(
            f"{where}: occluded must be an integer 0..3 (or -1 for DontCare), got {parts[2]}"
        )
    return Box3D(
        type=parts[0],
        truncated=values[0],
        occluded=int(occluded_f),
        alpha=values[2],
        bbox=(values[3], values[4], values[5], values[6]),
        dimensions=(values[7], values[8], values[9]),
        location=(values[10], values[11], values[12]),
        rotation_y=values[13],
        score=values[14] if len(values) == 15 else None,
    )


def parse_label_file(path: PathLike) -> list[Box3D]:
    """Parse a KITTI ``label_2`` file into boxes (``DontCare`` lines included).

    Raises
    ------
    NotFoundError
        The file does not exist.
    CorruptDataError
        A line is malformed; the message names the file and the line number.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{p}: label file does not exist")
    boxes: list[Box3D] = []
    with open(p, "r", encoding="utf-8", errors="replace") as fh:
        for line_number, line in enumerate(fh, start=1):
            if line.strip():
                boxes.append(parse_label_line(line, path=p, line_number=line_number))
    return boxes


def format_label_line(box: Box3D) -> str:
    """Format a box as a KITTI ``label_2`` line (no trailing newline).

    Uses KITTI's own precision: two decimals for every float, an integer ``occluded``, and four
    decimals for the optional score. ``parse_label_line(format_label_line(b))`` gives ``b`` rounded
    to that precision, and formatting the parsed box again gives the same text.
    """
    if not box.type or any(c.isspace() for c in box.type):
        raise InvalidInputError(f"box type must be a non-empty word without spaces, got {box.type!r}")
    fields = [
        box.type,
        f"{box.truncated:.2f}",
        f"{int(box.occluded):d}",
        f"{box.alpha:.2f}",
        *(f"{v:.2f}" for v in box.bbox),
        *(f"{v:.2f}" for v in box.dimensions),
        *(f"{v:.2f}" for v in box.location),
        f"{box.rotation_y:.2f}",
    ]
    if box.score is not None:
        fields.append(f"{box.score:.4f}")
    return " ".join(fields)


def write_label_file(path: PathLike, boxes: Sequence[Box3D]) -> Path:
    """Write boxes as a KITTI ``label_2`` file (parent folders are created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(format_label_line(b) + "\n" for b in boxes), encoding="ascii")
    return p


# ----------------------------------------------------------------------------------------------
# metadata
# ----------------------------------------------------------------------------------------------


def _read_metadata_jsonl(path: Path) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    with open(path, "r", encoding="utf-8") as fh:
        for line_number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorruptDataError(f"{path}:{line_number}: invalid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict) or "id" not in obj:
                raise CorruptDataError(
                    f"{path}:{line_number}: each line must be a JSON object with an 'id' key"
                )
            key = str(obj["id"])
            if key in table:
                raise CorruptDataError(f"{path}:{line_number}: duplicate id {key!r}")
            table[key] = obj
    return table


def _read_raw_mapping(root: Path) -> Optional[list[tuple[str, str, int]]]:
    """Return, per training frame index, ``(date, drive, raw_frame)`` from the KITTI devkit."""
    mapping_dir = root / "devkit" / "mapping"
    mapping_file = mapping_dir / "train_mapping.txt"
    rand_file = mapping_dir / "train_rand.txt"
    if not (mapping_file.is_file() and rand_file.is_file()):
        return None
    entries: list[tuple[str, str, int]] = []
    with open(mapping_file, "r", encoding="utf-8") as fh:
        for line_number, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise CorruptDataError(
                    f"{mapping_file}:{line_number}: expected 'date drive frame', got {line.strip()!r}"
                )
            try:
                entries.append((parts[0], parts[1], int(parts[2])))
            except ValueError as exc:
                raise CorruptDataError(f"{mapping_file}:{line_number}: frame is not an integer") from exc
    text = rand_file.read_text(encoding="utf-8")
    try:
        rand = [int(v) for v in text.replace(",", " ").split()]
    except ValueError as exc:
        raise CorruptDataError(f"{rand_file}: expected comma-separated integers") from exc
    result: list[tuple[str, str, int]] = []
    for position, one_based in enumerate(rand):
        if not 1 <= one_based <= len(entries):
            raise CorruptDataError(
                f"{rand_file}: entry {position} is {one_based}, outside 1..{len(entries)} "
                f"(lines of {mapping_file.name})"
            )
        result.append(entries[one_based - 1])
    return result


def _read_image_sets(root: Path) -> dict[str, list[str]]:
    sets: dict[str, list[str]] = {}
    folder = root / "ImageSets"
    for name in IMAGE_SET_NAMES:
        f = folder / f"{name}.txt"
        if f.is_file():
            sets[name] = [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return sets


# ----------------------------------------------------------------------------------------------
# source
# ----------------------------------------------------------------------------------------------


@register_source("kitti", split=SourceOption("training", "KITTI split folder (training, testing)"),
                 prefix=SourceOption(None, "prefix for frame ids (to keep datasets apart)"))
class KittiSource:
    """Frames of a KITTI-format object dataset.

    Parameters
    ----------
    root : str or os.PathLike
        Dataset root (the folder holding ``training/`` / ``testing/``).
    split : str
        Sub-folder to read, ``"training"`` (default) or ``"testing"``.
    prefix : str, optional
        When given, frame ids become ``f"{prefix}/{frame_id}"`` so several datasets can share a
        workspace; the prefix is also the source's :attr:`name`.

    Attributes
    ----------
    name : str
        ``prefix`` or the root folder's name.
    frame_ids : list of str
        The 6-digit KITTI frame ids (no prefix), sorted.
    image_sets : dict of str to list of str
        ``ImageSets/<name>.txt`` contents (un-prefixed frame ids), for the files that exist.

    Notes
    -----
    Construction lists ``velodyne/`` and reads the small metadata files (``O(frames)``); iteration
    reads each frame's label file but never the point cloud (``num_points`` comes from the file
    size, which is also validated).

    Raises
    ------
    NotFoundError
        ``root``, ``<root>/<split>`` or ``<root>/<split>/velodyne`` does not exist.
    """

    def __init__(self, root: PathLike, split: str = "training", prefix: Optional[str] = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.split = split
        self.prefix = prefix
        if prefix is not None and (not prefix or prefix.strip("/") != prefix):
            raise InvalidInputError(
                f"prefix must be a non-empty string without leading/trailing '/', got {prefix!r}"
            )
        if not self.root.is_dir():
            raise NotFoundError(
                f"{self.root}: KITTI root does not exist; expected a folder holding "
                f"'{split}/velodyne/*.bin'"
            )
        self.split_dir = self.root / split
        if not self.split_dir.is_dir():
            present = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            raise NotFoundError(
                f"{self.split_dir}: split folder does not exist (found: {', '.join(present) or 'none'}); "
                "pass split='training' or split='testing'"
            )
        self.velodyne_dir = self.split_dir / "velodyne"
        if not self.velodyne_dir.is_dir():
            raise NotFoundError(
                f"{self.velodyne_dir}: no velodyne folder; a KITTI split holds velodyne/NNNNNN.bin"
            )
        for side in (self.split_dir, self.velodyne_dir, self.root / "metadata.jsonl",
                     *(self.root / "ImageSets" / f"{n}.txt" for n in IMAGE_SET_NAMES),
                     *(self.root / "devkit" / "mapping" / f for f in ("train_mapping.txt", "train_rand.txt"))):
            inside(side, self.root, "KITTI file")  # symlinks leading out of the root are refused
        self.name = prefix if prefix is not None else self.root.name
        self.frame_ids: list[str] = sorted(
            p.stem for p in self.velodyne_dir.iterdir() if p.suffix == ".bin" and p.is_file()
        )
        self.image_sets: dict[str, list[str]] = _read_image_sets(self.root)
        self._membership: dict[str, list[str]] = {}
        for set_name, ids in self.image_sets.items():
            for fid in ids:
                self._membership.setdefault(fid, []).append(set_name)
        metadata_file = self.root / "metadata.jsonl"
        self._metadata = _read_metadata_jsonl(metadata_file) if metadata_file.is_file() else None
        self._mapping = None
        if self._metadata is None and split == "training":
            self._mapping = _read_raw_mapping(self.root)
        if self._metadata is not None:
            missing = sum(1 for fid in self.frame_ids if self._lookup_metadata(fid) is None)
            if missing:
                logger.warning(
                    "%s: %d of %d frames have no metadata line; they get scene 'unknown'",
                    metadata_file,
                    missing,
                    len(self.frame_ids),
                )
        logger.info("KITTI source %s: %d frames in %s", self.name, len(self.frame_ids), self.split_dir)

    # -- protocol ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.frame_ids)

    def __iter__(self) -> Iterator[FrameRecord]:
        for fid in self.frame_ids:
            yield self.record(fid)

    def records(self, on_error: str = "fail") -> Iterator[Union[FrameRecord, BadFrame]]:
        """Yield every frame; with ``on_error="skip"`` a frame whose scan or label file is
        missing or corrupt yields a :class:`BadFrame` (file and reason) instead of raising."""
        for fid in self.frame_ids:
            try:
                record = self.record(fid)
            except CurateError as exc:
                if on_error != "skip" or isinstance(exc, PathOutsideRootError):
                    raise  # a path leading out of the root is refused, never skipped
                yield BadFrame(id=self.frame_id(fid), file=_file_of(str(exc)), reason=str(exc),
                               kind=type(exc).__name__)
                continue
            yield record

    def __repr__(self) -> str:
        return f"KittiSource(root={str(self.root)!r}, split={self.split!r}, frames={len(self)})"

    # -- helpers -----------------------------------------------------------------------------

    def frame_id(self, frame_id: str) -> str:
        """The workspace id of a KITTI frame id (adds the prefix when there is one)."""
        return f"{self.prefix}/{frame_id}" if self.prefix is not None else frame_id

    def calibration(self, frame_id: str) -> Calibration:
        """Read the calibration of one frame."""
        return read_calibration(self.split_dir / "calib" / f"{frame_id}.txt")

    def _lookup_metadata(self, fid: str) -> Optional[dict[str, Any]]:
        if self._metadata is None:
            return None
        return self._metadata.get(fid) or self._metadata.get(self.frame_id(fid))

    def _num_points(self, lidar: Path) -> int:
        size = lidar.stat().st_size
        if size % _KITTI_RECORD_BYTES:
            raise CorruptDataError(
                f"{lidar}: {size} bytes is not a multiple of {_KITTI_RECORD_BYTES} (float32 x,y,z,r); "
                "the file is truncated or not a KITTI velodyne scan"
            )
        if size == 0:
            raise CorruptDataError(f"{lidar}: the scan is empty (0 bytes); re-export or remove it")
        return size // _KITTI_RECORD_BYTES

    def record(self, frame_id: str) -> FrameRecord:
        """Build the :class:`FrameRecord` of one KITTI frame id (without prefix).

        Raises
        ------
        NotFoundError
            The frame has no velodyne file.
        CorruptDataError
            The scan size is invalid, or the label / metadata files are malformed.
        """
        lidar = inside(self.velodyne_dir / f"{frame_id}.bin", self.root, "velodyne scan")
        if not lidar.is_file():
            raise NotFoundError(f"{lidar}: no velodyne scan for frame {frame_id!r}")
        num_points = self._num_points(lidar)
        image = self.split_dir / "image_2" / f"{frame_id}.png"
        calib = self.split_dir / "calib" / f"{frame_id}.txt"
        label = self.split_dir / "label_2" / f"{frame_id}.txt"
        for path, what in ((image, "camera image"), (calib, "calibration file"), (label, "label file")):
            inside(path, self.root, what)
        boxes = parse_label_file(label) if label.is_file() else []

        metadata: dict[str, Any] = {key: None for key in METADATA_FIELDS}
        scene, frame_index, timestamp = "unknown", _int_or_zero(frame_id), 0.0
        meta = self._lookup_metadata(frame_id)
        if meta is not None:
            try:
                scene = str(meta.get("scene", scene))
                frame_index = int(meta.get("frame_index", frame_index))
                timestamp = float(meta.get("timestamp", timestamp))
            except (TypeError, ValueError) as exc:
                raise CorruptDataError(
                    f"{self.root / 'metadata.jsonl'}: frame {frame_id!r} has a frame_index or "
                    f"timestamp that is not a number ({exc})"
                ) from exc
            for key, value in meta.items():
                if key not in ("id", "scene", "frame_index", "timestamp"):
                    metadata[key] = value
        elif self._mapping is not None:
            position = _int_or_none(frame_id)
            if position is not None and 0 <= position < len(self._mapping):
                date, drive, raw_frame = self._mapping[position]
                scene, frame_index = drive, raw_frame
                metadata["date"] = date
        metadata["kitti_frame_id"] = frame_id
        metadata["image_sets"] = sorted(self._membership.get(frame_id, []))

        return FrameRecord(
            id=self.frame_id(frame_id),
            dataset=self.name,
            split=self.split,
            scene=scene,
            frame_index=frame_index,
            timestamp=timestamp,
            lidar_path=str(lidar),
            image_paths=[str(image)] if image.is_file() else [],
            calib_path=str(calib) if calib.is_file() else None,
            label_path=str(label) if label.is_file() else None,
            num_points=num_points,
            metadata=metadata,
            boxes=boxes,
        )


def _int_or_none(text: str) -> Optional[int]:
    try:
        return int(text)
    except ValueError:
        return None


def _int_or_zero(text: str) -> int:
    value = _int_or_none(text)
    return 0 if value is None else value


def _file_of(message: str) -> Optional[str]:
    """The path a source error message starts with (``"<path>: ..."`` / ``"<path>:<line>: ..."``)."""
    head = message.split(": ", 1)[0]
    head = head.rsplit(":", 1)[0] if head.rsplit(":", 1)[-1].isdigit() else head
    return head if head.startswith("/") else None
