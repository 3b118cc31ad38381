"""KITTI-style detection AP on CPU: 2-D box, bird's-eye view and 3-D, 40 (and 11) recall points.

This reproduces the official KITTI protocol as mmdet3d's ``kitti_eval`` implements it, number for
number, with the greedy matching vectorised over frames and score thresholds instead of numba
loops, and the rotated IoU of :mod:`curate.evaluation.rotated_iou` instead of a CUDA kernel:

* difficulty from the 2-D box height, occlusion and truncation (easy / moderate / hard: height
  > 40 / 25 / 25 px, occlusion <= 0 / 1 / 2, truncation <= 0.15 / 0.30 / 0.50). Harder ground
  truth and the neighbouring classes (``Van`` for ``Car``, ``Person_sitting`` for ``Pedestrian``)
  are "ignored": a detection matched to them is neither a true nor a false positive. Detections
  whose 2-D box is lower than the difficulty's minimum height are ignored the same way;
  ``DontCare`` regions absorb unmatched 2-D detections.
* IoU thresholds: strict 0.7 (Car) / 0.5 (Pedestrian, Cyclist) for every metric; loose 0.7 / 0.5
  for 2-D and 0.5 / 0.25 for BEV and 3-D.
* precision is sampled at the score thresholds that reach recall ``0, 1/40, ..., 1`` (``get_thresholds``),
  interpolated (max to the right), and AP40 averages the 40 points after 0 (AP11: every 4th of
  the 41 points).

Annotations are dicts of arrays, one per frame, in mmdet3d's KITTI layout (see
:func:`annotations_from_boxes`): ``name`` (N,), ``truncated`` (N,), ``occluded`` (N,), ``alpha``
(N,), ``bbox`` (N, 4) image ``x1, y1, x2, y2``, ``dimensions`` (N, 3) **l, h, w**, ``location``
(N, 3) bottom centre in the rectified camera frame, ``rotation_y`` (N,), and for detections
``score`` (N,).

Complexity: overlaps O(sum over frames of dets*gts); matching O(T * F * D * G) per class,
difficulty and IoU threshold with T <= 41 thresholds, F frames, D and G the largest per-frame
counts of relevant detections and ground truth; memory O(T * F * D + F * D * G).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from curate.errors import InvalidInputError
from curate.evaluation.rotated_iou import paired_iou

__all__ = [
    "KITTI_CLASSES",
    "DIFFICULTIES",
    "METRICS",
    "MIN_OVERLAPS",
    "KittiResult",
    "kitti_eval",
    "annotations_from_boxes",
    "empty_annotation",
    "validate_annotation",
    "get_thresholds",
]

logger = logging.getLogger(__name__)

KITTI_CLASSES: tuple[str, ...] = ("Car", "Pedestrian", "Cyclist")
DIFFICULTIES: tuple[str, ...] = ("easy", "moderate", "hard")
METRICS: tuple[str, ...] = ("bbox", "bev", "3d")
_METRIC_KEY = {"bbox": "2D", "bev": "BEV", "3d": "3D"}

MIN_HEIGHT = (40.0, 25.0, 25.0)
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)
N_SAMPLE_PTS = 41

#: ``MIN_OVERLAPS[overlap_set][metric][class]``: overlap set 0 = strict, 1 = loose; metric order
#: :data:`METRICS`; classes ``Car, Pedestrian, Cyclist, Van, Person_sitting`` (KITTI's table).
MIN_OVERLAPS = np.array(
    [
        [[0.7, 0.5, 0.5, 0.7, 0.5], [0.7, 0.5, 0.5, 0.7, 0.5], [0.7, 0.5, 0.5, 0.7, 0.5]],
        [[0.7, 0.5, 0.5, 0.7, 0.5], [0.5, 0.25, 0.25, 0.5, 0.25], [0.5, 0.25, 0.25, 0.5, 0.25]],
    ]
)
_OVERLAP_CLASS_INDEX = {"car": 0, "pedestrian": 1, "cyclist": 2, "van": 3, "person_sitting": 4}
#: ground-truth classes that count as "ignored" (not false negatives) for an evaluated class
_NEIGHBOURS = {"car": "van", "pedestrian": "person_sitting"}

_FIELDS = ("name", "truncated", "occluded", "alpha", "bbox", "dimensions", "location", "rotation_y")


def empty_annotation(with_score: bool = False) -> dict[str, np.ndarray]:
    """An annotation dict with no boxes."""
    out = {
        "name": np.zeros(0, dtype=object),
        "truncated": np.zeros(0),
        "occluded": np.zeros(0, dtype=np.int64),
        "alpha": np.zeros(0),
        "bbox": np.zeros((0, 4)),
        "dimensions": np.zeros((0, 3)),
        "location": np.zeros((0, 3)),
        "rotation_y": np.zeros(0),
    }
    if with_score:
        out["score"] = np.zeros(0)
    return out


def annotations_from_boxes(boxes: Sequence[Any], *, with_score: bool = False) -> dict[str, np.ndarray]:
    """Annotation dict of one frame from :class:`~curate.sources.base.Box3D` objects.

    KITTI label files store dimensions as ``h, w, l``; the dict uses ``l, h, w`` like mmdet3d.
    With ``with_score`` the boxes' ``score`` attributes (``None`` -> 0) become the ``score`` array.
    """
    out = empty_annotation(with_score)
    if not boxes:
        return out
    out["name"] = np.array([b.type for b in boxes], dtype=object)
    out["truncated"] = np.array([float(b.truncated) for b in boxes])
    out["occluded"] = np.array([int(b.occluded) for b in boxes], dtype=np.int64)
    out["alpha"] = np.array([float(b.alpha) for b in boxes])
    out["bbox"] = np.array([list(b.bbox) for b in boxes], dtype=np.float64).reshape(-1, 4)
    hwl = np.array([list(b.dimensions) for b in boxes], dtype=np.float64).reshape(-1, 3)
    out["dimensions"] = hwl[:, [2, 0, 1]]
    out["location"] = np.array([list(b.location) for b in boxes], dtype=np.float64).reshape(-1, 3)
    out["rotation_y"] = np.array([float(b.rotation_y) for b in boxes])
    if with_score:
        out["score"] = np.array([0.0 if b.score is None else float(b.score) for b in boxes])
    return out


def validate_annotation(anno: Mapping[str, Any], where: str, *, with_score: bool) -> dict[str, np.ndarray]:
    """Check one annotation dict and return it with numpy arrays of consistent lengths."""
    need = _FIELDS + (("score",) if with_score else ())
    missing = [k for k in need if k not in anno]
    if missing:
        raise InvalidInputError(
            f"{where}: annotation lacks {', '.join(missing)}; build it with "
            "curate.evaluation.annotations_from_boxes"
        )
    n = len(anno["name"])
    out: dict[str, np.ndarray] = {"name": np.asarray([str(v) for v in anno["name"]], dtype=object)}
    shapes = {"bbox": 4, "dimensions": 3, "location": 3}
    for k in need[1:]:
        arr = np.asarray(anno[k], dtype=np.float64)
        if k in shapes:
            if arr.size == 0:
                arr = arr.reshape(0, shapes[k])
            if arr.shape != (n, shapes[k]):
                raise InvalidInputError(f"{where}: {k} has shape {arr.shape}, expected ({n}, {shapes[k]})")
        elif arr.shape != (n,):
            raise InvalidInputError(f"{where}: {k} has shape {arr.shape}, expected ({n},)")
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"{where}: {k} contains NaN or infinite values")
        out[k] = arr
    return out


def get_thresholds(scores: np.ndarray, num_gt: int, num_sample_pts: int = N_SAMPLE_PTS) -> np.ndarray:
    """Score thresholds that reach recall ``0, 1/(pts-1), ..., 1`` (KITTI's ``get_thresholds``).

    ``scores`` are the scores of the true-positive matches; ``num_gt`` the number of
    non-ignored ground-truth boxes.
    """
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    current_recall = 0.0
    out: list[float] = []
    n = len(s)
    for i, score in enumerate(s):
        l_recall = (i + 1) / num_gt
        r_recall = (i + 2) / num_gt if i < n - 1 else l_recall
        if (r_recall - current_recall) < (current_recall - l_recall) and i < n - 1:
            continue
        out.append(float(score))
        current_recall += 1 / (num_sample_pts - 1.0)
    return np.asarray(out, dtype=np.float64)


@dataclass
class KittiResult:
    """AP of one evaluation.

    Attributes
    ----------
    classes : list of str
        Evaluated classes (rows of the arrays).
    metrics : list of str
        Evaluated metrics among ``bbox``, ``bev``, ``3d``.
    ap40, ap11 : dict
        ``metric -> (n_classes, 3 difficulties, 2 overlap sets)`` arrays in percent; overlap set
        0 is strict (0.7 / 0.5 / 0.5), 1 loose.
    precision : dict
        ``metric -> (n_classes, 3, 2, 41)`` interpolated precision at the sampled recalls.
    num_gt : dict
        ``(class, difficulty) -> number of non-ignored ground-truth boxes``.
    """

    classes: list[str]
    metrics: list[str]
    ap40: dict[str, np.ndarray] = field(default_factory=dict)
    ap11: dict[str, np.ndarray] = field(default_factory=dict)
    precision: dict[str, np.ndarray] = field(default_factory=dict)
    num_gt: dict[tuple[str, str], int] = field(default_factory=dict)

    def ap(
        self, metric: str = "3d", cls: str = "Car", difficulty: str = "moderate", *,
        strict: bool = True, points: int = 40,
    ) -> float:
        """One AP value in percent."""
        if metric not in self.ap40:
            raise InvalidInputError(f"metric {metric!r} was not evaluated (have {self.metrics})")
        if cls not in self.classes:
            raise InvalidInputError(f"class {cls!r} was not evaluated (have {self.classes})")
        if difficulty not in DIFFICULTIES:
            raise InvalidInputError(f"difficulty must be one of {DIFFICULTIES}; got {difficulty!r}")
        table = self.ap40 if points == 40 else self.ap11
        return float(table[metric][self.classes.index(cls), DIFFICULTIES.index(difficulty), 0 if strict else 1])

    def mean_ap(self, metric: str = "3d", difficulty: str = "moderate", *, strict: bool = True) -> float:
        """Mean over the evaluated classes of the AP40 (the loop's "mAP")."""
        return float(np.mean([self.ap(metric, c, difficulty, strict=strict) for c in self.classes]))

    def to_dict(self) -> dict[str, float]:
        """Flat ``KITTI/<Class>_<3D|BEV|2D>_AP40_<difficulty>_<strict|loose>`` keys (as mmdet3d),
        plus ``KITTI/Overall_<metric>_AP40_<difficulty>`` (mean over classes, strict)."""
        out: dict[str, float] = {}
        for metric in self.metrics:
            key = _METRIC_KEY[metric]
            for points, table in (("AP40", self.ap40), ("AP11", self.ap11)):
                arr = table[metric]
                for c, cls in enumerate(self.classes):
                    for d, diff in enumerate(DIFFICULTIES):
                        for o, tag in enumerate(("strict", "loose")):
                            out[f"KITTI/{cls}_{key}_{points}_{diff}_{tag}"] = float(arr[c, d, o])
                for d, diff in enumerate(DIFFICULTIES):
                    out[f"KITTI/Overall_{key}_{points}_{diff}"] = float(arr[:, d, 0].mean())
        return out

    def table(self) -> str:
        """A plain-text AP40 table (strict), one row per class and metric."""
        lines = [f"{'class':<12}{'metric':<7}" + "".join(f"{d:>10}" for d in DIFFICULTIES)]
        for c, cls in enumerate(self.classes):
            for metric in self.metrics:
                vals = self.ap40[metric][c, :, 0]
                lines.append(f"{cls:<12}{metric:<7}" + "".join(f"{v:>10.2f}" for v in vals))
        return "\n".join(lines)


# --------------------------------------------------------------------------- data preparation


@dataclass
class _Frames:
    """Flat arrays over all frames (``*_frame``: frame index of each box)."""

    gt: dict[str, np.ndarray]
    dt: dict[str, np.ndarray]
    gt_frame: np.ndarray
    dt_frame: np.ndarray
    gt_offset: np.ndarray  # first gt of each frame in the flat arrays
    dt_offset: np.ndarray
    n_frames: int


def _concat(annos: Sequence[dict[str, np.ndarray]], with_score: bool) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    keys = _FIELDS + (("score",) if with_score else ())
    counts = np.array([len(a["name"]) for a in annos], dtype=np.int64)
    out = {}
    for k in keys:
        parts = [a[k] for a in annos]
        out[k] = np.concatenate(parts, axis=0) if parts else empty_annotation(with_score)[k]
    frame = np.repeat(np.arange(len(annos)), counts)
    offset = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(annos) else np.zeros(0, np.int64)
    return out, frame, offset


def _prepare(gt_annos: Sequence[Mapping[str, Any]], dt_annos: Sequence[Mapping[str, Any]]) -> _Frames:
    if len(gt_annos) != len(dt_annos):
        raise InvalidInputError(
            f"kitti_eval: {len(gt_annos)} ground-truth frames but {len(dt_annos)} prediction "
            "frames; pass one (possibly empty) prediction dict per ground-truth frame, same order"
        )
    if not gt_annos:
        raise InvalidInputError("kitti_eval: no frames to evaluate")
    gts = [validate_annotation(a, f"ground truth of frame {i}", with_score=False) for i, a in enumerate(gt_annos)]
    dts = [validate_annotation(a, f"predictions of frame {i}", with_score=True) for i, a in enumerate(dt_annos)]
    gt, gt_frame, gt_off = _concat(gts, False)
    dt, dt_frame, dt_off = _concat(dts, True)
    return _Frames(gt, dt, gt_frame, dt_frame, gt_off, dt_off, len(gts))


def _boxes(a: dict[str, np.ndarray], metric: str) -> np.ndarray:
    if metric == "bbox":
        return a["bbox"]
    if metric == "bev":
        return np.concatenate(
            [a["location"][:, [0, 2]], a["dimensions"][:, [0, 2]], a["rotation_y"][:, None]], axis=1
        )
    return np.concatenate([a["location"], a["dimensions"], a["rotation_y"][:, None]], axis=1)


def _ignore_flags(
    fr: _Frames, cls: str, difficulty: int, height_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``clean_data`` vectorised: ignored_gt, ignored_dt in {-1, 0, 1}, dontcare mask, #valid gt."""
    cur = cls.lower()
    min_height = MIN_HEIGHT[difficulty] * height_scale
    gname = np.array([n.lower() for n in fr.gt["name"]], dtype=object)
    same = gname == cur
    neighbour = gname == _NEIGHBOURS.get(cur, "\0")
    height = fr.gt["bbox"][:, 3] - fr.gt["bbox"][:, 1]
    ignore = (
        (fr.gt["occluded"] > MAX_OCCLUSION[difficulty])
        | (fr.gt["truncated"] > MAX_TRUNCATION[difficulty])
        | (height <= min_height)
    )
    ig_gt = np.full(len(gname), -1, dtype=np.int8)
    ig_gt[neighbour | (same & ignore)] = 1
    ig_gt[same & ~ignore] = 0
    dontcare = np.array([n == "DontCare" for n in fr.gt["name"]], dtype=bool)
    dname = np.array([n.lower() for n in fr.dt["name"]], dtype=object)
    dheight = np.abs(fr.dt["bbox"][:, 3] - fr.dt["bbox"][:, 1])
    ig_dt = np.where(dheight < min_height, 1, np.where(dname == cur, 0, -1)).astype(np.int8)
    return ig_gt, ig_dt, dontcare, int((ig_gt == 0).sum())


def _pad(frame: np.ndarray, keep: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Padded ``(n_frames, K)`` table of flat indices (``-1`` padding), frame order kept."""
    idx = np.flatnonzero(keep)
    f = frame[idx]
    counts = np.bincount(f, minlength=n_frames)
    width = int(counts.max()) if counts.size and idx.size else 0
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(idx.size) - starts[f]
    table = np.full((n_frames, width), -1, dtype=np.int64)
    table[f, slot] = idx
    return table, counts


class _Overlaps:
    """Per-frame detection x ground-truth overlaps for one metric, stored flat."""

    def __init__(self, fr: _Frames, metric: str) -> None:
        n_gt = np.bincount(fr.gt_frame, minlength=fr.n_frames)
        n_dt = np.bincount(fr.dt_frame, minlength=fr.n_frames)
        pairs = n_gt * n_dt
        self.offset = np.concatenate([[0], np.cumsum(pairs)[:-1]]).astype(np.int64)
        self.n_gt = n_gt
        total = int(pairs.sum())
        # pair p of frame f is (det j, gt i) with p - offset[f] = j * n_gt[f] + i
        pf = np.repeat(np.arange(fr.n_frames), pairs)
        local = np.arange(total) - self.offset[pf]
        ng = np.maximum(n_gt[pf], 1)
        dj = fr.dt_offset[pf] + local // ng
        gi = fr.gt_offset[pf] + local % ng
        self.values = np.zeros(total, dtype=np.float64)
        if total:
            self.values = paired_iou(_boxes(fr.dt, metric)[dj], _boxes(fr.gt, metric)[gi], metric)
        self.fr = fr

    def gather(self, det_table: np.ndarray, gt_table: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """``(F, D, G)`` overlaps of padded detection / ground-truth index tables of ``frames``."""
        fr = self.fr
        f = np.asarray(frames)[:, None, None]
        j = det_table[:, :, None] - fr.dt_offset[f]
        i = gt_table[:, None, :] - fr.gt_offset[f]
        ok = (det_table[:, :, None] >= 0) & (gt_table[:, None, :] >= 0)
        flat = np.where(ok, self.offset[f] + j * self.n_gt[f] + i, 0)
        out = np.zeros(ok.shape, dtype=np.float64)
        if self.values.size:
            out = np.where(ok, self.values[flat], 0.0)
        return out


def _image_overlap_det_area(det: np.ndarray, dc: np.ndarray) -> np.ndarray:
    """``image_box_overlap(det, dc, criterion=0)``: intersection over the detection's area."""
    iw = np.minimum(det[..., :, None, 2], dc[..., None, :, 2]) - np.maximum(det[..., :, None, 0], dc[..., None, :, 0])
    ih = np.minimum(det[..., :, None, 3], dc[..., None, :, 3]) - np.maximum(det[..., :, None, 1], dc[..., None, :, 1])
    area = ((det[..., 2] - det[..., 0]) * (det[..., 3] - det[..., 1]))[..., :, None]
    hit = (iw > 0) & (ih > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hit, iw * ih / np.where(hit, area, 1.0), 0.0)


def _match(
    ov: np.ndarray,
    gt_ok: np.ndarray,
    ig_gt: np.ndarray,
    ig_dt: np.ndarray,
    det_ok: np.ndarray,
    ignored_thr: np.ndarray,
    score: np.ndarray,
    min_overlap: float,
    compute_fp: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``compute_statistics_jit`` vectorised over thresholds (axis 0) and frames (axis 1).

    Returns per threshold and frame: ``tp``, ``fn``, the ``assigned`` detection mask and, for the
    first pass, the scores of the true-positive matches (NaN elsewhere, shape ``(T, F, G)``).
    """
    n_t = ignored_thr.shape[0]
    n_f, n_d, n_g = ov.shape
    assigned = np.zeros((n_t, n_f, n_d), dtype=bool)
    tp = np.zeros((n_t, n_f), dtype=np.int64)
    fn = np.zeros((n_t, n_f), dtype=np.int64)
    tp_scores = np.full((n_t, n_f, n_g), np.nan)
    frames = np.arange(n_f)[None, :]
    if n_d == 0:  # no detection of this class in any frame: every valid ground truth is missed
        fn += ((gt_ok & (ig_gt == 0)).sum(axis=1))[None, :]
        return tp, fn, assigned, tp_scores
    live = det_ok[None] & ~ignored_thr  # (T, F, D)
    for i in range(n_g):
        ok_i = gt_ok[:, i]  # (F,)
        if not ok_i.any():
            continue
        cand = live & ~assigned & (ov[None, :, :, i] > min_overlap)
        if compute_fp:
            c0 = cand & (ig_dt == 0)[None]
            c1 = cand & (ig_dt == 1)[None]
            has0 = c0.any(axis=2)
            has1 = c1.any(axis=2)
            j0 = np.argmax(np.where(c0, ov[None, :, :, i], -np.inf), axis=2)
            j1 = np.argmax(c1, axis=2)
            det = np.where(has0, j0, j1)
            found = has0 | has1
        else:
            found = cand.any(axis=2)
            det = np.argmax(np.where(cand, score[None], -np.inf), axis=2)
        gi = ig_gt[:, i][None, :]  # (1, F)
        det_ig = np.take_along_axis(np.broadcast_to(ig_dt[None], cand.shape), det[..., None], axis=2)[..., 0]
        valid_gt = ok_i[None, :]
        is_tp = valid_gt & found & (gi == 0) & (det_ig == 0)
        fn += valid_gt & ~found & (gi == 0)
        tp += is_tp
        t_idx, f_idx = np.nonzero(valid_gt & found)
        assigned[t_idx, f_idx, det[t_idx, f_idx]] = True
        if not compute_fp:
            tp_scores[..., i] = np.where(is_tp, score[frames[0], det[0]][None], np.nan)
    return tp, fn, assigned, tp_scores


def _eval_class_difficulty(
    fr: _Frames, overlaps: _Overlaps, metric: str, cls: str, difficulty: int,
    min_overlaps: Sequence[float], height_scale: float = 1.0,
) -> tuple[np.ndarray, int]:
    """Interpolated precision ``(len(min_overlaps), 41)`` and #valid gt of one class/difficulty."""
    ig_gt_flat, ig_dt_flat, dontcare, num_valid = _ignore_flags(fr, cls, difficulty, height_scale)
    gt_table, _ = _pad(fr.gt_frame, ig_gt_flat != -1, fr.n_frames)
    dt_table, _ = _pad(fr.dt_frame, ig_dt_flat != -1, fr.n_frames)
    # only frames with a relevant detection or ground-truth box matter
    used = (gt_table >= 0).any(axis=1) | (dt_table >= 0).any(axis=1)
    frames = np.flatnonzero(used)
    gt_table = gt_table[frames]
    dt_table = dt_table[frames]
    out = np.zeros((len(min_overlaps), N_SAMPLE_PTS))
    if frames.size == 0:
        return out, num_valid
    gt_ok = gt_table >= 0
    det_ok = dt_table >= 0
    ig_gt = np.where(gt_ok, ig_gt_flat[np.maximum(gt_table, 0)], -1)
    ig_dt = np.where(det_ok, ig_dt_flat[np.maximum(dt_table, 0)], -1)
    score = np.where(det_ok, fr.dt["score"][np.maximum(dt_table, 0)], -np.inf)
    ov = overlaps.gather(dt_table, gt_table, frames)
    dc_overlap = None
    if metric == "bbox":
        dc_table, _ = _pad(fr.gt_frame, dontcare, fr.n_frames)
        dc_table = dc_table[frames]
        if dc_table.shape[1]:
            det_boxes = fr.dt["bbox"][np.maximum(dt_table, 0)]
            dc_boxes = fr.gt["bbox"][np.maximum(dc_table, 0)]
            dc_overlap = np.where(
                (dc_table >= 0)[:, None, :], _image_overlap_det_area(det_boxes, dc_boxes), 0.0
            )
    for k, min_ov in enumerate(min_overlaps):
        no_thr = np.zeros((1,) + det_ok.shape, dtype=bool)
        _, _, _, tp_scores = _match(ov, gt_ok, ig_gt, ig_dt, det_ok, no_thr, score, min_ov, False)
        matched = tp_scores[~np.isnan(tp_scores)]
        thresholds = get_thresholds(matched, num_valid)[:N_SAMPLE_PTS]
        if thresholds.size == 0:
            continue
        ignored_thr = score[None] < thresholds[:, None, None]
        tp, fn, assigned, _ = _match(ov, gt_ok, ig_gt, ig_dt, det_ok, ignored_thr, score, min_ov, True)
        eligible = det_ok[None] & ~assigned & (ig_dt == 0)[None] & ~ignored_thr
        if dc_overlap is not None:
            eligible &= ~(dc_overlap > min_ov).any(axis=2)[None]
        fp = eligible.sum(axis=2)
        tp_t = tp.sum(axis=1).astype(np.float64)
        fp_t = fp.sum(axis=1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            prec = tp_t / (tp_t + fp_t)
        n_thr = thresholds.size
        out[k, :n_thr] = prec
        # interpolate: precision[i] = max(precision[i:]) over all 41 slots (zeros beyond)
        for i in range(n_thr):
            out[k, i] = np.max(out[k, i:])
    return out, num_valid


def kitti_eval(
    gt_annos: Sequence[Mapping[str, Any]],
    dt_annos: Sequence[Mapping[str, Any]],
    classes: Sequence[str] = KITTI_CLASSES,
    metrics: Sequence[str] = METRICS,
    *,
    min_height_scale: float = 1.0,
) -> KittiResult:
    """KITTI AP of predictions against ground truth.

    Parameters
    ----------
    gt_annos : sequence of dict
        Ground truth, one annotation dict per frame (``DontCare`` boxes included).
    dt_annos : sequence of dict
        Predictions, one dict per frame in the same order, with ``score``.
    classes : sequence of str
        Classes to evaluate, among ``Car``, ``Pedestrian``, ``Cyclist``, ``Van``,
        ``Person_sitting``.
    metrics : sequence of str
        Among ``bbox`` (2-D image boxes), ``bev`` and ``3d``.
    min_height_scale : float
        Factor on the 2-D height thresholds of the difficulty levels (40 / 25 / 25 px) for images
        of another size than KITTI's 375 px height (1.0 = the official protocol).

    Returns
    -------
    KittiResult

    Raises
    ------
    InvalidInputError
        Mismatched frame counts, missing fields, wrong shapes, NaNs, unknown class or metric.
    """
    classes = [str(c) for c in classes]
    bad = [c for c in classes if c.lower() not in _OVERLAP_CLASS_INDEX]
    if bad or not classes:
        raise InvalidInputError(
            f"kitti_eval: cannot evaluate classes {bad or classes}; use some of Car, Pedestrian, "
            "Cyclist, Van, Person_sitting"
        )
    metrics = [str(m) for m in metrics]
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise InvalidInputError(f"kitti_eval: unknown metrics {bad or metrics}; use some of {METRICS}")
    if not (np.isfinite(min_height_scale) and min_height_scale > 0):
        raise InvalidInputError(f"kitti_eval: min_height_scale must be > 0; got {min_height_scale!r}")
    fr = _prepare(gt_annos, dt_annos)
    result = KittiResult(classes=classes, metrics=metrics)
    for metric in metrics:
        m_idx = METRICS.index(metric)
        overlaps = _Overlaps(fr, metric)
        prec = np.zeros((len(classes), len(DIFFICULTIES), MIN_OVERLAPS.shape[0], N_SAMPLE_PTS))
        for c, cls in enumerate(classes):
            mins = MIN_OVERLAPS[:, m_idx, _OVERLAP_CLASS_INDEX[cls.lower()]]
            for d in range(len(DIFFICULTIES)):
                prec[c, d], n_valid = _eval_class_difficulty(fr, overlaps, metric, cls, d, mins, min_height_scale)
                result.num_gt[(cls, DIFFICULTIES[d])] = n_valid
        result.precision[metric] = prec
        result.ap40[metric] = prec[..., 1:].sum(axis=-1) / 40 * 100
        result.ap11[metric] = prec[..., 0::4].sum(axis=-1) / 11 * 100
    return result
