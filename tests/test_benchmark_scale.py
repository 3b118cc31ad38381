"""Smoke run of benchmarks/scale.py (tiny sizes; results to a temp dir, never the committed ones)."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.scale import drive_vectors, frame_id, main


def test_drive_vectors_slices_are_reproducible() -> None:
    whole = drive_vectors(1000, 16, seed=4, frames_per_drive=50)
    part = drive_vectors(333, 16, seed=4, frames_per_drive=50, start=480)
    assert np.array_equal(whole[480:813], part)
    # runs of near-duplicates: many consecutive frames closer than 0.1
    steps = np.linalg.norm(np.diff(whole, axis=0), axis=1)
    assert (steps < 0.1).mean() > 0.2
    assert frame_id(12345) < frame_id(12346) and frame_id(199) < frame_id(200)


def test_scale_smoke(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CURATE_RESULTS_DIR", str(tmp_path / "results"))
    main(["--sizes", "1200", "--dim", "16", "--ingest-batch", "400", "--commit-rows", "300",
          "--labeled", "5", "--naive-kcenter", "--workdir", str(tmp_path / "ws"),
          "--name", "scale-smoke"])
    res = json.loads((tmp_path / "results" / "scale-smoke.json").read_text())
    assert res["benchmark"] == "scale"
    phases = {r["phase"] for r in res["rows"]}
    assert {"ingest", "embed-commit", "count", "search", "select"} <= phases
    whats = [r["what"] for r in res["rows"] if r["phase"] == "select"]
    for m in ("kcenter", "probcover", "typiclust", "kcenter-naive"):
        assert f"{m}: total" in whats, whats
    naive = next(r for r in res["rows"] if r["what"] == "kcenter-naive: total")
    assert "identical ids to pruned kcenter: True" in naive["notes"]
    count = next(r for r in res["rows"] if r["phase"] == "count")
    # of the 6 drives only drive 4 is night (4 % 3 == 1) and rain ((4 // 3) % 4 == 1)
    assert count["notes"].startswith("200 rows")
    sel = res["extra"]["select-1200-kcenter"]
    assert sel["select_s"] <= sel["total_s"] and sel["peak_mib"] > 0
    assert 0 <= sel["read_vectors_s"] <= sel["rest_s"]
    build = res["extra"]["build-1200"]
    assert len(build["ingest_curve"]) == 3 and len(build["commit_curve"]) == 4
    assert build["commit_curve"][-1][0] == 1200
    assert build["ingest_flatness"]["max_over_first_mean"] > 0


def test_scale_smoke_sharded_float16_without_search(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CURATE_RESULTS_DIR", str(tmp_path / "results"))
    main(["--sizes", "1200", "--dim", "16", "--ingest-batch", "600", "--commit-rows", "600",
          "--labeled", "5", "--dtype", "float16", "--methods", "kcenter,kcenter-sharded",
          "--shards", "3", "--measure-loss", "--search-max-rows", "1000",
          "--workdir", str(tmp_path / "ws"), "--name", "scale-1200"])
    res = json.loads((tmp_path / "results" / "scale-1200.json").read_text())
    search = [r for r in res["rows"] if r["phase"] == "search"]
    assert [r["what"] for r in search] == ["not run"] and "search-max-rows" in search[0]["notes"]
    sharded = next(r for r in res["rows"] if r["what"] == "kcenter-sharded: total")
    assert "3 shards (local)" in sharded["notes"] and "radius sharded" in sharded["notes"]
    info = res["extra"]["select-1200-kcenter-sharded"]["info"]
    exact = res["extra"]["select-1200-kcenter"]["info"]
    # the unsharded run inside the sharded one is the same exact k-center as the plain run
    assert np.isclose(info["loss"]["coverage_radius"]["unsharded"], exact["coverage_radius"],
                      rtol=1e-5)
    assert res["extra"]["select-1200-kcenter-sharded"]["worker_peak_mib"] > 0  # the workers' VmHWM
    # the 100M cost model takes its per-row costs from the largest scale result present
    import shutil

    from benchmarks import ray_scale
    from benchmarks.results_io import RESULTS_DIR

    for name in ("ray_scale-embed.json", "ray_scale-select.json"):
        shutil.copy(RESULTS_DIR / name, tmp_path / "results")
    ray_scale.main(["cost", "--name", "cost-smoke"])
    cost = json.loads((tmp_path / "results" / "cost-smoke.json").read_text())
    stages = {r["stage"] for r in cost["rows"]}
    assert {"ingest (driver)", "embed-commit (driver)", "kcenter-select (pruned exact)",
            "kcenter-select (sharded)"} <= stages, stages
    ingest = next(r for r in cost["rows"] if r["stage"] == "ingest (driver)")
    per_row = res["extra"]["build-1200"]["ingest_total_s"] / 1200
    assert np.isclose(ingest["hours"], per_row * 100_000_000 / 3600)
