"""Security edges of ``curate serve`` that a write token must not cross.

A real uvicorn server on 127.0.0.1 over a copy of the embedded template; raw httpx requests.

* a loop job may not name a Python file as its detector (mmengine would execute it);
* worker counts of a loop's detector are capped;
* symlinks below a data root that point outside it are refused for every path field and reader.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from curate.server import BackgroundServer, create_app

WRITE_TOKEN = "security-write-token"
HEADERS = {"Authorization": f"Bearer {WRITE_TOKEN}"}


@pytest.fixture
def served(tmp_path: Path, embedded_template: Path) -> Iterator[tuple[httpx.Client, Path, Path]]:
    """(client, data root, workspace) of a fresh server; the data root is empty."""
    ws_path, root = tmp_path / "ws", tmp_path / "data"
    shutil.copytree(embedded_template, ws_path)
    root.mkdir()
    app = create_app(ws_path, {WRITE_TOKEN: "write"}, data_roots=[root], use_env_tokens=False)
    with BackgroundServer(app) as srv, httpx.Client(base_url=srv.url, timeout=60, headers=HEADERS) as http:
        yield http, root, ws_path


def _evil_config(root: Path, marker: Path) -> Path:
    """A Python 'detector config' below the data root that writes ``marker`` when executed."""
    evil = root / "evil_detector.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('pwned')\nmodel = dict(type='x')\n")
    return evil


def _jobs(http: httpx.Client) -> list[dict]:
    r = http.get("/v1/jobs")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("relative", [False, True])
def test_loop_detector_python_file_is_refused(served: tuple, tmp_path: Path, relative: bool) -> None:
    http, root, _ = served
    marker = tmp_path / "marker.txt"
    evil = _evil_config(root, marker)
    detector = evil.name if relative else str(evil)
    body = {"config": {"name": "evil", "embedding": "bev-hist", "detector": detector,
                       "initial": 2, "budget": 1, "rounds": 1}, "options": {}, "stop_after": 1}
    r = http.post("/v1/jobs/loop", json=body)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert "detector" in r.json()["detail"]
    assert _jobs(http) == []
    time.sleep(0.5)
    assert not marker.exists()


def test_loop_detector_in_a_config_file_is_refused(served: tuple, tmp_path: Path) -> None:
    import json

    http, root, _ = served
    marker = tmp_path / "marker.txt"
    evil = _evil_config(root, marker)
    (root / "loop.json").write_text(json.dumps({"name": "evil", "embedding": "bev-hist",
                                                "detector": str(evil)}))
    r = http.post("/v1/jobs/loop", json={"config": "loop.json", "options": {}})
    assert 400 <= r.status_code < 500 and "detector" in r.json()["detail"], r.text
    r = http.post("/v1/jobs/loop", json={"config": "loop.json", "options": {"detector": "x.py"}})
    assert 400 <= r.status_code < 500 and "detector" in r.json()["detail"], r.text
    assert _jobs(http) == [] and not marker.exists()


@pytest.mark.parametrize("value", [64, -1, "8", 1.5, True])
def test_loop_detector_worker_count_is_capped(served: tuple, value: object) -> None:
    http, _, _ = served
    body = {"config": {"name": "w", "embedding": "bev-hist", "detector": "pointpillars-tiny",
                       "detector_options": {"num_workers": value}}, "options": {}}
    r = http.post("/v1/jobs/loop", json=body)
    assert r.status_code == 422, r.text
    assert "detector_options.num_workers" in r.json()["detail"]
    assert _jobs(http) == []


# ---------------------------------------------------------------------- symlinks out of a data root
def _kitti_copy(synth_root: Path, root: Path, outside: Path) -> Path:
    """A copy of the synthetic set below ``root``; returns a folder outside it with decoys."""
    kitti = root / "kitti"
    shutil.copytree(synth_root, kitti)
    outside.mkdir(exist_ok=True)
    return kitti


@pytest.mark.parametrize("member", ["velodyne/000001.bin", "label_2/000001.txt",
                                    "calib/000001.txt", "image_2/000001.png"])
def test_ingest_refuses_a_file_linking_out_of_the_data_root(
        served: tuple, synth_root: Path, tmp_path: Path, member: str) -> None:
    http, root, _ = served
    kitti = _kitti_copy(synth_root, root, tmp_path / "outside")
    inner = kitti / "training" / member
    decoy = tmp_path / "outside" / inner.name
    shutil.copyfile(inner, decoy)
    inner.unlink()
    inner.symlink_to(decoy)
    before = http.get("/v1/frames/count").json()["count"]
    r = http.post("/v1/ingest", json={"kind": "kitti", "root": "kitti", "prefix": "copy"})
    assert r.status_code == 403, r.text
    assert str(inner) in r.json()["detail"] and "outside" in r.json()["detail"]
    assert http.get("/v1/frames/count").json()["count"] == before  # the store is unchanged


def test_folder_ingest_refuses_a_point_cloud_linking_out(served: tuple, synth_root: Path, tmp_path: Path) -> None:
    http, root, _ = served
    folder = root / "clouds"
    folder.mkdir()
    shutil.copyfile(synth_root / "training" / "velodyne" / "000000.bin", folder / "a.bin")
    outside = tmp_path / "outside.bin"
    shutil.copyfile(synth_root / "training" / "velodyne" / "000001.bin", outside)
    (folder / "b.bin").symlink_to(outside)
    r = http.post("/v1/ingest", json={"kind": "folder", "root": "clouds"})
    assert r.status_code == 403 and "b.bin" in r.json()["detail"], r.text


def test_label_import_refuses_a_file_linking_out_of_a_folder(served: tuple, synth_root: Path, tmp_path: Path) -> None:
    http, root, _ = served
    labels = root / "labels"
    labels.mkdir()
    shutil.copyfile(synth_root / "training" / "label_2" / "000000.txt", labels / "000000.txt")
    outside = tmp_path / "000001.txt"
    shutil.copyfile(synth_root / "training" / "label_2" / "000001.txt", outside)
    (labels / "000001.txt").symlink_to(outside)
    labeled = http.get("/v1/labeled").json()
    r = http.post("/v1/labels/import", json={"paths": ["labels"]})
    assert r.status_code == 403 and "000001.txt" in r.json()["detail"], r.text
    assert http.get("/v1/labeled").json() == labeled


def test_readers_refuse_links_out_of_their_root(synth_root: Path, tmp_path: Path) -> None:
    from curate.confine import PathOutsideRootError
    from curate.sources.folder import FolderSource
    from curate.sources.kitti import KittiSource

    kitti = _kitti_copy(synth_root, tmp_path / "root", tmp_path / "outside")
    metadata = kitti / "metadata.jsonl"
    if metadata.is_file():  # a side file read when the source opens
        shutil.copyfile(metadata, tmp_path / "outside" / "metadata.jsonl")
        metadata.unlink()
        metadata.symlink_to(tmp_path / "outside" / "metadata.jsonl")
        with pytest.raises(PathOutsideRootError, match="metadata.jsonl"):
            KittiSource(kitti)
        metadata.unlink()
        shutil.copyfile(tmp_path / "outside" / "metadata.jsonl", metadata)
    scan = kitti / "training" / "velodyne" / "000002.bin"
    shutil.copyfile(scan, tmp_path / "outside" / "scan.bin")
    scan.unlink()
    scan.symlink_to(tmp_path / "outside" / "scan.bin")
    with pytest.raises(PathOutsideRootError, match="000002.bin"):
        list(KittiSource(kitti))
    with pytest.raises(PathOutsideRootError, match="000002.bin"):
        FolderSource(kitti / "training" / "velodyne")
    # a link that stays inside the root is fine
    scan.unlink()
    scan.symlink_to(kitti / "training" / "velodyne" / "000003.bin")
    assert len(list(KittiSource(kitti))) == len(list((kitti / "training" / "velodyne").iterdir()))


def test_import_oracle_refuses_a_label_linking_out(ws, synth_root: Path, tmp_path: Path) -> None:
    from curate.confine import PathOutsideRootError
    from curate.loop.oracle import ImportOracle

    label_dir = tmp_path / "returned"
    label_dir.mkdir()
    shutil.copyfile(synth_root / "training" / "label_2" / "000000.txt", label_dir / "000000.txt")
    outside = tmp_path / "elsewhere.txt"
    shutil.copyfile(synth_root / "training" / "label_2" / "000001.txt", outside)
    (label_dir / "000001.txt").symlink_to(outside)
    with pytest.raises(PathOutsideRootError, match="000001.txt"):
        ImportOracle(label_dir).label(ws, ["000000", "000001"])
    assert ws.labeled_ids() == []
