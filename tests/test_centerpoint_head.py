"""``ProbCenterHead``: CenterPoint's head keeping every class's heatmap score of each kept box.

Real mmdet3d models on CPU with random weights: a tiny CenterPoint-pillar model on a synthetic
point cloud (circle and rotate NMS) and the shipped ``centerpoint`` config's head on small BEV
features. Each is compared with mmdet3d's stock ``CenterHead`` on the same weights, and the
class-score rows with a brute-force reference (dense decode of every cell, match the box to its
cell, read all tasks' heatmaps there). Needs the ``mm3d`` extra (``make mm3d``); skipped, with
that reason, where it is missing.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from curate.loop.mm3d import mm3d_available




pytestmark = pytest.mark.skipif(not mm3d_available(), reason="the mmdet3d stack is not installed (make mm3d)")

PCR = [0.0, -12.8, -3.0, 25.6, 12.8, 1.0]
VOXEL = [0.4, 0.4, 4.0]
CENTRE_RANGE = [0.0, -10.0, -5.0, 25.6, 10.0, 5.0]  # narrower than PCR in y: the range filter acts


def _tiny_centerpoint(head_type: str, nms_type: str) -> dict:
    """A CPU-sized CenterPoint-pillar: 64 x 64 pillars, 32 x 32 heatmaps, tasks [Car], [Pedestrian, Cyclist]."""
    norm = dict(type="BN", eps=1e-3, momentum=0.01)
    return dict(
        type="CenterPoint",
        data_preprocessor=dict(
            type="Det3DDataPreprocessor", voxel=True,
            voxel_layer=dict(max_num_points=8, point_cloud_range=PCR, voxel_size=VOXEL, max_voxels=(4000, 4000)),
        ),
        pts_voxel_encoder=dict(
            type="PillarFeatureNet", in_channels=4, feat_channels=[16], with_distance=False, voxel_size=VOXEL,
            point_cloud_range=PCR, norm_cfg=dict(type="BN1d", eps=1e-3, momentum=0.01), legacy=False,
        ),
        pts_middle_encoder=dict(type="PointPillarsScatter", in_channels=16, output_shape=(64, 64)),
        pts_backbone=dict(
            type="SECOND", in_channels=16, out_channels=[16, 32], layer_nums=[1, 1], layer_strides=[2, 2],
            norm_cfg=norm, conv_cfg=dict(type="Conv2d", bias=False),
        ),
        pts_neck=dict(
            type="SECONDFPN", in_channels=[16, 32], out_channels=[16, 16], upsample_strides=[1, 2], norm_cfg=norm,
            upsample_cfg=dict(type="deconv", bias=False), use_conv_for_no_stride=True,
        ),
        pts_bbox_head=dict(
            type=head_type, in_channels=32,
            tasks=[dict(num_class=1, class_names=["Car"]), dict(num_class=2, class_names=["Pedestrian", "Cyclist"])],
            common_heads=dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2)), share_conv_channel=16,
            bbox_coder=dict(
                type="CenterPointBBoxCoder", post_center_range=CENTRE_RANGE, max_num=100, score_threshold=0.15,
                out_size_factor=2, voxel_size=VOXEL[:2], code_size=7, pc_range=PCR[:2],
            ),
            separate_head=dict(type="SeparateHead", init_bias=-2.19, final_kernel=3),
            loss_cls=dict(type="mmdet.GaussianFocalLoss", reduction="mean"),
            loss_bbox=dict(type="mmdet.L1Loss", reduction="mean", loss_weight=0.25),
            norm_bbox=True,
        ),
        test_cfg=dict(pts=dict(
            post_center_limit_range=CENTRE_RANGE, max_per_img=100, max_pool_nms=False, min_radius=[4.0, 0.85],
            score_threshold=0.15, pc_range=PCR[:2], out_size_factor=2, voxel_size=VOXEL[:2], nms_type=nms_type,
            pre_max_size=1000, post_max_size=83, nms_thr=0.2,
        )),
    )


def _spread_heatmaps(head, seed: int) -> None:
    """Random heatmap weights so the sigmoid scores spread over (0, 1) and many cells pass 0.1."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    for task in head.task_heads:
        final = task.heatmap[-1]
        with torch.no_grad():
            final.weight.copy_(torch.randn(final.weight.shape, generator=gen) * 0.5)
            final.bias.fill_(-2.0)


def _build_pair(model_cfg: dict, stock_cfg: dict):
    """(ours, stock) models on the same random weights, eval mode."""
    import torch
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    from mmdet3d.registry import MODELS

    import curate.loop.mm3d.heads  # noqa: F401  (registers ProbCenterHead)

    init_default_scope("mmdet3d")
    torch.manual_seed(0)
    ours = MODELS.build(ConfigDict(copy.deepcopy(model_cfg)))
    stock = MODELS.build(ConfigDict(copy.deepcopy(stock_cfg)))
    head = ours.pts_bbox_head if hasattr(ours, "pts_bbox_head") else ours
    _spread_heatmaps(head, seed=1)
    stock.load_state_dict(ours.state_dict())
    return ours.eval(), stock.eval()


def _synthetic_cloud(seed: int):
    """Ground clutter plus a few dense box-shaped clusters, (N, 4) x y z intensity."""
    import torch

    rng = np.random.default_rng(seed)
    ground = np.c_[rng.uniform(0, 25.6, 1500), rng.uniform(-12.8, 12.8, 1500), rng.uniform(-2.0, -1.6, 1500)]
    objects = []
    for cx, cy, length, width in [(8, 3, 4, 1.8), (15, -5, 4, 1.8), (6, -2, 0.8, 0.6), (20, 8, 1.8, 0.6)]:
        n = 300
        objects.append(np.c_[cx + rng.uniform(-length / 2, length / 2, n), cy + rng.uniform(-width / 2, width / 2, n),
                             rng.uniform(-1.6, 0.0, n)])
    xyz = np.concatenate([ground, *objects])
    pts = np.c_[xyz, rng.uniform(0, 1, len(xyz))].astype(np.float32)
    return torch.from_numpy(pts)


def _pts_feats(model, seeds=(0, 1)):
    """Preprocessed batch of synthetic clouds: (pts_feats, data_samples)."""
    import torch
    from mmdet3d.structures import Det3DDataSample, LiDARInstance3DBoxes

    samples = [Det3DDataSample(metainfo=dict(box_type_3d=LiDARInstance3DBoxes)) for _ in seeds]
    data = model.data_preprocessor(dict(inputs=dict(points=[_synthetic_cloud(s) for s in seeds]),
                                        data_samples=samples), False)
    with torch.no_grad():
        _, pts_feats = model.extract_feat(data["inputs"], data["data_samples"])
    return data, pts_feats


def _assert_same_detections(ours, ref) -> int:
    import torch

    assert len(ours) == len(ref)
    total = 0
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a.bboxes_3d.tensor, r.bboxes_3d.tensor, rtol=0, atol=0)
        torch.testing.assert_close(a.scores_3d, r.scores_3d, rtol=0, atol=0)
        assert a.labels_3d.dtype == r.labels_3d.dtype and torch.equal(a.labels_3d, r.labels_3d)
        total += len(a.scores_3d)
    return total


def _brute_force_class_scores(head, preds, sample: int, boxes, labels):
    """Per kept box: (cell y*W+x, all classes' sigmoid heatmap values there) by decoding every
    cell of the box's task densely and taking the cell whose decoded centre and size equal the box."""
    import torch

    coder = head.bbox_coder
    offsets = np.concatenate([[0], np.cumsum(head.num_classes)])
    heat = torch.cat([p[0]["heatmap"][sample].sigmoid() for p in preds]).flatten(1)  # (C, H*W)
    cells, rows = [], []
    for box, label in zip(boxes, labels.tolist()):
        task = int(np.searchsorted(offsets, label, side="right") - 1)
        p = preds[task][0]
        h, w = p["heatmap"].shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
        cx = (xs + p["reg"][sample, 0]) * coder.out_size_factor * coder.voxel_size[0] + coder.pc_range[0]
        cy = (ys + p["reg"][sample, 1]) * coder.out_size_factor * coder.voxel_size[1] + coder.pc_range[1]
        dims = torch.exp(p["dim"][sample])  # (3, H, W)
        dense = torch.stack([cx, cy, dims[0], dims[1], dims[2]]).flatten(1)  # (5, H*W)
        target = torch.stack([box[0], box[1], box[3], box[4], box[5]]).unsqueeze(1)
        err = (dense - target).abs().max(dim=0).values
        cell = int(err.argmin())
        assert float(err[cell]) < 1e-4, f"box {box.tolist()} matches no cell of task {task}"
        cells.append(cell)
        rows.append(heat[:, cell])
    return torch.tensor(cells, dtype=torch.long), torch.stack(rows) if rows else heat.new_zeros(0, heat.shape[0])


@pytest.mark.parametrize("nms_type", ["circle", "rotate"])
def test_prob_center_head_matches_stock_centerpoint_and_keeps_all_class_scores(nms_type):
    import torch

    ours, stock = _build_pair(_tiny_centerpoint("ProbCenterHead", nms_type), _tiny_centerpoint("CenterHead", nms_type))
    data, pts_feats = _pts_feats(ours)
    head = ours.pts_bbox_head
    with torch.no_grad():
        preds = head(pts_feats)
        metas = [s.metainfo for s in data["data_samples"]]
        mine = head.predict_by_feat(preds, metas)
        ref = stock.pts_bbox_head.predict_by_feat(stock.pts_bbox_head(pts_feats), metas)
        # the whole detector's predict carries the extra fields into pred_instances_3d
        through_model = ours.predict(data["inputs"], copy.deepcopy(data["data_samples"]))
    n_boxes = _assert_same_detections(mine, ref)
    assert n_boxes > 2 * len(mine)  # non-trivial: several boxes per frame survive
    n_classes = sum(head.num_classes)
    for b, res in enumerate(mine):
        n = len(res.scores_3d)
        assert res.cls_scores.shape == (n, n_classes) and res.task_index.shape == (n,)
        cells, rows = _brute_force_class_scores(head, preds, b, res.bboxes_3d.tensor, res.labels_3d)
        assert torch.equal(res.cell_index, cells)
        torch.testing.assert_close(res.cls_scores, rows, rtol=0, atol=0)
        # the box's own class column is its score; the other tasks' columns are really read
        torch.testing.assert_close(res.cls_scores[torch.arange(n), res.labels_3d.long()], res.scores_3d)
        other_task = res.cls_scores[res.task_index == 0][:, 1:]
        assert other_task.numel() > 0 and float(other_task.max()) > 0.0
        np.testing.assert_array_equal(res.task_index.numpy(), (res.labels_3d >= 1).long().numpy())
        pred = through_model[b].pred_instances_3d
        torch.testing.assert_close(pred.cls_scores, res.cls_scores, rtol=0, atol=0)


def test_centerpoint_config_gets_prob_center_head_matching_stock_on_its_tasks():
    """The shipped ``centerpoint`` config (nuScenes: 6 tasks, 10 classes, rotate NMS): its head is
    swapped for ProbCenterHead and decodes as the stock head on small BEV features."""
    import torch

    from curate.loop.mm3d.configs import detector_config

    cfg = detector_config("centerpoint")
    head_cfg = dict(cfg.model["pts_bbox_head"])
    assert head_cfg["type"] == "ProbCenterHead"
    test_cfg = dict(cfg.model["test_cfg"]["pts"])
    stock_cfg = dict(head_cfg, type="CenterHead", test_cfg=test_cfg)
    ours, stock = _build_pair(dict(head_cfg, test_cfg=test_cfg), stock_cfg)
    gen = torch.Generator().manual_seed(3)
    feats = [torch.randn(1, head_cfg["in_channels"], 24, 24, generator=gen)]  # 576 cells >= max_num 500
    from mmdet3d.structures import LiDARInstance3DBoxes

    metas = [dict(box_type_3d=LiDARInstance3DBoxes)]
    with torch.no_grad():
        preds = ours(feats)
        mine = ours.predict_by_feat(preds, metas)
        ref = stock.predict_by_feat(stock(feats), metas)
    assert _assert_same_detections(mine, ref) > 0
    res = mine[0]
    assert res.cls_scores.shape == (len(res.scores_3d), 10) and res.bboxes_3d.tensor.shape[1] == 9
    heat = torch.cat([p[0]["heatmap"][0].sigmoid() for p in preds]).flatten(1)
    torch.testing.assert_close(res.cls_scores, heat[:, res.cell_index].T, rtol=0, atol=0)
    torch.testing.assert_close(res.cls_scores[torch.arange(len(res.scores_3d)), res.labels_3d.long()], res.scores_3d)
    assert len(set(res.task_index.tolist())) > 1  # boxes from several tasks


def test_member_heatmaps_average_and_keep_each_members_scores():
    import torch

    cfg = _tiny_centerpoint("ProbCenterHead", "circle")
    ours, _ = _build_pair(cfg, _tiny_centerpoint("CenterHead", "circle"))
    data, pts_feats = _pts_feats(ours)
    head = ours.pts_bbox_head
    metas = [s.metainfo for s in data["data_samples"]]
    with torch.no_grad():
        preds = head(pts_feats)
        plain = head.predict_by_feat(preds, metas)
        one = head.predict_by_feat(preds, metas, member_heatmaps=[p[0]["heatmap"].sigmoid()[None] for p in preds])
        # a second member: the same logits shifted per class, so the members disagree
        members = [torch.stack([p[0]["heatmap"].sigmoid(), (p[0]["heatmap"] + 0.5).sigmoid()]) for p in preds]
        two = head.predict_by_feat(preds, metas, member_heatmaps=members)
    _assert_same_detections(one, plain)
    for a, r in zip(one, plain):
        torch.testing.assert_close(a.cls_scores, r.cls_scores, rtol=0, atol=0)
        assert a.member_cls_scores.shape == (len(a.scores_3d), 1, 3)
        own = a.member_cls_scores[torch.arange(len(a.scores_3d)), 0, a.labels_3d.long()]
        torch.testing.assert_close(own, a.scores_3d, rtol=0, atol=0)  # each box's own cell and class
    for b, res in enumerate(two):
        n = len(res.scores_3d)
        assert n > 0 and res.member_cls_scores.shape == (n, 2, 3)
        torch.testing.assert_close(res.cls_scores, res.member_cls_scores.mean(dim=1))
        for s in range(2):
            ref = torch.cat([m[s, b] for m in members]).flatten(1)[:, res.cell_index].T
            torch.testing.assert_close(res.member_cls_scores[:, s], ref, rtol=0, atol=0)
        assert float((res.member_cls_scores[:, 1] - res.member_cls_scores[:, 0]).abs().max()) > 1e-3
    with pytest.raises(ValueError, match="member_heatmaps has 1 tasks; the head has 2"):
        head.predict_by_feat(preds, metas, member_heatmaps=members[:1])


def test_mc_dropout_on_the_centerpoint_head():
    import torch

    cfg = _tiny_centerpoint("ProbCenterHead", "circle")
    cfg["pts_bbox_head"]["feat_dropout"] = 0.3
    ours, _ = _build_pair(cfg, _tiny_centerpoint("CenterHead", "circle"))
    data, pts_feats = _pts_feats(ours, seeds=(0,))
    head = ours.pts_bbox_head
    with torch.no_grad():
        off_a, off_b = head(pts_feats)[0][0]["heatmap"], head(pts_feats)[0][0]["heatmap"]
        head.set_mc_dropout(True)
        on_a, on_b = head(pts_feats)[0][0]["heatmap"], head(pts_feats)[0][0]["heatmap"]
        head.set_mc_dropout(False)
    assert torch.equal(off_a, off_b) and not torch.equal(on_a, on_b)
    plain, _ = _build_pair(_tiny_centerpoint("ProbCenterHead", "circle"), _tiny_centerpoint("CenterHead", "circle"))
    with pytest.raises(ValueError, match="feat_dropout > 0"):
        plain.pts_bbox_head.set_mc_dropout(True)
