"""A real 2-round ``mgral`` loop (tiny PointPillars, CPU) through the CLI, killed with -9 in
its probe stage and resumed; the EMOC column of the prediction pass.

Needs the ``mm3d`` extra (``make mm3d``); skipped with that reason where mmdet3d is missing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from curate.loop.mm3d import mm3d_available

ROOT = Path(__file__).resolve().parents[1]

needs_mm3d = pytest.mark.skipif(not mm3d_available(), reason="the mmdet3d stack is not installed (make mm3d)")

MGRAL_PARAMS = {
    "lut_frames": 3, "probes": 2, "probe_size": 1, "heldout": 1, "probe_epochs": 1,
    "iterations": 12, "samples": 4, "checkpoint_every": 4, "n_pca": 2, "hidden": 8,
}


def _config() -> dict:
    return dict(
        name="m", embedding="bev-hist", strategy="mgral", strategy_params=dict(MGRAL_PARAMS),
        initial=8, budget=4, rounds=2, seed=0, detector="pointpillars-tiny",
        detector_options={"epochs": 2, "batch_size": 2, "score_thr": 0.01}, val_fraction=0.1,
    )


@needs_mm3d
@pytest.mark.timeout(1800)  # two rounds, four probe fine-tunes, three CLI starts: ~5 min idle, ~11 on a loaded 2-core box
def test_two_round_mgral_loop_through_the_cli_survives_kill_9(ws, tmp_path):
    import curate
    from curate.loop import loop_rounds
    from curate.loop.config import load_loop_config
    from curate.loop.runner import validation_ids
    from curate.selectors.mgral import load_policy

    cfg = _config()
    first = ws.loop(cfg, stop_after=1)
    r0 = first.rounds[0]
    ids, cols = ws.scores(r0.score_run)
    # EMOC in the prediction pass: a finite, non-negative column, positive where boxes were kept
    assert "emoc" in cols and np.isfinite(cols["emoc"]).all() and (cols["emoc"] >= 0).all()
    has_boxes = cols["n_boxes"] > 0
    assert has_boxes.any() and (cols["emoc"][has_boxes] > 0).all() and (cols["emoc"][~has_boxes] == 0).all()
    labeled0 = set(ws.store.ids("samples", where="labeled = true"))
    val, _ = validation_ids(ws, load_loop_config(cfg))

    cfg_file = tmp_path / "loop.json"
    cfg_file.write_text(json.dumps(cfg))
    env = dict(os.environ, CURATE_WORKSPACE=str(ws.path))
    cmd = [sys.executable, "-m", "curate.cli", "loop", "--config", str(cfg_file)]
    mdir = ws.path / "loops" / "m" / "round-1" / "mgral"
    probes = mdir / "probes.json"
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 1500
    while time.time() < deadline and proc.poll() is None and not probes.is_file():
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGKILL)  # kill -9 in the middle of the probes
    proc.communicate()
    before = json.loads(probes.read_text())
    assert 1 <= len(before) < 4
    assert len(loop_rounds(curate.connect(ws.path), "m")) == 1

    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "round 1:" in out.stdout and "round 0:" not in out.stdout
    after = json.loads(probes.read_text())
    assert set(after) == {"base", "probe-0", "probe-1", "heldout-0"}
    assert all(after[k] == v for k, v in before.items())  # finished probes kept, not rerun

    ws2 = curate.connect(ws.path)
    rounds = loop_rounds(ws2, "m")
    assert [int(r.info["round"]) for r in rounds] == [0, 1]
    r1 = rounds[1]
    plan = json.loads((mdir / "plan.json").read_text())
    assert len(r1.ids) == 4 and len(set(r1.ids)) == 4 and r1.ids[:3] == plan["lut_frames"]
    assert not set(r1.ids) & labeled0 and not set(r1.ids) & set(val)
    assert r1.info["labeled_frames"] == 12
    info = r1.info["mgral"]
    assert info["probe_runs"] == 4 and info["table_mae"] is not None and info["policy_seconds"] >= 0
    policy, state = load_policy(info["policy"])
    assert state["extra"]["done"] and state["extra"]["train"]["step"] == MGRAL_PARAMS["iterations"]
    assert (mdir / "policy" / "step-0004.pt").is_file() and (mdir / "lut.json").is_file()
    sel = ws2.run(r1.info["selection_run"])
    assert sel.strategy == "mgral" and sel.params["policy"] == info["policy"] and len(sel.ids) == 1
    assert r1.ids[3:] == sel.ids
