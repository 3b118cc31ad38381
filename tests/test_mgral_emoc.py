"""EMOC (curate.scoring.emoc and the anchor-head probe) against brute force: every joint
pseudo-labelling of a frame's boxes enumerated, the loss gradient taken by autograd."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from curate.errors import InvalidInputError
from curate.loop.uncertainty import class_distribution
from curate.scoring import emoc


class TinyAnchorHead(nn.Module):
    """A detector head's classification layer: a 1 x 1 conv with ``anchors * classes`` outputs."""

    def __init__(self, channels: int, anchors: int, classes: int) -> None:
        super().__init__()
        self.num_classes = classes
        self.conv_cls = nn.Conv2d(channels, anchors * classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_cls(x)


def _brute_force(head: TinyAnchorHead, fmap: torch.Tensor, sample: int, index: np.ndarray) -> float:
    """sqrt(E ||d loss / d conv_cls||^2) by enumerating every labelling of the boxes."""
    c = head.num_classes
    a_count = head.conv_cls.out_channels // c
    logits = head(fmap)[sample].permute(1, 2, 0).reshape(-1, c)  # row = cell * A + a
    with torch.no_grad():
        probs = class_distribution(torch.sigmoid(logits[torch.from_numpy(index)]).numpy())
    total = 0.0
    for labels in itertools.product(range(c + 1), repeat=len(index)):  # c = background
        weight = float(np.prod([probs[b, y] for b, y in enumerate(labels)]))
        target = torch.zeros(len(index), c, dtype=torch.float64)
        for b, y in enumerate(labels):
            if y < c:
                target[b, y] = 1.0
        head.zero_grad()
        z = head(fmap)[sample].permute(1, 2, 0).reshape(-1, c)[torch.from_numpy(index)]
        loss = nn.functional.binary_cross_entropy_with_logits(z.double(), target, reduction="sum")
        loss.backward()
        sq = float(head.conv_cls.weight.grad.double().pow(2).sum() + head.conv_cls.bias.grad.double().pow(2).sum())
        total += weight * sq
    assert a_count >= 1
    return float(np.sqrt(total))


@pytest.mark.parametrize("index", [[0, 7, 13], [5, 11], [2, 2 + 4 * 3, 9]])
def test_probe_emoc_equals_brute_force_enumeration(index):
    torch.manual_seed(0)
    anchors, classes, channels = 4, 3, 5
    head = TinyAnchorHead(channels, anchors, classes).double()
    fmap = torch.randn(2, channels, 3, 4, dtype=torch.float64)
    index = np.asarray(index)
    from curate.loop.mm3d.emoc import AnchorEmocProbe

    probe = AnchorEmocProbe(head)
    probe.start_batch()
    with torch.no_grad():
        logits = head(fmap)
    probe.close()
    sample = 1
    scores = torch.sigmoid(logits[sample].permute(1, 2, 0).reshape(-1, classes))[torch.from_numpy(index)]
    result = SimpleNamespace(anchor_index=torch.from_numpy(index), cls_scores=scores)
    got = probe.frame_emoc(sample, result)
    want = _brute_force(head, fmap, sample, index)
    assert got == pytest.approx(want, rel=1e-9)


def test_emoc_closed_form_matches_enumeration_with_shared_and_separate_slots():
    rng = np.random.default_rng(3)
    n, c, d = 3, 2, 4
    s = rng.uniform(0.05, 0.95, size=(n, c))
    q = class_distribution(s)[:, :c]
    f = rng.normal(size=(n, d))
    for slots in ([0, 0, 0], [0, 1, 0], [2, 1, 0]):
        slots = np.asarray(slots)
        x = np.concatenate([f, np.ones((n, 1))], axis=1)
        total = 0.0
        for labels in itertools.product(range(c + 1), repeat=n):
            w = np.prod([q[b, y] if y < c else 1 - q[b].sum() for b, y in enumerate(labels)])
            t = np.zeros((n, c))
            for b, y in enumerate(labels):
                if y < c:
                    t[b, y] = 1
            sq = 0.0
            for a in np.unique(slots):
                g = (s[slots == a] - t[slots == a]).T @ x[slots == a]
                sq += (g ** 2).sum()
            total += w * sq
        assert emoc(s, q, f, slots) == pytest.approx(np.sqrt(total), rel=1e-12)


def test_emoc_edge_cases_and_errors():
    assert emoc(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 8))) == 0.0
    # a confident box whose label is certain changes nothing: gradient 0
    assert emoc(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]), np.ones((1, 3))) == pytest.approx(0.0)
    with pytest.raises(InvalidInputError, match="label_probs"):
        emoc(np.full((1, 2), 0.5), np.full((1, 2), 0.8), np.ones((1, 3)))
    with pytest.raises(InvalidInputError, match=r"\(n, C\)"):
        emoc(np.full((2, 2), 0.5), np.full((1, 2), 0.2), np.ones((2, 3)))


needs_mm3d = pytest.mark.skipif(
    not __import__("curate.loop.mm3d", fromlist=["mm3d_available"]).mm3d_available(),
    reason="the mmdet3d stack is not installed (make mm3d)",
)


@needs_mm3d
def test_centerpoint_probe_emoc_equals_brute_force_on_the_real_tiny_head():
    """centerpoint-tiny's ProbCenterHead (two tasks, 3 x 3 heatmap convs): the probe's EMOC of
    three boxes equals the enumeration over their labels of the autograd gradient norm of every
    task's last heatmap conv."""
    from curate.loop.mm3d import MMDet3DDetector
    from curate.loop.mm3d.emoc import CenterEmocProbe

    torch.manual_seed(0)
    head = MMDet3DDetector("centerpoint-tiny").load_model(None).pts_bbox_head.double()
    x = torch.randn(1, 96, 6, 7, dtype=torch.float64)
    probe = CenterEmocProbe(head)
    probe.start_batch()
    with torch.no_grad():
        outs = head.forward_single(x)
    probe.close()
    cells = np.array([3, 20, 41])  # y * W + x (a border cell included: zero padding)
    tasks = np.array([0, 0, 1])
    heat = torch.cat([o["heatmap"] for o in outs], dim=1)[0].flatten(1)  # (C, H*W) logits
    scores = torch.sigmoid(heat[:, torch.from_numpy(cells)].T)
    result = SimpleNamespace(cell_index=torch.from_numpy(cells), task_index=torch.from_numpy(tasks), cls_scores=scores)
    got = probe.frame_emoc(0, result)

    offsets, sizes = [0, 2], [2, 1]
    convs = [t.heatmap[-1] for t in head.task_heads]
    dists = [class_distribution(scores[b, offsets[t]:offsets[t] + sizes[t]].numpy()) for b, t in enumerate(tasks)]
    total = 0.0
    for labels in itertools.product(*[range(sizes[t] + 1) for t in tasks]):
        weight = float(np.prod([dists[b][y] for b, y in enumerate(labels)]))
        head.zero_grad()
        logits = torch.cat([o["heatmap"] for o in head.forward_single(x)], dim=1)[0].flatten(1)
        loss = 0.0
        for b, (t, y) in enumerate(zip(tasks, labels)):
            z = logits[offsets[t]:offsets[t] + sizes[t], cells[b]]
            target = torch.zeros(sizes[t], dtype=torch.float64)
            if y < sizes[t]:
                target[y] = 1.0
            loss = loss + nn.functional.binary_cross_entropy_with_logits(z, target, reduction="sum")
        loss.backward()
        total += weight * float(sum(c.weight.grad.pow(2).sum() + c.bias.grad.pow(2).sum() for c in convs))
    assert got == pytest.approx(np.sqrt(total), rel=1e-8)
