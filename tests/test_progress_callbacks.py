"""``progress=`` takes a callback: long jobs report their advance to it (the server's jobs use it)."""

from __future__ import annotations

import curate
from curate.progress import progress_bar


def test_progress_bar_reports_to_a_callback() -> None:
    seen: list[tuple] = []
    with progress_bar(total=5, desc="x", unit="frame", enable=lambda *a: seen.append(a)) as bar:
        bar.update(2)
        bar.set_postfix(loss=1.0)
        bar.update(3)
    assert seen == [(0, 5, "frame"), (2, 5, "frame"), (5, 5, "frame")]


def test_embed_reports_frames_to_a_callback(ws: curate.Workspace) -> None:
    total = ws.count()
    seen: list[tuple] = []
    report = ws.embed("bev-hist", name="bev-callback", batch_size=4, num_workers=0,
                      progress=lambda done, of, unit: seen.append((done, of, unit)))
    assert report.computed == total
    assert seen[0] == (0, total, "frame") and seen[-1] == (total, total, "frame")
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)


def test_pretrain_reports_steps_to_a_callback(ws: curate.Workspace) -> None:
    config = {"name": "cb-ssl", "model": {"num_group": 16, "group_size": 16, "decoder_depth": 1},
              "data": {"num_points": 256}, "loss": {"image": 0.0},
              "train": {"steps": 3, "batch_size": 4, "lr": 1e-3, "warmup_steps": 0, "num_workers": 0,
                        "checkpoint_every": 3, "device": "cpu"}}
    seen: list[tuple] = []
    report = ws.pretrain(config, progress=lambda done, of, unit: seen.append((done, of, unit)))
    assert report.steps == 3
    assert [s for s in seen if s[2] == "step"] == [(1, 3, "step"), (2, 3, "step"), (3, 3, "step")]


def test_pretrain_image_reports_steps_to_a_callback(ws: curate.Workspace) -> None:
    config = {"name": "cb-cams", "seed": 3, "model": {"width": 8, "proj_dim": 32},
              "data": {"image_size": [32, 96]},
              "train": {"steps": 2, "batch_size": 8, "lr": 0.01, "warmup_steps": 0, "checkpoint_every": 2,
                        "threads": 1}}
    seen: list[tuple] = []
    report = ws.pretrain_image(config, progress=lambda done, of, unit: seen.append((done, of, unit)))
    assert report.steps == 2
    assert [s for s in seen if s[2] == "step"] == [(1, 2, "step"), (2, 2, "step")]
