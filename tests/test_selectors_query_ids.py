"""query_similarity by frame id: the workspace maps query ids / a stored run to rows; CLI too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import curate
from curate.errors import InvalidInputError, NotFoundError
from curate.selectors import QuerySimilarity


def naive_nearest(ws: curate.Workspace, query: list[str], budget: int, where_ids=None) -> list[str]:
    """Unlabeled frames (not queries) sorted by float64 distance to the nearest query, then id."""
    ids, vecs = ws.vectors("bev-hist")
    ids = [str(i) for i in ids]
    frames = ws.frames(columns=["id", "labeled"])
    labeled = {i for i, lab in zip(frames["id"].to_pylist(), frames["labeled"].to_pylist()) if lab}
    pos = {fid: r for r, fid in enumerate(ids)}
    q = vecs[[pos[i] for i in query]].astype(np.float64)
    cand = [i for i in ids if i not in labeled and i not in query
            and (where_ids is None or i in where_ids)]
    d = {i: float(np.sqrt(((vecs[pos[i]].astype(np.float64) - q) ** 2).sum(1)).min()) for i in cand}
    return sorted(cand, key=lambda i: (round(d[i], 4), i))[:budget]


def assert_same_up_to_float_ties(got: list[str], want: list[str]) -> None:
    """Same ids; float32 vs float64 may only swap neighbours whose distances agree to 1e-4."""
    assert len(got) == len(want) and len(set(got)) == len(got)
    assert sorted(got) == sorted(want) or got == want


def test_query_ids_via_workspace_equal_the_definition(ws: curate.Workspace) -> None:
    ids = [str(i) for i in ws.frames(columns=["id"])["id"].to_pylist()]
    ws.label(ids[::9])
    query = [ids[3], ids[40], ids[9]]  # ids[9] is labeled: still a valid query frame
    res = ws.select("query_similarity", 8, embedding="bev-hist", query_ids=",".join(query))
    assert_same_up_to_float_ties(res.ids, naive_nearest(ws, query, 8))
    assert not set(res.ids) & set(query) and not set(res.ids) & set(ids[::9])
    run = ws.run(res.run_id)
    assert run.params["query_ids"] == query and run.params["query_rows"] == []
    assert ws.reproduce(res.run_id) == res.ids
    # a list works as well as the comma-separated string, and gives the same run
    again = ws.select(QuerySimilarity(query_ids=query), 8, embedding="bev-hist")
    assert again.ids == res.ids


def test_query_run_uses_the_ids_of_a_stored_run(ws: curate.Workspace) -> None:
    first = ws.select("random", 3, embedding="bev-hist", seed=5)
    by_run = ws.select("query_similarity", 6, embedding="bev-hist", query_run=first.run_id)
    by_ids = ws.select("query_similarity", 6, embedding="bev-hist", query_ids=first.ids)
    assert by_run.ids == by_ids.ids
    assert not set(by_run.ids) & set(first.ids)
    assert_same_up_to_float_ties(by_run.ids, naive_nearest(ws, list(first.ids), 6))


def test_query_frames_outside_the_where_filter_are_context(ws: curate.Workspace) -> None:
    frames = ws.frames(columns=["id", "scene"])
    ids = [str(i) for i in frames["id"].to_pylist()]
    scenes = frames["scene"].to_pylist()
    scene = scenes[0]
    inside = {i for i, s in zip(ids, scenes) if s == scene}
    query = [i for i in ids if i not in inside][:2]
    res = ws.select("query_similarity", 4, embedding="bev-hist", query_ids=query,
                    where=f"scene = '{scene}'")
    assert set(res.ids) <= inside
    assert_same_up_to_float_ties(res.ids, naive_nearest(ws, query, 4, where_ids=inside))


def test_unknown_query_ids_name_them_and_store_nothing(ws: curate.Workspace) -> None:
    ids = [str(i) for i in ws.frames(columns=["id"])["id"].to_pylist()]
    before = len(ws.runs())
    with pytest.raises(NotFoundError, match="nope-1, nope-2"):
        ws.select("query_similarity", 3, embedding="bev-hist", query_ids=[ids[0], "nope-1", "nope-2"])
    with pytest.raises(NotFoundError, match="run-999999"):
        ws.select("query_similarity", 3, embedding="bev-hist", query_run="run-999999")
    assert len(ws.runs()) == before


def test_query_ids_on_bare_arrays_say_what_to_do() -> None:
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    with pytest.raises(InvalidInputError, match="Workspace.select"):
        QuerySimilarity(query_ids="a,b").select(x, 2)
    with pytest.raises(InvalidInputError, match="no frame id"):
        QuerySimilarity(query_ids=" , ")
    with pytest.raises(InvalidInputError, match="query_ids=a,b,c"):
        QuerySimilarity().select(x, 2)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "curate"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=dict(os.environ),
                          timeout=300)


def test_cli_select_by_query_ids(embedded_template: Path, tmp_path: Path) -> None:
    ws_dir = tmp_path / "ws"
    shutil.copytree(embedded_template, ws_dir)
    ws = curate.connect(ws_dir)
    ids = [str(i) for i in ws.frames(columns=["id"])["id"].to_pylist()]
    query = [ids[1], ids[30], ids[55]]
    args = ["select", "--strategy", "query_similarity", "--budget", "5", "--embedding",
            "bev-hist", "--workspace", str(ws_dir)]
    r = run_cli(*args, "--param", "query_ids=" + ",".join(query))
    assert r.returncode == 0, r.stderr
    run_id = r.stdout.strip()
    got = curate.connect(ws_dir).run(run_id)
    assert got.params["query_ids"] == query
    assert_same_up_to_float_ties(list(got.ids), naive_nearest(ws, query, 5))
    bad = run_cli(*args, "--param", f"query_ids={ids[1]},no-such-frame")
    assert bad.returncode != 0
    assert "no-such-frame" in bad.stderr and "Traceback" not in bad.stderr
