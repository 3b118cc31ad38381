"""Options of the ``mgral`` loop strategy (``"strategy": "mgral", "strategy_params": {...}``)."""

from __future__ import annotations

import logging
from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from curate.errors import InvalidInputError

__all__ = ["MGRALOptions", "mgral_options"]

logger = logging.getLogger(__name__)


class MGRALOptions(BaseModel):
    """What an ``mgral`` round does before it selects (see :mod:`curate.loop.mgral`).

    Attributes
    ----------
    lut_frames : int
        Table frames drawn at random from the pool and labeled for the probes; they come out of
        the round's ``budget`` (the policy picks ``budget - lut_frames``).
    probes : int
        Probe batches (real short fine-tunes) the table is fitted on.
    probe_size : int
        Frames per probe (and held-out) batch.
    heldout : int
        Held-out batches fine-tuned for real to measure the table's error.
    probe_epochs : int
        Epochs of each probe fine-tune (from the round's starting weights).
    probe_lr : float, optional
        Learning rate of the probe fine-tunes (default: the detector's). A fine-tune from the
        round's converged weights at the full training rate is chaotic (its gain varies with the
        fine-tune seed as much as with the batch; ``benchmarks.loop probe-noise`` measures it);
        a smaller rate perturbs the weights less.
    probe_augment : bool
        Whether the probe fine-tunes train with the detector's random augmentations and a
        shuffled frame order (default, as the round's training does). False makes a probe a
        deterministic function of its frames (no augmentation, the frames in id order), so its
        gain carries no fine-tune-seed noise; whether the gains it ranks still predict what a
        real round gains is measured, not assumed (``benchmarks.loop probe-noise``).
    probe_head_only : bool
        Whether the probe fine-tunes train the detector's dense head alone (backbone, neck and
        their batch-norm statistics frozen at the round's weights). Default False: the whole
        detector, as a round trains it.
    probe_optimizer : str
        ``"detector"`` (default): the probes train with the detector's optimizer; ``"sgd"``: plain
        SGD at ``probe_lr`` (required), whose small steps are linear in each frame's gradient,
        so a batch's effect is close to the sum of its frames' (what an additive table fits).
    tuning_fraction : float
        Part of the labeled frames held out of the probe fine-tunes to evaluate them (the
        reported validation split is never used for the reward).
    metric : str
        The reward's measure on the tuning frames: a loop metric (``map_bev_loose``,
        ``map_bev``, ``map_3d``, ``map_3d_loose``; the reward is its gain in mAP points) or
        ``tuning_loss``, the detector's own training loss on the tuning frames (no augmentation;
        the reward is ``100 * ln(base loss / fine-tuned loss)``, about the percent the batch
        lowers it). mAP on a handful of tuning frames moves in jumps as single boxes cross a
        threshold; the loss changes smoothly with the weights.
    ridge : float
        Ridge penalty of the table's least squares.
    n_pca : int
        Principal components of the embedding in a candidate's features.
    hidden : int
        LSTM width.
    iterations, samples, lr : int, int, float
        REINFORCE steps, batches per step, Adam learning rate.
    checkpoint_every : int
        Policy checkpoints every this many steps (and at the end).
    """

    model_config = ConfigDict(extra="forbid")

    lut_frames: int = Field(8, ge=2)
    probes: int = Field(8, ge=1)
    probe_size: int = Field(3, ge=1)
    heldout: int = Field(4, ge=0)
    probe_epochs: int = Field(1, ge=1)
    probe_lr: Optional[float] = Field(None, gt=0)
    probe_augment: bool = True
    probe_head_only: bool = False
    probe_optimizer: Literal["detector", "sgd"] = "detector"
    tuning_fraction: float = Field(0.25, gt=0, lt=1)
    metric: Literal["map_bev_loose", "map_bev", "map_3d", "map_3d_loose", "tuning_loss"] = "map_bev_loose"
    ridge: float = Field(1.0, ge=0)
    n_pca: int = Field(4, ge=0, le=64)
    hidden: int = Field(32, ge=2, le=1024)
    iterations: int = Field(200, ge=1)
    samples: int = Field(16, ge=2)
    lr: float = Field(0.01, gt=0)
    checkpoint_every: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _sizes(self) -> "MGRALOptions":
        if self.probe_size > self.lut_frames:
            raise ValueError(f"probe_size ({self.probe_size}) must be at most lut_frames ({self.lut_frames})")
        if self.probe_optimizer == "sgd" and self.probe_lr is None:
            raise ValueError("probe_optimizer 'sgd' needs probe_lr (the detector's rate is its own optimizer's)")
        return self


def mgral_options(params: Mapping[str, Any], *, budget: int) -> MGRALOptions:
    """Validated :class:`MGRALOptions` of a loop's ``strategy_params`` for rounds of ``budget`` frames.

    Raises
    ------
    InvalidInputError
        An unknown option (the message lists the valid ones), a bad value, or ``lut_frames``
        leaving the policy nothing to pick (``lut_frames >= budget``).
    """
    try:
        opts = MGRALOptions(**dict(params))
    except ValidationError as exc:
        valid = ", ".join(MGRALOptions.model_fields)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInputError(f"bad strategy_params for strategy 'mgral': {problems} (valid options: {valid})") from None
    if opts.lut_frames >= budget:
        raise InvalidInputError(
            f"strategy 'mgral': lut_frames ({opts.lut_frames}) must be smaller than the round budget ({budget}); "
            "the table frames come out of the budget and the policy picks the rest"
        )
    return opts
