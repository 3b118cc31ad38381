"""A folder tree of point-cloud files as a data source.

Every supported point file (see :data:`curate.sources.pointcloud.SUPPORTED_EXTENSIONS`) under the
root, recursively, becomes one frame:

* ``id``: the path relative to the root without its extension, with ``/`` separators (prefixed by
  ``f"{prefix}/"`` when a prefix is given);
* ``scene``: the folder holding the file, relative to the root (for one level of nesting this is
  simply the parent folder's name; files directly in the root get the root folder's name);
* ``frame_index``: the file's position within its folder, in sorted order;
* ``image_paths``: a same-stem ``.png`` / ``.jpg`` / ``.jpeg`` beside the point file, if any.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator, Optional, Union

from curate.confine import PathOutsideRootError, inside
from curate.errors import CurateError, InvalidInputError, NotFoundError
from curate.sources.base import METADATA_FIELDS, BadFrame, FrameRecord
from curate.sources.pointcloud import SUPPORTED_EXTENSIONS, count_points
from curate.sources.registry import SourceOption, register_source

__all__ = ["FolderSource", "IMAGE_EXTENSIONS"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: Image extensions looked for beside each point file, in order of preference.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")


@register_source("folder", pattern=SourceOption(None, "glob of the files below ROOT (default: every point cloud)"),
                 prefix=SourceOption(None, "prefix for frame ids"))
class FolderSource:
    """Point-cloud files found under a folder.

    Parameters
    ----------
    root : str or os.PathLike
        Folder to scan recursively.
    pattern : str, optional
        A glob pattern relative to ``root`` (``"**/*.bin"``, ``"lidar/*.pcd"``); only matching files
        with a supported extension are used. Default: every supported file, recursively.
    prefix : str, optional
        Prepended to every id as ``f"{prefix}/{relative_id}"``; also the source's :attr:`name`.

    Notes
    -----
    Construction walks the tree once (``O(files)``); iteration reads only file headers
    (``num_points`` via :func:`~curate.sources.pointcloud.count_points`).

    Raises
    ------
    NotFoundError
        ``root`` does not exist.
    InvalidInputError
        Two files map to the same id (e.g. ``a.bin`` and ``a.pcd`` side by side), or nothing
        matched.
    """

    def __init__(
        self, root: PathLike, pattern: Optional[str] = None, prefix: Optional[str] = None
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise NotFoundError(f"{self.root}: folder does not exist; pass a folder of point clouds")
        if prefix is not None and (not prefix or prefix.strip("/") != prefix):
            raise InvalidInputError(
                f"prefix must be a non-empty string without leading/trailing '/', got {prefix!r}"
            )
        self.pattern = pattern
        self.prefix = prefix
        self.name = prefix if prefix is not None else self.root.name
        candidates = self.root.glob(pattern) if pattern else self.root.rglob("*")
        files = sorted(
            (p for p in candidates if p.suffix.lower() in SUPPORTED_EXTENSIONS and p.is_file()),
            key=lambda p: p.relative_to(self.root).as_posix(),
        )
        if not files:
            raise InvalidInputError(
                f"{self.root}: no point-cloud files found"
                + (f" matching {pattern!r}" if pattern else "")
                + f"; supported extensions are {', '.join(SUPPORTED_EXTENSIONS)}"
            )
        self._files: list[Path] = files
        self._ids: list[str] = []
        self._scenes: list[str] = []
        self._indices: list[int] = []
        seen: dict[str, Path] = {}
        per_folder: dict[str, int] = {}
        for path in files:
            inside(path, self.root, "point cloud")  # symlinks leading out of the root are refused
            rel = path.relative_to(self.root)
            rel_id = rel.with_suffix("").as_posix()
            if rel_id in seen:
                raise InvalidInputError(
                    f"{path} and {seen[rel_id]} both map to frame id {rel_id!r}; keep one format "
                    "per frame or narrow the pattern"
                )
            seen[rel_id] = path
            parent = rel.parent.as_posix()
            scene = self.root.name if parent == "." else parent
            index = per_folder.get(parent, 0)
            per_folder[parent] = index + 1
            self._ids.append(f"{prefix}/{rel_id}" if prefix is not None else rel_id)
            self._scenes.append(scene)
            self._indices.append(index)
        logger.info("folder source %s: %d frames under %s", self.name, len(files), self.root)

    @property
    def frame_ids(self) -> list[str]:
        """Frame ids in iteration order."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._files)

    def __iter__(self) -> Iterator[FrameRecord]:
        """Yield every frame; the first unreadable file raises (see :meth:`records`)."""
        return self.records(on_error="fail")  # type: ignore[return-value]

    def records(self, on_error: str = "fail") -> Iterator[Union[FrameRecord, BadFrame]]:
        """Yield every frame; with ``on_error="skip"`` an unreadable file yields a :class:`BadFrame`.

        A truncated, empty or corrupt-header file raises :class:`CorruptDataError` (a vanished
        one :class:`NotFoundError`) with ``on_error="fail"``.
        """
        for path, fid, scene, index in zip(self._files, self._ids, self._scenes, self._indices):
            try:
                num_points = count_points(path)
            except CurateError as exc:
                if on_error != "skip" or isinstance(exc, PathOutsideRootError):
                    raise  # a path leading out of the root is refused, never skipped
                yield BadFrame(id=fid, file=str(path), reason=str(exc), kind=type(exc).__name__)
                continue
            yield FrameRecord(
                id=fid,
                dataset=self.name,
                split=self.root.name,
                scene=scene,
                frame_index=index,
                timestamp=0.0,
                lidar_path=str(path),
                image_paths=[str(inside(i, self.root, "camera image")) for i in _images_beside(path)],
                calib_path=None,
                label_path=None,
                num_points=num_points,
                metadata={key: None for key in METADATA_FIELDS},
                boxes=[],
            )

    def __repr__(self) -> str:
        return f"FolderSource(root={str(self.root)!r}, frames={len(self)})"


def _images_beside(path: Path) -> list[str]:
    for ext in IMAGE_EXTENSIONS:
        for candidate in (path.with_suffix(ext), path.with_suffix(ext.upper())):
            if candidate.is_file():
                return [str(candidate)]
    return []
