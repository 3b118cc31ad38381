"""``probe-averaged`` mode of :mod:`benchmarks.loop`: would averaging repeated fine-tunes per
probe make MGRAL's look-up table rank held-out batches?

A probe-noise result (:mod:`benchmarks.loop_probe_noise`) holds, per cell, ``R`` repeats of every
fine-tune of an mgral plan (base, probes, held-out batches), each with its own fine-tune seed. A
design that ran ``m`` fine-tunes per batch and used their mean gain (a ``probe_repeats = m``
option) would fit its table on the probes' mean over ``m`` repeats and be judged against the
held-out batches' mean over the same ``m`` repeats. This mode measures exactly that, from the
stored fine-tunes, for every ``m = 1 .. R`` and every subset of ``m`` of the ``R`` repeats
(``C(R, m)`` subsets; their mean is reported, with the spread): the table's held-out Spearman as a
function of how many fine-tunes each probe averages. ``m = 1`` is the study's own measurement
(``table_same_repeat_mean`` of probe-noise); no ``m`` beyond ``R`` is extrapolated.

The batches, the table frames and the gains come from the result's rows (``cell``, ``repeat``,
``run``, ``batch``, ``gain``), so any committed probe-noise result can be read again; nothing is
trained. Cost per cell: ``2^R`` table fits of ``F`` frames (O(F^3) each).
"""

from __future__ import annotations

import argparse
import logging
from itertools import combinations
from typing import Optional

import numpy as np

__all__ = ["cell_gains", "averaged_table", "averaged_rows", "wide_rows", "run_probe_averaged"]

logger = logging.getLogger(__name__)


def cell_gains(rows: list[dict], cell: str) -> tuple[list[str], list[list[int]], list[list[int]], np.ndarray]:
    """The plan and the gains of one cell of a probe-noise result, rebuilt from its rows.

    Parameters
    ----------
    rows : list of dict
        The result's rows (``cell``, ``repeat``, ``run``, ``batch``: frame ids, ``gain``).
    cell : str
        ``STRATEGY:SEED:ROUND``.

    Returns
    -------
    frames : list of str
        The table frames (every frame of a probe or held-out batch, sorted).
    probes, heldout : list of list of int
        Batches as positions into ``frames``, in run order (``probe-0``, ``probe-1``, ...).
    gains : numpy.ndarray
        ``(R, P + H)`` gain of each repeat and batch (probes first).

    Raises
    ------
    ValueError
        The cell has no rows, or a repeat lacks a run another repeat has.
    """
    mine = [r for r in rows if r["cell"] == cell and r["run"] != "base"]
    if not mine:
        raise ValueError(f"probe-averaged: no probe or held-out rows for cell {cell!r}")

    def order(run: str) -> tuple[int, int]:
        kind, _, k = run.partition("-")
        return (0 if kind == "probe" else 1, int(k))

    runs = sorted({r["run"] for r in mine}, key=order)
    batch = {r["run"]: list(r["batch"]) for r in mine}
    frames = sorted({f for b in batch.values() for f in b})
    pos = {f: i for i, f in enumerate(frames)}
    repeats = sorted({int(r["repeat"]) for r in mine})
    value = {(int(r["repeat"]), r["run"]): float(r["gain"]) for r in mine}
    missing = [(k, run) for k in repeats for run in runs if (k, run) not in value]
    if missing:
        raise ValueError(f"probe-averaged: cell {cell!r} lacks runs {missing[:5]} (an unfinished probe-noise result?)")
    gains = np.array([[value[(k, run)] for run in runs] for k in repeats], dtype=np.float64)
    probes = [[pos[f] for f in batch[run]] for run in runs if run.startswith("probe-")]
    heldout = [[pos[f] for f in batch[run]] for run in runs if run.startswith("heldout-")]
    return frames, probes, heldout, gains


def averaged_table(frames: list[str], probes: list[list[int]], heldout: list[list[int]], gains: np.ndarray,
                   ridge: float) -> list[dict]:
    """Per ``m = 1 .. R``: the table's held-out Spearman when every batch's gain is its mean over
    ``m`` repeats, over every subset of ``m`` repeats.

    Returns
    -------
    list of dict
        ``m``, ``subsets`` (how many subsets had a defined Spearman), ``table_spearman_mean`` /
        ``_min`` / ``_max`` over them (None when none had one). O(2^R * (P * F^2 + F^3)).
    """
    from curate.loop.mgral.lut import fit_table, table_error

    n_probe = len(probes)
    out = []
    for m in range(1, gains.shape[0] + 1):
        rhos: list[float] = []
        for subset in combinations(range(gains.shape[0]), m):
            mean = gains[list(subset)].mean(axis=0)
            table = fit_table(frames, [[]] + probes, [0.0] + mean[:n_probe].tolist(), ridge=ridge)
            rho: Optional[float] = table_error(table, heldout, mean[n_probe:].tolist())["spearman"]
            if rho is not None:
                rhos.append(rho)
        out.append({"m": m, "subsets": len(rhos),
                    "table_spearman_mean": float(np.mean(rhos)) if rhos else None,
                    "table_spearman_min": float(min(rhos)) if rhos else None,
                    "table_spearman_max": float(max(rhos)) if rhos else None})
    return out


def averaged_rows(result: dict, ridge: float) -> tuple[list[dict], list[dict]]:
    """Every cell's :func:`averaged_table` of one probe-noise result, and its means over cells.

    Returns
    -------
    cells, designs : list of dict
        ``cells``: one row per (cell, m); ``designs``: one row per m with the mean over the cells
        of ``table_spearman_mean`` (cells whose value is defined) and how many cells it covers.
    """
    name = str(result.get("name", ""))
    rows = result["rows"]
    cells: list[dict] = []
    for cell in sorted({r["cell"] for r in rows}):
        frames, probes, heldout, gains = cell_gains(rows, cell)
        for row in averaged_table(frames, probes, heldout, gains, ridge):
            cells.append({"result": name, "cell": cell, "repeats": int(gains.shape[0]),
                          "probes": len(probes), "heldout": len(heldout), **row})
    designs = []
    for m in sorted({c["m"] for c in cells}):
        known = [c["table_spearman_mean"] for c in cells if c["m"] == m and c["table_spearman_mean"] is not None]
        designs.append({"result": name, "m": m, "cells": len(known),
                        "table_spearman_mean": float(np.mean(known)) if known else None,
                        "table_spearman_min_cell": float(min(known)) if known else None,
                        "table_spearman_max_cell": float(max(known)) if known else None})
    return cells, designs


def wide_rows(designs: list[dict]) -> list[dict]:
    """One row per result from :func:`averaged_rows`' per-m rows: its design, the cells behind
    ``m = 1``, and ``table_spearman_m<k>`` for every ``k`` any result has (None where a result ran
    fewer repeats). O(rows)."""
    ms = sorted({d["m"] for d in designs})
    out: dict[str, dict] = {}
    for d in designs:
        row = out.setdefault(d["result"], {"result": d["result"], "design": d.get("design"), "cells": d["cells"],
                                           **{f"table_spearman_m{m}": None for m in ms}})
        row[f"table_spearman_m{d['m']}"] = d["table_spearman_mean"]
    return list(out.values())


def run_probe_averaged(args: argparse.Namespace) -> None:
    """The ``probe-averaged`` mode: reads the probe-noise results ``--designs`` (comma-separated
    names in the results directory) and writes ``<--name>`` (per result, the mean over its cells
    for each m: :func:`wide_rows`) and ``<--name>-cells`` (per result, cell and m). Trains nothing. The ridge is each
    result's own (its ``--mgral-options``), else the default."""
    import json

    from benchmarks.results_io import default_results_dir, read_result, write_result
    from curate.loop.mgral.options import MGRALOptions

    names = [n.strip().removesuffix("-cells") for n in str(args.designs or "").split(",") if n.strip()]
    if not names:
        raise SystemExit("probe-averaged: --designs lists no probe-noise result (comma-separated names)")
    all_cells, all_designs = [], []
    for n in names:
        path = default_results_dir() / f"{n}.json"
        if not path.is_file():
            raise SystemExit(f"probe-averaged: no result {path} (a probe-noise result's name, without -cells)")
        result = read_result(path)
        if not result.get("rows") or "repeat" not in result["rows"][0]:
            raise SystemExit(f"probe-averaged: {path} holds no per-repeat rows (not a probe-noise result)")
        options = _options_of(result)
        ridge = float(options.get("ridge", MGRALOptions().ridge))
        cells, designs = averaged_rows(result, ridge)
        design = " ".join(f"{k}={v}" for k, v in sorted(options.items()) if MGRALOptions().model_dump().get(k) != v)
        for d in designs:
            d["design"] = design or "defaults"
        all_cells += cells
        all_designs += designs
        print(f"{n}: table Spearman, mean over cells, by repeats averaged: "
              + ", ".join(f"m={d['m']}: {d['table_spearman_mean']}" for d in designs), flush=True)
    write_result("loop", wide_rows(all_designs), name=args.name, args=args,
                 notes=("MGRAL table error if each probe averaged m fine-tunes: per probe-noise result, "
                        "table_spearman_m<m> = the mean over its cells of the table's held-out Spearman, the table fitted on the probes' mean "
                        "gain over m repeats and judged against the held-out batches' mean over the same m repeats "
                        "(every subset of m of the result's repeats; m = 1 is the study's own measurement). "
                        "Read from the stored fine-tunes; nothing trained; no m beyond the repeats run. "
                        f"Inputs: {json.dumps(names)}"))
    write_result("loop", all_cells, name=args.name + "-cells", args=args,
                 notes=(f"every (result, cell, m) of {args.name}; subsets = subsets of m repeats with a defined "
                        "Spearman; table_spearman_mean / _min / _max over them"))


def _options_of(result: dict) -> dict:
    """The ``--mgral-options`` a probe-noise result ran with (from its ``args``), ``{}`` if none."""
    import ast
    import json

    args = result.get("args")
    if isinstance(args, str):
        try:
            args = ast.literal_eval(args)
        except (ValueError, SyntaxError):
            return {}
    opts = (args or {}).get("mgral_options") or {}
    return json.loads(opts) if isinstance(opts, str) else dict(opts)
