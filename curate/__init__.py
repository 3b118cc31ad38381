"""curate: embedding-first data curation for autonomous-driving perception.

Start with :func:`connect`::

    import curate
    ws = curate.connect("./curate-workspace")
    ws.ingest(curate.sources.KittiSource("data/kitti"))
    ws.embed("recon-tiny")
    sel = ws.select(curate.selectors.KCenterGreedy(), 50, embedding="recon-tiny")
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

# LanceDB's Rust logger prints a WARN line for every table it creates ("No existing dataset ...
# it will be created"); keep errors only unless the user chose a level (read at lancedb import).
os.environ.setdefault("LANCEDB_LOG", "error")

from curate import selectors  # noqa: E402
from curate._version import __version__
from curate.api import EmbedReport, IngestReport, LabelReport, RunRecord, SelectionResult
from curate.errors import (
    BudgetError,
    CorruptDataError,
    CurateError,
    InvalidInputError,
    NotFoundError,
)
from curate.selectors import KCenterGreedy, Random, Selection, Selector
from curate.workspace import Workspace

if TYPE_CHECKING:
    from curate.client import RemoteWorkspace

__all__ = [
    "__version__",
    "connect",
    "Workspace",
    "selectors",
    "Selection",
    "Selector",
    "Random",
    "KCenterGreedy",
    "IngestReport",
    "EmbedReport",
    "LabelReport",
    "RunRecord",
    "SelectionResult",
    "CurateError",
    "InvalidInputError",
    "NotFoundError",
    "CorruptDataError",
    "BudgetError",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def connect(
    path: Union[str, Path] = "./curate-workspace",
    *,
    create: bool = True,
    token: Optional[str] = None,
) -> Union[Workspace, "RemoteWorkspace"]:
    """Open (or create) the workspace at ``path``, or connect to a ``curate serve`` URL.

    Parameters
    ----------
    path : str or pathlib.Path
        Workspace directory, or ``http://host:port`` of a server.
    create : bool
        Create the directory when missing (local workspaces only).
    token : str, optional
        Bearer token for a server (default: ``$CURATE_TOKEN``); ignored for directories.

    Returns
    -------
    Workspace or curate.client.RemoteWorkspace
        Both have the same methods and return the same result types.
    """
    from curate.client import RemoteWorkspace, is_url

    if is_url(path):
        return RemoteWorkspace(str(path), token=token)
    return Workspace(path, create=create)
