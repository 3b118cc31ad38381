"""Self-supervised image embedder (``image-ssl``): a small CNN trained on the pool's own cameras.

The network
    :class:`SmallConvNet`, seven ``conv3x3 -> BatchNorm -> ReLU`` layers (strides 2, 2, 1, 2, 1,
    2, 1; channels ``w, 2w, 2w, 4w, 4w, 8w, 8w`` for ``width = w``, default 16), then a global
    average pool: a ``8w``-d feature (128-d by default, 0.29 M parameters). At the default
    ``64 x 192`` canvas one image costs ~0.033 GMAC forward (cost grows as ``w^2``: width 32 is
    4x slower), about 1/3 of EfficientNet-Lite0 at the same canvas (~0.1 GMAC) and ~1/35 of it
    at its ``224 x 672`` default. Measured under load (9 on 2 cores, one thread): forward +
    backward of a SimCLR step of 64 images (128 views) takes 1.4 s at width 16 and 5.4 s at
    width 32, hence the default.

Why a small CNN and not EfficientNet-Lite0 fine-tuned from ImageNet
    The option must train on a few thousand images on 2 shared CPU cores in minutes. On CPU,
    EfficientNet-Lite0's depthwise convolutions run far below their FLOP count: at the same
    ``64 x 192`` canvas it embeds ~42 images/s against ~350 for this network (one thread, same
    run of ``benchmarks/image_ssl.py``), and training costs about 3x a forward pass, so a few
    hundred SimCLR steps would take about an hour instead of minutes. The packaged ImageNet
    network stays available, unchanged, as ``effnet-lite0``. A small CNN from scratch also
    makes the benchmark's "random-init, same architecture" peer a fair control for what the
    self-supervised training learned.

Weights
    Trained by :mod:`embedders.pretrain_image` (SimCLR / InfoNCE on two augmented views). The
    embedder loads the ``backbone.*`` entries of that checkpoint strictly (missing, extra or
    mis-shaped keys raise :class:`~embedders.errors.CheckpointError` naming the key); the
    projection head is not used for features (standard SimCLR practice). With
    ``checkpoint=None`` the network keeps its seeded random initialisation (a baseline).

Input
    The same "cover + centre crop" resize as ``effnet-lite0``
    (:func:`embedders.models.image.preprocess_images`) to ``image_size`` (default the size the
    checkpoint was trained at), ``"tf-lite"`` normalisation ``(x - 127) / 128``.

Several cameras per frame
    As ``effnet-lite0``: each camera's feature is L2-normalised and the frame vector is the mean
    of the normalised camera features (order-independent; norm 1 for one camera).

Costs: one forward pass per camera image; memory O(batch * H * W * width) activations.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from embedders.base import check_options
from embedders.checkpoint import read_checkpoint
from embedders.errors import CheckpointError, EmbedderError
from embedders.models.image import CameraEmbedder, _check_image_size, pool_cameras, preprocess_images

__all__ = [
    "BACKBONE_PREFIX",
    "DEFAULT_SSL_IMAGE_SIZE",
    "DEFAULT_WIDTH",
    "ImageSSLEmbedder",
    "SmallConvNet",
    "build_backbone",
    "image_ssl",
    "load_backbone",
    "pool_cameras",
]

logger = logging.getLogger(__name__)

#: Default ``(height, width)`` canvas (3:1 like KITTI's cameras, small enough for CPU training).
DEFAULT_SSL_IMAGE_SIZE = (64, 192)
#: Default base channel count ``w`` (feature dimension ``8 w``).
DEFAULT_WIDTH = 16
#: Prefix of the backbone entries in an ``image-ssl`` training checkpoint.
BACKBONE_PREFIX = "backbone."
#: Input normalisation (the name used by :data:`embedders.models.image.NORMALIZATIONS`).
NORMALIZATION = "tf-lite"

_CHANNELS = (1, 2, 2, 4, 4, 8, 8)
_STRIDES = (2, 2, 1, 2, 1, 2, 1)


class SmallConvNet(nn.Module):
    """Seven conv-BN-ReLU layers and a global average pool: ``(B, 3, H, W) -> (B, 8 * width)``.

    Parameters
    ----------
    width : int, default 16
        Channels of the first layer; later layers use 2x, 4x and 8x that.

    Notes
    -----
    Any ``H, W >= 16`` work (padding 1, four stride-2 layers). Parameters O(width^2).
    """

    def __init__(self, width: int = DEFAULT_WIDTH) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise EmbedderError(f"width must be a positive integer, got {width!r}")
        self.width = width
        self.dim = _CHANNELS[-1] * width
        layers: list[nn.Module] = []
        channels_in = 3
        for factor, stride in zip(_CHANNELS, _STRIDES):
            channels_out = factor * width
            layers += [
                nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(channels_out),
                nn.ReLU(inplace=True),
            ]
            channels_in = channels_out
        self.features = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        """Pooled features of normalised images ``(B, 3, H, W)`` -> ``(B, 8 * width)``."""
        return self.features(images).mean(dim=(2, 3))


def build_backbone(width: int = DEFAULT_WIDTH, *, seed: int = 0) -> SmallConvNet:
    """A :class:`SmallConvNet` with a seeded initialisation (the global RNG is left unchanged)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return SmallConvNet(width)


def _checkpoint_settings(raw_file: dict[str, Any] | None) -> dict[str, Any]:
    if not raw_file:
        return {}
    settings = raw_file.get("image_ssl", {})
    return dict(settings) if isinstance(settings, dict) else {}


def load_backbone(
    checkpoint: str | os.PathLike[str],
) -> tuple[SmallConvNet, dict[str, Any]]:
    """Load the backbone of an ``image-ssl`` training checkpoint, strictly.

    Parameters
    ----------
    checkpoint : path
        ``last.pt`` / ``step-XXXX.pt`` written by :func:`embedders.pretrain_image.train`.

    Returns
    -------
    backbone : SmallConvNet
        In eval mode.
    settings : dict
        ``{'width': int, 'image_size': [h, w], 'normalization': str, 'step': int}`` as trained.

    Raises
    ------
    CheckpointError
        Missing or unreadable file, a file that is not an ``image-ssl`` checkpoint (e.g. a ReCon
        one), or a missing / unexpected / mis-shaped backbone key (named).
    """
    path = os.fspath(checkpoint)
    state = read_checkpoint(path)  # missing / corrupt files raise CheckpointError naming them
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - read_checkpoint has already validated the file
        raise CheckpointError(f"checkpoint {path!r} could not be read: {exc}") from exc
    settings = _checkpoint_settings(content if isinstance(content, dict) else None)
    if "width" not in settings:
        raise CheckpointError(
            f"checkpoint {path!r} is not an image-ssl checkpoint (no 'image_ssl' settings entry); "
            "train one with `curate pretrain-image` or Workspace.pretrain_image()"
        )
    width = int(settings["width"])
    backbone = SmallConvNet(width)
    expected = backbone.state_dict()
    weights = {
        key[len(BACKBONE_PREFIX):]: value
        for key, value in state.items()
        if key.startswith(BACKBONE_PREFIX)
    }
    missing = [key for key in expected if key not in weights]
    if missing:
        raise CheckpointError(
            f"checkpoint {path!r} is missing backbone key {BACKBONE_PREFIX + missing[0]!r} "
            f"({len(missing)} missing); it is not an image-ssl checkpoint of width {width}"
        )
    unexpected = sorted(key for key in weights if key not in expected)
    if unexpected:
        raise CheckpointError(
            f"checkpoint {path!r} has backbone key {BACKBONE_PREFIX + unexpected[0]!r} that a "
            f"width-{width} SmallConvNet does not have"
        )
    for key, target in expected.items():
        if tuple(weights[key].shape) != tuple(target.shape):
            raise CheckpointError(
                f"checkpoint {path!r}: backbone key {BACKBONE_PREFIX + key!r} has shape "
                f"{list(weights[key].shape)}, a width-{width} SmallConvNet expects "
                f"{list(target.shape)}; the file is corrupt or was edited"
            )
    backbone.load_state_dict(weights, strict=True)
    backbone.eval()
    settings["step"] = int(content.get("step", 0)) if isinstance(content, dict) else 0
    return backbone, settings


class ImageSSLEmbedder(CameraEmbedder):
    """Frame embedder from camera images with a self-supervised :class:`SmallConvNet`.

    Parameters
    ----------
    name : str
        Registry name.
    checkpoint : path or None
        An ``image-ssl`` training checkpoint; None = seeded random weights (a baseline).
    image_size : (int, int), optional
        Resize canvas; default the checkpoint's training size (``(64, 192)`` without one).
    width : int, optional
        Base channels; must match the checkpoint (default: the checkpoint's, else 16).
    seed : int, default 0
        Initialisation seed when ``checkpoint`` is None (ignored otherwise).

    Notes
    -----
    :meth:`embed` takes one list of camera images per frame (see the module docstring).
    """

    max_batch = 64

    def __init__(
        self,
        name: str,
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        image_size: Sequence[int] | None = None,
        width: int | None = None,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.checkpoint = None if checkpoint is None else os.path.abspath(os.fspath(checkpoint))
        if self.checkpoint is None:
            self.width = DEFAULT_WIDTH if width is None else width
            self.seed = int(seed)
            self.model = build_backbone(self.width, seed=self.seed)
            trained_size: Sequence[int] = DEFAULT_SSL_IMAGE_SIZE
            logger.warning("%s: no checkpoint given, using random weights (seed %d)", name, seed)
        else:
            self.model, settings = load_backbone(self.checkpoint)
            if width is not None and width != settings["width"]:
                raise CheckpointError(
                    f"{name}: width={width} but checkpoint {self.checkpoint!r} holds a "
                    f"width-{settings['width']} network; leave width unset"
                )
            self.width = int(settings["width"])
            self.seed = 0
            trained_size = settings.get("image_size", DEFAULT_SSL_IMAGE_SIZE)
        self.image_size = _check_image_size(trained_size if image_size is None else image_size)
        self.model.eval()
        self.model.requires_grad_(False)
        self.dim = self.model.dim
        self._init_device()

    def config(self) -> dict[str, Any]:
        """Complete options: ``create_embedder(self.name, **self.config())`` rebuilds it."""
        return {
            "checkpoint": self.checkpoint,
            "image_size": list(self.image_size),
            "width": self.width,
            "seed": self.seed,
        }

    def image_features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Backbone features ``(len(images), dim)`` of single images (not normalised)."""
        out = np.empty((len(images), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(images), self.max_batch):
                chunk = list(images[start : start + self.max_batch])
                pixels = preprocess_images(
                    chunk, image_size=self.image_size, normalization=NORMALIZATION
                )
                features = self.model(pixels.to(self._device))
                out[start : start + len(chunk)] = features.float().cpu().numpy()
        return out


def image_ssl(**options: Any) -> ImageSSLEmbedder:
    """Self-supervised small-CNN image embedder (``8 * width``-d); see :class:`ImageSSLEmbedder`."""
    check_options("image-ssl", list(options), ["checkpoint", "image_size", "width", "seed"])
    return ImageSSLEmbedder("image-ssl", **options)
