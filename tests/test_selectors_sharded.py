"""Sharded selection (local engine): budget split, partitions, worker processes, measured loss.

Ray tasks (``engine="ray"``) are checked in tests/test_ray_engine.py, which starts the cluster.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import curate
from curate.cli import cli
from curate.errors import BudgetError, InvalidInputError
from curate.selectors import KCenterGreedy, ProbCover, Sharded, create_selector
from curate.selectors.sharded import (ball_coverage, coverage_radius, gain_ordered_merge,
                                     split_budget)


def _pool(n: int = 600, d: int = 12, clusters: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=5.0, size=(clusters, d))
    return (centers[rng.integers(clusters, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


def _split_reference(mass: list[int], budget: int) -> list[int]:
    """Largest remainder by brute force over every split (tiny cases only)."""
    best, best_err = None, None
    total = sum(mass)
    for split in itertools.product(*[range(m + 1) for m in mass]):
        if sum(split) != budget:
            continue
        err = max(abs(s - budget * m / total) for s, m in zip(split, mass))
        if best_err is None or err < best_err - 1e-12:
            best, best_err = list(split), err
    return best


@pytest.mark.parametrize("mass,budget", [([5, 3, 2], 4), ([1, 1, 1], 2), ([7, 0, 3], 5),
                                         ([4, 4], 8), ([2, 9, 1, 3], 6), ([1, 6], 6)])
def test_split_budget_is_proportional_capped_and_complete(mass: list[int], budget: int) -> None:
    share = split_budget(np.array(mass), budget)
    assert share.sum() == budget
    assert (share <= np.array(mass)).all() and (share >= 0).all()
    ref = _split_reference(mass, budget)
    exact = [budget * m / sum(mass) for m in mass]
    assert max(abs(s - e) for s, e in zip(share, exact)) <= max(
        abs(s - e) for s, e in zip(ref, exact)) + 1e-9
    with pytest.raises(BudgetError):
        split_budget(np.array(mass), sum(mass) + 1)


def test_objectives_match_a_brute_force_reference() -> None:
    x = _pool(200, 6)
    centers = x[[3, 50, 120, 199]]
    d = np.sqrt(((x[:, None, :].astype(np.float64) - centers[None].astype(np.float64)) ** 2).sum(-1))
    assert coverage_radius(x, centers) == pytest.approx(d.min(1).max(), rel=1e-4)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cn = centers / np.linalg.norm(centers, axis=1, keepdims=True)
    dn = np.sqrt(((xn[:, None, :] - cn[None]) ** 2).sum(-1)).min(1)
    delta = float(np.median(dn))
    margin = np.abs(dn - delta) > 1e-4  # rows on the ball boundary may round either way
    got = ball_coverage(x, centers, delta)
    assert abs(got - float(np.mean(dn < delta))) <= float(np.mean(~margin)) + 1e-12


def test_one_shard_picks_the_unsharded_set() -> None:
    x = _pool()
    labeled = np.arange(0, 600, 97)
    for inner in (KCenterGreedy(), ProbCover(delta=0.4)):
        full = inner.select(x, 25, labeled=labeled, seed=2)
        one = Sharded(inner, shards=1, workers=1).select(x, 25, labeled=labeled, seed=2)
        assert sorted(one.indices.tolist()) == sorted(full.indices.tolist())


def test_worker_processes_give_the_same_result_as_one_process() -> None:
    x = _pool()
    labeled = np.arange(5)
    a = Sharded("kcenter", shards=3, workers=1).select(x, 30, labeled=labeled, seed=4)
    b = Sharded("kcenter", shards=3, workers=2).select(x, 30, labeled=labeled, seed=4)
    assert a.indices.tolist() == b.indices.tolist()
    np.testing.assert_array_equal(a.gains, b.gains)
    assert a.info["shard_rows"] == b.info["shard_rows"] and sum(a.info["shard_rows"]) == 600
    assert sum(a.info["shard_budgets"]) == 30


def test_measured_loss_is_the_objective_of_both_runs() -> None:
    x = _pool(800)
    labeled = np.arange(10)
    sel = Sharded("probcover", {"delta": 0.4}, shards=4, workers=1, measure_loss=True).select(
        x, 40, labeled=labeled, seed=0)
    loss = sel.info["loss"]
    full = ProbCover(delta=0.4).select(x, 40, labeled=labeled, seed=0)
    cent_s = x[np.concatenate([sel.indices, labeled])]
    cent_u = x[np.concatenate([full.indices, labeled])]
    assert loss["coverage_radius"]["sharded"] == pytest.approx(coverage_radius(x, cent_s))
    assert loss["coverage_radius"]["unsharded"] == pytest.approx(coverage_radius(x, cent_u))
    bc = loss["ball_coverage"]
    assert bc["delta"] == pytest.approx(0.4)
    assert bc["unsharded"] == pytest.approx(full.info["coverage"], abs=1e-6)
    assert bc["sharded"] == pytest.approx(ball_coverage(x, cent_s, 0.4))
    assert bc["relative"] == pytest.approx((bc["unsharded"] - bc["sharded"]) / bc["unsharded"])
    # on well separated clusters the sharded run stays close to the unsharded one
    assert bc["relative"] < 0.1
    kc = Sharded("kcenter", shards=4, workers=1).select(x, 40, labeled=labeled, seed=0)
    assert kc.info["loss"]["coverage_radius"]["relative"] < 0.25
    assert "coverage_radius_bound" not in kc.info  # oversample 2: shard radii bound nothing
    kc1 = Sharded("kcenter", shards=4, workers=1, oversample=1.0).select(
        x, 40, labeled=labeled, seed=0)
    assert kc1.info["coverage_radius_bound"] >= kc1.info["coverage_radius"] - 1e-5
    big = Sharded("kcenter", shards=4, workers=1, oversample=1.0, measure_loss=False).select(
        x, 40, seed=0)
    assert "not measured" in big.info["loss"] and "coverage_radius_bound" in big.info


def test_group_partition_keeps_groups_whole() -> None:
    x = _pool(300)
    groups = np.repeat(np.arange(10), 30)
    sel = Sharded("kcenter", shards=3, partition="groups", workers=1)
    assert sel.needs_groups
    out = sel.select(x, 12, groups=groups, seed=0)
    assert len(set(out.indices.tolist())) == 12
    assert sorted(out.info["shard_rows"]) == [90, 90, 120]
    with pytest.raises(InvalidInputError, match="groups"):
        sel.select(x, 12)
    with pytest.raises(BudgetError, match="groups"):
        Sharded("kcenter", shards=11, partition="groups").select(x, 12, groups=groups)


def test_clear_errors_for_shards_and_parameters() -> None:
    x = _pool(50)
    with pytest.raises(BudgetError, match="larger than the budget 4"):
        Sharded("kcenter", shards=5, workers=1).select(x, 4)
    with pytest.raises(BudgetError, match="larger than the 3 unlabeled"):
        Sharded("kcenter", shards=4, workers=1).select(x, 3, labeled=np.arange(3, 50))
    with pytest.raises(InvalidInputError, match="cannot be sharded"):
        Sharded("constrained", {"inner": "kcenter", "max_per_group": 2})
    with pytest.raises(InvalidInputError, match="not valid"):
        Sharded("sharded")
    with pytest.raises(InvalidInputError, match="engine"):
        Sharded("kcenter", engine="spark")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InvalidInputError, match="shards"):
            Sharded("kcenter", shards=bad)
    with pytest.raises(InvalidInputError, match="oversample"):
        Sharded("kcenter", oversample=0.5)
    again = create_selector("sharded", **Sharded(KCenterGreedy(), shards=2).params())
    assert again.params()["inner"] == "kcenter" and again.shards == 2


def test_workspace_cli_and_reproduce(ws: curate.Workspace) -> None:
    result = ws.select("kcenter", 6, embedding="bev-hist", seed=1, shards=2)
    run = ws.run(result.run_id)
    assert run.strategy == "sharded" and run.params["inner"] == "kcenter" and run.params["shards"] == 2
    assert len(set(run.ids)) == 6
    assert "loss" in run.info and run.info["coverage_radius"] > 0
    assert ws.reproduce(result.run_id) == run.ids
    with pytest.raises(BudgetError, match="larger than the budget"):
        ws.select("kcenter", 2, embedding="bev-hist", shards=3)
    with pytest.raises(InvalidInputError, match="needs shards"):
        ws.select("kcenter", 2, embedding="bev-hist", engine="ray")
    out = CliRunner().invoke(cli, ["select", "--workspace", str(ws.path), "--strategy", "kcenter",
                                   "--budget", "6", "--embedding", "bev-hist", "--seed", "1",
                                   "--shards", "2"])
    assert out.exit_code == 0, out.output
    assert curate.connect(Path(ws.path)).run(out.output.strip().splitlines()[-1]).ids == run.ids


def test_http_select_takes_shards(tmp_path: Path, embedded_template: Path) -> None:
    import shutil

    from curate.server import BackgroundServer, create_app

    path = tmp_path / "ws"
    shutil.copytree(embedded_template, path)
    app = create_app(path, {"tok": "write"}, use_env_tokens=False)
    with BackgroundServer(app) as srv:
        remote = curate.connect(srv.url, token="tok")
        result = remote.select("kcenter", 6, embedding="bev-hist", seed=1, shards=2)
        assert result.run.strategy == "sharded" and result.run.params["shards"] == 2
        local = curate.connect(path)
        assert local.reproduce(result.run_id) == result.ids
        with pytest.raises(InvalidInputError):
            remote.select("kcenter", 6, embedding="bev-hist", shards=0)


def _merge_reference(picks: list[list[int]], gains: list[list[float]]) -> list[int]:
    """k-way merge by repeated scan: the head with the largest running-min gain goes next."""
    heads = [0] * len(picks)
    floor = [float("inf")] * len(picks)
    out = []
    while len(out) < sum(len(p) for p in picks):
        best, best_key = None, None
        for s, p in enumerate(picks):
            if heads[s] < len(p):
                key = min(floor[s], gains[s][heads[s]])
                if best_key is None or key > best_key:  # strict: ties go to the lower shard
                    best, best_key = s, key
        out.append(picks[best][heads[best]])
        floor[best] = best_key
        heads[best] += 1
    return out


@pytest.mark.parametrize("seed", range(6))
def test_gain_ordered_merge_matches_a_k_way_merge_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    picks, gains, start = [], [], 0
    for _ in range(rng.integers(1, 5)):
        m = int(rng.integers(0, 7))
        picks.append(np.arange(start, start + m))
        start += m
        # integer gains force ties; some shards not monotone (TypiClust-like)
        gains.append(rng.integers(0, 4, size=m).astype(np.float64))
    rows, got_gains = gain_ordered_merge(picks, gains)
    assert rows.tolist() == _merge_reference([p.tolist() for p in picks],
                                             [g.tolist() for g in gains])
    lookup = {int(r): float(g) for p, gg in zip(picks, gains) for r, g in zip(p, gg)}
    assert got_gains.tolist() == [lookup[int(r)] for r in rows]
    for p in picks:  # each shard keeps its own pick order
        pos = {int(r): i for i, r in enumerate(rows)}
        assert [pos[int(r)] for r in p] == sorted(pos[int(r)] for r in p)


def test_merge_orders_the_union_with_oversample_1_and_reruns_above() -> None:
    x = _pool(900)
    labeled = np.arange(4)
    assert Sharded("kcenter").oversample == 2.0 and Sharded("probcover").oversample == 1.0
    one = Sharded("kcenter", shards=3, workers=1, oversample=1.0, measure_loss=False).select(
        x, 30, labeled=labeled, seed=1)
    assert one.info["merge"]["order"].startswith("shard gains")
    assert one.info["union"] == 30 and len(set(one.indices.tolist())) == 30
    # k-center gains (distance to the nearest centre at pick time) never increase per shard,
    # so the merged order is by gain
    assert np.all(np.diff(one.gains) <= 1e-6)
    over = Sharded("kcenter", shards=3, workers=1, oversample=2.0, measure_loss=False).select(
        x, 30, labeled=labeled, seed=1)
    assert over.info["union"] > 30 and over.info["merge"]["union"] == over.info["union"]
    assert len(over.indices) == 30 and np.all(np.diff(over.gains) <= 1e-6)  # the top 30 by gain
    rerun = Sharded("kcenter", shards=3, workers=1, oversample=2.0, merge="rerun",
                    measure_loss=False).select(x, 30, labeled=labeled, seed=1)
    assert "order" not in rerun.info["merge"] and len(rerun.indices) == 30
    for sel in (over, rerun):
        assert not set(sel.indices.tolist()) & set(labeled.tolist())
    with pytest.raises(InvalidInputError, match="merge"):
        Sharded("kcenter", merge="best")


@pytest.mark.parametrize("oversample", [1.0, 2.0, 3.5])
def test_one_shard_with_gain_merge_is_the_unsharded_greedy(oversample: float) -> None:
    # a greedy run's first b picks are the b-pick run: the truncated merge reproduces it exactly
    x = _pool(500)
    labeled = np.arange(0, 500, 61)
    full = KCenterGreedy().select(x, 40, labeled=labeled, seed=3)
    one = Sharded("kcenter", shards=1, workers=1, oversample=oversample,
                  measure_loss=False).select(x, 40, labeled=labeled, seed=3)
    assert one.indices.tolist() == full.indices.tolist()
    np.testing.assert_array_equal(one.gains, full.gains)


@pytest.mark.parametrize("inner", ["kcenter", "probcover"])
def test_float16_pool_gives_the_picks_of_its_float32_upcast(inner: str) -> None:
    x16 = _pool(700).astype(np.float16)
    x32 = x16.astype(np.float32)
    labeled = np.arange(0, 700, 101)
    params = {"delta": 0.4} if inner == "probcover" else {}
    sel = Sharded(inner, params, shards=3, workers=2, measure_loss=False)
    assert sel.accepts_float16
    a = sel.select(x16, 21, labeled=labeled, seed=3)
    b = sel.select(x32, 21, labeled=labeled, seed=3)
    assert a.indices.tolist() == b.indices.tolist()
    np.testing.assert_array_equal(a.gains, b.gains)
    assert a.info["shard_rows"] == b.info["shard_rows"]


def test_workspace_reads_a_float16_table_as_float16_for_sharded(ws: curate.Workspace,
                                                                monkeypatch) -> None:
    ws.embed("bev-hist", name="h16", dtype="float16", num_workers=0, progress=False)
    seen: list[tuple[bool, np.dtype]] = []
    gather = ws.store.gather_vectors

    def spy(*a, **kw):
        out = gather(*a, **kw)
        seen.append((kw.get("upcast", True), out[0].dtype))
        return out

    monkeypatch.setattr(ws.store, "gather_vectors", spy)
    sharded = ws.select("kcenter", 6, embedding="h16", shards=2)
    plain = ws.select("kcenter", 6, embedding="h16")  # k-center upcasts block by block: float16 too
    herd = ws.select("maxherding", 4, embedding="h16")  # herding still reads float32
    rand = ws.select("random", 3, embedding="h16")  # reads no vector values: float16 too
    assert seen == [(False, np.float16), (False, np.float16), (True, np.float32), (False, np.float16)]
    assert isinstance(rand.run.info["coverage_radius"], float)
    ids, v32 = ws.vectors("h16")
    direct = Sharded("kcenter", shards=2, measure_loss=False).select(v32, 6, seed=0)
    assert sharded.ids == [ids[i] for i in direct.indices]
    assert plain.ids == [ids[i] for i in create_selector("kcenter").select(v32, 6, seed=0).indices]
    assert len(herd.ids) == 4 and ws.reproduce(sharded.run_id) == sharded.ids


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_worker_processes_exit_when_the_parent_is_killed(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from curate.resources import descendants

    script = tmp_path / "run.py"
    script.write_text(
        "import numpy as np\n"
        "from curate.selectors import Sharded\n"
        "if __name__ == '__main__':\n"
        "    x = np.random.default_rng(0).standard_normal((120_000, 64)).astype(np.float32)\n"
        "    Sharded('kcenter', shards=4, workers=2, measure_loss=False).select(x, 8000)\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    parent = subprocess.Popen([sys.executable, str(script)], env=env)
    try:
        workers: list[int] = []
        for _ in range(600):  # until both shard workers run (spawned ones import curate)
            workers = [p for p in descendants(parent.pid)
                       if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")]
            if len(workers) == 2 or parent.poll() is not None:
                break
            time.sleep(0.2)
        assert parent.poll() is None and len(workers) == 2, "the shard workers never started"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        for _ in range(300):
            if not any(_alive(p) for p in workers):
                break
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers), "orphaned shard workers kept running"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_kmeans_partition_is_balanced_by_packing_cells() -> None:
    from curate.selectors._kmeans import kmeans
    from curate.selectors.sharded import CELLS_PER_SHARD, _pack_largest_first

    # uneven blobs: raw k-means cells with one per shard are far from balanced
    rng = np.random.default_rng(5)
    sizes = [3000, 300, 300, 200, 100, 100]
    centers = rng.normal(scale=8.0, size=(len(sizes), 8))
    x = np.concatenate([c + rng.normal(size=(m, 8)) for c, m in zip(centers, sizes)]).astype(
        np.float32)
    sel = Sharded("kcenter", shards=4, workers=1, measure_loss=False)
    shard_of = sel._partition(x, 0, None)
    rows = np.bincount(shard_of, minlength=4)
    cells, _ = kmeans(x, 4 * CELLS_PER_SHARD, seed=0,
                      sample_per_cluster=max(1, 1024 // CELLS_PER_SHARD))
    largest_cell = np.bincount(cells).max()
    assert rows.sum() == len(x) and (rows > 0).all()
    assert rows.max() <= len(x) / 4 + largest_cell  # the LPT bound
    raw, _ = kmeans(x, 4, seed=0, sample_per_cluster=1024)
    assert rows.max() < np.bincount(raw, minlength=4).max()
    # packing: brute-force check of the largest-first rule on small counts
    # 5 -> s0; 4 -> s1; 3 -> s1 (4 < 5); 2 -> s0 (5 < 7); 1 -> s0 (7 = 7: the lower shard)
    assert _pack_largest_first(np.array([5, 1, 4, 2, 3]), 2).tolist() == [0, 0, 1, 0, 1]
