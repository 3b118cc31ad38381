"""Score-based selectors, hybrids, balance, composition and constraints vs naive definitions."""

from __future__ import annotations

import numpy as np
import pytest

from curate.errors import InvalidInputError
from curate.selectors import (
    ClassBalance,
    ClassQuota,
    Composite,
    Constrained,
    KCenterGreedy,
    QuerySimilarity,
    TopK,
    UncertaintyPrefilter,
)

N = 150
CLASSES = ("Car", "Ped", "Cyc")


@pytest.fixture
def data() -> dict:
    rng = np.random.default_rng(21)
    x = (rng.normal(size=(6, 6))[rng.integers(6, size=N)] * 3 + rng.normal(size=(N, 6)))
    counts = rng.integers(0, 3, size=(3, N)) * (rng.random((3, N)) < [[0.9], [0.4], [0.2]])
    scores = {"entropy_mean": np.round(rng.random(N), 2)}  # rounded: real ties
    for j, c in enumerate(CLASSES):
        scores[f"box_count__{c}"] = counts[j].astype(float)
        scores[f"entropy_max__{c}"] = rng.random(N) * (counts[j] > 0)
    scores["box_count"] = counts.sum(axis=0).astype(float)
    labeled = np.zeros(N, dtype=bool)
    labeled[[0, 10, 20]] = True
    return {"x": x.astype(np.float32), "scores": scores, "labeled": labeled, "groups": rng.integers(0, 8, N)}


def dense(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return np.sqrt(((x64[:, None] - x64[None]) ** 2).sum(-1))


def test_topk_ranks_by_score_with_lowest_row_on_ties(data: dict) -> None:
    u = data["scores"]["entropy_mean"]
    got = TopK(score="entropy_mean").select(data["x"], 20, labeled=data["labeled"], scores=data["scores"])
    ref = sorted(np.flatnonzero(~data["labeled"]), key=lambda i: (-u[i], i))[:20]
    assert got.indices.tolist() == ref
    np.testing.assert_array_equal(got.gains, u[ref])
    low = TopK(score="entropy_mean", largest=False).select(data["x"], 5, scores=u)
    assert low.indices.tolist() == sorted(range(N), key=lambda i: (u[i], i))[:5]


def test_class_quota_round_robin_equals_naive(data: dict) -> None:
    s = data["scores"]
    table = np.vstack([s[f"entropy_max__{c}"] for c in sorted(CLASSES)])
    avail = ~data["labeled"]
    ref: list[int] = []
    alive = [True] * 3
    j = 0
    while len(ref) < 40 and any(alive):
        if alive[j]:
            cand = np.flatnonzero(avail)
            best = cand[np.lexsort((cand, -table[j, cand]))[0]]
            if table[j, best] > 0:
                ref.append(int(best))
                avail[best] = False
            else:
                alive[j] = False
                j = (j + 1) % 3
                continue
        j = (j + 1) % 3
    got = ClassQuota(score="entropy_max").select(data["x"], 40, labeled=data["labeled"], scores=s)
    assert got.indices.tolist()[: len(ref)] == ref
    assert got.info["classes"] == sorted(CLASSES)


def test_class_quota_follows_quotas(data: dict) -> None:
    got = ClassQuota(quotas={"Car": 3, "Ped": 1, "Cyc": 0}).select(
        data["x"], 8, scores=data["scores"]
    )
    assert got.info["per_class"] == {"Car": 6, "Ped": 2, "Cyc": 0}


def test_prefilter_equals_kcenter_on_the_most_uncertain(data: dict) -> None:
    u = data["scores"]["entropy_mean"]
    lab = data["labeled"]
    top = sorted(np.flatnonzero(~lab), key=lambda i: (-u[i], i))[:30]
    rows = np.sort(np.concatenate([np.flatnonzero(lab), top]))
    inner = KCenterGreedy().select(data["x"][rows], 10, labeled=lab[rows], seed=0)
    got = UncertaintyPrefilter(factor=3, score="entropy_mean").select(
        data["x"], 10, labeled=lab, scores=data["scores"]
    )
    assert got.indices.tolist() == rows[inner.indices].tolist()
    pc = UncertaintyPrefilter(factor=3, score="entropy_mean", inner="probcover", inner_params={"delta": 0.5})
    got = pc.select(data["x"], 10, labeled=lab, scores=data["scores"])
    assert set(got.indices.tolist()) <= set(top)


def naive_balance(counts: np.ndarray, labeled: np.ndarray, budget: int, target: np.ndarray) -> list[int]:
    totals = counts[labeled].sum(axis=0).astype(float)
    avail = ~labeled.copy()
    picks = []
    for _ in range(budget):
        best, best_d = -1, np.inf
        for i in np.flatnonzero(avail):
            t = totals + counts[i]
            d = np.abs(t / t.sum() - target).sum() if t.sum() > 0 else 2.0
            if d < best_d - 1e-12:
                best, best_d = i, d
        picks.append(int(best))
        avail[best] = False
        totals += counts[best]
    return picks


def test_class_balance_equals_naive_greedy(data: dict) -> None:
    s = data["scores"]
    counts = np.vstack([s[f"box_count__{c}"] for c in sorted(CLASSES)]).T
    target = {"Car": 0.4, "Cyc": 0.3, "Ped": 0.3}
    got = ClassBalance(target=target).select(data["x"], 15, labeled=data["labeled"], scores=s)
    t = np.array([target[c] for c in sorted(CLASSES)])
    assert got.indices.tolist() == naive_balance(counts, data["labeled"], 15, t)
    before = counts[data["labeled"]].sum(0)
    after = before + counts[got.indices].sum(0)
    assert np.abs(after / after.sum() - t).sum() < np.abs(before / before.sum() - t).sum()


def test_query_similarity_equals_naive(data: dict) -> None:
    q = [5, 6, 70]
    d = dense(data["x"])[:, q].min(axis=1)
    got = QuerySimilarity(query_rows=q).select(data["x"], 12, labeled=data["labeled"])
    cand = [i for i in range(N) if not data["labeled"][i] and i not in q]
    assert got.indices.tolist() == sorted(cand, key=lambda i: (d[i], i))[:12]
    with pytest.raises(InvalidInputError, match="query rows must lie"):
        QuerySimilarity(query_rows=[N]).select(data["x"], 2)
    with pytest.raises(InvalidInputError, match="at least one query"):
        QuerySimilarity().select(data["x"], 2)


def test_composite_reduces_to_its_single_objectives(data: dict) -> None:
    x, s, lab = data["x"], data["scores"], data["labeled"]
    kc = KCenterGreedy().select(x, 12, labeled=lab)
    assert Composite(diversity=1).select(x, 12, labeled=lab).indices.tolist() == kc.indices.tolist()
    tk = TopK().select(x, 12, labeled=lab, scores=s)
    got = Composite(diversity=0, weighting=1, score="entropy_mean").select(x, 12, labeled=lab, scores=s)
    assert got.indices.tolist() == tk.indices.tolist()
    cb = ClassBalance().select(x, 12, labeled=lab, scores=s)
    got = Composite(diversity=0, balance=1).select(x, 12, labeled=lab, scores=s)
    assert got.indices.tolist() == cb.indices.tolist()
    mixed = Composite(diversity=1, weighting=1, score="entropy_mean").select(x, 12, labeled=lab, scores=s)
    assert mixed.indices.tolist() not in (kc.indices.tolist(), tk.indices.tolist())


def test_group_cap_equals_naive_constrained_kcenter(data: dict) -> None:
    x, lab, groups = data["x"], data["labeled"], data["groups"]
    dist = dense(x)
    centers = list(np.flatnonzero(lab))
    taken: dict[int, int] = {}
    ref: list[int] = []
    while len(ref) < 14:  # 8 groups x 2 = 16 frames at most
        mind = dist[:, centers].min(axis=1)
        mind[centers] = -1
        mind[[i for i in range(N) if taken.get(groups[i], 0) >= 2]] = -1
        p = int(np.argmax(mind))
        ref.append(p)
        centers.append(p)
        taken[groups[p]] = taken.get(groups[p], 0) + 1
    got = Constrained(inner="kcenter", max_per_group=2).select(x, 14, labeled=lab, groups=groups)
    assert got.indices.tolist() == ref
    assert np.bincount(groups[got.indices]).max() <= 2
    assert got.info["reruns"] > 1
    with pytest.raises(InvalidInputError, match="groups"):
        Constrained(max_per_group=2).select(x, 5)


def test_group_cap_can_fall_short_of_the_budget(data: dict) -> None:
    got = Constrained(inner="random", max_per_group=1).select(
        data["x"], 20, groups=data["groups"], seed=0
    )
    assert len(got) == 8 and got.info["short_by"] == 12


@pytest.mark.parametrize("inner", ["topk", "kcenter"])
def test_cost_budget_equals_naive(data: dict, inner: str) -> None:
    x, s, lab = data["x"], data["scores"], data["labeled"]
    cost = s["box_count"]
    u = s["entropy_mean"]
    dist = dense(x)
    left = 25.0
    avail = ~lab
    centers = list(np.flatnonzero(lab))
    ref: list[int] = []
    while True:
        ok = avail & (cost <= left)
        if not ok.any():
            break
        if inner == "topk":
            cand = np.flatnonzero(ok)
            p = int(cand[np.lexsort((cand, -u[cand]))[0]])
        else:
            mind = dist[:, centers].min(axis=1)
            mind[~ok] = -1
            p = int(np.argmax(mind))
            centers.append(p)
        ref.append(p)
        avail[p] = False
        left -= cost[p]
    params = {"score": "entropy_mean"} if inner == "topk" else {}
    sel = Constrained(inner=inner, inner_params=params, budget_unit="cost")
    got = sel.select(x, 25, labeled=lab, scores=s)  # costs from the box_count column
    assert got.indices.tolist() == ref
    assert got.info["cost"] <= 25
    again = sel.select(x, 25, labeled=lab, scores=s, costs=cost)
    assert again.indices.tolist() == ref
