"""ReCon point encoder (architecture-compatible with official ReCon checkpoints) and its embedder.

:class:`ReconEncoder` is the ``MAE_encoder`` / ``PointTransformerSVM`` point transformer of ReCon
(Qi et al., "Contrast with Reconstruct", ICML 2023) without heads: FPS + kNN patches, a
mini-PointNet tokenizer, learned positional embeddings of the patch centres, three query tokens
(cls, img, text) and ``depth`` ReCon blocks, then a final LayerNorm. Its ``state_dict`` names and
shapes equal the official checkpoint's ``MAE_encoder.*`` entries with the prefix removed.

:class:`ReconEmbedder` wraps it for scenes: :class:`embedders.preprocess.ScenePreprocessor` makes a
fixed-size normalised cloud per frame, the encoder runs in eval mode, and one of four pooled
features is returned:

* ``"svm"``: ``cat[max(cls, img, text), max(patches) + mean(patches)]``, size ``2 C``
  (the official SVM linear-probe feature);
* ``"finetune"``: ``cat[cls, img, text, max(patches)]``, size ``4 C`` (the fine-tune head input);
* ``"cls"``: the cls token alone, size ``C`` (what the contrastive term of pretraining trains);
* ``"svm-bev"`` (default, ``bev_grid=8``): the svm feature plus a **layout-keeping** part: the
  patch tokens are averaged on a ``bev_grid`` x ``bev_grid`` bird's-eye grid fixed in the
  sensor frame (cells tile the crop square; a patch goes to the cell of its centre; empty cells
  are 0), flattened in (x, y) cell order. Both parts are L2-normalised per frame and
  concatenated with weight ``1/sqrt(2)`` each (unit norm), raw size ``2 C + bev_grid^2 C``
  (12672 for tiny), then reduced to ``project_dim`` (1024) by a fixed seeded Gaussian random
  projection. Max and mean pooling keep no explicit record of *where* in the scene a patch was
  (only what the positional embedding left in its token); the grid keeps it, the same reason a
  bird's-eye occupancy histogram is a strong hand-crafted baseline.

Why these defaults (``benchmarks/embedders.py``; first 1000 synthetic frames / 25 drives, kNN
k=10; recon-tiny pretrained with masked modelling + image distillation + temporal contrast,
step 1500; drive = leave-one-out drive accuracy, near-dup = recall@10 of frames of the same
drive within +-5 indices):

==========================  =====  ========  ==========
tokenization / feature      drive  near-dup  frames/s *
==========================  =====  ========  ==========
1024 pts / 32 patches, svm  0.795     0.366        22.6
1024 / 32, svm-bev grid 3   0.869     0.497        21.6
1024 / 32, svm-bev grid 8   0.948     0.523        22.6
2048 / 128, svm             0.886     0.514         5.4
2048 / 128, svm-bev grid 3  0.936     0.654         5.6
2048 / 128, svm-bev grid 8  0.995     0.750         5.4
  same, projected to 1024   0.993     0.743
bev-hist (hand-crafted)     0.971     0.715
==========================  =====  ========  ==========

(* one thread, machine shared with a training run.) The encoder is trained at 1024 / 32
(cheap) and reads better at the denser 2048 / 128 (patches of ~3 m instead of ~9 m); a finer
grid keeps more layout; the projection loses <= 0.007. ``feature="svm"`` gives the official
2C vector.
"""

from __future__ import annotations

import logging
import math
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
    "bev_grid_pool",
    "feature_dim",
    "random_projection",
    "PROJECTION_SEED",
    "DEFAULT_NUM_POINTS",
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
#: Pooled feature kinds and their size as a multiple of trans_dim (``"svm-bev"``: plus
#: ``bev_grid**2``, see :func:`feature_dim`).
FEATURES: dict[str, int] = {"svm": 2, "finetune": 4, "svm-bev": 2, "cls": 1}
#: Seed of the fixed random projection of large pooled features (see ``project_dim``).
PROJECTION_SEED = 20261122
#: Default points per scene of the embedder (pretraining trains on fewer, see ReconEmbedder).
DEFAULT_NUM_POINTS = 2048
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
        Patches per cloud ``G`` (official objects: 64; scene embedder default 32).
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


def feature_dim(feature: str, trans_dim: int, bev_grid: int = 0) -> int:
    """Size of the pooled ``feature`` for token size ``trans_dim`` (see :func:`pool_features`)."""
    if feature not in FEATURES:
        raise EmbedderError(f"unknown feature {feature!r}; valid: {sorted(FEATURES)}")
    extra = bev_grid * bev_grid if feature == "svm-bev" else 0
    return (FEATURES[feature] + extra) * trans_dim


def bev_grid_pool(patches: Tensor, centers: Tensor, grid: int, half_extent: float) -> Tensor:
    """Mean patch token per cell of a ``grid`` x ``grid`` bird's-eye grid.

    Parameters
    ----------
    patches : torch.Tensor
        ``(B, G, C)`` patch tokens.
    centers : torch.Tensor
        ``(B, G, 3)`` patch centres in the encoder's (normalised) coordinates.
    grid : int
        Cells per side.
    half_extent : float
        The grid tiles the square ``|x|, |y| <= half_extent``; centres outside go to the border
        cells.

    Returns
    -------
    torch.Tensor
        ``(B, grid * grid * C)``: cell ``(i, j)`` (``i`` along x, ``j`` along y) at
        ``(i * grid + j) * C``; a cell without patches is 0.

    Notes
    -----
    O(B * G * C) time and O(B * grid^2 * C) memory (one scatter-add).
    """
    batch, _, dim = patches.shape
    cell = ((centers[..., :2] / half_extent + 1.0) * (0.5 * grid)).floor()
    cell = cell.clamp(0, grid - 1).long()
    index = cell[..., 0] * grid + cell[..., 1]  # (B, G)
    sums = patches.new_zeros(batch, grid * grid, dim)
    sums.scatter_add_(1, index.unsqueeze(-1).expand(-1, -1, dim), patches)
    counts = patches.new_zeros(batch, grid * grid)
    counts.scatter_add_(1, index, torch.ones_like(index, dtype=patches.dtype))
    return (sums / counts.clamp(min=1.0).unsqueeze(-1)).reshape(batch, grid * grid * dim)


def _unit(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def pool_features(
    tokens: Tensor,
    feature: str,
    *,
    centers: Tensor | None = None,
    bev_grid: int = 3,
    half_extent: float = 1.0,
) -> Tensor:
    """Pool ``(B, 3 + G, C)`` tokens into one vector per cloud.

    Parameters
    ----------
    tokens : torch.Tensor
        Encoder output; the first 3 tokens are cls, img, text.
    feature : {"svm", "finetune", "svm-bev", "cls"}
        ``"svm"``: ``cat[max(cls, img, text), max(patches) + mean(patches)]`` (2C);
        ``"cls"``: the cls token (C);
        ``"finetune"``: ``cat[cls, img, text, max(patches)]`` (4C);
        ``"svm-bev"``: ``cat[unit(svm), unit(bev_grid_pool)] / sqrt(2)`` (``(2 + grid^2) C``).
    centers : torch.Tensor, optional
        ``(B, G, 3)`` patch centres; required for ``"svm-bev"``.
    bev_grid : int, default 3
        Cells per side of the ``"svm-bev"`` grid.
    half_extent : float, default 1.0
        Half side of the grid square in the centres' coordinates (the crop square).

    Returns
    -------
    torch.Tensor
        ``(B, feature_dim(feature, C, bev_grid))``.
    """
    queries = tokens[:, :NUM_QUERY_TOKENS]
    patches = tokens[:, NUM_QUERY_TOKENS:]
    if feature in ("svm", "svm-bev"):
        svm = torch.cat(
            [queries.max(dim=1).values, patches.max(dim=1).values + patches.mean(dim=1)], dim=-1
        )
        if feature == "svm":
            return svm
        if centers is None:
            raise EmbedderError("feature 'svm-bev' needs the patch centres (centers=...)")
        layout = bev_grid_pool(patches, centers, bev_grid, half_extent)
        return torch.cat([_unit(svm), _unit(layout)], dim=-1) * (0.5**0.5)
    if feature == "cls":
        return queries[:, 0]
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
    feature : {"svm", "finetune", "svm-bev", "cls"}, default "svm-bev"
        Pooled feature, see :func:`pool_features`; raw size 2C, 4C, ``(2 + bev_grid^2) C`` or C.
    num_group : int, default 128
        Patches per scene (ReCon objects use 64).
    group_size : int, default 32
        Points per patch.
    bev_grid : int, default 8
        Cells per side of the bird's-eye grid of ``feature="svm-bev"`` (ignored otherwise).
    project_dim : int, default 1024
        A pooled feature larger than this is multiplied by a fixed Gaussian random matrix
        ``(raw, project_dim) / sqrt(project_dim)`` (seeded with :data:`PROJECTION_SEED`, the same
        in every process): a Johnson-Lindenstrauss projection that keeps cosine similarities
        (in the benchmark, 12672 -> 1024 dims changed drive accuracy and near-dup recall by
        <= 0.007). Smaller features pass unchanged; 0 never projects. ``dim`` is
        ``min(raw, project_dim)``. Memory ``raw * project_dim`` floats (52 MB for tiny).
    **preprocess
        Options of :class:`embedders.preprocess.PreprocessConfig` (``crop``, ``half_extent``,
        ``z_min``, ``z_max``, ``remove_ground``, ``ground_cell``, ``ground_height``,
        ``voxel_size``, ``num_points`` (default here 2048), ``sampling``, ``normalize``).

    Notes
    -----
    Default scene tokenization (chosen with ``benchmarks/embedders.py``, see the module
    docstring): crop the 51.2 m x 51.2 m square around the sensor, ``-3 <= z <= 1`` m; keep the
    ground (removing it lost the road layout); 0.2 m voxel grid (one centroid per voxel); 2048
    seeded random points of the voxels; 128 FPS patches of 32 nearest points (kNN);
    sensor-frame normalisation (subtract the crop-box centre, divide by the radius of its
    enclosing sphere: one fixed transform for every frame). Pretraining
    (:mod:`embedders.pretrain.config`) trains on 1024 points / 32 patches, 4x cheaper per step,
    and records this denser tokenization in the checkpoint's ``embed_options``: the encoder
    trained on coarse patches reads fine ones better than the coarse ones it was trained on
    (drive 0.995 vs 0.948, near-dup R@10 0.750 vs 0.523 with the grid-8 feature), at ~4x the
    embedding cost. ``sampling="fps"`` instead of random points raised near-dup R@10 by ~0.04
    at ~2x the preprocessing cost (session-2 ablation), so it stays an option.

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
        feature: str = "svm-bev",
        num_group: int = 128,
        group_size: int = 32,
        bev_grid: int = 8,
        project_dim: int = 1024,
        **preprocess: Any,
    ) -> None:
        known = ["checkpoint", "seed", "feature", "num_group", "group_size", "bev_grid",
                 "project_dim"]
        check_options(name, list(preprocess), known + PreprocessConfig.option_names())
        if feature not in FEATURES:
            raise EmbedderError(f"{name}: feature={feature!r} is not one of {sorted(FEATURES)}")
        self.name = name
        self.size = size
        self.seed = _check_int("seed", seed, minimum=0)
        self.feature = feature
        preprocess.setdefault("num_points", DEFAULT_NUM_POINTS)
        self.preprocess_config = PreprocessConfig.from_options(preprocess)
        group_size = _check_int("group_size", group_size)
        num_group = _check_int("num_group", num_group)
        if group_size > self.preprocess_config.num_points:
            raise EmbedderError(
                f"{name}: group_size={group_size} exceeds "
                f"num_points={self.preprocess_config.num_points}"
            )
        self.bev_grid = _check_int("bev_grid", bev_grid)
        self.model_config = ReconConfig.for_size(size, num_group=num_group, group_size=group_size)
        self.raw_dim = feature_dim(feature, self.model_config.trans_dim, self.bev_grid)
        self.project_dim = _check_int("project_dim", project_dim, minimum=0)
        self.dim = self.project_dim if 0 < self.project_dim < self.raw_dim else self.raw_dim
        self._projection: Tensor | None = None
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
            "bev_grid": self.bev_grid,
            "project_dim": self.project_dim,
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
        if self._projection is not None:
            self._projection = self._projection.to(resolved)
        self._device = resolved
        return self

    def projection(self) -> Tensor | None:
        """The ``(raw_dim, dim)`` random projection (None when the feature is not projected)."""
        if self.dim == self.raw_dim:
            return None
        if self._projection is None:
            self._projection = random_projection(self.raw_dim, self.project_dim).to(self._device)
        return self._projection

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
                batch = torch.from_numpy(points).to(self._device)
                out[start : start + len(chunk)] = self.pool(batch)
        return out

    def pool(self, points: Tensor) -> np.ndarray:
        """Pooled features ``(B, dim)`` float32 of preprocessed ``(B, num_points, 3)`` clouds."""
        with torch.inference_mode():
            neighbourhoods, centers = self.model.group_divider(points)
            tokens = self.model.forward_patches(neighbourhoods, centers)
            pooled = pool_features(
                tokens,
                self.feature,
                centers=centers,
                bev_grid=self.bev_grid,
                half_extent=self.grid_half_extent,
            )
            projection = self.projection()
            if projection is not None:
                pooled = pooled.float() @ projection
        return pooled.float().cpu().numpy()

    @property
    def grid_half_extent(self) -> float:
        """Half side of the ``"svm-bev"`` grid in encoder coordinates (the crop square)."""
        config = self.preprocess_config
        if config.normalize == "sensor":
            return config.half_extent / config.crop_radius
        return 1.0  # centroid normalisation: the unit sphere


def random_projection(raw_dim: int, dim: int) -> Tensor:
    """Fixed ``(raw_dim, dim)`` float32 Gaussian matrix scaled by ``1 / sqrt(dim)``.

    Drawn with numpy's PCG64 seeded with ``[PROJECTION_SEED, raw_dim, dim]``, so every process,
    machine and device gets the same matrix. O(raw_dim * dim) time and memory.
    """
    rng = np.random.default_rng([PROJECTION_SEED, int(raw_dim), int(dim)])
    matrix = rng.standard_normal((int(raw_dim), int(dim)), dtype=np.float32)
    return torch.from_numpy(matrix / np.float32(math.sqrt(dim)))


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
