"""nuScenes detection metric (mAP and NDS) of LiDAR-frame predictions, on any set of samples.

mmdet3d's ``NuScenesMetric`` turns predictions into the nuScenes result format (its
``output_to_nusc_box`` and ``lidar_nusc_box_to_global``: gravity centre, ``w, l, h``, yaw
quaternion, the per-class range filter in the ego frame, default attributes) and runs the
devkit's ``DetectionEval``, but only on the predefined splits (``mini_val`` / ``val``). Here the
same metric class formats the results, and the devkit's ``DetectionEval`` runs on the sample
tokens of the frames given (:class:`TokenDetectionEval`: the devkit's own loaders
``load_prediction_of_sample_tokens`` / ``load_gt_of_sample_tokens``), so a held-out split of a
curate pool (or a synthetic set) is scored with the official protocol: the 10 detection classes,
centre-distance matching at 0.5 / 1 / 2 / 4 m, TP errors, ``NDS = (5 mAP + sum(1 - min(1, err))) / 10``.

Velocity: NDS counts the mean velocity error (mAVE) of the matched boxes of every class but
traffic cones and barriers, ``1 - min(1, mAVE)`` being one of its five TP terms (weight 1/10).
Predictions without a velocity are scored as standing still, so a detector that predicts none
pays for every moving object; ``centerpoint-tiny-nus`` predicts it and the loop passes it on.

Needs the mmdet3d stack and ``nuscenes-devkit`` (installed by ``make mm3d``). Cost: the devkit's
evaluation, ``O(boxes log boxes)`` per class and threshold, plus loading the tables once.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from curate.errors import InvalidInputError

__all__ = ["NuScenesResult", "nuscenes_eval", "TokenDetectionEval"]

logger = logging.getLogger(__name__)


@dataclass
class NuScenesResult:
    """Summary of one nuScenes evaluation.

    Attributes
    ----------
    map : float
        Mean AP over the 10 detection classes (0..1).
    nds : float
        nuScenes detection score (0..1).
    class_ap : dict
        Class -> AP (mean over the 4 distance thresholds).
    tp_errors : dict
        ``trans_err``, ``scale_err``, ``orient_err``, ``vel_err``, ``attr_err`` (means over classes).
    summary : dict
        The devkit's ``metrics_summary.json``.
    """

    map: float
    nds: float
    class_ap: dict[str, float] = field(default_factory=dict)
    tp_errors: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def mean_ap(self, metric: str = "3d", *, strict: bool = True) -> float:
        """mAP in percent (the loop's interface for KITTI AP; nuScenes has one mAP for every metric)."""
        return 100.0 * float(self.map)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (what the loop stores per round)."""
        return {"metric": "nuscenes", "mAP": float(self.map), "NDS": float(self.nds),
                "class_ap": {k: float(v) for k, v in self.class_ap.items()},
                "tp_errors": {k: float(v) for k, v in self.tp_errors.items()}}


def _token_eval_class() -> Any:
    from nuscenes.eval.common.loaders import (
        add_center_dist,
        filter_eval_boxes,
        load_gt_of_sample_tokens,
        load_prediction_of_sample_tokens,
    )
    from nuscenes.eval.detection.data_classes import DetectionBox
    from nuscenes.eval.detection.evaluate import DetectionEval

    class _TokenDetectionEval(DetectionEval):
        """The devkit's ``DetectionEval`` on a list of sample tokens instead of a split name."""

        def __init__(self, nusc: Any, config: Any, result_path: str, sample_tokens: Sequence[str],
                     output_dir: str, verbose: bool = False) -> None:
            self.nusc = nusc
            self.result_path = result_path
            self.eval_set = "curate-tokens"
            self.output_dir = output_dir
            self.verbose = verbose
            self.cfg = config
            self.plot_dir = str(Path(output_dir) / "plots")
            Path(self.plot_dir).mkdir(parents=True, exist_ok=True)
            tokens = list(sample_tokens)
            self.pred_boxes, self.meta = load_prediction_of_sample_tokens(
                result_path, config.max_boxes_per_sample, DetectionBox, sample_tokens=tokens, verbose=verbose)
            self.gt_boxes = load_gt_of_sample_tokens(nusc, tokens, DetectionBox, verbose=verbose)
            if set(self.pred_boxes.sample_tokens) != set(self.gt_boxes.sample_tokens):
                raise InvalidInputError("the predictions do not cover the same samples as the ground truth")
            self.pred_boxes = add_center_dist(nusc, self.pred_boxes)
            self.gt_boxes = add_center_dist(nusc, self.gt_boxes)
            self.pred_boxes = filter_eval_boxes(nusc, self.pred_boxes, config.class_range, verbose=verbose)
            self.gt_boxes = filter_eval_boxes(nusc, self.gt_boxes, config.class_range, verbose=verbose)
            self.sample_tokens = self.gt_boxes.sample_tokens

    return _TokenDetectionEval


def TokenDetectionEval(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 (a class factory)
    """Build the devkit's ``DetectionEval`` restricted to ``sample_tokens`` (see the module docstring)."""
    return _token_eval_class()(*args, **kwargs)


_NUSC_CACHE: dict[tuple, Any] = {}


def _devkit(dataroot: str, version: str) -> Any:
    try:
        from nuscenes import NuScenes
    except ImportError as exc:
        raise ImportError(
            "the nuScenes metric needs nuscenes-devkit (installed with the mmdet3d stack: make mm3d)"
        ) from exc
    tables = Path(dataroot) / version
    stamp = tuple((tables / f"{t}.json").stat().st_mtime_ns if (tables / f"{t}.json").exists() else 0
                  for t in ("sample", "sample_annotation", "ego_pose"))
    key = (str(dataroot), str(version), stamp)  # a data set rewritten in place is loaded again
    if key not in _NUSC_CACHE:
        _NUSC_CACHE.clear()  # one data set at a time: the tables can be large
        _NUSC_CACHE[key] = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    return _NUSC_CACHE[key]


def nuscenes_eval(
    infos: dict[str, Any],
    predictions: Sequence[Any],
    classes: Sequence[str],
    *,
    dataroot: Optional[str] = None,
    version: Optional[str] = None,
    out_dir: Optional[str] = None,
) -> NuScenesResult:
    """mAP / NDS of ``predictions`` on the samples of ``infos`` (nuScenes-layout info dict).

    Parameters
    ----------
    infos : dict
        :func:`curate.loop.infos_nuscenes.build_nuscenes_infos` output (``token``, ``lidar_points.
        lidar2ego``, ``ego2global`` per frame); its ``curate_id`` values name the frames.
    predictions : sequence
        Per frame (matched by ``frame_id`` to ``curate_id``) an object with ``boxes`` ``(n, 7)``
        or ``(n, 9)`` LiDAR boxes ``x, y, z_bottom, l, w, h, yaw[, vx, vy]``, ``labels`` (indices
        into ``classes``) and ``scores`` (e.g. :class:`curate.scores_table.FramePrediction`).
        With 7-dim boxes the velocity comes from ``extra["velocity"]`` ``(n, 2)`` (LiDAR frame,
        m/s; what :class:`~curate.loop.mm3d.MMDet3DDetector` returns for a CenterPoint head with
        a trained velocity branch), else it is zero.
    classes : sequence of str
        Detection class names of the labels (nuScenes detection names; others are dropped).
    dataroot, version : str, optional
        Default: from ``infos["metainfo"]``.
    out_dir : str, optional
        Where the result json and the devkit's summaries go (a temporary folder otherwise).

    Returns
    -------
    NuScenesResult
    """
    import torch
    from mmdet3d.evaluation.metrics import NuScenesMetric
    from mmdet3d.structures import LiDARInstance3DBoxes

    from curate.sources.nuscenes import DETECTION_CLASSES

    meta = infos.get("metainfo", {})
    kwargs = meta.get("curate_dataset_kwargs", {})
    dataroot = dataroot or kwargs.get("data_root")
    version = version or meta.get("version")
    if not dataroot or not version:
        raise InvalidInputError("nuscenes_eval: the infos name no nuScenes dataroot / version; pass them")
    data_list = infos["data_list"]
    by_id = {str(p.frame_id): p for p in predictions}
    missing = [d["curate_id"] for d in data_list if d["curate_id"] not in by_id]
    if missing:
        raise InvalidInputError(f"nuscenes_eval: no prediction for {len(missing)} frames (first: {missing[0]})")
    names = list(DETECTION_CLASSES)
    remap = np.array([names.index(c) if c in names else -1 for c in classes] + [-1], dtype=np.int64)
    results = []
    for d in data_list:
        p = by_id[d["curate_id"]]
        boxes = np.asarray(p.boxes, dtype=np.float32).reshape(len(p.labels), -1)
        if boxes.shape[1] == 7:
            velocity = (getattr(p, "extra", None) or {}).get("velocity")
            if velocity is None:
                velocity = np.zeros((len(boxes), 2), dtype=np.float32)
            velocity = np.asarray(velocity, dtype=np.float32).reshape(len(boxes), 2)
            boxes = np.concatenate([boxes, np.nan_to_num(velocity)], axis=1)
        labels = remap[np.asarray(p.labels, dtype=np.int64)]
        keep = labels >= 0
        results.append({
            "bboxes_3d": LiDARInstance3DBoxes(torch.from_numpy(boxes[keep]), box_dim=9),
            "scores_3d": torch.from_numpy(np.asarray(p.scores, dtype=np.float32)[keep]),
            "labels_3d": torch.from_numpy(labels[keep]),
        })
    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="curate-nusc-eval-")
        out_dir = tmp.name
    quiet = io.StringIO()  # mmdet3d's formatter and the devkit's summary print to stdout
    try:
        with contextlib.redirect_stdout(quiet):
            summary = _format_and_evaluate(NuScenesMetric, str(dataroot), str(version), data_list, results,
                                           names, str(out_dir))
    finally:
        if tmp is not None:
            tmp.cleanup()
    logger.info("nuScenes metric on %d samples: mAP %.4f, NDS %.4f", len(data_list), summary["mean_ap"],
                summary["nd_score"])
    class_ap = {c: float(np.mean(list(v.values()))) for c, v in summary["label_aps"].items()}
    return NuScenesResult(map=float(summary["mean_ap"]), nds=float(summary["nd_score"]), class_ap=class_ap,
                          tp_errors={k: float(v) for k, v in summary["tp_errors"].items()}, summary=summary)


def _format_and_evaluate(metric_cls: Any, dataroot: str, version: str, data_list: list, results: list,
                         names: list, out_dir: str) -> dict[str, Any]:
    """mmdet3d's result formatting, then the devkit's evaluation on the samples' tokens."""
    prefix = str(Path(out_dir) / "results")
    metric = metric_cls(data_root=dataroot, ann_file="", metric="bbox",
                        modality=dict(use_camera=False, use_lidar=True), format_only=True, jsonfile_prefix=prefix)
    metric.version = version
    metric.data_infos = data_list
    result_path = metric._format_lidar_bbox(results, list(range(len(data_list))), names, jsonfile_prefix=prefix)
    evaluator = TokenDetectionEval(_devkit(dataroot, version), metric.eval_detection_configs, result_path,
                                   [d["token"] for d in data_list], output_dir=out_dir)
    evaluator.main(render_curves=False)
    return json.loads((Path(out_dir) / "metrics_summary.json").read_text())
