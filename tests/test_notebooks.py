"""The notebooks run end to end in a real Jupyter kernel (the .venv python) on a small synthetic set
and show real PNG figures."""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path

import nbclient
import nbformat
import numpy as np
import pytest
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
