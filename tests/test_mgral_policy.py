"""The MGRAL agent: sampling constraints, REINFORCE on a toy problem with a known best batch,
the look-up table's least-squares fit, checkpoints and bad options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curate.errors import InvalidInputError, NotFoundError
from curate.selectors import create_selector
from curate.selectors._mgral_policy import SetLSTMPolicy, expected_reward, reinforce
from curate.selectors.mgral import candidate_features, load_policy, save_policy


def test_sampler_never_picks_blocked_or_duplicate_rows_and_respects_the_budget():
    torch.manual_seed(0)
    m, budget = 30, 7
    policy = SetLSTMPolicy(5, hidden=8)
    feats = torch.randn(m, 5)
    blocked = torch.zeros(m, dtype=torch.bool)
    blocked[[0, 3, 4, 17, 29]] = True
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        picks, logp, steps = policy.decode(feats, budget, blocked=blocked, samples=400, generator=gen)
        greedy, _, _ = policy.decode(feats, budget, blocked=blocked, greedy=True)
    assert picks.shape == (400, budget) and greedy.shape == (1, budget)
    for row in torch.cat([picks, greedy]).tolist():
        assert len(set(row)) == budget
        assert not blocked[row].any()
    assert torch.allclose(steps.sum(1), logp) and (logp < 0).all()
    # the budget may use every free row, not more
    free = int((~blocked).sum())
    with torch.no_grad():
        full, _, _ = policy.decode(feats, free, blocked=blocked, samples=3, generator=gen)
    assert all(sorted(r) == sorted(np.flatnonzero(~blocked.numpy()).tolist()) for r in full.tolist())
    with pytest.raises(ValueError, match="larger than"):
        policy.decode(feats, free + 1, blocked=blocked)


def test_reinforce_increases_expected_reward_and_finds_the_known_best_batch():
    """Per-frame gains are a hidden linear function of the features; the best batch of 4 is the
    4 largest gains. The trained policy's expected reward rises to near the best batch's."""
    rng = np.random.default_rng(0)
    m, budget = 24, 4
    feats_np = rng.normal(size=(m, 6)).astype(np.float32)
    gains = feats_np @ np.array([1.5, -1.0, 0.5, 0.0, 0.0, 0.0])
    best = set(np.argsort(-gains)[:budget].tolist())
    best_reward = float(np.sort(gains)[-budget:].sum())

    def reward(picks: np.ndarray) -> np.ndarray:
        return gains[picks].sum(axis=1)

    torch.manual_seed(0)
    policy = SetLSTMPolicy(6, hidden=16)
    feats = torch.from_numpy(feats_np)
    before = expected_reward(policy, feats, budget, reward, seed=5)
    history = reinforce(policy, feats, budget, reward, iterations=150, samples=16, lr=0.02, seed=0)
    after = expected_reward(policy, feats, budget, reward, seed=5)
    assert len(history) == 150
    assert after > before + 0.5 * (best_reward - before)
    with torch.no_grad():
        greedy, _, _ = policy.decode(feats, budget, greedy=True)
    assert len(best & set(greedy[0].tolist())) >= budget - 1


def test_reinforce_is_reproducible_for_a_seed():
    feats = torch.from_numpy(np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32))

    def reward(p):
        return p.sum(axis=1).astype(float)

    out = []
    for _ in range(2):
        torch.manual_seed(3)
        pol = SetLSTMPolicy(3, hidden=8)
        out.append(reinforce(pol, feats, 3, reward, iterations=5, samples=4, seed=9))
    assert out[0] == out[1]
    with pytest.raises(ValueError, match="samples >= 2"):
        reinforce(pol, feats, 3, reward, iterations=1, samples=1)


def _pool(n=60, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    scores = {"emoc": rng.random(n) * 5, "entropy_mean": rng.random(n), "n_boxes": rng.integers(0, 9, n).astype(float)}
    return x, scores


def test_candidate_features_are_standardised_and_distance_is_brute_force():
    x, scores = _pool()
    labeled = np.zeros(len(x), dtype=bool)
    labeled[[2, 9, 33]] = True
    f = candidate_features(x, labeled, scores, n_pca=3)
    assert f.shape == (60, 7) and f.dtype == np.float32
    np.testing.assert_allclose(f[~labeled].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(f[~labeled].std(0), 1, atol=1e-4)
    brute = np.sqrt(((x[:, None, :] - x[labeled][None]) ** 2).sum(-1)).min(1)
    ref = (brute - brute[~labeled].mean()) / brute[~labeled].std()
    np.testing.assert_allclose(f[:, -1], ref, atol=1e-4)
    with pytest.raises(InvalidInputError, match="emoc"):
        candidate_features(x, labeled, {"entropy_mean": scores["entropy_mean"], "n_boxes": scores["n_boxes"]})


def test_selector_applies_a_saved_policy_and_explains_bad_options(tmp_path):
    x, scores = _pool()
    torch.manual_seed(0)
    path = save_policy(tmp_path / "policy", SetLSTMPolicy(4 + 2, hidden=8), step=3, n_pca=2)
    assert (tmp_path / "policy" / "step-0003.pt").is_file()
    policy, state = load_policy(path)
    assert state["n_pca"] == 2 and policy.n_features == 6
    labeled = np.zeros(len(x), dtype=bool)
    labeled[:10] = True
    sel = create_selector("mgral", policy=str(path)).select(x, 5, labeled=labeled, scores=scores)
    assert len(set(sel.indices.tolist())) == 5 and not labeled[sel.indices].any()
    assert ((sel.gains > 0) & (sel.gains <= 1)).all()
    with pytest.raises(InvalidInputError, match="needs policy="):
        create_selector("mgral").select(x, 5, scores=scores)
    with pytest.raises(NotFoundError, match="does not exist"):
        create_selector("mgral", policy=str(tmp_path / "nope.pt")).select(x, 5, scores=scores)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInputError, match="not a readable mgral policy"):
        create_selector("mgral", policy=str(tmp_path / "junk.pt")).select(x, 5, scores=scores)
    with pytest.raises(InvalidInputError, match="bad parameters"):
        create_selector("mgral", polcy="x")
    other = save_policy(tmp_path / "p2", SetLSTMPolicy(9, hidden=4), step=0, n_pca=2)
    with pytest.raises(InvalidInputError, match="reads 9 features"):
        create_selector("mgral", policy=str(other)).select(x, 5, scores=scores)
