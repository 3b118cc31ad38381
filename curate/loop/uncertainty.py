"""Per-frame uncertainty columns from detector predictions (see :mod:`curate.scoring`).

Anchor heads output independent sigmoid class scores ``s``. Each kept box gets the class
distribution ``[s_1, ..., s_C, prod(1 - s_c)] / sum``: the last entry is "background" (none of
the classes), so a weak box is uncertain even when one class dominates. Ensembles and MC-dropout
give one such distribution per member; their mutual information is the disagreement (BALD).
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from curate.scores_table import FramePrediction
from curate.scoring import frame_scores

__all__ = ["class_distribution", "prediction_scores"]

logger = logging.getLogger(__name__)


def class_distribution(sigmoid_scores: np.ndarray) -> np.ndarray:
    """``(..., C)`` sigmoid scores -> ``(..., C + 1)`` distributions with a background column."""
    s = np.clip(np.asarray(sigmoid_scores, dtype=np.float64), 0.0, 1.0)
    bg = np.prod(1.0 - s, axis=-1, keepdims=True)
    p = np.concatenate([s, bg], axis=-1)
    total = p.sum(axis=-1, keepdims=True)
    return p / np.where(total > 0, total, 1.0)


def prediction_scores(predictions: Sequence[FramePrediction], classes: Sequence[str]) -> dict[str, np.ndarray]:
    """Score columns (``entropy_mean``, ``box_count``, ``mutual_information_max`` for
    ensembles, per-class columns, ``emoc`` when every prediction carries
    ``extra["emoc"]``, ...) of each frame's predictions, in order.

    O(total boxes * members * C).
    """
    ensemble = any(p.member_probs is not None for p in predictions)
    c = len(classes)
    probs = []
    for p in predictions:
        if ensemble:
            mp = p.member_probs if p.member_probs is not None else np.asarray(p.probs)[None]
            probs.append(class_distribution(np.asarray(mp, dtype=np.float64).reshape(mp.shape[0], -1, c)))
        else:
            probs.append(class_distribution(np.asarray(p.probs, dtype=np.float64).reshape(-1, c)))
    columns = frame_scores(
        probs,
        ensemble=ensemble,
        box_scores=[np.asarray(p.scores, dtype=np.float64) for p in predictions],
        background_index=c,
        class_names=list(classes) + ["background"],
    )
    # EMOC (curate.scoring.emoc), when the detector computed it in the same pass
    values = [p.extra.get("emoc") for p in predictions]
    if predictions and all(v is not None for v in values):
        columns["emoc"] = np.asarray(values, dtype=np.float64)
    return columns
