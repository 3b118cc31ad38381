"""Read, count, validate and write LiDAR point-cloud files.

Supported formats (by file extension):

``.bin``
    KITTI velodyne scans: little-endian float32 records ``x, y, z, reflectance`` (16 bytes each).
``.npy``
    NumPy arrays of shape ``(N, 3)`` (no intensity) or ``(N, >=4)`` (the 4th column is intensity;
    further columns are ignored).
``.pcd``
    Point Cloud Library files with ``DATA ascii`` or ``DATA binary``. ``binary_compressed`` is
    rejected with a clear message.
``.ply``
    ``ascii``, ``binary_little_endian`` and ``binary_big_endian`` files with a ``vertex`` element
    holding ``x y z`` and optionally an intensity property (``intensity``, ``reflectance``,
    ``scalar_intensity``, ``remission`` or ``i``).

Every reader returns a C-contiguous float32 array of shape ``(N, 4)``: ``x, y, z, intensity``
(intensity 0 where the format has none). Costs: reading is ``O(N)`` time and memory;
:func:`count_points` reads at most the header (``O(1)`` for ``.bin``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Union

import numpy as np

from curate.errors import CorruptDataError, InvalidInputError, NotFoundError

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "read_points",
    "read_points_counted",
    "MIN_FINITE_POINTS",
    "count_points",
    "validate_point_file",
    "write_points",
    "write_points_bin",
    "write_points_npy",
    "write_points_pcd",
    "write_points_ply",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: File extensions :func:`read_points` understands (lower case, with the dot).
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".bin", ".npy", ".pcd", ".ply")

_KITTI_RECORD_BYTES = 16
_INTENSITY_NAMES = ("intensity", "reflectance", "scalar_intensity", "remission", "i")
_MAX_HEADER_BYTES = 1 << 16

_PCD_TYPES = {
    ("F", 4): "f4",
    ("F", 8): "f8",
    ("I", 1): "i1",
    ("I", 2): "i2",
    ("I", 4): "i4",
    ("I", 8): "i8",
    ("U", 1): "u1",
    ("U", 2): "u2",
    ("U", 4): "u4",
    ("U", 8): "u8",
}

_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _existing_file(path: PathLike) -> Path:
    """Return ``path`` as a :class:`Path`, raising :class:`NotFoundError` if it is not a file."""
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"{p}: point-cloud file does not exist; check the path")
    if not p.is_file():
        raise InvalidInputError(f"{p}: expected a point-cloud file but this is a directory")
    return p


def _extension(p: Path) -> str:
    ext = p.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise InvalidInputError(
            f"{p}: unsupported point-cloud extension {ext or '(none)'!r}; supported extensions are "
            f"{', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return ext


def _finalize(p: Path, points: np.ndarray, nonfinite: str) -> np.ndarray:
    """Check finiteness and emptiness, return a contiguous float32 ``(N, 4)`` array."""
    out = np.ascontiguousarray(points, dtype=np.float32)
    if out.shape[0] == 0:
        raise CorruptDataError(f"{p}: the file contains no points; re-export the scan")
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        bad = int((~finite).sum())
        if nonfinite == "drop":
            logger.warning("%s: dropped %d points with NaN/inf coordinates", p, bad)
            out = np.ascontiguousarray(out[finite])
            if out.shape[0] == 0:
                raise CorruptDataError(f"{p}: every point has NaN/inf coordinates")
        else:
            first = int(np.flatnonzero(~finite)[0])
            raise CorruptDataError(
                f"{p}: {bad} of {out.shape[0]} points have NaN or inf values (first at point "
                f"{first}); fix the file or read it with nonfinite='drop'"
            )
    return out


def _check_nonfinite_arg(nonfinite: str) -> None:
    if nonfinite not in ("raise", "drop"):
        raise InvalidInputError(f"nonfinite must be 'raise' or 'drop', got {nonfinite!r}")


def _xyzi_from_columns(columns: dict[str, np.ndarray], p: Path, fmt: str) -> np.ndarray:
    """Stack x, y, z and an optional intensity column into an ``(N, 4)`` float32 array."""
    lower = {name.lower(): name for name in columns}
    missing = [axis for axis in ("x", "y", "z") if axis not in lower]
    if missing:
        raise CorruptDataError(
            f"{p}: {fmt} file has no {'/'.join(missing)} field (fields: {', '.join(columns)}); "
            "a point cloud needs x, y and z"
        )
    n = len(columns[lower["x"]])
    out = np.zeros((n, 4), dtype=np.float32)
    for k, axis in enumerate(("x", "y", "z")):
        out[:, k] = columns[lower[axis]]
    for name in _INTENSITY_NAMES:
        if name in lower:
            out[:, 3] = columns[lower[name]]
            break
    return out


def _read_header_lines(p: Path, first_line: bytes, end_keyword: bytes) -> tuple[list[str], int]:
    """Read ASCII header lines up to and including the one starting with ``end_keyword``.

    Returns the decoded lines and the byte offset just after the header.
    """
    with open(p, "rb") as fh:
        head = fh.read(_MAX_HEADER_BYTES)
    lines: list[str] = []
    offset = 0
    while True:
        nl = head.find(b"\n", offset)
        if nl < 0:
            raise CorruptDataError(
                f"{p}: header is truncated (no '{end_keyword.decode()}' line found); the file is "
                "incomplete or not a valid point cloud"
            )
        raw = head[offset:nl].rstrip(b"\r")
        offset = nl + 1
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise CorruptDataError(f"{p}: header line {len(lines) + 1} is not ASCII") from exc
        lines.append(line)
        if len(lines) == 1 and first_line and raw.strip() != first_line:
            raise CorruptDataError(
                f"{p}: does not start with {first_line.decode()!r}; not a valid file of this type"
            )
        if raw.split(b" ")[0].strip() == end_keyword:
            return lines, offset


# ----------------------------------------------------------------------------------------------
# .bin
# ----------------------------------------------------------------------------------------------


def _bin_count(p: Path) -> int:
    size = p.stat().st_size
    if size % _KITTI_RECORD_BYTES:
        raise CorruptDataError(
            f"{p}: {size} bytes is not a multiple of {_KITTI_RECORD_BYTES} (float32 x,y,z,r); the "
            "file is truncated or not a KITTI velodyne scan"
        )
    if size == 0:
        raise CorruptDataError(f"{p}: the file is empty (0 bytes); re-export the scan")
    return size // _KITTI_RECORD_BYTES


def _read_bin(p: Path) -> np.ndarray:
    _bin_count(p)
    return np.fromfile(p, dtype="<f4").reshape(-1, 4)


# ----------------------------------------------------------------------------------------------
# .npy
# ----------------------------------------------------------------------------------------------


def _npy_header(p: Path) -> tuple[tuple[int, ...], np.dtype]:
    try:
        with open(p, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    except (ValueError, EOFError, OSError) as exc:
        raise CorruptDataError(f"{p}: not a valid .npy file ({exc})") from exc
    return shape, dtype


def _check_npy_shape(p: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise CorruptDataError(
            f"{p}: .npy dtype {dtype} is not a plain numeric array; save an (N, 3) or (N, 4) "
            "float array"
        )
    if len(shape) != 2 or shape[1] < 3:
        raise CorruptDataError(
            f"{p}: .npy array has shape {shape}; expected (N, 3) x,y,z or (N, >=4) x,y,z,intensity"
        )


def _npy_count(p: Path) -> int:
    shape, dtype = _npy_header(p)
    _check_npy_shape(p, shape, dtype)
    return int(shape[0])


def _read_npy(p: Path) -> np.ndarray:
    shape, dtype = _npy_header(p)
    _check_npy_shape(p, shape, dtype)
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as exc:
        raise CorruptDataError(f"{p}: cannot read .npy data ({exc}); the file is truncated") from exc
    out = np.zeros((arr.shape[0], 4), dtype=np.float32)
    out[:, :3] = arr[:, :3]
    if arr.shape[1] >= 4:
        out[:, 3] = arr[:, 3]
    return out


# ----------------------------------------------------------------------------------------------
# .pcd
# ----------------------------------------------------------------------------------------------


def _parse_pcd_header(p: Path) -> tuple[dict[str, list[str]], int]:
    lines, offset = _read_header_lines(p, b"", b"DATA")
    header: dict[str, list[str]] = {}
    for line in lines:
        if not line or line.startswith("#"):
            continue
        key, *values = line.split()
        header[key.upper()] = values
    for key in ("FIELDS", "SIZE", "TYPE", "DATA"):
        if key not in header:
            raise CorruptDataError(f"{p}: PCD header has no {key} line; the file is malformed")
    n_fields = len(header["FIELDS"])
    header.setdefault("COUNT", ["1"] * n_fields)
    if not (len(header["SIZE"]) == len(header["TYPE"]) == len(header["COUNT"]) == n_fields):
        raise CorruptDataError(
            f"{p}: PCD header FIELDS/SIZE/TYPE/COUNT have different lengths; the file is malformed"
        )
    return header, offset


def _pcd_count(header: dict[str, list[str]], p: Path) -> int:
    try:
        if "POINTS" in header:
            return int(header["POINTS"][0])
        return int(header["WIDTH"][0]) * int(header.get("HEIGHT", ["1"])[0])
    except (KeyError, IndexError, ValueError) as exc:
        raise CorruptDataError(f"{p}: PCD header has no valid POINTS or WIDTH/HEIGHT") from exc


def _pcd_dtype(header: dict[str, list[str]], p: Path) -> tuple[np.dtype, list[str]]:
    names: list[str] = []
    formats: list[tuple[str, str, tuple[int, ...]]] = []
    for name, size, typ, count in zip(
        header["FIELDS"], header["SIZE"], header["TYPE"], header["COUNT"]
    ):
        key = (typ.upper(), int(size))
        if key not in _PCD_TYPES:
            raise CorruptDataError(f"{p}: PCD field {name!r} has unsupported TYPE {typ} SIZE {size}")
        unique = name if name not in names else f"{name}_{len(names)}"
        names.append(unique)
        shape = (int(count),) if int(count) > 1 else ()
        formats.append((unique, "<" + _PCD_TYPES[key], shape))
    return np.dtype(formats), names


def _pcd_columns_from_records(records: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    cols: dict[str, np.ndarray] = {}
    for name in names:
        col = records[name]
        cols[name] = col if col.ndim == 1 else col[:, 0]
    return cols


def _read_pcd(p: Path) -> np.ndarray:
    header, offset = _parse_pcd_header(p)
    n = _pcd_count(header, p)
    data_kind = header["DATA"][0].lower() if header["DATA"] else ""
    dtype, names = _pcd_dtype(header, p)
    if data_kind == "ascii":
        with open(p, "rb") as fh:
            fh.seek(offset)
            text = fh.read()
        per_point = sum(int(c) for c in header["COUNT"])
        try:
            values = np.array(text.split(), dtype=np.float64)
        except ValueError as exc:
            raise CorruptDataError(f"{p}: PCD ascii data contains a non-numeric value") from exc
        if values.size < n * per_point:
            got = values.size // per_point if per_point else 0
            raise CorruptDataError(
                f"{p}: PCD header says {n} points but the ascii data holds only {got}; the file is "
                "truncated"
            )
        table = values[: n * per_point].reshape(n, per_point)
        cols: dict[str, np.ndarray] = {}
        col = 0
        for name, count in zip(names, header["COUNT"]):
            cols[name] = table[:, col]
            col += int(count)
        return _xyzi_from_columns(cols, p, "PCD")
    if data_kind == "binary":
        needed = n * dtype.itemsize
        available = p.stat().st_size - offset
        if available < needed:
            raise CorruptDataError(
                f"{p}: PCD header says {n} points ({needed} bytes) but only {available} data bytes "
                "follow the header; the file is truncated"
            )
        records = np.fromfile(p, dtype=dtype, count=n, offset=offset)
        return _xyzi_from_columns(_pcd_columns_from_records(records, names), p, "PCD")
    if data_kind == "binary_compressed":
        raise CorruptDataError(
            f"{p}: PCD 'DATA binary_compressed' is not supported; convert the file to binary or "
            "ascii PCD (e.g. pcl_convert_pcd_ascii_binary in.pcd out.pcd 1) or to KITTI .bin"
        )
    raise CorruptDataError(f"{p}: PCD DATA type {data_kind!r} is unknown (ascii, binary expected)")


# ----------------------------------------------------------------------------------------------
# .ply
# ----------------------------------------------------------------------------------------------


def _parse_ply_header(p: Path) -> tuple[str, list[tuple[str, int, list[tuple[str, str]]]], int]:
    lines, offset = _read_header_lines(p, b"ply", b"end_header")
    if not lines or lines[0] != "ply":
        raise CorruptDataError(f"{p}: does not start with 'ply'; not a PLY file")
    fmt = ""
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for line_number, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if not parts or parts[0] in ("comment", "obj_info", "end_header"):
            continue
        if parts[0] == "format":
            fmt = parts[1] if len(parts) > 1 else ""
        elif parts[0] == "element":
            try:
                elements.append((parts[1], int(parts[2]), []))
            except (IndexError, ValueError) as exc:
                raise CorruptDataError(f"{p}: PLY header line {line_number} is malformed") from exc
        elif parts[0] == "property":
            if not elements:
                raise CorruptDataError(f"{p}: PLY property before any element (line {line_number})")
            if len(parts) >= 2 and parts[1] == "list":
                elements[-1][2].append((parts[-1], "list"))
            elif len(parts) == 3:
                elements[-1][2].append((parts[2], parts[1]))
            else:
                raise CorruptDataError(f"{p}: PLY header line {line_number} is malformed")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise CorruptDataError(f"{p}: PLY format {fmt!r} is not supported")
    return fmt, elements, offset


def _ply_vertex(
    p: Path, elements: list[tuple[str, int, list[tuple[str, str]]]]
) -> tuple[int, int, list[tuple[str, str]]]:
    for position, (name, count, props) in enumerate(elements):
        if name == "vertex":
            return position, count, props
    raise CorruptDataError(f"{p}: PLY file has no 'vertex' element")


def _ply_count(p: Path) -> int:
    _, elements, _ = _parse_ply_header(p)
    return _ply_vertex(p, elements)[1]


def _read_ply(p: Path) -> np.ndarray:
    fmt, elements, offset = _parse_ply_header(p)
    position, n, props = _ply_vertex(p, elements)
    for name, typ in props:
        if typ == "list":
            raise CorruptDataError(f"{p}: PLY vertex has list property {name!r}; not supported")
        if typ not in _PLY_TYPES:
            raise CorruptDataError(f"{p}: PLY vertex property {name!r} has unknown type {typ!r}")
    if fmt == "ascii":
        with open(p, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("ascii", errors="replace")
        lines = text.splitlines()
        skip = sum(count for _, count, _ in elements[:position])
        rows = [ln for ln in lines[skip : skip + n]]
        if len(rows) < n:
            raise CorruptDataError(
                f"{p}: PLY header says {n} vertices but only {len(rows)} data lines follow; the "
                "file is truncated"
            )
        try:
            table = np.array(" ".join(rows).split(), dtype=np.float64)
        except ValueError as exc:
            raise CorruptDataError(f"{p}: PLY ascii vertex data contains a non-number") from exc
        if table.size != n * len(props):
            raise CorruptDataError(
                f"{p}: PLY vertex lines do not each hold {len(props)} values; the file is malformed"
            )
        table = table.reshape(n, len(props))
        cols = {name: table[:, k] for k, (name, _) in enumerate(props)}
        return _xyzi_from_columns(cols, p, "PLY")
    order = "<" if fmt == "binary_little_endian" else ">"
    skip_bytes = 0
    for name, count, eprops in elements[:position]:
        if any(t == "list" or t not in _PLY_TYPES for _, t in eprops):
            raise CorruptDataError(
                f"{p}: PLY element {name!r} with list properties precedes 'vertex'; not supported"
            )
        skip_bytes += count * sum(np.dtype(_PLY_TYPES[t]).itemsize for _, t in eprops)
    dtype = np.dtype([(name, order + _PLY_TYPES[t]) for name, t in props])
    start = offset + skip_bytes
    needed = n * dtype.itemsize
    available = p.stat().st_size - start
    if available < needed:
        raise CorruptDataError(
            f"{p}: PLY header says {n} vertices ({needed} bytes) but only {max(available, 0)} bytes "
            "follow; the file is truncated"
        )
    records = np.fromfile(p, dtype=dtype, count=n, offset=start)
    cols = {name: records[name] for name, _ in props}
    return _xyzi_from_columns(cols, p, "PLY")


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------


def read_points(path: PathLike, *, nonfinite: str = "raise") -> np.ndarray:
    """Read a point-cloud file into an ``(N, 4)`` float32 array ``x, y, z, intensity``.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.bin``, ``.npy``, ``.pcd`` or ``.ply`` file.
    nonfinite : {"raise", "drop"}
        What to do with points holding NaN or inf: raise :class:`CorruptDataError` (default) or
        drop them with a warning (organised PCD files mark missing returns with NaN).

    Returns
    -------
    numpy.ndarray
        C-contiguous float32 array of shape ``(N, 4)``; intensity is 0 where the file has none.

    Raises
    ------
    NotFoundError
        The file does not exist.
    InvalidInputError
        The extension is not one of :data:`SUPPORTED_EXTENSIONS`.
    CorruptDataError
        The file is truncated, malformed, empty or holds NaN/inf values.

    Notes
    -----
    ``O(N)`` time and memory.
    """
    _check_nonfinite_arg(nonfinite)
    p = _existing_file(path)
    ext = _extension(p)
    if ext == ".bin":
        points = _read_bin(p)
    elif ext == ".npy":
        points = _read_npy(p)
    elif ext == ".pcd":
        points = _read_pcd(p)
    else:
        points = _read_ply(p)
    return _finalize(p, points, nonfinite)


#: Fewest finite points a frame may keep once its NaN/inf points (no returns) are dropped; fewer
#: make it a bad frame (:func:`read_points_counted`).
MIN_FINITE_POINTS = 16


def read_points_counted(path: PathLike, *, min_points: int = MIN_FINITE_POINTS) -> tuple[np.ndarray, int]:
    """Read a point cloud, dropping NaN/inf points (no returns), and say how many were dropped.

    What the pool jobs use: many sensors write NaN for beams without a return, so such points
    are not an error; a frame left with fewer than ``min_points`` finite points is.

    Returns
    -------
    points : numpy.ndarray
        ``(N, 4)`` float32, all finite.
    dropped : int
        Points removed for NaN/inf values.

    Raises
    ------
    NotFoundError, InvalidInputError, CorruptDataError
        As :func:`read_points`; CorruptDataError also when fewer than ``min_points`` finite
        points remain (the message gives both counts).
    """
    p = _existing_file(path)
    ext = _extension(p)
    reader = {".bin": _read_bin, ".npy": _read_npy, ".pcd": _read_pcd}.get(ext, _read_ply)
    raw = reader(p)
    if raw.shape[0] == 0:
        raise CorruptDataError(f"{p}: the file contains no points; re-export the scan")
    finite = np.isfinite(raw).all(axis=1)
    dropped = int(raw.shape[0] - finite.sum())
    points = np.ascontiguousarray(raw if dropped == 0 else raw[finite], dtype=np.float32)
    if points.shape[0] < min_points:
        raise CorruptDataError(
            f"{p}: only {points.shape[0]} of {raw.shape[0]} points are finite (NaN/inf are no "
            f"returns); a frame needs at least {min_points}. Re-export or remove the scan"
        )
    return points, dropped


def count_points(path: PathLike) -> int:
    """Number of points in a file without reading its data.

    ``.bin`` uses the file size (and checks it is a whole number of 16-byte records); ``.npy``,
    ``.pcd`` and ``.ply`` read only their header. ``O(1)`` time and memory.

    Raises
    ------
    NotFoundError, InvalidInputError, CorruptDataError
        As for :func:`read_points` (header-level problems only).
    """
    p = _existing_file(path)
    ext = _extension(p)
    if ext == ".bin":
        return _bin_count(p)
    if ext == ".npy":
        return _npy_count(p)
    if ext == ".pcd":
        header, _ = _parse_pcd_header(p)
        return _pcd_count(header, p)
    return _ply_count(p)


def validate_point_file(path: PathLike, *, full: bool = True) -> int:
    """Check that a point-cloud file is readable and return its number of points.

    Parameters
    ----------
    path : str or os.PathLike
        The file to check.
    full : bool
        ``True`` (default) reads the whole file and checks every value is finite (``O(N)``);
        ``False`` only checks the header / file size (``O(1)``), for very large ingests.

    Returns
    -------
    int
        Number of points (after a full read: the number actually read).

    Raises
    ------
    NotFoundError, InvalidInputError, CorruptDataError
        With a message naming the file and the problem.
    """
    if not full:
        n = count_points(path)
        if n <= 0:
            raise CorruptDataError(f"{Path(path)}: the file contains no points")
        return n
    return int(read_points(path).shape[0])


def _points_for_writing(points: np.ndarray, where: str) -> np.ndarray:
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] not in (3, 4):
        raise InvalidInputError(
            f"{where}: points must have shape (N, 3) or (N, 4), got {arr.shape}"
        )
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(f"{where}: points must be numeric, got dtype {arr.dtype}")
    out = np.zeros((arr.shape[0], 4), dtype=np.float32)
    out[:, : arr.shape[1]] = arr
    if not np.isfinite(out).all():
        raise InvalidInputError(f"{where}: points contain NaN or inf values; refusing to write")
    return out


def _prepare_target(path: PathLike) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def write_points_bin(path: PathLike, points: np.ndarray) -> Path:
    """Write points as a KITTI velodyne ``.bin`` file (float32 ``x, y, z, r`` records).

    ``points`` is ``(N, 3)`` (intensity written as 0) or ``(N, 4)``. Parent folders are created.
    Returns the path written. ``O(N)``.
    """
    p = _prepare_target(path)
    data = _points_for_writing(points, str(p))
    data.astype("<f4", copy=False).tofile(p)
    return p


def write_points_npy(path: PathLike, points: np.ndarray) -> Path:
    """Write points as an ``(N, 4)`` float32 ``.npy`` file. Returns the path written."""
    p = _prepare_target(path)
    np.save(p, _points_for_writing(points, str(p)), allow_pickle=False)
    return p


def write_points_pcd(path: PathLike, points: np.ndarray, *, binary: bool = True) -> Path:
    """Write points as a PCD v0.7 file with fields ``x y z intensity``.

    Parameters
    ----------
    binary : bool
        ``True`` writes ``DATA binary``, ``False`` writes ``DATA ascii``.
    """
    p = _prepare_target(path)
    data = _points_for_writing(points, str(p))
    n = data.shape[0]
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\n"
        "VERSION 0.7\nFIELDS x y z intensity\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
        f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\n"
        f"DATA {'binary' if binary else 'ascii'}\n"
    )
    with open(p, "wb") as fh:
        fh.write(header.encode("ascii"))
        if binary:
            fh.write(data.astype("<f4", copy=False).tobytes())
        else:
            fh.write(_ascii_rows(data).encode("ascii"))
    return p


def write_points_ply(path: PathLike, points: np.ndarray, *, binary: bool = True) -> Path:
    """Write points as a PLY file with a ``vertex`` element ``x y z intensity`` (float).

    Parameters
    ----------
    binary : bool
        ``True`` writes ``binary_little_endian``, ``False`` writes ``ascii``.
    """
    p = _prepare_target(path)
    data = _points_for_writing(points, str(p))
    header = (
        f"ply\nformat {'binary_little_endian' if binary else 'ascii'} 1.0\n"
        f"element vertex {data.shape[0]}\nproperty float x\nproperty float y\nproperty float z\n"
        "property float intensity\nend_header\n"
    )
    with open(p, "wb") as fh:
        fh.write(header.encode("ascii"))
        if binary:
            fh.write(data.astype("<f4", copy=False).tobytes())
        else:
            fh.write(_ascii_rows(data).encode("ascii"))
    return p


def _ascii_rows(data: np.ndarray) -> str:
    # repr-precision float32 text ("%.9g") round-trips float32 exactly.
    return "".join(" ".join(f"{v:.9g}" for v in row) + "\n" for row in data.tolist())


_WRITERS = {
    ".bin": write_points_bin,
    ".npy": write_points_npy,
    ".pcd": write_points_pcd,
    ".ply": write_points_ply,
}


def write_points(path: PathLike, points: np.ndarray) -> Path:
    """Write points in the format chosen by the extension of ``path`` (binary PCD / PLY)."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in _WRITERS:
        raise InvalidInputError(
            f"{p}: cannot write extension {ext or '(none)'!r}; supported extensions are "
            f"{', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return _WRITERS[ext](p, points)

