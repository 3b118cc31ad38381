"""Tiny CPU run of ``benchmarks/gpu_paths.py``: the result's structure, CUDA rows skipped, and the
CPU-side reference comparisons (torch-on-CPU k-center, float16 pool, pruned numpy) equal.

Nothing here asserts a timing. The CUDA figures come from a GPU machine
(``benchmarks/results/gpu_paths-h200.json``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bench_run import run_benchmark  # tests/bench_run.py
from benchmarks.gpu_paths import COLUMNS, SKIP, _job_precision_helpers, tie_gap
from benchmarks.results_io import read_result


def test_gpu_paths_smoke_on_cpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this smoke test checks the CPU-only shape of the result")
    run_benchmark("benchmarks.gpu_paths",
                  ["--n", "3000", "--dim", "16", "--budget", "30", "--labeled", "10",
                   "--frames", "1", "--small", "--embedders", "bev-hist,recon-tiny",
                   "--boxes", "150", "--name", "gpu_paths-smoke", "--commit", "abc123"],
                  tmp_path, timeout=120)
    data = read_result(tmp_path / "gpu_paths-smoke.json")
    assert data["benchmark"] == "gpu_paths" and data["columns"] == COLUMNS
    assert data["commit"] == "abc123" and data["dirty"] is True
    assert data["extra"]["cuda"] is False
    rows = data["rows"]
    assert all(set(r) == set(COLUMNS) for r in rows)
    assert {r["path"] for r in rows} == {"kcenter", "embed", "rotated_iou"}
    assert not [r for r in rows if r["status"].startswith("error")]
    cuda_rows = [r for r in rows if "cuda" in r["run"]]
    assert cuda_rows and all(r["status"] == SKIP for r in cuda_rows)
    # CPU comparisons against the numpy reference: torch on CPU, pruned numpy, float16 pool.
    compared = [r for r in rows if r["path"] == "kcenter" and r["status"] == "ok"
                and r["identical to reference"] is not None]
    runs = {r["run"] for r in compared}
    assert {"numpy auto (CPU)", "torch cpu (CUDA code path on CPU)",
            "numpy naive (float16 pool)"} <= runs
    assert all(r["identical to reference"] and r["max abs diff"] == 0.0 for r in compared)
    embed_ref = [r for r in rows if r["path"] == "embed" and r["status"] == "ok"]
    assert len(embed_ref) == 2 and all(r["frames/s"] > 0 for r in embed_ref)
    iou = [r for r in rows if r["path"] == "rotated_iou" and r["status"] == "ok"]
    assert len(iou) == 1 and iou[0]["seconds"] >= 0


def test_job_precision_helpers_from_source_match_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from curate.jobs.embed import _resolve_precision

    resolve, autocast, how = _job_precision_helpers()
    assert how.startswith("imported")
    monkeypatch.setitem(sys.modules, "curate.jobs.embed", None)  # import fails, as without lancedb
    resolve_src, autocast_src, how_src = _job_precision_helpers()
    assert how_src.startswith("executed from the source")
    for precision, device in [("auto", "cpu"), ("auto", "cuda:0"), ("fp32", "cuda")]:
        assert resolve_src(precision, device) == _resolve_precision(precision, device)
    with autocast_src("fp32", "cpu"):
        pass


def test_tie_gap_is_the_relative_distance_gap() -> None:
    pool = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 2.0], [1.0, 0.0]], dtype=np.float32)
    labeled = np.array([True, False, False, False])
    ref, got = np.array([1, 2]), np.array([2, 1])
    assert tie_gap(pool, labeled, ref, got, 0) == pytest.approx(1.0 / 3.0)
    assert tie_gap(pool, labeled, ref, ref, None) is None
