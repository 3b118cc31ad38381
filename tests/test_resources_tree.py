"""The process-tree memory reading the scale benchmark reports for sharded selection."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.resources import TreePeakSampler, descendants, peak_rss_mib, rss_mib

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")


def test_tree_peak_counts_a_child_process_memory() -> None:
    code = ("import numpy as np, sys, time; a = np.ones(200 * 2**20 // 8); a += 1; "
            "print('ready', flush=True); time.sleep(2)")
    with TreePeakSampler(interval=0.05) as tree:
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        assert child.pid in descendants(os.getpid())
        time.sleep(0.5)  # several samples while the child holds its 200 MiB
        child.wait()
    own = peak_rss_mib()
    assert tree.peak_mib >= rss_mib() + 190  # this process plus the child's array
    assert tree.hwm_sum_mib >= tree.peak_mib - 1e-6  # the sum of peaks bounds the sampled peak
    assert own == own and own > 0


def test_descendants_of_a_process_without_children_is_empty() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"])
    try:
        assert descendants(child.pid) == []
        assert child.pid in descendants(os.getpid())
    finally:
        child.wait()
