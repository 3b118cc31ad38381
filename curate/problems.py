"""Bad frames, listed instead of stopping a pool: the ``problems`` table.

Long jobs over a pool (ingest, embedding) run with ``on_error="skip"`` by default: a frame whose
file is missing, truncated or corrupt, or left with too few points once its NaN/inf points (no
returns) are dropped, is recorded here with its file and the reason, and the job goes on. With
``on_error="fail"`` the first bad frame stops the job as before.

One row per (stage, frame): ``stage`` is ``"ingest"`` or ``"embed:<embedding>"``. Rows of
``severity="error"`` are bad frames (not ingested / no vector); ``severity="warning"`` rows
record frames that were kept but changed (``nonfinite_points``: NaN/inf points dropped, counted in
the row's ``count``). The next run of the same stage retries every bad frame (ingest re-reads the
source; embedding computes every frame without a vector) and clears the rows of frames that now
succeed. ``Workspace.problems()`` / ``curate problems`` list them.

Costs: recording and clearing are O(rows touched) plus one read of the stage's rows (the table
holds bad frames only, far fewer than the pool).
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Iterable, Sequence
from typing import Optional

import pyarrow as pa

from curate.api import Problem
from curate.errors import InvalidInputError
from index.ids import isin as ids_isin
from index.store import Store

__all__ = [
    "PROBLEMS",
    "PROBLEMS_SCHEMA",
    "ON_ERROR",
    "check_on_error",
    "record_problems",
    "clear_problems",
    "list_problems",
    "summarise",
]

logger = logging.getLogger(__name__)

PROBLEMS = "problems"
#: Accepted values of ``on_error``.
ON_ERROR = ("skip", "fail")
_SEP = "\x1f"  # unit separator: cannot occur in a stage name
_DELETE_CHUNK = 1000

PROBLEMS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # "<stage>\x1f<frame id>"
        pa.field("frame_id", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("severity", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("file", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("count", pa.int64()),
        pa.field("recorded_at", pa.string()),
    ]
)


def check_on_error(on_error: str) -> str:
    """Return ``on_error`` if valid, else raise :class:`InvalidInputError` naming the choices."""
    if on_error not in ON_ERROR:
        raise InvalidInputError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    return on_error


def _key(stage: str, frame_id: str) -> str:
    return f"{stage}{_SEP}{frame_id}"


def record_problems(store: Store, problems: Sequence[Problem]) -> int:
    """Upsert ``problems`` (one row per stage and frame; a later record replaces an earlier one).

    Returns the number of rows written (0 writes nothing).
    """
    if not problems:
        return 0
    latest = {(p.stage, p.frame_id): p for p in problems}  # last record of a frame wins
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    rows = {name: [] for name in PROBLEMS_SCHEMA.names}
    for p in latest.values():
        rows["id"].append(_key(p.stage, p.frame_id))
        rows["frame_id"].append(p.frame_id)
        rows["stage"].append(p.stage)
        rows["severity"].append(p.severity)
        rows["kind"].append(p.kind)
        rows["file"].append(p.file)
        rows["reason"].append(p.reason)
        rows["count"].append(p.count)
        rows["recorded_at"].append(p.recorded_at or now)
    store.upsert(PROBLEMS, pa.table(rows, schema=PROBLEMS_SCHEMA))
    return len(latest)


def clear_problems(store: Store, stage: str, frame_ids: Iterable[str], *,
                   severity: Optional[str] = None) -> int:
    """Delete the rows of ``stage`` for ``frame_ids`` (frames that now succeed); returns how many.

    One read of the stage's rows, a hashed join with ``frame_ids``, then deletes of only the rows
    that exist (nothing is written when none do).
    """
    if not store.has_table(PROBLEMS):
        return 0
    where = f"stage = {_sql(stage)}"
    if severity is not None:
        where += f" AND severity = {_sql(severity)}"
    stored = store.read(PROBLEMS, columns=["id", "frame_id"], where=where)
    if stored.num_rows == 0:
        return 0
    ids = list(frame_ids)
    if not ids:
        return 0
    hit = ids_isin(stored.column("frame_id"), ids)
    keys = [k for k, h in zip(stored.column("id").to_pylist(), hit) if h]
    for begin in range(0, len(keys), _DELETE_CHUNK):
        chunk = keys[begin : begin + _DELETE_CHUNK]
        store.delete(PROBLEMS, "id IN (" + ", ".join(_sql(k) for k in chunk) + ")")
    if keys:
        logger.info("cleared %d %s problem(s) of frames that now succeed", len(keys), stage)
    return len(keys)


def list_problems(store: Store, *, stage: Optional[str] = None,
                  severity: Optional[str] = None) -> list[Problem]:
    """Stored problems (optionally of one stage / severity), sorted by stage then frame id."""
    if not store.has_table(PROBLEMS):
        return []
    clauses = []
    if stage is not None:
        clauses.append(f"stage = {_sql(stage)}")
    if severity is not None:
        clauses.append(f"severity = {_sql(severity)}")
    rows = store.read(PROBLEMS, where=" AND ".join(clauses) or None).to_pylist()
    rows.sort(key=lambda r: (r["stage"], r["frame_id"]))
    return [Problem(**{k: v for k, v in r.items() if k != "id"}) for r in rows]


def summarise(problems: Sequence[Problem], what: str) -> str:
    """One line for the log / CLI: how many bad frames and the first few reasons."""
    bad = [p for p in problems if p.severity == "error"]
    warned = [p for p in problems if p.severity != "error"]
    parts = []
    if bad:
        first = "; ".join(f"{p.frame_id}: {p.reason}" for p in bad[:3])
        parts.append(f"{len(bad)} bad frame(s) skipped by {what} ({first}"
                     + (" ..." if len(bad) > 3 else "") + ")")
    if warned:
        parts.append(f"{len(warned)} frame(s) kept with warnings (e.g. NaN/inf points dropped)")
    return "; ".join(parts) + "; `curate problems` lists them" if parts else ""


def _sql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
