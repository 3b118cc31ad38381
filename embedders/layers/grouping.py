"""Farthest point sampling and k-nearest-neighbour grouping of point clouds (pure PyTorch).

These reproduce the patch construction of Point-MAE / ReCon: ``G`` group centres are chosen by
farthest point sampling (FPS), and each centre gathers its ``k`` nearest points, expressed
relative to the centre.

FPS follows the official CUDA op (``pointnet2_ops`` ``furthest_point_sampling_kernel``) exactly:

* the first index is always 0;
* every following step takes the point with the largest distance to the chosen set; ties go to
  the lowest index;
* points with ``x*x + y*y + z*z <= 1e-3`` are never chosen after the first step (the kernel
  ``continue``-s past them); if every point is that close to the origin the result is index 0;
* distances start at ``1e10`` and are computed as ``dx*dx + dy*dy + dz*dz`` in the input dtype.

Backends are pluggable: :func:`register_fps_backend` adds a faster implementation (e.g. a
compiled CPU kernel) under a name, and :func:`farthest_point_sample` dispatches on ``backend``.
Two are built in:

``"torch"``
    The reference: plain torch ops, batched, any device and float dtype.
``"fpsample"``
    The compiled vanilla FPS of the ``fpsample`` package (``pip install curate[fast]``), CPU,
    float32, one cloud at a time; 5-8x faster than ``"torch"`` on CPU. Its kernel differs from the
    official op in three ways, all undone here so that the indices are identical to ``"torch"``:
    it breaks ties to the *highest* index (the points are fed in reverse order, so that its
    highest index is our lowest), it has no near-zero rule (points with squared norm <= 1e-3 are
    removed from its input, except point 0, which is always the start; picks that would repeat
    an ineligible point 0 once every distance is 0 are mapped to the lowest eligible index, as
    the official op does), and it starts distances at ``inf`` instead of ``1e10`` and needs
    ``m <= N`` (clouds whose squared extent reaches ``1e10`` and the tail of ``m`` beyond the
    eligible points are handled exactly; non-float32 or non-finite input falls back to
    ``"torch"``). Its distance arithmetic, ``(dx*dx + dy*dy) + dz*dz`` in float32 without fused
    multiply-add, is the same as the reference's.

``backend="auto"`` (the default) uses ``"fpsample"`` for float32 CPU tensors when the package is
installed, else ``"torch"``. The choice never changes the indices, so it is not part of any
embedder configuration.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from embedders.errors import EmbedderError

__all__ = [
    "farthest_point_sample",
    "register_fps_backend",
    "list_fps_backends",
    "resolve_fps_backend",
    "gather_points",
    "knn_indices",
    "knn_group",
    "PointGrouper",
]

logger = logging.getLogger(__name__)

FpsBackend = Callable[[Tensor, int], Tensor]

#: Squared norm at or below which the official kernel skips a point.
FPS_NEAR_ZERO = 1e-3
#: Initial distance of every point to the (empty) chosen set, as in the official wrapper.
FPS_INITIAL_DISTANCE = 1e10
#: Target number of float elements in one kNN distance chunk (bounds peak memory).
KNN_CHUNK_ELEMENTS = 1 << 22


def _check_xyz(xyz: Tensor, what: str) -> None:
    if not isinstance(xyz, Tensor):
        raise EmbedderError(
            f"{what} must be a torch.Tensor of shape (B, N, 3), got {type(xyz).__name__}"
        )
    if xyz.ndim != 3 or xyz.shape[-1] != 3:
        raise EmbedderError(f"{what} must have shape (B, N, 3), got {tuple(xyz.shape)}")
    if not xyz.is_floating_point():
        raise EmbedderError(f"{what} must be a floating point tensor, got {xyz.dtype}")


def _fps_torch(xyz: Tensor, m: int) -> Tensor:
    """Reference FPS in plain torch ops: O(B*N*m) time, O(B*N) memory."""
    batch, num_points, _ = xyz.shape
    x = xyz[..., 0].contiguous()
    y = xyz[..., 1].contiguous()
    z = xyz[..., 2].contiguous()
    # The kernel compares the float magnitude with the double literal 1e-3: do the same.
    magnitude = (x * x + y * y + z * z).double()
    eligible = magnitude > FPS_NEAR_ZERO
    # Ineligible points sit at -1 forever: min(-1, d) = -1 < any real distance, and when every
    # point is ineligible argmax returns the first index (0), as the kernel's initial besti = 0.
    distance = torch.where(
        eligible,
        torch.full_like(x, FPS_INITIAL_DISTANCE),
        torch.full_like(x, -1.0),
    )
    indices = torch.zeros((batch, m), dtype=torch.long, device=xyz.device)
    rows = torch.arange(batch, device=xyz.device)
    last = torch.zeros(batch, dtype=torch.long, device=xyz.device)
    for step in range(1, m):
        dx = x - x[rows, last].unsqueeze(1)
        dy = y - y[rows, last].unsqueeze(1)
        dz = z - z[rows, last].unsqueeze(1)
        step_distance = dx * dx + dy * dy + dz * dz
        torch.minimum(distance, step_distance, out=distance)
        last = torch.argmax(distance, dim=1)  # first maximal index: ties go to the lowest index
        indices[:, step] = last
    return indices


def _fps_fpsample_cloud(points: np.ndarray, m: int) -> np.ndarray:
    """Official-op FPS of one ``(N, 3)`` float32 cloud through ``fpsample.fps_sampling``.

    See the module docstring for how the three differences of the package's kernel are undone.
    Time O(N*m) in compiled code, memory O(N).
    """
    import fpsample

    magnitude = (
        points[:, 0] * points[:, 0] + points[:, 1] * points[:, 1] + points[:, 2] * points[:, 2]
    ).astype(np.float64)
    eligible = magnitude > FPS_NEAR_ZERO
    others = np.flatnonzero(eligible[1:]) + 1
    # What the official op picks once every eligible distance is 0 (or no point is eligible).
    fill = 0 if eligible[0] or others.size == 0 else int(others[0])
    out = np.full(m, fill, dtype=np.int64)
    out[0] = 0
    if others.size == 0:
        return out
    # Point 0 (always the start) followed by the eligible points, in reverse order: fpsample
    # breaks ties to the highest index, which is then our lowest.
    order = np.concatenate([others[::-1], np.zeros(1, dtype=others.dtype)])
    count = min(m, order.size)
    picked = fpsample.fps_sampling(
        np.ascontiguousarray(points[order]), count, start_idx=order.size - 1
    )
    chosen = order[np.asarray(picked, dtype=np.int64)]
    if not eligible[0]:
        repeats = chosen[1:] == 0
        chosen[1:][repeats] = fill
    out[:count] = chosen
    return out


def _fps_fpsample(xyz: Tensor, m: int) -> Tensor:
    """``"fpsample"`` backend: per-cloud compiled FPS; falls back to ``"torch"`` when it could
    differ (non-float32 or non-CPU input, non-finite values, squared extent >= 1e10)."""
    if xyz.device.type != "cpu" or xyz.dtype != torch.float32:
        return _fps_torch(xyz, m)
    array = xyz.detach().numpy()
    if not np.isfinite(array).all():
        return _fps_torch(xyz, m)
    extent = array.max(axis=1).astype(np.float64) - array.min(axis=1).astype(np.float64)
    if (np.sum(extent * extent, axis=1) >= FPS_INITIAL_DISTANCE / 2).any():
        # A squared distance could reach the 1e10 start value, where the op's ties differ.
        return _fps_torch(xyz, m)
    result = np.empty((array.shape[0], m), dtype=np.int64)
    for index, cloud in enumerate(array):
        result[index] = _fps_fpsample_cloud(cloud, m)
    return torch.from_numpy(result)


_FPS_BACKENDS: dict[str, FpsBackend] = {"torch": _fps_torch}
if importlib.util.find_spec("fpsample") is not None:
    _FPS_BACKENDS["fpsample"] = _fps_fpsample


def resolve_fps_backend(xyz: Tensor, backend: str = "auto") -> str:
    """The backend :func:`farthest_point_sample` uses for ``xyz``.

    ``"auto"`` is ``"fpsample"`` for float32 CPU tensors when that package is installed, else
    ``"torch"``; any other name is returned unchanged.
    """
    if backend != "auto":
        return backend
    if "fpsample" in _FPS_BACKENDS and xyz.device.type == "cpu" and xyz.dtype == torch.float32:
        return "fpsample"
    return "torch"


def register_fps_backend(name: str, backend: FpsBackend) -> None:
    """Register an FPS implementation under ``name``.

    Parameters
    ----------
    name : str
        Backend name used with ``farthest_point_sample(..., backend=name)``.
    backend : callable
        ``backend(xyz: (B, N, 3) tensor, m: int) -> (B, m) long tensor`` with the semantics in the
        module docstring. It must agree index-for-index with the ``"torch"`` backend.
    """
    if not callable(backend):
        raise EmbedderError(f"FPS backend {name!r} must be callable")
    _FPS_BACKENDS[name] = backend


def list_fps_backends() -> list[str]:
    """Return the sorted names of the registered FPS backends."""
    return sorted(_FPS_BACKENDS)


def farthest_point_sample(xyz: Tensor, m: int, *, backend: str = "auto") -> Tensor:
    """Choose ``m`` well-spread point indices per cloud by farthest point sampling.

    Semantics of the official CUDA ``furthest_point_sample`` (see the module docstring): start at
    index 0, take the farthest point each step, ties to the lowest index, never choose points
    with squared norm <= 1e-3.

    Parameters
    ----------
    xyz : torch.Tensor
        ``(B, N, 3)`` float coordinates.
    m : int
        Number of indices to choose per cloud (>= 1). ``m > N`` is allowed and repeats indices.
    backend : str, default "auto"
        A name from :func:`list_fps_backends`, or ``"auto"`` (see :func:`resolve_fps_backend`).

    Returns
    -------
    torch.Tensor
        ``(B, m)`` int64 indices into the ``N`` axis.

    Notes
    -----
    Every backend costs O(B*N*m) time and O(B*N) memory; ``"fpsample"`` has a smaller constant.
    """
    _check_xyz(xyz, "xyz")
    if not isinstance(m, int) or isinstance(m, bool) or m < 1:
        raise EmbedderError(f"number of FPS samples m must be a positive integer, got {m!r}")
    if xyz.shape[1] == 0:
        raise EmbedderError("farthest_point_sample got clouds with 0 points")
    try:
        implementation = _FPS_BACKENDS[resolve_fps_backend(xyz, backend)]
    except KeyError:
        raise EmbedderError(
            f"unknown FPS backend {backend!r}; registered: {', '.join(list_fps_backends())}"
        ) from None
    return implementation(xyz, m)


def gather_points(xyz: Tensor, indices: Tensor) -> Tensor:
    """Gather points by per-batch indices.

    Parameters
    ----------
    xyz : torch.Tensor
        ``(B, N, C)`` values.
    indices : torch.Tensor
        ``(B, ...)`` int64 indices into the ``N`` axis.

    Returns
    -------
    torch.Tensor
        ``(B, ..., C)`` gathered values.
    """
    batch = xyz.shape[0]
    flat = indices.reshape(batch, -1)
    gathered = torch.gather(xyz, 1, flat.unsqueeze(-1).expand(-1, -1, xyz.shape[-1]))
    return gathered.reshape(*indices.shape, xyz.shape[-1])


def _squared_distances(xyz: Tensor, centers: Tensor) -> Tensor:
    """(B, c, N) squared distances, computed as exact coordinate differences (no matmul form)."""
    distance = None
    for axis in range(3):
        diff = xyz[:, None, :, axis] - centers[:, :, None, axis]
        distance = diff * diff if distance is None else distance + diff * diff
    return distance


def _k_smallest_lowest_index(distance: Tensor, k: int) -> Tensor:
    """Indices of the k smallest values along the last axis, ordered by (value, index).

    ``torch.topk`` finds the set; rows where more than ``k`` values are <= the k-th value (a tie
    straddling the cut) are redone with a stable sort so that ties go to the lowest index. The
    ``k`` picked indices are then ordered by value, ties by index.
    """
    values, indices = torch.topk(distance, k, dim=-1, largest=False, sorted=True)
    kth = values[..., -1:]
    ambiguous = (distance <= kth).sum(dim=-1) > k
    if bool(ambiguous.any()):
        indices[ambiguous] = torch.sort(distance[ambiguous], dim=-1, stable=True).indices[:, :k]
    indices = torch.sort(indices, dim=-1).values
    picked = torch.gather(distance, -1, indices)
    by_value = torch.sort(picked, dim=-1, stable=True).indices
    return torch.gather(indices, -1, by_value)


def knn_indices(xyz: Tensor, centers: Tensor, k: int, *, chunk_size: int | None = None) -> Tensor:
    """Indices of the ``k`` nearest points of each centre.

    Parameters
    ----------
    xyz : torch.Tensor
        ``(B, N, 3)`` points.
    centers : torch.Tensor
        ``(B, G, 3)`` query centres.
    k : int
        Neighbours per centre, ``1 <= k <= N``.
    chunk_size : int, optional
        Centres per chunk; by default chosen so one chunk holds about 4M distances.

    Returns
    -------
    torch.Tensor
        ``(B, G, k)`` int64 indices into ``N``, ordered by increasing distance; ties go to the
        lowest index.

    Notes
    -----
    Time O(B*G*N) (plus O(N log N) per centre only where ties straddle the k-th distance);
    memory O(B*chunk*N), never ``B x N x N``.
    """
    _check_xyz(xyz, "xyz")
    _check_xyz(centers, "centers")
    if centers.shape[0] != xyz.shape[0]:
        raise EmbedderError(
            "xyz and centers must have the same batch size, got "
            f"{xyz.shape[0]} and {centers.shape[0]}"
        )
    batch, num_points, _ = xyz.shape
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= num_points:
        raise EmbedderError(
            f"k must be an integer in [1, {num_points}] (points per cloud), got {k!r}"
        )
    num_centers = centers.shape[1]
    if chunk_size is None:
        chunk_size = max(1, KNN_CHUNK_ELEMENTS // max(1, batch * num_points))
    result = torch.empty((batch, num_centers, k), dtype=torch.long, device=xyz.device)
    for start in range(0, num_centers, chunk_size):
        stop = min(start + chunk_size, num_centers)
        distance = _squared_distances(xyz, centers[:, start:stop])
        result[:, start:stop] = _k_smallest_lowest_index(distance, k)
    return result


def knn_group(xyz: Tensor, centers: Tensor, k: int, *, chunk_size: int | None = None) -> Tensor:
    """Gather the ``k`` nearest points of each centre, relative to that centre.

    Parameters
    ----------
    xyz : torch.Tensor
        ``(B, N, 3)`` points.
    centers : torch.Tensor
        ``(B, G, 3)`` centres.
    k : int
        Neighbours per centre.
    chunk_size : int, optional
        See :func:`knn_indices`.

    Returns
    -------
    torch.Tensor
        ``(B, G, k, 3)`` neighbourhoods, ``neighbour - centre``, ordered by distance.
    """
    indices = knn_indices(xyz, centers, k, chunk_size=chunk_size)
    return gather_points(xyz, indices) - centers.unsqueeze(2)


class PointGrouper(nn.Module):
    """Split clouds into patches: FPS centres plus their k nearest neighbours (no parameters).

    Parameters
    ----------
    num_group : int
        Number of patches ``G`` per cloud.
    group_size : int
        Points per patch ``k``.
    fps_backend : str, default "auto"
        FPS implementation name, see :func:`list_fps_backends` and :func:`resolve_fps_backend`.
    """

    def __init__(self, num_group: int, group_size: int, fps_backend: str = "auto") -> None:
        super().__init__()
        self.num_group = num_group
        self.group_size = group_size
        self.fps_backend = fps_backend

    def forward(self, xyz: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(neighbourhoods (B, G, k, 3), centres (B, G, 3))`` for ``(B, N, 3)`` clouds."""
        center_index = farthest_point_sample(xyz, self.num_group, backend=self.fps_backend)
        centers = gather_points(xyz, center_index)
        neighbourhoods = knn_group(xyz, centers, self.group_size)
        return neighbourhoods, centers
