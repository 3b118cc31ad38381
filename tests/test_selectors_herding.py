"""MaxHerding / UHerding: dense vs sparse, a from-the-definition reference, errors, composition."""

from __future__ import annotations

import numpy as np
import pytest

from curate.errors import InvalidInputError, NotFoundError
from curate.selectors import Constrained, MaxHerding, UHerding, create_selector
from curate.selectors.herding import (
    KERNELS,
    auto_bandwidth,
    generalized_coverage,
    labeled_min_distance,
    margin_uncertainty,
)


def blobs(n: int = 400, d: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(6, d))
    return (centers[rng.integers(6, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


def official_herding(x, budget, labeled, h=1.0, weights=None, kernel="rbf"):
    """The official algorithm written from its definition: full float64 kernel, recompute."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    xn = xn.astype(np.float64)
    d = np.sqrt(np.maximum(((xn[:, None, :] - xn[None, :, :]) ** 2).sum(-1), 0))
    k = KERNELS[kernel](d / h)
    n = len(x)
    w = np.ones(n) if weights is None else weights
    m = k[:, labeled].max(axis=1) if len(labeled) else np.zeros(n)
    chosen = list(labeled)
    picks = []
    for _ in range(budget):
        gain = (w[:, None] * np.maximum(k - m[:, None], 0)).mean(axis=0)
        gain[chosen] = -np.inf
        p = int(np.argmax(gain))
        picks.append(p)
        chosen.append(p)
        m = np.maximum(m, k[:, p])
    return picks


@pytest.mark.parametrize("kernel", ["rbf", "laplace", "student"])
def test_dense_matches_the_official_definition(kernel: str) -> None:
    x = blobs(300)
    lab = [4, 9, 100]
    ref = official_herding(x, 25, lab, h=0.8, kernel=kernel)
    got = MaxHerding(bandwidth=0.8, kernel=kernel, method="dense").select(x, 25, labeled=lab)
    assert got.indices.tolist() == ref


def test_uherding_dense_matches_the_official_definition() -> None:
    x = blobs(300, seed=2)
    u = np.random.default_rng(5).random(300)
    lab = np.array([0, 1, 2, 50])
    sel = UHerding(method="dense", adaptive_bandwidth=False, bandwidth=0.7)
    got = sel.select(x, 20, labeled=lab, scores=u)
    w = u.copy()
    w[lab] = 0
    assert got.indices.tolist() == official_herding(x, 20, lab.tolist(), h=0.7, weights=w)


@pytest.mark.parametrize(
    "kernel,h,threshold,k",
    [("rbf", 1.0, 0.0, 400), ("rbf", 0.35, 0.02, 120), ("tophat", 0.5, 0.0, 400),
     ("tophat", 0.3, 0.0, 150), ("cauchy", 0.2, 0.05, 200)],
)
def test_sparse_equals_dense_when_lists_cover_the_threshold(kernel, h, threshold, k) -> None:
    x = blobs(400, seed=1)
    lab = np.array([3, 77, 201])
    dense = MaxHerding(bandwidth=h, kernel=kernel, method="dense", threshold=threshold)
    sparse = MaxHerding(bandwidth=h, kernel=kernel, threshold=threshold, knn_k=k,
                        method="sparse")
    a = dense.select(x, 40, labeled=lab, seed=4)
    b = sparse.select(x, 40, labeled=lab, seed=4)
    assert b.info["lists_complete"], b.info["rows_truncated"]
    assert a.indices.tolist() == b.indices.tolist()
    np.testing.assert_array_equal(a.gains, b.gains)
    assert a.info["coverage"] == b.info["coverage"]


@pytest.mark.parametrize(
    "kernel,h,lab,threshold",
    [("rbf", 1.0, [], 0.0), ("rbf", 0.3, [3, 77, 201], 0.0), ("tophat", 0.4, [5], 0.0),
     ("cauchy", 0.2, [1, 2], 0.05), ("laplace", 0.6, list(range(0, 400, 40)), 0.0)],
)
def test_exact_equals_dense_without_the_full_kernel(kernel, h, lab, threshold) -> None:
    x = blobs(400, seed=8)
    dense = MaxHerding(bandwidth=h, kernel=kernel, method="dense", threshold=threshold)
    exact = MaxHerding(bandwidth=h, kernel=kernel, method="exact", threshold=threshold)
    a = dense.select(x, 60, labeled=lab, seed=2)
    b = exact.select(x, 60, labeled=lab, seed=2)
    assert a.indices.tolist() == b.indices.tolist()
    np.testing.assert_array_equal(a.gains, b.gains)
    assert a.info["coverage"] == b.info["coverage"]
    assert b.info["method"] == "exact" and b.info["gains_recomputed"] > 0


def test_exact_in_small_blocks_and_uherding_weights_equal_dense(monkeypatch) -> None:
    import curate.selectors.herding as herding

    x = blobs(300, seed=9)
    u = np.random.default_rng(1).random(300)
    lab = np.array([4, 8, 15, 16, 23, 42])
    ref = UHerding(method="dense").select(x, 30, labeled=lab, scores=u)
    monkeypatch.setattr(herding, "_rows_per_block", lambda n_cols: 7)
    monkeypatch.setattr(herding, "EXACT_CHUNK", 3)
    got = UHerding(method="exact").select(x, 30, labeled=lab, scores=u)
    assert got.indices.tolist() == ref.indices.tolist()
    np.testing.assert_array_equal(got.gains, ref.gains)


def test_auto_is_exact_below_its_limit_and_sparse_above() -> None:
    x = blobs(200, seed=4)
    small = MaxHerding().select(x, 10)
    assert small.info["method"] == "exact"
    assert small.indices.tolist() == MaxHerding(method="dense").select(x, 10).indices.tolist()
    big = MaxHerding(exact_max_rows=100).select(x, 10)
    assert big.info["method"] == "sparse" and "lists_complete" in big.info


def test_sparse_kernel_built_in_many_blocks_is_the_same(monkeypatch) -> None:
    import curate.selectors.herding as herding

    x = blobs(300, seed=6)
    ref = MaxHerding(knn_k=40, bandwidth=0.5, method="sparse").select(x, 25, labeled=[7])
    monkeypatch.setattr(herding, "PAIRS_PER_BLOCK", 100)
    got = MaxHerding(knn_k=40, bandwidth=0.5, method="sparse").select(x, 25, labeled=[7])
    assert got.indices.tolist() == ref.indices.tolist()
    assert got.info["rows_truncated"] == ref.info["rows_truncated"]
    assert got.info["edges"] == ref.info["edges"]


def test_truncated_lists_are_reported_and_lose_little() -> None:
    x = blobs(500, seed=3)
    a = MaxHerding(method="dense").select(x, 20)
    b = MaxHerding(knn_k=16, method="sparse").select(x, 20)
    assert not b.info["lists_complete"] and b.info["rows_truncated"] > 0
    ca = generalized_coverage(x, a.indices)
    cb = generalized_coverage(x, b.indices)
    assert cb <= ca + 1e-9 or abs(cb - ca) < 0.02
    assert cb > 0.9 * ca  # measured loss on this data: well under 10%


def test_coverage_monotone_and_gains_non_increasing() -> None:
    x = blobs(300)
    sel = MaxHerding(bandwidth=0.6).select(x, 30, labeled=[1, 2])
    covs = [generalized_coverage(x, np.r_[[1, 2], sel.indices[:i]], bandwidth=0.6)
            for i in range(31)]
    assert all(b >= a - 1e-12 for a, b in zip(covs, covs[1:]))
    assert np.all(np.diff(sel.gains) <= 1e-12)  # submodular greedy: gains never rise
    np.testing.assert_allclose(covs[-1], sel.info["coverage"], atol=1e-5)
    np.testing.assert_allclose(sel.gains.sum(), covs[-1] - covs[0], atol=1e-5)


def test_labeled_rows_never_picked_and_count_as_covered() -> None:
    x = blobs(200)
    lab = np.arange(0, 200, 3)
    for method in ("dense", "sparse", "exact"):
        sel = MaxHerding(method=method).select(x, 50, labeled=lab)
        assert not np.isin(sel.indices, lab).any()
        assert sel.info["initial_coverage"] > 0.5
    # a labeled duplicate of a row makes that row worthless
    y = np.vstack([x, x[:1]])
    sel = MaxHerding(bandwidth=0.05, method="dense").select(y, 199, labeled=[200])
    assert sel.indices[-1] == 0 or 0 not in sel.indices[:150].tolist()


def test_fallback_when_nothing_is_left_to_cover() -> None:
    x = np.repeat(blobs(5), 4, axis=0)  # every row has 3 duplicates
    sel = MaxHerding(method="dense").select(x, 12, seed=1)
    assert sel.info["fallbacks"] == 7
    assert len(set(sel.indices.tolist())) == 12
    for method in ("sparse", "exact"):
        again = MaxHerding(method=method).select(x, 12, seed=1)
        assert again.indices.tolist() == sel.indices.tolist()
        assert again.info["fallbacks"] == 7


def test_bandwidth_rule_is_deterministic_and_shrinks_with_budget() -> None:
    x = blobs(2000)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    h10, m10 = auto_bandwidth(xn, 10, seed=3)
    assert auto_bandwidth(xn, 10, seed=3) == (h10, m10)
    h500, m500 = auto_bandwidth(xn, 500, seed=3)
    assert m10 == 200 and m500 == 4 and 0 < h500 < h10
    a = MaxHerding(bandwidth="auto").select(x, 10, seed=3)
    b = MaxHerding(bandwidth="auto").select(x, 10, seed=3)
    assert a.info["bandwidth"] == b.info["bandwidth"] == pytest.approx(h10)
    assert a.indices.tolist() == b.indices.tolist()


def test_uherding_adaptive_bandwidth_and_first_round() -> None:
    x = blobs(300)
    u = np.random.default_rng(1).random(300)
    first = UHerding().select(x, 10, scores=u)
    plain = MaxHerding().select(x, 10)
    assert first.indices.tolist() == plain.indices.tolist()
    assert first.info["uncertainty"].startswith("uniform")
    lab = first.indices
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    dmin = min(np.linalg.norm(xn[i] - xn[j]) for i in lab for j in lab if i < j)
    assert labeled_min_distance(xn.astype(np.float32), lab) == pytest.approx(dmin, rel=1e-5)
    nxt = UHerding().select(x, 10, labeled=lab, scores=u)
    assert nxt.info["bandwidth"] == pytest.approx(dmin, rel=1e-5)
    assert nxt.info["bandwidth_rule"] == "labeled_min_distance"


def official_uherding_round(x, labeled, budget, u, delta=1.0, adaptive=True, delta_scale=1.0):
    """One round of the official ``UHerding.select_samples`` (BorealisAI/uherding,
    ``deep-al/pycls/al/uherding.py``, rbf, ``-p true``), ported line by line to float64 numpy:
    rows ordered labeled first; ``delta`` = smallest positive entry of the strictly lower
    triangle of the labeled distance matrix; uncertainties all 1 with no labels, else ``u`` with
    the labeled rows set to 0; gain = mean over the pool of ``u(x) * max(k(c, x) - m(x), 0)``;
    labeled and chosen rows masked with ``-inf``; ``m`` starts at the labeled rows' kernel max."""
    xn = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float64)
    n = len(xn)
    lab = np.asarray(labeled, dtype=np.int64)
    order = np.concatenate([lab, np.setdiff1d(np.arange(n), lab)])  # relevant_indices
    f = xn[order]
    dist = np.sqrt(np.maximum(((f[:, None, :] - f[None, :, :]) ** 2).sum(-1), 0.0))
    np.fill_diagonal(dist, 0.0)  # compute_norm zeroes the diagonal
    if adaptive and lab.size > 0:
        tril = np.tril(dist[: lab.size, : lab.size], -1)
        delta = tril[tril > 0].min() * delta_scale
    kernel_all = np.exp(-1.0 * (dist / delta) ** 2)
    if lab.size:
        max_embedding = kernel_all[: lab.size].max(axis=0)
        unc = np.asarray(u, dtype=np.float64)[order].copy()
        unc[: lab.size] = 0.0
    else:
        max_embedding = np.zeros(n)
        unc = np.ones(n)
    inner = list(range(lab.size))
    for _ in range(budget):
        upd = np.maximum(kernel_all - max_embedding[None, :], 0.0)
        gain = (unc[None, :] * upd).mean(axis=-1)
        gain[inner] = -np.inf
        sel = int(np.argmax(gain))
        inner.append(sel)
        max_embedding = upd[sel] + max_embedding
    return order[inner[lab.size:]].tolist(), float(delta)


def _softmax_margin(logits, t):
    """The official margin of ``select_samples``: torch softmax of ``logits / T``, top-2."""
    import torch

    p = torch.nn.functional.softmax(torch.as_tensor(logits) / t, dim=1)
    top = torch.topk(p, k=2, dim=-1, largest=True).indices
    r = torch.arange(p.shape[0])
    return (1.0 - (p[r, top[:, 0]] - p[r, top[:, 1]])).numpy()


@pytest.mark.parametrize("method", ["exact", "dense", "sparse"])
def test_uherding_rounds_equal_the_official_select_samples(method: str) -> None:
    """Cumulative rounds 0 -> 6 -> 14 -> 25 -> 40 labels: the default UHerding (adaptive
    bandwidth, temperature-scaled margins of a fixed linear model) picks exactly what the ported
    official round picks, with the same bandwidth; sparse with complete lists (knn_k = N)."""
    x = blobs(240, d=6, seed=11)
    logits = x @ np.random.default_rng(3).normal(size=(6, 5))
    sel = UHerding(method=method, knn_k=240)
    rows: list[int] = []
    for t, n_new in [(1.0, 6), (1.7, 8), (2.3, 11), (1.0, 15)]:
        u = _softmax_margin(logits, t)
        np.testing.assert_allclose(margin_uncertainty(logits, t, logits=True), u, atol=1e-6)
        got = sel.select(x, n_new, labeled=np.array(rows, dtype=np.int64), scores=u)
        ref, delta = official_uherding_round(x, rows, n_new, u)
        assert got.indices.tolist() == ref
        assert got.info["bandwidth"] == pytest.approx(delta, rel=1e-6)
        rows += ref


@pytest.mark.parametrize("method", ["exact", "dense"])
@pytest.mark.parametrize("scale", [0.5, 2.5])
def test_uherding_bandwidth_scale_is_the_official_delta_scale(method: str, scale: float) -> None:
    """``bandwidth_scale`` multiplies the adaptive bandwidth as the official ``delta_scale`` does
    (``self.delta = min_dist * delta_scale``): same picks and bandwidth as the ported round; a
    different scale changes the picks on this pool (the parameter is not ignored)."""
    x = blobs(200, d=6, seed=5)
    logits = x @ np.random.default_rng(8).normal(size=(6, 4))
    u = _softmax_margin(logits, 1.3)
    lab = [3, 50, 77, 120, 199, 15]
    got = UHerding(method=method, bandwidth_scale=scale).select(x, 12, labeled=lab, scores=u)
    ref, delta = official_uherding_round(x, lab, 12, u, delta_scale=scale)
    assert got.indices.tolist() == ref
    assert got.info["bandwidth"] == pytest.approx(delta, rel=1e-6)
    assert got.info["bandwidth_scale"] == scale
    plain, _ = official_uherding_round(x, lab, 12, u)
    assert plain != ref


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "2", True])
def test_uherding_bad_bandwidth_scale_is_a_clear_error(bad) -> None:
    with pytest.raises(InvalidInputError, match="bandwidth_scale must be a positive finite"):
        create_selector("uherding", bandwidth_scale=bad)


def test_uherding_ignores_duplicate_labeled_rows_for_the_bandwidth() -> None:
    """The official rule skips zero distances: a duplicated labeled row does not make h = 0."""
    x = blobs(120, d=5, seed=4)
    x[7] = x[3]
    u = np.random.default_rng(0).random(120)
    got = UHerding(method="dense").select(x, 6, labeled=[3, 7, 40, 90], scores=u)
    ref, delta = official_uherding_round(x, [3, 7, 40, 90], 6, u)
    assert got.indices.tolist() == ref and got.info["bandwidth"] == pytest.approx(delta)
    assert delta > 0


def _official_ece(logits, labels, n_bins):
    """``pycls/calibration/metrics.py::ECELoss.forward`` (softmax branch), verbatim in torch."""
    import torch

    probs = torch.nn.functional.softmax(torch.as_tensor(logits), dim=1)
    bounds = torch.linspace(0, 1, n_bins + 1)
    conf, pred = torch.max(probs, 1)
    acc = pred.eq(torch.as_tensor(labels))
    ece = torch.zeros(1, dtype=probs.dtype)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        inside = conf.gt(lo.item()) * conf.le(hi.item())
        prop = inside.float().mean()
        if prop.item() > 0:
            ece += torch.abs(conf[inside].mean() - acc[inside].float().mean()) * prop
    return float(ece.item())


def test_benchmark_temperature_rule_is_the_official_obtain_temperature() -> None:
    """al_quality's ECE and temperature search against ``ECELoss`` / ``obtain_temperature``:
    grid ``np.arange(1.0, 20, 0.1)``, lowest ECE (10 bins) first on ties, a model fit on the
    first 70% of the labeled rows in pick order and scored on the last 30%."""
    from sklearn.linear_model import LogisticRegression

    from benchmarks.al_quality import _logits, expected_calibration_error, fit_temperature

    rng = np.random.default_rng(9)
    x = blobs(300, d=6, seed=9)
    y = (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 0)
    for _ in range(3):
        z = rng.normal(scale=3.0, size=(80, 4))
        lab = rng.integers(4, size=80)
        for t in (1.0, 2.5, 7.3):
            p = np.exp(z / t - (z / t).max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            correct = (p.argmax(1) == lab).astype(float)
            assert expected_calibration_error(p, correct, 10) == pytest.approx(
                _official_ece(z / t, lab, 10), abs=1e-6)
    rows = rng.permutation(300)[:40]
    fit, val = rows[:28], rows[28:]  # int(40 * 0.3) = 12 validation rows, the last picks
    clf = LogisticRegression(C=100.0, max_iter=1000).fit(x[fit], y[fit])
    z = _logits(clf, x[val])
    eces = [_official_ece(z / t, y[val], 4) for t in np.arange(1.0, 20, 0.1)]
    expected = float(np.round(np.arange(1.0, 20, 0.1)[int(np.argmin(eces))], 1))
    assert fit_temperature(x, y, rows, 100.0, n_classes=4) == pytest.approx(expected)


def test_uherding_tends_to_margin_sampling_for_a_tiny_bandwidth() -> None:
    x = blobs(300)
    u = np.random.default_rng(2).random(300)
    sel = UHerding(adaptive_bandwidth=False, bandwidth=1e-4).select(x, 15, labeled=[0], scores=u)
    top = np.argsort(-np.where(np.arange(300) == 0, -1, u), kind="stable")[:15]
    assert sel.indices.tolist() == top.tolist()


def test_uherding_score_handling() -> None:
    x = blobs(100)
    margins = np.random.default_rng(0).random(100)
    a = UHerding(score="margin_min", score_transform="one_minus").select(
        x, 5, labeled=[1, 2], scores={"margin_min": margins, "entropy_mean": margins})
    b = UHerding().select(x, 5, labeled=[1, 2], scores=1 - margins)
    assert a.indices.tolist() == b.indices.tolist()
    with pytest.raises(InvalidInputError, match="non-negative"):
        UHerding().select(x, 5, labeled=[1], scores=margins - 2)
    with pytest.raises(NotFoundError, match="available"):
        UHerding(score="nope").select(x, 5, scores={"a": margins})
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]])
    np.testing.assert_allclose(margin_uncertainty(p), [0.5, 1.0])
    np.testing.assert_allclose(margin_uncertainty(np.log(p), logits=True), [0.5, 1.0])


@pytest.mark.parametrize(
    "params,match",
    [({"bandwidth": 0}, "bandwidth"), ({"bandwidth": -1.0}, "bandwidth"),
     ({"bandwidth": float("nan")}, "bandwidth"), ({"bandwidth": "median"}, "bandwidth"),
     ({"kernel": "gauss"}, "valid kernels: cauchy, laplace"), ({"method": "lazy"}, "method"),
     ({"knn_k": 1}, "knn_k"), ({"threshold": 1.5}, "threshold")],
)
def test_bad_parameters_are_clear_errors(params, match) -> None:
    with pytest.raises(InvalidInputError, match=match):
        create_selector("maxherding", **params)
    with pytest.raises(InvalidInputError, match=match):
        create_selector("uherding", **params)


def test_dense_refuses_large_pools() -> None:
    with pytest.raises(InvalidInputError, match="method='exact' or 'sparse'"):
        MaxHerding(method="dense", dense_max_rows=50).select(blobs(60), 3)


def test_composes_with_group_cap_and_box_budget() -> None:
    x = blobs(300)
    groups = np.arange(300) % 7
    costs = np.random.default_rng(0).integers(1, 5, size=300).astype(float)
    sel = Constrained(inner="maxherding", max_per_group=2).select(x, 14, groups=groups)
    assert len(sel) == 14 and np.bincount(groups[sel.indices]).max() <= 2
    u = np.random.default_rng(1).random(300)
    sel = Constrained(inner="uherding", budget_unit="cost").select(
        x, 20, labeled=[0, 1], costs=costs, scores=u)
    assert costs[sel.indices].sum() <= 20 and 0 not in sel.indices


def test_workspace_select_by_name_is_reproducible(ws) -> None:
    sel = ws.select("maxherding", 8, embedding="bev-hist", seed=2, bandwidth="auto")
    assert len(set(sel.ids)) == 8
    run = ws.run(sel.run_id)
    assert run.strategy == "maxherding" and run.params["bandwidth"] == "auto"
    assert ws.reproduce(sel.run_id) == sel.ids
    assert run.info["bandwidth_rule"] == "auto"


def test_cli_lists_the_strategies() -> None:
    from click.testing import CliRunner

    from curate.cli import cli

    out = CliRunner().invoke(cli, ["strategies"])
    assert out.exit_code == 0, out.output
    assert "maxherding" in out.output and "uherding" in out.output


def test_al_quality_benchmark_smoke(tmp_path) -> None:
    """Tiny run of benchmarks/al_quality.py on synthetic features (no dataset, no embedding)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, CURATE_RESULTS_DIR=str(tmp_path), OMP_NUM_THREADS="1")
    common = [sys.executable, str(root / "benchmarks" / "al_quality.py"), "--synthetic", "300",
              "--out", str(tmp_path / "curves.png")]
    out = subprocess.run(common + ["--seeds", "2", "--budgets", "10,20",
                                   "--strategies", "random,maxherding,uherding,margin"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads((tmp_path / "al_quality-fmnist.json").read_text())
    names = {r["strategy"] for r in res["rows"]}
    assert names == {"random", "maxherding", "uherding", "margin"}
    assert all(0 <= r["accuracy %"] <= 100 and r["seeds"] == 2 for r in res["rows"])
    assert len(res["rows"]) == 8 and not res["notes"].startswith("PARTIAL")
    out = subprocess.run(common + ["--speed", "--speed-sizes", "600", "--speed-budget", "20",
                                   "--skal-max", "0", "--speed-cache", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads((tmp_path / "al_quality-fmnist-speed.json").read_text())["rows"]
    by = {r["method"]: r for r in rows}
    assert by["dense"]["loss vs exact %"] == 0 and by["exact"]["loss @10 %"] == 0
    assert by["sparse"]["coverage"] > 0 and by["sparse"]["loss @10 %"] is not None
    assert by["sparse"]["peak MiB"] > 0 and by["scikit-activeml"]["seconds"] is None


def test_http_select_by_name(tmp_path, embedded_template) -> None:
    import shutil

    import curate
    from curate.server import BackgroundServer, create_app

    path = tmp_path / "ws"
    shutil.copytree(embedded_template, path)
    app = create_app(path, {"herding-token": "write"}, use_env_tokens=False)
    with BackgroundServer(app) as srv:
        remote = curate.connect(srv.url, token="herding-token")
        sel = remote.select("maxherding", 6, embedding="bev-hist", seed=1, bandwidth=0.5)
        local = app.state.curate.workspace
        assert sel.ids == local.plan_selection("maxherding", 6, embedding="bev-hist", seed=1,
                                               bandwidth=0.5).run.ids
        with pytest.raises(Exception, match="valid kernels"):
            remote.select("maxherding", 6, embedding="bev-hist", kernel="gauss")


def test_al_quality_official_uherding_check_smoke(tmp_path) -> None:
    """``al_quality --check-official`` on synthetic features: every cumulative round of curate's
    UHerding equals the ported official round (picks in order and bandwidth)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, CURATE_RESULTS_DIR=str(tmp_path), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "al_quality.py"),
                          "--synthetic", "260", "--check-official", "--budgets", "10,20,40",
                          "--name", "chk"], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads((tmp_path / "chk-uherding-official.json").read_text())["rows"]
    assert [r["labels"] for r in rows] == [10, 20, 40]
    assert all(r["same picks in order"] and r["common picks"] == r["new picks"] for r in rows)
    assert all(r["bandwidth"] == pytest.approx(r["official bandwidth"]) for r in rows)
    assert rows[0]["temperature"] is None and rows[1]["temperature"] >= 1.0
