"""EMOC features in the prediction pass of :class:`curate.loop.mm3d.MMDet3DDetector`.

:class:`AnchorEmocProbe` hooks the last classification layer (``conv_cls``) of a
``ProbAnchor3DHead`` and keeps its input feature maps of the current batch; after the head's
decoding it gathers, for every box that survived NMS, the feature vector at the box's cell and
the box's anchor type (its parameter slot: rows ``a * C .. a * C + C - 1`` of ``conv_cls``),
and computes the frame's EMOC with :func:`curate.scoring.emoc` (definition there): the root of
the expected squared norm of the sigmoid cross-entropy gradient w.r.t. ``conv_cls`` (weights
and bias) on the frame's pseudo-labels, the expectation over each box's predicted class
distribution (classes + background).

Cost per frame: one forward hook (no extra forward or backward pass), O(n * Cin) to gather the
features of the ``n`` kept boxes and O(n * C * Cin) for the closed form; memory O(B * Cin * H *
W) for the batch's hooked feature maps (already computed by the forward pass).

With an ensemble or MC-dropout, the features are those of member 0's first pass and the class
scores the member mean that decided the kept boxes.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np

__all__ = ["AnchorEmocProbe"]

logger = logging.getLogger(__name__)


class AnchorEmocProbe:
    """Forward hook on an anchor head's ``conv_cls`` and the per-frame EMOC of its boxes.

    Parameters
    ----------
    head : ProbAnchor3DHead
        The head whose ``conv_cls`` is hooked (a 1 x 1 convolution).
    """

    def __init__(self, head: Any) -> None:
        conv = head.conv_cls
        if tuple(getattr(conv, "kernel_size", (1, 1))) != (1, 1):
            raise ValueError(f"EMOC expects a 1 x 1 conv_cls; got kernel {conv.kernel_size}")
        self.num_classes = int(head.num_classes)
        self.num_anchors = int(conv.out_channels) // self.num_classes
        self._maps: list[Any] = []
        self._armed = True
        self._handle = conv.register_forward_hook(self._hook)

    def _hook(self, module: Any, inputs: tuple, output: Any) -> None:
        if self._armed:
            self._maps.append(inputs[0].detach())

    def start_batch(self) -> None:
        """Forget the previous batch's maps; record the next forward's (member 0) levels."""
        self._maps = []
        self._armed = True

    def stop_recording(self) -> None:
        """Ignore further forwards of this batch (other members / MC passes)."""
        self._armed = False

    def close(self) -> None:
        """Remove the hook."""
        self._handle.remove()

    def frame_emoc(self, sample: int, result: Any) -> Optional[float]:
        """EMOC of batch sample ``sample`` from its decoded ``result`` (``anchor_index`` and
        ``cls_scores`` of the kept boxes); ``None`` when no feature map was recorded."""
        from curate.loop.uncertainty import class_distribution
        from curate.scoring import emoc

        import torch

        if not self._maps:
            return None
        index = result.anchor_index.detach().cpu().numpy().astype(np.int64)
        scores = result.cls_scores.detach().cpu().numpy().astype(np.float64).reshape(-1, self.num_classes)
        if index.size == 0:
            return 0.0
        feats = np.zeros((index.size, self._maps[0].shape[1]), dtype=np.float64)
        slots = np.zeros(index.size, dtype=np.int64)
        offset = 0
        for fmap in self._maps:  # one map per level, anchors numbered level by level
            _, _, height, width = fmap.shape
            size = height * width * self.num_anchors
            local = index - offset
            rows = np.flatnonzero((local >= 0) & (local < size))
            if rows.size:
                cell = local[rows] // self.num_anchors
                slots[rows] = local[rows] % self.num_anchors
                flat = fmap[sample].reshape(fmap.shape[1], -1)
                feats[rows] = flat[:, torch.from_numpy(cell)].T.cpu().numpy().astype(np.float64)
            offset += size
        probs = class_distribution(scores)[:, : self.num_classes]
        return emoc(scores, probs, feats, slots)
