"""Transformer layers of the ReCon point encoder: attention, cross-attention, MLP, ReCon block.

Module and parameter names follow ReCon's ``models/transformer.py`` so that official checkpoints
load without renaming (``attn.qkv``, ``attn.proj``, ``attn_contrast.{q,kv,proj}``, ``mlp.fc1``...).

The ReCon block splits the sequence into the 3 query tokens (cls, img, text) and the patch tokens.
Patch tokens go through self-attention and an MLP; query tokens cross-attend to the patch tokens
(keys/values from the patches, optionally detached) and go through their own MLP. Exactly as in
the official code, each branch first *replaces* its input by the normalised input and adds the
residual to that normalised tensor::

    q = norm1_contrast(q);  p = norm1(p)
    q = q + attn_contrast(q, p[.detach()]);  p = p + attn(p)
    q = norm2_contrast(q);  p = norm2(p)
    q = q + mlp_contrast(q);  p = p + mlp(p)

(so it is not the textbook pre-norm ``x + f(norm(x))``). Matching this is required for pretrained
weights to give the features they were trained for.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn
from torch.nn import functional

__all__ = [
    "Mlp",
    "Attention",
    "CrossAttention",
    "ReconBlock",
    "ReconTransformer",
    "NUM_QUERY_TOKENS",
]

logger = logging.getLogger(__name__)

#: Number of leading query tokens (cls, img, text) handled by the contrast branch.
NUM_QUERY_TOKENS = 3


class Mlp(nn.Module):
    """Two-layer perceptron ``fc1 -> GELU -> fc2``.

    Parameters
    ----------
    in_features : int
        Input and output size.
    hidden_features : int
        Hidden size.
    """

    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the MLP to ``(..., in_features)``."""
        return self.fc2(self.act(self.fc1(x)))


def _split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``(B, T, C)`` -> ``(B, H, T, C/H)``."""
    batch, tokens, channels = x.shape
    return x.reshape(batch, tokens, num_heads, channels // num_heads).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    """``(B, H, T, D)`` -> ``(B, T, H*D)``."""
    batch, heads, tokens, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, tokens, heads * head_dim)


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection.

    Parameters
    ----------
    dim : int
        Token size ``C`` (divisible by ``num_heads``).
    num_heads : int
        Number of heads.
    qkv_bias : bool, default False
        Bias on the ``qkv`` projection (ReCon: False).

    Notes
    -----
    Scale ``head_dim ** -0.5``; time O(B*T^2*C), memory O(B*H*T^2) for ``T`` tokens.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """Self-attend over ``(B, T, C)`` tokens."""
        batch, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, channels // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(_merge_heads(functional.scaled_dot_product_attention(q, k, v)))


class CrossAttention(nn.Module):
    """Multi-head cross-attention: queries from ``x``, keys and values from ``context``.

    Parameters
    ----------
    dim : int
        Token size ``C``.
    num_heads : int
        Number of heads.
    qkv_bias : bool, default False
        Bias on the ``q`` and ``kv`` projections.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """Attend from ``(B, Tq, C)`` queries to ``(B, Tk, C)`` context tokens."""
        batch, context_tokens, channels = context.shape
        kv = self.kv(context).reshape(
            batch, context_tokens, 2, self.num_heads, channels // self.num_heads
        )
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
        q = _split_heads(self.q(x), self.num_heads)
        return self.proj(_merge_heads(functional.scaled_dot_product_attention(q, k, v)))


class ReconBlock(nn.Module):
    """One ReCon transformer block (see the module docstring for the exact update).

    Parameters
    ----------
    dim : int
        Token size ``C``.
    num_heads : int
        Attention heads.
    mlp_ratio : float, default 4.0
        Hidden size of the MLPs relative to ``dim``.
    qkv_bias : bool, default False
        Bias on query/key/value projections.
    detach_context : bool, default False
        Stop gradients from the query branch into the patch tokens (ReCon pretraining: True;
        fine-tuning and feature extraction: False). No effect on forward values.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        detach_context: bool = False,
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.detach_context = detach_context
        # Registration order matches the official state dict order.
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm1_contrast = nn.LayerNorm(dim)
        self.norm2_contrast = nn.LayerNorm(dim)
        self.mlp_contrast = Mlp(dim, hidden)
        self.attn_contrast = CrossAttention(dim, num_heads, qkv_bias=qkv_bias)

    def forward(self, x: Tensor) -> Tensor:
        """Update ``(B, 3 + G, C)`` tokens (3 query tokens first)."""
        queries = self.norm1_contrast(x[:, :NUM_QUERY_TOKENS])
        patches = self.norm1(x[:, NUM_QUERY_TOKENS:])
        context = patches.detach() if self.detach_context else patches
        queries = queries + self.attn_contrast(queries, context)
        patches = patches + self.attn(patches)
        queries = self.norm2_contrast(queries)
        patches = self.norm2(patches)
        queries = queries + self.mlp_contrast(queries)
        patches = patches + self.mlp(patches)
        return torch.cat((queries, patches), dim=1)


class ReconTransformer(nn.Module):
    """A stack of :class:`ReconBlock`; every block is applied to ``x + pos``.

    Parameters
    ----------
    dim, depth, num_heads : int
        Token size, number of blocks, attention heads.
    mlp_ratio : float, default 4.0
    qkv_bias : bool, default False
    detach_context : bool, default False
        See :class:`ReconBlock`.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        detach_context: bool = False,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                ReconBlock(
                    dim,
                    num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    detach_context=detach_context,
                )
                for _ in range(depth)
            ]
        )

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        """Run all blocks on ``(B, T, C)`` tokens with ``(B, T, C)`` positional embeddings."""
        for block in self.blocks:
            x = block(x + pos)
        return x
