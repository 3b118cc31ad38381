"""nuScenes-format pools: synthetic writer, devkit load, reader, sweeps, infos and export.

The data set is small (2 scenes x 3 samples, 16-beam LiDAR, 200x112 cameras): a few seconds.
Tests that need the official devkit or mmdet3d skip when those are not installed.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

import curate
from curate.cli import main
from curate.errors import CorruptDataError, NotFoundError
from curate.sources.nuscenes import CAMERA_ORDER, NuScenesSource
from curate.sources.nuscenes_points import aggregate_sweeps
from curate.sources.synthetic_nuscenes import generate_nuscenes

VERSION = "v1.0-mini"


@pytest.fixture(scope="module")
def nusc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nusc")
    assert main(["synth", "--out", str(root), "--frames", "6", "--small", "--format", "nuscenes",
                 "--frames-per-drive", "3", "--seed", "3"]) == 0
    return root


@pytest.fixture(scope="module")
def devkit(nusc_root: Path):
    pytest.importorskip("pyquaternion")
    nuscenes = pytest.importorskip("nuscenes")
    return nuscenes.NuScenes(version=VERSION, dataroot=str(nusc_root), verbose=False)


def test_writer_layout_is_deterministic(nusc_root: Path, tmp_path: Path) -> None:
    tables = sorted(p.name for p in (nusc_root / VERSION).glob("*.json"))
    for t in ("scene", "sample", "sample_data", "ego_pose", "calibrated_sensor", "sensor",
              "sample_annotation", "instance", "category", "attribute", "visibility", "log", "map"):
        assert f"{t}.json" in tables
    sd = json.loads((nusc_root / VERSION / "sample_data.json").read_text())
    lidar = sorted((r for r in sd if r["fileformat"] == "pcd"), key=lambda r: r["timestamp"])
    keys = [r for r in lidar if r["is_key_frame"]]
    assert len(keys) == 6 and len(lidar) > len(keys)
    # 20 Hz stream, 10 Hz key frames, within one scene
    first_scene = [r for r in lidar if r["filename"].split("/")[-1].startswith("scene-0001")]
    steps = np.diff([r["timestamp"] for r in first_scene])
    assert np.all(steps == 50_000)
    raw = np.fromfile(nusc_root / keys[0]["filename"], dtype="<f4")
    assert raw.size % 5 == 0 and raw.size > 0
    assert len([r for r in sd if r["fileformat"] == "jpg"]) == 6 * 6
    # same seed, same bytes
    again = generate_nuscenes(tmp_path / "again", 6, small=True, frames_per_drive=3, seed=3, progress=False)
    assert again["samples"] == 6
    for name in ("sample_annotation.json", "ego_pose.json"):
        assert (tmp_path / "again" / VERSION / name).read_bytes() == (nusc_root / VERSION / name).read_bytes()


def test_devkit_loads_and_renders(devkit, nusc_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The devkit loads the tables and renders a sample: render_sample (LiDAR + six cameras with
    the boxes), each panel alone, and an annotation. The devkit's map underlay cannot be drawn
    under numpy 2 (nuscenes-devkit 1.2.0, ``render_ego_centric_map`` -> ``crop_image`` calls
    ``int()`` on a 1-element array: TypeError), a devkit bug unrelated to the data; so the LiDAR
    panel is drawn without the map (render_sample has no switch for it: its call of
    render_sample_data gets ``underlay_map=False``)."""
    import functools

    import matplotlib
    import matplotlib.image as mpimg

    matplotlib.use("Agg")
    assert len(devkit.sample) == 6 and len(devkit.scene) == 2
    sample = devkit.sample[1]
    assert set(CAMERA_ORDER) | {"LIDAR_TOP"} == set(sample["data"])

    def drawn(path: Path) -> float:
        """Pixel spread of an image: 0 for a blank canvas."""
        return float(mpimg.imread(str(path))[..., :3].std())

    monkeypatch.setattr(devkit.explorer, "render_sample_data",
                        functools.partial(devkit.explorer.render_sample_data, underlay_map=False))
    devkit.render_sample(sample["token"], nsweeps=3, out_path=str(tmp_path / "sample.png"), verbose=False)
    assert (tmp_path / "sample.png").stat().st_size > 100_000 and drawn(tmp_path / "sample.png") > 0.1
    monkeypatch.undo()
    devkit.render_sample_data(sample["data"]["LIDAR_TOP"], nsweeps=3, underlay_map=False,
                              out_path=str(tmp_path / "lidar.png"), verbose=False)
    assert (tmp_path / "lidar.png").stat().st_size > 10_000 and drawn(tmp_path / "lidar.png") > 0.01
    for ch in CAMERA_ORDER:
        devkit.render_sample_data(sample["data"][ch], out_path=str(tmp_path / f"{ch}.png"), verbose=False)
        assert drawn(tmp_path / f"{ch}.png") > 0.05, ch
    devkit.render_annotation(sample["anns"][0], out_path=str(tmp_path / "ann.png"))
    assert drawn(tmp_path / "ann.png") > 0.05
    # the cameras see the annotated boxes: at least one box of the sample lies in a camera view
    _, boxes, _ = devkit.get_sample_data(sample["data"]["CAM_FRONT"])
    assert boxes


def test_boxes_match_devkit_transforms_on_every_annotation(devkit, nusc_root: Path) -> None:
    src = NuScenesSource(nusc_root, version=VERSION)
    assert len(src) == 6
    checked = 0
    for rec in src:
        sample = devkit.get("sample", rec.id)
        _, boxes, _ = devkit.get_sample_data(sample["data"]["LIDAR_TOP"])
        assert len(boxes) == len(rec.boxes) == len(sample["anns"])
        infos = rec.metadata["nuscenes"]["boxes"]
        for ref, box, info in zip(boxes, rec.boxes, infos):
            h, w, length = box.dimensions
            centre = np.array(box.location) + [0.0, 0.0, h / 2.0]
            np.testing.assert_allclose(centre, ref.center, atol=1e-6)
            np.testing.assert_allclose([w, length, h], ref.wlh, atol=1e-9)
            assert abs(math.remainder(box.rotation_y - ref.orientation.yaw_pitch_roll[0], 2 * math.pi)) < 1e-9
            assert box.type == devkit.get("sample_annotation", ref.token)["category_name"]
            assert info["token"] == ref.token
            # velocity: the devkit's global velocity turned into the LiDAR frame
            v_global = devkit.box_velocity(ref.token)
            if np.all(np.isfinite(v_global)):
                sd = devkit.get("sample_data", sample["data"]["LIDAR_TOP"])
                cs = devkit.get("calibrated_sensor", sd["calibrated_sensor_token"])
                pose = devkit.get("ego_pose", sd["ego_pose_token"])
                from pyquaternion import Quaternion

                v = Quaternion(cs["rotation"]).inverse.rotate(Quaternion(pose["rotation"]).inverse.rotate(v_global))
                np.testing.assert_allclose(info["velocity"], v[:2], atol=1e-4)
            checked += 1
        # boxes hold their LiDAR points: the writer and the reader agree with the point file
        pts = np.fromfile(rec.lidar_path, dtype="<f4").reshape(-1, 5)
        for box, info in zip(rec.boxes, infos):
            if info["num_lidar_pts"] >= 20:
                h, w, length = box.dimensions
                d = pts[:, :3] - np.array(box.location)
                c, s = math.cos(box.rotation_y), math.sin(box.rotation_y)
                u, v = d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c
                inside = (np.abs(u) <= length / 2 + 0.2) & (np.abs(v) <= w / 2 + 0.2) & (d[:, 2] > -0.2) & (d[:, 2] < h + 0.2)
                assert inside.sum() >= 0.8 * info["num_lidar_pts"]
    assert checked > 20


def test_sweeps_match_devkit_multisweep(devkit, nusc_root: Path) -> None:
    from nuscenes.utils.data_classes import LidarPointCloud

    src = NuScenesSource(nusc_root, version=VERSION)
    rec = list(src)[2]  # third key frame of scene 1: 2 + 4 sweeps before it
    nusc = rec.metadata["nuscenes"]
    assert len(nusc["sweeps"]) == 6
    n = 4
    ours = aggregate_sweeps(rec.lidar_path, nusc["sweeps"], nusc["lidar_timestamp"], n)
    ref, times = LidarPointCloud.from_file_multisweep(devkit, devkit.get("sample", rec.id), "LIDAR_TOP",
                                                      "LIDAR_TOP", nsweeps=n + 1, min_distance=1.0)
    # the devkit drops close points of the key frame too; ours keeps them (as mmdet3d does)
    key = ours[:, 4] == 0
    close = key & (np.abs(ours[:, 0]) < 1.0) & (np.abs(ours[:, 1]) < 1.0)
    ours = ours[~close]
    assert ours.shape[0] == ref.points.shape[1]
    np.testing.assert_allclose(ours[:, :3], ref.points[:3].T, atol=2e-4)
    np.testing.assert_allclose(ours[:, 3], ref.points[3], atol=1e-6)
    np.testing.assert_allclose(ours[:, 4], times[0], atol=1e-6)
    assert sorted(set(np.round(ours[:, 4], 3))) == [0.0, 0.05, 0.1, 0.15, 0.2]


def _ws_state(ws) -> tuple:
    frames = ws.frames().to_pylist()
    boxes = ws.boxes([f["id"] for f in frames], labeled_only=False).to_pylist()
    return (sorted(json.dumps(f, sort_keys=True, default=str) for f in frames),
            sorted(json.dumps(b, sort_keys=True, default=str) for b in boxes))


def test_ingest_cli_twice_changes_nothing(nusc_root: Path, tmp_path: Path) -> None:
    ws_dir = tmp_path / "ws"
    args = ["ingest", "nuscenes", str(nusc_root), "--version", VERSION, "--workspace", str(ws_dir)]
    assert main(args) == 0
    ws = curate.connect(ws_dir)
    first = _ws_state(ws)
    assert main(args) == 0
    assert _ws_state(curate.connect(ws_dir)) == first
    frames = ws.frames().to_pylist()
    assert len(frames) == 6
    src = NuScenesSource(nusc_root, version=VERSION)
    assert {f["id"] for f in frames} == set(src.sample_tokens)
    by_scene: dict[str, list] = {}
    for f in frames:
        by_scene.setdefault(f["scene"], []).append(f)
        assert len(f["image_paths"]) == 6 and f["lidar_path"].endswith(".pcd.bin")
        assert f["time_of_day"] in ("day", "dusk", "night") and f["weather"] in ("clear", "rain", "fog")
        assert f["location"] and f["split"] in ("synthetic_train", "synthetic_val")
    for scene, rows in by_scene.items():
        rows.sort(key=lambda r: r["timestamp"])
        assert [r["frame_index"] for r in rows] == [0, 1, 2]


def test_corrupt_table_and_missing_files_name_the_file(nusc_root: Path, tmp_path: Path) -> None:
    ws = curate.connect(tmp_path / "ws")
    ws.ingest(NuScenesSource(nusc_root, version=VERSION), progress=False)
    before = _ws_state(ws)

    broken = tmp_path / "broken"
    shutil.copytree(nusc_root, broken)
    table = broken / VERSION / "sample_annotation.json"
    table.write_text(table.read_text()[:-200])
    with pytest.raises(CorruptDataError, match="sample_annotation.json"):
        NuScenesSource(broken, version=VERSION)
    shutil.copy(nusc_root / VERSION / "sample_annotation.json", table)
    (broken / VERSION / "instance.json").unlink()
    with pytest.raises(NotFoundError, match="instance.json"):
        NuScenesSource(broken, version=VERSION)
    with pytest.raises(NotFoundError, match="v1.0-trainval"):
        NuScenesSource(broken, version="v1.0-trainval")
    assert main(["ingest", "nuscenes", str(broken), "--version", VERSION, "--workspace", str(tmp_path / "ws")]) != 0

    # a missing sweep under on_error="fail": one clear error naming the file, and the ingest rolled back
    shutil.rmtree(broken)
    shutil.copytree(nusc_root, broken)
    sweep = sorted((broken / "sweeps" / "LIDAR_TOP").iterdir())[-1]
    sweep.unlink()
    with pytest.raises(NotFoundError, match=sweep.name):
        ws.ingest(NuScenesSource(broken, version=VERSION, prefix="b"), progress=False, on_error="fail")
    assert _ws_state(ws) == before
    with pytest.raises(NotFoundError, match=sweep.name):
        list(NuScenesSource(broken, version=VERSION))  # plain iteration stops too


def test_missing_files_are_skipped_and_listed(nusc_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """on_error="skip" (the default): a key frame whose LiDAR file, sweep or camera is missing or
    truncated is listed under problems with the file, the others are ingested; fixed files clear
    the problems on the next ingest; a symlink leading out of the root still stops the ingest.
    Records are built in chunks of 2 here, so the chunk boundaries are crossed."""
    import curate.sources.nuscenes as nuscenes_module
    from curate.confine import PathOutsideRootError

    monkeypatch.setattr(nuscenes_module, "_CHUNK", 2)

    broken = tmp_path / "broken"
    shutil.copytree(nusc_root, broken)
    records = list(NuScenesSource(broken, version=VERSION))
    key_missing, cam_missing, key_truncated = records[2], records[1], records[3]
    sweep = Path(records[5].metadata["nuscenes"]["sweeps"][0]["path"])
    assert "/sweeps/" in str(sweep)
    saved = {p: p.read_bytes() for p in (Path(key_missing.lidar_path), Path(key_truncated.lidar_path),
                                         Path(cam_missing.image_paths[3]), sweep)}
    Path(key_missing.lidar_path).unlink()
    Path(key_truncated.lidar_path).write_bytes(saved[Path(key_truncated.lidar_path)][:-7])
    Path(cam_missing.image_paths[3]).unlink()
    sweep.unlink()
    # the file each frame is listed with: the first one found bad in the order key frame, sweeps
    # (earlier key frames are sweeps of later ones), cameras; a truncated file only as a key frame
    missing = {key_missing.lidar_path, cam_missing.image_paths[3], str(sweep)}
    expected = {}
    for r in records:
        files = [r.lidar_path] + [s["path"] for s in r.metadata["nuscenes"]["sweeps"]] + list(r.image_paths)
        bad = [f for f in files if f in missing] + ([r.lidar_path] if r is key_truncated else [])
        if bad:
            expected[r.id] = r.lidar_path if r is key_truncated else bad[0]
    assert len(expected) >= 4 and expected[records[5].id] == str(sweep)

    ws = curate.connect(tmp_path / "ws")
    report = ws.ingest(NuScenesSource(broken, version=VERSION), progress=False)
    assert report.frames_bad == len(expected) and report.frames_seen == 6 - len(expected)
    listed = ws.problems(stage="ingest")
    assert {p.frame_id: p.file for p in listed} == expected
    kinds = {p.frame_id: p.kind for p in listed}
    assert kinds[key_missing.id] == "NotFoundError" and kinds[key_truncated.id] == "CorruptDataError"
    assert all(p.file and p.file in p.reason for p in listed)
    assert {f["id"] for f in ws.frames().to_pylist()} == {r.id for r in records} - set(expected)
    # the same source under on_error="fail" stops at the first one and keeps the store as it was
    state = _ws_state(ws)
    with pytest.raises((NotFoundError, CorruptDataError)):
        ws.ingest(NuScenesSource(broken, version=VERSION), progress=False, on_error="fail")
    assert _ws_state(ws) == state
    # plain iteration yields the frames before the first bad one, then raises
    got = []
    with pytest.raises((NotFoundError, CorruptDataError)):
        for rec in NuScenesSource(broken, version=VERSION):
            got.append(rec.id)
    first_bad = next(i for i, r in enumerate(records) if r.id in expected)
    assert first_bad > 0 and got == [r.id for r in records[:first_bad]]
    # files back: the next ingest takes every frame and clears the problems
    for path, data in saved.items():
        path.write_bytes(data)
    report = ws.ingest(NuScenesSource(broken, version=VERSION), progress=False)
    assert report.frames_bad == 0 and ws.problems() == [] and len(ws.frames()) == 6
    # a symlink out of the root is never skipped
    outside = tmp_path / "secret.pcd.bin"
    outside.write_bytes(saved[sweep])
    sweep.unlink()
    sweep.symlink_to(outside)
    with pytest.raises(PathOutsideRootError, match="outside"):
        ws.ingest(NuScenesSource(broken, version=VERSION), progress=False)


def test_round_trip_embed_sweeps_select_export_pkl(nusc_root: Path, tmp_path: Path) -> None:
    ws = curate.connect(tmp_path / "ws")
    ws.ingest(NuScenesSource(nusc_root, version=VERSION), progress=False)
    ws.embed("bev-hist", name="one", progress=False, num_workers=0)
    ws.embed("bev-hist", name="multi", sweeps=3, progress=False, num_workers=0)
    ids_one, v_one = ws.vectors("one")
    ids_multi, v_multi = ws.vectors("multi")
    assert list(ids_one) == list(ids_multi)
    assert not np.allclose(v_one, v_multi)
    assert json.loads(ws.embedding_info("multi")["config"])["sweeps"] == 3
    # the multi-sweep vector is the embedder applied to the aggregated cloud
    from embedders import create_embedder

    frame = ws.frames(ids=[ids_multi[-1]]).to_pylist()[0]
    extra = json.loads(frame["extra"])["nuscenes"]
    cloud = aggregate_sweeps(frame["lidar_path"], extra["sweeps"], extra["lidar_timestamp"], 3)
    assert cloud.shape[1] == 5 and cloud.shape[0] > frame["num_points"]
    expected = create_embedder("bev-hist", sweeps=3).embed([cloud])[0]
    np.testing.assert_allclose(v_multi[-1], expected, rtol=1e-5, atol=1e-6)

    result = ws.select("kcenter", 3, embedding="multi", seed=0)
    assert len(result.ids) == 3
    ws.label(result.ids)  # the labeled subset's infos carry its boxes
    out = tmp_path / "sel.pkl"
    ws.export(result.run_id, "mmdet3d", out)
    infos = pickle.loads(out.read_bytes())
    assert infos["metainfo"]["dataset"] == "nuscenes"
    assert [d["token"] for d in infos["data_list"]] == list(result.ids)
    one = infos["data_list"][0]
    assert set(one["images"]) == set(CAMERA_ORDER)
    assert one["lidar_points"]["num_pts_feats"] == 5 and len(one["lidar_sweeps"]) >= 2
    tokens = tmp_path / "tokens.txt"
    ws.export(result.run_id, "tokens", tokens)
    assert tokens.read_text().split() == list(result.ids)
    _check_mmdet3d_dataset(out, nusc_root, infos)


def _check_mmdet3d_dataset(pkl: Path, root: Path, infos: dict) -> None:
    """mmdet3d's NuScenesDataset loads the pkl, with 5 sweeps, and its boxes are ours."""
    pytest.importorskip("mmdet3d")
    from mmdet3d.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    from mmdet3d.datasets import NuScenesDataset

    kwargs = infos["metainfo"]["curate_dataset_kwargs"]
    pipeline = [
        dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=5, use_dim=5),
        dict(type="LoadPointsFromMultiSweeps", sweeps_num=5, use_dim=[0, 1, 2, 3, 4], remove_close=True,
             test_mode=True),
        dict(type="LoadAnnotations3D", with_bbox_3d=True, with_label_3d=True),
    ]
    ds = NuScenesDataset(ann_file=str(pkl), pipeline=pipeline, test_mode=False, filter_empty_gt=False,
                         modality=dict(use_lidar=True, use_camera=False), **kwargs)
    assert len(ds) == len(infos["data_list"])
    item = ds[0]
    pts = item["points"].tensor.numpy()
    lags = np.unique(pts[:, 4])
    assert pts.shape[1] == 5 and np.isclose(lags, 0.0).any() and np.isclose(lags, 0.05, atol=1e-4).any()
    # mmdet3d's multi-sweep loader and curate's frame reader give the same cloud
    sweeps = [{"path": s["lidar_points"]["lidar_path"], "timestamp": s["timestamp"],
               "sensor2lidar_rotation": np.linalg.inv(np.array(s["lidar_points"]["lidar2sensor"]))[:3, :3],
               "sensor2lidar_translation": np.linalg.inv(np.array(s["lidar_points"]["lidar2sensor"]))[:3, 3]}
              for s in infos["data_list"][0]["lidar_sweeps"]]
    ours = aggregate_sweeps(infos["data_list"][0]["lidar_points"]["lidar_path"], sweeps,
                            infos["data_list"][0]["timestamp"], 5)
    np.testing.assert_allclose(np.sort(pts, axis=0), np.sort(ours, axis=0), atol=1e-4)
    boxes = item["gt_bboxes_3d"]
    # mmdet3d keeps the boxes with LiDAR points (its filter without use_valid_flag)
    inst = [i for i in infos["data_list"][0]["instances"] if i["num_lidar_pts"] > 0]
    assert 0 < len(inst) < len(infos["data_list"][0]["instances"])
    assert len(boxes) == len(inst)
    np.testing.assert_allclose(boxes.gravity_center.numpy(), np.array([i["bbox_3d"][:3] for i in inst]), atol=1e-4)
    np.testing.assert_allclose(boxes.tensor.numpy()[:, 3:7], np.array([i["bbox_3d"][3:] for i in inst]), atol=1e-4)
    assert item["gt_labels_3d"].tolist() == [i["bbox_label"] for i in inst]


def test_nuscenes_metric_equals_devkit_evaluation(devkit, nusc_root: Path, tmp_path: Path) -> None:
    """mAP / NDS of a known prediction set: curate's metric (mmdet3d formatting + the devkit on
    sample tokens) equals the devkit's own DetectionEval on the custom split of the same samples."""
    pytest.importorskip("mmdet3d")
    from types import SimpleNamespace

    from nuscenes.eval.detection.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval
    from nuscenes.utils.data_classes import Box
    from pyquaternion import Quaternion

    from curate.evaluation.nuscenes import nuscenes_eval
    from curate.loop.infos_nuscenes import build_nuscenes_infos
    from curate.sources.nuscenes import DETECTION_CLASSES, detection_name

    ws = curate.connect(tmp_path / "ws")
    ws.ingest(NuScenesSource(nusc_root, version=VERSION), progress=False)
    val = [f for f in ws.frames().to_pylist() if f["split"] == "synthetic_val"]
    assert val
    classes = list(DETECTION_CLASSES)
    rng = np.random.default_rng(0)
    preds = []
    for f in val:
        boxes, labels, velocities = [], [], []
        gt_info = json.loads(f["extra"])["nuscenes"]["boxes"]
        for b in ws.boxes([f["id"]], labeled_only=False).to_pylist():
            name = detection_name(b["type"])
            if name is None or rng.random() < 0.2:
                continue
            h, w, length = b["dimensions"]
            x, y, z = b["location"]
            boxes.append([x + rng.normal(0, 0.4), y + rng.normal(0, 0.4), z, length * rng.uniform(0.9, 1.1),
                          w, h, b["rotation_y"] + rng.normal(0, 0.2)])
            labels.append(classes.index(name))
            # the detector's velocity (LiDAR frame): the true one with noise
            velocities.append(np.nan_to_num(gt_info[b["box_index"]]["velocity"]) + rng.normal(0, 0.3, 2))
        for _ in range(3):  # false positives
            boxes.append([rng.uniform(-30, 30), rng.uniform(-30, 30), -1.7, 4.0, 1.8, 1.5, rng.uniform(-3, 3)])
            labels.append(classes.index("car"))
            velocities.append(rng.normal(0, 2.0, 2))
        preds.append(SimpleNamespace(frame_id=f["id"], boxes=np.array(boxes), labels=np.array(labels),
                                     scores=rng.uniform(0.1, 1.0, len(boxes)),
                                     extra={"velocity": np.array(velocities)}))
    infos = build_nuscenes_infos(ws, [f["id"] for f in val], with_labels=False)
    ours = nuscenes_eval(infos, preds, classes, out_dir=str(tmp_path / "ours"))
    assert 0.0 < ours.map < 1.0 and 0.0 < ours.nds < 1.0
    assert ours.class_ap["car"] > 0.0
    # without a velocity every box stands still: the velocity error (mAVE) grows, NDS falls
    still = nuscenes_eval(infos, [SimpleNamespace(frame_id=p.frame_id, boxes=p.boxes, labels=p.labels,
                                                  scores=p.scores) for p in preds], classes)
    assert still.map == pytest.approx(ours.map, abs=1e-9)
    assert still.tp_errors["vel_err"] > ours.tp_errors["vel_err"] + 0.1 and still.nds < ours.nds

    # the devkit's own evaluation: boxes moved to the global frame with the devkit's Box
    # attributes as mmdet3d's formatter names them: from the speed (global frame), 0.2 m/s apart
    attr = {"car": "vehicle.parked", "truck": "vehicle.parked", "bus": "vehicle.stopped",
            "pedestrian": "pedestrian.standing", "bicycle": "cycle.without_rider"}
    attr_moving = {"car": "vehicle.moving", "truck": "vehicle.moving", "bus": "vehicle.moving",
                   "pedestrian": "pedestrian.moving", "bicycle": "cycle.with_rider"}
    results = {}
    for f, p in zip(val, preds):
        sample = devkit.get("sample", f["id"])
        sd = devkit.get("sample_data", sample["data"]["LIDAR_TOP"])
        cs = devkit.get("calibrated_sensor", sd["calibrated_sensor_token"])
        pose = devkit.get("ego_pose", sd["ego_pose_token"])
        annos = []
        for box7, label, score, (vx, vy) in zip(p.boxes, p.labels, p.scores, p.extra["velocity"]):
            x, y, z, length, w, h, yaw = box7
            box = Box([x, y, z + h / 2], [w, length, h], Quaternion(axis=[0, 0, 1], radians=yaw),
                      velocity=(vx, vy, 0.0))
            box.rotate(Quaternion(cs["rotation"]))
            box.translate(np.array(cs["translation"]))
            name = classes[label]
            if np.linalg.norm(box.center[:2]) > config_factory("detection_cvpr_2019").class_range[name]:
                continue
            box.rotate(Quaternion(pose["rotation"]))
            box.translate(np.array(pose["translation"]))
            annos.append(dict(sample_token=f["id"], translation=box.center.tolist(), size=box.wlh.tolist(),
                              rotation=box.orientation.elements.tolist(), velocity=box.velocity[:2].tolist(),
                              detection_name=name, detection_score=float(score),
                              attribute_name=(attr_moving if np.hypot(*box.velocity[:2]) > 0.2 else attr)[name]))
        results[f["id"]] = annos
    path = tmp_path / "devkit.json"
    path.write_text(json.dumps({"meta": {"use_lidar": True, "use_camera": False, "use_radar": False,
                                         "use_map": False, "use_external": False}, "results": results}))
    ref = DetectionEval(devkit, config_factory("detection_cvpr_2019"), str(path), "synthetic_val",
                        str(tmp_path / "ref"), verbose=False)
    metrics, _ = ref.evaluate()
    assert ours.map == pytest.approx(metrics.mean_ap, abs=1e-6)
    assert ours.nds == pytest.approx(metrics.nd_score, abs=1e-6)
    assert ours.tp_errors["vel_err"] == pytest.approx(metrics.serialize()["tp_errors"]["vel_err"], abs=1e-6)
    for name, ap in ours.class_ap.items():
        assert ap == pytest.approx(float(np.mean(list(metrics._label_aps[name].values()))), abs=1e-6)


def test_files_named_outside_the_root_are_refused(nusc_root: Path, tmp_path: Path) -> None:
    from curate.confine import PathOutsideRootError

    broken = tmp_path / "broken"
    shutil.copytree(nusc_root, broken)
    table = broken / VERSION / "sample_data.json"
    rows = json.loads(table.read_text())
    outside = tmp_path / "secret.pcd.bin"
    shutil.copy(broken / rows[0]["filename"], outside)
    # a symlink below the root that leads out of it
    link = broken / rows[0]["filename"]
    link.unlink()
    link.symlink_to(outside)
    with pytest.raises(PathOutsideRootError, match="outside"):
        list(NuScenesSource(broken, version=VERSION))
    # a '..' file name in the table
    link.unlink()
    rows[0]["filename"] = "../secret.pcd.bin"
    table.write_text(json.dumps(rows))
    with pytest.raises(PathOutsideRootError, match="leads out"):
        list(NuScenesSource(broken, version=VERSION))
    # a table that is a symlink leading out of the dataroot: refused at construction
    log = broken / VERSION / "log.json"
    shutil.copy(log, tmp_path / "log.json")
    log.unlink()
    log.symlink_to(tmp_path / "log.json")
    with pytest.raises(PathOutsideRootError, match="log.json"):
        NuScenesSource(broken, version=VERSION)
