"""``benchmarks/loop.py``'s per-(strategy, round) summary and issue 16's target rows, computed
from cell records by hand on a small made-up study."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import loop


def _row(label: str, seed: int, rnd: int, m: float, boxes: int, ref: tuple[float, int], **kw) -> dict:
    return {"strategy": label, "seed": seed, "round": rnd, "labeled_frames": 16 * (rnd + 1),
            "labeled_boxes": boxes, "map_bev_loose": m, "map_bev": m / 2, "map_per_frame": m / (16 * (rnd + 1)),
            "map_per_box": m / boxes, "seconds": 10.0 + seed, "random_map_bev_loose": ref[0],
            "random_map_per_box": ref[0] / ref[1], **kw}


def _study() -> list[dict]:
    rows = []
    for seed in range(3):
        rnd_m = [40.0 + seed, 50.0 + seed]
        for rnd in (1, 2):
            ref = (rnd_m[rnd - 1], 100)
            rows.append(_row("random", seed, rnd, ref[0], 100, ref))
            rows.append(_row("kcenter", seed, rnd, ref[0] + 6 + seed, 100, ref))
            # mgral: more mAP per box than random in every cell but (seed 2, round 2)
            mg = ref[0] + (-1.0 if (seed, rnd) == (2, 2) else 1.0)
            rows.append(_row("mgral", seed, rnd, mg, 100, ref, table_spearman=[0.2, 0.8, 0.9][seed],
                             policy_s=5.0, train_s=50.0 if seed else 4.0, probe_s=100.0))
    return rows


def test_summary_is_the_mean_and_std_over_seeds() -> None:
    summary = {(s["strategy"], s["round"]): s for s in loop._summary_rows(_study())}
    k = summary[("kcenter", 1)]
    vals = np.array([46.0, 48.0, 50.0])  # 40 + seed + 6 + seed
    assert k["seeds"] == 3
    assert k["map_bev_loose_mean"] == pytest.approx(vals.mean())
    assert k["map_bev_loose_std"] == pytest.approx(vals.std(ddof=1))
    assert k["map_per_box_mean"] == pytest.approx((vals / 100).mean())


def test_mgral_targets_from_the_cells() -> None:
    rows = _study()
    targets = loop._mgral_target_rows(rows, loop._summary_rows(rows), {"spearman": 0.7})
    by = {t["target"]: t for t in targets}
    share = by["mgral beats random in mAP per labeled box (share of paired cells)"]
    assert share["measured"] == pytest.approx(5 / 6) and share["met"] is True
    assert share["detail"].startswith("5 of 6 (seed, round >= 1) cells; 95% CI of the share")
    # round 1: kcenter mean 48 +- 2, mgral mean 42: below 46
    r1 = by["round 1: mgral >= best hand-made - 1 std (mAP)"]
    assert r1["threshold"] == pytest.approx(46.0) and r1["measured"] == pytest.approx(42.0)
    assert r1["met"] is False and "best kcenter" in r1["detail"]
    rho = by["look-up table: Spearman with real fine-tunes on held-out batches (median per round)"]
    assert rho["measured"] == pytest.approx(0.8) and rho["met"] is True
    policy = by["policy training / the round's detector training (worst round)"]
    assert policy["measured"] == pytest.approx(5.0 / 4.0) and policy["met"] is False


def test_share_interval_is_the_exact_binomial_interval_and_tail() -> None:
    from math import comb

    # 12 of 20 against a true share of 0.8: P(X <= 12) summed by hand
    tail = sum(comb(20, k) * 0.8 ** k * 0.2 ** (20 - k) for k in range(13))
    text = loop._share_interval(12, 20, 0.8)
    assert f"P(<= 12 of 20 | share 0.8) = {tail:.3g}" in text
    # Clopper-Pearson for 12 of 20 (beta quantiles): [0.3605, 0.8088]
    assert "95% CI of the share [0.36, 0.81]" in text
    # 5 of 6 is above 0.8: the upper tail P(X >= 5) = 6 * 0.8^5 * 0.2 + 0.8^6
    assert f"P(>= 5 of 6 | share 0.8) = {6 * 0.8 ** 5 * 0.2 + 0.8 ** 6:.3g}" in loop._share_interval(5, 6, 0.8)
    assert loop._share_interval(0, 0, 0.8) == ""


def test_no_target_rows_without_mgral() -> None:
    rows = [r for r in _study() if r["strategy"] != "mgral"]
    assert loop._mgral_target_rows(rows, loop._summary_rows(rows)) == []


def test_table_error_pooled_within_rounds_drops_the_rounds_levels() -> None:
    # each round ranks its batches perfectly, but the round with the higher estimates has the
    # lower real gains: pooled raw ranks disagree, centred by round they agree exactly
    heldout = [[[1.0, 2.0, 3.0], [101.0, 102.0, 103.0]], [[11.0, 12.0, 13.0], [1.0, 2.0, 3.0]]]
    out = loop._table_error_pooled(heldout)
    assert out["heldout_pairs"] == 6
    assert out["spearman_within_round"] == pytest.approx(1.0)
    assert out["spearman"] < 0
    assert out["mae"] == pytest.approx(np.mean([100, 100, 100, 10, 10, 10]))
    # a round ranked backwards pulls the within-round value down
    flipped = loop._table_error_pooled([heldout[0], [[11.0, 12.0, 13.0], [3.0, 2.0, 1.0]]])
    assert flipped["spearman_within_round"] == pytest.approx(0.0)
    # nothing to rank: None, not an error
    assert loop._table_error_pooled([])["spearman"] is None
    assert loop._table_error_pooled([[[1.0], [2.0]]])["spearman_within_round"] is None
    # a one-pair round adds no (0, 0) tie to the within-round sample
    # (centred, the lone pair's (0, 0) would sit mid-rank in estimates but not in real gains)
    skewed = [[1.0, 2.0, 3.0], [1.0, 1.5, 4.0]]
    lone = loop._table_error_pooled([skewed, [[5.0], [7.0]]])
    assert lone["heldout_pairs"] == 4 and lone["spearman_within_round"] == pytest.approx(1.0)
