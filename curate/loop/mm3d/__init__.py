"""The mmdet3d adapter of the detector loop (``pip install curate[mm3d]``).

Importing this package needs nothing beyond curate; :class:`MMDet3DDetector` imports mmdet3d
when it is created and says what to install when it is missing.
"""

from __future__ import annotations

import logging
from typing import Any

from curate.loop.mm3d._imports import INSTALL_HINT, mm3d_available, require_mm3d
from curate.loop.mm3d.configs import config_file, detector_config, list_detector_configs

__all__ = ["MMDet3DDetector", "INSTALL_HINT", "mm3d_available", "require_mm3d", "list_detector_configs", "config_file", "detector_config"]

logger = logging.getLogger(__name__)


def __getattr__(name: str) -> Any:
    if name == "MMDet3DDetector":
        from curate.loop.mm3d.detector import MMDet3DDetector

        return MMDet3DDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
