"""The `curate` command line as a user runs it (the real console script for the key paths)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import curate
from curate.cli import main


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "curate"
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600
    )


def test_select_kcenter_budget_50_as_a_user(embedded_template: Path, tmp_path: Path) -> None:
    ws_dir = tmp_path / "ws"
    shutil.copytree(embedded_template, ws_dir)
    lab = tmp_path / "labeled.txt"
    ids = curate.connect(ws_dir).frames(columns=["id"])["id"].to_pylist()
    lab.write_text("\n".join(ids[::10]) + "\n")
    res = run_cli("label", "--ids", str(lab), env={"CURATE_WORKSPACE": str(ws_dir)})
    assert res.returncode == 0, res.stderr
    out1, out2 = tmp_path / "sel1.csv", tmp_path / "sel2.csv"
    args = ["select", "--strategy", "kcenter", "--budget", "50", "--embedding", "bev-hist", "--seed", "3"]
    r1 = run_cli(*args, "--out", str(out1), "--workspace", str(ws_dir))
    assert r1.returncode == 0, r1.stderr
    assert r1.stdout.strip().startswith("run-")
    r2 = run_cli(*args, "--out", str(out2), "--workspace", str(ws_dir))
    picked1 = [row["id"] for row in csv.DictReader(out1.open())]
    picked2 = [row["id"] for row in csv.DictReader(out2.open())]
    assert len(picked1) == 50 == len(set(picked1))
    assert picked1 == picked2
    assert not set(picked1) & set(ids[::10])
    runs = run_cli("runs", "--workspace", str(ws_dir))
    assert "kcenter" in runs.stdout and r1.stdout.strip() in runs.stdout


def test_cli_errors_are_one_line(embedded_template: Path, tmp_path: Path, capsys) -> None:
    ws_dir = tmp_path / "ws"
    shutil.copytree(embedded_template, ws_dir)
    w = ["--workspace", str(ws_dir)]
    cases = [
        (["select", "--strategy", "kcentre", "--budget", "5", "--embedding", "bev-hist", *w], "valid strategies: "),
        (["select", "--strategy", "random", "--budget", "500", "--embedding", "bev-hist", *w], "lower the budget"),
        (["select", "--strategy", "random", "--budget", "5", "--embedding", "bev-hist", "--where", "weather = = 1", *w], "weather = = 1"),
        (["embed", "--model", "pointnet9000", *w], "valid embedders: "),
        (["ingest", "kitti", str(tmp_path / "nowhere"), *w], "nowhere"),
        (["export", "run-000099", "--out", str(tmp_path / "x.csv"), *w], "run-000099"),
        (["label", "--ids", str(tmp_path / "none.txt"), *w], "none.txt"),
    ]
    for argv, expected in cases:
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert err.startswith("curate: error:") and expected in err, (argv, err)
        assert "Traceback" not in err


def test_corrupt_bin_via_cli(synth_root: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "kitti"
    shutil.copytree(synth_root, data)
    bad = sorted((data / "training" / "velodyne").glob("*.bin"))[3]
    with bad.open("ab") as fh:
        fh.write(b"\x00" * 7)
    code = main(["ingest", "kitti", str(data), "--workspace", str(tmp_path / "ws"), "--on-error", "fail"])
    err = capsys.readouterr().err
    assert code == 2 and bad.name in err and "multiple of 16" in err
    # default --on-error skip: the other frames go in, the bad one is listed
    code = main(["ingest", "kitti", str(data), "--workspace", str(tmp_path / "ws")])
    captured = capsys.readouterr()
    assert code == 0 and "1 bad frame(s)" in captured.err
    assert main(["problems", "--workspace", str(tmp_path / "ws")]) == 0
    out = capsys.readouterr().out
    assert bad.stem in out and "multiple of 16" in out and str(bad) in out


def test_export_formats_and_label_run(embedded_template: Path, tmp_path: Path, capsys) -> None:
    ws_dir = tmp_path / "ws"
    shutil.copytree(embedded_template, ws_dir)
    w = ["--workspace", str(ws_dir)]
    assert main(["select", "--strategy", "random", "--budget", "7", "--embedding", "bev-hist", *w]) == 0
    run_id = capsys.readouterr().out.strip()
    for fmt, name in (("csv", "a.csv"), ("json", "a.json"), ("parquet", "a.parquet"), ("imagesets", "a.txt")):
        assert main(["export", run_id, "--format", fmt, "--out", str(tmp_path / name), *w]) == 0
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["run"]["run_id"] == run_id and len(doc["items"]) == 7
    assert len((tmp_path / "a.txt").read_text().split()) == 7
    assert main(["label", "--run", run_id, *w]) == 0
    assert "labeled 7 new frames" in capsys.readouterr().out
    assert main(["label", "--ids", str(tmp_path / "a.json"), *w]) == 0
    assert "labeled 0 new frames" in capsys.readouterr().out
    assert main(["runs", "--json", *w]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["run_id"] == run_id


def test_synth_and_ingest_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "syn"
    assert main(["synth", "--out", str(out), "--frames", "6", "--seed", "1", "--small"]) == 0
    assert "wrote 6 frames" in capsys.readouterr().out
    w = ["--workspace", str(tmp_path / "ws")]
    assert main(["ingest", "folder", str(out / "training" / "velodyne"), *w]) == 0
    assert "workspace has 6 frames" in capsys.readouterr().out
    assert main(["models"]) == 0
    assert "recon-tiny" in capsys.readouterr().out


def test_demo_smoke(tmp_path: Path) -> None:
    res = run_cli("demo", "--frames", "30", "--budget", "5", "--small", "--pretrain-steps", "2",
                  "--loop-rounds", "0", "--workspace", str(tmp_path / "ws"))
    assert res.returncode == 0, res.stderr
    assert "coverage radius" in res.stdout and "kcenter" in res.stdout and "random" in res.stdout
    assert "pretrain 2 steps" in res.stdout and "embed recon-tiny-ssl" in res.stdout
    assert "embedding fused" in res.stdout  # pretrained point vectors + camera vectors
    exports = sorted(p.name for p in (tmp_path / "ws" / "demo-exports").iterdir())
    for strategy in ("random", "kcenter", "probcover", "typiclust", "constrained", "kcenter-f16"):
        assert strategy in res.stdout
        assert sum(e.endswith(f"-{strategy}.json") for e in exports) == 1
    kcenter = [e for e in exports if "-kcenter." in e]
    # json, csv, parquet, imagesets txt, labelstudio, and sidecar manifests for csv, txt, labelstudio
    assert len(kcenter) == 8, kcenter


def test_select_with_a_score_run(embedded_template: Path, tmp_path: Path, capsys) -> None:
    import numpy as np

    ws_dir = tmp_path / "ws"
    shutil.copytree(embedded_template, ws_dir)
    ws = curate.connect(ws_dir)
    ids = [str(i) for i in ws.store.ids("samples")]
    values = np.linspace(0.0, 1.0, len(ids))  # the last frame is the most uncertain
    ws.write_scores("pred-cli", ids, {"entropy_mean": values})
    w = ["--workspace", str(ws_dir)]
    assert main(["select", "--strategy", "topk", "--budget", "3", "--embedding", "bev-hist",
                 "--param", "score=entropy_mean", "--score-run", "pred-cli", *w]) == 0
    run = ws.run(capsys.readouterr().out.strip())
    assert run.ids == ids[::-1][:3] and run.info["score_run"] == "pred-cli"
    assert main(["select", "--strategy", "topk", "--budget", "3", "--embedding", "bev-hist",
                 "--param", "score=entropy_mean", *w]) == 2
    assert "needs uncertainty scores" in capsys.readouterr().err
