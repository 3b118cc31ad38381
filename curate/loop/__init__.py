"""Active-learning detector loop: Detector protocol, oracles, info pkls, the loop itself.

Nothing here imports mmdet3d; the mmdet3d adapter (``curate[mm3d]``) is loaded only when a loop
runs with the default detector.
"""

from __future__ import annotations

from curate.loop.config import LoopConfig, load_loop_config
from curate.loop.detector import Detector, TrainResult
from curate.loop.infos import build_infos, read_info_pkl, write_info_pkl
from curate.loop.oracle import ImportOracle, SimulatedOracle, create_oracle
from curate.loop.runner import loop_rounds, run_loop, validation_ids
from curate.reports import LoopReport, RoundReport

__all__ = [
    "Detector",
    "TrainResult",
    "LoopConfig",
    "load_loop_config",
    "LoopReport",
    "RoundReport",
    "run_loop",
    "loop_rounds",
    "validation_ids",
    "SimulatedOracle",
    "ImportOracle",
    "create_oracle",
    "build_infos",
    "write_info_pkl",
    "read_info_pkl",
]
