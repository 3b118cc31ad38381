"""ReCon-style pretraining model for scenes: masked point modelling + cross-modal + contrast heads.

:class:`ReconPretrainModel` wraps the feature encoder :class:`embedders.models.recon.ReconEncoder`
under the official attribute name ``MAE_encoder`` and adds the pretraining-only parts of ReCon
(``models/ReCon.py``) with the official parameter names, so ``state_dict()`` is laid out like an
official ReCon pretraining checkpoint (section [B] and [C] of the reference key list):

* ``mask_token`` ``(1, 1, C)``, ``decoder_pos_embed.{0,2}`` (Linear 3->128->C),
  ``MAE_decoder.blocks.i.{norm1,norm2,mlp,attn}`` + ``MAE_decoder.norm`` (Point-MAE decoder),
  ``increase_dim.0`` (Conv1d C -> 3k): the masked point modelling branch;
* ``img_proj`` (Linear C -> teacher dim): the cross-modal regression head of the ``img`` query;
* the contrastive head, only with the contrastive term: ``cls_proj`` (Linear C -> 128, ReCon's
  ``self_contrastive``) when it contrasts cls tokens, or ``contrast_head`` (MLP C -> C -> 128)
  when it contrasts the pooled patch tokens (see below).

One training step (:meth:`ReconPretrainModel.losses`):

1. FPS + kNN split each ``(B, N, 3)`` cloud into ``G`` patches of ``k`` points;
2. ``int(mask_ratio * G)`` patches are masked (random or block, :mod:`.masking`);
3. every patch is tokenised (the mini-PointNet sees the whole batch, for BatchNorm, as
   officially), only the *visible* tokens plus the 3 query tokens (cls, img, text) go through the
   ReCon blocks; the query tokens read the patches through cross-attention with stop-gradient
   (``detach_context=True``), as in ReCon pretraining;
4. the decoder takes the visible tokens followed by one ``mask_token`` per masked patch (with
   ``decoder_pos_embed`` of all centres), ``increase_dim`` turns each masked token into ``k``
   points, and the loss is the Chamfer-L2 distance to the true patch (:func:`.chamfer.chamfer_l2`);
5. ``img_proj(img token)`` regresses the frozen image teacher's feature of the frame's camera
   image with the **cosine distance** ``1 - cos`` (chosen over smooth-L1: invariant to the
   teacher's feature scale, bounded in [0, 2], no threshold to tune);
6. optionally, two views are contrasted with symmetric InfoNCE (negatives: the other frames of
   the batch; a ``B x B`` matrix per step), on ``contrast_on``:

   * ``"patches"`` (default): ``max + mean`` of all patch tokens of each whole (unmasked) view (the patch part of the
     ``svm`` feature) through ``contrast_head``. The gradient reaches the tokenizer and the patch
     path of every block, i.e. the tokens the embedder's features pool;
   * ``"cls"``: the cls token through ``cls_proj``, as ReCon's ``self_contrastive``. The cls
     token reads the patches through stop-gradient cross attention, so this term only trains
     the query branch; on scene clouds it fell to chance (``ln B``) within a few hundred steps
     while sharing that branch with the image regression (measured on 3000 synthetic frames).
 The trainer makes the views either
   two augmentations of one frame (``contrast_pairs = "augment"``) or an augmentation of the
   frame and one of a temporal neighbour from the same drive (``"temporal"``, see
   :class:`embedders.pretrain.data.TemporalNeighbours`).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn
from torch.nn import functional

from embedders.errors import EmbedderError
from embedders.layers.transformer import NUM_QUERY_TOKENS, Attention, Mlp
from embedders.models.recon import INIT_STD, ReconConfig, ReconEncoder, init_recon_weights
from embedders.pretrain.chamfer import chamfer_l2
from embedders.pretrain.masking import make_mask

__all__ = [
    "DecoderBlock",
    "TransformerDecoder",
    "ReconPretrainModel",
    "build_pretrain_model",
    "info_nce",
    "cosine_distance",
    "CONTRAST_DIM",
    "CONTRAST_ON",
]

logger = logging.getLogger(__name__)

#: Output size of the contrastive heads.
CONTRAST_DIM = 128
#: What the contrastive term compares: pooled patch tokens or the cls token.
CONTRAST_ON = ("patches", "cls")


class DecoderBlock(nn.Module):
    """Point-MAE transformer block (pre-norm): ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    Parameter names (``norm1``, ``norm2``, ``mlp.fc1/fc2``, ``attn.qkv/proj``) and registration
    order follow the official ``MAE_decoder.blocks.i`` entries.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.attn = Attention(dim, num_heads, qkv_bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """Update ``(B, T, C)`` tokens."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerDecoder(nn.Module):
    """Point-MAE ``TransformerDecoder``: blocks on ``x + pos``, LayerNorm of the last tokens.

    Parameters
    ----------
    dim, depth, num_heads : int
    """

    def __init__(self, dim: int, depth: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise EmbedderError(f"decoder: dim={dim} must be divisible by num_heads={num_heads}")
        self.blocks = nn.ModuleList([DecoderBlock(dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, pos: Tensor, return_token_num: int) -> Tensor:
        """Decode ``(B, T, C)``; return the normalised last ``return_token_num`` tokens."""
        for block in self.blocks:
            x = block(x + pos)
        return self.norm(x[:, -return_token_num:])


def cosine_distance(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean ``1 - cos(prediction_i, target_i)`` over rows (0 = aligned, 2 = opposite)."""
    return (1.0 - functional.cosine_similarity(prediction, target, dim=-1, eps=1e-8)).mean()


def info_nce(first: Tensor, second: Tensor, temperature: float) -> Tensor:
    """Symmetric InfoNCE between two ``(B, D)`` batches whose rows ``i`` are positives.

    O(B^2 * D) time, O(B^2) memory (one batch, never the dataset).
    """
    first = functional.normalize(first, dim=-1)
    second = functional.normalize(second, dim=-1)
    logits = first @ second.t() / temperature
    labels = torch.arange(first.shape[0], device=first.device)
    return 0.5 * (
        functional.cross_entropy(logits, labels) + functional.cross_entropy(logits.t(), labels)
    )


class ReconPretrainModel(nn.Module):
    """ReCon pretraining network for scene clouds (see the module docstring).

    Parameters
    ----------
    config : ReconConfig
        Encoder architecture (size, ``num_group``, ``group_size``).
    decoder_depth : int
        MAE decoder blocks.
    decoder_num_heads : int
        MAE decoder heads.
    mask_ratio : float
        Fraction of patches masked.
    mask_type : {"rand", "block"}
    teacher_dim : int or None
        Size of the image teacher's features; None = no ``img_proj`` head (no cross-modal term).
    contrast : bool
        Add the head of the contrastive term.
    contrast_on : {"patches", "cls"}
        What the contrastive term compares (see the module docstring).

    Notes
    -----
    Per cloud and step: grouping O(N*G), tokenizer O(G*k*512^2), encoder over
    ``3 + (1 - mask_ratio) G`` tokens, decoder over ``G`` tokens, Chamfer O(G*k^2).
    """

    def __init__(
        self,
        config: ReconConfig,
        *,
        decoder_depth: int = 4,
        decoder_num_heads: int = 6,
        mask_ratio: float = 0.6,
        mask_type: str = "rand",
        teacher_dim: int | None = None,
        contrast: bool = False,
        contrast_on: str = "patches",
    ) -> None:
        super().__init__()
        if contrast_on not in CONTRAST_ON:
            raise EmbedderError(f"contrast_on={contrast_on!r} is not one of {list(CONTRAST_ON)}")
        self.contrast_on = contrast_on
        dim = config.trans_dim
        self.config = config
        self.mask_ratio = float(mask_ratio)
        self.mask_type = mask_type
        self.teacher_dim = teacher_dim
        self.MAE_encoder = ReconEncoder(config)
        for block in self.MAE_encoder.blocks.blocks:
            block.detach_context = True  # ReCon pretraining: stop-gradient cross attention
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.MAE_decoder = TransformerDecoder(dim, decoder_depth, decoder_num_heads)
        self.increase_dim = nn.Sequential(nn.Conv1d(dim, 3 * config.group_size, 1))
        if teacher_dim is not None:
            self.img_proj = nn.Linear(dim, int(teacher_dim))
        if contrast and contrast_on == "cls":
            self.cls_proj = nn.Linear(dim, CONTRAST_DIM)
        elif contrast:
            self.contrast_head = nn.Sequential(
                nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, CONTRAST_DIM)
            )

    @property
    def encoder(self) -> ReconEncoder:
        """The feature encoder (what the checkpoint's ``MAE_encoder.*`` entries hold)."""
        return self.MAE_encoder

    def encode_visible(
        self, neighbourhoods: Tensor, centers: Tensor, mask: Tensor, tokens: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Encode the visible patches.

        Parameters
        ----------
        neighbourhoods : torch.Tensor
            ``(B, G, k, 3)`` centred patches.
        centers : torch.Tensor
            ``(B, G, 3)``.
        mask : torch.Tensor
            ``(B, G)`` bool, True = masked; the same count per row.
        tokens : torch.Tensor, optional
            ``(B, G, C)`` tokenizer output of ``neighbourhoods`` when already computed.

        Returns
        -------
        queries : torch.Tensor
            ``(B, 3, C)`` cls, img, text tokens.
        visible : torch.Tensor
            ``(B, V, C)`` visible patch tokens, in patch order.
        """
        encoder = self.MAE_encoder
        if tokens is None:
            tokens = encoder.encoder(neighbourhoods)
        batch, _, dim = tokens.shape
        visible = tokens[~mask].reshape(batch, -1, dim)
        visible_centers = centers[~mask].reshape(batch, -1, 3)
        queries, query_pos = encoder.query_tokens(batch)
        x = torch.cat((queries, visible), dim=1)
        pos = torch.cat((query_pos, encoder.pos_embed(visible_centers)), dim=1)
        x = encoder.norm(encoder.blocks(x, pos))
        return x[:, :NUM_QUERY_TOKENS], x[:, NUM_QUERY_TOKENS:]

    def reconstruct(
        self, visible: Tensor, centers: Tensor, mask: Tensor
    ) -> Tensor:
        """Predict the masked patches: ``(B * M, k, 3)`` points, relative to their centres."""
        batch, _, dim = visible.shape
        pos_visible = self.decoder_pos_embed(centers[~mask]).reshape(batch, -1, dim)
        pos_masked = self.decoder_pos_embed(centers[mask]).reshape(batch, -1, dim)
        masked = pos_masked.shape[1]
        x = torch.cat((visible, self.mask_token.expand(batch, masked, -1)), dim=1)
        pos = torch.cat((pos_visible, pos_masked), dim=1)
        decoded = self.MAE_decoder(x, pos, masked)  # (B, M, C)
        points = self.increase_dim(decoded.transpose(1, 2)).transpose(1, 2)
        return points.reshape(batch * masked, -1, 3)

    def losses(
        self,
        points: Tensor,
        generator: torch.Generator,
        *,
        teacher: Tensor | None = None,
        second_view: Tensor | None = None,
        temperature: float = 0.1,
    ) -> dict[str, Tensor]:
        """Unweighted loss terms of one batch.

        Parameters
        ----------
        points : torch.Tensor
            ``(B, N, 3)`` clouds (unit-sphere scale).
        generator : torch.Generator
            CPU generator of the masks (seeded per step by the trainer).
        teacher : torch.Tensor, optional
            ``(B, teacher_dim)`` frozen image features; needs the ``img_proj`` head.
        second_view : torch.Tensor, optional
            ``(B, N, 3)`` second view of the same frames; needs the contrastive head.
        temperature : float
            InfoNCE temperature.

        Returns
        -------
        dict of str to torch.Tensor
            ``"reconstruction"`` always; ``"image"`` with ``teacher``; ``"contrast"`` with
            ``second_view``. Scalars.
        """
        neighbourhoods, centers = self.MAE_encoder.group_divider(points)
        mask = make_mask(self.mask_type, centers, self.mask_ratio, generator)
        tokens = self.MAE_encoder.encoder(neighbourhoods)
        queries, visible = self.encode_visible(neighbourhoods, centers, mask, tokens=tokens)
        rebuilt = self.reconstruct(visible, centers, mask)
        target = neighbourhoods[mask].reshape(rebuilt.shape[0], -1, 3)
        out = {"reconstruction": chamfer_l2(rebuilt, target)}
        if teacher is not None:
            if not hasattr(self, "img_proj"):
                raise EmbedderError("teacher features given but the model has no img_proj head")
            out["image"] = cosine_distance(self.img_proj(queries[:, 1]), teacher)
        if second_view is not None:
            if not (hasattr(self, "cls_proj") or hasattr(self, "contrast_head")):
                raise EmbedderError("second view given but the model has no contrastive head")
            neighbourhoods2, centers2 = self.MAE_encoder.group_divider(second_view)
            if self.contrast_on == "cls":
                mask2 = make_mask(self.mask_type, centers2, self.mask_ratio, generator)
                queries2, _ = self.encode_visible(neighbourhoods2, centers2, mask2)
                first, second = self.cls_proj(queries[:, 0]), self.cls_proj(queries2[:, 0])
            else:
                # both views whole (no masking): the views already differ by augmentation or
                # time, and two random 40% subsets of the patches pool to vectors too unlike
                # each other to be told apart from other frames
                whole = torch.zeros_like(mask)
                _, patches = self.encode_visible(neighbourhoods, centers, whole, tokens=tokens)
                _, patches2 = self.encode_visible(neighbourhoods2, centers2, whole)
                first = self.contrast_head(patches.max(dim=1).values + patches.mean(dim=1))
                second = self.contrast_head(patches2.max(dim=1).values + patches2.mean(dim=1))
            out["contrast"] = info_nce(first, second, temperature)
        return out


def _init_heads(model: ReconPretrainModel, seed: int) -> None:
    """Truncated-normal init (std 0.02) of everything outside the encoder, from its own generator."""
    generator = torch.Generator().manual_seed(int(seed) + 1)
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.startswith("MAE_encoder"):
                continue
            if isinstance(module, (nn.Linear, nn.Conv1d)):
                nn.init.trunc_normal_(module.weight, std=INIT_STD, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(model.mask_token, std=INIT_STD, generator=generator)


def build_pretrain_model(
    config: ReconConfig,
    *,
    seed: int,
    decoder_depth: int,
    decoder_num_heads: int,
    mask_ratio: float,
    mask_type: str,
    teacher_dim: int | None,
    contrast: bool,
    contrast_on: str = "patches",
) -> ReconPretrainModel:
    """Build a :class:`ReconPretrainModel` with deterministic weights for ``seed`` on CPU.

    Built on the meta device and materialised, then every entry is initialised from generators
    seeded with ``seed`` (the encoder exactly as ``create_embedder(..., seed=seed)`` would), so
    the global torch RNG is not touched.
    """
    with torch.device("meta"):
        model = ReconPretrainModel(
            config,
            decoder_depth=decoder_depth,
            decoder_num_heads=decoder_num_heads,
            mask_ratio=mask_ratio,
            mask_type=mask_type,
            teacher_dim=teacher_dim,
            contrast=contrast,
            contrast_on=contrast_on,
        )
    model = model.to_empty(device="cpu")
    init_recon_weights(model.MAE_encoder, seed)
    _init_heads(model, seed)
    return model
