"""``probe-noise`` mode of :mod:`benchmarks.loop`: how reproducible is MGRAL's reward?

MGRAL's look-up table (:mod:`curate.loop.mgral.lut`) is fitted on the gains of short real
fine-tunes (probe batches) and judged against the gains of other short fine-tunes (held-out
batches). Both sides carry the fine-tune's own training noise (data order, augmentation,
initialisation of nothing but the order of updates). This mode measures that noise, which bounds
what any table can reach: for each finished cell of an ``al`` run (``--noise-cells
STRATEGY:SEED:ROUND``: the labeled set and the model an mgral round ``ROUND + 1`` starts from) it
builds the mgral plan of round ``ROUND + 1`` with ``--mgral-options`` (:func:`make_plan`: the same
table frames, tuning split, probe and held-out batches the study's mgral cell of that seed would
draw) and runs *every* fine-tune of the plan (base, probes, held-out) ``--repeats`` times with
distinct fine-tune seeds. Repeat 0 uses the study's probe seed (``seed * 100 + round + 7``).

Per cell it reports (``extra.cells``):

* ``retest_spearman``: the mean over pairs of repeats of the Spearman rank correlation, across the
  plan's batches (probes and held-out), between the two repeats' gains. It is the test-retest
  reliability of one fine-tune's gain; a table correlates with a single noisy real gain at most
  about ``sqrt(retest)`` (the attenuation bound), and the mean of ``m`` repeats has reliability
  ``m r / (1 + (m - 1) r)`` (Spearman-Brown), given as ``repeats_for_0.6``: the repeats whose
  mean would let a perfect table reach a rank correlation of 0.6;
* ``between_std`` / ``within_std``: the spread of the batches' mean gains against the mean
  across-repeat standard deviation of one batch's gain (signal against noise, mAP points);
* ``signal_std`` / ``icc``: the same split done as a two-way analysis of variance (batches x
  repeats, a repeat's common offset taken out: it does not change a ranking): the spread of the
  batches' true gains once the noise's share of the means' spread is taken out, and ICC(3,1),
  the reliability of one fine-tune's gains as a ranking (what a table could explain at best);
* ``table_same_repeat``: the study's own measurement, per repeat: the table fitted on that
  repeat's probes against that repeat's held-out gains (Spearman), and its mean;
* ``table_split_half``: the table fitted on the mean probe gains of the even repeats against the
  mean held-out gains of the odd repeats, and the other way round (independent noise on both
  sides; what averaging ``R / 2`` repeats per probe would give).
* with ``--reference RESULT`` (an earlier probe-noise run of the same cells and batches, e.g. the
  shipped design with several repeats): ``reference_spearman``, the rank correlation between this
  design's and the reference's mean batch gains, and ``reference_reliability``, the reliability
  of the reference's mean, which bounds it at about its square root. A cheap or deterministic
  probe can be perfectly reproducible and still rank batches unlike the fine-tunes a round
  really runs; this is the check.

Every fine-tune's tuning metric is written as soon as it is known (``<root>/probe-noise/...``),
so a killed run resumes without running one twice. The fine-tunes of a design do not depend on
its ``metric``: a second metric of the same design (``"metric": "tuning_loss"``) scores the
checkpoints an earlier run left (``repeat-k.<metric>.json``) and trains only what is missing.
Cost: cells x repeats x (1 + probes + heldout) short fine-tunes and tuning evaluations (seconds
each on the benchmark's tiny PointPillars). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from itertools import combinations
from pathlib import Path
from typing import Optional

import numpy as np

logger = logging.getLogger(__name__)

#: Fine-tune seeds of repeats ``k >= 1``: never a study, ``noise`` or ``--train-repeats`` seed.
PROBE_REPEAT_SEED_BASE = 3_000_000


def probe_seeds(seed: int, rnd: int, repeats: int) -> list[int]:
    """Fine-tune seeds of the ``repeats`` repeats of a plan of mgral round ``rnd``: repeat 0 is
    the study's probe seed ``seed * 100 + rnd + 7``, repeat ``k`` adds
    ``PROBE_REPEAT_SEED_BASE + 10_000 * k``."""
    base = seed * 100 + rnd + 7
    return [base] + [PROBE_REPEAT_SEED_BASE + 10_000 * k + base for k in range(1, repeats)]


def spearman_brown_repeats(r: Optional[float], target: float = 0.6) -> Optional[float]:
    """Repeats ``m`` whose mean gain has reliability ``target ** 2`` (so that a perfect table
    could reach a rank correlation ``target`` with it), from the one-repeat reliability ``r``
    (Spearman-Brown: ``rel_m = m r / (1 + (m - 1) r)``). None when ``r`` is None or ``<= 0``
    (no number of repeats helps a signal that does not reproduce)."""
    if r is None or r <= 0:
        return None
    want = target ** 2
    if r >= want:
        return 1.0
    return float(want * (1 - r) / (r * (1 - want)))


def _spearman(x: np.ndarray, y: np.ndarray) -> Optional[float]:
    from curate.loop.mgral.lut import _spearman as sp

    return sp(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))


def cell_summary(plan: dict, values: list[dict[str, float]], ridge: float) -> dict:
    """Reliability and table error of one plan from its repeats' tuning metrics.

    Parameters
    ----------
    plan : dict
        :func:`curate.loop.mgral.stage.make_plan`'s output (``probes``, ``heldout``, ``lut_frames``).
    values : list of dict
        Per repeat, run name (``base``, ``probe-k``, ``heldout-k``) -> tuning metric.
    ridge : float
        The table's ridge penalty.

    Returns
    -------
    dict
        See the module docstring. O(R^2 * B log B + R * F^3) for R repeats, B batches, F table frames.
    """
    from curate.loop.mgral.lut import fit_table, table_error

    probes = [list(b) for b in plan["probes"]]
    held = [list(b) for b in plan["heldout"]]
    names = [f"probe-{k}" for k in range(len(probes))] + [f"heldout-{k}" for k in range(len(held))]
    gains = np.array([[v[n] - v["base"] for n in names] for v in values], dtype=np.float64)  # (R, B)
    n_probe = len(probes)
    pairs = [_spearman(gains[a], gains[b]) for a, b in combinations(range(len(values)), 2)]
    pairs_ok = [p for p in pairs if p is not None]
    retest = float(np.mean(pairs_ok)) if pairs_ok else None
    lut = plan["lut_frames"]

    def table_rho(probe_gains: np.ndarray, held_gains: np.ndarray) -> Optional[float]:
        table = fit_table(lut, [[]] + probes, [0.0] + probe_gains.tolist(), ridge=ridge)
        return table_error(table, held, held_gains.tolist())["spearman"]

    same = [table_rho(g[:n_probe], g[n_probe:]) for g in gains] if held else []
    same_ok = [s for s in same if s is not None]
    split: list[Optional[float]] = []
    if len(values) >= 2 and held:
        even, odd = gains[0::2].mean(axis=0), gains[1::2].mean(axis=0)
        split = [table_rho(even[:n_probe], odd[n_probe:]), table_rho(odd[:n_probe], even[n_probe:])]
    split_ok = [s for s in split if s is not None]
    return {
        "batches": len(names), "repeats": len(values),
        "base": [v["base"] for v in values],
        "gains": gains.tolist(),
        "retest_spearman": retest, "retest_pairs": pairs,
        "attenuation_bound": float(np.sqrt(retest)) if retest is not None and retest > 0 else None,
        "repeats_for_0.6": spearman_brown_repeats(retest),
        "between_std": float(np.std(gains.mean(axis=0), ddof=1)) if len(names) > 1 else None,
        "within_std": float(np.mean(np.std(gains, axis=0, ddof=1))) if len(values) > 1 else None,
        **_variance_components(gains),
        "table_same_repeat": same, "table_same_repeat_mean": float(np.mean(same_ok)) if same_ok else None,
        "table_split_half": split, "table_split_half_mean": float(np.mean(split_ok)) if split_ok else None,
    }


def reference_agreement(plan: dict, spec: str, gains: np.ndarray, reference: dict) -> dict:
    """How this design's batch ranking agrees with another probe-noise run's on the same batches.

    Parameters
    ----------
    plan : dict
        This cell's plan (its probe and held-out batches).
    spec : str
        The cell (``STRATEGY:SEED:ROUND``).
    gains : numpy.ndarray
        ``(repeats, batches)`` this design's gains, batches in :func:`cell_summary`'s order.
    reference : dict
        A probe-noise result (``rows`` with ``cell``, ``repeat``, ``run``, ``batch``, ``gain``;
        ``extra.cells`` with ``icc``).

    Returns
    -------
    dict
        ``reference_spearman``: Spearman between the two runs' mean gains per batch;
        ``reference_repeats`` and ``reference_reliability``: the reference's repeats and the
        reliability of its mean (Spearman-Brown from its ICC, None when that ICC is None or
        ``<= 0``), which bounds the agreement at about ``sqrt(reliability)``.

    Raises
    ------
    SystemExit
        The reference lacks the cell or ran other batches (another plan).
    """
    from curate.loop.mgral.stage import probe_runs

    runs = probe_runs(plan)[1:]  # probes, then held-out batches: cell_summary's order
    names = [name for name, _ in runs]
    want = {name: [plan["lut_frames"][i] for i in batch] for name, batch in runs}
    by_run: dict[str, list[float]] = {}
    for r in reference["rows"]:
        if r["cell"] != spec or r["run"] == "base":
            continue
        if r["run"] not in want or list(r["batch"]) != want[r["run"]]:
            raise SystemExit(f"--reference {reference.get('name')}: cell {spec} run {r['run']} fine-tuned other frames "
                             "than this design's plan (another lut_frames / probes / probe_size / heldout / "
                             "tuning_fraction?); compare designs that share their batches")
        by_run.setdefault(r["run"], []).append(float(r["gain"]))
    if set(by_run) != set(names):
        raise SystemExit(f"--reference {reference.get('name')}: has no complete cell {spec} "
                         f"({len(by_run)} of {len(names)} batches)")
    ref_mean = np.array([np.mean(by_run[n]) for n in names])
    ref_cells = [c for c in reference.get("extra", {}).get("cells", []) if c.get("cell") == spec]
    icc = ref_cells[0].get("icc") if ref_cells else None
    m = len(by_run[names[0]])
    reliability = None if icc is None or icc <= 0 else float(m * icc / (1 + (m - 1) * icc))
    return {"reference": reference.get("name"), "reference_spearman": _spearman(gains.mean(axis=0), ref_mean),
            "reference_repeats": m, "reference_reliability": reliability}


def _variance_components(gains: np.ndarray) -> dict:
    """Two-way split of ``gains`` (repeats x batches) into the batches' own effect, a repeat's
    common offset and the fine-tune noise.

    A repeat's offset (its base fine-tune's noise is subtracted from every gain of that repeat,
    and its seed may help or hurt all its batches alike) does not change how the batches rank
    within the repeat, which is all a table is judged on; so it is taken out (two-way ANOVA
    without interaction, ``MSE = SS_residual / ((R - 1)(B - 1))``, ``MSB = R * var(batch means)``).
    ``signal_std``: the standard deviation of the batches' true gains, ``sqrt(max(0, (MSB - MSE)
    / R))``. ``icc``: ICC(3,1), the consistency reliability of one fine-tune's gains, ``(MSB - MSE)
    / (MSB + (R - 1) MSE)`` (negative when the batch means spread less than the noise alone
    would make them). Both None with fewer than 2 repeats or batches. O(R * B).
    """
    n_rep, n_b = gains.shape
    if n_rep < 2 or n_b < 2:
        return {"signal_std": None, "icc": None}
    resid = gains - gains.mean(axis=1, keepdims=True) - gains.mean(axis=0, keepdims=True) + gains.mean()
    mse = float((resid ** 2).sum() / ((n_rep - 1) * (n_b - 1)))
    msb = float(n_rep * np.var(gains.mean(axis=0), ddof=1))
    denom = msb + (n_rep - 1) * mse
    return {"signal_std": float(np.sqrt(max(0.0, (msb - mse) / n_rep))),
            "icc": float((msb - mse) / denom) if denom > 0 else None}


def _design(opts: dict) -> str:
    """The options of a probe design that differ from :class:`MGRALOptions`'s defaults, as
    ``key=value`` (``defaults`` when none does)."""
    from curate.loop.mgral.options import MGRALOptions

    default = MGRALOptions().model_dump()
    diff = [f"{k}={v}" for k, v in sorted(opts.items()) if default.get(k) != v]
    return " ".join(diff) or "defaults"


def _cell_row(cell: dict, design: str) -> dict:
    """One row of the ``-cells`` table from a :func:`cell_summary` (plus the run's cell keys)."""
    base = np.asarray(cell["base"], dtype=np.float64)
    keep = ("cell", "mgral_round", "labeled_frames", "train_part", "tuning_frames", "batches", "repeats")
    stats = ("between_std", "within_std", "signal_std", "icc", "retest_spearman", "repeats_for_0.6",
             "table_same_repeat_mean", "table_split_half_mean", "reference_spearman", "reference_reliability")
    return {"design": design, **{k: cell.get(k) for k in keep},
            "base_mean": float(base.mean()), "base_std": float(base.std(ddof=1)) if len(base) > 1 else None,
            **{k: cell.get(k) for k in stats}}


#: Options added after the first designs ran, left out of the tag at their defaults (so the
#: earlier designs keep their folders).
_LATER_OPTIONS = ("probe_augment", "probe_head_only", "probe_optimizer")


def _default(option: str):
    """:class:`MGRALOptions`'s default of ``option``."""
    from curate.loop.mgral.options import MGRALOptions

    return MGRALOptions.model_fields[option].default


def _options_tag(opts: dict) -> str:
    """A short stable name of the fine-tunes of an option set (they live in their own folder).
    Options left at None, and later options at their defaults, are left out, so earlier
    folders keep their names; ``metric`` is set to its default, since it changes how a fine-tune is
    scored, not the fine-tune (every metric of a design shares its fine-tunes)."""
    kept = {k: v for k, v in opts.items() if v is not None and not (k in _LATER_OPTIONS and v == _default(k))}
    if "metric" in kept:
        kept["metric"] = _default("metric")
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:10]


def _values_file(cdir: Path, repeat: int, metric: str) -> Path:
    """Where the tuning ``metric`` of every fine-tune of one repeat is written (the default
    metric keeps the bare ``repeat-k.json`` name of earlier runs)."""
    if metric == _default("metric"):
        return cdir / f"repeat-{repeat}.json"
    return cdir / f"repeat-{repeat}.{metric}.json"


def _finished_checkpoint(rdir: Path, epochs: int, scored: set[str], name: str) -> Optional[str]:
    """The checkpoint of a fine-tune that an earlier run (of this or another metric) finished:
    its ``finetuned.json`` marker names it, or ``scored`` (the run names in this repeat's values
    files, written only after a fine-tune returned) holds ``name``. None when it must be trained."""
    marker = rdir / "finetuned.json"
    if marker.is_file():
        ckpt = json.loads(marker.read_text())["checkpoint"]
        return ckpt if Path(ckpt).is_file() else None
    ckpt = rdir / "train" / f"epoch_{epochs}.pth"
    return str(ckpt) if name in scored and ckpt.is_file() else None


def run_probe_noise(args: argparse.Namespace) -> None:
    """The ``probe-noise`` mode (see the module docstring); writes ``<--name>.json``."""
    import torch

    import curate
    from benchmarks.loop import (EVAL_CLASSES, INITIAL, _detector, _eval_filter, _read_results, _state,
                                 _subset_pkl)
    from benchmarks.results_io import write_result
    from curate.loop.evaluate import evaluate_predictions
    from curate.loop.mgral.lut import run_probes
    from curate.loop.mgral.options import mgral_options
    from curate.loop.mgral.stage import LOSS_METRIC, make_plan, probe_detector, probe_runs, reward_value
    from embedders.run_files import atomic_write_bytes

    if args.repeats < 2:
        raise SystemExit(f"probe-noise: --repeats {args.repeats}: needs at least 2 repeats to measure noise")
    root = Path(args.root)
    state = _state(root, args)
    res = _read_results(root)
    opts = mgral_options(args.mgral_options, budget=args.budget)
    torch.set_num_threads(1)
    ws = curate.connect(root / "ws")
    pool = state["pool"]
    tag = _options_tag(opts.model_dump())
    reference = None
    if args.reference:
        from benchmarks.results_io import read_result

        reference = read_result(args.reference)
    rows, cells = [], []
    for spec in [c for c in args.noise_cells.split(",") if c.strip()]:
        label, seed_s, rnd_s = spec.split(":")
        seed, rnd = int(seed_s), int(rnd_s)
        key = (INITIAL if rnd == 0 else label, seed, rnd)
        prev = res.get(key)
        if prev is None or not prev.get("checkpoint") or not Path(prev["checkpoint"]).is_file():
            raise SystemExit(f"--noise-cells {spec}: no finished, trained cell {key} with its checkpoint in "
                             f"{root}/results.jsonl (probe-noise needs the model an mgral round starts from)")
        mask = np.zeros(len(pool), dtype=bool)
        mask[list(prev["rows"])] = True
        plan = make_plan([pool[i] for i in np.flatnonzero(~mask)], [pool[i] for i in np.flatnonzero(mask)],
                         opts, seed, rnd + 1)
        cdir = root / "probe-noise" / tag / f"{label}-s{seed}-r{rnd}"
        cdir.mkdir(parents=True, exist_ok=True)
        (cdir / "options.json").write_text(json.dumps(opts.model_dump(), indent=1, sort_keys=True))
        det = probe_detector(_detector(args, opts.probe_epochs), opts)
        tune_pkl = _subset_pkl(root, plan["tuning"], cdir / "tuning.pkl")
        eval_classes = [c for c in EVAL_CLASSES if c in args.classes]
        runs = probe_runs(plan)
        lut = plan["lut_frames"]
        values = []
        t_cell = time.perf_counter()
        resumed = False  # any fine-tune read back from an earlier run: this run's clock is not the cell's cost
        for k, fseed in enumerate(probe_seeds(seed, rnd + 1, args.repeats)):
            values_file = _values_file(cdir, k, opts.metric)
            scored = {name for f in cdir.glob(f"repeat-{k}.*json") for name in json.loads(f.read_text())}
            reused = []

            def measure(j: int, k: int = k, fseed: int = fseed, scored: set = scored, reused: list = reused) -> float:
                name, batch = runs[j]
                rdir = cdir / f"repeat-{k}" / name
                ckpt = _finished_checkpoint(rdir, det.epochs, scored, name)
                if ckpt is None:
                    pkl = _subset_pkl(root, sorted(plan["train_part"] + [lut[i] for i in batch]), rdir / "train.pkl")
                    ckpt = det.train(pkl, rdir / "train", load_from=prev["checkpoint"], seed=fseed).checkpoint
                    atomic_write_bytes(rdir / "finetuned.json", json.dumps({"checkpoint": ckpt, "seed": fseed}).encode())
                else:
                    reused.append(name)
                return reward_value(det, ckpt, tune_pkl, opts.metric, lambda preds: evaluate_predictions(
                    ws, preds, classes=eval_classes, **_eval_filter(det, args)))

            t0 = time.perf_counter()
            resumed = resumed or values_file.is_file()
            done = run_probes([name for name, _ in runs], measure, values_file)
            resumed = resumed or bool(reused)
            values.append(done)
            for name, batch in runs:
                rows.append({"cell": spec, "repeat": k, "finetune_seed": fseed, "run": name,
                             "batch": [lut[i] for i in batch], "metric": done[name], "gain": done[name] - done["base"]})
            print(f"[{time.strftime('%H:%M:%S')}] {spec} repeat {k}: {len(runs)} fine-tunes, base {done['base']:.2f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        summary = cell_summary(plan, values, opts.ridge)
        if reference is not None:
            summary.update(reference_agreement(plan, spec, np.asarray(summary["gains"]), reference))
        summary.update({"cell": spec, "mgral_round": rnd + 1, "labeled_frames": int(mask.sum()),
                        "tuning_frames": len(plan["tuning"]), "train_part": len(plan["train_part"]),
                        "seconds": None if resumed else time.perf_counter() - t_cell, "resumed": resumed})
        cells.append(summary)
        print(f"{spec}: retest Spearman {summary['retest_spearman']}, between std {summary['between_std']}, "
              f"within std {summary['within_std']}, table same-repeat {summary['table_same_repeat_mean']}, "
              f"split-half {summary['table_split_half_mean']}", flush=True)
    units = ("100 * ln(base loss / loss), about the percent a batch lowers the tuning frames' training loss"
             if opts.metric == LOSS_METRIC else "mAP points")
    pooled = {k: (float(np.mean([c[k] for c in cells if c[k] is not None]))
                  if any(c[k] is not None for c in cells) else None)
              for k in ("retest_spearman", "between_std", "within_std", "table_same_repeat_mean",
                        "table_split_half_mean")}
    write_result("loop", rows, name=args.name, args=args,
                 notes=("MGRAL reward noise: every fine-tune of the mgral plan (base, probes, held-out) of the round "
                        "after each --noise-cells cell, repeated with distinct fine-tune seeds; gain = tuning "
                        f"{opts.metric} minus the same repeat's base ({units})"),
                 extra={"cells": cells, "mean_over_cells": pooled, "mgral_options": opts.model_dump()})
    design = _design(opts.model_dump())
    write_result("loop", [_cell_row(c, design) for c in cells], name=args.name + "-cells", args=args,
                 notes=(f"MGRAL reward noise per cell of {args.name} (design: {design}): base = tuning "
                        f"{opts.metric} of the plan's base fine-tune over the repeats; gains in {units}; "
                        "between_std / within_std = "
                        "spread of the batches' mean gains / mean across-repeat std of one gain; signal_std / icc = "
                        "two-way split, a repeat's common offset removed (true batch spread; ICC(3,1), the "
                        "reliability of one fine-tune's gains as a ranking); "
                        "retest_spearman = mean Spearman between two repeats' gains; table_* = the table's Spearman "
                        "on held-out batches (same repeat / split halves of the repeats)"))


#: Columns a ``probe-designs`` table keeps from each design's ``-cells`` rows.
DESIGN_STATS = ("icc", "table_same_repeat_mean", "table_split_half_mean", "reference_spearman")


def design_rows(results: list[dict]) -> tuple[list[dict], list[dict]]:
    """One row per design (means over its cells) and one per (design, cell), from probe-noise
    ``-cells`` results.

    Parameters
    ----------
    results : list of dict
        ``-cells`` results of :func:`run_probe_noise` (``name``, ``rows`` with ``design``,
        ``cell`` and the statistics of :func:`_cell_row`).

    Returns
    -------
    designs, cells : list of dict
        ``designs``: per result, its design, cells, and the mean over cells of each of
        :data:`DESIGN_STATS` that is known (None when no cell has it), with ``*_cells`` the
        number of cells behind the mean; ``cells``: every cell row, tagged with its result.
        O(total cells).
    """
    designs, cells = [], []
    for res in results:
        name = str(res.get("name", "")).removesuffix("-cells")
        rows = res["rows"]
        for r in rows:
            cells.append({"result": name, **r})
        row = {"result": name, "design": rows[0]["design"] if rows else None, "cells": len(rows),
               "mgral_round": sorted({r.get("mgral_round") for r in rows if r.get("mgral_round") is not None}) or None}
        for k in DESIGN_STATS:
            known = [float(r[k]) for r in rows if r.get(k) is not None]
            row[k] = float(np.mean(known)) if known else None
            row[f"{k}_cells"] = len(known)
        designs.append(row)
    return designs, cells


def run_probe_designs(args: argparse.Namespace) -> None:
    """The ``probe-designs`` mode: gathers the ``-cells`` results of ``--designs`` (comma-separated
    probe-noise result names, read from the results directory) into ``<--name>`` (one row per
    design) and ``<--name>-cells`` (every cell). Trains nothing."""
    from benchmarks.results_io import default_results_dir, read_result, write_result

    names = [n.strip() for n in str(args.designs or "").split(",") if n.strip()]
    if not names:
        raise SystemExit("probe-designs: --designs lists no probe-noise result (comma-separated names)")
    results = []
    for n in names:
        path = default_results_dir() / f"{n.removesuffix('-cells')}-cells.json"
        if not path.is_file():
            raise SystemExit(f"probe-designs: no result {path} (run probe-noise --name {n} first)")
        results.append(read_result(path))
    designs, cells = design_rows(results)
    write_result("loop", designs, name=args.name, args=args,
                 notes=("MGRAL probe designs side by side: per probe-noise result, the mean over its cells of ICC(3,1) "
                        "(reliability of one fine-tune's gains as a ranking), the table's held-out Spearman (within "
                        "one repeat / across split halves of the repeats) and the Spearman of its mean batch gains "
                        "with the --reference run's (the shipped probes' mean over repeats); *_cells: cells behind "
                        "each mean"))
    write_result("loop", cells, name=args.name + "-cells", args=args,
                 notes=f"every cell of the probe designs in {args.name}")
