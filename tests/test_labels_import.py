"""KITTI label_2 import: round trip through ``format_label_line``, replacement of earlier imports,
id prefixes, and errors that name the file and line and leave the store as it was."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import curate
from curate import _tables as T
from curate.cli import main
from curate.errors import CorruptDataError, InvalidInputError, NotFoundError
from curate.labels_import import frame_labels
from curate.sources.kitti import KittiSource, format_label_line, parse_label_line

FIELDS = ("type", "truncated", "occluded", "alpha", "bbox", "dimensions", "location", "rotation_y")


def _copy_without_labels(synth_root: Path, dest: Path) -> Path:
    shutil.copytree(synth_root, dest, ignore=shutil.ignore_patterns("label_2"))
    return dest


def _state(ws: curate.Workspace) -> tuple:
    labels = ws.store.version(T.LABELS) if ws.store.has_table(T.LABELS) else None
    return (labels, ws.store.version(T.SAMPLES), tuple(ws.labeled_ids()))


def _as_tuples(rows: list[dict]) -> list[tuple]:
    out = []
    for r in rows:
        vals = []
        for f in FIELDS:
            v = r[f]
            vals.append(tuple(np.round(np.asarray(v, dtype=np.float64), 4)) if isinstance(v, (list, tuple))
                        else (v if isinstance(v, str) else round(float(v), 4)))
        out.append(tuple(vals))
    return out


def _write_labels(folder: Path, boxes_by_frame: dict[str, list]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for fid, boxes in boxes_by_frame.items():
        (folder / f"{fid}.txt").write_text("".join(format_label_line(b) + "\n" for b in boxes))


@pytest.fixture
def unlabeled_ws(tmp_path: Path, synth_root: Path) -> curate.Workspace:
    """A fresh workspace of the synthetic scans without ground truth, ids prefixed ``kitti/``."""
    data = _copy_without_labels(synth_root, tmp_path / "data")
    ws = curate.connect(tmp_path / "fresh")
    ws.ingest(KittiSource(data, prefix="kitti"), progress=False)
    return ws


def test_round_trip_into_fresh_workspace(synth_root: Path, unlabeled_ws: curate.Workspace,
                                         tmp_path: Path) -> None:
    source = KittiSource(synth_root)
    chosen = [fid for fid in source.frame_ids if source.record(fid).boxes][:6]
    original = {fid: source.record(fid).boxes for fid in chosen}
    _write_labels(tmp_path / "returned", original)
    assert unlabeled_ws.boxes([f"kitti/{f}" for f in chosen], labeled_only=False).num_rows == 0

    report = unlabeled_ws.import_labels(tmp_path / "returned")

    assert report.files == report.frames == report.newly_labeled == len(chosen)
    assert report.boxes == sum(len(b) for b in original.values()) and report.replaced == 0
    assert unlabeled_ws.labeled_ids() == sorted(f"kitti/{f}" for f in chosen)
    for fid, boxes in original.items():
        rows = unlabeled_ws.boxes([f"kitti/{fid}"]).to_pylist()
        rows.sort(key=lambda r: r["box_index"])
        assert {r["origin"] for r in rows} == {"import"}
        # what a labeling tool returns is the box at KITTI's text precision
        expected = [parse_label_line(format_label_line(b)) for b in boxes]
        assert _as_tuples(rows) == _as_tuples([b.__dict__ for b in expected])
        assert [r["id"] for r in rows] == [f"kitti/{fid}#import#{i}" for i in range(len(boxes))]


def test_reimport_replaces_only_imported_boxes(ws: curate.Workspace, tmp_path: Path) -> None:
    fid = next(r["id"] for r in ws.frames(columns=["id", "num_gt_boxes"]).to_pylist()
               if r["num_gt_boxes"] >= 2)
    source_rows = ws.boxes([fid], labeled_only=False).to_pylist()
    boxes = [parse_label_line(format_label_line(_box(r))) for r in source_rows]
    _write_labels(tmp_path / "a", {fid: boxes})
    first = ws.import_labels(tmp_path / "a" / f"{fid}.txt")
    assert first.boxes == len(boxes) and first.newly_labeled == 1
    version = ws.store.version(T.LABELS)
    again = ws.import_labels([tmp_path / "a"])  # same content: nothing to write
    assert again.replaced == len(boxes) and again.newly_labeled == 0
    assert ws.store.version(T.LABELS) == version

    _write_labels(tmp_path / "b", {fid: boxes[:1]})
    third = ws.import_labels(tmp_path / "b")
    assert third.replaced == len(boxes) and third.boxes == 1
    rows = ws.boxes([fid]).to_pylist()
    assert sorted(r["origin"] for r in rows) == ["import"] + ["source"] * len(source_rows)
    effective = frame_labels(ws, [fid]).to_pylist()
    assert [r["origin"] for r in effective] == ["import"] and effective[0]["type"] == boxes[0].type
    # a frame without imported boxes keeps its source boxes as its labels
    other = next(i for i in ws.frames(columns=["id"])["id"].to_pylist() if i != fid)
    assert {r["origin"] for r in frame_labels(ws, [other]).to_pylist()} <= {"source"}


def _box(row: dict):
    from curate.sources.base import Box3D

    return Box3D(type=row["type"], truncated=row["truncated"], occluded=row["occluded"],
                 alpha=row["alpha"], bbox=tuple(row["bbox"]), dimensions=tuple(row["dimensions"]),
                 location=tuple(row["location"]), rotation_y=row["rotation_y"])


def test_empty_file_labels_frame_with_no_boxes(unlabeled_ws: curate.Workspace, tmp_path: Path) -> None:
    fid = unlabeled_ws.frames(columns=["id"])["id"].to_pylist()[0]
    (tmp_path / f"{fid.split('/')[-1]}.txt").write_text("")
    report = unlabeled_ws.import_labels(tmp_path / f"{fid.split('/')[-1]}.txt")
    assert report.boxes == 0 and report.newly_labeled == 1
    assert unlabeled_ws.labeled_ids() == [fid]


def test_errors_name_file_and_line_and_change_nothing(synth_root: Path, unlabeled_ws: curate.Workspace,
                                                       tmp_path: Path) -> None:
    source = KittiSource(synth_root)
    good = {fid: source.record(fid).boxes for fid in source.frame_ids[:3]}
    before = _state(unlabeled_ws)

    folder = tmp_path / "unknown"
    _write_labels(folder, good)
    (folder / "999999.txt").write_text("")
    with pytest.raises(NotFoundError, match=r"999999\.txt: no frame '999999'"):
        unlabeled_ws.import_labels(folder)
    assert _state(unlabeled_ws) == before

    folder = tmp_path / "malformed"
    _write_labels(folder, good)
    bad = folder / f"{source.frame_ids[1]}.txt"
    lines = bad.read_text().splitlines() + ["Car 0.00 0 1.0 1 2 3", "Car 0.00 0 x 1 2 3 4 1 1 1 1 1 1 0"]
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorruptDataError) as info:
        unlabeled_ws.import_labels(folder)
    message = str(info.value)
    assert f"{bad}:{len(lines) - 1}" in message and "15 fields" in message
    assert f"{bad}:{len(lines)}" not in message or "non-numeric" in message
    assert "nothing was imported" in message
    assert _state(unlabeled_ws) == before

    with pytest.raises(NotFoundError, match="no such label file"):
        unlabeled_ws.import_labels(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="holds no KITTI label files"):
        (tmp_path / "empty").mkdir()
        unlabeled_ws.import_labels(tmp_path / "empty")
    with pytest.raises(InvalidInputError, match="unknown label format 'coco'"):
        unlabeled_ws.import_labels(folder, format="coco")
    with pytest.raises(NotFoundError, match="'other/000000' is not in the workspace"):
        unlabeled_ws.import_labels(tmp_path / "unknown" / "000000.txt", prefix="other")
    assert _state(unlabeled_ws) == before


def test_ambiguous_ids_need_a_prefix(synth_root: Path, tmp_path: Path) -> None:
    data = _copy_without_labels(synth_root, tmp_path / "data")
    ws = curate.connect(tmp_path / "ws")
    source_a = KittiSource(data, prefix="a")
    source_a.frame_ids = source_a.frame_ids[:4]
    source_b = KittiSource(data, prefix="b")
    source_b.frame_ids = source_b.frame_ids[:4]
    ws.ingest(source_a, progress=False)
    ws.ingest(source_b, progress=False)
    fid = source_a.frame_ids[0]
    _write_labels(tmp_path / "lab", {fid: KittiSource(synth_root).record(fid).boxes})
    with pytest.raises(InvalidInputError, match="ambiguous"):
        ws.import_labels(tmp_path / "lab")
    report = ws.import_labels(tmp_path / "lab", prefix="b")
    assert report.frames == 1 and ws.labeled_ids() == [f"b/{fid}"]


def test_cli_import_labels(synth_root: Path, unlabeled_ws: curate.Workspace, tmp_path: Path,
                           capsys: pytest.CaptureFixture) -> None:
    source = KittiSource(synth_root)
    _write_labels(tmp_path / "lab", {fid: source.record(fid).boxes for fid in source.frame_ids[:2]})
    exe = Path(sys.executable).parent / "curate"
    res = subprocess.run(
        [str(exe), "import-labels", str(tmp_path / "lab"), "--workspace", str(unlabeled_ws.path)],
        capture_output=True, text=True, env=dict(os.environ), timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "imported" in res.stdout and "2 frames" in res.stdout
    assert curate.connect(unlabeled_ws.path).labeled_ids() == [f"kitti/{f}" for f in source.frame_ids[:2]]
    (tmp_path / "lab" / "000000.txt").write_text("Car 1 2\n")
    code = main(["import-labels", str(tmp_path / "lab"), "--workspace", str(unlabeled_ws.path)])
    err = capsys.readouterr().err
    assert code == 2 and "000000.txt:1" in err and err.startswith("curate: error:")
