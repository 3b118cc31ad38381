"""Viz functions draw what they claim: every frame once per map panel, one polygon per box at the
calibrated position, FAISS neighbours equal to brute force, class counts equal to a direct count."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.patches import Polygon
from PIL import Image

import curate
from curate.errors import InvalidInputError, NotFoundError
from curate.sources.base import Box3D
from curate.sources.calib import read_calibration
from curate.sources.pointcloud import read_points
from curate.viz import (
    bev_render,
    class_counts,
    class_histograms,
    frame_bev,
    neighbour_gallery,
    neighbours,
    project_2d,
    to_png,
    umap_map,
)
from index._exact import exact_knn


def _points_drawn(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def _png_size(fig) -> tuple[int, int]:
    img = Image.open(io.BytesIO(to_png(fig)))
    img.load()
    return img.size


def test_pca_projection_matches_reference() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 6)) * [5, 3, 1, 1, 1, 1]
    xy = project_2d(x, method="pca")
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    ref = centred @ vt[:2].T
    np.testing.assert_allclose(np.abs(xy), np.abs(ref), atol=1e-8)
    with pytest.raises(InvalidInputError, match="N >= 3"):
        project_2d(x[:2], method="pca")
    with pytest.raises(InvalidInputError, match="unknown projection"):
        project_2d(x, method="tsne")


def test_map_panels_and_points(ws: curate.Workspace) -> None:
    picks = {
        "random": ws.select("random", 5, embedding="bev-hist", seed=0).ids,
        "kcenter": ws.select("kcenter", 7, embedding="bev-hist", seed=0).ids,
    }
    n = ws.count()
    fig = umap_map(ws, "bev-hist", color_by=["scene", "time_of_day"], highlight=picks, method="pca")
    axes = fig.get_axes()
    assert len(axes) == 4
    for ax in axes:
        assert _points_drawn(ax) == n
    scenes = set(ws.frames(columns=["scene"])["scene"].to_pylist())
    assert len([c for c in axes[0].collections if isinstance(c, PathCollection)]) == len(scenes)
    assert [len(axes[k].collections[1].get_offsets()) for k in (2, 3)] == [5, 7]
    assert _png_size(fig)[0] > 500
    sub = umap_map(ws, "bev-hist", color_by="weather", highlight={"kcenter": picks["kcenter"]},
                   method="pca", max_points=30)
    assert all(_points_drawn(ax) == 30 for ax in sub.get_axes())
    with pytest.raises(NotFoundError, match="no 'bev-hist' vector"):
        umap_map(ws, "bev-hist", highlight={"x": ["nope"]}, method="pca")


def test_umap_map_runs_umap(ws: curate.Workspace) -> None:
    """The one real UMAP fit of the suite (numba compiles for ~30 s the first time)."""
    fig = umap_map(ws, "bev-hist", color_by="scene", method="umap", seed=0)
    (ax,) = fig.get_axes()
    assert _points_drawn(ax) == ws.count()
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    assert np.isfinite(offsets).all() and offsets.std(axis=0).min() > 0


def test_bev_render_boxes_from_calibrated_labels(ws: curate.Workspace) -> None:
    row = next(r for r in ws.frames(columns=["id", "lidar_path", "calib_path", "num_gt_boxes"]).to_pylist()
               if r["num_gt_boxes"] >= 2)
    labels = ws.boxes([row["id"]], labeled_only=False).to_pylist()
    points = read_points(row["lidar_path"])
    calib = read_calibration(row["calib_path"])
    fig = bev_render(points, labels, calib=calib, x_range=(-80, 80), y_range=(-80, 80))
    (ax,) = fig.get_axes()
    drawn = [p for p in ax.patches if isinstance(p, Polygon)]
    expected = [r for r in labels if r["type"] != "DontCare"]
    assert len(drawn) == len(expected)
    # each outline is centred on the box centre in LiDAR coordinates (camera -> LiDAR via calib)
    ref = calib.boxes_to_lidar([Box3D(type=r["type"], truncated=r["truncated"], occluded=r["occluded"],
                                      alpha=r["alpha"], bbox=tuple(r["bbox"]),
                                      dimensions=tuple(r["dimensions"]), location=tuple(r["location"]),
                                      rotation_y=r["rotation_y"]) for r in expected])
    for poly, box in zip(drawn, ref):
        xy = poly.get_xy()[:4]
        np.testing.assert_allclose(xy.mean(axis=0), box[:2], atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(xy[0] - xy[1]), box[4], atol=1e-6)  # width
    image = ax.get_images()[0].get_array()
    assert image.shape == (800, 800) and float(np.asarray(image).max()) > 0
    # LiDAR boxes given directly, with types
    arr = np.array([[10.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.3]])
    fig2 = bev_render(points, arr, types=["Car"])
    assert len(fig2.get_axes()[0].patches) == 1
    with pytest.raises(InvalidInputError, match="calibration"):
        bev_render(points, labels)
    with pytest.raises(InvalidInputError, match=r"\(M, 7\)"):
        bev_render(points, np.zeros((2, 5)))
    assert _png_size(frame_bev(ws, row["id"]))[0] > 300


def test_neighbours_match_brute_force_and_gallery_panels(ws: curate.Workspace) -> None:
    ids, vecs = ws.vectors("bev-hist")
    query = str(ids[7])
    found = neighbours(ws, "bev-hist", query, 4)
    dist, idx = exact_knn(vecs, vecs[7:8], 5, metric="l2")
    ref = [(str(ids[i]), float(d)) for d, i in zip(dist[0], idx[0]) if i != 7][:4]
    assert [f for f, _ in found] == [f for f, _ in ref]
    np.testing.assert_allclose([d for _, d in found], [d for _, d in ref], rtol=1e-4, atol=1e-5)
    fig = neighbour_gallery(ws, "bev-hist", query, k=4)
    axes = fig.get_axes()
    assert len(axes) == 5
    assert axes[0].get_title().startswith(f"query {query}")
    assert [ax.get_title().split()[0] for ax in axes[1:]] == [f for f, _ in found]
    assert all(ax.get_images() for ax in axes)
    with pytest.raises(NotFoundError, match="nope"):
        neighbours(ws, "bev-hist", "nope", 3)


def test_class_histograms_count_objects_per_strategy(ws: curate.Workspace) -> None:
    r1 = ws.select("random", 8, embedding="bev-hist", seed=1).run
    r2 = ws.select("kcenter", 8, embedding="bev-hist", seed=1).run
    r3 = ws.select("random", 4, embedding="bev-hist", seed=2).run
    counts = class_counts(ws, [r1.run_id, r2, r3.run_id])
    assert list(counts) == [f"random ({r1.run_id})", "kcenter", f"random ({r3.run_id})"]
    for name, run in zip(counts, (r1, r2, r3)):
        brute = Counter()
        for fid in run.ids:
            brute.update(r["type"] for r in ws.boxes([fid], labeled_only=False).to_pylist()
                         if r["type"] != "DontCare")
        assert counts[name] == dict(brute)
    fig = class_histograms(ws, {"a": r1.ids, "b": r2.ids})
    (ax,) = fig.get_axes()
    classes = {c for name in ("a", "b") for c in class_counts(ws, {name: ws.run(
        r1.run_id if name == "a" else r2.run_id).ids})[name]}
    assert len(ax.containers) == 2 and all(len(c) == len(classes) for c in ax.containers)
    heights = {t.get_text(): None for t in ax.get_xticklabels()}
    assert set(heights) == classes
    assert _png_size(fig)[1] > 200
