"""The reward-noise arithmetic of ``benchmarks.loop probe-noise`` (the run itself is in
``test_benchmarks_smoke_more``): test-retest reliability, Spearman-Brown and split-half table error."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.loop_probe_noise import cell_summary, probe_seeds, spearman_brown_repeats
from curate.loop.mgral.lut import heldout_batches, probe_design


def _plan(n_frames: int = 12, n_probes: int = 24, n_held: int = 12, size: int = 3) -> dict:
    probes = probe_design(n_frames, n_probes, size, seed=1)
    return {"lut_frames": [f"f{i}" for i in range(n_frames)], "probes": probes,
            "heldout": heldout_batches(n_frames, n_held, size, seed=1, avoid=probes)}


def _values(plan: dict, weights: np.ndarray, noise: float, repeats: int, seed: int = 0) -> list[dict]:
    """Per repeat: base 50 plus, per run, the sum of its frames' weights plus seeded noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(repeats):
        v = {"base": 50.0}
        for kind in ("probe", "heldout"):
            batches = plan["probes"] if kind == "probe" else plan["heldout"]
            for k, b in enumerate(batches):
                v[f"{kind}-{k}"] = 50.0 + float(weights[b].sum()) + noise * float(rng.normal())
        out.append(v)
    return out


def test_noise_free_additive_gains_reproduce_and_the_table_ranks_them() -> None:
    plan = _plan()
    w = np.random.default_rng(7).normal(0, 2, 12)  # no two batches tie
    s = cell_summary(plan, _values(plan, w, noise=0.0, repeats=3), ridge=1e-6)
    assert s["retest_spearman"] == pytest.approx(1.0)
    assert s["within_std"] == pytest.approx(0.0)
    assert s["between_std"] > 1.0
    assert s["icc"] == pytest.approx(1.0) and s["signal_std"] == pytest.approx(s["between_std"])
    assert s["repeats_for_0.6"] == 1.0
    assert s["table_same_repeat_mean"] == pytest.approx(1.0)
    assert s["table_split_half_mean"] == pytest.approx(1.0)
    assert np.asarray(s["gains"]).shape == (3, 24 + 12)


def test_pure_noise_does_not_reproduce() -> None:
    plan = _plan()
    s = cell_summary(plan, _values(plan, np.zeros(12), noise=2.0, repeats=6, seed=3), ridge=1.0)
    assert abs(s["retest_spearman"]) < 0.2
    assert s["within_std"] == pytest.approx(2.0 * np.sqrt(2), rel=0.35)  # a gain is the difference of two noisy runs
    assert len(s["retest_pairs"]) == 15  # 6 repeats: every pair once
    assert abs(s["icc"]) < 0.15 and s["signal_std"] < 0.5 * s["within_std"]


def test_noisy_signal_is_in_between_and_averaging_repeats_helps_the_table() -> None:
    plan = _plan(n_held=30)
    w = np.linspace(-2, 2, 12)
    s = cell_summary(plan, _values(plan, w, noise=1.5, repeats=8, seed=5), ridge=1.0)
    assert 0.2 < s["retest_spearman"] < 0.95
    # ICC(3,1) recovers the share of one gain's variance that is the batch's (noise variance 1.5^2)
    true = np.array([w[b].sum() for b in [*plan["probes"], *plan["heldout"]]])
    assert s["icc"] == pytest.approx(true.var(ddof=1) / (true.var(ddof=1) + 1.5 ** 2), abs=0.12)
    assert s["signal_std"] == pytest.approx(true.std(ddof=1), rel=0.2)
    # a repeat's common offset (a noisy base, a lucky seed) changes no ranking, nor the split
    shifted = _values(plan, w, noise=1.5, repeats=8, seed=5)
    for k, v in enumerate(shifted):
        v["base"] -= 3.0 * k
    t = cell_summary(plan, shifted, ridge=1.0)
    assert (t["icc"], t["signal_std"]) == pytest.approx((s["icc"], s["signal_std"]))
    assert t["within_std"] > s["within_std"]  # the plain across-repeat std does see the offsets
    # the split-half table averages 4 repeats per side: less noise than one repeat's table
    assert s["table_split_half_mean"] > s["table_same_repeat_mean"]


def test_spearman_brown_repeats_inverts_the_reliability_of_a_mean() -> None:
    m = spearman_brown_repeats(0.2)
    assert m * 0.2 / (1 + (m - 1) * 0.2) == pytest.approx(0.36)
    assert spearman_brown_repeats(0.5) == 1.0
    assert spearman_brown_repeats(0.0) is None and spearman_brown_repeats(-0.1) is None
    assert spearman_brown_repeats(None) is None


def test_probe_seeds_start_with_the_study_seed_and_are_distinct() -> None:
    seeds = probe_seeds(2, 3, 4)
    assert seeds[0] == 2 * 100 + 3 + 7
    assert len(set(seeds)) == 4


def _reference(plan: dict, values: list[dict], icc: float, name: str = "ref") -> dict:
    """A probe-noise result of ``values`` as ``run_probe_noise`` writes it (one cell)."""
    lut = plan["lut_frames"]
    batches = {f"probe-{k}": b for k, b in enumerate(plan["probes"])}
    batches.update({f"heldout-{k}": b for k, b in enumerate(plan["heldout"])})
    rows = [{"cell": "random:0:1", "repeat": r, "run": n, "batch": [lut[i] for i in batches.get(n, [])],
             "gain": v[n] - v["base"]} for r, v in enumerate(values) for n in ["base", *batches]]
    return {"name": name, "rows": rows, "extra": {"cells": [{"cell": "random:0:1", "icc": icc}]}}


def test_reference_agreement_ranks_against_the_reference_means_and_refuses_other_batches() -> None:
    from benchmarks.loop_probe_noise import reference_agreement

    plan = _plan()
    w = np.random.default_rng(7).normal(0, 2, 12)
    ref = _reference(plan, _values(plan, w, noise=1.0, repeats=4, seed=2), icc=0.25)
    same = np.asarray(cell_summary(plan, _values(plan, w, noise=0.0, repeats=2), ridge=1.0)["gains"])
    agree = reference_agreement(plan, "random:0:1", same, ref)
    ref_means = np.array([np.mean([r["gain"] for r in ref["rows"] if r["run"] == n])
                          for n in [f"probe-{k}" for k in range(24)] + [f"heldout-{k}" for k in range(12)]])
    from scipy.stats import spearmanr

    assert agree["reference_spearman"] == pytest.approx(spearmanr(same.mean(axis=0), ref_means)[0])
    assert agree["reference_spearman"] > 0.8  # the same frame effects under little noise
    assert agree["reference_repeats"] == 4 and agree["reference_reliability"] == pytest.approx(4 * 0.25 / (1 + 3 * 0.25))
    unrelated = np.asarray(cell_summary(plan, _values(plan, -w, noise=0.0, repeats=2), ridge=1.0)["gains"])
    assert reference_agreement(plan, "random:0:1", unrelated, ref)["reference_spearman"] < -0.8
    assert reference_agreement(plan, "random:0:1", same, _reference(plan, _values(plan, w, 1.0, 4), icc=-0.1))[
        "reference_reliability"] is None
    other = _plan(n_probes=24, size=2)
    with pytest.raises(SystemExit, match="other frames"):
        reference_agreement(other, "random:0:1", same, ref)
    with pytest.raises(SystemExit, match="no complete cell random:1:1"):
        reference_agreement(plan, "random:1:1", same, ref)


def test_design_rows_average_each_design_over_the_cells_that_know_a_statistic() -> None:
    from benchmarks.loop_probe_noise import design_rows

    a = {"name": "pn-a-cells", "rows": [
        {"design": "heldout=8", "cell": "random:0:1", "mgral_round": 2, "icc": 0.2, "table_same_repeat_mean": 0.5,
         "table_split_half_mean": 0.1, "reference_spearman": None},
        {"design": "heldout=8", "cell": "random:1:1", "mgral_round": 2, "icc": 0.4, "table_same_repeat_mean": -0.1,
         "table_split_half_mean": None, "reference_spearman": None}]}
    b = {"name": "pn-b-cells", "rows": [
        {"design": "heldout=8 probe_head_only=True", "cell": "random:0:2", "mgral_round": 3, "icc": 1.0,
         "table_same_repeat_mean": 0.7, "table_split_half_mean": 0.7, "reference_spearman": 0.45}]}
    designs, cells = design_rows([a, b])
    assert [d["result"] for d in designs] == ["pn-a", "pn-b"] and len(cells) == 3
    da, db = designs
    assert da["icc"] == pytest.approx(0.3) and da["icc_cells"] == 2
    assert da["table_same_repeat_mean"] == pytest.approx(0.2)
    assert da["table_split_half_mean"] == pytest.approx(0.1) and da["table_split_half_mean_cells"] == 1
    assert da["reference_spearman"] is None and da["reference_spearman_cells"] == 0
    assert db["reference_spearman"] == pytest.approx(0.45) and db["mgral_round"] == [3] and da["mgral_round"] == [2]
    assert cells[2]["result"] == "pn-b" and cells[2]["cell"] == "random:0:2"
