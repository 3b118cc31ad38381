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

:class:`CenterEmocProbe` does the same for ``ProbCenterHead`` (CenterPoint): the hooked layers
are the tasks' last heatmap convs (``k x k``), a box's feature is the ``Cin * k * k`` input
patch at its cell and its slot its task.

With an ensemble or MC-dropout, the features are those of member 0's first pass and the class
scores the member mean that decided the kept boxes.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np

__all__ = ["AnchorEmocProbe", "CenterEmocProbe"]

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


class CenterEmocProbe:
    """EMOC for a ``ProbCenterHead`` (CenterPoint): hooks the last conv of every task's heatmap
    branch (``task_heads[t].heatmap[-1]``, a ``k x k`` conv, stride 1, padding ``k // 2``).

    A box of task ``t`` at heatmap cell ``(y, x)`` takes its class logits from that conv at
    ``(y, x)``: the gradient w.r.t. the conv's weights is the class residual times the
    ``Cin * k * k`` input patch around the cell (``unfold``), plus the bias. The parameter slot of
    a box is its task; its scores and pseudo-label distribution cover the task's classes only
    (the other tasks' columns are zero, which adds nothing), so :func:`curate.scoring.emoc`
    applies unchanged.

    Cost per frame: O(tasks * Cin * k^2 * H * W) for the unfold of the frame's maps, O(n * C *
    Cin * k^2) for the closed form.
    """

    def __init__(self, head: Any) -> None:
        self.convs = [task.heatmap[-1] for task in head.task_heads]
        for conv in self.convs:
            if tuple(conv.stride) != (1, 1) or tuple(conv.dilation) != (1, 1) or conv.padding != (conv.kernel_size[0] // 2, conv.kernel_size[1] // 2):
                raise ValueError("EMOC expects stride-1, undilated, 'same'-padded heatmap convs")
        self.task_classes = [int(conv.out_channels) for conv in self.convs]
        self.offsets = np.concatenate([[0], np.cumsum(self.task_classes)[:-1]]).astype(int).tolist()
        self._maps: dict[int, Any] = {}
        self._armed = True
        self._handles = [conv.register_forward_hook(self._hook_for(t)) for t, conv in enumerate(self.convs)]

    def _hook_for(self, task: int) -> Any:
        def hook(module: Any, inputs: tuple, output: Any) -> None:
            if self._armed and task not in self._maps:
                self._maps[task] = inputs[0].detach()

        return hook

    def start_batch(self) -> None:
        """Forget the previous batch; record the next forward's (member 0) maps."""
        self._maps = {}
        self._armed = True

    def stop_recording(self) -> None:
        """Ignore further forwards of this batch."""
        self._armed = False

    def close(self) -> None:
        """Remove the hooks."""
        for h in self._handles:
            h.remove()

    def frame_emoc(self, sample: int, result: Any) -> Optional[float]:
        """EMOC of batch sample ``sample`` from its decoded ``result`` (``cell_index``,
        ``task_index``, ``cls_scores``); ``None`` when no map was recorded."""
        import torch

        from curate.loop.uncertainty import class_distribution
        from curate.scoring import emoc

        if len(self._maps) != len(self.convs):
            return None
        cells = result.cell_index.detach().cpu().numpy().astype(np.int64)
        tasks = result.task_index.detach().cpu().numpy().astype(np.int64)
        all_scores = result.cls_scores.detach().cpu().numpy().astype(np.float64).reshape(cells.size, -1)
        if cells.size == 0:
            return 0.0
        n_feat = self.convs[0].in_channels * self.convs[0].kernel_size[0] * self.convs[0].kernel_size[1]
        feats = np.zeros((cells.size, n_feat), dtype=np.float64)
        scores = np.zeros_like(all_scores)
        probs = np.zeros_like(all_scores)
        for t, conv in enumerate(self.convs):
            rows = np.flatnonzero(tasks == t)
            if not rows.size:
                continue
            patches = torch.nn.functional.unfold(self._maps[t][sample:sample + 1], conv.kernel_size, padding=conv.padding)[0]
            feats[rows] = patches[:, torch.from_numpy(cells[rows])].T.cpu().numpy().astype(np.float64)
            cols = slice(self.offsets[t], self.offsets[t] + self.task_classes[t])
            scores[rows, cols] = all_scores[rows, cols]
            probs[rows, cols] = class_distribution(all_scores[rows, cols])[:, : self.task_classes[t]]
        return emoc(scores, probs, feats, tasks)
