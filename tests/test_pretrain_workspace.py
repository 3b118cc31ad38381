"""Pretraining on a workspace: loss goes down, checkpoint round trip, caching, resume after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import curate
from curate.errors import InvalidInputError
from curate.pretraining import CACHE_DIR, OVERSAMPLE, teacher_table
from embedders import create_embedder
from embedders.pretrain.config import PretrainConfig
from embedders.pretrain.trainer import build_model_for, step_generator

ROOT = Path(__file__).resolve().parents[1]

#: Tiny settings: 256 points, 16 patches of 16 points.
TINY = {
    "model": {"num_group": 16, "group_size": 16, "decoder_depth": 1},
    "data": {"num_points": 256, "teacher_image_size": [64, 192]},
    "train": {"batch_size": 4, "lr": 1e-3, "warmup_steps": 0, "num_workers": 0},
}


def _config(**changes: dict) -> dict:
    merged = {key: dict(value) for key, value in TINY.items()}
    for key, value in changes.items():
        if isinstance(value, dict):
            merged.setdefault(key, {}).update(value)
        else:
            merged[key] = value
    return merged


def _fixed_batch_loss(model: torch.nn.Module, cfg: PretrainConfig, clouds: np.ndarray,
                      teacher: np.ndarray | None) -> float:
    """Weighted loss on the first 4 frames, unaugmented, with a fixed mask seed."""
    weights = {"reconstruction": cfg.loss.reconstruction, "image": cfg.loss.image}
    points = torch.from_numpy(np.ascontiguousarray(clouds[:4, : cfg.data.num_points]))
    target = None if teacher is None else torch.from_numpy(teacher[:4])
    model.train()
    with torch.no_grad():
        terms = model.losses(points, step_generator(123, 0), teacher=target)
    return float(sum(weights[k] * v for k, v in terms.items()))


def test_pretrain_lowers_loss_and_checkpoint_loads(ws: curate.Workspace) -> None:
    cfg = PretrainConfig.from_dict(_config(name="t1", train={"steps": 4, "checkpoint_every": 2}))
    report = ws.pretrain(cfg, progress=False)
    run_dir = Path(report.run_dir)
    assert report.steps == 4 and report.start_step == 0 and report.frames == 72
    assert sorted(p.name for p in run_dir.glob("*.pt")) == ["last.pt", "step-0002.pt", "step-0004.pt"]
    assert not list(run_dir.glob("*.tmp"))
    lines = (run_dir / "losses.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
    assert set(report.final_losses) == {"total", "reconstruction", "image", "contrast"}

    # checkpoint layout: official key names and training state
    state = torch.load(report.checkpoint, weights_only=True)
    assert {"base_model", "optimizer", "epoch", "step", "config", "rng_states"} <= set(state)
    keys = set(state["base_model"])
    assert "MAE_encoder.blocks.blocks.0.attn_contrast.kv.weight" in keys
    assert {"mask_token", "increase_dim.0.weight", "img_proj.weight",
            "MAE_decoder.blocks.0.attn.qkv.weight", "decoder_pos_embed.2.bias"} <= keys
    assert state["step"] == 4 and state["config"]["name"] == "t1"

    # the cached inputs, then the loss on a fixed batch before and after training
    clouds = np.concatenate(
        [np.load(p) for p in sorted((ws.path / CACHE_DIR).glob("clouds-*/chunk-*.npy"))]
    )
    assert clouds.shape == (72, OVERSAMPLE * 256, 3)
    _, teacher = ws.store.read_vectors(
        "emb_" + teacher_table("efficientnet-lite0"), ids=sorted(ws.store.ids("samples").tolist())
    )
    assert teacher.shape == (72, 1280)
    # the teacher cache is an internal table, not a user embedding
    assert not [n for n in ws.embeddings() if n.startswith("pretrain-teacher-")]
    initial = build_model_for(cfg, 1280)
    before = _fixed_batch_loss(initial, cfg, clouds, teacher)
    trained = build_model_for(cfg, 1280)
    trained.load_state_dict(state["base_model"])
    after = _fixed_batch_loss(trained, cfg, clouds, teacher)
    assert after < before, (before, after)

    # the encoder loads through the official-checkpoint path and embeds the workspace
    emb = create_embedder(report.model, checkpoint=report.checkpoint, **report.embed_options)
    encoder_state = emb.model.state_dict()
    for key, value in encoder_state.items():
        assert torch.equal(value, state["base_model"]["MAE_encoder." + key]), key
    embedded = ws.embed("recon-tiny", name="recon-tiny-ssl", checkpoint=report.checkpoint,
                        progress=False, **report.embed_options)
    assert embedded.computed == 72 and embedded.dim == 1024  # default svm-bev, projected
    assert "recon-tiny-ssl" in ws.embeddings() and teacher_table("efficientnet-lite0") not in ws.embeddings()
    assert (report.embed_options["num_points"], report.embed_options["num_group"]) == (2048, 128)
    _, vectors = ws.store.read_vectors("emb_recon-tiny-ssl")
    assert np.isfinite(vectors).all() and np.ptp(vectors, axis=0).max() > 0

    # a second call resumes (nothing left to do) and reuses the teacher cache
    teacher_version = ws.store.version("emb_" + teacher_table("efficientnet-lite0"))
    again = ws.pretrain(cfg, progress=False)
    assert again.start_step == 4 and again.steps == 4
    assert ws.store.version("emb_" + teacher_table("efficientnet-lite0")) == teacher_version


def test_pretrain_config_errors_leave_workspace_unchanged(ws: curate.Workspace, tmp_path: Path) -> None:
    tables = ws.store.table_names()
    with pytest.raises(InvalidInputError, match=r"unknown key 'batch'.*'batch_size'"):
        ws.pretrain({"train": {"batch": 3}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[loss]\nimage = -1\n")
    with pytest.raises(InvalidInputError, match=r"image=-1.0 must be >= 0"):
        ws.pretrain(bad)
    with pytest.raises(InvalidInputError, match=r"teacher='clip' is not one of"):
        ws.pretrain({"data": {"teacher": "clip"}})
    with pytest.raises(InvalidInputError, match="at least batch_size=4 frames; 0 match"):
        ws.pretrain(_config(data={"where": "scene = 'nowhere'"}))
    cfg = _config(name="t2", train={"steps": 2}, data={"num_points": 256})
    first = ws.pretrain(cfg, progress=False)
    with pytest.raises(InvalidInputError, match=r"cannot resume .*train.lr: 0.001 -> 0.01"):
        ws.pretrain(_config(name="t2", train={"steps": 2, "lr": 1e-2}))
    assert torch.load(first.checkpoint, weights_only=True)["step"] == 2
    assert set(ws.store.table_names()) - set(tables) == {"emb_" + teacher_table("efficientnet-lite0")}


def _write_toml(path: Path, name: str, steps: int, workers: int) -> None:
    path.write_text(
        f'name = "{name}"\nseed = 5\n'
        "[model]\nnum_group = 16\ngroup_size = 16\ndecoder_depth = 1\nmask_type = \"block\"\n"
        "[data]\nnum_points = 256\n"
        f"[train]\nsteps = {steps}\nbatch_size = 4\nlr = 0.001\nwarmup_steps = 2\n"
        f"checkpoint_every = 1\nnum_workers = {workers}\n"
        "[loss]\nimage = 0.0\ncontrast = 0.5\ncontrast_pairs = \"temporal\"\n"
    )


def test_resume_after_kill_gives_the_same_weights(ws: curate.Workspace, tmp_path: Path) -> None:
    steps = 5
    reference_ws = curate.connect(shutil.copytree(ws.path, tmp_path / "reference"))
    config = tmp_path / "cfg.toml"
    _write_toml(config, "killed", steps, workers=1)
    # bit-identical float32 math needs the same intra-op thread count in both processes
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    command = [sys.executable, "-m", "curate.cli", "pretrain", "--config", str(config),
               "--workspace", str(ws.path)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_dir = ws.path / "checkpoints" / "killed"
    deadline = time.monotonic() + 540
    while not (run_dir / "step-0002.pt").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 540 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted_at = torch.load(run_dir / "last.pt", weights_only=True)["step"]
    assert 1 <= interrupted_at < steps, "the run finished before it was killed"

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == str(run_dir / "last.pt")
    resumed = torch.load(run_dir / "last.pt", weights_only=True)

    _write_toml(config, "killed", steps, workers=0)  # worker count does not change the result
    straight = reference_ws.pretrain(config, progress=False)
    assert straight.start_step == 0
    reference = torch.load(straight.checkpoint, weights_only=True)
    assert resumed["step"] == reference["step"] == steps
    assert set(resumed["base_model"]) == set(reference["base_model"])
    assert "contrast_head.2.weight" in reference["base_model"]
    for key, value in reference["base_model"].items():
        assert torch.equal(resumed["base_model"][key], value), key
    log = (run_dir / "losses.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == list(range(1, steps + 1))
