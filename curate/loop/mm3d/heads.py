"""``ProbAnchor3DHead``: mmdet3d's ``Anchor3DHead`` that keeps the per-class score distribution of
every box surviving NMS (and, for ensembles / MC-dropout, every member's scores of those boxes);
``ProbCenterHead``: the same for CenterPoint's ``CenterHead`` (see its docstring).

mmdet3d's head returns one score and one label per box after multi-class NMS; the class scores
of the other classes are lost, and uncertainty sampling needs them. This head tracks the anchor
index of each candidate through top-k and NMS (passed to ``box3d_multiclass_nms`` as its
``mlvl_attr_scores``) and gathers the full rows of the sigmoid score matrix for the survivors:
``results.cls_scores`` ``(n, C)`` and, when several members' score maps are given,
``results.member_cls_scores`` ``(n, S, C)``. With ``feat_dropout > 0`` a 2-D dropout sits
between the neck and the head's convolutions (MC-dropout at prediction time). Same parameters
as ``Anchor3DHead``, so standard checkpoints load unchanged.

Importing this module needs mmdet3d (see :func:`curate.loop.mm3d._imports.require_mm3d`).

Cost: as ``Anchor3DHead`` plus O(anchors) for the index bookkeeping and O(S * n * C) for the
gathered member scores.
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from curate.loop.mm3d._imports import require_mm3d

require_mm3d()

from mmdet3d.models.dense_heads import Anchor3DHead, CenterHead  # noqa: E402
from mmdet3d.models.layers import box3d_multiclass_nms, circle_nms, nms_bev  # noqa: E402
from mmdet3d.registry import MODELS  # noqa: E402
from mmdet3d.structures import limit_period, xywhr2xyxyr  # noqa: E402
from mmdet.models.utils import select_single_mlvl  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

__all__ = ["ProbAnchor3DHead", "ProbCenterHead"]

logger = logging.getLogger(__name__)


@MODELS.register_module(force=True)
class ProbAnchor3DHead(Anchor3DHead):
    """``Anchor3DHead`` keeping the class scores of the boxes that survive NMS.

    Parameters
    ----------
    feat_dropout : float
        Probability of a ``Dropout2d`` on the head's input features (0: none). Active in
        training and, when :meth:`set_mc_dropout` turned it on, at prediction time.
    **kwargs
        Those of ``Anchor3DHead``.
    """

    def __init__(self, *args: Any, feat_dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.feat_dropout = nn.Dropout2d(p=float(feat_dropout)) if feat_dropout > 0 else None
        self._mc_dropout = False

    def set_mc_dropout(self, on: bool) -> None:
        """Keep the feature dropout active in eval mode (MC-dropout sampling)."""
        if on and self.feat_dropout is None:
            raise ValueError("this head has no dropout (feat_dropout=0); MC-dropout needs feat_dropout > 0")
        self._mc_dropout = bool(on)

    def forward_single(self, x: Tensor) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        """As ``Anchor3DHead.forward_single``, after the optional feature dropout."""
        if self.feat_dropout is not None and (self.training or self._mc_dropout):
            x = nn.functional.dropout2d(x, p=self.feat_dropout.p, training=True)
        return super().forward_single(x)

    def predict_by_feat(
        self,
        cls_scores: List[Tensor],
        bbox_preds: List[Tensor],
        dir_cls_preds: List[Tensor],
        batch_input_metas: Optional[List[dict]] = None,
        cfg: Any = None,
        rescale: bool = False,
        member_probs: Optional[Sequence[Tensor]] = None,
        **kwargs: Any,
    ) -> list:
        """As the parent's, plus ``member_probs``: per level ``(S, B, A*C, H, W)`` sigmoid scores
        of S members; their mean replaces ``sigmoid(cls_scores)`` and each member's scores of
        the kept boxes are returned as ``member_cls_scores``."""
        num_levels = len(cls_scores)
        featmap_sizes = [cls_scores[i].shape[-2:] for i in range(num_levels)]
        mlvl_priors = self.prior_generator.grid_anchors(featmap_sizes, device=cls_scores[0].device)
        mlvl_priors = [prior.reshape(-1, self.box_code_size) for prior in mlvl_priors]
        results = []
        for input_id, input_meta in enumerate(batch_input_metas or []):
            members = None
            if member_probs is not None:
                members = [m[:, input_id] for m in member_probs]
            results.append(
                self._predict_by_feat_single(
                    cls_score_list=select_single_mlvl(cls_scores, input_id),
                    bbox_pred_list=select_single_mlvl(bbox_preds, input_id),
                    dir_cls_pred_list=select_single_mlvl(dir_cls_preds, input_id),
                    mlvl_priors=mlvl_priors, input_meta=input_meta, cfg=cfg, rescale=rescale,
                    member_prob_list=members,
                )
            )
        return results

    def _predict_by_feat_single(
        self,
        cls_score_list: List[Tensor],
        bbox_pred_list: List[Tensor],
        dir_cls_pred_list: List[Tensor],
        mlvl_priors: List[Tensor],
        input_meta: dict,
        cfg: Any,
        rescale: bool = False,
        member_prob_list: Optional[List[Tensor]] = None,
        **kwargs: Any,
    ) -> InstanceData:
        """mmdet3d's decoding + multi-class NMS, tracking each candidate's anchor index."""
        cfg = self.test_cfg if cfg is None else cfg
        mlvl_bboxes, mlvl_scores, mlvl_dir_scores, mlvl_members, mlvl_index = [], [], [], [], []
        offset = 0
        for level, (cls_score, bbox_pred, dir_cls_pred, priors) in enumerate(
            zip(cls_score_list, bbox_pred_list, dir_cls_pred_list, mlvl_priors)
        ):
            dir_cls_score = torch.max(dir_cls_pred.permute(1, 2, 0).reshape(-1, 2), dim=-1)[1]
            if member_prob_list is not None:
                member = member_prob_list[level]  # (S, A*C, H, W)
                member = member.permute(0, 2, 3, 1).reshape(member.shape[0], -1, self.num_classes)
                scores = member.mean(dim=0)
            else:
                member = None
                cls_score = cls_score.permute(1, 2, 0).reshape(-1, self.num_classes)
                scores = cls_score.sigmoid() if self.use_sigmoid_cls else cls_score.softmax(-1)
            bbox_pred = bbox_pred.permute(1, 2, 0).reshape(-1, self.box_code_size)
            index = torch.arange(scores.shape[0], device=scores.device) + offset
            offset += scores.shape[0]
            nms_pre = cfg.get("nms_pre", -1)
            if nms_pre > 0 and scores.shape[0] > nms_pre:
                max_scores = scores.max(dim=1)[0] if self.use_sigmoid_cls else scores[:, :-1].max(dim=1)[0]
                _, topk = max_scores.topk(nms_pre)
                priors, bbox_pred, scores = priors[topk, :], bbox_pred[topk, :], scores[topk, :]
                dir_cls_score, index = dir_cls_score[topk], index[topk]
                if member is not None:
                    member = member[:, topk, :]
            mlvl_bboxes.append(self.bbox_coder.decode(priors, bbox_pred))
            mlvl_scores.append(scores)
            mlvl_dir_scores.append(dir_cls_score)
            mlvl_index.append(index)
            if member is not None:
                mlvl_members.append(member)
        bboxes_all = torch.cat(mlvl_bboxes)
        bboxes_for_nms = xywhr2xyxyr(input_meta["box_type_3d"](bboxes_all, box_dim=self.box_code_size).bev)
        scores_all = torch.cat(mlvl_scores)
        class_scores = scores_all if self.use_sigmoid_cls else scores_all[:, :-1]
        index_all = torch.cat(mlvl_index)
        position = torch.arange(index_all.shape[0], device=index_all.device, dtype=scores_all.dtype)
        nms_scores = scores_all
        if self.use_sigmoid_cls:
            nms_scores = torch.cat([scores_all, scores_all.new_zeros(scores_all.shape[0], 1)], dim=1)
        bboxes, scores, labels, dir_scores, kept = box3d_multiclass_nms(
            bboxes_all, bboxes_for_nms, nms_scores, cfg.get("score_thr", 0), cfg.max_num, cfg,
            torch.cat(mlvl_dir_scores), position,
        )
        kept = kept.round().long()
        if bboxes.shape[0] > 0:
            dir_rot = limit_period(bboxes[..., 6] - self.dir_offset, self.dir_limit_offset, np.pi)
            bboxes[..., 6] = dir_rot + self.dir_offset + np.pi * dir_scores.to(bboxes.dtype)
        results = InstanceData()
        results.bboxes_3d = input_meta["box_type_3d"](bboxes, box_dim=self.box_code_size)
        results.scores_3d = scores
        results.labels_3d = labels
        results.cls_scores = class_scores[kept]
        results.anchor_index = index_all[kept]
        if mlvl_members:
            # InstanceData fields share their first dimension: boxes first, (n, S, C)
            results.member_cls_scores = torch.cat(mlvl_members, dim=1)[:, kept, :].permute(1, 0, 2)
        return results


def _decode_with_cells(
    coder: Any,
    heat: Tensor,
    rot_sine: Tensor,
    rot_cosine: Tensor,
    hei: Tensor,
    dim: Tensor,
    vel: Optional[Tensor],
    reg: Optional[Tensor],
) -> list[dict]:
    """``CenterPointBBoxCoder.decode`` that also returns each box's heatmap cell ``y * W + x``.

    The steps and helpers of mmdet3d 1.4's ``decode`` (top ``max_num`` over classes and cells,
    the regression maps gathered at those cells, the centre-range and score-threshold filter),
    with the cell index carried along; the coder itself is not modified. Per sample a dict with
    ``bboxes`` ``(n, code_size)``, ``scores`` ``(n,)``, ``labels`` ``(n,)`` (class within the
    task, float as in mmdet3d) and ``cells`` ``(n,)`` (long). O(B * C_t * H * W).
    """
    batch = heat.shape[0]
    k = coder.max_num
    scores, inds, clses, ys, xs = coder._topk(heat, K=k)

    def gathered(feat: Tensor, channels: int) -> Tensor:
        return coder._transpose_and_gather_feat(feat, inds).view(batch, k, channels)

    if reg is not None:
        offset = gathered(reg, 2)
        xs = xs.view(batch, k, 1) + offset[:, :, 0:1]
        ys = ys.view(batch, k, 1) + offset[:, :, 1:2]
    else:
        xs = xs.view(batch, k, 1) + 0.5
        ys = ys.view(batch, k, 1) + 0.5
    rot = torch.atan2(gathered(rot_sine, 1), gathered(rot_cosine, 1))
    xs = xs.view(batch, k, 1) * coder.out_size_factor * coder.voxel_size[0] + coder.pc_range[0]
    ys = ys.view(batch, k, 1) * coder.out_size_factor * coder.voxel_size[1] + coder.pc_range[1]
    parts = [xs, ys, gathered(hei, 1), gathered(dim, 3), rot]
    if vel is not None:
        parts.append(gathered(vel, 2))
    boxes = torch.cat(parts, dim=2)
    clses = clses.view(batch, k).float()
    scores = scores.view(batch, k)
    if coder.post_center_range is None:
        raise ValueError(
            "ProbCenterHead: the bbox_coder has no post_center_range; set one in the config "
            "(mmdet3d's CenterPointBBoxCoder needs it too)"
        )
    centre_range = torch.as_tensor(coder.post_center_range, device=heat.device)
    mask = (boxes[..., :3] >= centre_range[:3]).all(2) & (boxes[..., :3] <= centre_range[3:]).all(2)
    if coder.score_threshold:
        mask &= scores > coder.score_threshold
    return [
        dict(bboxes=boxes[i, mask[i]], scores=scores[i, mask[i]], labels=clses[i, mask[i]], cells=inds[i, mask[i]])
        for i in range(batch)
    ]


@MODELS.register_module(force=True)
class ProbCenterHead(CenterHead):
    """CenterPoint's ``CenterHead`` keeping, for every box that survives NMS, the scores of all
    the detector's classes at the box's heatmap cell.

    CenterPoint splits the classes into tasks, each with its own sigmoid heatmaps (one per
    class) on the same BEV grid. A box of task ``t`` comes from one cell ``(y, x)`` of its
    task's heatmaps; this head gathers every class's heatmap value at that cell, the other
    tasks' classes included, in label order (task by task, as ``labels_3d`` counts):
    ``results.cls_scores`` ``(n, C)`` with ``C = sum(num_classes)``. Its column
    ``labels_3d`` is the box's ``scores_3d``. ``results.cell_index`` ``(n,)`` is
    ``y * W + x`` and ``results.task_index`` ``(n,)`` the task of each box. Boxes, labels and
    scores are those of ``CenterHead`` on the same weights and input (circle or rotate NMS).

    Like the anchor head's, these are independent sigmoid scores, not a distribution; the loop
    turns each row ``s`` into one the same way for both heads
    (:func:`curate.loop.uncertainty.class_distribution`): ``[s_1, ..., s_C, prod_c(1 - s_c)]``
    divided by its sum, the last entry being "background" (no class at this cell), so a weak
    peak is uncertain even when one class dominates.

    Ensembles / MC-dropout: :meth:`predict_by_feat` takes ``member_heatmaps``, per task the
    ``(S, B, C_t, H, W)`` sigmoid heatmaps of ``S`` members; their mean replaces the sigmoid
    of the passed heatmaps for decoding and ``results.member_cls_scores`` ``(n, S, C)`` holds
    each member's scores at the kept cells. ``feat_dropout > 0`` puts a 2-D dropout on the
    head's input (active at prediction time after :meth:`set_mc_dropout`).

    Same parameters as ``CenterHead`` (plus ``feat_dropout``), so CenterPoint checkpoints load
    unchanged. Runs on CPU: ``circle_nms`` is numba, ``nms_bev`` uses mmcv's ``nms_rotated``
    (CPU op built by ``make mm3d``). Cost: as ``CenterHead`` plus O(n * C) gathered scores and
    O(S * n * C) member scores.
    """

    def __init__(self, *args: Any, feat_dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.feat_dropout = nn.Dropout2d(p=float(feat_dropout)) if feat_dropout > 0 else None
        self._mc_dropout = False

    def set_mc_dropout(self, on: bool) -> None:
        """Keep the feature dropout active in eval mode (MC-dropout sampling)."""
        if on and self.feat_dropout is None:
            raise ValueError("this head has no dropout (feat_dropout=0); MC-dropout needs feat_dropout > 0")
        self._mc_dropout = bool(on)

    def forward_single(self, x: Tensor) -> list:
        """As ``CenterHead.forward_single``, after the optional feature dropout."""
        if self.feat_dropout is not None and (self.training or self._mc_dropout):
            x = nn.functional.dropout2d(x, p=self.feat_dropout.p, training=True)
        return super().forward_single(x)

    def _task_keep(self, task_id: int, det: dict, input_meta: dict) -> Tensor:
        """Positions of ``det``'s rows that survive the task's NMS (as ``CenterHead``: circle
        NMS, or score threshold + rotated BEV NMS + centre range as ``get_task_detections``)."""
        cfg = self.test_cfg
        boxes, scores = det["bboxes"], det["scores"]
        if cfg["nms_type"] == "circle":
            centres = torch.cat([boxes[:, [0, 1]], scores.view(-1, 1)], dim=1)
            keep = circle_nms(centres.detach().cpu().numpy(), cfg["min_radius"][task_id],
                              post_max_size=cfg["post_max_size"])
            return torch.tensor(keep, dtype=torch.long, device=boxes.device)
        if cfg["nms_type"] != "rotate":
            raise ValueError(f"ProbCenterHead: test_cfg nms_type must be 'circle' or 'rotate'; got {cfg['nms_type']!r}")
        pos = torch.arange(scores.shape[0], device=scores.device)
        if cfg["score_threshold"] > 0.0:
            thresh = torch.tensor([cfg["score_threshold"]], device=scores.device).type_as(scores)
            pos = pos[scores >= thresh]
        if pos.numel() == 0:
            return pos
        for_nms = xywhr2xyxyr(input_meta["box_type_3d"](boxes[pos], self.bbox_coder.code_size).bev)
        selected = nms_bev(for_nms, scores[pos], thresh=cfg["nms_thr"], pre_max_size=cfg["pre_max_size"],
                           post_max_size=cfg["post_max_size"])
        pos = pos[selected]
        centre_range = cfg["post_center_limit_range"]
        if len(centre_range) > 0:
            centre_range = torch.tensor(centre_range, dtype=boxes.dtype, device=boxes.device)
            centres = boxes[pos, :3]
            pos = pos[(centres >= centre_range[:3]).all(1) & (centres <= centre_range[3:]).all(1)]
        return pos

    def predict_by_feat(
        self,
        preds_dicts: Sequence[List[dict]],
        batch_input_metas: List[dict],
        *args: Any,
        member_heatmaps: Optional[Sequence[Tensor]] = None,
        **kwargs: Any,
    ) -> list:
        """As the parent's, plus ``cls_scores``, ``cell_index``, ``task_index`` (and
        ``member_cls_scores`` when ``member_heatmaps`` are given) per sample."""
        if self.test_cfg["nms_type"] not in ("circle", "rotate"):
            raise ValueError(
                f"ProbCenterHead: test_cfg nms_type must be 'circle' or 'rotate'; got {self.test_cfg['nms_type']!r}"
            )
        if member_heatmaps is not None and len(member_heatmaps) != len(preds_dicts):
            raise ValueError(
                f"member_heatmaps has {len(member_heatmaps)} tasks; the head has {len(preds_dicts)} "
                "(pass one (S, B, C_t, H, W) tensor per task)"
            )
        heatmaps = [
            p[0]["heatmap"].sigmoid() if member_heatmaps is None else member_heatmaps[t].mean(dim=0)
            for t, p in enumerate(preds_dicts)
        ]
        all_heat = torch.cat(heatmaps, dim=1).flatten(2)  # (B, C, H*W)
        all_members = None
        if member_heatmaps is not None:
            all_members = torch.cat(list(member_heatmaps), dim=2).flatten(3)  # (S, B, C, H*W)
        per_task = []
        for task_id, preds in enumerate(preds_dicts):
            p = preds[0]
            decoded = _decode_with_cells(
                self.bbox_coder, heatmaps[task_id], p["rot"][:, 0].unsqueeze(1), p["rot"][:, 1].unsqueeze(1),
                p["height"], torch.exp(p["dim"]) if self.norm_bbox else p["dim"], p.get("vel"), p["reg"],
            )
            per_task.append([(d, self._task_keep(task_id, d, meta)) for d, meta in zip(decoded, batch_input_metas)])
        offsets = np.concatenate([[0], np.cumsum(self.num_classes)[:-1]]).tolist()
        results = []
        for i, meta in enumerate(batch_input_metas):
            kept = [(t, *task[i]) for t, task in enumerate(per_task)]  # (task, decoded, kept rows)
            bboxes = torch.cat([d["bboxes"][keep] for _, d, keep in kept])
            bboxes[:, 2] = bboxes[:, 2] - bboxes[:, 5] * 0.5
            cells = torch.cat([d["cells"][keep] for _, d, keep in kept])
            res = InstanceData()
            res.bboxes_3d = meta["box_type_3d"](bboxes, self.bbox_coder.code_size)
            res.scores_3d = torch.cat([d["scores"][keep] for _, d, keep in kept])
            res.labels_3d = torch.cat([(d["labels"][keep] + offsets[t]).int() for t, d, keep in kept])
            res.cls_scores = all_heat[i][:, cells].T
            res.cell_index = cells
            res.task_index = torch.cat([torch.full_like(keep, t) for t, _, keep in kept])
            if all_members is not None:
                # InstanceData fields share their first dimension: boxes first, (n, S, C)
                res.member_cls_scores = all_members[:, i][:, :, cells].permute(2, 0, 1)
            results.append(res)
        return results
