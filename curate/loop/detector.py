"""The detector contract of the active-learning loop.

A detector trains on an mmdet3d info pkl and predicts per-box class distributions. The loop
only talks to this protocol; :class:`curate.loop.mm3d.MMDet3DDetector` implements it with
mmdet3d (``pip install curate[mm3d]``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Protocol, Sequence, runtime_checkable

from curate.scores_table import FramePrediction

__all__ = ["Detector", "TrainResult"]

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What one training run produced.

    Attributes
    ----------
    checkpoint : str
        Path of the final weights.
    losses : list of float
        Total training loss per iteration, in order.
    seconds : float
        Wall time.
    work_dir : str
        Directory of the run (logs, config, checkpoints).
    """

    checkpoint: str
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    work_dir: str = ""


@runtime_checkable
class Detector(Protocol):
    """A trainable 3-D detector that keeps the class distribution of every box it outputs."""

    #: Class names in label-index order.
    classes: tuple[str, ...]

    def train(
        self, train_pkl: Path, work_dir: Path, *, load_from: Optional[str] = None, seed: int = 0
    ) -> TrainResult:
        """Train (from scratch, or fine-tune ``load_from``) on the frames of ``train_pkl``.

        A new ``work_dir`` per call; never resumes a previous run's optimiser state.
        """
        ...

    def predict(
        self,
        infos_pkl: Path,
        checkpoints: Sequence[str],
        *,
        mc_samples: int = 0,
        seed: int = 0,
    ) -> list[FramePrediction]:
        """Detections with per-box class scores for every frame of ``infos_pkl``, in order.

        Several ``checkpoints`` form an ensemble (member-wise class scores in
        ``FramePrediction.member_probs``); ``mc_samples > 0`` draws that many MC-dropout passes.
        """
        ...
