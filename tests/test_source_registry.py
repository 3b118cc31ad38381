"""One registration adds a data source everywhere: the HTTP body, the server, the client, the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pytest

import curate
from curate.api import SourceSpec
from curate.cli import main
from curate.server import BackgroundServer, create_app
from curate.sources.folder import FolderSource
from curate.sources.pointcloud import write_points_npy
from curate.sources.registry import SOURCES, SourceOption, list_sources, register_source

TOKEN = "registry-token"


@pytest.fixture
def npy_kind() -> Iterator[type]:
    """A new source kind, added by one class and one registration (removed afterwards)."""

    @register_source("npy-folder", prefix=SourceOption(None, "prefix for frame ids"))
    class NpyFolder(FolderSource):
        """The .npy point clouds of a folder tree."""

        def __init__(self, root: Path, prefix: Optional[str] = None) -> None:
            super().__init__(root, pattern="**/*.npy", prefix=prefix)

    try:
        yield NpyFolder
    finally:
        SOURCES.pop("npy-folder")


@pytest.fixture
def clouds(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "clouds"
    rng = np.random.default_rng(0)
    for k in range(4):
        write_points_npy(root / f"d{k % 2}" / f"{k:03d}.npy", rng.normal(size=(256, 4)).astype(np.float32))
    (root / "ignored.bin").write_bytes(rng.normal(size=(64, 4)).astype(np.float32).tobytes())
    return root


def test_a_registered_kind_is_known_to_the_spec(npy_kind: type, clouds: Path) -> None:
    assert "npy-folder" in list_sources() and {"kitti", "nuscenes", "folder"} <= set(list_sources())
    spec = SourceSpec(kind="npy-folder", root=str(clouds), prefix="n")  # options as top-level fields
    assert spec.options == {"prefix": "n"}
    source = spec.build()
    assert isinstance(source, npy_kind) and len(list(source)) == 4
    again = SourceSpec.of(npy_kind(clouds, prefix="n"))
    assert again.kind == "npy-folder" and again.options == {"prefix": "n"}
    with pytest.raises(ValueError, match="unknown source kind 'nope'.*npy-folder"):
        SourceSpec(kind="nope", root="x")
    with pytest.raises(ValueError, match="takes no option 'split'; its options: prefix"):
        SourceSpec(kind="npy-folder", root="x", split="training")


def test_a_registered_kind_is_ingested_over_http_and_by_the_cli(npy_kind: type, clouds: Path,
                                                                 tmp_path: Path) -> None:
    app = create_app(tmp_path / "served", {TOKEN: "write"}, data_roots=[clouds.parent],
                     use_env_tokens=False)
    with BackgroundServer(app) as server:
        remote = curate.connect(server.url, token=TOKEN)
        report = remote.ingest(npy_kind(clouds, prefix="obj"))  # the object's kind and options travel
        assert report.frames_seen == 4
        report = remote.ingest({"kind": "npy-folder", "root": "clouds", "prefix": "dict"})
        assert report.frames_seen == 4 and remote.count() == 8
        assert remote.count("id LIKE 'obj/%'") == 4

    local = tmp_path / "local"
    assert main(["ingest", "npy-folder", str(clouds), "--prefix", "cli", "--workspace", str(local)]) == 0
    assert curate.connect(local).count() == 4
