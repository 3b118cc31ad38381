"""The type of an in-process workspace as the modules it delegates to see it.

:class:`LocalWorkspace` is the workspace API (:class:`curate.interface.WorkspaceAPI`) plus the
workspace's directory and :class:`~index.store.Store`. The detector loop, its info pickles and its
evaluation take one: they call public workspace methods (``select``, ``label``, ``boxes``,
``write_scores``...) and read the store, and annotate with this protocol instead of importing
:class:`curate.workspace.Workspace` (which imports them: the import graph stays acyclic).
:class:`~curate.workspace.Workspace` is the implementation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from curate.interface import WorkspaceAPI
from index.store import Store

__all__ = ["LocalWorkspace"]


@runtime_checkable
class LocalWorkspace(WorkspaceAPI, Protocol):
    """A workspace in this process: the API, its directory and its store."""

    #: The workspace directory.
    path: Path
    #: The LanceDB tables of the workspace.
    store: Store
