"""Configuration of an active-learning loop (``curate loop --config FILE``, ``Workspace.loop``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate.errors import InvalidInputError, NotFoundError
from curate.selectors.base import check_budget

__all__ = ["LoopConfig", "load_loop_config"]

logger = logging.getLogger(__name__)


class LoopConfig(BaseModel):
    """Everything a loop needs; stored with every round in ``runs``.

    Attributes
    ----------
    name : str
        Loop name; rounds of a loop are found again by it (resume).
    embedding : str
        Embedding the selectors work on.
    strategy : str
        Selector name (``random``, ``kcenter``, ``probcover``, ``maxherding``, ``uherding``, ``topk``,
        ``kcenter_weighted``...);
        strategies that need scores get the previous round's stored prediction scores.
    strategy_params : dict
        Constructor parameters of the selector (for ``mgral``: the options of
        :class:`curate.loop.mgral.options.MGRALOptions`).
    initial : int
        Size of the random seed set (round 0).
    budget : int
        Frames selected per later round.
    rounds : int
        Rounds in total, the seed round included.
    seed : int
        Seed of the seed set, the selectors and training.
    detector : str
        Detector config name (``pointpillars-tiny``, ``centerpoint-tiny``, ``pointpillars``, ``second``, ``pv-rcnn``,
        ``centerpoint``; see :func:`curate.loop.mm3d.configs.list_detector_configs`).
    detector_options : dict
        Overrides of the detector (``epochs``, ``batch_size``, ``lr``, ``num_workers``, ...).
    start : {"latest", "initial"}
        Fine-tune the previous round's weights, or start every round from the initial weights
        (from scratch, or ``pretrained``).
    train_on : {"all", "new"}
        Train on every labeled frame, or on the newly selected frames plus a replay sample of
        ``replay`` times as many earlier frames (ActiveAnno3D's continuous-training modes).
    replay : float
        Replay ratio for ``train_on="new"``.
    pretrained : str, optional
        Initial weights for ``start="initial"`` (default: random initialisation).
    ensemble : int
        Models trained per round with different seeds (MagLev-style disagreement scores).
    mc_dropout : int
        MC-dropout passes at prediction time (0: off).
    val_fraction : float
        Fraction of the scenes held out for evaluation (never selected), when ``val_where`` is
        not given.
    val_where : str, optional
        SQL filter on ``samples`` choosing the validation frames.
    oracle : {"simulate", "import"}
        Reveal stored labels, or import label files from ``label_dir``.
    label_dir : str, optional
    classes : list of str
        Detector and evaluation classes.
    work_dir : str, optional
        Checkpoints and logs (default ``<workspace>/loops/<name>``).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "loop"
    embedding: str
    strategy: str = "random"
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    initial: int = 20  # checked by load_loop_config (curate.selectors.base.check_budget)
    budget: int = 10
    rounds: int = Field(2, ge=1)
    seed: int = 0
    detector: str = "pointpillars-tiny"
    detector_options: dict[str, Any] = Field(default_factory=dict)
    start: Literal["latest", "initial"] = "latest"
    train_on: Literal["all", "new"] = "all"
    replay: float = Field(0.5, ge=0)
    pretrained: Optional[str] = None
    ensemble: int = Field(1, ge=1)
    mc_dropout: int = Field(0, ge=0)
    val_fraction: float = Field(0.2, gt=0, lt=1)
    val_where: Optional[str] = None
    oracle: Literal["simulate", "import"] = "simulate"
    label_dir: Optional[str] = None
    classes: list[str] = Field(default_factory=lambda: ["Pedestrian", "Cyclist", "Car"])
    work_dir: Optional[str] = None


def load_loop_config(config: Union[None, str, Path, dict, LoopConfig], **overrides: Any) -> LoopConfig:
    """A :class:`LoopConfig` from an object, a dict or a JSON / YAML file, with overrides."""
    if isinstance(config, LoopConfig):
        data = config.model_dump()
    elif config is None:
        data = {}
    elif isinstance(config, dict):
        data = dict(config)
    else:
        path = Path(config)
        if not path.is_file():
            raise NotFoundError(f"loop config {path} does not exist")
        text = path.read_text()
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise InvalidInputError(
                    f"{path}: reading YAML needs pyyaml (pip install pyyaml), or write the config as JSON"
                ) from None
            data = yaml.safe_load(text) or {}
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise InvalidInputError(f"{path}: the loop config must be a mapping of fields")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        cfg = LoopConfig(**data)
    except ValidationError as exc:
        raise InvalidInputError(f"bad loop config: {exc}") from None
    check_budget(cfg.initial, minimum=1, name="initial")  # the frames of round 0
    check_budget(cfg.budget, minimum=1, name="budget")  # the frames of every later round
    if cfg.strategy == "mgral":  # its options configure the round, not a selector: check them now
        from curate.loop.mgral.options import mgral_options

        mgral_options(cfg.strategy_params, budget=cfg.budget)
    return cfg
