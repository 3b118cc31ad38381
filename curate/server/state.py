"""What one app serves: the workspace, its tokens and data roots, the single writer and the jobs."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

from curate.auth import TokenSet
from curate.server.jobs import JOBS_FILE, JobJournal, JobManager
from curate.wire import ServiceBusyError

__all__ = ["ServerState"]

logger = logging.getLogger(__name__)


class ServerState:
    """What one app serves: the workspace, tokens, roots, the writer lock and the jobs.

    Parameters
    ----------
    workspace_path : path
    tokens : TokenSet
    data_roots : sequence of path
    write_wait_s : float
    """

    def __init__(self, workspace_path: Union[str, Path], tokens: TokenSet,
                 data_roots: Sequence[Union[str, Path]], write_wait_s: float) -> None:
        from curate.workspace import Workspace

        self.workspace = Workspace(workspace_path)
        self.tokens = tokens
        self.data_roots = [Path(r).expanduser().resolve() for r in data_roots]
        self.exports_root = (self.workspace.path / "exports").resolve()
        self.write_lock = threading.Lock()
        self.write_wait_s = float(write_wait_s)
        self.jobs = JobManager(self.write_lock, JobJournal(self.workspace.path / JOBS_FILE))

    @contextmanager
    def writing(self) -> Iterator[Any]:
        """Hold the single-writer lock (waits up to ``write_wait_s``, then ServiceBusyError)."""
        if not self.write_lock.acquire(timeout=self.write_wait_s):
            raise ServiceBusyError(
                f"the workspace is busy with another write (waited {self.write_wait_s:.0f} s); "
                "retry later, or check GET /v1/jobs for a long job"
            )
        try:
            yield self.workspace
        finally:
            self.write_lock.release()
