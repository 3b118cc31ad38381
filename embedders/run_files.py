"""Files of a training run folder, shared by the point and image pretraining loops.

A run folder holds ``step-XXXX.pt`` checkpoints, ``last.pt`` (the latest, same bytes) and
``losses.jsonl`` (one JSON line per step). Everything here is written atomically (temporary file,
fsync, rename), so a kill -9 never leaves a truncated checkpoint or log, and a resumed run can
check that it is continuing the same configuration.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from embedders.errors import EmbedderError

__all__ = [
    "LAST_CHECKPOINT",
    "LOSS_LOG",
    "atomic_write_bytes",
    "checkpoint_name",
    "save_checkpoint",
    "read_loss_log",
    "rewrite_loss_log",
    "check_resumable",
]

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.pt"
LOSS_LOG = "losses.jsonl"


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a fsynced temporary file and a rename."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def checkpoint_name(step: int) -> str:
    """``step-0100.pt`` (at least 4 digits)."""
    return f"step-{step:04d}.pt"


def save_checkpoint(run_dir: Path, state: dict[str, Any], step: int) -> Path:
    """Write ``state`` as ``step-XXXX.pt`` and ``last.pt`` (same bytes); returns ``last.pt``."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    atomic_write_bytes(run_dir / checkpoint_name(step), payload)
    atomic_write_bytes(run_dir / LAST_CHECKPOINT, payload)
    logger.info("checkpoint step %d -> %s", step, run_dir / checkpoint_name(step))
    return run_dir / LAST_CHECKPOINT


def read_loss_log(path: Path, upto: int) -> list[dict[str, Any]]:
    """Parsed loss lines with ``step <= upto`` (a torn last line after a kill is dropped)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= upto:
            rows.append(row)
    return rows


def rewrite_loss_log(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace the log with ``rows`` (used on resume to drop lines after the checkpoint)."""
    atomic_write_bytes(path, "".join(json.dumps(row) + "\n" for row in rows).encode())


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_resumable(
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    defaults: Mapping[str, Any],
    path: Path,
    ignore: Iterable[str] = (),
) -> None:
    """Refuse to resume ``path`` with a config other than the one it was started with.

    Parameters
    ----------
    saved, current : mapping
        Nested config dicts of the checkpoint and of this call.
    defaults : mapping
        Nested default config: keys added after the run started take their default in ``saved``.
    path : pathlib.Path
        The checkpoint (named in the error).
    ignore : iterable of str
        Dotted keys that may differ (they do not change the result, e.g. ``"train.device"``).

    Raises
    ------
    EmbedderError
        Names up to five changed keys with their old and new values.
    """
    old = {**_flatten(defaults), **_flatten(saved)}
    new = _flatten(current)
    skip = set(ignore)
    changed = sorted(
        key for key in set(old) | set(new) if old.get(key) != new.get(key) and key not in skip
    )
    if changed:
        details = ", ".join(f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in changed[:5])
        raise EmbedderError(
            f"cannot resume {path}: the run was started with another config ({details}). "
            "Use another run name, or delete the run folder to start over"
        )
