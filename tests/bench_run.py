"""Running a benchmark's command line from a test: results to a tmp dir, never the committed ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(module: str, args: list[str], results: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m module *args`` single-threaded with ``CURATE_RESULTS_DIR=results``; fail on a non-zero exit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CURATE_RESULTS_DIR": str(results),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done
