"""Point-cloud file I/O: round trips, hand-written files, headers, and error messages."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from curate.errors import CorruptDataError, InvalidInputError, NotFoundError
from curate.sources.pointcloud import (
    SUPPORTED_EXTENSIONS,
    count_points,
    read_points,
    validate_point_file,
    write_points,
    write_points_bin,
    write_points_npy,
    write_points_pcd,
    write_points_ply,
)


@pytest.fixture()
def cloud() -> np.ndarray:
    rng = np.random.default_rng(7)
    pts = rng.normal(0, 20, size=(257, 4)).astype(np.float32)
    pts[:, 3] = rng.random(257).astype(np.float32)
    return pts


@pytest.mark.parametrize(
    "writer,name",
    [
        (write_points_bin, "a.bin"),
        (write_points_npy, "a.npy"),
        (lambda p, x: write_points_pcd(p, x, binary=True), "a.pcd"),
        (lambda p, x: write_points_pcd(p, x, binary=False), "ascii.pcd"),
        (lambda p, x: write_points_ply(p, x, binary=True), "a.ply"),
        (lambda p, x: write_points_ply(p, x, binary=False), "ascii.ply"),
    ],
)
def test_round_trip_is_exact(tmp_path: Path, cloud: np.ndarray, writer, name: str) -> None:
    path = tmp_path / "sub" / name
    writer(path, cloud)
    back = read_points(path)
    assert back.dtype == np.float32 and back.shape == cloud.shape and back.flags.c_contiguous
    np.testing.assert_array_equal(back, cloud)
    assert count_points(path) == cloud.shape[0]
    assert validate_point_file(path) == cloud.shape[0]
    assert validate_point_file(path, full=False) == cloud.shape[0]


def test_bin_matches_raw_kitti_layout(tmp_path: Path, cloud: np.ndarray) -> None:
    path = write_points_bin(tmp_path / "000001.bin", cloud)
    raw = path.read_bytes()
    assert len(raw) == 16 * cloud.shape[0]
    assert struct.unpack("<4f", raw[16:32]) == tuple(float(v) for v in cloud[1])


def test_xyz_only_inputs_get_zero_intensity(tmp_path: Path) -> None:
    xyz = np.arange(30, dtype=np.float64).reshape(10, 3)
    np.save(tmp_path / "xyz.npy", xyz)
    back = read_points(tmp_path / "xyz.npy")
    np.testing.assert_array_equal(back[:, :3], xyz.astype(np.float32))
    assert np.all(back[:, 3] == 0)
    wide = np.arange(60, dtype=np.float32).reshape(10, 6)
    np.save(tmp_path / "wide.npy", wide)
    np.testing.assert_array_equal(read_points(tmp_path / "wide.npy"), wide[:, :4])
    write_points(tmp_path / "w.bin", xyz)
    assert np.all(read_points(tmp_path / "w.bin")[:, 3] == 0)


def test_hand_written_pcd_with_extra_fields(tmp_path: Path) -> None:
    # a PCL-style file with rgb, a 2-element field, an 8-byte field and ``intensity`` last
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
        "FIELDS x y z rgb normal t intensity\nSIZE 4 4 4 4 4 8 2\nTYPE F F F U F F U\n"
        "COUNT 1 1 1 1 2 1 1\nWIDTH 3\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 3\nDATA binary\n"
    )
    rows = b"".join(
        struct.pack("<fffIffdH", 1.0 * i, 2.0 * i, -3.0 * i, 0xFF00FF, 0.5, 0.5, 99.0, 10 * i)
        for i in range(3)
    )
    path = tmp_path / "pcl.pcd"
    path.write_bytes(header.encode() + rows)
    pts = read_points(path)
    np.testing.assert_array_equal(pts[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(pts[:, 2], [0, -3, -6])
    np.testing.assert_array_equal(pts[:, 3], [0, 10, 20])
    ascii_path = tmp_path / "pcl_ascii.pcd"
    ascii_path.write_text(
        "VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 2\nHEIGHT 1\n"
        "POINTS 2\nDATA ascii\n1 2 3\n4 5 6\n"
    )
    np.testing.assert_array_equal(read_points(ascii_path), [[1, 2, 3, 0], [4, 5, 6, 0]])


def test_hand_written_ply_variants(tmp_path: Path) -> None:
    ascii_path = tmp_path / "mesh.ply"
    ascii_path.write_text(
        "ply\nformat ascii 1.0\ncomment made by hand\nelement vertex 3\nproperty float x\n"
        "property float y\nproperty float z\nproperty uchar red\nproperty float reflectance\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
        "0 0 0 255 0.1\n1 0 0 255 0.2\n0 1 0 255 0.3\n3 0 1 2\n"
    )
    pts = read_points(ascii_path)
    np.testing.assert_allclose(pts, [[0, 0, 0, 0.1], [1, 0, 0, 0.2], [0, 1, 0, 0.3]], rtol=1e-6)
    big = tmp_path / "big.ply"
    data = np.array([[1.5, -2.0, 3.25], [4.0, 5.0, -6.0]], dtype=">f8")
    big.write_bytes(
        b"ply\nformat binary_big_endian 1.0\nelement vertex 2\nproperty double x\n"
        b"property double y\nproperty double z\nend_header\n" + data.tobytes()
    )
    np.testing.assert_array_equal(read_points(big)[:, :3], data.astype(np.float32))
    assert count_points(big) == 2


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "000003.bin"
    with pytest.raises(NotFoundError, match="000003.bin"):
        read_points(missing)
    with pytest.raises(NotFoundError, match="000003.bin"):
        count_points(missing)


def test_bin_not_multiple_of_16(tmp_path: Path) -> None:
    path = tmp_path / "000012.bin"
    path.write_bytes(b"\0" * 1000)
    expected = "000012.bin: 1000 bytes is not a multiple of 16 (float32 x,y,z,r); the file is truncated"
    for fn in (read_points, count_points, validate_point_file):
        with pytest.raises(CorruptDataError) as info:
            fn(path)
        assert expected in str(info.value)
        assert str(path) in str(info.value)


def test_empty_bin_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "000000.bin"
    path.write_bytes(b"")
    with pytest.raises(CorruptDataError, match="000000.bin.*empty"):
        read_points(path)


def test_truncated_pcd_and_ply(tmp_path: Path, cloud: np.ndarray) -> None:
    for name, writer in (
        ("t.pcd", lambda p: write_points_pcd(p, cloud, binary=True)),
        ("ta.pcd", lambda p: write_points_pcd(p, cloud, binary=False)),
        ("t.ply", lambda p: write_points_ply(p, cloud, binary=True)),
        ("ta.ply", lambda p: write_points_ply(p, cloud, binary=False)),
    ):
        path = tmp_path / name
        writer(path)
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) - 100])
        with pytest.raises(CorruptDataError, match=f"{name}.*truncated"):
            read_points(path)
    header_only = tmp_path / "h.pcd"
    header_only.write_text("VERSION .7\nFIELDS x y z\nSIZE 4 4 4\n")
    with pytest.raises(CorruptDataError, match="h.pcd"):
        read_points(header_only)


def test_nan_and_inf_points(tmp_path: Path, cloud: np.ndarray) -> None:
    bad = cloud.copy()
    bad[5, 1] = np.nan
    bad[9, 0] = np.inf
    path = tmp_path / "nan.bin"
    bad.astype("<f4").tofile(path)
    with pytest.raises(CorruptDataError) as info:
        read_points(path)
    assert "nan.bin" in str(info.value) and "2 of 257" in str(info.value) and "point 5" in str(info.value)
    with pytest.raises(CorruptDataError, match="nan.bin"):
        validate_point_file(path)
    assert validate_point_file(path, full=False) == 257  # header-level check cannot see values
    dropped = read_points(path, nonfinite="drop")
    assert dropped.shape == (255, 4) and np.isfinite(dropped).all()
    with pytest.raises(InvalidInputError, match="NaN"):
        write_points_bin(tmp_path / "out.bin", bad)


def test_unknown_extension_lists_supported(tmp_path: Path) -> None:
    path = tmp_path / "scan.las"
    path.write_bytes(b"x")
    with pytest.raises(InvalidInputError) as info:
        read_points(path)
    assert "scan.las" in str(info.value)
    for ext in SUPPORTED_EXTENSIONS:
        assert ext in str(info.value)


def test_binary_compressed_pcd_is_rejected_clearly(tmp_path: Path) -> None:
    path = tmp_path / "c.pcd"
    path.write_bytes(
        b"VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 1\nHEIGHT 1\n"
        b"POINTS 1\nDATA binary_compressed\n\x00\x00\x00\x00"
    )
    with pytest.raises(CorruptDataError, match="c.pcd.*binary_compressed.*not supported"):
        read_points(path)


def test_bad_npy_shape_and_bad_writer_input(tmp_path: Path) -> None:
    np.save(tmp_path / "flat.npy", np.zeros(12, dtype=np.float32))
    with pytest.raises(CorruptDataError, match="flat.npy.*shape"):
        read_points(tmp_path / "flat.npy")
    with pytest.raises(InvalidInputError, match="shape"):
        write_points_bin(tmp_path / "x.bin", np.zeros((4, 2)))
    with pytest.raises(InvalidInputError, match="supported"):
        write_points(tmp_path / "x.xyz", np.zeros((4, 3)))
