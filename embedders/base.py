"""The :class:`Embedder` contract shared by every embedder, and input validation helpers.

An embedder turns a batch of point clouds into a ``(B, dim)`` float32 matrix. Subclasses implement
:meth:`Embedder._embed_clouds` on already validated input; :meth:`Embedder.embed` does the parts
every embedder shares: input validation with messages naming the offending cloud, device handling,
and output checks (shape, dtype, finiteness).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from embedders.errors import EmbedderError

__all__ = ["Embedder", "validate_clouds", "resolve_device", "check_options"]

logger = logging.getLogger(__name__)

#: Accepted column counts of an input cloud: x, y, z, optionally intensity and a time lag
#: (multi-sweep clouds, seconds behind the key frame).
VALID_COLUMNS = (3, 4, 5)


def check_options(name: str, options: Sequence[str], valid: Sequence[str]) -> None:
    """Raise :class:`EmbedderError` naming any option not in ``valid``.

    Parameters
    ----------
    name : str
        Embedder name, for the message.
    options : sequence of str
        Option names given by the caller.
    valid : sequence of str
        Accepted option names, listed in the message.
    """
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise EmbedderError(f"{name}: unknown option(s) {unknown}; valid options: {list(valid)}")


def resolve_device(device: str) -> str:
    """Turn a device request into a concrete torch device string.

    Parameters
    ----------
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns
    -------
    str
        The concrete device, e.g. ``"cpu"`` or ``"cuda:0"``.

    Raises
    ------
    EmbedderError
        If the string is not a device, or CUDA is requested but not available.
    """
    import torch  # local import: parameter-free embedders need no torch at import time

    if not isinstance(device, str):
        raise EmbedderError(
            f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}"
        )
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise EmbedderError(
            f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from exc
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise EmbedderError(
            f"device {device!r} requested but torch.cuda.is_available() is False on this machine; "
            "use device='cpu' or device='auto'"
        )
    if parsed.type not in ("cpu", "cuda"):
        raise EmbedderError(f"device {device!r} is not supported; use 'auto', 'cpu' or 'cuda'")
    return str(parsed)


def validate_clouds(clouds: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Check a batch of point clouds and return them as float32 arrays.

    Parameters
    ----------
    clouds : sequence of array_like
        Each item an ``(N_i, 3)`` or ``(N_i, 4)`` array of x, y, z[, intensity] in the LiDAR
        frame, metres. A single ``(B, N, 3|4)`` array is accepted as a batch of equal-size clouds.

    Returns
    -------
    list of numpy.ndarray
        The clouds as C-contiguous float32 arrays (no copy where already so).

    Raises
    ------
    EmbedderError
        Naming the index of the first bad cloud: not 2-D, wrong column count, not numeric, empty,
        or containing NaN / infinite values.
    """
    if isinstance(clouds, np.ndarray):
        if clouds.ndim == 2:
            raise EmbedderError(
                f"embed() takes a sequence of clouds but got a single 2-D array of shape "
                f"{clouds.shape}; wrap it in a list: embed([cloud])"
            )
        if clouds.ndim != 3:
            raise EmbedderError(
                f"embed() takes a sequence of (N_i, 3|4) clouds; got an array of shape "
                f"{clouds.shape}"
            )
    elif isinstance(clouds, (str, bytes)) or not isinstance(clouds, Sequence):
        raise EmbedderError(
            "embed() takes a sequence (list or tuple) of (N_i, 3|4) arrays, got "
            f"{type(clouds).__name__}"
        )
    checked: list[np.ndarray] = []
    for index, cloud in enumerate(clouds):
        try:
            array = np.asarray(cloud)
        except (TypeError, ValueError) as exc:
            raise EmbedderError(f"cloud {index}: cannot be read as an array ({exc})") from exc
        if array.ndim != 2 or array.shape[1] not in VALID_COLUMNS:
            raise EmbedderError(
                f"cloud {index}: expected shape (N, 3), (N, 4) or (N, 5) (x, y, z[, intensity[, time lag]]), "
                f"got shape {array.shape}"
            )
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise EmbedderError(f"cloud {index}: expected a numeric array, got dtype {array.dtype}")
        if array.shape[0] == 0:
            raise EmbedderError(f"cloud {index}: is empty (0 points); drop it or fix its source")
        array = np.ascontiguousarray(array, dtype=np.float32)
        finite = np.isfinite(array)
        if not finite.all():
            bad_rows = np.flatnonzero(~finite.all(axis=1))
            raise EmbedderError(
                f"cloud {index}: {bad_rows.size} point(s) contain NaN or infinite values "
                f"(first at row {int(bad_rows[0])}); remove them before embedding"
            )
        checked.append(array)
    return checked


class Embedder(abc.ABC):
    """Base class: turns point clouds into fixed-size float32 vectors.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"recon-tiny"``.
    dim : int
        Size of the output vectors.
    modality : str
        Input modality; ``"points"`` for point-cloud embedders.

    Notes
    -----
    ``create_embedder(emb.name, **emb.config())`` rebuilds an equivalent embedder, and
    :meth:`weights_sha256` identifies its weights, so stored vectors can always be traced back.
    """

    name: str
    dim: int
    modality: str = "points"

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """Return the complete, JSON-serialisable construction options of this embedder."""

    @abc.abstractmethod
    def weights_sha256(self) -> str:
        """Return a hex sha256 identifying the weights (of the config when parameter-free)."""

    @property
    @abc.abstractmethod
    def device(self) -> str:
        """The concrete device the embedder computes on (``"cpu"``, ``"cuda:0"``...)."""

    @abc.abstractmethod
    def to(self, device: str) -> Embedder:
        """Move the embedder to ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``) and return it."""

    @abc.abstractmethod
    def _embed_clouds(self, clouds: list[np.ndarray]) -> np.ndarray:
        """Embed validated, non-empty float32 clouds into a ``(len(clouds), dim)`` array."""

    def embed(self, clouds: Sequence[np.ndarray], *, device: str = "auto") -> np.ndarray:
        """Embed a batch of point clouds.

        Parameters
        ----------
        clouds : sequence of numpy.ndarray
            ``(N_i, 3)`` or ``(N_i, 4)`` float arrays (x, y, z[, intensity]), LiDAR frame, metres.
        device : str, default "auto"
            ``"auto"`` keeps the embedder's current device (see :meth:`to`); any other value moves
            the embedder there first (the move persists).

        Returns
        -------
        numpy.ndarray
            float32 array of shape ``(len(clouds), dim)``, all finite. Deterministic: the same
            cloud gives the same vector whatever batch it is in (up to float rounding of batched
            matrix products).

        Raises
        ------
        EmbedderError
            If a cloud is empty, has NaN / infinite values or the wrong number of columns (the
            message names its index), or if the device is unavailable.
        """
        checked = validate_clouds(clouds)
        if device != "auto":
            self.to(device)
        if not checked:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self._embed_clouds(checked))
        if vectors.shape != (len(checked), self.dim):
            raise RuntimeError(
                f"embedder {self.name!r} produced shape {vectors.shape}, "
                f"expected {(len(checked), self.dim)}"
            )
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        finite_rows = np.isfinite(vectors).all(axis=1)
        if not finite_rows.all():
            bad = np.flatnonzero(~finite_rows)
            raise EmbedderError(
                f"embedder {self.name!r} produced non-finite vectors for cloud(s) "
                f"{bad[:10].tolist()}; "
                "the weights may be corrupt (check the checkpoint) or the clouds degenerate"
            )
        return vectors

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={self.device!r})"
