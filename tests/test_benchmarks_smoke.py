"""Tiny-size smoke runs of the benchmark scripts: each runs end to end and writes a valid result.

Results go to a temporary ``CURATE_RESULTS_DIR`` so the committed files under
``benchmarks/results/`` are never touched. Sizes are the smallest that exercise every code path;
nothing here asserts a timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench_run import run_benchmark  # tests/bench_run.py
from benchmarks.results_io import read_result

ROOT = Path(__file__).resolve().parents[1]


def _run(module: str, args: list[str], results: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return run_benchmark(module, args, results, timeout)


def _result(results: Path, name: str, benchmark: str) -> dict:
    data = read_result(results / f"{name}.json")
    assert data["benchmark"] == benchmark and data["name"] == name
    assert data["rows"] and set(data["columns"]) == set(data["rows"][0])
    assert data["commit"] and data["machine"]["cpus"] and data["args"]
    return data


def test_fps_smoke(tmp_path: Path) -> None:
    _run("benchmarks.fps", ["--cases", "2x256x8", "--name", "fps-smoke"], tmp_path)
    data = _result(tmp_path, "fps-smoke", "fps")
    assert data["rows"][0]["backend"] == "torch" and data["rows"][0]["case"] == "2 x 256 -> 8"
    assert all(r["same indices"] in (True, None) for r in data["rows"])


def test_selectors_smoke(tmp_path: Path) -> None:
    _run("benchmarks.selectors", ["--sizes", "1500", "--dim", "8", "--budget", "10", "--no-peers",
                                  "--name", "selectors-smoke"], tmp_path)
    data = _result(tmp_path, "selectors-smoke", "selectors")
    assert [r["method"] for r in data["rows"]] == ["kcenter", "probcover", "typiclust"]
    assert all(r["N"] == 1500 and r["time s"] is not None for r in data["rows"])


def test_service_smoke(tmp_path: Path) -> None:
    _run("benchmarks.service", ["--clients", "2", "--requests", "6", "--frames", "12",
                                "--peer-requests", "12", "--name", "service-smoke"], tmp_path)
    data = _result(tmp_path, "service-smoke", "service")
    total = data["rows"][-1]
    assert total["operation"] == "all" and total["n"] == 12
    assert data["extra"]["errors"] == 0 and data["extra"]["run_ids_unique"] is True


def test_image_ssl_smoke(tmp_path: Path, ws) -> None:
    _run("benchmarks.image_ssl", ["--workspace", str(ws.path), "--scratch", str(tmp_path / "scratch"),
                                  "--parts", "synthetic", "--steps", "2",
                                  "--batch-size", "8", "--name", "ssl-smoke"], tmp_path)
    data = _result(tmp_path, "ssl-smoke-synthetic", "image_ssl")
    names = [r["embedder"] for r in data["rows"]]
    assert names[0] == "image-ssl (SimCLR on pool)" and names[-1] == "majority-class prior"


@pytest.fixture(scope="module")
def shared_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 small frames, 5 drives of 6 frames on 2 shared maps, ingested with their labels."""
    import curate
    from curate.sources.kitti import KittiSource
    from curate.sources.synthetic import generate

    base = tmp_path_factory.mktemp("shared")
    generate(base / "kitti", 30, seed=0, small=True, progress=False, frames_per_drive=6,
             shared_maps=2)
    curate.connect(base / "ws").ingest(KittiSource(base / "kitti"), progress=False)
    return base / "ws"


def test_embedders_protocol_smoke(tmp_path: Path, shared_ws: Path) -> None:
    done = _run("benchmarks.embedders", ["--workspace", str(shared_ws), "--name", "emb-smoke"],
                tmp_path)
    data = _result(tmp_path, "emb-smoke-protocol", "embedders")
    names = [r["embedder"] for r in data["rows"]]
    assert names[0] == "recon-tiny random-init (shipped default)"
    assert "bev-hist (shipped default)" in names and names[-1].startswith("prior")
    prior = data["rows"][-1]
    assert prior["presence AUC"] == 0.5 and prior["probe weather"] is not None
    assert data["extra"]["tuning_drives"] == ["drive_0000"] and data["extra"]["report_frames"] == 24
    assert "revisit R@10" in data["columns"] and data["rows"][0]["revisit R@10"] is not None
    assert "protocol:" in done.stdout


@pytest.mark.parametrize("section", ["quality"])
def test_embedders_needs_a_checkpoint_for_old_sections(tmp_path: Path, ws, section: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CURATE_RESULTS_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.embedders", "--workspace", str(ws.path),
                           "--sections", section], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0 and "need --checkpoint" in done.stderr


def test_al_quality_parts_combine_and_tuning_smoke(tmp_path: Path) -> None:
    """al_quality in parts (as the real run is split), merged with the target table; the
    UHerding temperature check on the tuning split."""
    common = ["--synthetic", "240", "--seeds", "1", "--budgets", "10,20",
              "--out", str(tmp_path / "c.png")]
    _run("benchmarks.al_quality", common + ["--strategies", "random,maxherding,margin",
                                             "--name", "alq-a"], tmp_path)
    _run("benchmarks.al_quality", common + ["--strategies", "uherding,typiclust,maxherding-sparse",
                                             "--name", "alq-b"], tmp_path)
    _run("benchmarks.al_quality", ["--combine", "alq-a,alq-b", "--name", "alq"], tmp_path)
    data = _result(tmp_path, "alq", "al_quality")
    assert {r["strategy"] for r in data["rows"]} == {
        "random", "maxherding", "margin", "uherding", "typiclust", "maxherding-sparse"}
    assert all(0 <= r["10 labels"] <= 100 and r["seeds"] == 1 for r in data["rows"])
    targets = _result(tmp_path, "alq-targets", "al_quality")
    assert [r["labels"] for r in targets["rows"]] == [10, 20]
    assert all(r["best peer"] == "typiclust" and r["met"] in (True, False)
               for r in targets["rows"])
    _run("benchmarks.al_quality", common + ["--tune", "--tune-what", "uherding",
                                             "--name", "alq"], tmp_path)
    tune = _result(tmp_path, "alq-tune-uherding", "al_quality")
    assert {"uherding", "uherding-t1", "margin"} <= {r["strategy"] for r in tune["rows"]}
