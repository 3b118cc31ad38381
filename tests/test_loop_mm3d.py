"""The mmdet3d adapter and the real active-learning loop (tiny PointPillars, CPU).

Needs the ``mm3d`` extra (``make mm3d``); the tests that train are skipped, with that reason,
where mmdet3d is missing. The import-guard test runs everywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from curate.loop.mm3d import mm3d_available

from curate.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[1]


def test_curate_imports_without_mmdet3d_and_says_what_to_install():
    code = (
        "import sys\n"
        "for m in ('mmdet3d', 'mmdet', 'mmcv', 'mmengine'): sys.modules[m] = None\n"
        "import curate, curate.loop, curate.loop.mm3d as mm\n"
        "print(mm.list_detector_configs())\n"
        "try:\n"
        "    mm.MMDet3DDetector('pointpillars-tiny')\n"
        "except ImportError as exc:\n"
        "    print('IMPORTERROR', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pointpillars-tiny" in out.stdout
    assert "IMPORTERROR" in out.stdout and "curate[mm3d]" in out.stdout and "make mm3d" in out.stdout


def test_unknown_detector_config_lists_valid_names():
    from curate.loop.mm3d.configs import config_file

    with pytest.raises(InvalidInputError, match="pointpillars-tiny"):
        config_file("yolo-3d")




needs_mm3d = pytest.mark.skipif(not mm3d_available(), reason="the mmdet3d stack is not installed (make mm3d)")


@pytest.fixture(scope="module")
def detector():
    from curate.loop.mm3d import MMDet3DDetector

    return MMDet3DDetector("pointpillars-tiny", epochs=2, batch_size=2, feat_dropout=0.2)


@needs_mm3d
def test_head_keeps_class_scores_and_matches_stock_head(detector):
    """Same boxes / labels / scores as mmdet3d's Anchor3DHead; each kept box's class-score row
    is the row of its anchor (brute force: recompute it from the raw score map)."""
    import torch
    from mmdet3d.models.dense_heads import Anchor3DHead
    from mmdet3d.structures import LiDARInstance3DBoxes

    torch.manual_seed(0)
    model = detector.load_model(None)
    head = model.bbox_head
    torch.nn.init.normal_(head.conv_cls.weight, std=0.05)  # scores spread over (0, 1)
    torch.nn.init.zeros_(head.conv_cls.bias)
    cfg = {k: v for k, v in detector.model_cfg["bbox_head"].items() if k not in ("type", "feat_dropout")}
    stock = Anchor3DHead(**cfg, train_cfg=None, test_cfg=head.test_cfg)
    stock.load_state_dict(head.state_dict())
    stock.eval()
    feats = [torch.randn(2, 96, 64, 64) * 3]
    with torch.no_grad():
        outs = head(feats)
        metas = [dict(box_type_3d=LiDARInstance3DBoxes)] * 2
        ours = head.predict_by_feat(*outs, batch_input_metas=metas)
        ref = stock.predict_by_feat(*stock(feats), batch_input_metas=metas)
    n_c = head.num_classes
    for b, (a, r) in enumerate(zip(ours, ref)):
        assert len(a.scores_3d) > 0
        torch.testing.assert_close(a.bboxes_3d.tensor, r.bboxes_3d.tensor)
        torch.testing.assert_close(a.scores_3d, r.scores_3d)
        assert torch.equal(a.labels_3d, r.labels_3d)
        full = outs[0][0][b].permute(1, 2, 0).reshape(-1, n_c).sigmoid()
        torch.testing.assert_close(a.cls_scores, full[a.anchor_index])
        torch.testing.assert_close(a.cls_scores[torch.arange(len(a.labels_3d)), a.labels_3d.long()], a.scores_3d)


def _loop_config(tmp_path: Path, **over) -> dict:
    cfg = dict(
        name="t", embedding="bev-hist", strategy="topk", strategy_params={"score": "entropy_mean"},
        initial=8, budget=4, rounds=2, seed=0, detector="pointpillars-tiny",
        detector_options={"epochs": 3, "batch_size": 2}, val_fraction=0.1,
    )
    cfg.update(over)
    return cfg


@needs_mm3d
def test_two_round_loop_trains_scores_and_resumes(ws, tmp_path):
    from curate.loop import loop_rounds
    from curate.loop.runner import validation_ids
    from curate.loop.config import load_loop_config

    cfg = _loop_config(tmp_path)
    first = ws.loop(cfg, stop_after=1)  # an interruption between rounds 0 and 1
    assert [r.round for r in first.rounds] == [0]
    r0 = first.rounds[0]
    losses = np.asarray(r0.losses)
    assert losses.size >= 8 and np.isfinite(losses).all()
    assert losses[-3:].mean() < losses[:3].mean()  # it really trains
    assert Path(r0.checkpoints[0]).is_file()
    # every unlabeled frame of the pool has scores and raw predictions
    val, pool_where = validation_ids(ws, load_loop_config(cfg))
    labeled0 = set(ws.store.ids("samples", where="labeled = true"))
    assert labeled0 == set(r0.selected) and len(labeled0) == 8 and not labeled0 & set(val)
    pool = set(ws.store.ids("samples", where=f"({pool_where}) AND labeled = false"))
    ids, cols = ws.scores(r0.score_run)
    assert set(ids) == pool and len(ids) == len(pool) > 0
    assert np.isfinite(cols["entropy_mean"]).all()
    assert "map_3d" in r0.metrics and r0.metrics["val_frames"] == len(val)

    # resume through the CLI: round 0 is not repeated, round 1 fine-tunes round 0's weights
    cfg_file = tmp_path / "loop.json"
    cfg_file.write_text(json.dumps(cfg))
    env = dict(os.environ, CURATE_WORKSPACE=str(ws.path))
    out = subprocess.run([sys.executable, "-m", "curate.cli", "loop", "--config", str(cfg_file)],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "round 1:" in out.stdout and "round 0:" not in out.stdout
    import curate

    ws2 = curate.connect(ws.path)
    rounds = loop_rounds(ws2, "t")
    assert [int(r.info["round"]) for r in rounds] == [0, 1]
    r1 = rounds[1]
    assert len(r1.ids) == 4 and not set(r1.ids) & labeled0 and not set(r1.ids) & set(val)
    assert set(r1.ids) <= pool
    assert r1.info["labeled_frames"] == 12 and r1.info["score_run"] == "t-r1"
    dumped = "".join(p.read_text() for p in Path(r1.info["checkpoints"][0]).parent.glob("*.py"))
    assert f"load_from = '{r0.checkpoints[0]}'" in dumped and "resume = False" in dumped
    # start=latest x train_on=all (the default mode): the record says so, and it is what ran
    assert r1.info["init_checkpoints"] == r0.checkpoints and rounds[0].info["init_checkpoints"] == [None]
    assert r1.info["train_ids"] == sorted(labeled0 | set(r1.ids))
    from curate.loop.infos import read_info_pkl

    trained = read_info_pkl(Path(r1.info["checkpoints"][0]).parents[1] / "train_infos.pkl")
    assert sorted(f["curate_id"] for f in trained["data_list"]) == r1.info["train_ids"]
    ids1, _ = ws2.scores("t-r1")
    assert set(ids1) == pool - set(r1.ids)
    # a third call with the same config has nothing left to do
    again = ws2.loop(cfg)
    assert again.resumed_from == 2 and len(again.rounds) == 2


@needs_mm3d
def test_ensemble_and_mc_dropout_member_scores(ws, tmp_path, detector):
    from curate.loop.infos import write_info_pkl

    ids = [str(i) for i in ws.store.ids("samples")]
    ws.label(ids[:8])
    train = write_info_pkl(ws, ids[:8], tmp_path / "train.pkl")
    pool = write_info_pkl(ws, ids[8:14], tmp_path / "pool.pkl", with_labels=False)
    a = detector.train(train, tmp_path / "a", seed=1)
    b = detector.train(train, tmp_path / "b", seed=2)
    single = detector.predict(pool, [a.checkpoint])
    assert [p.frame_id for p in single] == ids[8:14] and all(p.member_probs is None for p in single)
    ens = detector.predict(pool, [a.checkpoint, b.checkpoint])
    n_boxes = sum(len(p.labels) for p in ens)
    assert n_boxes > 0
    for p in ens:
        assert p.member_probs.shape == (2, len(p.labels), 3)
        np.testing.assert_allclose(p.probs, p.member_probs.mean(axis=0), atol=1e-6)
    assert max(np.abs(p.member_probs[0] - p.member_probs[1]).max(initial=0) for p in ens) > 1e-4
    mc = detector.predict(pool, [a.checkpoint], mc_samples=3, seed=5)
    mc_again = detector.predict(pool, [a.checkpoint], mc_samples=3, seed=5)
    assert all(p.member_probs.shape[0] == 3 for p in mc)
    for p, q in zip(mc, mc_again):  # reproducible for a seed
        np.testing.assert_array_equal(p.probs, q.probs)
    assert max(np.abs(p.member_probs[0] - p.member_probs[2]).max(initial=0) for p in mc) > 1e-4
    # the next single-model prediction has dropout off again
    np.testing.assert_array_equal(detector.predict(pool, [a.checkpoint])[0].probs, single[0].probs)
    with pytest.raises(InvalidInputError, match="no labeled box"):
        empty = write_info_pkl(ws, ids[20:22], tmp_path / "empty.pkl", with_labels=False)
        detector.train(empty, tmp_path / "c")


@needs_mm3d
def test_loss_is_per_frame_deterministic_and_falls_with_training(ws, tmp_path, detector):
    """``MMDet3DDetector.loss``: one loss per labeled frame, each frame its own batch (a frame
    scores the same alone), reproducible, lower after training on those frames; MGRAL's
    ``tuning_loss`` reward reads it."""
    from curate.loop.infos import write_info_pkl
    from curate.loop.mgral.stage import reward_value

    ids = [str(i) for i in ws.store.ids("samples")]
    ws.label(ids[:6])
    train = write_info_pkl(ws, ids[:6], tmp_path / "train.pkl")
    assert not any(t["type"].startswith("Random") or t["type"] in ("GlobalRotScaleTrans", "PointShuffle")
                   for t in detector.loss_pipeline())
    init = detector.loss(train, None)
    trained = detector.train(train, tmp_path / "t", seed=3)
    after = detector.loss(train, trained.checkpoint)
    assert len(init) == len(after) == 6 and np.isfinite(init).all() and np.isfinite(after).all()
    assert np.mean(after) < np.mean(init)
    assert detector.loss(train, trained.checkpoint) == after  # no augmentation, no dropout: reproducible
    alone = write_info_pkl(ws, [ids[4]], tmp_path / "alone.pkl")
    np.testing.assert_allclose(detector.loss(alone, trained.checkpoint), [after[4]], rtol=1e-5)
    value = reward_value(detector, trained.checkpoint, train, "tuning_loss", evaluate=None)
    assert value == pytest.approx(-100 * np.log(np.mean(after)))
    with pytest.raises(InvalidInputError, match="with_labels=True"):
        detector.loss(write_info_pkl(ws, ids[:2], tmp_path / "nolabels.pkl", with_labels=False), trained.checkpoint)


@needs_mm3d
def test_head_only_training_leaves_everything_but_the_head_as_loaded(ws, tmp_path):
    """``train_head_only``: from a checkpoint, only the dense head's weights move; the backbone,
    neck and voxel encoder (batch-norm running statistics included) stay bit for bit. With
    ``augment=False, shuffle=False`` two seeds give the same weights (a deterministic fine-tune)."""
    import copy

    import torch

    from curate.loop.infos import write_info_pkl
    from curate.loop.mm3d import MMDet3DDetector

    detector = MMDet3DDetector("pointpillars-tiny", epochs=2, batch_size=2)  # no dropout: nothing random left
    ids = [str(i) for i in ws.store.ids("samples")]
    ws.label(ids[:6])
    train = write_info_pkl(ws, ids[:6], tmp_path / "train.pkl")
    start = detector.train(train, tmp_path / "start", seed=0).checkpoint
    probe = copy.copy(detector)
    probe.train_head_only, probe.augment, probe.shuffle = True, False, False
    a = probe.train(train, tmp_path / "a", load_from=start, seed=1).checkpoint
    b = probe.train(train, tmp_path / "b", load_from=start, seed=2).checkpoint
    s0, sa, sb = (torch.load(c, map_location="cpu", weights_only=False)["state_dict"] for c in (start, a, b))
    head = [k for k in s0 if k.startswith("bbox_head.")]
    rest = [k for k in s0 if not k.startswith("bbox_head.")]
    assert head and any("running_mean" in k for k in rest)
    assert all(torch.equal(s0[k], sa[k]) for k in rest)
    assert any(not torch.equal(s0[k], sa[k]) for k in head)
    assert all(torch.equal(sa[k], sb[k]) for k in s0)
