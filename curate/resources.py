"""Process resource readings shared by the selectors and the benchmarks."""

from __future__ import annotations

from typing import Union

__all__ = ["peak_rss_mib"]


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
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
