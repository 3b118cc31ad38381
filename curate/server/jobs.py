"""Background jobs of the server: one at a time on a worker thread, journaled, with progress.

Jobs (embedding, the detector loop, pretraining) run one at a time and hold the write lock.
Their progress is what the job reports: a job function passes ``job.reporter(unit)`` as the
``progress=`` callback of the workspace method it runs (:data:`curate.progress.Progress`), or
calls ``job.advance`` from a callback of its own (the loop's ``on_round``). Records are journaled
in ``<workspace>/jobs.jsonl`` (rewritten atomically at every state change, progress saved every
second), so ``GET /v1/jobs`` survives a restart; a job that was queued or running when the
server died is listed as ``interrupted``, with how to resume it.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import queue
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from curate.api import JobStatus
from curate.errors import NotFoundError
from curate.progress import ProgressCallback
from curate.wire import error_payload, status_for

__all__ = ["JOBS_FILE", "Job", "JobJournal", "JobManager"]

logger = logging.getLogger(__name__)

#: Seconds between saves of a running job's progress to the job journal.
_PROGRESS_SAVE_S = 1.0
#: Finished jobs remembered for ``GET /v1/jobs``.
_MAX_JOBS_KEPT = 1000


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


#: Journal of the jobs of a workspace (JSON lines, one job each, rewritten atomically).
JOBS_FILE = "jobs.jsonl"
#: How to pick up each kind of job again after a server restart.
_RESUME_HINTS = {
    "embed": "submit the same embed job again: it resumes, only frames without a vector are computed",
    "loop": "submit the same loop again (same name and config): it skips the rounds stored in runs "
            "and resumes at the next one",
    "pretrain": "submit the same pretraining again (same name): it resumes from the last checkpoint",
}


class Job:
    """One background job: its parameters, state, progress and result or error."""

    def __init__(self, kind: str, params: dict[str, Any]) -> None:
        self.job_id = f"job-{uuid.uuid4().hex[:12]}"
        self.kind = kind
        self.params = params
        self.state = "queued"
        self.done: Optional[int] = None
        self.total: Optional[int] = None
        self.result: Optional[dict[str, Any]] = None
        self.error: Optional[dict[str, Any]] = None
        self.created_at = _now()
        self.finished_at: Optional[str] = None

    def reporter(self, unit: str) -> ProgressCallback:
        """A ``progress=`` callback (:data:`curate.progress.Progress`) for the workspace method
        the job runs: advances in ``unit`` (``frame``, ``step``, ...) set the job's ``done`` and
        ``total``; advances in other units (a preparation phase) are ignored, so progress never
        goes back."""

        def report(done: int, total: Optional[int], advanced: str) -> None:
            if advanced == unit:
                self.advance(done, total)

        return report

    def advance(self, done: int, total: Optional[int]) -> None:
        """Record that ``done`` of ``total`` units are finished."""
        self.done, self.total = int(done), (None if total is None else int(total))

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Job":
        """A job read back from the journal (a :class:`JobStatus` as a dict)."""
        status = JobStatus(**record)
        job = cls(status.kind, dict(status.params))
        job.job_id, job.state, job.done, job.total = status.job_id, status.state, status.done, status.total
        job.result, job.error = status.result, status.error
        job.created_at, job.finished_at = status.created_at, status.finished_at
        return job

    def status(self) -> JobStatus:
        """The job's record (also what the journal stores)."""
        return JobStatus(job_id=self.job_id, kind=self.kind, state=self.state, done=self.done,
                         total=self.total, params=self.params, result=self.result, error=self.error,
                         created_at=self.created_at, finished_at=self.finished_at)


class JobJournal:
    """The job records of a workspace in ``<workspace>/jobs.jsonl``, surviving server restarts.

    The whole file is rewritten (temporary file, fsync, ``os.replace``) at every state change,
    so a ``kill -9`` leaves either the old or the new journal, never a torn one. O(jobs kept)
    per write; at most ``_MAX_JOBS_KEPT`` records.

    Parameters
    ----------
    path : pathlib.Path
        The journal file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> list[Job]:
        """Jobs of the journal, oldest first; unreadable lines are skipped with a warning."""
        if not self.path.is_file():
            return []
        jobs = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                jobs.append(Job.from_record(json.loads(line)))
            except (ValueError, TypeError) as exc:
                logger.warning("%s line %d: not a job record (%s); skipped", self.path, number, exc)
        return jobs

    def save(self, jobs: Sequence[Job]) -> None:
        """Write every job record (atomic replace)."""
        lines = [json.dumps(j.status().model_dump(mode="json"), sort_keys=True) for j in jobs]
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + ("\n" if lines else ""))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


def _interrupted_error(job: Job) -> dict[str, Any]:
    hint = _RESUME_HINTS.get(job.kind, "submit it again")
    message = (f"job {job.job_id} ({job.kind}) was {job.state} when the server stopped "
               f"(killed or crashed); nothing of it runs any more. To finish it, {hint}")
    return {"type": "JobInterruptedError", "module": "curate.wire", "message": message,
            "attrs": {"job_id": job.job_id, "resume": hint}}


class JobManager:
    """Runs background jobs one at a time on a worker thread, each under the write lock.

    Job records are kept in a :class:`JobJournal` when ``journal`` is given: queued, running and
    finished jobs survive a restart, and jobs that were queued or running when the previous
    server died are marked ``interrupted`` (with how to resume them) when the manager starts.

    Parameters
    ----------
    write_lock : threading.Lock
        The server's single-writer lock.
    journal : JobJournal, optional
        Where job records are persisted (None: in memory only).
    """

    def __init__(self, write_lock: threading.Lock, journal: Optional[JobJournal] = None) -> None:
        self._write_lock = write_lock
        self._journal = journal
        self._queue: "queue.Queue[Optional[tuple[Job, Callable[[Job], dict]]]]" = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._guard = threading.Lock()
        if journal is not None:
            stale = 0
            for job in journal.load():
                if job.state in ("queued", "running"):
                    job.error = _interrupted_error(job)
                    job.state = "interrupted"
                    job.finished_at = _now()
                    stale += 1
                self._jobs[job.job_id] = job
            if stale:
                logger.warning("%d job(s) were interrupted by the last server stop; GET /v1/jobs "
                               "lists them with how to resume", stale)
                self._save()
        self._running: Optional[Job] = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._work, name="curate-jobs", daemon=True)
        self._thread.start()
        if journal is not None:
            threading.Thread(target=self._record_progress, name="curate-jobs-progress", daemon=True).start()

    def _record_progress(self) -> None:
        """Every ``_PROGRESS_SAVE_S`` seconds, persist the running job's progress (journal only)."""
        saved: tuple[Optional[int], Optional[int]] = (None, None)
        while not self._stopped.wait(_PROGRESS_SAVE_S):
            job = self._running
            if job is None or job.state != "running":
                continue
            if (job.done, job.total) != saved:
                saved = (job.done, job.total)
                self._save()

    def _save(self) -> None:
        """Persist the job records (caller need not hold ``_guard``)."""
        if self._journal is None:
            return
        with self._guard:
            jobs = list(self._jobs.values())
            try:
                self._journal.save(jobs)
            except OSError:  # a full disk must not kill the jobs; the state stays in memory
                logger.exception("could not write the job journal %s", self._journal.path)

    def submit(self, kind: str, params: dict[str, Any], fn: Callable[[Job], dict]) -> JobStatus:
        """Queue ``fn(job)`` (returns the result dict); returns the queued job's status."""
        job = Job(kind, params)
        with self._guard:
            self._jobs[job.job_id] = job
            finished = [j for j in self._jobs.values() if j.finished_at]
            for old in finished[: max(0, len(self._jobs) - _MAX_JOBS_KEPT)]:
                del self._jobs[old.job_id]
        self._save()
        self._queue.put((job, fn))
        logger.info("queued %s (%s %s)", job.job_id, kind, params)
        return job.status()

    def get(self, job_id: str) -> JobStatus:
        """Status of one job (NotFoundError when unknown)."""
        with self._guard:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(
                f"no job {job_id!r} on this server (jobs of this workspace are kept in its "
                f"{JOBS_FILE}, the latest {_MAX_JOBS_KEPT}); GET /v1/jobs lists them"
            )
        return job.status()

    def list(self) -> list[JobStatus]:
        """Every job kept, oldest first."""
        with self._guard:
            jobs = list(self._jobs.values())
        return [j.status() for j in jobs]

    def stop(self) -> None:
        """Stop the worker after the running job."""
        self._stopped.set()
        self._queue.put(None)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, fn = item
            with self._write_lock:
                job.state = "running"
                self._running = job
                self._save()
                try:
                    job.result = fn(job)
                    job.state = "succeeded"
                    if job.total is not None:
                        job.done = job.total
                except BaseException as exc:  # noqa: BLE001 - a job must never kill the worker
                    if status_for(exc) == 500:
                        logger.exception("job %s failed", job.job_id)
                    else:
                        logger.warning("job %s failed: %s", job.job_id, exc)
                    job.error = error_payload(exc)["error"]
                    job.state = "failed"
                finally:
                    job.finished_at = _now()
                    self._running = None
                    self._save()
