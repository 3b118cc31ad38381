"""Detector configurations by name: the CPU-sized ``pointpillars-tiny`` and ``centerpoint-tiny``
shipped here, and the standard mmdet3d configs (found in the installed mmdet3d package).

:func:`detector_config` returns an ``mmengine.Config`` whose datasets, schedule and hooks the
adapter (:class:`curate.loop.mm3d.MMDet3DDetector`) fills per round. Standard configs get their
``Anchor3DHead`` replaced by :class:`curate.loop.mm3d.heads.ProbAnchor3DHead` and their
``CenterHead`` (CenterPoint) by :class:`curate.loop.mm3d.heads.ProbCenterHead` (same weights;
they also keep the per-class scores of the boxes surviving NMS) and lose the ``ObjectSample``
augmentation (it needs a ground-truth database the loop does not build).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from curate.errors import InvalidInputError, NotFoundError

__all__ = ["CONFIG_DIR", "DETECTOR_CONFIGS", "list_detector_configs", "config_file", "detector_config"]

logger = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent

#: name -> config file: a path in this package, or ``mmdet3d::<path under mmdet3d's configs>``.
DETECTOR_CONFIGS: dict[str, str] = {
    "pointpillars-tiny": "pointpillars_tiny.py",
    "centerpoint-tiny": "centerpoint_tiny.py",
    "centerpoint-tiny-nus": "centerpoint_tiny_nus.py",
    "pointpillars": "mmdet3d::pointpillars/pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py",
    "second": "mmdet3d::second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py",
    "pv-rcnn": "mmdet3d::pv_rcnn/pv_rcnn_8xb2-80e_kitti-3d-3class.py",
    "centerpoint": "mmdet3d::centerpoint/centerpoint_pillar02_second_secfpn_8xb4-cyclic-20e_nus-3d.py",
}


def list_detector_configs() -> list[str]:
    """Names accepted by :func:`detector_config` (and ``LoopConfig.detector``)."""
    return sorted(DETECTOR_CONFIGS)


def config_file(name: str) -> Path:
    """The config file of ``name`` (a known name, or a path to an mmengine config file)."""
    if name in DETECTOR_CONFIGS:
        spec = DETECTOR_CONFIGS[name]
        if spec.startswith("mmdet3d::"):
            from curate.loop.mm3d._imports import require_mm3d

            mmdet3d = require_mm3d()
            root = Path(mmdet3d.__file__).resolve().parent / ".mim" / "configs"
            path = root / spec[len("mmdet3d::"):]
            if not path.is_file():
                raise NotFoundError(
                    f"detector config {name!r}: {path} is not in the installed mmdet3d "
                    "(a source checkout keeps configs/ outside the package; pass the file path)"
                )
            return path
        return CONFIG_DIR / spec
    path = Path(name)
    if path.suffix == ".py" and path.is_file():
        return path
    raise InvalidInputError(
        f"unknown detector config {name!r}; valid names: {', '.join(list_detector_configs())} "
        "(or a path to an mmengine .py config)"
    )


def _replace_heads(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") in ("Anchor3DHead", "mmdet3d.Anchor3DHead"):
            node["type"] = "ProbAnchor3DHead"
        elif node.get("type") in ("CenterHead", "mmdet3d.CenterHead"):
            node["type"] = "ProbCenterHead"
        for value in node.values():
            _replace_heads(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _replace_heads(value)


def detector_config(name: str) -> Any:
    """The ``mmengine.Config`` of the detector ``name``, with curate's head swapped in."""
    from curate.loop.mm3d._imports import require_mm3d

    require_mm3d()
    from mmengine.config import Config

    cfg = Config.fromfile(str(config_file(name)))
    model = cfg.model.to_dict() if hasattr(cfg.model, "to_dict") else dict(cfg.model)
    _replace_heads(model)
    cfg.model = model
    for key in ("train_pipeline", "test_pipeline"):
        if key in cfg:
            cfg[key] = [t for t in cfg[key] if t.get("type") != "ObjectSample"]
    return cfg
