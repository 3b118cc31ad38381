"""Which point patches are hidden from the encoder in masked point modelling.

Both strategies hide ``int(ratio * G)`` of the ``G`` patches of every cloud (as the official
``MaskTransformer``) and return a boolean ``(B, G)`` mask, ``True`` = masked:

* ``"rand"``: a uniformly random subset per cloud (Point-MAE / ReCon default);
* ``"block"``: a random seed patch and its ``int(ratio * G) - 1`` nearest patch centres (a
  contiguous hole, Point-MAE's ``_mask_center_block``).

Randomness comes only from the ``torch.Generator`` passed in, so a training step is reproducible
from its seed.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from embedders.errors import EmbedderError

__all__ = ["MASK_TYPES", "num_masked", "random_mask", "block_mask", "make_mask"]

logger = logging.getLogger(__name__)

MASK_TYPES = ("rand", "block")


def num_masked(num_group: int, ratio: float) -> int:
    """Number of masked patches, ``int(ratio * num_group)``; at least one patch stays visible."""
    if not 0.0 < ratio < 1.0:
        raise EmbedderError(f"mask_ratio={ratio!r} must be in (0, 1)")
    count = int(ratio * num_group)
    if count < 1 or count >= num_group:
        raise EmbedderError(
            f"mask_ratio={ratio} with num_group={num_group} masks {count} patches; "
            "need at least one masked and one visible patch"
        )
    return count


def random_mask(batch: int, num_group: int, ratio: float, generator: torch.Generator) -> Tensor:
    """``(batch, num_group)`` bool mask with ``num_masked`` random True entries per row.

    O(B*G log G) time (a random permutation per row via argsort of uniform noise).
    """
    count = num_masked(num_group, ratio)
    noise = torch.rand((batch, num_group), generator=generator)
    order = torch.argsort(noise, dim=1)
    mask = torch.zeros((batch, num_group), dtype=torch.bool)
    mask.scatter_(1, order[:, :count], True)
    return mask


def block_mask(centers: Tensor, ratio: float, generator: torch.Generator) -> Tensor:
    """Mask a random seed patch and its nearest patch centres (a contiguous block) per cloud.

    Parameters
    ----------
    centers : torch.Tensor
        ``(B, G, 3)`` patch centres.
    ratio : float
        Fraction of patches masked.
    generator : torch.Generator
        Source of the seed patches.

    Returns
    -------
    torch.Tensor
        ``(B, G)`` bool, ``num_masked`` True entries per row. O(B*G) memory.
    """
    batch, num_group, _ = centers.shape
    count = num_masked(num_group, ratio)
    seeds = torch.randint(0, num_group, (batch,), generator=generator)
    rows = torch.arange(batch)
    seed_points = centers.detach().cpu()[rows, seeds].unsqueeze(1)  # (B, 1, 3)
    distance = (centers.detach().cpu() - seed_points).pow(2).sum(-1)  # (B, G)
    order = torch.sort(distance, dim=1, stable=True).indices
    mask = torch.zeros((batch, num_group), dtype=torch.bool)
    mask.scatter_(1, order[:, :count], True)
    return mask


def make_mask(
    kind: str, centers: Tensor, ratio: float, generator: torch.Generator
) -> Tensor:
    """Dispatch on ``kind`` (``"rand"`` or ``"block"``); mask on the device of ``centers``."""
    if kind == "rand":
        mask = random_mask(centers.shape[0], centers.shape[1], ratio, generator)
    elif kind == "block":
        mask = block_mask(centers, ratio, generator)
    else:
        raise EmbedderError(f"unknown mask type {kind!r}; valid: {list(MASK_TYPES)}")
    return mask.to(centers.device)
