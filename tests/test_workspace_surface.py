"""The workspace's public surface: typed results, and internal caches kept out of it."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel

import curate
from curate import _tables as T
from curate.errors import InvalidInputError, NotFoundError
from curate.pretraining import teacher_table
from curate.reports import ImportReport, LoopReport, PretrainReport, RoundReport
from curate.workspace import Workspace


def _public_methods(cls: type) -> dict[str, typing.Callable]:
    return {n: v for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}


def _mentions_any(hint: object) -> bool:
    if hint is typing.Any:
        return True
    return any(_mentions_any(arg) for arg in typing.get_args(hint))


def test_no_public_workspace_method_returns_any() -> None:
    methods = _public_methods(Workspace)
    assert len(methods) > 20
    for name, method in methods.items():
        hints = typing.get_type_hints(method)
        assert "return" in hints, f"Workspace.{name} has no return annotation"
        assert not _mentions_any(hints["return"]), f"Workspace.{name} returns {hints['return']}"


@pytest.mark.parametrize(("method", "model"), [
    ("loop", LoopReport), ("import_labels", ImportReport), ("pretrain", PretrainReport),
    ("pretrain_image", PretrainReport), ("evaluate_embeddings", curate.api.EmbeddingEvaluation),
])
def test_long_operations_return_report_models(method: str, model: type) -> None:
    from curate.client import RemoteWorkspace

    assert issubclass(model, BaseModel)
    assert typing.get_type_hints(getattr(Workspace, method))["return"] is model
    assert typing.get_type_hints(getattr(RemoteWorkspace, method))["return"] is model


def test_reports_keep_their_import_paths_and_round_trip_through_json() -> None:
    import curate.labels_import
    import curate.loop
    import curate.pretraining

    assert curate.loop.LoopReport is LoopReport and curate.loop.RoundReport is RoundReport
    assert curate.labels_import.ImportReport is ImportReport
    assert curate.pretraining.PretrainReport is PretrainReport
    rnd = RoundReport(round=0, run_id="run-000001", selected=["a"], labeled_frames=1, labeled_boxes=2,
                      metrics={"map_3d": 1.5, "ap": {"Car": [1.0]}}, checkpoints=["c.pth"], losses=[0.5],
                      seconds=1.0, score_run=None)
    report = LoopReport(name="l", rounds=[rnd], resumed_from=0)
    again = LoopReport.model_validate_json(report.model_dump_json())
    assert again == report and isinstance(again.rounds[0], RoundReport)
    assert "mAP3d" in report.table() and "1.50" in report.table()
    with pytest.raises(ValueError):
        LoopReport(name="l", unknown=1)  # extra fields are refused, so a wire mismatch is loud


def test_teacher_cache_is_hidden_and_not_addressable(ws: curate.Workspace) -> None:
    name = teacher_table("efficientnet-lite0")
    ids = ws.frames(columns=["id"])["id"].to_pylist()[:3]
    ws.store.write_vectors(T.embedding_table(name), ids, np.ones((3, 4), np.float32), metadata={},
                           mode="overwrite")
    assert ws.store.has_table(T.embedding_table(name))
    assert name not in ws.embeddings() and "bev-hist" in ws.embeddings()
    with pytest.raises(NotFoundError, match="no embedding named 'pretrain-teacher-efficientnet-lite0'"):
        ws.vectors(name)
    with pytest.raises(NotFoundError, match="available: bev-hist"):
        ws.select("random", 2, embedding=name)
    before = ws.store.table_names()
    with pytest.raises(InvalidInputError, match="internal teacher cache"):
        ws.embed("bev-hist", name=name + "-mine", progress=False)
    with pytest.raises(InvalidInputError, match="internal teacher cache"):
        ws.fuse(["bev-hist"], name=teacher_table("x"))
    assert ws.store.table_names() == before



def test_the_loop_helpers_type_their_workspace_without_importing_it(tmp_path: Path) -> None:
    """The loop modules annotate with the LocalWorkspace protocol; Workspace satisfies it."""
    from curate.local_workspace import LocalWorkspace
    from curate.loop import runner

    assert isinstance(Workspace(tmp_path / "w"), LocalWorkspace)
    assert typing.get_type_hints(runner.run_loop)["workspace"] is LocalWorkspace
