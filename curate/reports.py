"""Typed reports of the workspace's long operations: label import, pretraining, detector loop.

Every public ``Workspace`` method returns an API model; the results of these three operations
are defined here (the others in :mod:`curate.api`). They are pydantic models, so the HTTP client
rebuilds the same objects from the JSON a server job returns (``LoopReport(**payload)``).

The names are also importable from where they were first defined:
``curate.labels_import.ImportReport``, ``curate.pretraining.PretrainReport``,
``curate.loop.LoopReport`` / ``curate.loop.RoundReport``.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ImportReport", "PretrainReport", "RoundReport", "LoopReport"]


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImportReport(_Report):
    """What a label import did (``Workspace.import_labels``).

    Attributes
    ----------
    files : int
        Label files read.
    frames : int
        Frames that received labels.
    boxes : int
        Boxes imported (``DontCare`` included).
    replaced : int
        Earlier imported boxes of those frames that were replaced.
    newly_labeled : int
        Frames that were not labeled before.
    labeled_total : int
        Labeled frames in the workspace afterwards.
    labels_version, samples_version : int
        Table versions after the import.
    seconds : float
        Wall time.
    """

    files: int
    frames: int
    boxes: int
    replaced: int
    newly_labeled: int
    labeled_total: int
    labels_version: int
    samples_version: int
    seconds: float


class PretrainReport(_Report):
    """Result of self-supervised pretraining (``Workspace.pretrain`` / ``pretrain_image``)."""

    run_name: str
    run_dir: str
    checkpoint: str = Field(description="path of last.pt; pass as checkpoint= to embed")
    steps: int
    start_step: int = Field(description="step the run resumed from (0 = fresh)")
    frames: int
    final_losses: dict[str, float] = Field(description="mean of each term over the last 20 steps")
    seconds: float
    teacher_embedding: Optional[str] = None
    embed_options: dict[str, Any] = Field(
        default_factory=dict,
        description="tokenization/preprocessing options to embed with, e.g. ws.embed("
        "'recon-tiny', checkpoint=..., **embed_options)",
    )
    model: str = Field(description="registry name of the matching embedder, e.g. recon-tiny")
    interrupted: Optional[str] = Field(
        default=None,
        description="signal (SIGTERM / SIGINT) that stopped the run early after checkpointing "
        "the step reached; None when it ran to the end. Run again to resume",
    )


class RoundReport(_Report):
    """One finished round of a detector loop (also stored as a ``loop`` run).

    Attributes
    ----------
    round : int
        Round number (0 = the random seed set).
    run_id : str
        The ``loop`` run that stores the round.
    selected : list of str
        Frames the round selected.
    labeled_frames, labeled_boxes : int
        Labeled frames of the pool (and their boxes) after the round.
    metrics : dict
        ``map_3d``, ``map_bev``, ``map_2d``, loose variants, per-class ``ap``, annotation cost
        (``boxes_per_map_point``...), ``val_frames``, ``train_seconds``.
    checkpoints : list of str
        One detector checkpoint per ensemble member.
    losses : list of float
        Training losses of the first member.
    seconds : float
        Wall time of the round.
    score_run : str or None
        Stored prediction run of the unlabeled pool (None when the pool is empty).
    """

    round: int
    run_id: str
    selected: list[str]
    labeled_frames: int
    labeled_boxes: int
    metrics: dict[str, Any]
    checkpoints: list[str]
    losses: list[float]
    seconds: float
    score_run: Optional[str]


class LoopReport(_Report):
    """All rounds of a detector loop, resumed ones included (``Workspace.loop``).

    Attributes
    ----------
    name : str
        The loop's name.
    rounds : list of RoundReport
        In round order.
    resumed_from : int
        Rounds found stored when the call started (this call ran the ones after).
    """

    name: str
    rounds: list[RoundReport] = Field(default_factory=list)
    resumed_from: int = 0

    def table(self) -> str:
        """Plain-text table: round, labeled frames / boxes, mAP (3-D moderate), seconds."""
        lines = [f"{'round':>5} {'frames':>7} {'boxes':>7} {'mAP3d':>7} {'mAPbev':>7} {'bev loose':>10} "
                 f"{'box/1%':>8} {'sec':>7}"]
        for r in self.rounds:
            m = r.metrics
            per = m.get("boxes_per_map_point")
            lines.append(
                f"{r.round:>5} {r.labeled_frames:>7} {r.labeled_boxes:>7} {m.get('map_3d', 0):>7.2f} "
                f"{m.get('map_bev', 0):>7.2f} {m.get('map_bev_loose', float('nan')):>10.2f} "
                f"{('-' if per is None else f'{per:.1f}'):>8} {r.seconds:>7.1f}"
            )
        return "\n".join(lines)
