"""Brute-force reference of the KITTI evaluation: a line-by-line pure-Python transcription of the
official per-frame loops (``clean_data``, ``compute_statistics``, ``eval_class``), used by the
tests to check the vectorised :func:`curate.evaluation.kitti.kitti_eval`. Slow: O(T * sum over
frames of dets * gts) Python steps; only for small data.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from curate.evaluation.kitti import (
    DIFFICULTIES,
    KITTI_CLASSES,
    MAX_OCCLUSION,
    MAX_TRUNCATION,
    METRICS,
    MIN_HEIGHT,
    MIN_OVERLAPS,
    N_SAMPLE_PTS,
    _OVERLAP_CLASS_INDEX,
    get_thresholds,
    validate_annotation,
)
from curate.evaluation.rotated_iou import iou3d_camera, rotated_iou_bev

__all__ = ["reference_kitti_ap40"]

logger = logging.getLogger(__name__)


def _image_overlap(boxes: np.ndarray, query: np.ndarray, criterion: int = -1) -> np.ndarray:
    out = np.zeros((boxes.shape[0], query.shape[0]))
    for k in range(query.shape[0]):
        q_area = (query[k, 2] - query[k, 0]) * (query[k, 3] - query[k, 1])
        for n in range(boxes.shape[0]):
            iw = min(boxes[n, 2], query[k, 2]) - max(boxes[n, 0], query[k, 0])
            if iw > 0:
                ih = min(boxes[n, 3], query[k, 3]) - max(boxes[n, 1], query[k, 1])
                if ih > 0:
                    if criterion == -1:
                        ua = (boxes[n, 2] - boxes[n, 0]) * (boxes[n, 3] - boxes[n, 1]) + q_area - iw * ih
                    else:
                        ua = (boxes[n, 2] - boxes[n, 0]) * (boxes[n, 3] - boxes[n, 1])
                    out[n, k] = iw * ih / ua
    return out


def _frame_overlap(dt: dict, gt: dict, metric: str) -> np.ndarray:
    if metric == "bbox":
        return _image_overlap(dt["bbox"], gt["bbox"])
    if metric == "bev":
        a = np.concatenate([dt["location"][:, [0, 2]], dt["dimensions"][:, [0, 2]], dt["rotation_y"][:, None]], 1)
        b = np.concatenate([gt["location"][:, [0, 2]], gt["dimensions"][:, [0, 2]], gt["rotation_y"][:, None]], 1)
        return rotated_iou_bev(a, b)
    a = np.concatenate([dt["location"], dt["dimensions"], dt["rotation_y"][:, None]], 1)
    b = np.concatenate([gt["location"], gt["dimensions"], gt["rotation_y"][:, None]], 1)
    return iou3d_camera(a, b)


def _clean(gt: dict, dt: dict, cls: str, difficulty: int):
    cur = cls.lower()
    ignored_gt, ignored_dt, dc = [], [], []
    num_valid = 0
    for i in range(len(gt["name"])):
        name = gt["name"][i].lower()
        height = gt["bbox"][i, 3] - gt["bbox"][i, 1]
        if name == cur:
            valid = 1
        elif cur == "pedestrian" and name == "person_sitting":
            valid = 0
        elif cur == "car" and name == "van":
            valid = 0
        else:
            valid = -1
        ignore = (
            gt["occluded"][i] > MAX_OCCLUSION[difficulty]
            or gt["truncated"][i] > MAX_TRUNCATION[difficulty]
            or height <= MIN_HEIGHT[difficulty]
        )
        if valid == 1 and not ignore:
            ignored_gt.append(0)
            num_valid += 1
        elif valid == 0 or (ignore and valid == 1):
            ignored_gt.append(1)
        else:
            ignored_gt.append(-1)
        if gt["name"][i] == "DontCare":
            dc.append(gt["bbox"][i])
    for i in range(len(dt["name"])):
        valid = 1 if dt["name"][i].lower() == cur else -1
        height = abs(dt["bbox"][i, 3] - dt["bbox"][i, 1])
        if height < MIN_HEIGHT[difficulty]:
            ignored_dt.append(1)
        elif valid == 1:
            ignored_dt.append(0)
        else:
            ignored_dt.append(-1)
    dc_arr = np.stack(dc, 0) if dc else np.zeros((0, 4))
    return num_valid, ignored_gt, ignored_dt, dc_arr


def _statistics(overlaps, dt, ignored_gt, ignored_det, dc, metric, min_overlap, thresh, compute_fp):
    det_size = len(dt["name"])
    scores = dt["score"]
    assigned = [False] * det_size
    ignored_thr = [compute_fp and scores[j] < thresh for j in range(det_size)]
    no_det = -10000000
    tp = fp = fn = 0
    thresholds = []
    for i in range(len(ignored_gt)):
        if ignored_gt[i] == -1:
            continue
        det_idx, valid, max_ov, assigned_ignored = -1, no_det, 0, False
        for j in range(det_size):
            if ignored_det[j] == -1 or assigned[j] or ignored_thr[j]:
                continue
            ov = overlaps[j, i]
            if not compute_fp and ov > min_overlap and scores[j] > valid:
                det_idx, valid = j, scores[j]
            elif compute_fp and ov > min_overlap and (ov > max_ov or assigned_ignored) and ignored_det[j] == 0:
                max_ov, det_idx, valid, assigned_ignored = ov, j, 1, False
            elif compute_fp and ov > min_overlap and valid == no_det and ignored_det[j] == 1:
                det_idx, valid, assigned_ignored = j, 1, True
        if valid == no_det and ignored_gt[i] == 0:
            fn += 1
        elif valid != no_det and (ignored_gt[i] == 1 or ignored_det[det_idx] == 1):
            assigned[det_idx] = True
        elif valid != no_det:
            tp += 1
            thresholds.append(scores[det_idx])
            assigned[det_idx] = True
    if compute_fp:
        for j in range(det_size):
            if not (assigned[j] or ignored_det[j] in (-1, 1) or ignored_thr[j]):
                fp += 1
        if metric == "bbox":
            dc_ov = _image_overlap(dt["bbox"], dc, 0)
            for i in range(dc.shape[0]):
                for j in range(det_size):
                    if assigned[j] or ignored_det[j] in (-1, 1) or ignored_thr[j]:
                        continue
                    if dc_ov[j, i] > min_overlap:
                        assigned[j] = True
                        fp -= 1
    return tp, fp, fn, thresholds


def reference_kitti_ap40(
    gt_annos: Sequence[Mapping[str, Any]],
    dt_annos: Sequence[Mapping[str, Any]],
    classes: Sequence[str] = KITTI_CLASSES,
    metrics: Sequence[str] = METRICS,
) -> dict[str, np.ndarray]:
    """``metric -> (n_classes, 3, 2)`` AP40 in percent, computed frame by frame in pure Python."""
    gts = [validate_annotation(a, f"gt {i}", with_score=False) for i, a in enumerate(gt_annos)]
    dts = [validate_annotation(a, f"dt {i}", with_score=True) for i, a in enumerate(dt_annos)]
    out = {}
    for metric in metrics:
        m_idx = METRICS.index(metric)
        overlaps = [_frame_overlap(d, g, metric) for g, d in zip(gts, dts)]
        ap = np.zeros((len(classes), len(DIFFICULTIES), 2))
        for c, cls in enumerate(classes):
            for diff in range(len(DIFFICULTIES)):
                cleaned = [_clean(g, d, cls, diff) for g, d in zip(gts, dts)]
                num_valid = sum(x[0] for x in cleaned)
                for k in range(2):
                    min_ov = MIN_OVERLAPS[k, m_idx, _OVERLAP_CLASS_INDEX[cls.lower()]]
                    scores: list[float] = []
                    for f in range(len(gts)):
                        _, ig_gt, ig_dt, dc = cleaned[f]
                        scores += _statistics(overlaps[f], dts[f], ig_gt, ig_dt, dc, metric, min_ov, 0.0, False)[3]
                    thresholds = get_thresholds(np.array(scores), num_valid)
                    prec = np.zeros(N_SAMPLE_PTS)
                    for t, thr in enumerate(thresholds):
                        tp = fp = 0
                        for f in range(len(gts)):
                            _, ig_gt, ig_dt, dc = cleaned[f]
                            a, b, _, _ = _statistics(overlaps[f], dts[f], ig_gt, ig_dt, dc, metric, min_ov, thr, True)
                            tp += a
                            fp += b
                        with np.errstate(divide="ignore", invalid="ignore"):
                            prec[t] = np.float64(tp) / np.float64(tp + fp)
                    for t in range(len(thresholds)):
                        prec[t] = np.max(prec[t:])
                    ap[c, diff, k] = prec[1:].sum() / 40 * 100
        out[metric] = ap
    return out
