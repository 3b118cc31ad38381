"""Configuration of self-supervised image pretraining: dataclasses, TOML / dict parsing, errors.

A config file is TOML; every key has a default, so an empty file (or ``None``) is valid and trains
the default 128-d network on a few thousand small camera images in minutes on CPU::

    name = "image-ssl"          # run name: checkpoints go to <workspace>/checkpoints/<name>/
    seed = 0                    # initialisation, batches, augmentations

    [model]
    kind = "image"              # accepted so the file is self-describing; only "image"
    width = 16                  # SmallConvNet base channels (feature dim 8 * width)
    proj_dim = 128              # SimCLR projection head output

    [data]
    image_size = [64, 192]      # training canvas (height, width), cover + centre crop
    where = ""                  # SQL filter on the samples table ("" = every frame)
    cameras = "all"             # all | first : which camera images of a frame are used

    [augment]                   # two views per image, all in torch
    crop_scale = [0.5, 1.0]     # random-resized-crop area fraction
    crop_ratio = [0.75, 1.333]  # crop aspect relative to the canvas aspect
    flip = 0.5                  # horizontal flip probability
    brightness = 0.0            # multiplicative jitter half-range (0 = off, see below)
    contrast = 0.0
    saturation = 0.0
    grayscale = 0.0             # probability of a grey view

    [train]
    steps = 300
    batch_size = 64             # images per step (2 views each)
    lr = 0.002                  # peak AdamW learning rate (linear warm-up, cosine to min_lr)
    min_lr = 0.00001
    warmup_steps = 10
    weight_decay = 0.0001
    checkpoint_every = 50       # step-XXXX.pt + last.pt every N steps and at the end
    device = "auto"             # auto | cpu | cuda
    threads = 0                 # torch CPU threads while training (0 = leave as is)

    [loss]
    temperature = 0.2           # InfoNCE (NT-Xent) temperature

Colour jitter is off by default on purpose: SimCLR learns to ignore whatever the augmentations
change, and for driving data the colour of the sky (time of day) and the light (weather) are
attributes a curator wants the vectors to keep. ``benchmarks/image_ssl.py`` on 3000 synthetic
frames (300 steps, leakage-free cross-drive kNN): jitter 0.2 / crop >= 0.35 gave weather 0.828,
near-dup R@10 0.629, mean over 7 metrics 0.756; no jitter / crop >= 0.5 gave weather 0.934,
near-dup 0.651, mean 0.768 (time of day 1.000 -> 0.980). Raise ``brightness`` / ``contrast`` /
``saturation`` / ``grayscale`` for invariance to lighting (e.g. on Fashion-MNIST the benchmark
uses 0.4).

Unknown keys raise :class:`ImagePretrainConfigError` naming the key and listing the valid ones.
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

__all__ = [
    "AugmentSection",
    "DataSection",
    "ImagePretrainConfig",
    "ImagePretrainConfigError",
    "LossSection",
    "ModelSection",
    "TrainSection",
    "load_image_config",
]

logger = logging.getLogger(__name__)

CAMERA_CHOICES = ("all", "first")


class ImagePretrainConfigError(EmbedderError):
    """A bad image-pretraining config: unknown key, wrong type or out-of-range value."""


def _fail(section: str, message: str) -> None:
    raise ImagePretrainConfigError(f"image pretraining config [{section}]: {message}")


def _number(section: str, name: str, value: Any, *, low: float, high: float = math.inf,
            integer: bool = False, low_open: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        _fail(section, f"{name}={value!r} must be {'an integer' if integer else 'a number'}")
    if value < low or (low_open and value == low) or value > high:
        bound = f"> {low}" if low_open else f">= {low}"
        _fail(section, f"{name}={value!r} must be {bound}" + (f" and <= {high}" if high < math.inf else ""))


def _pair(section: str, name: str, value: Any, *, low: float, high: float) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        _fail(section, f"{name}={value!r} must be a [low, high] pair")
    for item in value:
        _number(section, name, item, low=low, high=high, low_open=True)
    if value[0] > value[1]:
        _fail(section, f"{name}={list(value)!r}: low must not exceed high")
    return (float(value[0]), float(value[1]))


@dataclass(frozen=True)
class ModelSection:
    """``[model]``: the network (see :class:`embedders.models.image_ssl.SmallConvNet`)."""

    kind: str = "image"
    width: int = 16
    proj_dim: int = 128

    def __post_init__(self) -> None:
        if self.kind != "image":
            _fail("model", f"kind={self.kind!r}: image pretraining only knows kind = \"image\" "
                           "(point-cloud pretraining is `curate pretrain`)")
        _number("model", "width", self.width, low=1, high=512, integer=True)
        _number("model", "proj_dim", self.proj_dim, low=1, integer=True)


@dataclass(frozen=True)
class DataSection:
    """``[data]``: which images and at what size."""

    image_size: tuple[int, int] = (64, 192)
    where: str = ""
    cameras: str = "all"

    def __post_init__(self) -> None:
        size = self.image_size
        if (not isinstance(size, (list, tuple)) or len(size) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) for v in size)
                or any(v < 32 or v % 32 for v in size)):
            _fail("data", f"image_size={size!r} must be [height, width], multiples of 32, >= 32")
        object.__setattr__(self, "image_size", (int(size[0]), int(size[1])))
        if not isinstance(self.where, str):
            _fail("data", f"where={self.where!r} must be a string (SQL filter)")
        if self.cameras not in CAMERA_CHOICES:
            _fail("data", f"cameras={self.cameras!r} must be one of {list(CAMERA_CHOICES)}")


@dataclass(frozen=True)
class AugmentSection:
    """``[augment]``: the two-view augmentation (see :mod:`embedders.pretrain_image.augment`)."""

    crop_scale: tuple[float, float] = (0.5, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 4.0 / 3.0)
    flip: float = 0.5
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    grayscale: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop_scale", _pair("augment", "crop_scale", self.crop_scale, low=0.0, high=1.0))
        object.__setattr__(self, "crop_ratio", _pair("augment", "crop_ratio", self.crop_ratio, low=0.0, high=10.0))
        for name in ("flip", "grayscale"):
            _number("augment", name, getattr(self, name), low=0.0, high=1.0)
        for name in ("brightness", "contrast", "saturation"):
            _number("augment", name, getattr(self, name), low=0.0, high=1.0)


@dataclass(frozen=True)
class TrainSection:
    """``[train]``: optimisation, checkpoints, device."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 0.002
    min_lr: float = 1e-5
    warmup_steps: int = 10
    weight_decay: float = 1e-4
    checkpoint_every: int = 50
    device: str = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        _number("train", "steps", self.steps, low=1, integer=True)
        _number("train", "batch_size", self.batch_size, low=2, integer=True)
        _number("train", "lr", self.lr, low=0.0, low_open=True)
        _number("train", "min_lr", self.min_lr, low=0.0)
        _number("train", "warmup_steps", self.warmup_steps, low=0, integer=True)
        _number("train", "weight_decay", self.weight_decay, low=0.0)
        _number("train", "checkpoint_every", self.checkpoint_every, low=1, integer=True)
        _number("train", "threads", self.threads, low=0, integer=True)
        if not isinstance(self.device, str) or not self.device:
            _fail("train", f"device={self.device!r} must be 'auto', 'cpu' or 'cuda'")


@dataclass(frozen=True)
class LossSection:
    """``[loss]``: the InfoNCE temperature."""

    temperature: float = 0.2

    def __post_init__(self) -> None:
        _number("loss", "temperature", self.temperature, low=0.0, low_open=True)


_SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "data": DataSection,
    "augment": AugmentSection,
    "train": TrainSection,
    "loss": LossSection,
}


@dataclass(frozen=True)
class ImagePretrainConfig:
    """A complete image-pretraining config (see the module docstring for every key)."""

    name: str = "image-ssl"
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    train: TrainSection = field(default_factory=TrainSection)
    loss: LossSection = field(default_factory=LossSection)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name or self.name.startswith("."):
            raise ImagePretrainConfigError(
                f"image pretraining config: name={self.name!r} must be a non-empty folder name "
                "(no '/', not starting with '.')"
            )
        _number("top level", "seed", self.seed, low=0, integer=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ImagePretrainConfig:
        """Build from a (TOML-parsed) mapping; unknown sections or keys raise, naming them."""
        valid_top = ["name", "seed", *_SECTIONS]
        unknown = sorted(set(values) - set(valid_top))
        if unknown:
            raise ImagePretrainConfigError(
                f"image pretraining config: unknown key(s) {unknown}; valid top-level keys: {valid_top}"
            )
        kwargs: dict[str, Any] = {key: values[key] for key in ("name", "seed") if key in values}
        for section, kind in _SECTIONS.items():
            given = values.get(section, {})
            if not isinstance(given, Mapping):
                raise ImagePretrainConfigError(
                    f"image pretraining config: [{section}] must be a table, got {type(given).__name__}"
                )
            names = [item.name for item in dataclasses.fields(kind)]
            bad = sorted(set(given) - set(names))
            if bad:
                raise ImagePretrainConfigError(
                    f"image pretraining config [{section}]: unknown key(s) {bad}; valid: {names}"
                )
            kwargs[section] = kind(**dict(given))
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists for pairs) that :meth:`from_dict` reads back."""
        def plain(value: Any) -> Any:
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return plain(dataclasses.asdict(self))


def load_image_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | ImagePretrainConfig | None,
) -> ImagePretrainConfig:
    """Return an :class:`ImagePretrainConfig` from a TOML path, mapping, config, or None (defaults).

    Raises
    ------
    ImagePretrainConfigError
        Missing or unparsable file (with the TOML error), or a bad key / value.
    """
    if source is None:
        return ImagePretrainConfig()
    if isinstance(source, ImagePretrainConfig):
        return source
    if isinstance(source, Mapping):
        return ImagePretrainConfig.from_dict(source)
    path = Path(source)
    if not path.is_file():
        raise ImagePretrainConfigError(
            f"image pretraining config file {str(path)!r} does not exist; write a TOML file "
            "(keys: see embedders.pretrain_image.config) or pass a dict"
        )
    try:
        with path.open("rb") as handle:
            values = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ImagePretrainConfigError(f"{path} is not valid TOML: {exc}") from exc
    try:
        return ImagePretrainConfig.from_dict(values)
    except ImagePretrainConfigError as exc:
        raise ImagePretrainConfigError(f"{path}: {exc}") from exc
