"""SIGTERM during ``curate pretrain`` (a real subprocess) checkpoints the current step and exits;
the same command again resumes from that step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

import curate

ROOT = Path(__file__).resolve().parents[1]
STEPS = 12


def _write_toml(path: Path, workers: int) -> None:
    # checkpoint_every > STEPS: the only mid-run checkpoint can come from the signal.
    path.write_text(
        'name = "stopped"\nseed = 2\n'
        "[model]\nnum_group = 8\ngroup_size = 16\ndecoder_depth = 1\n"
        "[data]\nnum_points = 128\n"
        f"[train]\nsteps = {STEPS}\nbatch_size = 4\nwarmup_steps = 1\n"
        f"checkpoint_every = 1000\nnum_workers = {workers}\n"
        "[loss]\nimage = 0.0\n"
    )


def _logged_steps(log: Path) -> list[int]:
    if not log.exists():
        return []
    steps = []
    for line in log.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            pass  # a line being written
    return steps


def test_sigterm_checkpoints_current_step_and_rerun_resumes(
    ws: curate.Workspace, tmp_path: Path
) -> None:
    config = tmp_path / "cfg.toml"
    _write_toml(config, workers=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "curate.cli", "pretrain", "--config", str(config),
               "--workspace", str(ws.path)]
    run_dir = ws.path / "checkpoints" / "stopped"
    log = run_dir / "losses.jsonl"
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 300
    while len(_logged_steps(log)) < 2:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no training step logged within 300 s"
        time.sleep(0.02)
    assert not (run_dir / "last.pt").exists()  # no periodic checkpoint before the signal
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    # 0 today; 143 (128 + SIGTERM) once the CLI reports report.interrupted in its exit status
    assert process.returncode in (0, 143), stderr
    assert "SIGTERM" in stderr and "run again to resume" in stderr
    assert stdout.strip() == str(run_dir / "last.pt")

    state = torch.load(run_dir / "last.pt", weights_only=True)
    stopped_at = state["step"]
    assert 2 <= stopped_at < STEPS, "the run finished before the signal arrived"
    assert (run_dir / f"step-{stopped_at:04d}.pt").exists()
    assert not list(run_dir.glob("*.tmp"))
    assert _logged_steps(log) == list(range(1, stopped_at + 1))

    # the same command resumes from the stopped step and finishes
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert torch.load(run_dir / "last.pt", weights_only=True)["step"] == STEPS
    assert _logged_steps(log) == list(range(1, STEPS + 1))
    report = ws.pretrain(config, progress=False)  # nothing left: resumes at the end
    assert report.start_step == STEPS and report.interrupted is None


def test_sigterm_in_process_returns_an_interrupted_report(
    ws: curate.Workspace, tmp_path: Path
) -> None:
    """``ws.pretrain`` in the main thread: the signal is turned into ``report.interrupted``."""
    config = tmp_path / "cfg.toml"
    _write_toml(config, workers=0)
    log = ws.path / "checkpoints" / "stopped" / "losses.jsonl"
    stray: list[int] = []
    # Should the run end before the signal arrives, the signal must not kill pytest.
    previous = signal.signal(signal.SIGTERM, lambda number, _frame: stray.append(number))
    # A helper process sends SIGTERM to this process once two steps are logged.
    sender = subprocess.Popen([
        sys.executable, "-c",
        "import json, os, signal, sys, time, pathlib\n"
        f"log = pathlib.Path({str(log)!r}); end = time.monotonic() + 300\n"
        "while time.monotonic() < end:\n"
        "    if log.exists() and len(log.read_text().splitlines()) >= 2:\n"
        f"        os.kill({os.getpid()}, signal.SIGTERM); sys.exit(0)\n"
        "    time.sleep(0.02)\n"
        "sys.exit(1)\n",
    ])
    try:
        report = ws.pretrain(config, progress=False)
        sender.wait(timeout=60)
        restored = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert sender.returncode == 0
    assert not stray, "the run ended before the signal arrived"
    assert restored is not previous and restored.__name__ == "<lambda>"  # test handler is back
    assert report.interrupted == "SIGTERM"
    assert 2 <= report.steps < STEPS
    assert torch.load(report.checkpoint, weights_only=True)["step"] == report.steps
    again = ws.pretrain(config, progress=False)
    assert again.start_step == report.steps and again.steps == STEPS
    assert again.interrupted is None
