"""Tiny smoke runs of the benchmarks that had none (results go to a tmp dir, never the committed ones).

Each runs the benchmark's own command line at a size that finishes in seconds to a minute and
checks the result file it wrote: the columns, a row per measured method and the named peer where
the benchmark has one. ``test_every_benchmark_has_a_smoke_run`` keeps it that way: a new
``benchmarks/NAME.py`` without a test naming ``benchmarks.NAME`` fails.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from bench_run import run_benchmark  # tests/bench_run.py
from benchmarks.results_io import read_result

ROOT = Path(__file__).resolve().parents[1]
#: Modules of benchmarks/ that are tools, not benchmarks.
NOT_BENCHMARKS = {"__init__", "_child", "report", "results_io"}


def _run(module: str, args: list[str], results: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return run_benchmark(module, args, results, timeout)


def _only_result(results: Path, name: str = "") -> dict:
    """The one result under ``results`` (or, with ``name``, the result ``name`` among several)."""
    files = sorted(results.glob("*.json"))
    if name:
        assert results / f"{name}.json" in files, [f.name for f in files]
        files = [results / f"{name}.json"]
    assert len(files) == 1, [f.name for f in files]
    data = read_result(files[0])
    assert data["rows"] and set(data["columns"]) == set(data["rows"][0])
    assert data["commit"] and data["machine"]["cpus"] and data["args"]
    return data


def test_every_benchmark_has_a_smoke_run() -> None:
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    missing = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        name = path.stem
        if name in NOT_BENCHMARKS:
            continue
        if not re.search(rf"benchmarks[./]{name}\b|from benchmarks import {name}\b", tests):
            missing.append(name)
    assert not missing, f"benchmarks without a smoke run in tests/: {missing}"


def test_nuscenes_ingest_smoke(tmp_path: Path) -> None:
    _run("benchmarks.nuscenes_ingest", ["--samples", "24"], tmp_path)
    data = _only_result(tmp_path)
    methods = [r["method"] for r in data["rows"]]
    assert any("devkit" in m for m in methods) and any("curate ingest" in m for m in methods)
    assert all(r["samples"] == 24 and r["boxes"] > 0 for r in data["rows"])


def test_embed_throughput_smoke(tmp_path: Path) -> None:
    _run("benchmarks.embed_throughput", ["--frames", "6", "--repeats", "1", "--workers", "0", "1",
                                         "--models", "bev-hist", "--batch-size", "2",
                                         "--name", "smoke"], tmp_path)
    data = _only_result(tmp_path)
    assert len(data["rows"]) >= 2


def test_probcover_delta_smoke(tmp_path: Path) -> None:
    _run("benchmarks.probcover_delta", ["--n", "1500", "--dim", "16", "--max-balls", "16,64"], tmp_path)
    assert len(_only_result(tmp_path)["rows"]) >= 2


def test_ivf_nprobe_smoke(tmp_path: Path) -> None:
    _run("benchmarks.ivf_nprobe", ["--n", "3000", "--dim", "16", "--queries", "20"], tmp_path)
    assert len(_only_result(tmp_path)["rows"]) >= 2


def test_ray_scale_select_and_cost_smoke(tmp_path: Path) -> None:
    """Sharded vs exact selection (local engine) on a tiny pool, then the 100M cost model from it
    and the committed embedding measurements."""
    import shutil

    _run("benchmarks.ray_scale", ["select", "--n", "2000", "--dim", "16", "--budget", "20",
                                  "--shards", "2", "--engines", "local", "--name", "ray_scale-select"],
         tmp_path)
    assert _only_result(tmp_path)["rows"]
    shutil.copy(ROOT / "benchmarks" / "results" / "ray_scale-embed.json", tmp_path)
    _run("benchmarks.ray_scale", ["cost", "--name", "cost-smoke"], tmp_path)
    assert read_result(tmp_path / "cost-smoke.json")["rows"]


def test_eval_embeddings_smoke(tmp_path: Path, ws) -> None:
    _run("benchmarks.eval_embeddings", ["--workspace", str(ws.path), "--embed", "bev-hist",
                                        "--labels", "none", "--name", "eval-smoke"], tmp_path / "results")
    data = _only_result(tmp_path / "results")
    assert "bev-hist" in data["columns"]  # one column per embedding, one row per metric
    assert any(isinstance(r["bev-hist"], float) for r in data["rows"])


def test_loop_smoke(tmp_path: Path) -> None:
    """One round of the strategy A/B with the tiny PointPillars, one seed, two strategies."""
    _run("benchmarks.loop", ["al", "--root", str(tmp_path / "loop"), "--frames", "40",
                             "--pool-size", "24", "--val-size", "8", "--initial", "4", "--budget", "4",
                             "--rounds", "2", "--seeds", "0", "--strategies", "random,kcenter",
                             "--epochs", "1", "--initial-epochs", "1", "--name", "loop-smoke"],
         tmp_path / "results")
    data = _only_result(tmp_path / "results", "loop-smoke")
    assert {r["strategy"] for r in data["rows"]} == {"random", "kcenter"}
    # its companion: mean / std over seeds per (strategy, round); no mgral, so no targets file
    summary = _only_result(tmp_path / "results", "loop-smoke-summary")
    assert {(r["strategy"], r["round"]) for r in summary["rows"]} >= {("random", 1), ("kcenter", 1)}
    assert not (tmp_path / "results" / "loop-smoke-targets.json").exists()


def test_loop_signal_embeddings_smoke(tmp_path: Path) -> None:
    """The high-signal setting (dense preset, Car only, retrain per round, range-aware metric) with
    one strategy on two embeddings: every strategy row carries its embedding and the result pairs
    the embeddings with a sign test."""
    _run("benchmarks.loop", ["al", "--root", str(tmp_path / "loop"), "--frames", "80", "--preset", "loop",
                             "--classes", "Car", "--schedule", "retrain", "--round-iters", "4",
                             "--eval-in-range", "--eval-min-points", "5", "--drives", "report",
                             "--embeddings", "bev-hist,recon-tiny", "--pool-size", "24", "--val-size", "8",
                             "--initial", "4", "--budget", "4", "--skip-initial-model",
                             "--rounds", "2", "--seeds", "0", "--strategies", "random,kcenter",
                             "--name", "loop-signal-smoke"],
         tmp_path / "results")
    data = _only_result(tmp_path / "results", "loop-signal-smoke")
    assert {r["strategy"] for r in data["rows"]} == {"random", "kcenter@bev-hist", "kcenter@recon-tiny"}
    assert {r["embedding"] for r in data["rows"] if r["base"] == "kcenter" and r["round"] == 1} == {"bev-hist",
                                                                                                  "recon-tiny"}
    # round 0 (the shared random set) was not trained: no model reads it under --schedule retrain
    assert all(r.get("map_bev_loose") is None for r in data["rows"] if r["round"] == 0)
    assert all(isinstance(r["map_per_box"], float) for r in data["rows"] if r["round"] == 1)
    [pair] = data["extra"]["embedding_tests"]
    assert (pair["strategy"], pair["a"], pair["b"], pair["cells"]) == ("kcenter", "bev-hist", "recon-tiny", 1)

    # the training-noise yardstick: the random cell of round 1 retrained twice with other seeds
    noise_dir = tmp_path / "noise-results"
    _run("benchmarks.loop", ["noise", "--root", str(tmp_path / "loop"), "--frames", "80", "--preset", "loop",
                             "--classes", "Car", "--schedule", "retrain", "--round-iters", "4",
                             "--eval-in-range", "--eval-min-points", "5", "--drives", "report",
                             "--embeddings", "bev-hist,recon-tiny", "--pool-size", "24", "--val-size", "8",
                             "--initial", "4", "--budget", "4", "--skip-initial-model", "--rounds", "2",
                             "--seeds", "0", "--strategies", "random,kcenter", "--noise-cells", "random:0:1",
                             "--repeats", "2", "--name", "loop-noise-smoke"],
         noise_dir)
    noise = _only_result(noise_dir)
    assert [(r["strategy"], r["repeat"]) for r in noise["rows"]] == [("random", 0), ("random", 1)]
    assert len({r["train_seed"] for r in noise["rows"]}) == 2
    [cell] = noise["extra"]["cells"]
    assert cell["cell"] == "random:0:1" and cell["repeats"] == 2
    assert cell["min"] <= cell["mean"] <= cell["max"]


def test_loop_camera_and_fused_embeddings_smoke(tmp_path: Path) -> None:
    """The study's camera (EfficientNet-Lite0 on the frame image) and fused (pretrained recon +
    camera through ws.fuse) embeddings: each gets its kcenter row, and the fused vectors are the
    concatenation of the two normalised sources."""
    import curate

    root = tmp_path / "loop"
    _run("benchmarks.loop", ["al", "--root", str(root), "--frames", "80", "--preset", "loop",
                             "--classes", "Car", "--schedule", "retrain", "--round-iters", "2",
                             "--eval-in-range", "--eval-min-points", "5", "--drives", "report",
                             "--embeddings", "bev-hist,recon-tiny-ssl,camera,fused", "--pretrain-steps", "2",
                             "--pool-size", "24", "--val-size", "8", "--initial", "4", "--budget", "4",
                             "--skip-initial-model", "--rounds", "2", "--seeds", "0",
                             "--strategies", "random,kcenter", "--name", "loop-camera-smoke"],
         tmp_path / "results")
    data = _only_result(tmp_path / "results", "loop-camera-smoke")
    assert {r["strategy"] for r in data["rows"] if r["round"] == 1} == {
        "random", "kcenter@bev-hist", "kcenter@recon-tiny-ssl", "kcenter@camera", "kcenter@fused"}
    ws = curate.connect(root / "ws")
    ids = [str(i) for i in ws.frames(columns=["id"]).column("id").to_pylist()][:5]
    _, cam = ws.vectors("camera", ids)
    _, rec = ws.vectors("recon-tiny-ssl", ids)
    _, fus = ws.vectors("fused", ids)
    assert fus.shape[1] == cam.shape[1] + rec.shape[1]
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(fus, np.concatenate([unit(rec), unit(cam)], axis=1), atol=1e-5)


def test_nuscenes_loop_smoke(tmp_path: Path) -> None:
    """The 2-round CenterPoint loop through the CLI on a tiny nuScenes-format pool."""
    _run("benchmarks.nuscenes_loop", ["--frames", "16", "--per-scene", "8", "--initial", "4",
                                      "--budget", "4", "--epochs", "1", "--skip-peer"],
         tmp_path)
    assert _only_result(tmp_path)["rows"]
