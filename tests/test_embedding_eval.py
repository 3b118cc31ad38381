"""``curate.embedding_eval``: each fast metric against a brute-force reference, then the workspace,
CLI and HTTP-client entry points on the synthetic workspace."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import curate
from curate import embedding_eval as E
from curate.api import EmbeddingEvaluation
from curate.cli import cli


def _data(n_drives: int = 6, per: int = 15, d: int = 12, seed: int = 0):
    """Drives whose frames drift slowly (temporal structure), sorted by drive then frame."""
    rng = np.random.default_rng(seed)
    drive = np.repeat([f"d{i}" for i in range(n_drives)], per).astype(object)
    frame = np.tile(np.arange(per), n_drives)
    base = rng.normal(size=(n_drives, d))
    walk = np.cumsum(rng.normal(scale=0.3, size=(n_drives * per, d)), axis=0)
    x = np.repeat(base, per, axis=0) + walk + rng.normal(scale=0.1, size=(n_drives * per, d))
    return x.astype(np.float32), drive, frame


def _codes(drive):
    return np.unique(drive, return_inverse=True)[1].ravel()


def test_knn_matches_brute_force() -> None:
    x, drive, _ = _data()
    u = E.unit_rows(x)
    sims = u @ u.T
    np.fill_diagonal(sims, -np.inf)
    idx, sim = E.knn_all(u, 5)
    np.testing.assert_allclose(sim, -np.sort(-sims, axis=1)[:, :5], atol=1e-5)
    code = _codes(drive)
    bounds = np.flatnonzero(np.r_[True, code[1:] != code[:-1], True])
    other = np.where(code[:, None] != code[None, :], u @ u.T, -np.inf)
    idx_o, sim_o = E.knn_by_drive(u, bounds, 4, same=False)
    np.testing.assert_allclose(sim_o, -np.sort(-other, axis=1)[:, :4], atol=1e-5)
    assert (code[idx_o] != code[:, None]).all()
    same = np.where(code[:, None] == code[None, :], u @ u.T, -np.inf)
    np.fill_diagonal(same, -np.inf)
    _, sim_s = E.knn_by_drive(u, bounds, 1, same=True)
    np.testing.assert_allclose(sim_s[:, 0], same.max(axis=1), atol=1e-5)


def test_temporal_and_revisit_recall_match_brute_force() -> None:
    x, drive, frame = _data()
    code = _codes(drive)
    idx, _ = E.knn_all(E.unit_rows(x), 5)
    hits, recalls = 0, []
    for q in range(len(x)):
        pos = [j for j in range(len(x)) if j != q and code[j] == code[q] and abs(frame[j] - frame[q]) <= 2]
        if pos:
            hits = sum(1 for j in idx[q] if j in pos)
            recalls.append(hits / min(len(pos), 5))
    assert E.temporal_recall(idx, code, frame, 2) == pytest.approx(np.mean(recalls))

    rng = np.random.default_rng(1)
    place = rng.integers(0, 3, size=len(x))
    position = rng.uniform(0, 30, size=len(x))
    bounds = np.flatnonzero(np.r_[True, code[1:] != code[:-1], True])
    idx_o, _ = E.knn_by_drive(E.unit_rows(x), bounds, 5, same=False)
    ref = []
    for q in range(len(x)):
        pos = {j for j in range(len(x)) if code[j] != code[q] and place[j] == place[q]
               and abs(position[j] - position[q]) <= 4.0}
        if pos:
            ref.append(sum(1 for j in idx_o[q] if j in pos) / min(len(pos), 5))
    got, queries = E.revisit_recall(idx_o, code, place, position, 4.0)
    assert queries == len(ref) and got == pytest.approx(np.mean(ref))


def test_agreement_and_row_mode() -> None:
    codes = np.array([[1, 2, 2, 1, 3], [0, 0, -1, -1, -1], [4, 4, 1, 1, -1], [-1, -1, -1, -1, -1]])
    assert E.row_mode(codes).tolist() == [1, 0, 1, -1]  # ties -> smallest; all missing -> -1
    x, drive, _ = _data(seed=3)
    code = _codes(drive)
    bounds = np.flatnonzero(np.r_[True, code[1:] != code[:-1], True])
    idx_o, _ = E.knn_by_drive(E.unit_rows(x), bounds, 5, same=False)
    labels = np.random.default_rng(0).integers(0, 3, size=len(x))
    ref = []
    for q in range(len(x)):
        c = collections.Counter(labels[idx_o[q]].tolist())
        top = max(c.values())
        ref.append(min(v for v, n in c.items() if n == top) == labels[q])
    assert E.agreement(idx_o, labels) == pytest.approx(np.mean(ref))


def test_duplicate_clusters_brute_force() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    x[5] = x[4] + 1e-4  # a pair in one drive
    x[30] = x[4] + 2e-4  # joins it from another drive
    x[20] = x[21] + 1e-4
    drive = np.repeat(np.arange(4), 10)
    u = E.unit_rows(x)
    idx, sim = E.knn_all(u, 3)
    got = E.duplicate_clusters(idx, sim, drive, 0.999)
    assert got["dup clusters"] == 2 and got["dup frames"] == 5 and got["dup largest"] == 3
    assert got["dup cross-drive clusters"] == 1


def test_ridge_and_auc_match_references() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 5)), rng.normal(size=(60, 2))
    (w, b), = E._ridge_path(x, y, [0.1])
    xc, yc = x - x.mean(0), y - y.mean(0)
    ref = np.linalg.solve(xc.T @ xc + 0.1 * 60 * np.eye(5), xc.T @ yc)
    np.testing.assert_allclose(w, ref, atol=1e-8)
    np.testing.assert_allclose(b, y.mean(0) - x.mean(0) @ ref, atol=1e-8)
    # fewer rows than dimensions: the kernel form gives the same solution
    x, y = rng.normal(size=(20, 50)), rng.normal(size=(20, 3))
    (w, b), = E._ridge_path(x, y, [0.05])
    xc, yc = x - x.mean(0), y - y.mean(0)
    ref = np.linalg.solve(xc.T @ xc + 0.05 * 20 * np.eye(50), xc.T @ yc)
    np.testing.assert_allclose(w, ref, atol=1e-8)
    np.testing.assert_allclose(b, y.mean(0) - x.mean(0) @ ref, atol=1e-8)
    labels, score = rng.integers(0, 2, 50).astype(bool), rng.normal(size=50)
    pairs = [(p > n) + 0.5 * (p == n) for p in score[labels] for n in score[~labels]]
    assert E.roc_auc(labels, score) == pytest.approx(np.mean(pairs))


def test_drive_split_never_shares_a_drive() -> None:
    drive = np.repeat([f"d{i}" for i in range(10)], 7).astype(object)
    train = E.split_drives(drive, 0.3, seed=4)
    assert not set(drive[train]) & set(drive[~train])
    assert len(set(drive[~train])) == 3
    with pytest.raises(curate.InvalidInputError, match="drive"):
        E.split_drives(np.array(["a"] * 5, dtype=object), 0.3, 0)


def test_probes_learn_a_linear_signal() -> None:
    rng = np.random.default_rng(0)
    n, d = 300, 6
    x = rng.normal(size=(n, d))
    counts = np.stack([np.clip(np.round(2 + 2 * x[:, 0]), 0, None),
                       np.clip(np.round(1 - 2 * x[:, 1]), 0, None)], axis=1)
    drive = np.repeat(np.arange(30), 10)
    train = E.split_drives(drive, 0.3, seed=0)
    mine, prior = E.probes(x, counts, drive, train)
    assert mine.count_r2 > 0.6 > prior.count_r2
    assert mine.presence_auc > 0.85 and mine.count_mae < prior.count_mae


@pytest.fixture
def ws_two(ws: curate.Workspace) -> curate.Workspace:
    """The synthetic workspace with bev-hist and a random (information-free) embedding."""
    ids, vec = ws.vectors("bev-hist")
    noise = np.random.default_rng(0).normal(size=vec.shape).astype(np.float32)
    ws.store.write_vectors("emb_noise", ids, noise, metadata={"model": "noise"})
    return ws


def test_workspace_evaluation(ws_two: curate.Workspace, tmp_path: Path) -> None:
    out = tmp_path / "eval" / "e.json"
    res = ws_two.evaluate_embeddings(["bev-hist", "noise"], labels="all", out=out, k=5)
    assert isinstance(res, EmbeddingEvaluation)
    assert res.frames == ws_two.count() and res.drives > 1
    assert EmbeddingEvaluation.model_validate_json(out.read_text()) == res
    bev, noise, prior = res.values["bev-hist"], res.values["noise"], res.values["prior"]
    # information-bearing vectors beat noise on every unlabeled retrieval measure
    assert bev["near-dup R@5"] > noise["near-dup R@5"] + 0.2
    assert bev["cos nearest same drive"] > noise["cos nearest same drive"]
    assert noise["presence AUC"] < 0.75 and prior["presence AUC"] == 0.5
    for m in ("agree time_of_day", "agree weather", "agree location", "presence acc", "count MAE"):
        assert prior[m] is not None and bev[m] is not None
    assert "revisit R@5" not in res.metrics and any("revisit" in n for n in res.notes)
    text = res.table()
    assert "bev-hist" in text and "noise" in text and "near-dup R@5" in text
    # no labeled frames: probes skipped with a note; the unlabeled part is unchanged
    plain = ws_two.evaluate_embeddings(["bev-hist", "noise"], k=5)
    assert "presence acc" not in plain.metrics and any("probes" in n for n in plain.notes)
    assert plain.values["bev-hist"]["near-dup R@5"] == bev["near-dup R@5"]
    # deterministic
    again = ws_two.evaluate_embeddings(["bev-hist", "noise"], labels="all", k=5)
    assert again.values == res.values


def test_bad_input_is_a_clear_error(ws_two: curate.Workspace) -> None:
    with pytest.raises(curate.NotFoundError, match="nope"):
        ws_two.evaluate_embeddings(["nope"])
    with pytest.raises(curate.InvalidInputError, match="labels"):
        ws_two.evaluate_embeddings(["bev-hist"], labels="some")
    with pytest.raises(curate.InvalidInputError, match="column 'colour'"):
        ws_two.evaluate_embeddings(["bev-hist"], columns=["colour"])
    with pytest.raises(curate.InvalidInputError, match="repeat"):
        ws_two.evaluate_embeddings(["bev-hist", "bev-hist"])


def test_cli_and_remote_client(ws_two: curate.Workspace, tmp_path: Path) -> None:
    out = tmp_path / "cli.json"
    result = CliRunner().invoke(cli, ["eval-embeddings", "bev-hist", "noise", "--k", "5", "--labels",
                                      "all", "--out", str(out), "--workspace", str(ws_two.path)])
    assert result.exit_code == 0, result.output
    assert "near-dup R@5" in result.output and "prior" in result.output
    local = ws_two.evaluate_embeddings(["bev-hist", "noise"], labels="all", k=5)
    assert json.loads(out.read_text())["values"] == local.values

    from curate.server import BackgroundServer, create_app

    app = create_app(ws_two.path, {"t": "read"}, use_env_tokens=False)
    with BackgroundServer(app) as srv:
        remote = curate.connect(srv.url, token="t")
        try:
            res = remote.evaluate_embeddings(["bev-hist", "noise"], labels="all", k=5)
            with pytest.raises(curate.NotFoundError):
                remote.evaluate_embeddings(["nope"])
        finally:
            remote.close()
    assert res.values == local.values


def test_shared_maps_give_revisits(tmp_path: Path) -> None:
    """Drives on shared maps revisit places: bev-hist finds them far better than noise."""
    from curate.sources.kitti import KittiSource
    from curate.sources.synthetic import generate

    with pytest.raises(curate.InvalidInputError, match="shared_maps"):
        generate(tmp_path / "bad", 10, small=True, progress=False, shared_maps=0)
    root = tmp_path / "kitti"
    generate(root, 48, seed=1, small=True, progress=False, frames_per_drive=8, shared_maps=2)
    meta = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    by_map: dict[str, set] = collections.defaultdict(set)
    for row in meta:
        by_map[row["map"]].add((row["scene"], row["location"]))
    assert len(by_map) == 2 and all(len({loc for _, loc in v}) == 1 for v in by_map.values())
    assert all(len({scene for scene, _ in v}) == 3 for v in by_map.values())
    ws = curate.connect(tmp_path / "ws")
    ws.ingest(KittiSource(root), progress=False)
    ws.embed("bev-hist", progress=False)
    ids, vec = ws.vectors("bev-hist")
    noise = np.random.default_rng(0).normal(size=vec.shape).astype(np.float32)
    ws.store.write_vectors("emb_noise", ids, noise, metadata={"model": "noise"})
    res = ws.evaluate_embeddings(["bev-hist", "noise"], k=5, labels="none")
    assert "revisit R@5" in res.metrics
    assert res.values["bev-hist"]["revisit R@5"] > res.values["noise"]["revisit R@5"] + 0.1


def test_probes_use_labeled_frames_only(ws_two: curate.Workspace) -> None:
    frames = ws_two.frames(columns=["id", "scene"]).to_pydict()
    drives = sorted(set(frames["scene"]))
    one = [i for i, d in zip(frames["id"], frames["scene"]) if d == drives[0]]
    ws_two.label(one)
    res = ws_two.evaluate_embeddings(["bev-hist"], k=5)
    assert "presence acc" not in res.metrics and any("fewer than 2 drives" in n for n in res.notes)
    ws_two.label([i for i, d in zip(frames["id"], frames["scene"]) if d in drives[1:3]])
    res = ws_two.evaluate_embeddings(["bev-hist"], k=5)
    assert res.values["bev-hist"]["presence acc"] is not None
    assert res.values["prior"]["presence AUC"] == 0.5
