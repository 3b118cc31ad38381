"""Run a benchmark module as a child process and read the JSON line it prints last.

Benchmarks that measure peak memory run each step in its own process (a process's peak RSS is
its own), with a timeout: a step that fails or times out becomes ``{"error": ...}`` instead of
stopping the whole benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

__all__ = ["run_json_child"]

ROOT = Path(__file__).resolve().parents[1]


def run_json_child(module: str, argv: list[str], timeout: Optional[float]) -> dict[str, Any]:
    """``python -m module *argv`` from the repository root; its last stdout line as JSON.

    Returns ``{"error": "timed out after N s"}`` or ``{"error": <last stderr line>}`` when the
    child times out or exits non-zero.
    """
    cmd = [sys.executable, "-m", module, *argv]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": tail[:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])
