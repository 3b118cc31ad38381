"""Detector outputs -> per-frame uncertainty scores (pure functions, no I/O).

Inputs are per-box class distributions, one array per frame:

* a single model: ``(n_boxes, n_classes)`` probabilities;
* an ensemble or MC-dropout samples (``ensemble=True``): ``(S, n_boxes, n_classes)`` with boxes
  matched across the ``S`` members, or ``(S, n_classes)`` per-frame aggregated probabilities
  (treated as one box).

Rows must be probability distributions (sum to 1); sigmoid-style independent class scores can be
passed with ``renormalize=True``. An optional background column (``background_index``) is part
of the distribution for entropy, margin, least confidence and mutual information (doubt about
"is it an object" is uncertainty too) but not for the predicted class and box score, which use
the foreground columns only.

Per-box measures (natural log, ``0 log 0 = 0``): entropy ``H[p]``; margin ``p(1) - p(2)`` (top
two probabilities; higher is more certain); least confidence ``1 - max p``; mutual information
(BALD) ``H[mean_s p_s] - mean_s H[p_s]``, computed for ensembles, where ``p`` for the other
measures is the member mean.

:func:`frame_scores` aggregates them per frame into columns (all oriented "higher = more
uncertain" except ``margin_min``):

``n_boxes``
    boxes passed in (after ``min_box_score``).
``box_count``
    boxes whose score (``box_scores`` or the largest foreground probability) is
    ``>= score_threshold``.
``entropy_mean``, ``entropy_max``, ``entropy_sum``
    box entropy aggregated over the frame's boxes.
``margin_min``
    smallest margin over the boxes (the most ambiguous box).
``least_confidence_mean``, ``least_confidence_max``
``mutual_information_mean``, ``mutual_information_max``, ``mutual_information_sum``
    ensembles only.
``entropy_max__<class>``, ``entropy_sum__<class>``, ``box_count__<class>``
    per class, over the boxes whose predicted class is ``<class>`` (``per_class=True``).

Frames with 0 boxes are well defined: every mean, max and sum, count and mutual information is 0
("nothing detected, nothing uncertain"), and ``margin_min`` is 1 (fully certain), so they rank
last for uncertainty sampling.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence, Union

import numpy as np

from curate.errors import InvalidInputError

__all__ = [
    "entropy",
    "margin",
    "least_confidence",
    "mutual_information",
    "aggregate",
    "box_measures",
    "frame_scores",
    "scores_table",
    "emoc",
    "CLASS_SEP",
]

logger = logging.getLogger(__name__)

#: Separator of metric and class in per-class columns (``entropy_max__Car``).
CLASS_SEP = "__"
_SUM_TOL = 1e-3
_AGGREGATES = ("mean", "max", "sum")


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats along ``axis`` with ``0 log 0 = 0``. Uniform over C gives log C."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return terms.sum(axis=axis)


def margin(p: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability along the last axis (top-1 when there is one class)."""
    p = np.asarray(p, dtype=np.float64)
    if p.shape[-1] == 1:
        return p[..., 0].copy()
    top2 = -np.partition(-p, 1, axis=-1)[..., :2]
    return top2[..., 0] - top2[..., 1]


def least_confidence(p: np.ndarray) -> np.ndarray:
    """``1 - max p`` along the last axis."""
    return 1.0 - np.asarray(p, dtype=np.float64).max(axis=-1)


def mutual_information(samples: np.ndarray) -> np.ndarray:
    """BALD mutual information ``H[mean_s p_s] - mean_s H[p_s]`` over the first axis.

    ``samples`` is ``(S, ..., C)``; identical members give 0. Clipped at 0 against round-off.
    """
    s = np.asarray(samples, dtype=np.float64)
    mi = entropy(s.mean(axis=0)) - entropy(s).mean(axis=0)
    return np.maximum(mi, 0.0)


def aggregate(values: np.ndarray, how: str) -> float:
    """``mean`` / ``max`` / ``sum`` of ``values``; 0 for an empty array."""
    if how not in _AGGREGATES:
        raise InvalidInputError(f"aggregate must be one of {_AGGREGATES}; got {how!r}")
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return 0.0
    return float(getattr(v, how)())


def _check_frame(
    arr: Any, i: int, ensemble: bool, n_classes: Optional[int], renormalize: bool
) -> np.ndarray:
    p = np.asarray(arr, dtype=np.float64)
    if ensemble:
        if p.ndim == 2:
            p = p[:, None, :]
        if p.ndim != 3:
            raise InvalidInputError(
                f"frame {i}: ensemble probabilities must be (S, n_boxes, n_classes) or "
                f"(S, n_classes); got shape {p.shape}"
            )
        if p.shape[0] < 1:
            raise InvalidInputError(f"frame {i}: ensemble has no members (S = 0)")
    elif p.ndim != 2:
        hint = " (pass ensemble=True for (S, n_boxes, C) samples)" if p.ndim == 3 else ""
        raise InvalidInputError(
            f"frame {i}: probabilities must be (n_boxes, n_classes); got shape {p.shape}{hint}"
        )
    if n_classes is not None and p.shape[-1] != n_classes:
        raise InvalidInputError(
            f"frame {i}: {p.shape[-1]} classes but earlier frames have {n_classes}"
        )
    if p.shape[-1] < 1:
        raise InvalidInputError(f"frame {i}: zero classes")
    if not np.isfinite(p).all():
        raise InvalidInputError(f"frame {i}: probabilities contain NaN or inf")
    if (p < -1e-9).any() or (p > 1 + 1e-9).any():
        raise InvalidInputError(
            f"frame {i}: probabilities must lie in [0, 1]; got min {p.min():.4g}, max "
            f"{p.max():.4g} (apply softmax / sigmoid to logits first)"
        )
    sums = p.sum(axis=-1)
    if renormalize:
        if (sums <= 0).any():
            raise InvalidInputError(f"frame {i}: a box has all-zero class scores; cannot renormalise")
        p = p / sums[..., None]
    elif p.size and np.abs(sums - 1.0).max() > _SUM_TOL:
        raise InvalidInputError(
            f"frame {i}: class probabilities of a box sum to {float(sums.flat[np.argmax(np.abs(sums - 1))]):.4g}, "
            "not 1; pass renormalize=True for independent (sigmoid) class scores"
        )
    return np.clip(p, 0.0, 1.0)


def box_measures(
    probs: np.ndarray, *, ensemble: bool = False, background_index: Optional[int] = None
) -> dict[str, np.ndarray]:
    """Per-box measures of one frame.

    Parameters
    ----------
    probs : numpy.ndarray
        ``(n_boxes, C)``, or ``(S, n_boxes, C)`` with ``ensemble=True``; validated distributions.
    ensemble : bool
        Whether the first axis holds members / samples.
    background_index : int, optional
        Column of the background class.

    Returns
    -------
    dict
        ``entropy``, ``margin``, ``least_confidence``, ``mutual_information`` (ensembles),
        ``pred_class`` (int, foreground column index into the original columns) and ``score``
        (largest foreground probability), each ``(n_boxes,)``.
    """
    mean = probs.mean(axis=0) if ensemble else probs
    fg = np.ones(mean.shape[-1], dtype=bool)
    if background_index is not None:
        fg[background_index] = False
    fg_cols = np.flatnonzero(fg)
    out: dict[str, np.ndarray] = {
        "entropy": entropy(mean),
        "margin": margin(mean),
        "least_confidence": least_confidence(mean),
    }
    fg_probs = mean[:, fg_cols]
    out["pred_class"] = fg_cols[np.argmax(fg_probs, axis=1)] if mean.shape[0] else np.zeros(0, int)
    out["score"] = fg_probs.max(axis=1) if mean.shape[0] else np.zeros(0)
    if ensemble:
        out["mutual_information"] = mutual_information(probs)
    return out


def frame_scores(
    probs: Sequence[Any],
    *,
    ensemble: bool = False,
    box_scores: Optional[Sequence[Any]] = None,
    score_threshold: float = 0.5,
    min_box_score: float = 0.0,
    background_index: Optional[int] = None,
    class_names: Optional[Sequence[str]] = None,
    per_class: bool = True,
    renormalize: bool = False,
    as_table: bool = False,
) -> Union[dict[str, np.ndarray], Any]:
    """Per-frame uncertainty columns from per-box class distributions.

    Parameters
    ----------
    probs : sequence of array-like
        One array per frame, see the module docstring.
    ensemble : bool
        Frames hold ``(S, n_boxes, C)`` member samples (or ``(S, C)`` aggregated per frame).
    box_scores : sequence of array-like, optional
        Detection confidence per box and frame; default the largest foreground probability.
    score_threshold : float
        Boxes with score ``>=`` this are counted in ``box_count``.
    min_box_score : float
        Boxes with score below this are ignored entirely (low-confidence clutter).
    background_index : int, optional
        Column of the background class, if any.
    class_names : sequence of str, optional
        Names of the columns (default ``class_<j>``); used in per-class column names.
    per_class : bool
        Add the per-class columns.
    renormalize : bool
        Divide each box's class scores by their sum (for sigmoid outputs).
    as_table : bool
        Return a :class:`pyarrow.Table` instead of a dict of arrays.

    Returns
    -------
    dict of numpy.ndarray or pyarrow.Table
        One value per frame for every column listed in the module docstring.

    Raises
    ------
    InvalidInputError
        Malformed shapes, values outside [0, 1], rows not summing to 1, inconsistent class
        counts, a bad background index or mismatched ``box_scores``; the message names the frame.

    Notes
    -----
    O(total boxes * S * C) time, O(frames * C) memory for the output.
    """
    n_frames = len(probs)
    if box_scores is not None and len(box_scores) != n_frames:
        raise InvalidInputError(
            f"box_scores has {len(box_scores)} frames but probs has {n_frames}; pass one score "
            "array per frame"
        )
    frames: list[np.ndarray] = []
    n_classes: Optional[int] = None
    for i, arr in enumerate(probs):
        p = _check_frame(arr, i, ensemble, n_classes, renormalize)
        n_classes = p.shape[-1]
        frames.append(p)
    if n_classes is None:
        n_classes = len(class_names) if class_names is not None else 0
    if background_index is not None and not (0 <= background_index < max(n_classes, 1)):
        raise InvalidInputError(
            f"background_index {background_index} is outside the {n_classes} class columns"
        )
    if class_names is None:
        class_names = [f"class_{j}" for j in range(n_classes)]
    elif len(class_names) != n_classes:
        raise InvalidInputError(
            f"class_names has {len(class_names)} names but the probabilities have {n_classes} columns"
        )
    fg_cols = [j for j in range(n_classes) if j != background_index]
    names = ["entropy", "least_confidence"] + (["mutual_information"] if ensemble else [])
    cols: dict[str, np.ndarray] = {
        "n_boxes": np.zeros(n_frames, dtype=np.int64),
        "box_count": np.zeros(n_frames, dtype=np.int64),
        "margin_min": np.ones(n_frames, dtype=np.float64),
    }
    for m in names:
        for how in _AGGREGATES:
            if m == "least_confidence" and how == "sum":
                continue
            cols[f"{m}_{how}"] = np.zeros(n_frames, dtype=np.float64)
    if per_class:
        for j in fg_cols:
            c = class_names[j]
            cols[f"entropy_max{CLASS_SEP}{c}"] = np.zeros(n_frames, dtype=np.float64)
            cols[f"entropy_sum{CLASS_SEP}{c}"] = np.zeros(n_frames, dtype=np.float64)
            cols[f"box_count{CLASS_SEP}{c}"] = np.zeros(n_frames, dtype=np.int64)
    for i, p in enumerate(frames):
        meas = box_measures(p, ensemble=ensemble, background_index=background_index)
        score = meas["score"]
        if box_scores is not None:
            score = np.asarray(box_scores[i], dtype=np.float64)
            if score.shape != meas["score"].shape:
                raise InvalidInputError(
                    f"frame {i}: box_scores has shape {score.shape} but there are "
                    f"{meas['score'].shape[0]} boxes"
                )
        keep = score >= min_box_score
        counted = keep & (score >= score_threshold)
        cols["n_boxes"][i] = int(keep.sum())
        cols["box_count"][i] = int(counted.sum())
        if keep.any():
            cols["margin_min"][i] = float(meas["margin"][keep].min())
        for m in names:
            for how in _AGGREGATES:
                key = f"{m}_{how}"
                if key in cols:
                    cols[key][i] = aggregate(meas[m][keep], how)
        if per_class:
            pred = meas["pred_class"]
            for j in fg_cols:
                c = class_names[j]
                sel = keep & (pred == j)
                cols[f"entropy_max{CLASS_SEP}{c}"][i] = aggregate(meas["entropy"][sel], "max")
                cols[f"entropy_sum{CLASS_SEP}{c}"][i] = aggregate(meas["entropy"][sel], "sum")
                cols[f"box_count{CLASS_SEP}{c}"][i] = int((sel & counted).sum())
    if as_table:
        return scores_table(cols)
    return cols


def scores_table(columns: dict[str, np.ndarray], ids: Optional[Sequence[Any]] = None) -> Any:
    """Columnar per-frame scores as a :class:`pyarrow.Table` (``id`` first when given)."""
    import pyarrow as pa

    data: dict[str, Any] = {}
    n = len(next(iter(columns.values()))) if columns else 0
    if ids is not None:
        if len(ids) != n:
            raise InvalidInputError(f"got {len(ids)} ids for {n} frames of scores")
        data["id"] = pa.array([str(v) for v in ids], type=pa.string())
    for k, v in columns.items():
        data[k] = pa.array(np.asarray(v))
    return pa.table(data)


def emoc(
    scores: np.ndarray,
    label_probs: np.ndarray,
    features: np.ndarray,
    slots: Optional[np.ndarray] = None,
) -> float:
    """Expected model output change (EMOC) of one frame: the root of the expected squared norm
    of the classification loss's gradient w.r.t. the head's last layer, on the frame's
    pseudo-labels.

    The last classification layer maps a feature ``f`` to logits ``z = W_a f + c_a`` of ``C``
    independent sigmoids (``W_a``, ``c_a``: the rows of the slot ``a`` the box comes from: its
    anchor type for an anchor head, its task for CenterPoint). Each kept box ``b`` gets a
    pseudo-label ``y_b`` drawn from its predicted distribution over the ``C`` classes and
    background (``label_probs`` are the class entries; background takes the rest), one-hot
    target ``t(y_b)`` (all zeros for background), and the loss is the sigmoid binary
    cross-entropy summed over boxes and classes (mmdet3d's focal loss with ``gamma = 0``). Its
    gradient is ``G_a = sum_{b in a} (s_b - t(y_b)) x_b^T`` with ``x_b = [f_b, 1]`` (weights and
    bias). With the boxes' labels independent, the expectation is exact in closed form::

        E ||G||^2 = sum_a ||sum_{b in a} (s_b - q_b) x_b^T||^2 + sum_b ||x_b||^2 sum_c q_bc (1 - q_bc)

    (``q_b = label_probs[b]``: the mean of ``t(y_b)``; the second term is the variance of the
    one-hot targets) and ``emoc = sqrt(E ||G||^2)``. Brute force (every joint labelling,
    autograd) gives the same number; see ``tests/test_mgral_emoc.py``.

    Parameters
    ----------
    scores : numpy.ndarray
        ``(n, C)`` sigmoid class scores of the frame's kept boxes.
    label_probs : numpy.ndarray
        ``(n, C)`` pseudo-label probabilities of the classes (rows sum to at most 1).
    features : numpy.ndarray
        ``(n, D)`` input of the last layer at each box (without the bias 1, appended here).
    slots : numpy.ndarray, optional
        ``(n,)`` integer parameter slot of each box (default: one shared slot).

    Returns
    -------
    float
        0 for a frame with no boxes.

    Notes
    -----
    O(n * C * D) time, O(slots * C * D) memory: cheap next to the forward pass that produced
    the features.
    """
    s = np.asarray(scores, dtype=np.float64)
    q = np.asarray(label_probs, dtype=np.float64)
    f = np.asarray(features, dtype=np.float64)
    if s.ndim != 2 or q.shape != s.shape or f.ndim != 2 or f.shape[0] != s.shape[0]:
        raise InvalidInputError(
            f"emoc: scores {s.shape} and label_probs {q.shape} must be (n, C) and features {f.shape} (n, D)"
        )
    n = s.shape[0]
    if n == 0:
        return 0.0
    if not (np.isfinite(s).all() and np.isfinite(q).all() and np.isfinite(f).all()):
        raise InvalidInputError("emoc: scores, label_probs and features must be finite")
    if (q < -1e-9).any() or (q.sum(axis=1) > 1 + 1e-6).any():
        raise InvalidInputError("emoc: label_probs must be non-negative with rows summing to at most 1")
    slot = np.zeros(n, dtype=np.int64) if slots is None else np.asarray(slots, dtype=np.int64).reshape(-1)
    if slot.shape[0] != n:
        raise InvalidInputError(f"emoc: {slot.shape[0]} slots for {n} boxes")
    x = np.concatenate([f, np.ones((n, 1))], axis=1)
    total = 0.0
    for a in np.unique(slot):
        rows = slot == a
        mean_grad = (s[rows] - q[rows]).T @ x[rows]  # (C, D + 1)
        total += float(np.sum(mean_grad * mean_grad))
    total += float(np.sum(np.einsum("ij,ij->i", x, x) * np.sum(q * (1.0 - q), axis=1)))
    return float(np.sqrt(max(total, 0.0)))
