"""Pretraining configuration: dataclasses with defaults, and TOML / dict parsing with clear errors.

A config file is TOML with a top-level ``name`` (the run name; checkpoints go to
``<workspace>/checkpoints/<name>/``), a top-level ``seed``, and four optional tables. Every key
has a default, so an empty file is a valid config (the "tiny" setting, sized to pretrain a few
thousand frames on 2 CPU cores in about half an hour)::

    name = "recon-tiny-ssl"      # run name
    seed = 0                     # torch init, data order, masks, augmentations

    [model]
    size = "tiny"                # tiny | small | base (trans_dim 192 / 256 / 384, 12 blocks)
    num_group = 32               # patches per cloud G in training
    group_size = 32              # points per patch k
    embed_num_group = 128        # patches per cloud when the trained encoder embeds (denser reads
                                 # better: benchmarks/embedders.py); goes into embed_options
    decoder_depth = 2            # MAE decoder blocks (official ReCon: 4)
    decoder_num_heads = 0        # 0 = as the encoder
    mask_ratio = 0.6             # fraction of patches hidden from the encoder
    mask_type = "rand"           # rand | block

    [data]
    num_points = 1024            # points per cloud fed to the grouping in training
    embed_num_points = 2048      # points per cloud when embedding (embed_options)
    augment = true               # random z-rotation, scale, shift, point jitter
    where = ""                   # SQL filter on the samples table ("" = every frame)
    teacher = "efficientnet-lite0"   # frozen image teacher of the cross-modal term
    teacher_image_size = [224, 672]  # teacher input canvas (height, width), cover + centre crop
    # any option of embedders.preprocess.PreprocessConfig except num_points:
    # crop, half_extent, z_min, z_max, remove_ground, ground_cell, ground_height, voxel_size,
    # sampling, normalize

    [train]
    steps = 2000                 # optimizer steps (~0.9 s each on 2 cores: ~30 min)
    batch_size = 8
    lr = 0.0001                  # peak AdamW learning rate (5e-4 collapsed the contrastive term)
    min_lr = 0.00001             # end of the cosine schedule
    warmup_steps = 100           # linear warm-up
    weight_decay = 0.05          # not applied to biases, norms, tokens and positions
    grad_clip = 10.0             # max gradient norm (0 = off)
    num_workers = 1              # DataLoader worker processes (0 = in the main process)
    checkpoint_every = 25        # write step-XXXX.pt + last.pt every N steps (and at the end)
    device = "auto"              # auto | cpu | cuda

    [loss]
    reconstruction = 1.0         # Chamfer-L2 of the masked patches
    image = 1.0                  # cosine distance of img_proj(img token) to the teacher feature
    contrast = 1.0               # InfoNCE between two views of a frame (about 2x the cost)
    temperature = 0.1            # InfoNCE temperature
    contrast_pairs = "temporal"  # augment: two augmentations of the same frame;
                                 # temporal: the second view is another frame of the same scene
                                 # within +- contrast_window frame indices (STRL-style positives)
    contrast_window = 5          # frames either side for contrast_pairs = "temporal"
    contrast_on = "patches"      # patches: max+mean of the patch tokens (trains the encoder);
                                 # cls: the cls token (ReCon's self_contrastive; query branch only)

Unknown keys raise :class:`PretrainConfigError` naming the key and listing the valid ones.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedders.errors import EmbedderError
from embedders.models.recon import RECON_SIZES
from embedders.preprocess import PreprocessConfig
from embedders.pretrain.masking import MASK_TYPES, num_masked
from embedders.pretrain.model import CONTRAST_ON

__all__ = [
    "PretrainConfigError",
    "ModelSection",
    "DataSection",
    "TrainSection",
    "LossSection",
    "PretrainConfig",
    "load_config",
]

logger = logging.getLogger(__name__)

#: How the two views of the contrastive term are made (see :class:`LossSection`).
CONTRAST_PAIRS = ("augment", "temporal")
#: Preprocessing keys accepted in ``[data]`` (``num_points`` is a data key of its own).
PREPROCESS_KEYS = tuple(name for name in PreprocessConfig.option_names() if name != "num_points")


class PretrainConfigError(EmbedderError):
    """A pretraining config file or mapping is malformed (unknown key, bad value)."""


def _fail(where: str, message: str) -> None:
    raise PretrainConfigError(f"pretraining config {where}: {message}")


def _check_type(where: str, key: str, value: Any, expected: type) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is int and isinstance(value, bool):
        _fail(where, f"{key}={value!r} must be an integer")
    if not isinstance(value, expected):
        _fail(where, f"{key}={value!r} must be of type {expected.__name__}")
    if expected is float and not math.isfinite(value):
        _fail(where, f"{key}={value!r} must be finite")
    return value


def _build(cls: type, section: str, values: Mapping[str, Any]) -> Any:
    """Instantiate a section dataclass from a mapping, checking names and types."""
    if not isinstance(values, Mapping):
        _fail(f"[{section}]", f"must be a table of keys, got {type(values).__name__}")
    fields = {item.name: item for item in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        _fail(
            f"[{section}]",
            f"unknown key {unknown[0]!r}" + (f" (and {unknown[1:]})" if unknown[1:] else "")
            + f"; valid keys: {sorted(fields)}",
        )
    checked = {}
    defaults = cls()
    for key, value in values.items():
        expected = type(getattr(defaults, key))
        checked[key] = _check_type(f"[{section}]", key, value, expected)
    return cls(**checked)


@dataclass(frozen=True)
class ModelSection:
    """``[model]``: architecture and masking (see the module docstring)."""

    size: str = "tiny"
    num_group: int = 32
    group_size: int = 32
    embed_num_group: int = 128
    decoder_depth: int = 2
    decoder_num_heads: int = 0
    mask_ratio: float = 0.6
    mask_type: str = "rand"

    def __post_init__(self) -> None:
        where = "[model]"
        if self.size not in RECON_SIZES:
            _fail(where, f"size={self.size!r} is not one of {sorted(RECON_SIZES)}")
        if self.mask_type not in MASK_TYPES:
            _fail(where, f"mask_type={self.mask_type!r} is not one of {list(MASK_TYPES)}")
        for key in ("num_group", "group_size", "decoder_depth", "embed_num_group"):
            if getattr(self, key) < 1:
                _fail(where, f"{key}={getattr(self, key)} must be >= 1")
        if self.decoder_num_heads < 0:
            _fail(where, "decoder_num_heads must be >= 0 (0 = as the encoder)")
        try:
            num_masked(self.num_group, self.mask_ratio)
        except EmbedderError as exc:
            _fail(where, str(exc))

    @property
    def trans_dim(self) -> int:
        """Token size of the chosen model size."""
        return RECON_SIZES[self.size][0]

    @property
    def num_heads(self) -> int:
        """Encoder attention heads of the chosen size."""
        return RECON_SIZES[self.size][2]

    @property
    def decoder_heads(self) -> int:
        """Decoder attention heads (``decoder_num_heads`` or the encoder's)."""
        return self.decoder_num_heads or self.num_heads


@dataclass(frozen=True)
class DataSection:
    """``[data]``: which frames, preprocessing, augmentation, teacher (see the module docstring)."""

    num_points: int = 1024
    embed_num_points: int = 2048
    augment: bool = True
    where: str = ""
    teacher: str = "efficientnet-lite0"
    teacher_image_size: list[int] = field(default_factory=lambda: [224, 672])
    preprocess: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        size = self.teacher_image_size
        if (
            len(size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 32 for v in size)
        ):
            _fail("[data]", f"teacher_image_size={size!r} must be [height, width], ints >= 32")
        for key in ("num_points", "embed_num_points"):
            if getattr(self, key) < 1:
                _fail("[data]", f"{key}={getattr(self, key)} must be >= 1")

    def preprocess_config(self) -> PreprocessConfig:
        """The :class:`PreprocessConfig` of this section (``num_points`` included)."""
        try:
            return PreprocessConfig.from_options({**self.preprocess, "num_points": self.num_points})
        except EmbedderError as exc:
            raise PretrainConfigError(f"pretraining config [data]: {exc}") from exc


@dataclass(frozen=True)
class TrainSection:
    """``[train]``: optimisation and checkpointing (see the module docstring)."""

    steps: int = 2000
    batch_size: int = 8
    lr: float = 1e-4
    min_lr: float = 1e-5
    warmup_steps: int = 100
    weight_decay: float = 0.05
    grad_clip: float = 10.0
    num_workers: int = 1
    checkpoint_every: int = 25
    device: str = "auto"

    def __post_init__(self) -> None:
        where = "[train]"
        for key in ("steps", "batch_size", "checkpoint_every"):
            if getattr(self, key) < 1:
                _fail(where, f"{key}={getattr(self, key)} must be >= 1")
        for key in ("warmup_steps", "num_workers"):
            if getattr(self, key) < 0:
                _fail(where, f"{key}={getattr(self, key)} must be >= 0")
        for key in ("lr", "min_lr", "weight_decay", "grad_clip"):
            if getattr(self, key) < 0:
                _fail(where, f"{key}={getattr(self, key)} must be >= 0")
        if self.min_lr > self.lr:
            _fail(where, f"min_lr={self.min_lr} must not exceed lr={self.lr}")


@dataclass(frozen=True)
class LossSection:
    """``[loss]``: weights of the loss terms (see the module docstring)."""

    reconstruction: float = 1.0
    image: float = 1.0
    contrast: float = 1.0
    temperature: float = 0.1
    contrast_pairs: str = "temporal"
    contrast_window: int = 5
    contrast_on: str = "patches"

    def __post_init__(self) -> None:
        if self.contrast_pairs not in CONTRAST_PAIRS:
            _fail("[loss]", f"contrast_pairs={self.contrast_pairs!r} is not one of {list(CONTRAST_PAIRS)}")
        if self.contrast_on not in CONTRAST_ON:
            _fail("[loss]", f"contrast_on={self.contrast_on!r} is not one of {list(CONTRAST_ON)}")
        if self.contrast_window < 1:
            _fail("[loss]", f"contrast_window={self.contrast_window} must be >= 1")
        for key in ("reconstruction", "image", "contrast"):
            if getattr(self, key) < 0:
                _fail("[loss]", f"{key}={getattr(self, key)} must be >= 0")
        if self.temperature <= 0:
            _fail("[loss]", f"temperature={self.temperature} must be > 0")
        if self.reconstruction == 0 and self.image == 0 and self.contrast == 0:
            _fail("[loss]", "every loss weight is 0; nothing would be trained")


SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "data": DataSection,
    "train": TrainSection,
    "loss": LossSection,
}
TOP_LEVEL = ("name", "seed")


@dataclass(frozen=True)
class PretrainConfig:
    """A complete pretraining configuration (see the module docstring for every key).

    Attributes
    ----------
    name : str
        Run name: checkpoints go to ``<workspace>/checkpoints/<name>/``.
    seed : int
    model, data, train, loss : sections
    """

    name: str = "recon-tiny-ssl"
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    loss: LossSection = field(default_factory=LossSection)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(
            ch in self.name for ch in "/\\\0"
        ) or self.name in (".", ".."):
            _fail("name", f"{self.name!r} must be a non-empty file name (no slashes)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            _fail("seed", f"{self.seed!r} must be an integer >= 0")
        if self.model.group_size > self.data.num_points:
            _fail(
                "[model]",
                f"group_size={self.model.group_size} exceeds [data] num_points="
                f"{self.data.num_points}",
            )
        if self.model.embed_num_group > self.data.embed_num_points:
            _fail(
                "[model]",
                f"embed_num_group={self.model.embed_num_group} exceeds [data] embed_num_points="
                f"{self.data.embed_num_points}",
            )
        if self.model.num_group > self.data.num_points:
            _fail(
                "[model]",
                f"num_group={self.model.num_group} exceeds [data] num_points="
                f"{self.data.num_points}",
            )

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> PretrainConfig:
        """Build from a nested mapping (the parsed TOML), naming any unknown key.

        Raises
        ------
        PretrainConfigError
            Unknown section or key (the message lists the valid ones) or a bad value.
        """
        if not isinstance(values, Mapping):
            _fail("", f"must be a mapping, got {type(values).__name__}")
        valid = sorted([*TOP_LEVEL, *SECTIONS])
        unknown = sorted(set(values) - set(valid))
        if unknown:
            _fail(
                "top level",
                f"unknown key {unknown[0]!r}; valid top-level keys: {valid} "
                f"(section keys: " + "; ".join(
                    f"[{name}] {sorted(f.name for f in dataclasses.fields(kind) if f.name != 'preprocess')}"
                    for name, kind in SECTIONS.items()
                ) + ")",
            )
        kwargs: dict[str, Any] = {}
        for key in TOP_LEVEL:
            if key in values:
                kwargs[key] = values[key]
        for name, kind in SECTIONS.items():
            section = dict(values.get(name, {}) or {})
            if name == "data":
                if not isinstance(values.get(name, {}), Mapping):
                    _fail("[data]", "must be a table of keys")
                preprocess = {k: section.pop(k) for k in list(section) if k in PREPROCESS_KEYS}
                data_fields = [f.name for f in dataclasses.fields(DataSection) if f.name != "preprocess"]
                unknown_data = sorted(set(section) - set(data_fields))
                if unknown_data:
                    _fail(
                        "[data]",
                        f"unknown key {unknown_data[0]!r}; valid keys: "
                        f"{sorted([*data_fields, *PREPROCESS_KEYS])}",
                    )
                kwargs[name] = _build(kind, name, section)
                kwargs[name] = dataclasses.replace(kwargs[name], preprocess=preprocess)
                kwargs[name].preprocess_config()  # validates the preprocessing values
            else:
                kwargs[name] = _build(kind, name, section)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (TOML-shaped: preprocessing keys inlined in ``data``)."""
        data = dataclasses.asdict(self.data)
        data.update(data.pop("preprocess"))
        return {
            "name": self.name,
            "seed": self.seed,
            "model": dataclasses.asdict(self.model),
            "data": data,
            "train": dataclasses.asdict(self.train),
            "loss": dataclasses.asdict(self.loss),
        }

    def replace(self, **sections: Mapping[str, Any]) -> PretrainConfig:
        """A copy with some keys changed, e.g. ``cfg.replace(train={"steps": 10})``."""
        merged = self.to_dict()
        for key, value in sections.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return PretrainConfig.from_dict(merged)


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | PretrainConfig | None) -> PretrainConfig:
    """Return a :class:`PretrainConfig` from a TOML path, a mapping, a config, or None (defaults).

    Raises
    ------
    PretrainConfigError
        Missing or unparsable file (with the TOML error and its line), or a bad key / value.
    """
    if source is None:
        return PretrainConfig()
    if isinstance(source, PretrainConfig):
        return source
    if isinstance(source, Mapping):
        return PretrainConfig.from_dict(source)
    path = Path(source)
    if not path.is_file():
        raise PretrainConfigError(
            f"pretraining config file {str(path)!r} does not exist; write a TOML file "
            "(see embedders.pretrain.config for the keys) or pass a dict"
        )
    try:
        with path.open("rb") as handle:
            values = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise PretrainConfigError(f"pretraining config file {str(path)!r} is not valid TOML: {exc}") from exc
    try:
        return PretrainConfig.from_dict(values)
    except PretrainConfigError as exc:
        raise PretrainConfigError(f"{path}: {exc}") from exc
