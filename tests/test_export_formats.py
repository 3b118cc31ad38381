"""Every export format of a real stored run: ids in order, manifest equal to the run record,
sidecars where the format has no room, Label Studio task structure and URL mapping, atomicity."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from urllib.parse import unquote

import pyarrow.parquet as pq
import pytest

import curate
from curate.api import RunRecord
from curate.errors import InvalidInputError
from curate.export import (
    EXPORT_FORMATS,
    export_run,
    format_from_suffix,
    manifest_path,
    read_manifest,
    run_manifest,
)


def _read_ids(fmt: str, out: Path) -> list[str]:
    if fmt == "csv":
        return [r["id"] for r in csv.DictReader(out.open())]
    if fmt == "json":
        return [it["id"] for it in json.loads(out.read_text())["items"]]
    if fmt == "parquet":
        return pq.read_table(out)["id"].to_pylist()
    if fmt == "imagesets":
        return out.read_text().split()
    if fmt == "labelstudio":
        return [t["data"]["frame_id"] for t in json.loads(out.read_text())]
    raise AssertionError(fmt)


@pytest.fixture
def picked(ws: curate.Workspace) -> RunRecord:
    # a where-filter and a non-default seed, so the manifest has something to carry
    return ws.select("kcenter", 6, embedding="bev-hist", seed=3, where="weather != 'fog'").run


@pytest.mark.parametrize(
    "fmt,name,embedded",
    [
        ("csv", "sel.csv", False),
        ("json", "sel.json", True),
        ("parquet", "sel.parquet", True),
        ("imagesets", "train.txt", False),
        ("labelstudio", "tasks.json", False),
    ],
)
def test_content_and_manifest_equal_run_record(
    ws: curate.Workspace, picked: RunRecord, tmp_path: Path, fmt: str, name: str, embedded: bool
) -> None:
    out = ws.export(picked.run_id, fmt, tmp_path / name)
    ids = _read_ids(fmt, out)
    expected = [i.rsplit("/", 1)[-1] for i in picked.ids] if fmt == "imagesets" else picked.ids
    assert ids == expected
    assert manifest_path(out).exists() is not embedded
    manifest = read_manifest(out)
    stored = ws.run(picked.run_id)
    assert manifest["run"] == json.loads(json.dumps(run_manifest(stored)))
    for key in ("strategy", "params", "seed", "embedding_version", "samples_version",
                "package_version", "where", "run_id"):
        assert manifest["run"][key] == getattr(picked, key)
    assert manifest["count"] == len(picked.ids)
    if not embedded:
        assert manifest["format"] == fmt and manifest["file"] == name
    # no temporary files left behind
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_labelstudio_task_structure(ws: curate.Workspace, picked: RunRecord, tmp_path: Path) -> None:
    tasks = json.loads(ws.export(picked.run_id, "labelstudio", tmp_path / "ls.json").read_text())
    assert isinstance(tasks, list) and len(tasks) == len(picked.ids)
    frames = {r["id"]: r for r in ws.frames(ids=picked.ids).to_pylist()}
    for rank, (task, fid, gain) in enumerate(zip(tasks, picked.ids, picked.gains)):
        assert set(task) == {"data", "meta"}
        row = frames[fid]
        data = task["data"]
        assert data["pointcloud"] == row["lidar_path"] and Path(data["pointcloud"]).is_file()
        assert data["images"] == row["image_paths"] and data["image"] == row["image_paths"][0]
        assert data["calib"] == row["calib_path"]
        assert data["scene"] == row["scene"] and data["time_of_day"] == row["time_of_day"]
        assert task["meta"] == {"rank": rank, "gain": gain, "run_id": picked.run_id,
                                "strategy": "kcenter", "frame_id": fid}
    assert read_manifest(tmp_path / "ls.json")["base_url"] is None


def test_labelstudio_url_prefix(ws: curate.Workspace, picked: RunRecord, tmp_path: Path,
                                synth_root: Path) -> None:
    base = "http://files.example:8081/kitti/"
    out = ws.export(picked.run_id, "labelstudio", tmp_path / "ls.json", base_url=base,
                    path_root=str(synth_root))
    tasks = json.loads(out.read_text())
    for task in tasks:
        for key in ("pointcloud", "image", "calib"):
            url = task["data"][key]
            assert url.startswith(base)
            assert (synth_root / unquote(url[len(base):])).is_file()
    assert tasks[0]["data"]["pointcloud"] == base + "training/velodyne/" + \
        picked.ids[0].rsplit("/", 1)[-1] + ".bin"
    manifest = read_manifest(out)
    assert manifest["base_url"] == base and manifest["path_root"] == str(synth_root.resolve())
    # default root: the deepest folder holding every file; Label Studio local-files style prefix
    out2 = ws.export(picked.run_id, "labelstudio", tmp_path / "ls2.json",
                     base_url="/data/local-files/?d=")
    first = json.loads(out2.read_text())[0]["data"]
    assert first["pointcloud"].startswith("/data/local-files/?d=velodyne/")
    assert read_manifest(out2)["path_root"] == str((synth_root / "training").resolve())


def test_labelstudio_errors_leave_nothing(ws: curate.Workspace, picked: RunRecord, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "ls.json"
    with pytest.raises(InvalidInputError, match="not under the path root"):
        ws.export(picked.run_id, "labelstudio", out, base_url="http://x/",
                  path_root=str(tmp_path / "elsewhere"))
    assert list(folder.iterdir()) == []
    with pytest.raises(InvalidInputError, match="needs the workspace"):
        export_run(picked, "labelstudio", out)
    assert list(folder.iterdir()) == []


def test_reexport_replaces_atomically(ws: curate.Workspace, picked: RunRecord, tmp_path: Path) -> None:
    out = tmp_path / "sel.csv"
    out.write_text("old\n")
    ws.export(picked.run_id, "csv", out)
    assert _read_ids("csv", out) == picked.ids
    assert json.loads(manifest_path(out).read_text())["run"]["run_id"] == picked.run_id


def test_format_registry(picked: RunRecord) -> None:
    assert {"csv", "json", "parquet", "imagesets", "labelstudio"} <= set(EXPORT_FORMATS)
    for name, spec in EXPORT_FORMATS.items():
        assert spec.name == name
        for suffix in spec.suffixes:
            assert format_from_suffix(Path(f"x{suffix}")) == name
    with pytest.raises(InvalidInputError, match="labelstudio"):
        export_run(picked, "xml", Path("a.xml"))


def test_mmdet3d_info_pkl_of_the_subset(ws: curate.Workspace, picked: RunRecord, tmp_path: Path) -> None:
    from curate.loop import infos
    out = ws.export(picked.run_id, "mmdet3d", tmp_path / "subset.pkl")
    data = infos.read_info_pkl(out)
    assert [d["curate_id"] for d in data["data_list"]] == picked.ids
    assert format_from_suffix(out) == "mmdet3d"
    manifest = read_manifest(out)
    assert manifest["format"] == "mmdet3d" and manifest["count"] == len(picked.ids)
    assert manifest["run"] == json.loads(json.dumps(run_manifest(ws.run(picked.run_id))))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "ws") == [
        "subset.pkl", "subset.pkl.manifest.json"]
