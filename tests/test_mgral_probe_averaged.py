"""``benchmarks.loop probe-averaged``: the table's held-out Spearman when each probe averages
``m`` of a probe-noise result's repeated fine-tunes, rebuilt from the result's rows (the CLI run
is in ``test_benchmarks_smoke_more``)."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from benchmarks.loop_probe_averaged import averaged_rows, averaged_table, cell_gains, wide_rows
from benchmarks.loop_probe_noise import cell_summary
from curate.loop.mgral.lut import fit_table, heldout_batches, probe_design, table_error


def _plan(n_frames: int = 12, n_probes: int = 24, n_held: int = 12, size: int = 3) -> dict:
    probes = probe_design(n_frames, n_probes, size, seed=1)
    return {"lut_frames": [f"f{i:02d}" for i in range(n_frames)], "probes": probes,
            "heldout": heldout_batches(n_frames, n_held, size, seed=1, avoid=probes)}


def _values(plan: dict, weights: np.ndarray, noise: float, repeats: int, seed: int = 0) -> list[dict]:
    """Per repeat: a base level plus, per run, the sum of its frames' weights plus seeded noise."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(repeats):
        v = {"base": 50.0 + k}
        for kind, batches in (("probe", plan["probes"]), ("heldout", plan["heldout"])):
            for j, b in enumerate(batches):
                v[f"{kind}-{j}"] = v["base"] + float(weights[b].sum()) + noise * float(rng.normal())
        out.append(v)
    return out


def _rows(plan: dict, values: list[dict], cell: str = "random:0:1") -> list[dict]:
    """A probe-noise result's rows for ``values`` (runs shuffled: the order must not matter)."""
    ids = plan["lut_frames"]
    batch = {"base": []} | {f"probe-{j}": b for j, b in enumerate(plan["probes"])} \
        | {f"heldout-{j}": b for j, b in enumerate(plan["heldout"])}
    rows = [{"cell": cell, "repeat": k, "run": run, "batch": [ids[i] for i in b], "metric": v[run],
             "gain": v[run] - v["base"]} for k, v in enumerate(values) for run, b in batch.items()]
    return [rows[i] for i in np.random.default_rng(3).permutation(len(rows))]


def test_cell_gains_rebuild_the_plan_and_the_gains_from_the_rows() -> None:
    plan = _plan()
    values = _values(plan, np.random.default_rng(7).normal(0, 2, 12), noise=1.0, repeats=3)
    frames, probes, held, gains = cell_gains(_rows(plan, values), "random:0:1")
    assert frames == plan["lut_frames"]  # zero-padded ids sort as the plan lists them
    assert probes == plan["probes"] and held == plan["heldout"]
    names = [f"probe-{j}" for j in range(len(probes))] + [f"heldout-{j}" for j in range(len(held))]
    assert gains == pytest.approx(np.array([[v[n] - v["base"] for n in names] for v in values]))


def test_one_repeat_is_the_studys_measurement_and_all_repeats_the_mean_table() -> None:
    plan = _plan()
    values = _values(plan, np.random.default_rng(7).normal(0, 2, 12), noise=3.0, repeats=4)
    frames, probes, held, gains = cell_gains(_rows(plan, values), "random:0:1")
    out = {r["m"]: r for r in averaged_table(frames, probes, held, gains, ridge=1.0)}
    assert sorted(out) == [1, 2, 3, 4]
    assert [out[m]["subsets"] for m in (1, 2, 3, 4)] == [4, 6, 4, 1]
    # m = 1: probe-noise's own per-repeat table error, averaged
    assert out[1]["table_spearman_mean"] == pytest.approx(cell_summary(plan, values, ridge=1.0)["table_same_repeat_mean"])
    # m = 4: one table fitted on the mean over every repeat, judged on the held-out means
    mean = gains.mean(axis=0)
    table = fit_table(frames, [[]] + probes, [0.0] + mean[:len(probes)].tolist(), ridge=1.0)
    direct = table_error(table, held, mean[len(probes):].tolist())["spearman"]
    assert out[4]["table_spearman_mean"] == pytest.approx(direct)
    assert out[4]["table_spearman_min"] == out[4]["table_spearman_max"] == pytest.approx(direct)
    # m = 2 by hand over the six pairs
    pairs = []
    for a, b in combinations(range(4), 2):
        m2 = gains[[a, b]].mean(axis=0)
        t = fit_table(frames, [[]] + probes, [0.0] + m2[:len(probes)].tolist(), ridge=1.0)
        pairs.append(table_error(t, held, m2[len(probes):].tolist())["spearman"])
    assert out[2]["table_spearman_mean"] == pytest.approx(np.mean(pairs))


def test_averaging_helps_a_noisy_additive_reward_and_is_exact_without_noise() -> None:
    plan = _plan(n_probes=36, n_held=16)
    w = np.random.default_rng(11).normal(0, 2, 12)
    clean = averaged_rows({"name": "clean", "rows": _rows(plan, _values(plan, w, 0.0, 3))}, ridge=1e-6)[1]
    assert [d["table_spearman_mean"] for d in clean] == pytest.approx([1.0, 1.0, 1.0])
    noisy = averaged_rows({"name": "noisy", "rows": _rows(plan, _values(plan, w, 6.0, 6, seed=5))}, ridge=1.0)[1]
    by_m = {d["m"]: d["table_spearman_mean"] for d in noisy}
    assert by_m[6] > by_m[1] + 0.2 and all(d["cells"] == 1 for d in noisy)


def test_two_cells_are_averaged_and_a_missing_run_is_refused() -> None:
    plan = _plan()
    w = np.random.default_rng(7).normal(0, 2, 12)
    rows = _rows(plan, _values(plan, w, 1.0, 2), "random:0:1") + _rows(plan, _values(plan, w, 1.0, 2, seed=9), "random:1:1")
    cells, designs = averaged_rows({"name": "two", "rows": rows}, ridge=1.0)
    assert [(c["cell"], c["m"]) for c in cells] == [("random:0:1", 1), ("random:0:1", 2), ("random:1:1", 1), ("random:1:1", 2)]
    for m in (1, 2):
        per_cell = [c["table_spearman_mean"] for c in cells if c["m"] == m]
        [d] = [d for d in designs if d["m"] == m]
        assert d["cells"] == 2 and d["table_spearman_mean"] == pytest.approx(np.mean(per_cell))
    broken = [r for r in rows if not (r["cell"] == "random:1:1" and r["repeat"] == 1 and r["run"] == "probe-3")]
    with pytest.raises(ValueError, match="lacks runs"):
        averaged_rows({"name": "broken", "rows": broken}, ridge=1.0)
    with pytest.raises(ValueError, match="no probe or held-out rows"):
        cell_gains(rows, "random:9:9")


def test_wide_rows_put_each_results_m_side_by_side() -> None:
    designs = [{"result": "a", "design": "x", "m": 1, "cells": 2, "table_spearman_mean": 0.1},
               {"result": "a", "design": "x", "m": 2, "cells": 2, "table_spearman_mean": 0.3},
               {"result": "b", "design": "y", "m": 1, "cells": 1, "table_spearman_mean": None}]
    assert wide_rows(designs) == [
        {"result": "a", "design": "x", "cells": 2, "table_spearman_m1": 0.1, "table_spearman_m2": 0.3},
        {"result": "b", "design": "y", "cells": 1, "table_spearman_m1": None, "table_spearman_m2": None}]
