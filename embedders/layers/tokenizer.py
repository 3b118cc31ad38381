"""Mini-PointNet patch tokenizer (Point-MAE / ReCon ``Encoder``).

Each patch of ``k`` points (already relative to its centre) becomes one ``C``-dimensional token:
``first_conv`` lifts points to 256 features, a max over the patch gives a patch feature that is
concatenated back onto every point (512), ``second_conv`` maps to ``C`` and a second max over the
patch gives the token. Parameter names (``first_conv.{0,1,3}``, ``second_conv.{0,1,3}``) match the
official checkpoints.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

__all__ = ["PatchTokenizer"]

logger = logging.getLogger(__name__)


class PatchTokenizer(nn.Module):
    """Mini-PointNet mapping ``(B, G, k, 3)`` patches to ``(B, G, C)`` tokens.

    Parameters
    ----------
    encoder_channel : int
        Output token size ``C`` (``encoder_dims`` in ReCon configs, equal to ``trans_dim``).

    patches_per_chunk : int, default 512
        In eval mode, patches are processed this many at a time to bound peak memory (results
        do not depend on it). In training mode all patches go through at once so BatchNorm sees
        the whole batch.

    Notes
    -----
    Cost O(B*G*k*(512*512 + 512*C)) multiply-adds; memory O(chunk*k*512) in eval mode.
    """

    def __init__(self, encoder_channel: int, patches_per_chunk: int = 512) -> None:
        super().__init__()
        self.encoder_channel = encoder_channel
        self.patches_per_chunk = patches_per_chunk
        self.first_conv = nn.Sequential(
            nn.Conv1d(3, 128, 1),
            nn.BatchNorm1d(128),
            nn.ReLU(inplace=True),
            nn.Conv1d(128, 256, 1),
        )
        self.second_conv = nn.Sequential(
            nn.Conv1d(512, 512, 1),
            nn.BatchNorm1d(512),
            nn.ReLU(inplace=True),
            nn.Conv1d(512, encoder_channel, 1),
        )

    def forward(self, patches: Tensor) -> Tensor:
        """Return ``(B, G, C)`` tokens for ``(B, G, k, 3)`` centred patches."""
        batch, groups, size, _ = patches.shape
        points = patches.reshape(batch * groups, size, 3).transpose(2, 1)
        if self.training or points.shape[0] <= self.patches_per_chunk:
            tokens = self._tokens(points)
        else:
            tokens = torch.cat(
                [self._tokens(chunk) for chunk in torch.split(points, self.patches_per_chunk)],
                dim=0,
            )
        return tokens.reshape(batch, groups, self.encoder_channel)

    def _tokens(self, points: Tensor) -> Tensor:
        """``(P, 3, k)`` patch points -> ``(P, C)`` tokens."""
        size = points.shape[2]
        feature = self.first_conv(points)  # (BG, 256, k)
        patch_feature = feature.max(dim=2, keepdim=True).values  # (BG, 256, 1)
        feature = torch.cat([patch_feature.expand(-1, -1, size), feature], dim=1)  # (BG, 512, k)
        feature = self.second_conv(feature)  # (BG, C, k)
        return feature.max(dim=2).values  # (BG, C)
