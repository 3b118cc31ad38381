"""The detector loop with CenterPoint: ``MMDet3DDetector("centerpoint-tiny")`` trains, predicts
per-class score vectors through :class:`curate.loop.mm3d.heads.ProbCenterHead`, and forms
ensembles / MC-dropout samples.

Real mmdet3d on CPU, the tiny synthetic KITTI set of ``tests/conftest.py``. Needs the ``mm3d``
extra (``make mm3d``); skipped, with that reason, where it is missing.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from curate.loop.mm3d import mm3d_available

from curate.errors import InvalidInputError




pytestmark = pytest.mark.skipif(not mm3d_available(), reason="the mmdet3d stack is not installed (make mm3d)")

CLASSES = ("Pedestrian", "Cyclist", "Car")


@pytest.fixture(scope="module")
def detector():
    from curate.loop.mm3d import MMDet3DDetector

    # a low score threshold keeps the weak boxes of a model trained for a dozen iterations
    return MMDet3DDetector("centerpoint-tiny", epochs=3, batch_size=2, feat_dropout=0.2, score_thr=0.01)


def test_centerpoint_tiny_config_and_class_handling():
    from curate.loop.mm3d import MMDet3DDetector, list_detector_configs
    from curate.loop.mm3d.configs import detector_config

    assert "centerpoint-tiny" in list_detector_configs()
    cfg = detector_config("centerpoint-tiny")
    head = cfg.model["pts_bbox_head"]
    assert head["type"] == "ProbCenterHead"
    # KITTI has no velocity: the vel branch mmdet3d's CenterHead needs to train is weighted 0
    assert cfg.model["train_cfg"]["pts"]["code_weights"][-2:] == [0.0, 0.0]
    assert [c for t in head["tasks"] for c in t["class_names"]] == list(cfg.class_names) == list(CLASSES)

    det = MMDet3DDetector("centerpoint-tiny", feat_dropout=0.3, score_thr=0.02)
    assert det.model_cfg["pts_bbox_head"]["feat_dropout"] == 0.3
    assert det.model_cfg["pts_bbox_head"]["bbox_coder"]["score_threshold"] == 0.02
    assert det.model_cfg["test_cfg"]["pts"]["score_threshold"] == 0.02
    assert "feat_dropout" not in MMDet3DDetector("centerpoint-tiny").model_cfg["pts_bbox_head"]
    # other classes: one task per class, in the given label order, one NMS radius per task
    other = MMDet3DDetector("centerpoint-tiny", classes=("Car", "Van"))
    assert [t["class_names"] for t in other.model_cfg["pts_bbox_head"]["tasks"]] == [["Car"], ["Van"]]
    assert other.model_cfg["test_cfg"]["pts"]["min_radius"] == [4.0, 4.0]
    model = other.load_model(None)
    assert model.pts_bbox_head.num_classes == [1, 1]
    # a standard CenterPoint config keeps its tasks (its checkpoints need them): say which order
    with pytest.raises(InvalidInputError, match="'car', 'truck'"):
        MMDet3DDetector("centerpoint", classes=CLASSES)


@pytest.fixture(scope="module")
def trained(detector, tmp_path_factory, embedded_template):
    """Two models trained on 8 labeled frames (seeds 1, 2) and a 6-frame unlabeled pool."""
    import shutil

    import curate
    from curate.loop.infos import write_info_pkl

    tmp = tmp_path_factory.mktemp("centerpoint")
    shutil.copytree(embedded_template, tmp / "ws")
    ws = curate.connect(tmp / "ws")
    ids = [str(i) for i in ws.store.ids("samples")]
    ws.label(ids[:8])
    train = write_info_pkl(ws, ids[:8], tmp / "train.pkl")
    pool = write_info_pkl(ws, ids[8:14], tmp / "pool.pkl", with_labels=False)
    a = detector.train(train, tmp / "a", seed=1)
    b = detector.train(train, tmp / "b", seed=2)
    return dict(ids=ids, pool=pool, a=a, b=b)


def test_centerpoint_trains_and_predicts_per_class_scores(detector, trained):
    import torch
    from mmengine.dataset import pseudo_collate
    from mmdet3d.registry import DATASETS

    for run in (trained["a"], trained["b"]):
        losses = np.asarray(run.losses)
        assert losses.size == 12 and np.isfinite(losses).all()  # 8 frames / batch 2 x 3 epochs
        assert losses[-3:].mean() < losses[:3].mean()  # it really trains
        assert Path(run.checkpoint).is_file()
    single = detector.predict(trained["pool"], [trained["a"].checkpoint])
    assert [p.frame_id for p in single] == trained["ids"][8:14]
    assert sum(len(p.labels) for p in single) > 0
    for p in single:
        n = len(p.labels)
        assert p.classes == CLASSES and p.member_probs is None
        assert p.boxes.shape == (n, 7) and p.probs.shape == (n, 3) and p.scores.shape == (n,)
        np.testing.assert_allclose(p.probs[np.arange(n), p.labels], p.scores, rtol=0, atol=1e-7)
        assert ((p.probs >= 0) & (p.probs <= 1)).all()

    # reference: mmdet3d's own CenterPoint.predict on the same checkpoint and frames
    model = detector.load_model(trained["a"].checkpoint)
    dataset = DATASETS.build(detector._dataset(trained["pool"], detector.base.test_pipeline, test_mode=True))
    with torch.no_grad():
        for start in range(0, len(single), detector.predict_batch_size):
            stop = min(len(single), start + detector.predict_batch_size)
            data = model.data_preprocessor(pseudo_collate([dataset[i] for i in range(start, stop)]), False)
            ref = model.predict(data["inputs"], copy.deepcopy(data["data_samples"]))
            for k, sample in enumerate(ref):
                got, want = single[start + k], sample.pred_instances_3d
                np.testing.assert_allclose(got.boxes, want.bboxes_3d.tensor.numpy()[:, :7], rtol=0, atol=1e-5)
                np.testing.assert_allclose(got.scores, want.scores_3d.numpy(), rtol=0, atol=1e-6)
                np.testing.assert_array_equal(got.labels, want.labels_3d.numpy())
                np.testing.assert_allclose(got.probs, want.cls_scores.numpy(), rtol=0, atol=1e-6)


def test_centerpoint_ensemble_and_mc_dropout(detector, trained):
    pool, a, b = trained["pool"], trained["a"].checkpoint, trained["b"].checkpoint
    ens = detector.predict(pool, [a, b])
    assert sum(len(p.labels) for p in ens) > 0
    for p in ens:
        n = len(p.labels)
        assert p.probs.shape == (n, 3) and p.member_probs.shape == (2, n, 3)
        np.testing.assert_allclose(p.probs, p.member_probs.mean(axis=0), atol=1e-6)
        np.testing.assert_allclose(p.probs[np.arange(n), p.labels], p.scores, atol=1e-6)
    assert max(np.abs(p.member_probs[0] - p.member_probs[1]).max(initial=0) for p in ens) > 1e-4

    mc = detector.predict(pool, [a], mc_samples=3, seed=5)
    mc_again = detector.predict(pool, [a], mc_samples=3, seed=5)
    assert all(p.member_probs.shape == (3, len(p.labels), 3) for p in mc)
    for p, q in zip(mc, mc_again):  # reproducible for a seed
        np.testing.assert_array_equal(p.probs, q.probs)
    assert max(np.abs(p.member_probs[0] - p.member_probs[2]).max(initial=0) for p in mc) > 1e-4
    # dropout is off again afterwards: a single-model prediction is deterministic
    first, second = detector.predict(pool, [a]), detector.predict(pool, [a])
    for p, q in zip(first, second):
        np.testing.assert_array_equal(p.probs, q.probs)


def test_centerpoint_mc_dropout_needs_feat_dropout(trained):
    from curate.loop.mm3d import MMDet3DDetector

    plain = MMDet3DDetector("centerpoint-tiny")
    with pytest.raises(InvalidInputError, match="feat_dropout > 0"):
        plain.predict(trained["pool"], [None], mc_samples=2)
