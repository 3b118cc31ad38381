"""The notebooks run end to end in a real Jupyter kernel (the .venv python) on a small synthetic set
and show real PNG figures."""

from __future__ import annotations

import base64
import io
import json
import shutil
import sys
from pathlib import Path

import nbclient
import nbformat
import numpy as np
import pytest

from curate.loop.mm3d import mm3d_available
from PIL import Image

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = "curate-test-venv"


@pytest.fixture
def venv_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec that starts ipykernel with this interpreter (the project's .venv python)."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "curate (.venv)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return KERNEL


def _execute(path: Path, kernel: str, cwd: Path) -> "nbformat.NotebookNode":
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=300, allow_errors=False,
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def _pngs(nb: "nbformat.NotebookNode") -> list[Image.Image]:
    images = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                img = Image.open(io.BytesIO(base64.b64decode(data["image/png"])))
                img.load()
                images.append(img)
    return images


def test_explore_notebook_runs(venv_kernel: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_EXPLORE_FRAMES", "40")
    monkeypatch.setenv("CURATE_EXPLORE_BUDGET", "6")
    monkeypatch.setenv("CURATE_EXPLORE_DRIVE_FRAMES", "8,14")  # a few drives to colour by
    monkeypatch.setenv("CURATE_EXPLORE_PROJECTION", "pca")  # UMAP itself: tests/test_viz.py
    monkeypatch.setenv("CURATE_EXPLORE_WORKDIR", str(tmp_path / "work"))
    nb = _execute(NOTEBOOKS / "explore.ipynb", venv_kernel, tmp_path)
    nbformat.write(nb, tmp_path / "explore.executed.ipynb")

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
    images = _pngs(nb)
    # map by drive/time of day, map of picks, neighbour gallery, class histograms
    assert len(images) == 4
    for img in images:
        assert img.format == "PNG" and img.size[0] >= 400 and img.size[1] >= 300
        assert np.unique(np.asarray(img.convert("L"))).size > 8  # drawn, not blank
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "kcenter" in text and "random" in text
    assert (tmp_path / "work" / "workspace").is_dir()




#: The loops the loop notebook reads: two strategies, two rounds each (the smallest real setting).
LOOP_STRATEGIES = ("random", "kcenter")


@pytest.mark.skipif(not mm3d_available(), reason="the mmdet3d stack is not installed (make mm3d)")
def test_loop_notebook_runs_on_real_loops(venv_kernel: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import curate
    from curate.sources.kitti import KittiSource
    from curate.sources.synthetic import generate

    # tiny workspaces where real loops ran (PointPillars-tiny, CPU, one epoch per round); labels
    # live in the workspace, so each strategy runs in its own copy of the embedded workspace
    data = tmp_path / "kitti"
    generate(data, 24, seed=0, small=True, frames_per_drive=(8, 12), progress=False)
    base = curate.connect(tmp_path / "base")
    base.ingest(KittiSource(data), progress=False)
    base.embed("bev-hist", progress=False, num_workers=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rounds = []
    try:
        for strategy in LOOP_STRATEGIES:
            shutil.copytree(tmp_path / "base", tmp_path / strategy)
            ws = curate.connect(tmp_path / strategy)
            ws.loop({"name": f"nb-{strategy}", "embedding": "bev-hist", "strategy": strategy,
                     "initial": 4, "budget": 2, "rounds": 2, "seed": 0, "val_fraction": 0.2,
                     "detector": "pointpillars-tiny", "detector_options": {"epochs": 1, "batch_size": 2}})
            ws.select("random", 2, embedding="bev-hist")  # a selection run, which the notebook skips
            rounds += ws.runs("loop")
    finally:
        torch.set_num_threads(threads)
    assert len(rounds) == 4

    monkeypatch.setenv("CURATE_LOOP_WORKSPACE", ",".join(str(tmp_path / s) for s in LOOP_STRATEGIES))
    monkeypatch.setenv("CURATE_LOOP_METRIC", "map_bev")
    nb = _execute(NOTEBOOKS / "loop.ipynb", venv_kernel, tmp_path)
    nbformat.write(nb, tmp_path / "loop.executed.ipynb")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
    [image] = _pngs(nb)  # mAP vs labeled frames | vs labeled boxes
    assert image.format == "PNG" and image.size[0] >= 800 and image.size[1] >= 300
    assert np.unique(np.asarray(image.convert("L"))).size > 8  # drawn, not blank
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "4 rounds of 2 loops, strategies: kcenter, random" in text

    # the cost table against the run records read here (brute force: no pandas grouping)
    cost_lines = text[text.rindex("boxes per 1% mAP"):].splitlines()[1:]
    table = {line.split()[0]: line for line in cost_lines if line.strip()}
    assert sorted(table) == sorted(LOOP_STRATEGIES)
    for strategy in LOOP_STRATEGIES:
        [last] = [r for r in rounds if r.info["loop"] == f"nb-{strategy}" and r.info["round"] == 1]
        frames, boxes = last.info["labeled_frames"], last.info["labeled_boxes"]
        m = last.info["metrics"]["map_bev"]
        assert frames == 6 and boxes > 0
        cells = table[strategy].split()
        assert cells[1:4] == ["1", "2", f"{frames:.1f}"]  # seeds, rounds, frames mean
        assert f"{boxes:.1f} ± 0.0" in table[strategy] and f"{m:.2f} ± 0.00" in table[strategy]
        if m == 0:  # no mAP bought: the cost per 1 % is undefined
            assert cells[-2:] == ["-", "-"]
        else:
            assert cells[-6:] == [f"{boxes / m:.1f}", "±", "0.0", f"{frames / m:.1f}", "±", "0.0"]
