"""Tiny smoke runs of the benchmarks that had none (results go to a tmp dir, never the committed ones).

Each runs the benchmark's own command line at a size that finishes in seconds to a minute and
checks the result file it wrote: the columns, a row per measured method and the named peer where
the benchmark has one. ``test_every_benchmark_has_a_smoke_run`` keeps it that way: a new
``benchmarks/NAME.py`` without a test naming ``benchmarks.NAME`` fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
    # the same tests as tables of their own (the READMEs render them from these files)
    assert _only_result(tmp_path / "results", "loop-signal-smoke-embedding-tests")["rows"] == [pair]
    signs = _only_result(tmp_path / "results", "loop-signal-smoke-sign-tests")["rows"]
    assert {r["strategy"] for r in signs} == {"kcenter@bev-hist", "kcenter@recon-tiny"}
    assert signs == data["extra"]["sign_tests"]

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

    # mgral's reward noise: the plan after that cell (base, 2 probes, 1 held-out) fine-tuned twice
    pn_dir = tmp_path / "probe-noise-results"
    pn_flags = ["probe-noise", "--root", str(tmp_path / "loop"), "--frames", "80", "--preset", "loop",
                "--classes", "Car", "--schedule", "retrain", "--round-iters", "4",
                "--eval-in-range", "--eval-min-points", "5", "--drives", "report",
                "--embeddings", "bev-hist,recon-tiny", "--pool-size", "24", "--val-size", "8",
                "--initial", "4", "--budget", "4", "--seeds", "0", "--noise-cells", "random:0:1",
                "--mgral-options", '{"lut_frames": 3, "probes": 2, "probe_size": 1, "heldout": 1}',
                "--repeats", "2", "--name", "loop-probe-noise-smoke"]
    _run("benchmarks.loop", pn_flags, pn_dir)
    pn = _only_result(pn_dir, "loop-probe-noise-smoke")
    [prow] = _only_result(pn_dir, "loop-probe-noise-smoke-cells")["rows"]
    assert (prow["cell"], prow["repeats"], prow["batches"]) == ("random:0:1", 2, 3)
    assert prow["design"] == "heldout=1 lut_frames=3 probe_size=1 probes=2"
    assert sorted((r["repeat"], r["run"]) for r in pn["rows"]) == [
        (k, n) for k in (0, 1) for n in ("base", "heldout-0", "probe-0", "probe-1")]
    assert len({r["finetune_seed"] for r in pn["rows"]}) == 2
    assert all(r["gain"] == 0.0 for r in pn["rows"] if r["run"] == "base")
    [pcell] = pn["extra"]["cells"]
    assert pcell["cell"] == "random:0:1" and pcell["mgral_round"] == 2 and pcell["repeats"] == 2
    assert np.asarray(pcell["gains"]).shape == (2, 3)
    # a second run resumes from the stored fine-tunes: none runs again
    stored = sorted((tmp_path / "loop" / "probe-noise").rglob("repeat-*.json"))
    before = [p.stat().st_mtime_ns for p in stored]
    _run("benchmarks.loop", pn_flags, pn_dir)
    assert [p.stat().st_mtime_ns for p in stored] == before
    assert _only_result(pn_dir, "loop-probe-noise-smoke")["rows"] == pn["rows"]
    # the same design scored by the tuning frames' training loss: the fine-tunes are reused
    weights = sorted((tmp_path / "loop" / "probe-noise").rglob("*.pth"))
    trained_at = [p.stat().st_mtime_ns for p in weights]
    loss_flags = list(pn_flags)
    loss_flags[loss_flags.index("--mgral-options") + 1] = (
        '{"lut_frames": 3, "probes": 2, "probe_size": 1, "heldout": 1, "metric": "tuning_loss"}')
    loss_flags[loss_flags.index("--name") + 1] = "loop-probe-noise-loss-smoke"
    _run("benchmarks.loop", loss_flags, pn_dir)
    assert [p.stat().st_mtime_ns for p in weights] == trained_at and len(weights) == 8
    assert len(sorted((tmp_path / "loop" / "probe-noise").rglob("repeat-*.tuning_loss.json"))) == 2
    loss = _only_result(pn_dir, "loop-probe-noise-loss-smoke")
    assert [(r["repeat"], r["run"], r["batch"]) for r in loss["rows"]] == [
        (r["repeat"], r["run"], r["batch"]) for r in pn["rows"]]
    assert all(np.isfinite(r["metric"]) and r["metric"] != m["metric"] for r, m in zip(loss["rows"], pn["rows"]))
    assert "ln(base loss / loss)" in loss["notes"]
    # both designs side by side, with the mAP run as the loss run's reference (same batches)
    _run("benchmarks.loop", loss_flags + ["--reference", str(pn_dir / "loop-probe-noise-smoke.json")], pn_dir)
    [lcell] = _only_result(pn_dir, "loop-probe-noise-loss-smoke")["extra"]["cells"]
    assert (lcell["reference"], lcell["reference_repeats"]) == ("loop-probe-noise-smoke", 2)
    assert lcell["reference_spearman"] is None or -1.0 <= lcell["reference_spearman"] <= 1.0
    _run("benchmarks.loop", ["probe-designs", "--designs", "loop-probe-noise-smoke,loop-probe-noise-loss-smoke",
                             "--name", "loop-probe-designs-smoke"], pn_dir)
    designs = _only_result(pn_dir, "loop-probe-designs-smoke")["rows"]
    assert [(d["result"], d["cells"]) for d in designs] == [("loop-probe-noise-smoke", 1),
                                                            ("loop-probe-noise-loss-smoke", 1)]
    assert "metric=tuning_loss" in designs[1]["design"] and "metric" not in designs[0]["design"]
    # the same stored fine-tunes read again as if each probe averaged m = 1, 2 of its repeats
    _run("benchmarks.loop", ["probe-averaged", "--designs", "loop-probe-noise-smoke,loop-probe-noise-loss-smoke",
                             "--name", "loop-probe-averaged-smoke"], pn_dir)
    averaged = _only_result(pn_dir, "loop-probe-averaged-smoke")["rows"]
    assert [d["result"] for d in averaged] == ["loop-probe-noise-smoke", "loop-probe-noise-loss-smoke"]
    assert "metric=tuning_loss" in averaged[1]["design"]
    # one held-out batch ranks nothing: no Spearman, and none is made up
    assert all(d["cells"] == 0 and d["table_spearman_m1"] is None and d["table_spearman_m2"] is None
               for d in averaged)
    acells = _only_result(pn_dir, "loop-probe-averaged-smoke-cells")["rows"]
    assert {(c["cell"], c["repeats"], c["probes"], c["heldout"]) for c in acells} == {("random:0:1", 2, 2, 1)}


def test_loop_round_epochs_and_train_repeats_smoke(tmp_path: Path) -> None:
    """``--round-epochs`` (epochs fixed, iterations growing with the labels) with
    ``--train-repeats 2`` (two paired trainings per cell, mAP = their mean), then ``tune`` judging
    the run as a schedule candidate; repeat 0 is the training a one-training run does."""
    flags = ["--frames", "80", "--preset", "loop", "--classes", "Car", "--schedule", "retrain",
             "--round-epochs", "2", "--eval-in-range", "--eval-min-points", "5", "--drives", "report",
             "--pool-size", "24", "--val-size", "8", "--initial", "4", "--budget", "4", "--rounds", "2",
             "--seeds", "0", "--strategies", "random,entropy"]
    root = tmp_path / "loop"
    _run("benchmarks.loop", ["al", "--root", str(root), *flags, "--train-repeats", "2", "--name", "loop-rep"],
         tmp_path / "results")
    data = _only_result(tmp_path / "results", "loop-rep")
    cells = [json.loads(line) for line in (root / "results.jsonl").read_text().splitlines()]
    assert {(c["strategy"], c["round"]) for c in cells} == {("initial", 0), ("random", 1), ("entropy", 1)}
    for c in cells:
        assert c["config"]["round_epochs"] == 2 and c["config"]["train_repeats"] == 2
        assert c["config"]["round_iters"] is None
        assert c["epochs"] == 2 and c["iters"] == 2 * c["labeled_frames"] // 2  # 2 epochs, batch 2
        assert c["train_repeats"] == 2 and len(c["repeats"]) == 2
        assert c["map_bev_loose"] == pytest.approx(np.mean(c["map_bev_loose_repeats"]))
        assert c["map_bev_loose_repeat_std"] == pytest.approx(np.std(c["map_bev_loose_repeats"], ddof=1))
        assert [r["train_seed"] for r in c["repeats"]] == [c["seed"] * 100 + c["round"],
                                                           2_000_000 + 10_000 + c["seed"] * 100 + c["round"]]
        assert (root / "cells" / f"{c['strategy']}-s0-r{c['round']}" / "train-1").is_dir()
    # paired: both strategies of round 1 trained with the same seeds; the first model scored the pool
    rnd1 = [c for c in cells if c["round"] == 1]
    assert rnd1[0]["repeats"][1]["train_seed"] == rnd1[1]["repeats"][1]["train_seed"]
    initial = next(c for c in cells if c["round"] == 0)
    assert initial["scores_file"].endswith("initial-s0-r0/scores.npz")
    assert initial["checkpoint"].startswith(str(root / "cells" / "initial-s0-r0" / "train" / ""))
    row = next(r for r in data["rows"] if r["strategy"] == "random" and r["round"] == 1)
    assert row["train_repeats"] == 2 and len(row["map_bev_loose_repeats"]) == 2
    summary = _only_result(tmp_path / "results", "loop-rep-summary")
    assert all("map_bev_loose_repeat_std_mean" in r for r in summary["rows"])

    # the same cells with one training: the K = 1 cell is repeat 0 of the K = 2 run
    # (same seed, same data: the same loss curve on CPU)
    one = tmp_path / "one"
    _run("benchmarks.loop", ["al", "--root", str(one), *flags, "--train-repeats", "1", "--name", "loop-one"],
         tmp_path / "results-one")
    ones = {(c["strategy"], c["round"]): c for c in
            (json.loads(line) for line in (one / "results.jsonl").read_text().splitlines())}
    for c in cells:
        o = ones[(c["strategy"], c["round"])]
        assert o["rows"] == c["rows"] and o["train_repeats"] == 1 and o["map_bev_loose_repeat_std"] is None
        assert (o["loss_first"], o["loss_last"]) == pytest.approx((c["loss_first"], c["loss_last"]))
        assert o["map_bev_loose"] == pytest.approx(c["map_bev_loose_repeats"][0])

    # the rule over that run: candidates K = 1 and 2 of its schedule
    _run("benchmarks.loop", ["tune", "--tune-results", str(tmp_path / "results" / "loop-rep.json"),
                             "--name", "loop-tune-smoke"], tmp_path / "tune")
    rule = _only_result(tmp_path / "tune", "loop-tune-smoke-rule")
    assert [(r["candidate"], r["train_repeats"]) for r in rule["rows"]] == [
        ("round-epochs 2, 1 training", 1), ("round-epochs 2, 2 trainings", 2)]
    assert rule["rows"][1]["iters_per_seed"] == pytest.approx(2 * rule["rows"][0]["iters_per_seed"])
    rounds = _only_result(tmp_path / "tune", "loop-tune-smoke")
    assert {(r["train_repeats"], r["round"]) for r in rounds["rows"]} == {(1, 0), (1, 1), (2, 0), (2, 1)}


def test_loop_bad_schedule_options_fail_before_any_work(tmp_path: Path) -> None:
    for flags, message in ((["--round-epochs", "0"], "--round-epochs 0: must be at least 1"),
                           (["--round-epochs", "10", "--round-iters", "200"], "both given"),
                           (["--round-epochs", "10", "--schedule", "finetune"], "needs --schedule retrain"),
                           (["--train-repeats", "0"], "--train-repeats 0: must be at least 1")):
        done = subprocess.run([sys.executable, "-m", "benchmarks.loop", "al", "--root", str(tmp_path / "r"),
                               "--schedule", "retrain", *flags], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "CURATE_RESULTS_DIR": str(tmp_path)})
        assert done.returncode != 0 and message in done.stderr, (flags, done.stderr[-2000:])
    assert not (tmp_path / "r").exists()  # nothing generated


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
