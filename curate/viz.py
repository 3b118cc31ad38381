"""Pictures of a workspace: 2-D maps of the embeddings, bird's-eye renders of LiDAR frames with
their boxes, neighbour galleries and per-strategy class histograms.

Every function returns a :class:`matplotlib.figure.Figure` drawn with the Agg canvas (no pyplot
state, no display needed); :func:`to_png` turns one into PNG bytes, and a notebook shows it with
``IPython.display.Image(to_png(fig))`` or simply by leaving the figure as a cell's last value.

matplotlib is needed for all of it and umap-learn for ``method="umap"`` maps; both are behind
import helpers that say what to install (``pip install curate[viz]``). ``method="pca"`` needs only
numpy and is the fast choice for tests: UMAP's first fit in a process spends ~30 s compiling
with numba.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

import numpy as np

from curate.errors import InvalidInputError, NotFoundError
from curate.sources.base import Box3D

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from curate.api import RunRecord
    from curate.workspace import Workspace
    from index.vectors import VectorIndex

__all__ = [
    "import_matplotlib",
    "import_umap",
    "new_figure",
    "to_png",
    "project_2d",
    "umap_map",
    "lidar_boxes",
    "bev_render",
    "frame_bev",
    "neighbours",
    "neighbour_gallery",
    "class_counts",
    "class_histograms",
]

logger = logging.getLogger(__name__)

_INSTALL = "pip install 'curate[viz]'"
_NUMERIC_KINDS = "iuf"
#: Colours of the KITTI classes in renders and histograms (others cycle through tab10).
CLASS_COLOURS = {
    "Car": "#1f77b4",
    "Van": "#17becf",
    "Truck": "#9467bd",
    "Pedestrian": "#d62728",
    "Person_sitting": "#e377c2",
    "Cyclist": "#ff7f0e",
    "Tram": "#8c564b",
    "Misc": "#7f7f7f",
    "DontCare": "#bcbd22",
}


# ----------------------------------------------------------------------------------- helpers


def import_matplotlib() -> Any:
    """Import matplotlib (Agg canvas only) or raise an ImportError that says what to install."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError as exc:  # pragma: no cover - declared in the viz extra
        raise ImportError(f"curate.viz needs matplotlib: install it with `{_INSTALL}`") from exc
    return matplotlib


def import_umap() -> Any:
    """Import umap-learn or raise an ImportError that says what to install (or to use PCA)."""
    try:
        import umap
    except ImportError as exc:  # pragma: no cover - declared in the viz extra
        raise ImportError(
            f"UMAP maps need umap-learn: install it with `{_INSTALL}`, or pass method='pca'"
        ) from exc
    return umap


def new_figure(n_panels: int, *, ncols: int = 3, panel_size: tuple[float, float] = (4.5, 4.0),
               dpi: int = 100) -> tuple["Figure", list["Axes"]]:
    """A Figure on an Agg canvas with ``n_panels`` axes in a grid of at most ``ncols`` columns."""
    import_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if n_panels < 1:
        raise InvalidInputError(f"a figure needs at least one panel, got {n_panels}")
    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    return fig, axes


def to_png(fig: "Figure", *, dpi: Optional[int] = None) -> bytes:
    """Render ``fig`` to PNG bytes."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _palette(n: int) -> list[Any]:
    import_matplotlib()
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# -------------------------------------------------------------------------------- projection


def project_2d(vectors: np.ndarray, *, method: str = "umap", seed: int = 0,
               n_neighbors: int = 15) -> np.ndarray:
    """Project ``(N, d)`` vectors to ``(N, 2)``.

    Parameters
    ----------
    vectors : numpy.ndarray
        Finite numbers, N >= 3.
    method : {"umap", "pca"}
        UMAP (umap-learn, seeded) or the first two principal components.
    seed : int
        UMAP seed (PCA is deterministic; component signs are fixed so the largest loading is
        positive).
    n_neighbors : int
        UMAP neighbourhood size (clamped to N - 1).

    Notes
    -----
    PCA: O(N d^2) time, O(N d + d^2) memory. UMAP: approximately O(N n_neighbors d) memory.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise InvalidInputError(f"need an (N, d) array with N >= 3 to project, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InvalidInputError("vectors to project contain NaN or inf")
    if method == "pca":
        centred = x - x.mean(axis=0)
        cov = centred.T @ centred
        values, vecs = np.linalg.eigh(cov)
        comps = vecs[:, np.argsort(values)[::-1][:2]]
        if comps.shape[1] < 2:
            comps = np.pad(comps, ((0, 0), (0, 2 - comps.shape[1])))
        signs = np.sign(comps[np.abs(comps).argmax(axis=0), range(comps.shape[1])])
        signs[signs == 0] = 1.0
        return centred @ (comps * signs)
    if method == "umap":
        umap = import_umap()
        reducer = umap.UMAP(n_components=2, n_neighbors=max(2, min(n_neighbors, x.shape[0] - 1)),
                            random_state=seed, n_jobs=1, init="spectral" if x.shape[0] > 10 else "random")
        return np.asarray(reducer.fit_transform(x.astype(np.float32)), dtype=np.float64)
    raise InvalidInputError(f"unknown projection method {method!r}; use 'umap' or 'pca'")


def _colour_panel(ax: "Axes", xy: np.ndarray, values: list[Any], key: str, size: float) -> None:
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=object)
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)
    if numeric and len(set(values)) > 12:
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=arr.astype(float), s=size, cmap="viridis")
        ax.figure.colorbar(sc, ax=ax, label=key)
        return
    labels = ["(none)" if v is None else str(v) for v in values]
    categories = sorted(set(labels))
    colours = _palette(len(categories))
    for cat, colour in zip(categories, colours):
        mask = np.array([lab == cat for lab in labels])
        ax.scatter(xy[mask, 0], xy[mask, 1], s=size, color=colour, label=cat)
    if len(categories) <= 12:
        ax.legend(fontsize=7, markerscale=1.5, loc="best", title=key, title_fontsize=8)


def umap_map(
    ws: "Workspace",
    embedding: str,
    *,
    color_by: Union[str, Sequence[str]] = "scene",
    highlight: Optional[Mapping[str, Sequence[str]]] = None,
    method: str = "umap",
    seed: int = 0,
    where: Optional[str] = None,
    max_points: Optional[int] = None,
    point_size: float = 10.0,
    ncols: int = 3,
) -> "Figure":
    """A 2-D map of an embedding: one panel per ``color_by`` column and one per highlighted set.

    Parameters
    ----------
    ws : Workspace
    embedding : str
        Embedding table to project.
    color_by : str or sequence of str
        ``samples`` columns to colour by (``scene`` = drive, ``time_of_day``, ``weather``,
        ``labeled``, ``timestamp`` ...); categorical columns get a legend (up to 12 values),
        numeric columns with many values a colour bar.
    highlight : mapping of str to sequence of str, optional
        ``{strategy name: picked ids}``; each gets a panel with its picks over the grey map.
    method : {"umap", "pca"}
        Projection (see :func:`project_2d`); computed once for all panels.
    seed : int
        Seed of UMAP and of the ``max_points`` subsample.
    where : str, optional
        Filter on ``samples``: only matching frames are drawn.
    max_points : int, optional
        Draw a seeded random subset of at most this many frames (highlighted frames are kept).
    point_size : float
        Marker area.
    ncols : int
        Panels per row.

    Returns
    -------
    matplotlib.figure.Figure
        Every panel draws each frame exactly once.

    Notes
    -----
    O(N d) memory to read the vectors plus the projection's cost (see :func:`project_2d`).
    """
    keys = [color_by] if isinstance(color_by, str) else list(color_by)
    highlight = dict(highlight or {})
    if not keys and not highlight:
        raise InvalidInputError("umap_map needs at least one color_by column or highlight set")
    ids, vecs = ws.vectors(embedding)
    ids = [str(i) for i in ids]
    if where is not None:
        keep = set(str(i) for i in ws.store.ids("samples", where=where))
        rows = [i for i, fid in enumerate(ids) if fid in keep]
        ids, vecs = [ids[i] for i in rows], vecs[rows]
    wanted = {i for picks in highlight.values() for i in picks}
    position = {fid: i for i, fid in enumerate(ids)}
    unknown = sorted(wanted - position.keys())
    if unknown:
        raise NotFoundError(
            f"{len(unknown)} highlighted ids have no {embedding!r} vector on the map "
            f"(first: {', '.join(unknown[:5])})"
        )
    if max_points is not None and len(ids) > max_points:
        rng = np.random.default_rng(seed)
        must = np.array(sorted(position[i] for i in wanted), dtype=np.int64)
        rest = np.setdiff1d(np.arange(len(ids)), must)
        extra = rng.choice(rest, size=max(0, max_points - must.size), replace=False)
        rows = np.sort(np.concatenate([must, extra]))
        ids, vecs = [ids[i] for i in rows], vecs[rows]
        position = {fid: i for i, fid in enumerate(ids)}
    if keys:
        table = ws.frames(ids=ids, columns=["id", *keys])
        by_id = {r["id"]: r for r in table.to_pylist()}
    xy = project_2d(vecs, method=method, seed=seed)
    fig, axes = new_figure(len(keys) + len(highlight), ncols=ncols)
    label = "UMAP" if method == "umap" else "PC"
    for ax, key in zip(axes, keys):
        _colour_panel(ax, xy, [by_id[i][key] for i in ids], key, point_size)
        ax.set_title(f"{embedding}: coloured by {key}", fontsize=10)
    for ax, (name, picks) in zip(axes[len(keys):], highlight.items()):
        mask = np.zeros(len(ids), dtype=bool)
        mask[[position[i] for i in picks]] = True
        ax.scatter(xy[~mask, 0], xy[~mask, 1], s=point_size, color="#d0d0d0", label="not picked")
        ax.scatter(xy[mask, 0], xy[mask, 1], s=point_size * 3, color="#d62728",
                   edgecolors="black", linewidths=0.4, label="picked")
        ax.set_title(f"{name}: {int(mask.sum())} picks", fontsize=10)
        ax.legend(fontsize=7, loc="best")
    for ax in axes:
        ax.set_xlabel(f"{label} 1", fontsize=8)
        ax.set_ylabel(f"{label} 2", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------- BEV


def _as_box(row: Union[Box3D, Mapping[str, Any]]) -> Box3D:
    if isinstance(row, Box3D):
        return row
    return Box3D(type=row["type"], truncated=row["truncated"], occluded=row["occluded"],
                 alpha=row["alpha"], bbox=tuple(row["bbox"]), dimensions=tuple(row["dimensions"]),
                 location=tuple(row["location"]), rotation_y=row["rotation_y"])


def lidar_boxes(boxes: Sequence[Union[Box3D, Mapping[str, Any]]], calib: Any) -> tuple[np.ndarray, list[str]]:
    """LiDAR-frame boxes ``(M, 7)`` (x, y, z, l, w, h, yaw) and class names of KITTI label boxes.

    ``boxes`` are :class:`~curate.sources.base.Box3D` or ``labels`` rows (dicts); ``calib`` a
    :class:`~curate.sources.calib.Calibration` or the path of a calib file.
    """
    from curate.sources.calib import read_calibration

    items = [_as_box(b) for b in boxes]
    if not items:
        return np.zeros((0, 7)), []
    if calib is None:
        raise InvalidInputError(
            "label boxes are in camera coordinates: pass the frame's calibration (calib=) to "
            "draw them in the LiDAR frame"
        )
    if not hasattr(calib, "boxes_to_lidar"):
        calib = read_calibration(calib)
    return calib.boxes_to_lidar(items), [b.type for b in items]


def _corners(box: np.ndarray) -> np.ndarray:
    x, y, _, length, width, _, yaw = box
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64) * [length / 2, width / 2]
    rot = np.array([[c, -s], [s, c]])
    return local @ rot.T + [x, y]


def bev_render(
    points: np.ndarray,
    boxes: Any = None,
    *,
    calib: Any = None,
    types: Optional[Sequence[str]] = None,
    skip_types: Sequence[str] = ("DontCare",),
    ax: Optional["Axes"] = None,
    x_range: tuple[float, float] = (0.0, 70.4),
    y_range: tuple[float, float] = (-40.0, 40.0),
    cell: float = 0.2,
    title: Optional[str] = None,
) -> "Figure":
    """Bird's-eye view of a LiDAR frame: point density image plus box outlines.

    Parameters
    ----------
    points : numpy.ndarray
        ``(N, >=3)`` LiDAR points (x forward, y left, z up).
    boxes : optional
        Either an ``(M, 7)`` array of LiDAR boxes (x, y, z, l, w, h, yaw) with ``types``, or a
        sequence of :class:`~curate.sources.base.Box3D` / ``labels`` rows in camera coordinates
        together with ``calib`` (they are transformed with :meth:`Calibration.boxes_to_lidar`).
    calib : Calibration or path, optional
        Calibration of the frame (needed for label boxes).
    types : sequence of str, optional
        Class names of array boxes.
    skip_types : sequence of str
        Classes not drawn (``DontCare`` regions by default).
    ax : matplotlib Axes, optional
        Draw into this axes instead of a new figure.
    x_range, y_range : tuple of float
        Area shown in metres (KITTI's front view by default).
    cell : float
        Pixel size in metres.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the axes; the axes has one polygon patch per drawn box.

    Notes
    -----
    O(N) time, O(image pixels) memory.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise InvalidInputError(f"points must have shape (N, >=3), got {pts.shape}")
    if ax is None:
        fig, (ax,) = new_figure(1, panel_size=(6.0, 6.0 * (y_range[1] - y_range[0]) / (x_range[1] - x_range[0]) + 0.6))
    from matplotlib.patches import Polygon

    nx = max(1, int(round((x_range[1] - x_range[0]) / cell)))
    ny = max(1, int(round((y_range[1] - y_range[0]) / cell)))
    hist, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=(nx, ny), range=(x_range, y_range))
    ax.imshow(np.log1p(hist.T), origin="lower", extent=(*x_range, *y_range), cmap="gray_r",
              aspect="equal", interpolation="nearest")
    if boxes is not None:
        arr = np.asarray(boxes, dtype=np.float64) if isinstance(boxes, np.ndarray) else None
        if arr is not None:
            if arr.ndim != 2 or arr.shape[1] != 7:
                raise InvalidInputError(f"LiDAR boxes must have shape (M, 7), got {arr.shape}")
            names = list(types) if types is not None else ["object"] * arr.shape[0]
            if len(names) != arr.shape[0]:
                raise InvalidInputError(f"{len(names)} types for {arr.shape[0]} boxes")
        else:
            arr, names = lidar_boxes(list(boxes), calib)
        for box, name in zip(arr, names):
            if name in skip_types:
                continue
            colour = CLASS_COLOURS.get(name, "#2ca02c")
            ax.add_patch(Polygon(_corners(box), closed=True, fill=False, edgecolor=colour, linewidth=1.2,
                                 label=name))
            front = _corners(box)[:2].mean(axis=0)
            ax.plot([box[0], front[0]], [box[1], front[1]], color=colour, linewidth=0.8)
    ax.set_xlim(*x_range)
    ax.set_ylim(*y_range)
    ax.set_xlabel("x forward (m)", fontsize=8)
    ax.set_ylabel("y left (m)", fontsize=8)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def frame_bev(ws: "Workspace", frame_id: str, *, ax: Optional["Axes"] = None,
              title: Optional[str] = None, **kwargs: Any) -> "Figure":
    """:func:`bev_render` of a workspace frame with its effective labels (imported, else source)."""
    from curate.labels_import import frame_labels
    from curate.sources.pointcloud import read_points

    rows = ws.frames(ids=[frame_id], columns=["id", "lidar_path", "calib_path", "scene"]).to_pylist()
    if not rows:
        raise NotFoundError(f"no frame {frame_id!r} in {ws.path}")
    row = rows[0]
    boxes = frame_labels(ws, [frame_id]).to_pylist()
    calib = row["calib_path"]
    if boxes and not calib:
        logger.warning("frame %s has boxes but no calibration; drawing the points only", frame_id)
        boxes = []
    return bev_render(read_points(row["lidar_path"]), boxes, calib=calib, ax=ax,
                      title=title if title is not None else frame_id, **kwargs)


# ---------------------------------------------------------------------------------- gallery


def neighbours(ws: "Workspace", embedding: str, frame_id: str, k: int = 5, *,
               index: Optional["VectorIndex"] = None, metric: str = "l2") -> list[tuple[str, float]]:
    """The ``k`` nearest frames of ``frame_id`` in ``embedding`` (FAISS), nearest first.

    ``index`` reuses a :class:`index.vectors.VectorIndex` built with ids (else one is built:
    O(N d)). Returns ``[(frame id, distance), ...]`` without the frame itself.
    """
    from index.vectors import VectorIndex

    if k < 1:
        raise InvalidInputError(f"k must be at least 1, got {k}")
    if index is None:
        ids, vecs = ws.vectors(embedding)
        index = VectorIndex.build(vecs, ids=np.asarray([str(i) for i in ids], dtype=object),
                                  metric=metric, kind="flat", device="cpu")
    try:
        dist, rows = index.search_ids([frame_id], k)
    except KeyError:
        raise NotFoundError(f"frame {frame_id!r} has no {embedding!r} vector") from None
    return [(str(index.ids[r]), float(d)) for d, r in zip(dist[0], rows[0]) if r >= 0]


def neighbour_gallery(ws: "Workspace", embedding: str, frame_id: str, k: int = 5, *,
                      index: Optional["VectorIndex"] = None, metric: str = "l2", ncols: int = 3,
                      **render: Any) -> "Figure":
    """BEV renders of a frame and its ``k`` nearest neighbours in ``embedding``.

    Returns a Figure with ``k + 1`` panels (the query first, titled with id and scene; each
    neighbour titled with its distance). ``render`` goes to :func:`bev_render`.
    """
    found = neighbours(ws, embedding, frame_id, k, index=index, metric=metric)
    ids = [frame_id, *(i for i, _ in found)]
    scenes = {r["id"]: r["scene"] for r in ws.frames(ids=ids, columns=["id", "scene"]).to_pylist()}
    fig, axes = new_figure(len(ids), ncols=ncols, panel_size=(4.2, 5.0))
    titles = [f"query {frame_id}\n{scenes.get(frame_id)}"] + [
        f"{fid} d={d:.3g}\n{scenes.get(fid)}" for fid, d in found
    ]
    for ax, fid, title in zip(axes, ids, titles):
        frame_bev(ws, fid, ax=ax, title=title, **render)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------- histograms


def _named_sets(ws: "Workspace", runs: Any) -> dict[str, list[str]]:
    if isinstance(runs, Mapping):
        return {str(k): [str(i) for i in v] for k, v in runs.items()}
    records = [ws.run(r) if isinstance(r, str) else r for r in runs]
    strategies = Counter(r.strategy for r in records)
    named: dict[str, list[str]] = {}
    for r in records:
        name = r.strategy if strategies[r.strategy] == 1 else f"{r.strategy} ({r.run_id})"
        named[name] = list(r.ids)
    return named


def class_counts(ws: "Workspace", runs: Union[Sequence[Union[str, "RunRecord"]], Mapping[str, Sequence[str]]],
                 *, include_dontcare: bool = False) -> dict[str, dict[str, int]]:
    """Objects per class in the frames each run picked: ``{strategy: {class: count}}``.

    ``runs`` are run ids / records (named by strategy; ``strategy (run id)`` when a strategy
    repeats) or a mapping ``{name: frame ids}``. Boxes are each frame's effective labels
    (imported when it has any, else the source's). O(boxes of the picked frames).
    """
    from curate.labels_import import frame_labels

    result: dict[str, dict[str, int]] = {}
    for name, ids in _named_sets(ws, runs).items():
        types = frame_labels(ws, ids)["type"].to_pylist() if ids else []
        counts = Counter(t for t in types if include_dontcare or t != "DontCare")
        result[name] = dict(sorted(counts.items()))
    return result


def class_histograms(ws: "Workspace", runs: Any, *, classes: Optional[Sequence[str]] = None,
                     include_dontcare: bool = False, log: bool = False) -> "Figure":
    """Grouped bars of labeled objects per class, one bar per strategy (the Lightly-blog view).

    Returns a Figure whose axes holds one bar container per strategy with one bar per class.
    """
    counts = class_counts(ws, runs, include_dontcare=include_dontcare)
    if not counts:
        raise InvalidInputError("class_histograms needs at least one run")
    if classes is None:
        totals = Counter()
        for c in counts.values():
            totals.update(c)
        classes = [c for c, _ in totals.most_common()] or ["(no objects)"]
    fig, (ax,) = new_figure(1, panel_size=(max(6.0, 1.1 * len(classes) * max(1, len(counts)) / 2), 4.5))
    width = 0.8 / len(counts)
    x = np.arange(len(classes))
    for j, ((name, c), colour) in enumerate(zip(counts.items(), _palette(len(counts)))):
        heights = [c.get(cls, 0) for cls in classes]
        bars = ax.bar(x + (j - (len(counts) - 1) / 2) * width, heights, width, label=name, color=colour)
        ax.bar_label(bars, fontsize=6)
    ax.set_xticks(x, classes, rotation=30, fontsize=8)
    ax.set_ylabel("objects in picked frames", fontsize=9)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("labeled objects per class, by strategy", fontsize=10)
    fig.tight_layout()
    return fig
