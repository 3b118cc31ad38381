"""Annotation-cost metrics of an active-learning run: what the accuracy cost in labels."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Optional

from curate.errors import InvalidInputError

__all__ = ["AnnotationCost", "annotation_cost"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnnotationCost:
    """Labels spent and accuracy bought.

    Attributes
    ----------
    labeled_frames : int
        Frames labeled so far.
    labeled_boxes : int
        Boxes in those frames (``DontCare`` regions excluded).
    map : float
        mAP in percent reached with them.
    boxes_per_map_point : float or None
        ``labeled_boxes / map``: boxes paid per 1 % mAP; ``None`` when ``map`` is 0.
    frames_per_map_point : float or None
        ``labeled_frames / map``.
    """

    labeled_frames: int
    labeled_boxes: int
    map: float
    boxes_per_map_point: Optional[float]
    frames_per_map_point: Optional[float]

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        return asdict(self)


def annotation_cost(labeled_frames: int, labeled_boxes: int, map_percent: float) -> AnnotationCost:
    """Annotation cost of reaching ``map_percent`` mAP with the given labels.

    Raises
    ------
    InvalidInputError
        Negative counts or a non-finite / negative mAP.
    """
    if labeled_frames < 0 or labeled_boxes < 0:
        raise InvalidInputError(
            f"labeled counts must be >= 0; got {labeled_frames} frames, {labeled_boxes} boxes"
        )
    if not math.isfinite(map_percent) or map_percent < 0:
        raise InvalidInputError(f"mAP must be a finite percentage >= 0; got {map_percent!r}")
    per_box = labeled_boxes / map_percent if map_percent > 0 else None
    per_frame = labeled_frames / map_percent if map_percent > 0 else None
    return AnnotationCost(int(labeled_frames), int(labeled_boxes), float(map_percent), per_box, per_frame)
