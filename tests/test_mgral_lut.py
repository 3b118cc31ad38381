"""The look-up table (probe design, least squares, held-out error, resumable probes), the loop
options' errors and ``ws.select("mgral", ...)`` / ``curate select --strategy mgral`` on a real
workspace (scores written directly, no detector needed)."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from curate.errors import InvalidInputError, NotFoundError
from curate.loop.config import load_loop_config
from curate.loop.mgral.lut import LookupTable, fit_table, heldout_batches, probe_design, run_probes, table_error
from curate.selectors._mgral_policy import SetLSTMPolicy, reinforce
from curate.selectors.mgral import save_policy

ROOT = Path(__file__).resolve().parents[1]


def test_probe_design_is_balanced_and_heldout_batches_are_new():
    probes = probe_design(12, 8, 3, seed=0)
    assert len(probes) == 8 and all(len(set(b)) == 3 for b in probes)
    counts = np.bincount(np.concatenate(probes), minlength=12)
    assert counts.min() >= 1 and counts.max() <= 3  # two passes of 4 disjoint batches
    assert probes == probe_design(12, 8, 3, seed=0)
    held = heldout_batches(12, 5, 3, seed=0, avoid=probes)
    assert len(held) == 5 and not {tuple(b) for b in held} & {tuple(b) for b in probes}
    with pytest.raises(InvalidInputError, match="probe size"):
        probe_design(4, 2, 5, seed=0)


def test_least_squares_recovers_additive_gains_exactly_and_reports_its_error():
    rng = np.random.default_rng(0)
    frames = [f"f{i}" for i in range(6)]
    true_w, b0 = rng.normal(size=6), 0.7
    batches = [[]] + probe_design(6, 12, 2, seed=1)
    gains = [0.0 if not b else b0 + true_w[b].sum() for b in batches]
    table = fit_table(frames, batches, gains, ridge=0.0)
    # the base (empty batch, gain 0) and the probes pin b0 for non-empty batches only up to the
    # design; compare the estimates on every probe batch and on new ones
    held = heldout_batches(6, 6, 2, seed=3, avoid=batches[1:])
    real = [b0 + true_w[b].sum() for b in held]
    err = table_error(table, held, real)
    assert err["mae"] < 0.15 / 6 * 6 and err["spearman"] > 0.9
    np.testing.assert_allclose(table.estimate(np.asarray(batches[1:])), gains[1:], atol=0.2)
    again = LookupTable.from_dict(json.loads(json.dumps(table.to_dict())))
    np.testing.assert_allclose(again.estimate(np.asarray(held)), table.estimate(np.asarray(held)))
    with pytest.raises(InvalidInputError, match="ridge"):
        fit_table(frames, batches, gains, ridge=-1)


def test_probes_resume_without_running_a_finished_probe_twice(tmp_path):
    calls = []

    def measure(k):
        calls.append(k)
        if k == 2 and len(calls) == 3:
            raise KeyboardInterrupt  # the process dies during probe 2
        return float(k) * 10

    path = tmp_path / "probes.json"
    with pytest.raises(KeyboardInterrupt):
        run_probes(["a", "b", "c", "d"], measure, path)
    assert json.loads(path.read_text()) == {"a": 0.0, "b": 10.0}
    out = run_probes(["a", "b", "c", "d"], measure, path)
    assert out == {"a": 0.0, "b": 10.0, "c": 20.0, "d": 30.0}
    assert calls == [0, 1, 2, 2, 3]


def test_reinforce_resumed_from_a_checkpoint_ends_as_an_uninterrupted_run():
    feats = torch.from_numpy(np.random.default_rng(2).normal(size=(12, 4)).astype(np.float32))

    def reward(p):
        return (p * 1.0).mean(axis=1)

    torch.manual_seed(0)
    full = SetLSTMPolicy(4, hidden=8)
    init = {k: v.clone() for k, v in full.state_dict().items()}
    h_full = reinforce(full, feats, 3, reward, iterations=10, samples=4, seed=1)
    saved = {}
    part = SetLSTMPolicy(4, hidden=8)
    part.load_state_dict(init)

    def keep(step, state):
        if step == 4:
            saved.update(state=state, weights={k: v.clone() for k, v in part.state_dict().items()})

    reinforce(part, feats, 3, reward, iterations=10, samples=4, seed=1, checkpoint_every=4, on_checkpoint=keep)
    resumed = SetLSTMPolicy(4, hidden=8)
    resumed.load_state_dict(saved["weights"])
    h_res = reinforce(resumed, feats, 3, reward, iterations=10, samples=4, seed=1, resume=saved["state"])
    assert h_res == pytest.approx(h_full)
    for k, v in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v)


def test_loop_config_rejects_bad_mgral_options_clearly():
    base = dict(embedding="bev-hist", strategy="mgral", budget=8)
    with pytest.raises(InvalidInputError, match=r"probs.*valid options: lut_frames"):
        load_loop_config(dict(base, strategy_params={"probs": 3}))
    with pytest.raises(InvalidInputError, match="probe_size"):
        load_loop_config(dict(base, strategy_params={"lut_frames": 2, "probe_size": 3}))
    with pytest.raises(InvalidInputError, match="smaller than the round budget"):
        load_loop_config(dict(base, strategy_params={"lut_frames": 8}))
    with pytest.raises(InvalidInputError, match="metric"):
        load_loop_config(dict(base, strategy_params={"metric": "accuracy"}))
    with pytest.raises(InvalidInputError, match="probe_lr"):
        load_loop_config(dict(base, strategy_params={"lut_frames": 4, "probe_lr": 0}))
    assert load_loop_config(dict(base, strategy_params={"lut_frames": 4})).strategy == "mgral"


@pytest.mark.skipif(importlib.util.find_spec("mmdet3d") is None, reason="the mmdet3d stack is not installed (make mm3d)")
def test_probe_detector_trains_with_probe_epochs_lr_and_augment_and_leaves_the_round_detector_alone(tmp_path):
    from curate.loop.mgral.options import mgral_options
    from curate.loop.mgral.stage import probe_detector
    from curate.loop.mm3d import MMDet3DDetector

    (tmp_path / "t.pkl").write_bytes(pickle.dumps({"metainfo": {"classes": ["Car"]}, "data_list": []}))
    det = MMDet3DDetector("pointpillars-tiny", classes=("Car",), epochs=10)
    default_lr = det.train_config(tmp_path / "t.pkl", tmp_path / "w", load_from=None, seed=0).optim_wrapper["optimizer"]["lr"]
    same = probe_detector(det, mgral_options({"lut_frames": 4, "probe_epochs": 2}, budget=8))
    cfg = same.train_config(tmp_path / "t.pkl", tmp_path / "w", load_from=None, seed=0)
    assert (same.epochs, cfg.train_cfg["max_epochs"], cfg.optim_wrapper["optimizer"]["lr"]) == (2, 2, default_lr)
    slow = probe_detector(det, mgral_options({"lut_frames": 4, "probe_lr": 3e-4}, budget=8))
    cfg = slow.train_config(tmp_path / "t.pkl", tmp_path / "w", load_from=None, seed=0)
    assert cfg.optim_wrapper["optimizer"]["lr"] == pytest.approx(3e-4) != default_lr
    fixed = probe_detector(det, mgral_options({"lut_frames": 4, "probe_augment": False}, budget=8))
    cfg = fixed.train_config(tmp_path / "t.pkl", tmp_path / "w", load_from=None, seed=0)
    kinds = [t["type"] for t in cfg.train_dataloader["dataset"]["pipeline"]]
    assert cfg.train_dataloader["sampler"]["shuffle"] is False and "Pack3DDetInputs" in kinds
    assert not {"RandomFlip3D", "GlobalRotScaleTrans", "PointShuffle"} & set(kinds)
    cfg = det.train_config(tmp_path / "t.pkl", tmp_path / "w", load_from=None, seed=0)
    assert cfg.train_dataloader["sampler"]["shuffle"] is True
    assert "RandomFlip3D" in [t["type"] for t in cfg.train_dataloader["dataset"]["pipeline"]]
    assert (det.epochs, det.lr, det.augment, det.shuffle) == (10, None, True, True)
    sgd = probe_detector(det, mgral_options({"lut_frames": 4, "probe_optimizer": "sgd", "probe_lr": 0.01}, budget=8))
    opt = sgd.train_config(tmp_path / "t.pkl", tmp_path / "w", load_from=None, seed=0).optim_wrapper["optimizer"]
    assert (opt["type"], opt["lr"], opt["momentum"], opt["weight_decay"]) == ("SGD", 0.01, 0.0, 0.0)
    assert det.optimizer is None
    with pytest.raises(InvalidInputError, match="probe_optimizer 'sgd' needs probe_lr"):
        mgral_options({"lut_frames": 4, "probe_optimizer": "sgd"}, budget=8)


def test_workspace_and_cli_select_with_a_stored_policy(ws, tmp_path):
    ids, _ = ws.vectors("bev-hist")
    ids = [str(i) for i in ids]
    ws.label(ids[:6])
    pool = ids[6:]
    rng = np.random.default_rng(0)
    cols = {"emoc": rng.random(len(pool)) * 4, "entropy_mean": rng.random(len(pool)),
            "n_boxes": rng.integers(0, 6, len(pool)).astype(float)}
    ws.write_scores("s0", pool, cols)
    ws.write_scores("no-emoc", pool, {k: v for k, v in cols.items() if k != "emoc"})
    torch.manual_seed(0)
    policy = save_policy(tmp_path / "policy", SetLSTMPolicy(4 + 2, hidden=8), step=1, n_pca=2)
    res = ws.select("mgral", 5, embedding="bev-hist", score_run="s0", policy=str(policy))
    assert len(set(res.run.ids)) == 5 and set(res.run.ids) <= set(pool)
    assert ws.reproduce(res.run.run_id) == res.run.ids
    with pytest.raises(InvalidInputError, match="needs policy="):
        ws.select("mgral", 5, embedding="bev-hist", score_run="s0")
    with pytest.raises(InvalidInputError, match="lack emoc"):
        ws.select("mgral", 5, embedding="bev-hist", score_run="no-emoc", policy=str(policy))
    with pytest.raises(NotFoundError, match="does not exist"):
        ws.select("mgral", 5, embedding="bev-hist", score_run="s0", policy=str(tmp_path / "missing.pt"))
    env = dict(os.environ, CURATE_WORKSPACE=str(ws.path))
    cmd = [sys.executable, "-m", "curate.cli", "select", "--strategy", "mgral", "--budget", "5",
           "--embedding", "bev-hist", "--score-run", "s0"]
    out = subprocess.run(cmd + ["--param", f"policy={policy}"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    import curate

    run = curate.connect(ws.path).run(out.stdout.strip().splitlines()[-1])
    assert run.ids == res.run.ids  # same data, same policy: same batch
    bad = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert bad.returncode != 0 and "needs policy=" in bad.stderr


def test_http_select_reads_a_policy_only_inside_the_workspace_or_data_roots(tmp_path, embedded_template):
    import shutil

    import curate
    from curate.server import BackgroundServer, create_app

    path = tmp_path / "ws"
    shutil.copytree(embedded_template, path)
    local = curate.connect(path)
    ids = [str(i) for i in local.vectors("bev-hist")[0]]
    local.label(ids[:6])
    rng = np.random.default_rng(1)
    local.write_scores("s0", ids[6:], {"emoc": rng.random(len(ids) - 6), "entropy_mean": rng.random(len(ids) - 6),
                                       "n_boxes": rng.integers(0, 5, len(ids) - 6).astype(float)})
    torch.manual_seed(0)
    inside = save_policy(path / "policies" / "p", SetLSTMPolicy(6, hidden=8), step=1, n_pca=2)
    outside = save_policy(tmp_path / "elsewhere", SetLSTMPolicy(6, hidden=8), step=1, n_pca=2)
    app = create_app(path, {"t": "write"}, use_env_tokens=False)
    with BackgroundServer(app) as srv:
        remote = curate.connect(srv.url, token="t")
        res = remote.select("mgral", 4, embedding="bev-hist", score_run="s0", policy="policies/p/last.pt")
        assert res.run.params["policy"] == str(inside.resolve())
        assert res.run.ids == local.select("mgral", 4, embedding="bev-hist", score_run="s0", policy=str(inside)).run.ids
        with pytest.raises(Exception, match="outside the folders"):
            remote.select("mgral", 4, embedding="bev-hist", score_run="s0", policy=str(outside))
