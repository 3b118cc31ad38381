"""Two-view image augmentation for SimCLR, batched in torch (no torchvision).

:func:`augment` takes a batch of uint8 ``(B, H, W, 3)`` images and returns normalised float
``(B, 3, H, W)`` views, every random draw coming from the given :class:`torch.Generator`:

1. **random resized crop** -- area fraction ``s ~ U(crop_scale)`` and aspect
   ``r ~ logU(crop_ratio)`` relative to the canvas aspect, so the crop spans
   ``sqrt(s r) x sqrt(s / r)`` of the width and height (clipped to 1), at a uniform position
   inside the image; resampled back to ``H x W`` by bilinear ``grid_sample`` (one affine grid per
   image);
2. **horizontal flip** with probability ``flip`` (a negative x scale of the same grid);
3. **colour jitter** -- brightness ``x * b``, contrast ``(x - mean) * c + mean`` (mean of the
   image's luminance), saturation ``(x - lum) * s + lum``, each factor ``~ U(1 - j, 1 + j)``,
   then clamped to ``[0, 1]``; **grey** with probability ``grayscale``;
4. normalisation ``(255 x - 127) / 128`` (the ``"tf-lite"`` scaling of the embedders).

Time and memory O(B * H * W).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from embedders.pretrain_image.config import AugmentSection

__all__ = ["augment", "normalise", "LUMA"]

logger = logging.getLogger(__name__)

#: ITU-R BT.601 luma weights (as PIL's ``convert("L")``).
LUMA = (0.299, 0.587, 0.114)


def normalise(images: Tensor) -> Tensor:
    """``[0, 1]`` float ``(B, 3, H, W)`` -> the ``"tf-lite"`` input scaling ``(255 x - 127) / 128``."""
    return (images * 255.0 - 127.0) / 128.0


def _uniform(low: float, high: float, count: int, generator: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def _luminance(images: Tensor) -> Tensor:
    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def augment(images: Tensor, params: AugmentSection, generator: torch.Generator) -> Tensor:
    """One augmented, normalised view of each image.

    Parameters
    ----------
    images : torch.Tensor
        uint8 ``(B, H, W, 3)`` (CPU); the output has the same ``H x W``.
    params : AugmentSection
        Crop, flip and colour settings.
    generator : torch.Generator
        CPU generator: the only source of randomness (seed it for reproducible views).

    Returns
    -------
    torch.Tensor
        float32 ``(B, 3, H, W)``.
    """
    batch, height, width, _ = images.shape
    pixels = images.permute(0, 3, 1, 2).float() / 255.0
    area = _uniform(*params.crop_scale, batch, generator)
    log_ratio = _uniform(math.log(params.crop_ratio[0]), math.log(params.crop_ratio[1]), batch, generator)
    ratio = torch.exp(log_ratio)
    span_x = torch.sqrt(area * ratio).clamp(max=1.0)
    span_y = torch.sqrt(area / ratio).clamp(max=1.0)
    centre_x = (1.0 - span_x) * (2.0 * torch.rand(batch, generator=generator) - 1.0)
    centre_y = (1.0 - span_y) * (2.0 * torch.rand(batch, generator=generator) - 1.0)
    flip = torch.rand(batch, generator=generator) < params.flip
    sign = torch.where(flip, -1.0, 1.0)
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = span_x * sign
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = span_y
    theta[:, 1, 2] = centre_y
    grid = F.affine_grid(theta, [batch, 3, height, width], align_corners=False)
    views = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)

    brightness = _uniform(1 - params.brightness, 1 + params.brightness, batch, generator)
    contrast = _uniform(1 - params.contrast, 1 + params.contrast, batch, generator)
    saturation = _uniform(1 - params.saturation, 1 + params.saturation, batch, generator)
    grey = torch.rand(batch, generator=generator) < params.grayscale
    views = (views * brightness.view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    mean = _luminance(views).mean(dim=(2, 3), keepdim=True)
    views = ((views - mean) * contrast.view(-1, 1, 1, 1) + mean).clamp(0.0, 1.0)
    luma = _luminance(views)
    views = ((views - luma) * saturation.view(-1, 1, 1, 1) + luma).clamp(0.0, 1.0)
    if bool(grey.any()):
        views = torch.where(grey.view(-1, 1, 1, 1), _luminance(views).expand_as(views), views)
    return normalise(views)
