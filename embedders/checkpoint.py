"""Weights identity (sha256), and loading / saving ReCon-style checkpoints.

Official ReCon pretraining checkpoints are ``torch.save``-d dicts
``{'base_model': state_dict, 'optimizer': ..., 'epoch': ..., 'metrics': ...}`` whose keys may carry
a ``module.`` prefix (DataParallel) and put the point encoder under ``MAE_encoder.``; the rest
(``mask_token``, ``MAE_decoder.*``, ``decoder_pos_embed.*``, ``increase_dim.*``, ``img_proj`` /
``text_proj``, frozen ``img_encoder.*`` / ``text_encoder.*`` teachers) is not needed for features.
:func:`load_recon_checkpoint` strips the prefixes, ignores the extra entries, and loads the encoder
strictly. :func:`save_checkpoint` writes the same layout, so our checkpoints load in the official
code too.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from embedders.errors import CheckpointError

__all__ = [
    "state_dict_sha256",
    "read_checkpoint",
    "load_recon_checkpoint",
    "save_checkpoint",
    "LoadReport",
    "ENCODER_PREFIX",
]

logger = logging.getLogger(__name__)

#: Prefix of the point-encoder entries in ReCon pretraining checkpoints.
ENCODER_PREFIX = "MAE_encoder."
#: Prefixes stripped (once each, in this order) from every checkpoint key.
_WRAPPER_PREFIXES = ("module.",)
_ENCODER_PREFIXES = (ENCODER_PREFIX, "base_model.")


def _tensor_bytes(tensor: Tensor) -> bytes:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


def state_dict_sha256(state_dict: Mapping[str, Tensor]) -> str:
    """Hex sha256 over a state dict: for each key in sorted order, its name, dtype, shape and bytes.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
        Typically ``module.state_dict()`` (parameters and buffers).

    Returns
    -------
    str
        64 hex characters; equal across processes and devices for equal tensors.
    """
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key]
        header = f"{key}|{str(tensor.dtype).removeprefix('torch.')}|{list(tensor.shape)}\n"
        digest.update(header.encode("utf-8"))
        digest.update(_tensor_bytes(tensor))
    return digest.hexdigest()


def read_checkpoint(
    path_or_state_dict: str | os.PathLike[str] | Mapping[str, Any],
) -> dict[str, Tensor]:
    """Return the raw state dict held by a checkpoint file or checkpoint dict.

    Parameters
    ----------
    path_or_state_dict : path or mapping
        A file written by ``torch.save`` holding ``{'base_model': state_dict, ...}`` (official
        ReCon and :func:`save_checkpoint` layout; ``'model'`` is accepted too, as in ReCon's
        ``load_model``), or such a dict, or a bare state dict.

    Returns
    -------
    dict of str to torch.Tensor
        Keys as stored (prefixes not yet stripped).

    Raises
    ------
    CheckpointError
        If the file is missing or unreadable, or holds neither layout.
    """
    source = "state dict"
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path = Path(path_or_state_dict)
        source = f"checkpoint {str(path)!r}"
        if not path.is_file():
            raise CheckpointError(f"{source} does not exist or is not a file; check the path")
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
            raise CheckpointError(
                f"{source} could not be read by torch.load(weights_only=True): {exc}. "
                "It must be a torch.save-d dict of tensors (e.g. {'base_model': state_dict}); "
                "a truncated download also gives this error"
            ) from exc
    else:
        content = path_or_state_dict
    if not isinstance(content, Mapping):
        raise CheckpointError(f"{source} holds a {type(content).__name__}, expected a dict")
    container = next((key for key in ("base_model", "model") if key in content), None)
    if container is not None:
        state = content[container]
        if not isinstance(state, Mapping):
            raise CheckpointError(
                f"{source}: {container!r} is a {type(state).__name__}, expected a state dict"
            )
    elif content and all(isinstance(value, Tensor) for value in content.values()):
        state = content
    else:
        keys = sorted(map(str, content))[:10]
        raise CheckpointError(
            f"{source} has no 'base_model' entry and is not a bare state dict of tensors; "
            f"top-level keys: {keys}"
        )
    bad = [key for key, value in state.items() if not isinstance(value, Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entries are not tensors: {bad[:5]}")
    return dict(state)


def _strip_prefixes(key: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
    for prefix in _ENCODER_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


@dataclass
class LoadReport:
    """What :func:`load_recon_checkpoint` did.

    Attributes
    ----------
    loaded : int
        Entries copied into the model (all of its state dict).
    ignored : list of str
        Checkpoint keys that are not part of the encoder (decoder, mask token, heads, teachers).
    """

    loaded: int
    ignored: list[str] = field(default_factory=list)


def load_recon_checkpoint(
    model: nn.Module, path_or_state_dict: str | os.PathLike[str] | Mapping[str, Any]
) -> LoadReport:
    """Load a ReCon checkpoint into a point encoder, strictly.

    Keys are stripped of ``module.`` and then of ``MAE_encoder.`` (or ``base_model.``). Keys whose
    first component is not one of the model's own top-level names (``cls_token``, ``encoder``,
    ``blocks``, ``norm``, ...) are ignored and counted (decoder, ``mask_token``, projections,
    teachers, fine-tune heads). Every model entry must be present with the same shape, and no
    unknown key may sit under one of the model's names (e.g. a 13th block).

    Parameters
    ----------
    model : torch.nn.Module
        The encoder (e.g. :class:`embedders.models.recon.ReconEncoder`).
    path_or_state_dict : path or mapping
        See :func:`read_checkpoint`.

    Returns
    -------
    LoadReport

    Raises
    ------
    CheckpointError
        Naming the first missing key, the key with the wrong shape (with both shapes), or the
        unexpected encoder key. The model is left unchanged when this is raised.
    """
    raw = read_checkpoint(path_or_state_dict)
    expected = model.state_dict()
    roots = {key.split(".", 1)[0] for key in expected}
    state: dict[str, Tensor] = {}
    ignored: list[str] = []
    for raw_key, value in raw.items():
        key = _strip_prefixes(raw_key)
        if key.split(".", 1)[0] not in roots:
            ignored.append(raw_key)
            continue
        if key in state:
            raise CheckpointError(
                f"checkpoint holds key {key!r} twice (as {raw_key!r} and another spelling)"
            )
        state[key] = value
    missing = [key for key in expected if key not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint is missing encoder key {missing[0]!r} ({len(missing)} missing in all, "
            f"e.g. {missing[:5]}); it may be for another architecture or size"
        )
    unexpected = sorted(key for key in state if key not in expected)
    if unexpected:
        raise CheckpointError(
            f"checkpoint has encoder key {unexpected[0]!r} that this model does not have "
            f"({len(unexpected)} in all); it may be for a deeper or different model"
        )
    for key, target in expected.items():
        if tuple(state[key].shape) != tuple(target.shape):
            raise CheckpointError(
                f"checkpoint key {key!r} has shape {list(state[key].shape)} but the model expects "
                f"{list(target.shape)}; the checkpoint is for another model size (trans_dim/heads)"
            )
    model.load_state_dict(state, strict=True)
    if ignored:
        logger.info(
            "loaded %d encoder entries; ignored %d non-encoder checkpoint entries (e.g. %s)",
            len(state),
            len(ignored),
            ", ".join(ignored[:3]),
        )
    else:
        logger.info("loaded %d encoder entries", len(state))
    return LoadReport(loaded=len(state), ignored=ignored)


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    extra: Mapping[str, Any] | None = None,
    prefix: str = ENCODER_PREFIX,
) -> Path:
    """Write ``{'base_model': {prefix + key: tensor}, **extra}`` with ``torch.save``, atomically.

    Parameters
    ----------
    model : torch.nn.Module
        The encoder whose ``state_dict()`` is saved (tensors moved to CPU).
    path : path
        Destination file; parent folders are created.
    extra : mapping, optional
        Additional top-level entries (e.g. ``{'epoch': 3, 'curate': {...}}``); plain Python values
        and tensors only, so the file stays loadable with ``weights_only=True``.
    prefix : str, default "MAE_encoder."
        Key prefix, so the official ReCon fine-tuning code can load the file too.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    extra = dict(extra or {})
    if "base_model" in extra:
        raise CheckpointError("extra must not contain 'base_model'; that entry holds the weights")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    state = {prefix + key: value.detach().to("cpu") for key, value in model.state_dict().items()}
    temporary = target.with_name(target.name + ".tmp")
    torch.save({"base_model": state, **extra}, temporary)
    os.replace(temporary, target)
    logger.info("saved %d entries to %s", len(state), target)
    return target
