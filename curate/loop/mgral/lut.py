"""The reward look-up table of MGRAL: per-frame mAP-gain estimates from real probe fine-tunes.

Probe design
------------
``F`` table frames (drawn at random from the unlabeled pool, then labeled by the oracle: their
labels are paid for and count in the round's budget) are split into probe batches of ``s``
frames by a balanced design (:func:`probe_design`): each pass over the frames is a seeded
permutation cut into ``F // s`` disjoint batches, passes repeat until ``P`` batches exist, so
every frame sits in about ``P * s / F`` probes. Each probe is a real short fine-tune of the
detector (from the current round's weights, on the labeled training part plus the probe batch)
evaluated on a tuning split; the *base* run fine-tunes on the labeled part alone. A probe's gain
is its mAP minus the base's.

Table
-----
The gain of a batch ``B`` is modelled as additive in its frames, ``gain(B) ~ b0 + sum_{i in B}
w_i``; ``w`` and ``b0`` are fitted by ridge least squares on batch membership (the base run is
the empty batch with gain 0; ``b0`` is not penalised) in :func:`fit_table`. The table maps any
candidate batch of table frames to ``b0 + sum w_i`` (:meth:`LookupTable.estimate`). Its error is
measured on ``H`` held-out batches (random, none equal to a probe) that are also fine-tuned for
real (:func:`table_error`: Spearman rank correlation and mean absolute error).

Cost: ``1 + P + H`` short fine-tunes and evaluations per round (detector-bound); fitting is
O((P + 1) * F^2 + F^3) (F is tens of frames).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from curate.errors import InvalidInputError

__all__ = ["probe_design", "heldout_batches", "fit_table", "LookupTable", "table_error", "run_probes"]

logger = logging.getLogger(__name__)


def probe_design(n_frames: int, n_probes: int, size: int, seed: int) -> list[list[int]]:
    """``n_probes`` batches of ``size`` distinct frame positions in ``[0, n_frames)``, balanced:
    seeded permutations cut into disjoint batches, pass after pass (see the module docstring)."""
    if size < 1 or size > n_frames:
        raise InvalidInputError(f"probe size {size} must be between 1 and the {n_frames} table frames")
    rng = np.random.default_rng(seed)
    per_pass = n_frames // size
    out: list[list[int]] = []
    while len(out) < n_probes:
        perm = rng.permutation(n_frames)
        for k in range(per_pass):
            if len(out) < n_probes:
                out.append(sorted(int(i) for i in perm[k * size:(k + 1) * size]))
    return out


def heldout_batches(n_frames: int, n_batches: int, size: int, seed: int, avoid: Sequence[Sequence[int]]) -> list[list[int]]:
    """``n_batches`` random batches of ``size`` frames, none equal to a batch of ``avoid`` or to
    another (up to 1000 draws each; fewer are returned when the frames allow no more)."""
    rng = np.random.default_rng(seed + 7919)
    seen = {tuple(sorted(b)) for b in avoid}
    out: list[list[int]] = []
    for _ in range(1000 * max(n_batches, 1)):
        if len(out) >= n_batches:
            break
        batch = tuple(sorted(int(i) for i in rng.choice(n_frames, size=size, replace=False)))
        if batch not in seen:
            seen.add(batch)
            out.append(list(batch))
    return out


@dataclass
class LookupTable:
    """Per-frame gain estimates of the table frames.

    Attributes
    ----------
    frames : list of str
        Frame ids of the table rows.
    weights : numpy.ndarray
        ``(F,)`` estimated gain of each frame.
    intercept : float
        ``b0``: the part of a probe's gain that does not depend on which frames it holds.
    """

    frames: list[str]
    weights: np.ndarray
    intercept: float
    extra: dict = field(default_factory=dict)

    def estimate(self, batches: np.ndarray) -> np.ndarray:
        """Estimated gain of each batch: ``(K, b)`` row positions into :attr:`frames` -> ``(K,)``."""
        rows = np.asarray(batches, dtype=np.int64)
        if rows.ndim == 1:
            rows = rows[None]
        return self.intercept + self.weights[rows].sum(axis=1)

    def to_dict(self) -> dict:
        """JSON-able form (kept in the workspace next to the round's checkpoints)."""
        return {"frames": list(self.frames), "weights": [float(w) for w in self.weights],
                "intercept": float(self.intercept), **self.extra}

    @classmethod
    def from_dict(cls, data: dict) -> "LookupTable":
        """Inverse of :meth:`to_dict`."""
        rest = {k: v for k, v in data.items() if k not in ("frames", "weights", "intercept")}
        return cls(list(data["frames"]), np.asarray(data["weights"], dtype=np.float64), float(data["intercept"]), rest)


def fit_table(frames: Sequence[str], batches: Sequence[Sequence[int]], gains: Sequence[float], *, ridge: float = 1.0) -> LookupTable:
    """Ridge least squares of ``gains ~ b0 + membership @ w`` (``b0`` unpenalised).

    ``batches`` hold row positions into ``frames``; include the base run as an empty batch with
    gain 0. With ``ridge = 0`` and a full-rank design this is ordinary least squares (the exact
    per-frame gains when the true gains are additive). O(P * F^2 + F^3).
    """
    if ridge < 0:
        raise InvalidInputError(f"ridge must be >= 0; got {ridge}")
    n = len(frames)
    g = np.asarray(gains, dtype=np.float64)
    if len(batches) != g.shape[0] or g.shape[0] < 2:
        raise InvalidInputError(f"fit_table needs one gain per batch and at least 2 batches; got {len(batches)} / {g.shape[0]}")
    a = np.zeros((len(batches), n))
    for k, b in enumerate(batches):
        a[k, list(b)] = 1.0
    ac = a - a.mean(axis=0)
    gc = g - g.mean()
    w = np.linalg.lstsq(ac.T @ ac + ridge * np.eye(n), ac.T @ gc, rcond=None)[0]
    b0 = float(g.mean() - a.mean(axis=0) @ w)
    return LookupTable(list(frames), w, b0)


def _spearman(x: np.ndarray, y: np.ndarray) -> Optional[float]:
    from scipy.stats import spearmanr

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def table_error(table: LookupTable, batches: Sequence[Sequence[int]], real: Sequence[float]) -> dict:
    """Error of the table's estimates against real fine-tune gains of held-out batches:
    ``spearman`` (None with fewer than 2 batches or a constant side), ``mae``, the pairs."""
    if not batches:
        return {"spearman": None, "mae": None, "estimated": [], "real": []}
    est = table.estimate(np.asarray([list(b) for b in batches]))
    r = np.asarray(real, dtype=np.float64)
    return {"spearman": _spearman(est, r), "mae": float(np.mean(np.abs(est - r))),
            "estimated": est.tolist(), "real": r.tolist()}


def run_probes(
    names: Sequence[str],
    measure: Callable[[int], float],
    path: Path,
) -> dict[str, float]:
    """Run ``measure(k)`` for each probe name not yet in ``path``; returns name -> value.

    Every result is written at once (JSON, fsynced temporary file + rename), so a killed round
    resumes with the probes it finished: none is lost or run twice.
    """
    from embedders.run_files import atomic_write_bytes

    done: dict[str, float] = {}
    if path.is_file():
        try:
            done = {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            logger.warning("%s is unreadable; running its probes again", path)
            done = {}
    for k, name in enumerate(names):
        if name in done:
            continue
        done[name] = float(measure(k))
        atomic_write_bytes(path, json.dumps(done, indent=1, sort_keys=True).encode())
        logger.info("probe %s: %.3f (%d of %d)", name, done[name], len(done), len(names))
    return done
