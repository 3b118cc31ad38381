"""Process resource readings shared by the selectors and the benchmarks."""

from __future__ import annotations

import os
import threading
from typing import Optional, Union

__all__ = ["available_memory_bytes", "peak_rss_mib", "rss_mib", "descendants", "TreePeakSampler"]


def _status_kib(pid: Union[int, str], field: str) -> Optional[float]:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def available_memory_bytes() -> Optional[int]:
    """Memory the kernel could give this process now (``MemAvailable`` of ``/proc/meminfo``,
    capped by a cgroup v2 ``memory.max`` when one is set), in bytes; ``None`` where neither can
    be read (not Linux)."""
    avail: Optional[int] = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        return None
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            raw = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current") as fh:
            used = int(fh.read().strip())
        if raw != "max":
            room = max(int(raw) - used, 0)
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return avail


def peak_rss_mib(pid: Union[int, str] = "self") -> float:
    """Peak resident set (``VmHWM`` from ``/proc/<pid>/status``) of a process, in MiB.

    Parameters
    ----------
    pid : int or "self", default "self"
        The process; ``"self"`` is the calling one.

    Returns
    -------
    float
        MiB, or NaN where ``/proc`` is absent (not Linux) or the process has gone.
    """
    kib = _status_kib(pid, "VmHWM:")
    return float("nan") if kib is None else kib / 1024


def rss_mib(pid: Union[int, str] = "self") -> float:
    """Current resident set (``VmRSS``) of a process in MiB; NaN if unreadable."""
    kib = _status_kib(pid, "VmRSS:")
    return float("nan") if kib is None else kib / 1024


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, their children, ...), read from ``/proc``.

    O(P) for P processes on the machine; empty where ``/proc`` is absent.
    """
    parent_of: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parent_of[int(name)] = int(fields[1])
    out, frontier = [], [pid]
    while frontier:
        nxt = [p for p, pp in parent_of.items() if pp in frontier]
        out += nxt
        frontier = nxt
    return out


class TreePeakSampler:
    """Peak of the summed resident sets of this process and its descendants (worker pools).

    A daemon thread samples ``VmRSS`` of the tree every ``interval`` seconds; use it as a
    context manager and read :attr:`peak_mib` afterwards. A sampled peak can miss a spike
    shorter than the interval (a lower bound of the true tree peak); the sum of every process's
    own ``VmHWM`` is the matching upper bound (:attr:`hwm_sum_mib`, processes seen while
    sampling).
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = float(interval)
        self.peak_mib = 0.0
        self._hwm: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _sample(self) -> None:
        me = os.getpid()
        total = 0.0
        for pid in [me, *descendants(me)]:
            now, hwm = rss_mib(pid), peak_rss_mib(pid)
            if now == now:  # not NaN
                total += now
            if hwm == hwm:
                self._hwm[pid] = max(self._hwm.get(pid, 0.0), hwm)
        self.peak_mib = max(self.peak_mib, total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    @property
    def hwm_sum_mib(self) -> float:
        """Sum of the peak resident sets of every process seen (an upper bound of the tree's)."""
        return float(sum(self._hwm.values()))

    def __enter__(self) -> "TreePeakSampler":
        self._sample()
        self._thread = threading.Thread(target=self._run, name="curate-rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
