"""FPS backends on CPU: ``fpsample`` (compiled, exact official-op semantics) vs the torch reference.

Run: ``python -m benchmarks.fps`` (from the repository root; ``--cases 2x512x16`` for other
sizes, ``--name`` for the result's name). Prints time, peak traced memory (tracemalloc: numpy buffers;
torch CPU tensors are not traced) and the speed ratio against the ``torch`` backend measured in
the same run, and checks that the indices are identical. The table is written with
:func:`benchmarks.results_io.write_result` to ``benchmarks/results/<name>.json`` (default ``fps``).
"""

from __future__ import annotations

import argparse
import logging
import time
import tracemalloc

import numpy as np
import torch

from benchmarks.results_io import write_result
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


def _cases(text: str) -> list[tuple[int, int, int]]:
    """``"1x120000x8192,8x8192x256"`` -> ``[(1, 120000, 8192), (8, 8192, 256)]``."""
    out = []
    for item in filter(None, text.split(",")):
        parts = item.lower().split("x")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise SystemExit(f"--cases: {item!r} is not BxNxM (batch x points x samples)")
        out.append(tuple(int(p) for p in parts))
    return out


def main() -> None:
    """Print the comparison table and write it as a result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(f"{b}x{n}x{m}" for b, n, m in CASES),
                        help="comma list of BxNxM: batch x points -> samples")
    parser.add_argument("--name", default="fps", help="result name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    backends = list_fps_backends()
    rng = np.random.default_rng(0)
    print(f"{'B x N -> m':>22} | {'backend':>8} | {'seconds':>8} | {'peak MiB':>8} | "
          f"{'x torch':>7} | same")
    rows = []
    for batch, n, m in _cases(args.cases):
        xyz = torch.from_numpy((rng.normal(size=(batch, n, 3)) * 20).astype(np.float32))
        ref_s, ref_mem, ref = _time(xyz, m, "torch")
        label = f"{batch} x {n} -> {m}"
        print(f"{label:>22} | {'torch':>8} | {ref_s:8.3f} | {ref_mem:8.1f} | {1.0:7.2f} |")
        rows.append({"case": label, "backend": "torch", "seconds": ref_s, "peak MiB": ref_mem,
                     "x torch": 1.0, "same indices": None})
        if "fpsample" not in backends:
            continue
        fast_s, fast_mem, fast = _time(xyz, m, "fpsample")
        same = bool(torch.equal(ref, fast))
        print(f"{label:>22} | {'fpsample':>8} | {fast_s:8.3f} | {fast_mem:8.1f} | "
              f"{ref_s / fast_s:7.2f} | {same}")
        rows.append({"case": label, "backend": "fpsample", "seconds": fast_s,
                     "peak MiB": fast_mem, "x torch": ref_s / fast_s, "same indices": same})
    notes = "" if "fpsample" in backends else "fpsample not installed (pip install curate[fast])"
    if notes:
        print(notes)
    write_result("fps", rows, name=args.name, args=args, notes=notes,
                 extra={"torch_threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
