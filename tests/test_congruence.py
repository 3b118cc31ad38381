"""One scenario, two clients: ``curate.connect(dir)`` and ``curate.connect(url, token=...)``.

Both start from an empty workspace and run the same calls (ingest the synthetic set, embed with
bev-hist, random and k-center selections with where-filters, label, select again, runs, export,
search, reads); every result must be equal except what legitimately differs (timestamps, wall
times, job bookkeeping, the workspace path inside error messages). Errors must be the same
exception classes with the same messages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest

from curate.loop.mm3d import mm3d_available

import curate
from curate.api import RunRecord
from curate.client import RemoteWorkspace
from curate.export import manifest_path
from curate.server import BackgroundServer, create_app
from curate.sources.kitti import KittiSource

TOKEN = "congruence-write-token"
VOLATILE = {"created_at", "seconds"}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, synth_root: Path) -> Iterator[tuple[Any, Any, Path, Path]]:
    base = tmp_path_factory.mktemp("congruence")
    local_path, remote_path = base / "local", base / "remote"
    app = create_app(remote_path, {TOKEN: "write"}, data_roots=[synth_root.parent], use_env_tokens=False)
    with BackgroundServer(app) as srv:
        local = curate.connect(local_path)
        remote = curate.connect(srv.url, token=TOKEN)
        assert isinstance(remote, RemoteWorkspace) and isinstance(local, curate.Workspace)
        yield local, remote, local_path, remote_path
        remote.close()


def _same(a: Any, b: Any) -> None:
    """Equal pydantic models / lists of them, ignoring volatile fields."""
    if isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
        return
    assert type(a) is type(b)
    assert _stable(a.model_dump(exclude=VOLATILE)) == _stable(b.model_dump(exclude=VOLATILE))


def _stable(value: Any) -> Any:
    """A model dump without wall-clock timings (``info["timing"]`` of runs, at any depth)."""
    if isinstance(value, dict):
        return {k: (_stable({i: w for i, w in v.items() if i != "timing"}) if k == "info" and isinstance(v, dict)
                    else _stable(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _both(pair: tuple, call: Callable[[Any], Any]) -> tuple[Any, Any]:
    local, remote = pair[0], pair[1]
    return call(local), call(remote)


def _same_error(pair: tuple, call: Callable[[Any], Any]) -> type:
    local, remote, local_path, remote_path = pair
    errors = []
    for ws, path in ((local, local_path), (remote, remote_path)):
        with pytest.raises(Exception) as info:
            call(ws)
        errors.append((type(info.value), str(info.value).replace(str(path.resolve()), "<ws>").replace(str(path), "<ws>")))
    assert errors[0] == errors[1]
    return errors[0][0]


def test_one_scenario_gives_the_same_results(pair: tuple, synth_root: Path, tmp_path: Path) -> None:
    local, remote = pair[0], pair[1]

    # ingest (the remote server reads the same files below its data root)
    ing_a, ing_b = _both(pair, lambda ws: ws.ingest(KittiSource(synth_root), progress=False))
    _same(ing_a, ing_b)
    total = ing_a.frames_total
    assert total > 0

    # embed (remote: a background job, polled)
    emb_a, emb_b = _both(pair, lambda ws: ws.embed("bev-hist", progress=False))
    _same(emb_a, emb_b)
    assert emb_b.computed == total
    assert _both(pair, lambda ws: ws.embeddings()) == (["bev-hist"], ["bev-hist"])
    ia, ib = _both(pair, lambda ws: ws.embedding_info("bev-hist"))
    assert ia == ib
    (ids_a, va), (ids_b, vb) = _both(pair, lambda ws: ws.vectors("bev-hist"))
    assert ids_a.tolist() == ids_b.tolist() and np.array_equal(va, vb) and vb.dtype == np.float32

    # selections with where-filters: ids, gains, records
    where = "frame_index >= 4"
    ra, rb = _both(pair, lambda ws: ws.select("random", 5, embedding="bev-hist", where=where, seed=3))
    _same(ra.run, rb.run)
    assert ra.ids == rb.ids and ra.gains == rb.gains and len(ra) == 5
    ka, kb = _both(pair, lambda ws: ws.select(curate.KCenterGreedy(), 6, embedding="bev-hist",
                                              where="frame_index < 20"))
    _same(ka.run, kb.run)
    assert ka.ids == kb.ids and ka.gains == kb.gains and ka.run.where == "frame_index < 20"

    # label, then a selection that uses the labeled frames as context
    la, lb = _both(pair, lambda ws: ws.label(ka.ids))
    _same(la, lb)
    assert _both(pair, lambda ws: ws.labeled_ids()) == (sorted(ka.ids), sorted(ka.ids))
    sa, sb = _both(pair, lambda ws: ws.select("kcenter", 4, embedding="bev-hist", seed=1))
    _same(sa.run, sb.run)
    assert sa.run.num_labeled == 6 and not set(sa.ids) & set(ka.ids)

    # runs, one run, reproduce
    runs_a, runs_b = _both(pair, lambda ws: ws.runs())
    _same(runs_a, runs_b)
    assert [r.run_id for r in runs_b] == ["run-000001", "run-000002", "run-000003"]
    assert all(isinstance(r, RunRecord) for r in runs_b)
    _same(*_both(pair, lambda ws: ws.run("run-000002")))
    assert _both(pair, lambda ws: ws.reproduce("run-000003")) == (sa.ids, sa.ids)

    # export: the remote file (and its sidecar manifest, if the format has one) is written here
    for fmt, suffix in (("csv", "csv"), ("imagesets", "txt"), ("json", "json"), ("parquet", "parquet")):
        pa_, pb_ = _both(pair, lambda ws: ws.export("run-000002", fmt, tmp_path / f"{type(ws).__name__}.{suffix}"))
        assert Path(pa_).is_file() and Path(pb_).is_file()
        side_a, side_b = (manifest_path(Path(p)) for p in (pa_, pb_))
        assert side_a.is_file() == side_b.is_file()
        if side_a.is_file():
            ma, mb = (json.loads(p.read_text()) for p in (side_a, side_b))
            for m in (ma, mb):
                m.pop("file")
                for key in VOLATILE:
                    m["run"].pop(key)
            assert _stable(ma) == _stable(mb) and ma["count"] == 6
        if fmt == "json":
            da, db = (json.loads(Path(p).read_text()) for p in (pa_, pb_))
            for d in (da, db):
                for key in VOLATILE:
                    d["run"].pop(key)
            assert _stable(da) == _stable(db)
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            assert pq.read_table(pa_).drop_columns([]).equals(pq.read_table(pb_))
        else:
            assert Path(pa_).read_bytes() == Path(pb_).read_bytes()

    # search: by ids (with a where-filter) and by vector
    qa, qb = _both(pair, lambda ws: ws.search("bev-hist", ids=ra.ids[:3], k=4, where="frame_index >= 2"))
    assert qa == qb and len(qa.results) == 3 and all(len(n.ids) == 4 for n in qa.results)
    qa, qb = _both(pair, lambda ws: ws.search("bev-hist", vectors=va[:2] + 0.01, k=3, metric="cosine"))
    assert qa.model_dump() == qb.model_dump()

    # reads
    assert _both(pair, lambda ws: ws.count()) == (total, total)
    ca, cb = _both(pair, lambda ws: ws.count("labeled = true"))
    assert ca == cb == 6
    fa, fb = _both(pair, lambda ws: ws.frames(where=where, columns=["id", "scene", "labeled"]))
    assert fa.equals(fb) and fa.num_rows > 0
    fa, fb = _both(pair, lambda ws: ws.frames(ids=ka.ids[::-1]))
    assert fa.equals(fb) and fa["id"].to_pylist() == ka.ids[::-1]
    ba, bb = _both(pair, lambda ws: ws.boxes(ka.ids))
    assert ba.equals(bb) and ba.num_rows > 0

    # prediction scores and a score-driven selection
    rng = np.random.default_rng(7)
    cols = {"entropy_mean": rng.random(len(ids_a)), "box_count": rng.integers(0, 9, len(ids_a)).astype(float)}
    va_, vb_ = _both(pair, lambda ws: ws.write_scores("pred-1", ids_a.tolist(), cols))
    assert _both(pair, lambda ws: ws.score_runs()) == (["pred-1"], ["pred-1"])
    (sia, sca), (sib, scb) = _both(pair, lambda ws: ws.scores("pred-1", ids_a.tolist()[:10]))
    assert sia.tolist() == sib.tolist() and sca.keys() == scb.keys()
    assert all(np.array_equal(sca[c], scb[c]) for c in sca)
    ua, ub = _both(pair, lambda ws: ws.select("topk", 4, embedding="bev-hist", score_run="pred-1"))
    _same(ua.run, ub.run)
    assert ua.run.info.get("score_run", "pred-1") == "pred-1"

    # label import (the server reads the same files below its data root) and fusion
    unlabeled = [i for i in ids_a.tolist() if i not in set(ka.ids)][:3]
    files = [str(synth_root / "training" / "label_2" / f"{i}.txt") for i in unlabeled]
    ima, imb = _both(pair, lambda ws: ws.import_labels(files))
    _same(ima, imb)
    assert ima.files == 3 and ima.newly_labeled == 3
    fua, fub = _both(pair, lambda ws: ws.fuse(["bev-hist"], name="fused", weights=[2.0]))
    _same(fua, fub)
    (_, fva), (_, fvb) = _both(pair, lambda ws: ws.vectors("fused"))
    assert np.array_equal(fva, fvb) and fua.total == total


def test_errors_are_the_same_classes_and_messages(pair: tuple) -> None:
    from index.errors import FilterError

    assert issubclass(_same_error(pair, lambda ws: ws.select("kcenter", 100_000, embedding="bev-hist")),
                      curate.BudgetError)
    assert _same_error(pair, lambda ws: ws.run("run-424242")) is curate.NotFoundError
    assert _same_error(pair, lambda ws: ws.count("no_such_column = 1")) is FilterError
    assert _same_error(pair, lambda ws: ws.select("random", 1, embedding="nope")) is curate.NotFoundError
    assert _same_error(pair, lambda ws: ws.label(["nope-1", "nope-2"])) is curate.NotFoundError
    assert _same_error(pair, lambda ws: ws.label([])) is curate.InvalidInputError
    assert _same_error(pair, lambda ws: ws.select("bogus", 1, embedding="bev-hist")) is curate.NotFoundError
    assert _same_error(pair, lambda ws: ws.search("bev-hist", k=3)) is curate.InvalidInputError
    assert _same_error(pair, lambda ws: ws.search("bev-hist", vectors=[[1.0, 2.0]])) is curate.InvalidInputError
    assert _same_error(pair, lambda ws: ws.export("run-000001", "docx", "x.docx")) is curate.InvalidInputError
    assert _same_error(pair, lambda ws: ws.embed("no-such-model")) is curate.NotFoundError
    assert _same_error(pair, lambda ws: ws.embed("bev-hist", name="x", batch_size=0)) is curate.InvalidInputError
    assert _same_error(pair, lambda ws: ws.fuse("bev-hist")) is curate.InvalidInputError
    assert _same_error(pair, lambda ws: ws.fuse(["bev-hist"], name="f", method="max")) is curate.InvalidInputError
    assert _same_error(pair, lambda ws: ws.export("run-000001", "csv", "/no/such/dir/x.csv")) is curate.InvalidInputError


def test_every_workspace_method_has_a_route(pair: tuple) -> None:
    remote = pair[1]
    assert hasattr(remote, "pretrain") and hasattr(remote, "loop") and hasattr(remote, "import_labels")
    with pytest.raises(AttributeError):
        remote.no_such_method()
    missing = sorted(n for n in dir(curate.Workspace) if not n.startswith("_") and not hasattr(remote, n))
    # every public method has a route and a client method, except the two halves of select()
    # that the server itself calls around its writer lock
    assert missing == ["plan_selection", "store_selection"]


def test_runs_filters_are_the_same(pair: tuple) -> None:
    """``runs(kind=, run_ids=, where=)`` against the unfiltered list filtered here (brute force)."""
    local, remote = pair[0], pair[1]
    every = local.runs()
    assert len(every) >= 3
    _same(every, remote.runs())
    cases = [
        dict(kind="selection"),
        dict(kind="loop"),
        dict(run_ids=["run-000003", "run-000001", "run-999999"]),
        dict(run_ids=[]),
        dict(where="strategy = 'kcenter'"),
        dict(kind="selection", where="budget >= 5", run_ids=[r.run_id for r in every][:2]),
    ]
    for case in cases:
        expected = [
            r for r in every
            if (case.get("kind") is None or r.kind == case["kind"])
            and (case.get("run_ids") is None or r.run_id in case["run_ids"])
            and (case.get("where") != "strategy = 'kcenter'" or r.strategy == "kcenter")
            and (case.get("where") != "budget >= 5" or r.budget >= 5)
        ]
        got_a, got_b = local.runs(**case), remote.runs(**case)
        assert [r.run_id for r in got_a] == [r.run_id for r in expected], case
        _same(got_a, expected)
        _same(got_a, got_b)
    assert _same_error(pair, lambda ws: ws.runs(where="no_such_column = 1")).__name__ == "FilterError"


# ---------------------------------------------------------------------- loop and pretraining jobs
LOOP = {"name": "cong", "embedding": "bev-hist", "strategy": "kcenter", "initial": 4, "budget": 2,
        "rounds": 2, "seed": 0, "val_fraction": 0.2, "detector": "pointpillars-tiny",
        "detector_options": {"epochs": 1, "batch_size": 2}}
PRETRAIN = {"name": "cong-ssl", "model": {"num_group": 16, "group_size": 16, "decoder_depth": 1},
            "data": {"num_points": 256}, "loss": {"image": 0.0},
            "train": {"steps": 2, "batch_size": 4, "lr": 1e-3, "warmup_steps": 0, "num_workers": 0,
                      "checkpoint_every": 2, "device": "cpu"}}




@pytest.fixture(scope="module")
def small_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Path, Path, Path]]:
    """A tiny set (24 frames, three drives) ingested and embedded in a local and a served workspace."""
    from curate.sources.synthetic import generate

    base = tmp_path_factory.mktemp("congruence-jobs")
    data = base / "data" / "kitti"
    generate(data, 24, seed=0, small=True, frames_per_drive=(8, 12), progress=False)
    local_path, remote_path = base / "local", base / "remote"
    app = create_app(remote_path, {TOKEN: "write"}, data_roots=[base / "data"], use_env_tokens=False)
    with BackgroundServer(app) as srv:
        local = curate.connect(local_path)
        remote = curate.connect(srv.url, token=TOKEN)
        for ws in (local, remote):
            ws.ingest(KittiSource(data), progress=False)
            ws.embed("bev-hist", progress=False, num_workers=0)
        yield local, remote, local_path, remote_path, base / "data"
        remote.close()


def _unpath(value: Any, path: Path) -> Any:
    """``value`` with the workspace path replaced by ``<ws>`` in every string."""
    if isinstance(value, str):
        return value.replace(str(path.resolve()), "<ws>").replace(str(path), "<ws>")
    if isinstance(value, dict):
        return {k: _unpath(v, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_unpath(v, path) for v in value]
    return value


@pytest.mark.skipif(not mm3d_available(), reason="the mmdet3d stack is not installed (make mm3d)")
def test_loop_gives_the_same_report_and_run_records(small_pair: tuple) -> None:
    import torch

    from curate.loop import LoopReport, RoundReport

    local, remote, local_path, remote_path, _ = small_pair
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the server's job thread shares this process (and its torch threads)
    try:
        seen: list[int] = []
        ra = local.loop(LOOP, stop_after=1)
        rb = remote.loop(LOOP, stop_after=1, on_round=lambda r: seen.append(r.round))
        assert seen == [0] and [r.round for r in rb.rounds] == [0]
        ra, rb = local.loop(LOOP), remote.loop(dict(LOOP))  # resumes at round 1 on both sides
    finally:
        torch.set_num_threads(threads)
    assert isinstance(rb, LoopReport) and all(isinstance(r, RoundReport) for r in rb.rounds)
    assert ra.resumed_from == rb.resumed_from == 1 and len(rb.rounds) == 2

    def comparable(report: LoopReport, path: Path) -> dict:
        data = _unpath(report.model_dump(), path)
        for rnd in data["rounds"]:
            rnd.pop("seconds")
            rnd["metrics"].pop("train_seconds")
        return data

    assert comparable(ra, local_path) == comparable(rb, remote_path)
    assert rb.rounds[1].labeled_frames == 6 and len(rb.rounds[1].selected) == 2

    # the stored loop runs are the same records (read back with the kind filter)
    loops_a, loops_b = local.runs("loop"), remote.runs("loop")
    assert [r.run_id for r in loops_b] == [r.run_id for r in loops_a] and len(loops_b) == 2
    for a, b in zip(loops_a, loops_b):
        da, db = (_unpath(r.model_dump(exclude=VOLATILE), p) for r, p in ((a, local_path), (b, remote_path)))
        for d in (da, db):
            d["info"]["metrics"].pop("train_seconds")
        assert da == db
    assert _same_error(small_pair[:4], lambda ws: ws.loop({**LOOP, "budget": 3})).__name__ == "InvalidInputError"


def test_loop_config_paths_are_confined(small_pair: tuple, tmp_path: Path) -> None:
    from curate.auth import PermissionDeniedError

    remote, data_root = small_pair[1], small_pair[4]
    cfg_file = tmp_path / "loop.json"  # outside the server's data root
    cfg_file.write_text(json.dumps(LOOP))
    with pytest.raises(PermissionDeniedError, match="outside the folders"):
        remote.loop(str(cfg_file))
    with pytest.raises(PermissionDeniedError, match="outside the folders"):
        remote.loop({**LOOP, "name": "other", "label_dir": "/etc", "oracle": "import"})
    with pytest.raises(PermissionDeniedError, match="outside the folders"):
        remote.loop({**LOOP, "name": "other", "work_dir": str(tmp_path / "elsewhere")})
    with pytest.raises(curate.InvalidInputError, match="plain name"):
        remote.loop({**LOOP, "name": "../../escape"})
    with pytest.raises(curate.InvalidInputError, match="'../escape'"):  # the config's own check
        remote.pretrain({**PRETRAIN, "name": "../escape"})
    with pytest.raises(PermissionDeniedError, match="outside the folders"):
        remote.pretrain(str(tmp_path / "pretrain.toml"))
    with pytest.raises(curate.InvalidInputError, match="cannot send a detector"):
        remote.loop(LOOP, detector=object())
    assert not (data_root.parent / "escape").exists() and not (data_root / "escape").exists()
    # a config file below the data root is read on the server
    inside = data_root / "loop.json"
    inside.write_text(json.dumps({**LOOP, "name": "from-file", "rounds": 1}))
    with pytest.raises(curate.NotFoundError, match="no-such-embedding"):  # checked before queueing
        remote.submit_loop("loop.json", stop_after=1, embedding="no-such-embedding")
    assert [j.kind for j in remote.jobs()].count("loop") == 0 or all(
        j.params["config"] != "loop.json" for j in remote.jobs())


def test_pretrain_gives_the_same_report(small_pair: tuple) -> None:
    from curate.pretraining import PretrainReport

    local, remote, local_path, remote_path, _ = small_pair
    ra, rb = local.pretrain(PRETRAIN, progress=False), remote.pretrain(PRETRAIN)
    assert isinstance(rb, PretrainReport) and rb.steps == 2 and rb.frames == 24
    da, db = (_unpath(r.model_dump(exclude={"seconds"}), p) for r, p in ((ra, local_path), (rb, remote_path)))
    # float32 training in two threads of different processes' pools: equal up to summation order
    la, lb = da.pop("final_losses"), db.pop("final_losses")
    assert da == db and la.keys() == lb.keys()
    assert all(la[k] == pytest.approx(lb[k], rel=1e-5) for k in la)
    assert (remote_path / "checkpoints" / "cong-ssl" / "last.pt").is_file()
    job = remote.jobs()[-1]
    assert job.kind == "pretrain" and job.state == "succeeded" and job.done == job.total == 2
    assert _same_error(small_pair[:4], lambda ws: ws.pretrain({"bogus": 1})).__name__ == "InvalidInputError"
