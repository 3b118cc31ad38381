"""The selector contract, checked for every registered strategy.

Every name in the registry must have an entry in ``CONFIGS`` (parameters that work on a small
random pool), so a newly registered strategy cannot skip these checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from curate.errors import BudgetError, InvalidInputError, NotFoundError
from curate.selectors import SELECTORS, Selector, create_selector, list_selectors

N, D, BUDGET = 120, 8, 10
CLASSES = ("Car", "Pedestrian", "Cyclist")

CONFIGS: dict[str, dict[str, Any]] = {
    "random": {},
    "kcenter": {},
    "probcover": {},
    "probcover_weighted": {"score": "entropy_mean", "delta": 0.6},
    "typiclust": {"max_clusters": 20},
    "maxherding": {},
    "uherding": {"score": "entropy_mean"},
    "topk": {"score": "entropy_mean"},
    "class_quota": {"score": "entropy_max"},
    "kcenter_weighted": {"score": "entropy_mean", "beta": 1.0},
    "prefilter": {"score": "entropy_mean", "factor": 3, "inner": "kcenter"},
    "class_balance": {"counts": "box_count"},
    "query_similarity": {"query_rows": [0, 5, 17]},
    "composite": {"diversity": 1.0, "weighting": 0.5, "balance": 0.5, "score": "entropy_mean"},
    "constrained": {"inner": "kcenter", "max_per_group": 2},
    "sharded": {"inner": "kcenter", "shards": 3, "workers": 1},
    "mgral": {"policy": None},  # an untrained policy checkpoint, written below
}

#: ``Sharded`` over every coverage strategy (in-process shards; tests/test_selectors_sharded.py
#: covers worker processes and Ray tasks).
SHARDED_INNER: dict[str, dict[str, Any]] = {
    "kcenter": {},
    "probcover": {},
    "probcover_weighted": {"score": "entropy_mean", "delta": 0.6},
    "typiclust": {"max_clusters": 20},
    "kcenter_weighted": {"score": "entropy_mean", "beta": 1.0},
}


def _mgral_policy_file() -> str:
    import tempfile
    from pathlib import Path

    import torch

    from curate.selectors._mgral_policy import SetLSTMPolicy
    from curate.selectors.mgral import save_policy

    torch.manual_seed(0)
    folder = Path(tempfile.mkdtemp(prefix="curate-mgral-contract-"))
    return str(save_policy(folder, SetLSTMPolicy(4 + 2, hidden=8), step=0, n_pca=2))


CONFIGS["mgral"]["policy"] = _mgral_policy_file()


def make_pool(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(4, D))
    x = (centers[rng.integers(4, size=N)] + rng.normal(size=(N, D))).astype(np.float32)
    scores: dict[str, np.ndarray] = {"entropy_mean": rng.random(N)}
    counts = rng.integers(0, 4, size=(len(CLASSES), N))
    for j, c in enumerate(CLASSES):
        scores[f"entropy_max__{c}"] = rng.random(N) * (counts[j] > 0)
        scores[f"box_count__{c}"] = counts[j].astype(np.float64)
    scores["box_count"] = counts.sum(axis=0).astype(np.float64)
    scores["n_boxes"] = scores["box_count"] + 1
    scores["emoc"] = rng.random(N) * 3
    groups = rng.integers(0, 12, size=N)
    costs = scores["box_count"]
    return x, scores, groups, costs


def run(sel: Selector, x: np.ndarray, budget: int, **kw: Any):
    _, scores, groups, costs = make_pool()
    extra: dict[str, Any] = {}
    if sel.needs_scores:
        extra["scores"] = {k: v[: len(x)] for k, v in scores.items()} if len(x) <= N else scores
    if sel.needs_groups:
        extra["groups"] = groups[: len(x)]
    if sel.needs_costs:
        extra["costs"] = costs[: len(x)]
    extra.update(kw)
    return sel.select(x, budget, **extra)


def test_every_registered_selector_has_a_contract_config() -> None:
    assert sorted(CONFIGS) == list_selectors()


@pytest.fixture(params=sorted(CONFIGS) + [f"sharded[{name}]" for name in sorted(SHARDED_INNER)])
def selector(request: pytest.FixtureRequest) -> Selector:
    if request.param.startswith("sharded["):
        inner = request.param[len("sharded["):-1]
        return create_selector("sharded", inner=inner, inner_params=SHARDED_INNER[inner],
                               shards=3, workers=1)
    return create_selector(request.param, **CONFIGS[request.param])


def test_budget_respected_no_duplicates_no_labeled(selector: Selector) -> None:
    x, *_ = make_pool()
    labeled = np.zeros(N, dtype=bool)
    labeled[[1, 2, 3, 40, 41, 90]] = True
    sel = run(selector, x, BUDGET, labeled=labeled, seed=3)
    idx = sel.indices
    assert idx.dtype == np.int64
    assert len(idx) == BUDGET
    assert len(set(idx.tolist())) == len(idx)
    assert not labeled[idx].any()
    assert ((idx >= 0) & (idx < N)).all()
    assert sel.gains.shape == idx.shape


def test_float16_vectors_give_the_picks_of_their_float32_upcast(selector: Selector) -> None:
    """Selectors that take float16 as it is (accepts_float16) pick as on the exact upcast;
    every selector accepts float16 input (the others upcast it on entry)."""
    x, *_ = make_pool()
    x16 = x.astype(np.float16)
    labeled = np.array([0, 7, 19])
    a = run(selector, x16, BUDGET, labeled=labeled, seed=5)
    b = run(selector, x16.astype(np.float32), BUDGET, labeled=labeled, seed=5)
    assert a.indices.tolist() == b.indices.tolist()
    np.testing.assert_array_equal(a.gains, b.gains)


def test_labeled_as_index_array_equals_mask(selector: Selector) -> None:
    x, *_ = make_pool()
    rows = np.array([4, 8, 15, 16, 23, 42])
    mask = np.zeros(N, dtype=bool)
    mask[rows] = True
    a = run(selector, x, BUDGET, labeled=rows, seed=1)
    b = run(selector, x, BUDGET, labeled=mask, seed=1)
    assert a.indices.tolist() == b.indices.tolist()


def test_same_seed_same_result(selector: Selector) -> None:
    x, *_ = make_pool()
    a = run(selector, x, BUDGET, seed=11)
    b = run(selector, x, BUDGET, seed=11)
    assert a.indices.tolist() == b.indices.tolist()
    np.testing.assert_array_equal(a.gains, b.gains)


def test_empty_labeled_set_and_zero_budget(selector: Selector) -> None:
    x, *_ = make_pool()
    for labeled in (None, np.array([], dtype=np.int64), np.zeros(N, dtype=bool)):
        sel = run(selector, x, BUDGET, labeled=labeled)
        assert len(set(sel.indices.tolist())) == BUDGET
    assert len(run(selector, x, 0)) == 0


def test_budget_larger_than_pool_is_rejected(selector: Selector) -> None:
    x, *_ = make_pool()
    with pytest.raises(BudgetError, match="larger than"):
        run(selector, x, N - 5, labeled=np.arange(10))
    with pytest.raises(BudgetError, match="non-negative"):
        run(selector, x, -1)


def test_empty_pool_is_rejected(selector: Selector) -> None:
    with pytest.raises(BudgetError, match="empty"):
        run(selector, np.zeros((0, D), dtype=np.float32), 1)


def test_non_finite_vectors_are_rejected(selector: Selector) -> None:
    x, *_ = make_pool()
    for bad in (np.nan, np.inf):
        y = x.copy()
        y[7, 2] = bad
        with pytest.raises(InvalidInputError, match="row 7"):
            run(selector, y, BUDGET)


def test_dimension_problems_are_rejected(selector: Selector) -> None:
    x, *_ = make_pool()
    with pytest.raises(InvalidInputError, match="2-D"):
        run(selector, x[:, 0], BUDGET)
    with pytest.raises(InvalidInputError, match="2-D"):
        run(selector, x[None], BUDGET)
    with pytest.raises(InvalidInputError, match="dimension 0"):
        run(selector, np.zeros((N, 0), dtype=np.float32), BUDGET)
    with pytest.raises(InvalidInputError, match="labeled mask"):
        run(selector, x, BUDGET, labeled=np.zeros(N + 1, dtype=bool))


def test_params_round_trip_through_the_registry(selector: Selector) -> None:
    again = create_selector(selector.name, **selector.params())
    assert again.params() == selector.params()
    assert type(again) is SELECTORS[selector.name]


def test_scored_selectors_explain_missing_scores() -> None:
    x, scores, *_ = make_pool()
    for name in list_selectors():
        sel = create_selector(name, **CONFIGS[name])
        if not sel.needs_scores:
            continue
        with pytest.raises(InvalidInputError):
            sel.select(x, BUDGET, groups=np.zeros(N), costs=np.ones(N)) if (
                sel.needs_groups or sel.needs_costs
            ) else sel.select(x, BUDGET)
        with pytest.raises(InvalidInputError, match="one value per row"):
            bad = {k: v[:-1] for k, v in scores.items()}
            sel.select(x, BUDGET, scores=bad)


def test_unknown_score_name_lists_the_available_ones() -> None:
    x, scores, *_ = make_pool()
    with pytest.raises(NotFoundError, match="available: .*entropy_mean"):
        create_selector("topk", score="nope").select(x, BUDGET, scores=scores)
    with pytest.raises(InvalidInputError, match="NaN"):
        bad = dict(scores, entropy_mean=np.full(N, np.nan))
        create_selector("topk").select(x, BUDGET, scores=bad)


def test_unknown_strategy_and_bad_parameters() -> None:
    with pytest.raises(NotFoundError, match="probcover"):
        create_selector("probcoverr")
    with pytest.raises(InvalidInputError, match="delta"):
        create_selector("probcover", delta=-1.0)
    with pytest.raises(InvalidInputError, match="bad parameters"):
        create_selector("typiclust", clusters=3)
    with pytest.raises(InvalidInputError, match="inner"):
        create_selector("constrained", inner="constrained")
