"""Shared fixtures: one small synthetic KITTI-format set per test session, workspaces on tmp dirs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import curate
from curate.sources.kitti import KittiSource
from curate.sources.synthetic import generate
from mm3d_gate import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401  (hooks)

SYNTH_FRAMES = 72


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic KITTI-format dataset (read-only: copy it before changing files)."""
    root = tmp_path_factory.mktemp("synth") / "kitti"
    generate(root, SYNTH_FRAMES, seed=0, small=True, progress=False)
    return root


@pytest.fixture(scope="session")
def embedded_template(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> Path:
    """A workspace with the synthetic set ingested and embedded with ``bev-hist``."""
    path = tmp_path_factory.mktemp("template") / "ws"
    ws = curate.connect(path)
    ws.ingest(KittiSource(synth_root), progress=False)
    ws.embed("bev-hist", progress=False)
    return path


@pytest.fixture
def ws(tmp_path: Path, embedded_template: Path) -> curate.Workspace:
    """A private copy of the embedded template workspace."""
    path = tmp_path / "ws"
    shutil.copytree(embedded_template, path)
    return curate.connect(path)
