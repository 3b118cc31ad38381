"""Chamfer-L2 distance between small point sets (the masked-patch reconstruction loss).

Point-MAE / ReCon compare each reconstructed patch with its ground-truth patch by the Chamfer
distance with squared Euclidean distances (``ChamferDistanceL2``)::

    CD(P, Q) = mean_{p in P} min_{q in Q} |p - q|^2  +  mean_{q in Q} min_{p in P} |p - q|^2

averaged over all patch pairs. :func:`chamfer_l2` computes it in plain torch, in chunks of patch
pairs: the nearest-neighbour *indices* are found without autograd (one ``(chunk, n, m)`` distance
block at a time), then the squared distances to the chosen neighbours are recomputed with autograd
on ``(M, n)`` / ``(M, m)`` tensors. The gradient is that of the min (flowing to the nearest
point), exactly as with the official CUDA op, and autograd never keeps an ``M x n x m`` tensor.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from embedders.errors import EmbedderError

__all__ = ["chamfer_l2", "nearest_indices"]

logger = logging.getLogger(__name__)

#: Target number of float elements of one distance block (bounds peak memory).
CHAMFER_CHUNK_ELEMENTS = 1 << 22


def _check_sets(pred: Tensor, target: Tensor) -> None:
    for what, value in (("pred", pred), ("target", target)):
        if not isinstance(value, Tensor) or value.ndim != 3 or value.shape[-1] != 3:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise EmbedderError(f"chamfer_l2: {what} must be a (M, n, 3) tensor, got {shape}")
    if pred.shape[0] != target.shape[0]:
        raise EmbedderError(
            f"chamfer_l2: pred and target must hold the same number of sets, "
            f"got {pred.shape[0]} and {target.shape[0]}"
        )
    if pred.shape[1] == 0 or target.shape[1] == 0:
        raise EmbedderError("chamfer_l2: point sets must not be empty")


def nearest_indices(source: Tensor, reference: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """Index of the nearest ``reference`` point of every ``source`` point, set by set.

    Parameters
    ----------
    source : torch.Tensor
        ``(M, n, 3)``.
    reference : torch.Tensor
        ``(M, m, 3)``.
    chunk_size : int, optional
        Sets per distance block; default keeps a block near 4M floats.

    Returns
    -------
    torch.Tensor
        ``(M, n)`` int64 indices into ``m`` (ties: lowest index).

    Notes
    -----
    Time O(M*n*m); memory O(chunk*n*m). No autograd.
    """
    sets, n, _ = source.shape
    m = reference.shape[1]
    if chunk_size is None:
        chunk_size = max(1, CHAMFER_CHUNK_ELEMENTS // max(1, n * m))
    out = torch.empty((sets, n), dtype=torch.long, device=source.device)
    with torch.no_grad():
        for start in range(0, sets, chunk_size):
            stop = min(start + chunk_size, sets)
            a = source[start:stop].detach()
            b = reference[start:stop].detach()
            distance = (a.unsqueeze(2) - b.unsqueeze(1)).pow(2).sum(-1)  # (c, n, m)
            out[start:stop] = distance.argmin(dim=2)
    return out


def _distance_to(points: Tensor, reference: Tensor, index: Tensor) -> Tensor:
    """Squared distance of every point to ``reference[index]`` (with autograd): ``(M, n)``."""
    nearest = torch.gather(reference, 1, index.unsqueeze(-1).expand(-1, -1, 3))
    return (points - nearest).pow(2).sum(-1)


def chamfer_l2(pred: Tensor, target: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """Mean Chamfer-L2 distance between ``M`` pairs of point sets.

    Parameters
    ----------
    pred : torch.Tensor
        ``(M, n, 3)`` reconstructed sets.
    target : torch.Tensor
        ``(M, m, 3)`` ground-truth sets.
    chunk_size : int, optional
        Set pairs per nearest-neighbour block (results do not depend on it).

    Returns
    -------
    torch.Tensor
        Scalar: ``mean over pairs and points of min squared distance`` in both directions, summed
        (``ChamferDistanceL2`` of Point-MAE / ReCon).

    Raises
    ------
    EmbedderError
        Shapes that are not ``(M, *, 3)`` or a different ``M``.

    Notes
    -----
    Time O(M*n*m); memory O(chunk*n*m) for the search, O(M*(n+m)) kept for autograd.
    """
    _check_sets(pred, target)
    forward_index = nearest_indices(pred, target, chunk_size=chunk_size)
    backward_index = nearest_indices(target, pred, chunk_size=chunk_size)
    forward = _distance_to(pred, target, forward_index)
    backward = _distance_to(target, pred, backward_index)
    return forward.mean() + backward.mean()
