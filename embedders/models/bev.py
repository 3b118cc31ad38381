"""``bev-hist``: a parameter-free bird's-eye-view histogram embedder (pure numpy).

The quality baseline and the demo embedder: no weights, no torch, ~ms per frame. Over the crop
square (``|x|, |y| <= half_extent``, ``z_min <= z <= z_max``, LiDAR frame, metres) it computes:

* ``grid x grid`` cells of ``log1p(point count)``: where things are and how dense;
* ``grid x grid`` cells of the maximum height, scaled to [0, 1] over ``[z_min, z_max]``
  (0 for empty cells): how tall they are;
* ``range_bins`` bins of ``log1p(count)`` over the horizontal range ``[0, half_extent * sqrt 2]``.

Each of the three blocks is L2-normalised (so none dominates), then the concatenation is
L2-normalised. ``dim = 2 * grid**2 + range_bins`` (528 by default).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from typing import Any

import numpy as np

from embedders.base import Embedder, check_options, resolve_device
from embedders.errors import EmbedderError

__all__ = ["BevHistEmbedder", "bev_hist", "BEV_HIST_VERSION"]

logger = logging.getLogger(__name__)

#: Bump when the feature computation changes, so weights_sha256 (the identity) changes too.
BEV_HIST_VERSION = 1


def _l2_normalize(block: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(block))
    return block / norm if norm > 0 else block


class BevHistEmbedder(Embedder):
    """Bird's-eye occupancy / height / range histogram, see the module docstring.

    Parameters
    ----------
    grid : int, default 16
        Cells per side of the bird's-eye grid.
    half_extent : float, default 25.6
        Half side of the crop square, metres.
    z_min, z_max : float, default -3.0, 1.0
        Height band kept, metres.
    range_bins : int, default 16
        Bins of the horizontal range histogram.

    Notes
    -----
    O(N) time and O(N + grid^2) memory per cloud.
    """

    modality = "points"

    def __init__(
        self,
        *,
        grid: int = 16,
        half_extent: float = 25.6,
        z_min: float = -3.0,
        z_max: float = 1.0,
        range_bins: int = 16,
        sweeps: int = 0,
    ) -> None:
        for option, value in (("grid", grid), ("range_bins", range_bins)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EmbedderError(
                    f"bev-hist: option {option}={value!r} must be a positive integer"
                )
        for option, value in (("half_extent", half_extent), ("z_min", z_min), ("z_max", z_max)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise EmbedderError(f"bev-hist: option {option}={value!r} must be a finite number")
        if half_extent <= 0:
            raise EmbedderError(f"bev-hist: half_extent={half_extent!r} must be > 0 (metres)")
        if z_max <= z_min:
            raise EmbedderError(f"bev-hist: z_max={z_max!r} must be greater than z_min={z_min!r}")
        self.name = "bev-hist"
        self.grid = grid
        self.half_extent = float(half_extent)
        self.z_min = float(z_min)
        self.z_max = float(z_max)
        if isinstance(sweeps, bool) or not isinstance(sweeps, int) or not 0 <= sweeps <= 100:
            raise EmbedderError(f"bev-hist: option sweeps={sweeps!r} must be an integer in 0..100")
        self.range_bins = range_bins
        self.sweeps = sweeps
        self.dim = 2 * grid * grid + range_bins

    def config(self) -> dict[str, Any]:
        """Complete options: ``create_embedder("bev-hist", **self.config())`` rebuilds it."""
        return {
            "grid": self.grid,
            "half_extent": self.half_extent,
            "z_min": self.z_min,
            "z_max": self.z_max,
            "range_bins": self.range_bins,
            **({"sweeps": self.sweeps} if self.sweeps else {}),
        }

    def weights_sha256(self) -> str:
        """sha256 of the canonical JSON of name, algorithm version and config (no weights)."""
        payload = {"name": self.name, "version": BEV_HIST_VERSION, "config": self.config()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()

    @property
    def device(self) -> str:
        """Always ``"cpu"``: the computation is numpy."""
        return "cpu"

    def to(self, device: str) -> BevHistEmbedder:
        """Validate ``device`` and stay on CPU (numpy has no other device)."""
        resolve_device(device)
        return self

    def _embed_clouds(self, clouds: list[np.ndarray]) -> np.ndarray:
        out = np.empty((len(clouds), self.dim), dtype=np.float32)
        for index, cloud in enumerate(clouds):
            out[index] = self._embed_one(cloud, index)
        return out

    def _embed_one(self, cloud: np.ndarray, index: int) -> np.ndarray:
        x = cloud[:, 0].astype(np.float64)
        y = cloud[:, 1].astype(np.float64)
        z = cloud[:, 2].astype(np.float64)
        h = self.half_extent
        keep = (np.abs(x) <= h) & (np.abs(y) <= h) & (z >= self.z_min) & (z <= self.z_max)
        if not keep.any():
            raise EmbedderError(
                f"cloud {index}: none of its {len(cloud)} points lies inside the bev-hist crop "
                f"(|x|, |y| <= {h} m, z in [{self.z_min}, {self.z_max}] m); check it is in the "
                "LiDAR frame in metres, or widen the crop"
            )
        x, y, z = x[keep], y[keep], z[keep]
        cells = self.grid
        col = np.minimum(((x + h) / (2 * h) * cells).astype(np.int64), cells - 1)
        row = np.minimum(((y + h) / (2 * h) * cells).astype(np.int64), cells - 1)
        cell = row * cells + col
        counts = np.bincount(cell, minlength=cells * cells).astype(np.float64)
        height = np.full(cells * cells, -np.inf)
        np.maximum.at(height, cell, (z - self.z_min) / (self.z_max - self.z_min))
        height[~np.isfinite(height)] = 0.0
        horizontal = np.sqrt(x * x + y * y)
        max_range = h * math.sqrt(2.0)
        range_bin = np.minimum(
            (horizontal / max_range * self.range_bins).astype(np.int64), self.range_bins - 1
        )
        ranges = np.bincount(range_bin, minlength=self.range_bins).astype(np.float64)
        vector = np.concatenate(
            [
                _l2_normalize(np.log1p(counts)),
                _l2_normalize(height),
                _l2_normalize(np.log1p(ranges)),
            ]
        )
        return _l2_normalize(vector).astype(np.float32)


def bev_hist(**options: Any) -> BevHistEmbedder:
    """Parameter-free bird's-eye histogram embedder; options as :class:`BevHistEmbedder`."""
    check_options(
        "bev-hist", list(options), ["grid", "half_extent", "z_min", "z_max", "range_bins", "sweeps"]
    )
    return BevHistEmbedder(**options)
