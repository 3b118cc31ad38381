"""ReCon point encoder (architecture-compatible with official ReCon checkpoints) and its embedder.

:class:`ReconEncoder` is the ``MAE_encoder`` / ``PointTransformerSVM`` point transformer of ReCon
(Qi et al., "Contrast with Reconstruct", ICML 2023) without heads: FPS + kNN patches, a
mini-PointNet tokenizer, learned positional embeddings of the patch centres, three query tokens
(cls, img, text) and ``depth`` ReCon blocks, then a final LayerNorm. Its ``state_dict`` names and
shapes equal the official checkpoint's ``MAE_encoder.*`` entries with the prefix removed.

:class:`ReconEmbedder` wraps it for scenes: :class:`embedders.preprocess.ScenePreprocessor` makes a
fixed-size normalised cloud per frame, the encoder runs in eval mode, and one of two pooled features
is returned:

* ``"svm"`` (default): ``cat[max(cls, img, text), max(patches) + mean(patches)]``, size ``2 C``
  (the official SVM linear-probe feature);
* ``"finetune"``: ``cat[cls, img, text, max(patches)]``, size ``4 C`` (the fine-tune head input).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from embedders.base import Embedder, check_options, resolve_device
from embedders.checkpoint import load_recon_checkpoint, state_dict_sha256
from embedders.errors import EmbedderError
from embedders.layers.grouping import PointGrouper
from embedders.layers.tokenizer import PatchTokenizer
from embedders.layers.transformer import NUM_QUERY_TOKENS, ReconTransformer
from embedders.preprocess import PreprocessConfig, ScenePreprocessor

__all__ = [
    "ReconConfig",
    "ReconEncoder",
    "ReconEmbedder",
    "RECON_SIZES",
    "FEATURES",
    "pool_features",
    "init_recon_weights",
    "recon_tiny",
    "recon_small",
    "recon_base",
]

logger = logging.getLogger(__name__)

#: (trans_dim, depth, num_heads) of the ReCon model sizes.
RECON_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (192, 12, 3),
    "small": (256, 12, 4),
    "base": (384, 12, 6),
}
#: Pooled feature kinds and their size as a multiple of trans_dim.
FEATURES: dict[str, int] = {"svm": 2, "finetune": 4}
#: Standard deviation of the truncated-normal initialisation (official ``_init_weights``).
INIT_STD = 0.02


@dataclass(frozen=True)
class ReconConfig:
    """Architecture of a ReCon point encoder.

    Attributes
    ----------
    trans_dim : int
        Token size ``C``.
    depth : int
        Number of ReCon blocks.
    num_heads : int
        Attention heads.
    num_group : int
        Patches per cloud ``G`` (official objects: 64; scenes default 256).
    group_size : int
        Points per patch ``k`` (official: 32).
    mlp_ratio : float
    qkv_bias : bool
    encoder_dims : int or None
        Tokenizer output size; None means ``trans_dim`` (as in every official config).
    """

    trans_dim: int
    depth: int
    num_heads: int
    num_group: int = 64
    group_size: int = 32
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    encoder_dims: int | None = None

    @classmethod
    def for_size(cls, size: str, **overrides: Any) -> ReconConfig:
        """Config of a named size (``"tiny"``, ``"small"``, ``"base"``) with overrides."""
        if size not in RECON_SIZES:
            raise EmbedderError(f"unknown ReCon size {size!r}; valid: {sorted(RECON_SIZES)}")
        trans_dim, depth, num_heads = RECON_SIZES[size]
        return cls(trans_dim=trans_dim, depth=depth, num_heads=num_heads, **overrides)


class ReconEncoder(nn.Module):
    """ReCon point transformer: ``(B, N, 3)`` clouds -> ``(B, 3 + G, C)`` normalised tokens.

    Parameters
    ----------
    config : ReconConfig

    Notes
    -----
    Per cloud: FPS O(N*G), kNN O(N*G) time with O(N*chunk) memory, tokenizer O(G*k*512^2),
    transformer O(depth*(G*C^2 + G^2*C)).
    """

    def __init__(self, config: ReconConfig) -> None:
        super().__init__()
        if config.trans_dim % config.num_heads:
            raise EmbedderError(
                f"trans_dim={config.trans_dim} must be divisible by num_heads={config.num_heads}"
            )
        self.config = config
        dim = config.trans_dim
        encoder_dims = config.encoder_dims or dim
        if encoder_dims != dim:
            raise EmbedderError(
                f"encoder_dims={encoder_dims} must equal trans_dim={dim} (as in ReCon)"
            )
        # Own parameters first: this is the official state dict order.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.img_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.text_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.img_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.text_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.group_divider = PointGrouper(config.num_group, config.group_size)
        self.encoder = PatchTokenizer(encoder_dims)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.blocks = ReconTransformer(
            dim,
            config.depth,
            config.num_heads,
            mlp_ratio=config.mlp_ratio,
            qkv_bias=config.qkv_bias,
        )
        self.norm = nn.LayerNorm(dim)

    def query_tokens(self, batch: int) -> tuple[Tensor, Tensor]:
        """The 3 query tokens and their positions, each ``(batch, 3, C)``."""
        tokens = torch.cat((self.cls_token, self.img_token, self.text_token), dim=1)
        pos = torch.cat((self.cls_pos, self.img_pos, self.text_pos), dim=1)
        return tokens.expand(batch, -1, -1), pos.expand(batch, -1, -1)

    def forward(self, points: Tensor) -> Tensor:
        """Encode ``(B, N, 3)`` clouds (unit-sphere scale) into ``(B, 3 + G, C)`` tokens."""
        neighbourhoods, centers = self.group_divider(points)
        return self.forward_patches(neighbourhoods, centers)

    def forward_patches(self, neighbourhoods: Tensor, centers: Tensor) -> Tensor:
        """Encode given patches ``(B, G, k, 3)`` (centred) with centres ``(B, G, 3)``."""
        patch_tokens = self.encoder(neighbourhoods)
        queries, query_pos = self.query_tokens(patch_tokens.shape[0])
        x = torch.cat((queries, patch_tokens), dim=1)
        pos = torch.cat((query_pos, self.pos_embed(centers)), dim=1)
        return self.norm(self.blocks(x, pos))


def pool_features(tokens: Tensor, feature: str) -> Tensor:
    """Pool ``(B, 3 + G, C)`` tokens into one vector per cloud.

    Parameters
    ----------
    tokens : torch.Tensor
        Encoder output; the first 3 tokens are cls, img, text.
    feature : {"svm", "finetune"}
        ``"svm"``: ``cat[max(cls, img, text), max(patches) + mean(patches)]`` (2C);
        ``"finetune"``: ``cat[cls, img, text, max(patches)]`` (4C).

    Returns
    -------
    torch.Tensor
        ``(B, 2C)`` or ``(B, 4C)``.
    """
    queries = tokens[:, :NUM_QUERY_TOKENS]
    patches = tokens[:, NUM_QUERY_TOKENS:]
    if feature == "svm":
        return torch.cat(
            [queries.max(dim=1).values, patches.max(dim=1).values + patches.mean(dim=1)], dim=-1
        )
    if feature == "finetune":
        return torch.cat(
            [queries[:, 0], queries[:, 1], queries[:, 2], patches.max(dim=1).values], dim=-1
        )
    raise EmbedderError(f"unknown feature {feature!r}; valid: {sorted(FEATURES)}")


def init_recon_weights(model: ReconEncoder, seed: int) -> None:
    """Deterministic random initialisation following the official ``_init_weights``.

    Linear and Conv1d weights truncated normal (std 0.02), biases 0; LayerNorm 1 / 0; BatchNorm
    defaults; the six query tokens / positions truncated normal (std 0.02). Uses its own
    ``torch.Generator`` seeded with ``seed``, so the result is the same in every process and does
    not touch the global RNG.
    """
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d)):
                nn.init.trunc_normal_(module.weight, std=INIT_STD, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm1d):
                module.reset_parameters()
        for name in ("cls_token", "cls_pos", "img_token", "text_token", "img_pos", "text_pos"):
            nn.init.trunc_normal_(getattr(model, name), std=INIT_STD, generator=generator)


def _check_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise EmbedderError(f"option {name}={value!r} must be an integer >= {minimum}")
    return value


class ReconEmbedder(Embedder):
    """Scene embedder built on :class:`ReconEncoder`.

    Parameters
    ----------
    name : str
        Registry name (``"recon-tiny"``...).
    size : {"tiny", "small", "base"}
        Model size (trans_dim 192 / 256 / 384, depth 12, heads 3 / 4 / 6).
    checkpoint : str or None, default None
        Path of an official ReCon pretraining checkpoint or one written by
        :func:`embedders.checkpoint.save_checkpoint`; None = deterministic random init from
        ``seed``.
    seed : int, default 0
        Random-init seed (when no checkpoint) and sampling seed of the preprocessing.
    feature : {"svm", "finetune"}, default "svm"
        Pooled feature, see :func:`pool_features`; dim is 2C or 4C.
    num_group : int, default 256
        Patches per scene (ReCon objects use 64; scenes have 8192 points by default).
    group_size : int, default 32
        Points per patch.
    **preprocess
        Options of :class:`embedders.preprocess.PreprocessConfig` (``crop``, ``half_extent``,
        ``z_min``, ``z_max``, ``remove_ground``, ``ground_cell``, ``ground_height``,
        ``voxel_size``, ``num_points``, ``sampling``, ``normalize``).

    Attributes
    ----------
    max_batch : int
        Clouds per forward pass inside :meth:`embed` (default 8; bounds memory). A runtime
        setting, not part of :meth:`config`: it does not change the vectors beyond float rounding.
    """

    modality = "points"
    max_batch = 8

    def __init__(
        self,
        name: str,
        size: str,
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        seed: int = 0,
        feature: str = "svm",
        num_group: int = 256,
        group_size: int = 32,
        **preprocess: Any,
    ) -> None:
        known = ["checkpoint", "seed", "feature", "num_group", "group_size"]
        check_options(name, list(preprocess), known + PreprocessConfig.option_names())
        if feature not in FEATURES:
            raise EmbedderError(f"{name}: feature={feature!r} is not one of {sorted(FEATURES)}")
        self.name = name
        self.size = size
        self.seed = _check_int("seed", seed, minimum=0)
        self.feature = feature
        self.preprocess_config = PreprocessConfig.from_options(preprocess)
        group_size = _check_int("group_size", group_size)
        num_group = _check_int("num_group", num_group)
        if group_size > self.preprocess_config.num_points:
            raise EmbedderError(
                f"{name}: group_size={group_size} exceeds "
                f"num_points={self.preprocess_config.num_points}"
            )
        self.model_config = ReconConfig.for_size(size, num_group=num_group, group_size=group_size)
        self.dim = FEATURES[feature] * self.model_config.trans_dim
        self.preprocessor = ScenePreprocessor(self.preprocess_config, seed=self.seed)
        # Built on the meta device, then materialised: every entry is set below (random init or
        # strict checkpoint load), so default initialisation would be wasted work and would
        # consume the global torch RNG.
        with torch.device("meta"):
            model = ReconEncoder(self.model_config)
        self.model = model.to_empty(device="cpu")
        if checkpoint is None:
            self.checkpoint: str | None = None
            init_recon_weights(self.model, self.seed)
        else:
            self.checkpoint = os.path.abspath(os.fspath(checkpoint))
            load_recon_checkpoint(self.model, self.checkpoint)
        self.model.eval()
        self._device = "cpu"
        self.to("auto")

    def config(self) -> dict[str, Any]:
        """Complete options: ``create_embedder(self.name, **self.config())`` rebuilds it."""
        return {
            "checkpoint": self.checkpoint,
            "seed": self.seed,
            "feature": self.feature,
            "num_group": self.model_config.num_group,
            "group_size": self.model_config.group_size,
            **self.preprocess_config.to_dict(),
        }

    def weights_sha256(self) -> str:
        """sha256 of the encoder state dict (see :func:`embedders.checkpoint.state_dict_sha256`).

        Recomputed on every call (O(parameters), ~0.1 s for base) so it follows any weight update.
        """
        return state_dict_sha256(self.model.state_dict())

    @property
    def device(self) -> str:
        """Device the encoder runs on."""
        return self._device

    def to(self, device: str) -> ReconEmbedder:
        """Move the encoder to ``device`` (``"auto"`` = CUDA when available, else CPU)."""
        resolved = resolve_device(device)
        self.model.to(resolved)
        self._device = resolved
        return self

    def _embed_clouds(self, clouds: list[np.ndarray]) -> np.ndarray:
        out = np.empty((len(clouds), self.dim), dtype=np.float32)
        with torch.inference_mode():
            step = _check_int("max_batch", self.max_batch)
            for start in range(0, len(clouds), step):
                chunk = clouds[start : start + step]
                points = np.empty(
                    (len(chunk), self.preprocess_config.num_points, 3), dtype=np.float32
                )
                for offset, cloud in enumerate(chunk):
                    points[offset] = self.preprocessor(cloud, start + offset)
                tokens = self.model(torch.from_numpy(points).to(self._device))
                out[start : start + len(chunk)] = (
                    pool_features(tokens, self.feature).float().cpu().numpy()
                )
        return out


def recon_tiny(**options: Any) -> ReconEmbedder:
    """ReCon-tiny scene embedder (trans_dim 192, 12 blocks, 3 heads); see :class:`ReconEmbedder`."""
    return ReconEmbedder("recon-tiny", "tiny", **options)


def recon_small(**options: Any) -> ReconEmbedder:
    """ReCon-small scene embedder (trans_dim 256, 12 blocks, 4 heads); see ReconEmbedder."""
    return ReconEmbedder("recon-small", "small", **options)


def recon_base(**options: Any) -> ReconEmbedder:
    """ReCon-base scene embedder (trans_dim 384, 12 blocks, 6 heads); see :class:`ReconEmbedder`.

    Architecture-compatible with the official ReCon base pretraining checkpoint.
    """
    return ReconEmbedder("recon-base", "base", **options)
