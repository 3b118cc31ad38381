"""Import helper of the optional mmdet3d stack (``pip install curate[mm3d]`` / ``make mm3d``)."""

from __future__ import annotations

import logging
import os
from types import ModuleType

__all__ = ["INSTALL_HINT", "require_mm3d"]

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "pip install 'curate[mm3d]' (mmengine 0.10.7, mmdet 3.2.0, mmdet3d 1.4.0), then build mmcv "
    "2.1.0 with CPU ops with `make mm3d` (scripts/install_mm3d.sh)"
)


def require_mm3d() -> ModuleType:
    """Import mmdet3d (and check mmcv's compiled ops) or raise an ImportError saying what to install.

    Also lets torch >= 2.6 reload mmengine checkpoints written by this process (they pickle
    numpy scalars and mmengine objects): ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` unless the
    caller set it. Only checkpoints of the loop's own work dirs (or ones the user names) are
    loaded.
    """
    try:
        import mmdet3d
        import mmengine  # noqa: F401
        from mmcv.ops import Voxelization  # noqa: F401  (compiled ops present)
    except ImportError as exc:
        raise ImportError(f"the mmdet3d detector adapter needs the mmdet3d stack: {INSTALL_HINT} ({exc})") from exc
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    return mmdet3d


def mm3d_available() -> bool:
    """Whether the mmdet3d stack imports (with mmcv's compiled ops); never raises."""
    try:
        require_mm3d()
    except ImportError as exc:
        logger.debug("mmdet3d stack not available: %s", exc)
        return False
    return True
