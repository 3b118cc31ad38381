"""Selections are computed outside the server's writer lock and stored only if still current.

``Workspace.select`` = ``plan_selection`` (reads pinned versions, stores nothing) +
``store_selection`` (run id + one append). The server plans without the lock, then under it checks
the plan is still good: stored as is when no write touched its picks (a consistent snapshot at the
versions it records), planned again when a pick was labeled or removed meanwhile.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

import curate
from curate.server import BackgroundServer, create_app

TOKEN = "select-write-token"


def test_plan_then_store_equals_select(ws: curate.Workspace) -> None:
    planned = ws.plan_selection("kcenter", 5, embedding="bev-hist", where="frame_index >= 2", seed=4)
    assert planned.run.run_id == "" and not ws.runs()  # nothing stored by planning
    assert planned.versions == {"samples": ws.store.version("samples"),
                                "emb_bev-hist": ws.store.version("emb_bev-hist")}
    assert planned.is_current(ws.store)
    stored = ws.store_selection(planned)
    assert stored.run_id == "run-000001" and ws.runs() == [stored.run]
    direct = ws.select("kcenter", 5, embedding="bev-hist", where="frame_index >= 2", seed=4)
    assert direct.ids == stored.ids and direct.run.samples_version == stored.run.samples_version
    ws.label(stored.ids[:1])  # a write to a table the plan read
    assert not planned.is_current(ws.store)
    assert ws.reproduce(stored.run_id) == stored.ids


@pytest.fixture
def served(tmp_path: Path, embedded_template: Path) -> Iterator[tuple[str, object]]:
    path = tmp_path / "ws"
    shutil.copytree(embedded_template, path)
    app = create_app(path, {TOKEN: "write"}, use_env_tokens=False)
    with BackgroundServer(app) as srv:
        yield srv.url, app.state.curate


def test_a_write_during_planning_makes_the_server_plan_again(
    served: tuple[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    url, state = served
    local = state.workspace
    remote = curate.connect(url, token=TOKEN)
    would_pick = local.plan_selection("random", 3, embedding="bev-hist", seed=11).run.ids
    result: dict = {}

    def select() -> None:
        result["sel"] = remote.select("random", 3, embedding="bev-hist", seed=11)

    caplog.set_level(logging.DEBUG, logger="curate.server")
    with state.write_lock:  # the request plans (outside the lock), then waits for it here
        thread = threading.Thread(target=select)
        thread.start()
        time.sleep(3.0)  # planning reads ~70 frames: far less than this
        label = local.label(would_pick)  # the write the select must notice
    thread.join(60)
    sel = result["sel"]
    assert any("tables changed while planning" in r.getMessage() for r in caplog.records)
    assert sel.run.samples_version == label.samples_version == local.store.version("samples")
    assert not set(sel.ids) & set(would_pick) and len(sel.ids) == 3
    assert local.runs() == [sel.run] and local.reproduce(sel.run_id) == sel.ids


def test_a_write_that_misses_the_picks_keeps_the_snapshot(
    served: tuple[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    url, state = served
    local = state.workspace
    remote = curate.connect(url, token=TOKEN)
    before = local.store.version("samples")
    would_pick = local.plan_selection("random", 3, embedding="bev-hist", seed=11).run.ids
    other = [i for i in map(str, local.store.ids("samples")) if i not in would_pick][:2]
    result: dict = {}

    def select() -> None:
        result["sel"] = remote.select("random", 3, embedding="bev-hist", seed=11)

    caplog.set_level(logging.DEBUG, logger="curate.server")
    with state.write_lock:
        thread = threading.Thread(target=select)
        thread.start()
        time.sleep(3.0)
        local.label(other)  # a write to the samples table that does not touch the picks
    thread.join(60)
    sel = result["sel"]
    assert not any("planning again" in r.getMessage() for r in caplog.records)
    assert sel.ids == would_pick and sel.run.samples_version == before < local.store.version("samples")
    assert local.reproduce(sel.run_id) == sel.ids


def test_concurrent_selects_and_labels_store_whole_current_runs(served: tuple[str, object]) -> None:
    """Many selects next to labels: unique run ids, every run reproducible at its versions, and
    no run picks a frame that was labeled at the samples version it records."""
    url, state = served
    local = state.workspace
    ids = [str(i) for i in local.store.ids("samples")]
    errors: list[BaseException] = []

    def selects(k: int) -> None:
        ws = curate.connect(url, token=TOKEN)
        try:
            for seed in range(6):
                ws.select("random", 2, embedding="bev-hist", seed=100 * k + seed)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def labels() -> None:
        ws = curate.connect(url, token=TOKEN)
        try:
            for fid in ids[::6]:
                ws.label([fid])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=selects, args=(k,)) for k in range(3)] + [threading.Thread(target=labels)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    runs = local.runs()
    assert len(runs) == 18 and len({r.run_id for r in runs}) == 18
    for run in runs:
        labeled_then = set(local.store.ids("samples", where="labeled = true", version=run.samples_version))
        assert not set(run.ids) & labeled_then and run.num_labeled == len(labeled_then)
        assert local.reproduce(run.run_id) == run.ids
