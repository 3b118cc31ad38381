"""``ProbAnchor3DHead``: mmdet3d's ``Anchor3DHead`` that keeps the per-class score distribution of
every box surviving NMS (and, for ensembles / MC-dropout, every member's scores of those boxes).

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

from mmdet3d.models.dense_heads import Anchor3DHead  # noqa: E402
from mmdet3d.models.layers import box3d_multiclass_nms  # noqa: E402
from mmdet3d.registry import MODELS  # noqa: E402
from mmdet3d.structures import limit_period, xywhr2xyxyr  # noqa: E402
from mmdet.models.utils import select_single_mlvl  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

__all__ = ["ProbAnchor3DHead"]

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
