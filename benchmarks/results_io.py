"""Benchmark results as data: one JSON file per run under ``benchmarks/results/``.

Every benchmark ends by calling :func:`write_result`. A result file records where the figures came
from (commit, date, machine, load average, the script's arguments) next to the table itself, so a
figure quoted in a README can be traced to the run that produced it. ``python -m benchmarks.report``
renders the docs' tables from these files and checks that the docs still match them.

Layout of a result file::

    {
      "benchmark": "scale",               # the script's name (benchmarks/scale.py)
      "name": "scale-1m",                 # this result's name; the file is <name>.json
      "commit": "db33a1d...", "dirty": false,
      "date": "2026-12-03T09:30:00+00:00",
      "machine": {"cpus": 2, "memory_gib": 23.4, "platform": "...", "python": "3.11.7"},
      "load_avg": [1.2, 0.9, 0.8],        # at the end of the run
      "args": {...},                      # the script's arguments (argparse namespace)
      "columns": ["method", "N", "time s"],
      "rows": [{"method": "kcenter", "N": 1000000, "time s": 61.2}, ...],
      "notes": "...",                     # optional free text
      "extra": {...}                      # optional: anything else the script wants to keep
    }

Rows are dictionaries keyed by column name; every row holds every column (``None`` where a value
does not apply). Floats are kept as measured; rounding is the report's job.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"


def default_results_dir() -> Path:
    """Where results are written and read: ``$CURATE_RESULTS_DIR`` or ``benchmarks/results/``."""
    return Path(os.environ.get("CURATE_RESULTS_DIR") or RESULTS_DIR)


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def machine_info() -> dict[str, Any]:
    """Cores, memory, platform and Python version of the machine running the benchmark."""
    mem_gib: Optional[float] = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_gib = round(int(line.split()[1]) / 2**20, 1)
                    break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gib": mem_gib,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": platform.python_version(),
    }


def _jsonable(value: Any) -> Any:
    """Numpy scalars/arrays, paths and other plain objects to JSON-serialisable values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalar or array
        return value.tolist()
    if isinstance(value, float) and value != value:  # NaN -> null (JSON has no NaN)
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _command_line() -> str:
    """How the script was started: ``python -m benchmarks.NAME ARGS`` for a benchmark module."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    if script.suffix == ".py" and script.resolve().parent == ROOT / "benchmarks":
        head = f"python -m benchmarks.{script.stem}"
    else:
        head = script.name
    return " ".join([head, *sys.argv[1:]])


def write_result(
    benchmark: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    name: Optional[str] = None,
    args: Optional[argparse.Namespace | Mapping[str, Any]] = None,
    columns: Optional[Iterable[str]] = None,
    notes: str = "",
    extra: Optional[Mapping[str, Any]] = None,
    results_dir: Optional[Path] = None,
) -> Path:
    """Write one benchmark result as JSON and return its path.

    Parameters
    ----------
    benchmark : str
        The script's name (``"scale"`` for ``benchmarks/scale.py``).
    rows : sequence of mapping
        The table: one mapping per row, keyed by column name.
    name : str, optional
        The result's name, also its file name (``<name>.json``); default ``benchmark``. Use a
        distinct name per configuration worth keeping (``"scale-1m"``, ``"al_quality-smoke"``).
    args : argparse.Namespace or mapping, optional
        The arguments the script ran with.
    columns : iterable of str, optional
        Column order; default the keys of the first row, then any new keys in order of appearance.
    notes : str
        Free text kept with the result.
    extra : mapping, optional
        Anything else worth keeping (per-stage timings, curves).
    results_dir : Path, optional
        Where to write; default ``benchmarks/results/`` (``$CURATE_RESULTS_DIR`` overrides it, which
        the tests' smoke runs use so they never touch the committed files).

    Returns
    -------
    Path
        The written file. The write is atomic (temporary file, then rename).
    """
    if not benchmark:
        raise ValueError("write_result: benchmark name is empty")
    out_dir = Path(results_dir) if results_dir else default_results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    cols: list[str] = list(columns) if columns is not None else []
    if columns is None:
        for row in rows:
            for key in row:
                if key not in cols:
                    cols.append(key)
    table = [{c: _jsonable(row.get(c)) for c in cols} for row in rows]
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    status = _git("status", "--porcelain", "--untracked-files=no")
    payload = {
        "benchmark": benchmark,
        "name": name or benchmark,
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "command": _command_line(),
        "args": _jsonable(dict(args or {})),
        "columns": cols,
        "rows": table,
        "notes": notes,
        "extra": _jsonable(dict(extra or {})),
    }
    path = out_dir / f"{payload['name']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)
    logger.info("benchmark result written to %s", path)
    print(f"result: {path}")
    return path


def read_result(path: Path | str) -> dict[str, Any]:
    """Load one result file (as written by :func:`write_result`)."""
    return json.loads(Path(path).read_text())
