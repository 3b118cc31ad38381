"""FPS backends on CPU: ``fpsample`` (compiled, exact official-op semantics) vs the torch reference.

Run: ``python -m benchmarks.fps`` (from the repository root). Prints time, peak traced memory (tracemalloc: numpy buffers;
torch CPU tensors are not traced) and the speed ratio against the ``torch`` backend measured in
the same run, and checks that the indices are identical.
"""

from __future__ import annotations

import logging
import time
import tracemalloc

import numpy as np
import torch

from embedders.layers.grouping import farthest_point_sample, list_fps_backends

logger = logging.getLogger(__name__)

CASES = [  # (batch, points, samples): scene preprocessing and ReCon patch centres
    (1, 120_000, 8192),
    (8, 8192, 256),
    (32, 2048, 64),
]


def _time(xyz: torch.Tensor, m: int, backend: str) -> tuple[float, float, torch.Tensor]:
    tracemalloc.start()
    start = time.perf_counter()
    out = farthest_point_sample(xyz, m, backend=backend)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, out


def main() -> None:
    """Print the comparison table."""
    if "fpsample" not in list_fps_backends():
        print("fpsample is not installed (pip install curate[fast]); nothing to compare")
        return
    rng = np.random.default_rng(0)
    print(f"{'B x N -> m':>22} | {'backend':>8} | {'seconds':>8} | {'peak MiB':>8} | "
          f"{'x torch':>7} | same")
    for batch, n, m in CASES:
        xyz = torch.from_numpy((rng.normal(size=(batch, n, 3)) * 20).astype(np.float32))
        ref_s, ref_mem, ref = _time(xyz, m, "torch")
        fast_s, fast_mem, fast = _time(xyz, m, "fpsample")
        label = f"{batch} x {n} -> {m}"
        print(f"{label:>22} | {'torch':>8} | {ref_s:8.3f} | {ref_mem:8.1f} | {1.0:7.2f} |")
        print(f"{label:>22} | {'fpsample':>8} | {fast_s:8.3f} | {fast_mem:8.1f} | "
              f"{ref_s / fast_s:7.2f} | {bool(torch.equal(ref, fast))}")


if __name__ == "__main__":
    main()
