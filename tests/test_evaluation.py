"""KITTI AP and rotated IoU: hand-made boxes with known answers, a brute-force reference, and
mmdet3d's own KITTI evaluation when the mm3d extra is installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curate.errors import InvalidInputError
from curate.evaluation import annotation_cost, empty_annotation, iou3d_camera, kitti_eval, rotated_iou_bev
from curate.evaluation._reference import reference_kitti_ap40
from curate.evaluation.rotated_iou import bev_corners, polygon_area

NAMES = ["Car", "Pedestrian", "Cyclist", "Van", "Person_sitting", "DontCare", "Truck"]


def _anno(rows, scores=None):
    """rows: (name, bbox(4), dims lhw, loc, ry, occluded, truncated)."""
    a = empty_annotation(with_score=scores is not None)
    if not rows:
        return a
    a["name"] = np.array([r[0] for r in rows], dtype=object)
    a["bbox"] = np.array([r[1] for r in rows], dtype=float)
    a["dimensions"] = np.array([r[2] for r in rows], dtype=float)
    a["location"] = np.array([r[3] for r in rows], dtype=float)
    a["rotation_y"] = np.array([r[4] for r in rows], dtype=float)
    a["occluded"] = np.array([r[5] if len(r) > 5 else 0 for r in rows])
    a["truncated"] = np.array([r[6] if len(r) > 6 else 0.0 for r in rows])
    a["alpha"] = np.full(len(rows), -10.0)
    if scores is not None:
        a["score"] = np.asarray(scores, dtype=float)
    return a


def random_frames(n_frames, seed, loc_jitter=0.05):
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for _ in range(n_frames):
        n = int(rng.integers(0, 8))
        names = rng.choice(NAMES, n, p=[0.4, 0.2, 0.15, 0.08, 0.05, 0.07, 0.05])
        x1 = rng.uniform(0, 1000, n)
        y1 = rng.uniform(100, 250, n)
        h = rng.choice([20, 26, 30, 45, 80], n) + rng.uniform(-1, 1, n)
        bbox = np.stack([x1, y1, x1 + rng.uniform(20, 150, n), y1 + h], 1)
        dims = np.stack([rng.uniform(0.5, 4.5, n), rng.uniform(1.4, 1.9, n), rng.uniform(0.5, 2.0, n)], 1)
        loc = np.stack([rng.uniform(-15, 15, n), rng.uniform(1.4, 1.8, n), rng.uniform(5, 50, n)], 1)
        ry = rng.uniform(-np.pi, np.pi, n)
        occ = rng.integers(0, 3, n)
        tr = rng.choice([0.0, 0.1, 0.2, 0.4, 0.7], n)
        gts.append(_anno([(names[i], bbox[i], dims[i], loc[i], ry[i], occ[i], tr[i]) for i in range(n)]))
        keep = rng.random(n) < 0.8
        rows = []
        for i in np.flatnonzero(keep):
            name = names[i] if rng.random() > 0.1 else rng.choice(NAMES[:3])
            name = "Car" if name in ("DontCare", "Truck") else name
            rows.append((name, bbox[i] + rng.normal(0, 3, 4), dims[i] + rng.normal(0, 0.05, 3),
                         loc[i] + rng.normal(0, loc_jitter, 3), ry[i] + rng.normal(0, 0.05)))
        for _ in range(int(rng.integers(0, 4))):
            cx, cy = rng.uniform(0, 900), rng.uniform(100, 250)
            rows.append((rng.choice(NAMES[:3]), [cx, cy, cx + 50, cy + rng.choice([20, 30, 50])],
                         rng.uniform(0.5, 4, 3), [rng.uniform(-15, 15), 1.6, rng.uniform(5, 50)], rng.uniform(-3, 3)))
        dts.append(_anno(rows, scores=np.round(rng.uniform(0.05, 1, len(rows)), 2)))  # ties on purpose
    return gts, dts


# ----------------------------------------------------------------------------- rotated IoU

def test_rotated_iou_known_values():
    a = np.array([[0.0, 0.0, 4.0, 2.0, 0.0]])
    b = np.array([[1.0, 0.0, 4.0, 2.0, 0.0], [0.0, 0.0, 4.0, 2.0, np.pi / 2], [10, 10, 1, 1, 0], [0, 0, 4, 2, np.pi]])
    iou = rotated_iou_bev(a, b)
    np.testing.assert_allclose(iou[0], [6 / 10, 4 / 12, 0.0, 1.0], atol=1e-12)
    # a unit square turned by 45 degrees on itself: intersection is a regular octagon
    sq = np.array([[0.0, 0.0, 1.0, 1.0, 0.0]])
    turned = np.array([[0.0, 0.0, 1.0, 1.0, np.pi / 4]])
    octagon = 2 * (math.sqrt(2) - 1)
    np.testing.assert_allclose(rotated_iou_bev(sq, turned), [[octagon / (2 - octagon)]], atol=1e-12)
    np.testing.assert_allclose(polygon_area(bev_corners(a)), [8.0])


def test_rotated_iou_matches_monte_carlo():
    rng = np.random.default_rng(1)
    a = np.column_stack([rng.uniform(-1, 1, (6, 2)), rng.uniform(0.5, 3, (6, 2)), rng.uniform(-3, 3, 6)])
    b = np.column_stack([rng.uniform(-1, 1, (5, 2)), rng.uniform(0.5, 3, (5, 2)), rng.uniform(-3, 3, 5)])
    inter = rotated_iou_bev(a, b, criterion=2)
    pts = rng.uniform(-4, 4, (200_000, 2))

    def inside(box):
        x, z, l, w, ry = box
        d = pts - (x, z)
        c, s = math.cos(ry), math.sin(ry)
        # inverse of the corner map x' = c*dx + s*dz, z' = -s*dx + c*dz
        u = c * d[:, 0] - s * d[:, 1]
        v = s * d[:, 0] + c * d[:, 1]
        return (np.abs(u) <= l / 2) & (np.abs(v) <= w / 2)

    for i in range(len(a)):
        for j in range(len(b)):
            mc = (inside(a[i]) & inside(b[j])).mean() * 64.0
            assert abs(mc - inter[i, j]) < 0.08, (i, j, mc, inter[i, j])


def test_iou3d_known_value_and_symmetry():
    a = np.array([[0.0, 2.0, 10.0, 4.0, 2.0, 2.0, 0.0]])  # spans y in [0, 2]
    b = np.array([[0.0, 3.0, 10.0, 4.0, 2.0, 2.0, 0.0]])  # spans y in [1, 3]: half overlap
    np.testing.assert_allclose(iou3d_camera(a, b), [[8 / 24]])
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(-1, 1, (7, 3)), rng.uniform(1, 3, (7, 3)), rng.uniform(-3, 3, 7)])
    np.testing.assert_allclose(iou3d_camera(x, x), iou3d_camera(x, x).T, atol=1e-12)
    np.testing.assert_allclose(np.diag(iou3d_camera(x, x)), 1.0, atol=1e-12)


def test_rotated_iou_rejects_bad_shapes():
    with pytest.raises(InvalidInputError, match="expected an"):
        rotated_iou_bev(np.zeros((3, 4)), np.zeros((2, 5)))
    with pytest.raises(InvalidInputError, match="NaN"):
        iou3d_camera(np.full((1, 7), np.nan), np.zeros((1, 7)))


# ----------------------------------------------------------------------------- KITTI AP

CAR = ("Car", [100, 100, 200, 180], [4.0, 1.5, 1.8], [0.0, 1.6, 20.0], 0.0)
N_REP = 80  # KITTI samples one threshold per 1/40 recall step: AP40 needs >= 40 ground-truth boxes


def _repeat(gt_rows, dt_rows, extra_fp=None):
    """N_REP frames of the same scene; detection k of frame f scores 0.5 + f/200 (+ 0.001 for the
    optional false positive so it ranks just above its frame's true positive)."""
    gts, dts = [], []
    for f in range(N_REP):
        s = 0.5 + f / 200
        rows = list(dt_rows) + ([extra_fp] if extra_fp else [])
        scores = [s] * len(dt_rows) + ([s + 0.001] if extra_fp else [])
        gts.append(_anno(gt_rows))
        dts.append(_anno(rows, scores))
    return gts, dts


def test_threshold_sampling_quirk_single_box():
    # one ground-truth box fills only the recall-0 slot: AP40 = 0, AP11 = 100/11 (official)
    res = kitti_eval([_anno([CAR])], [_anno([CAR], [0.9])], classes=["Car"])
    assert res.ap("3d", "Car", "moderate") == 0.0
    assert res.ap("3d", "Car", "moderate", points=11) == pytest.approx(100 / 11)


def test_perfect_detections_give_100():
    ped = ("Pedestrian", [300, 100, 330, 190], [0.8, 1.7, 0.6], [3.0, 1.6, 15.0], 0.3)
    gts, dts = _repeat([CAR, ped], [CAR, ped])
    res = kitti_eval(gts, dts, classes=["Car", "Pedestrian"])
    for metric in ("bbox", "bev", "3d"):
        for cls in ("Car", "Pedestrian"):
            assert res.ap(metric, cls, "moderate") == pytest.approx(100.0)
    assert res.mean_ap("3d") == pytest.approx(100.0)


def test_half_precision_and_half_recall_known_ap():
    # every frame: one false positive ranked just above the true positive -> precision 1/2 at
    # every threshold over recall 0..1 -> AP40 = 50
    fp = ("Car", [600, 100, 700, 180], [4.0, 1.5, 1.8], [-8.0, 1.6, 30.0], 0.0)
    gts, dts = _repeat([CAR], [CAR], extra_fp=fp)
    assert kitti_eval(gts, dts, classes=["Car"]).ap("3d", "Car", "moderate") == pytest.approx(50.0)
    # two cars per frame, one found: recall stops at 1/2 -> slots 0..20 of 40 -> AP40 = 50
    car2 = ("Car", [400, 100, 500, 180], [4.0, 1.5, 1.8], [8.0, 1.6, 20.0], 0.0)
    gts, dts = _repeat([CAR, car2], [CAR])
    assert kitti_eval(gts, dts, classes=["Car"]).ap("bev", "Car", "easy") == pytest.approx(50.0)
    # both: precision 1/2 up to recall 1/2 -> AP40 = 25
    gts, dts = _repeat([CAR, car2], [CAR], extra_fp=fp)
    assert kitti_eval(gts, dts, classes=["Car"]).ap("3d", "Car", "hard") == pytest.approx(25.0)


def test_iou_threshold_car_07():
    # a car shifted 0.6 m along its 4 m length: BEV IoU = 3.4/4.6 = 0.739 > 0.7 -> found;
    # shifted 1.0 m: 3/5 = 0.6 < 0.7 -> missed (AP 0), but passes the loose 0.5
    shifted = lambda dx: ("Car", CAR[1], CAR[2], [dx, 1.6, 20.0], 0.0)
    ok = kitti_eval(*_repeat([CAR], [shifted(0.6)]), classes=["Car"])
    bad = kitti_eval(*_repeat([CAR], [shifted(1.0)]), classes=["Car"])
    assert ok.ap("bev", "Car", "moderate") == pytest.approx(100.0)
    assert bad.ap("bev", "Car", "moderate") == pytest.approx(0.0)
    assert bad.ap("bev", "Car", "moderate", strict=False) == pytest.approx(100.0)


def test_pedestrian_threshold_05():
    ped = ("Pedestrian", [300, 100, 330, 190], [1.0, 1.7, 1.0], [3.0, 1.6, 15.0], 0.0)
    # shifted 0.3 m: BEV IoU 0.7/1.3 = 0.538 > 0.5 -> found; 0.4 m: 0.6/1.4 = 0.43 -> missed
    shifted = lambda dx: ("Pedestrian", ped[1], ped[2], [3.0 + dx, 1.6, 15.0], 0.0)
    assert kitti_eval(*_repeat([ped], [shifted(0.3)]), classes=["Pedestrian"]).ap("bev", "Pedestrian") == pytest.approx(100.0)
    assert kitti_eval(*_repeat([ped], [shifted(0.4)]), classes=["Pedestrian"]).ap("bev", "Pedestrian") == pytest.approx(0.0)


def test_difficulty_from_height_occlusion_truncation():
    small = ("Car", [100, 100, 200, 130], [4.0, 1.5, 1.8], [0.0, 1.6, 20.0], 0.0)  # 30 px: not easy
    occluded = ("Car", [400, 100, 500, 180], [4.0, 1.5, 1.8], [8.0, 1.6, 20.0], 0.0, 2)  # hard only
    truncated = ("Car", [600, 100, 700, 180], [4.0, 1.5, 1.8], [-8.0, 1.6, 20.0], 0.0, 0, 0.4)  # hard
    gts, dts = _repeat([small, occluded, truncated], [small, occluded, truncated])
    res = kitti_eval(gts, dts, classes=["Car"])
    assert res.num_gt[("Car", "easy")] == 0
    assert res.num_gt[("Car", "moderate")] == N_REP
    assert res.num_gt[("Car", "hard")] == 3 * N_REP
    assert res.ap("3d", "Car", "hard") == pytest.approx(100.0)
    assert res.ap("3d", "Car", "moderate") == pytest.approx(100.0)  # harder matches are ignored
    assert res.ap("3d", "Car", "easy") == pytest.approx(0.0)
    # quarter-size images: scaled height thresholds make the 30 px box (120 px at full size) easy
    scaled = kitti_eval(gts, dts, classes=["Car"], min_height_scale=0.25)
    assert scaled.num_gt[("Car", "easy")] == N_REP


def test_van_and_dontcare_are_ignored():
    van = ("Van", [400, 100, 500, 180], [5.0, 2.0, 2.0], [8.0, 1.6, 20.0], 0.0)
    dc = ("DontCare", [600, 100, 700, 180], [-1, -1, -1], [-1000, -1000, -1000], -10.0)
    det_on_van = ("Car", van[1], van[2], van[3], 0.0)
    det_in_dc = ("Car", [610, 110, 690, 170], [4.0, 1.5, 1.8], [-8.0, 1.6, 30.0], 0.0)
    gts, dts = _repeat([CAR, van, dc], [CAR, det_on_van], extra_fp=det_in_dc)
    res = kitti_eval(gts, dts, classes=["Car"])
    # the Van match is ignored, the DontCare region absorbs the 2-D false positive
    assert res.ap("bbox", "Car", "moderate") == pytest.approx(100.0)
    # in BEV / 3-D DontCare absorbs nothing: the detection in it is a false positive
    assert res.ap("3d", "Car", "moderate") == pytest.approx(50.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_eval_equals_bruteforce_reference(seed):
    gts, dts = random_frames(40, seed)
    res = kitti_eval(gts, dts)
    ref = reference_kitti_ap40(gts, dts)
    for metric in ("bbox", "bev", "3d"):
        np.testing.assert_array_equal(res.ap40[metric], ref[metric])
    assert res.ap40["3d"].max() > 5.0  # non-trivial numbers


def test_eval_rejects_bad_input():
    with pytest.raises(InvalidInputError, match="one \\(possibly empty\\) prediction dict"):
        kitti_eval([_anno([CAR])], [])
    with pytest.raises(InvalidInputError, match="lacks score"):
        kitti_eval([_anno([CAR])], [_anno([CAR])])
    with pytest.raises(InvalidInputError, match="cannot evaluate classes"):
        kitti_eval([_anno([CAR])], [_anno([CAR], [1.0])], classes=["Truck"])


def test_annotation_cost():
    cost = annotation_cost(10, 250, 12.5)
    assert cost.boxes_per_map_point == pytest.approx(20.0)
    assert cost.frames_per_map_point == pytest.approx(0.8)
    assert annotation_cost(10, 250, 0.0).boxes_per_map_point is None
    with pytest.raises(InvalidInputError):
        annotation_cost(-1, 0, 1.0)
