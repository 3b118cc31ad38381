"""Rotated-box overlaps on CPU (numpy): bird's-eye-view IoU and KITTI camera-frame 3-D IoU.

The conventions are those of the KITTI evaluation (and of mmdet3d's ``kitti_utils``):

* BEV boxes are ``(x, z, l, w, ry)`` rows in the camera frame's ground plane: centre, length
  along the heading, width, yaw. Corner ``k`` of a box is the centre plus
  ``(c*dx + s*dz, -s*dx + c*dz)`` with ``c, s = cos ry, sin ry`` and ``(dx, dz)`` the corners of the
  axis-aligned ``l x w`` rectangle, so the camera yaw ``ry`` turns the box clockwise in the
  ``(x, z)`` plane, as KITTI's ``rotation_y`` does.
* 3-D boxes are ``(x, y, z, l, h, w, ry)`` camera-frame rows with ``(x, y, z)`` the **bottom**
  centre; the camera y axis points down, so a box spans ``[y - h, y]`` vertically.

The polygon intersection of two rectangles is computed exactly with Sutherland-Hodgman clipping,
vectorised over all pairs at once (float64).

Complexity: O(M*N) time and memory for ``M x N`` pairs (one frame's detections against its ground
truth; never a dataset-wide square matrix).
"""

from __future__ import annotations

import logging

import numpy as np

from curate.errors import InvalidInputError

__all__ = [
    "bev_corners",
    "polygon_area",
    "convex_intersection_area",
    "rotated_iou_bev",
    "iou3d_camera",
    "paired_bev_intersection",
    "paired_iou",
]

logger = logging.getLogger(__name__)

_MAX_VERTS = 8  # two convex quadrilaterals intersect in at most 8 vertices


def _as_boxes(boxes: np.ndarray, width: int, what: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, width)
    if arr.ndim != 2 or arr.shape[1] != width:
        raise InvalidInputError(
            f"{what}: expected an (N, {width}) array of boxes, got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise InvalidInputError(f"{what}: boxes contain NaN or infinite values")
    return arr


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """Corners of BEV boxes ``(x, z, l, w, ry)`` as an ``(N, 4, 2)`` array, counter-clockwise.

    Counter-clockwise means positive signed (shoelace) area in the ``(x, z)`` coordinates.
    """
    b = _as_boxes(boxes, 5, "bev_corners")
    half_l = b[:, 2:3] / 2.0
    half_w = b[:, 3:4] / 2.0
    dx = np.concatenate([-half_l, -half_l, half_l, half_l], axis=1)
    dz = np.concatenate([-half_w, half_w, half_w, -half_w], axis=1)
    c = np.cos(b[:, 4:5])
    s = np.sin(b[:, 4:5])
    x = c * dx + s * dz + b[:, 0:1]
    z = -s * dx + c * dz + b[:, 1:2]
    corners = np.stack([x, z], axis=-1)
    # that corner order is clockwise for positive sizes (rotation keeps orientation): reverse it
    return corners[:, ::-1, :].copy()


def polygon_area(poly: np.ndarray, count: np.ndarray | None = None) -> np.ndarray:
    """Signed shoelace area of ``(P, K, 2)`` polygons whose first ``count`` vertices are valid."""
    p = np.asarray(poly, dtype=np.float64)
    n_pts = p.shape[1]
    if count is None:
        count = np.full(p.shape[0], n_pts, dtype=np.int64)
    k = np.arange(n_pts)
    nxt = (k[None, :] + 1) % np.maximum(count[:, None], 1)
    q = np.take_along_axis(p, nxt[:, :, None].repeat(2, axis=2), axis=1)
    cross = p[:, :, 0] * q[:, :, 1] - p[:, :, 1] * q[:, :, 0]
    cross = np.where(k[None, :] < count[:, None], cross, 0.0)
    return 0.5 * cross.sum(axis=1)


def _clip_half_plane(
    poly: np.ndarray, count: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the part of each polygon left of the directed line ``a -> b`` (one SH step)."""
    n_poly, n_pts, _ = poly.shape
    k = np.arange(n_pts)
    valid = k[None, :] < count[:, None]
    nxt_idx = (k[None, :] + 1) % np.maximum(count[:, None], 1)
    cur = poly
    nxt = np.take_along_axis(poly, nxt_idx[:, :, None].repeat(2, axis=2), axis=1)
    edge = (b - a)[:, None, :]
    d_cur = edge[..., 0] * (cur[..., 1] - a[:, None, 1]) - edge[..., 1] * (cur[..., 0] - a[:, None, 0])
    d_nxt = edge[..., 0] * (nxt[..., 1] - a[:, None, 1]) - edge[..., 1] * (nxt[..., 0] - a[:, None, 0])
    in_cur = d_cur >= 0
    in_nxt = d_nxt >= 0
    crossing = valid & (in_cur != in_nxt)
    denom = np.where(crossing, d_cur - d_nxt, 1.0)
    t = np.where(crossing, d_cur / denom, 0.0)
    inter = cur + t[..., None] * (nxt - cur)
    # per input vertex: slot 0 = intersection (if the edge crosses), slot 1 = next (if inside)
    pts = np.stack([inter, nxt], axis=2).reshape(n_poly, 2 * n_pts, 2)
    keep = np.stack([crossing, valid & in_nxt], axis=2).reshape(n_poly, 2 * n_pts)
    order = np.argsort(~keep, axis=1, kind="stable")
    pts = np.take_along_axis(pts, order[:, :, None].repeat(2, axis=2), axis=1)
    new_count = keep.sum(axis=1)
    width = min(2 * n_pts, _MAX_VERTS)
    return pts[:, :width], new_count


def convex_intersection_area(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Area of the intersection of paired convex quadrilaterals.

    Parameters
    ----------
    subject, clip : numpy.ndarray
        ``(P, 4, 2)`` counter-clockwise polygons; row ``i`` of one is intersected with row ``i``
        of the other.

    Returns
    -------
    numpy.ndarray
        ``(P,)`` non-negative areas.
    """
    poly = np.asarray(subject, dtype=np.float64)
    clip = np.asarray(clip, dtype=np.float64)
    count = np.full(poly.shape[0], poly.shape[1], dtype=np.int64)
    for e in range(clip.shape[1]):
        a = clip[:, e]
        b = clip[:, (e + 1) % clip.shape[1]]
        poly, count = _clip_half_plane(poly, count, a, b)
    area = polygon_area(poly, count)
    return np.where(count >= 3, np.abs(area), 0.0)


def _pairwise_bev_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    m, n = a.shape[0], b.shape[0]
    if m == 0 or n == 0:
        return np.zeros((m, n), dtype=np.float64)
    ca = bev_corners(a)
    cb = bev_corners(b)
    ii, jj = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    # only pairs whose circumscribed circles meet can overlap
    ra = 0.5 * np.hypot(a[:, 2], a[:, 3])
    rb = 0.5 * np.hypot(b[:, 2], b[:, 3])
    dist = np.hypot(a[ii, 0] - b[jj, 0], a[ii, 1] - b[jj, 1])
    near = dist <= ra[ii] + rb[jj]
    out = np.zeros(m * n, dtype=np.float64)
    if near.any():
        out[near] = convex_intersection_area(ca[ii[near]], cb[jj[near]])
    return out.reshape(m, n)


def _normalise(inter: np.ndarray, area_a: np.ndarray, area_b: np.ndarray, criterion: int) -> np.ndarray:
    if criterion == -1:
        union = area_a[:, None] + area_b[None, :] - inter
    elif criterion == 0:
        union = np.broadcast_to(area_a[:, None], inter.shape)
    elif criterion == 1:
        union = np.broadcast_to(area_b[None, :], inter.shape)
    elif criterion == 2:
        return inter
    else:
        raise InvalidInputError(f"criterion must be -1 (IoU), 0, 1 or 2; got {criterion!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out


def rotated_iou_bev(boxes: np.ndarray, qboxes: np.ndarray, criterion: int = -1) -> np.ndarray:
    """Pairwise overlap of rotated BEV boxes ``(x, z, l, w, ry)``.

    Parameters
    ----------
    boxes : numpy.ndarray
        ``(M, 5)`` boxes.
    qboxes : numpy.ndarray
        ``(N, 5)`` boxes.
    criterion : int
        ``-1``: intersection over union; ``0``: over the area of ``boxes``; ``1``: over the area
        of ``qboxes``; ``2``: the raw intersection area (mmdet3d's ``rotate_iou_gpu_eval``
        criteria).

    Returns
    -------
    numpy.ndarray
        ``(M, N)`` float64.
    """
    a = _as_boxes(boxes, 5, "rotated_iou_bev(boxes)")
    b = _as_boxes(qboxes, 5, "rotated_iou_bev(qboxes)")
    inter = _pairwise_bev_intersection(a, b)
    return _normalise(inter, a[:, 2] * a[:, 3], b[:, 2] * b[:, 3], criterion)


def iou3d_camera(boxes: np.ndarray, qboxes: np.ndarray, criterion: int = -1) -> np.ndarray:
    """Pairwise 3-D overlap of KITTI camera-frame boxes ``(x, y, z, l, h, w, ry)``.

    ``(x, y, z)`` is the bottom centre and the camera y axis points down, so a box occupies
    ``[y - h, y]``. The overlap is the BEV intersection (in the ``(x, z)`` plane) times the
    vertical overlap. ``criterion`` as in :func:`rotated_iou_bev`, by volume.

    Returns
    -------
    numpy.ndarray
        ``(M, N)`` float64.
    """
    a = _as_boxes(boxes, 7, "iou3d_camera(boxes)")
    b = _as_boxes(qboxes, 7, "iou3d_camera(qboxes)")
    inter_bev = _pairwise_bev_intersection(a[:, [0, 2, 3, 5, 6]], b[:, [0, 2, 3, 5, 6]])
    top = np.minimum(a[:, None, 1], b[None, :, 1])
    bottom = np.maximum(a[:, None, 1] - a[:, None, 4], b[None, :, 1] - b[None, :, 4])
    ih = np.clip(top - bottom, 0.0, None)
    inter = np.where(inter_bev > 0, inter_bev * ih, 0.0)
    vol_a = a[:, 3] * a[:, 4] * a[:, 5]
    vol_b = b[:, 3] * b[:, 4] * b[:, 5]
    return _normalise(inter, vol_a, vol_b, criterion)


def paired_bev_intersection(boxes: np.ndarray, qboxes: np.ndarray) -> np.ndarray:
    """Intersection areas of aligned pairs of BEV boxes ``(x, z, l, w, ry)`` (row i with row i).

    O(P) time and memory for ``P`` pairs; used to evaluate many frames in one vectorised call.
    """
    a = _as_boxes(boxes, 5, "paired_bev_intersection(boxes)")
    b = _as_boxes(qboxes, 5, "paired_bev_intersection(qboxes)")
    if a.shape[0] != b.shape[0]:
        raise InvalidInputError(
            f"paired_bev_intersection: {a.shape[0]} boxes but {b.shape[0]} query boxes"
        )
    out = np.zeros(a.shape[0], dtype=np.float64)
    if a.shape[0] == 0:
        return out
    ra = 0.5 * np.hypot(a[:, 2], a[:, 3])
    rb = 0.5 * np.hypot(b[:, 2], b[:, 3])
    near = np.hypot(a[:, 0] - b[:, 0], a[:, 1] - b[:, 1]) <= ra + rb
    if near.any():
        out[near] = convex_intersection_area(bev_corners(a[near]), bev_corners(b[near]))
    return out


def paired_iou(boxes: np.ndarray, qboxes: np.ndarray, kind: str) -> np.ndarray:
    """IoU of aligned pairs: ``kind`` is ``"bbox"`` (image ``x1, y1, x2, y2``, KITTI's no-+1
    convention), ``"bev"`` (``x, z, l, w, ry``) or ``"3d"`` (``x, y, z, l, h, w, ry``)."""
    if kind == "bbox":
        a = _as_boxes(boxes, 4, "paired_iou(bbox)")
        b = _as_boxes(qboxes, 4, "paired_iou(bbox)")
        iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
        ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
        hit = (iw > 0) & (ih > 0)
        inter = np.where(hit, iw * ih, 0.0)
        union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(hit, inter / np.where(hit, union, 1.0), 0.0)
    if kind == "bev":
        a = _as_boxes(boxes, 5, "paired_iou(bev)")
        b = _as_boxes(qboxes, 5, "paired_iou(bev)")
        inter = paired_bev_intersection(a, b)
        union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    elif kind == "3d":
        a = _as_boxes(boxes, 7, "paired_iou(3d)")
        b = _as_boxes(qboxes, 7, "paired_iou(3d)")
        inter_bev = paired_bev_intersection(a[:, [0, 2, 3, 5, 6]], b[:, [0, 2, 3, 5, 6]])
        ih = np.minimum(a[:, 1], b[:, 1]) - np.maximum(a[:, 1] - a[:, 4], b[:, 1] - b[:, 4])
        inter = np.where((inter_bev > 0) & (ih > 0), inter_bev * np.clip(ih, 0.0, None), 0.0)
        union = a[:, 3] * a[:, 4] * a[:, 5] + b[:, 3] * b[:, 4] * b[:, 5] - inter
    else:
        raise InvalidInputError(f"paired_iou: kind must be 'bbox', 'bev' or '3d'; got {kind!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / np.where(union > 0, union, 1.0), 0.0)
