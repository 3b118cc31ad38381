"""Path confinement: a file named below a root must resolve (symlinks followed) inside it.

One helper for every place that reads files from a folder it was given: the data sources
(:mod:`curate.sources`), label imports, the loop's label oracle and the HTTP server's path
fields. A symlink below a root that points outside it (``velodyne/000001.bin -> /etc/shadow``)
is refused with :class:`PathOutsideRootError`, which names the file; the HTTP server answers it
with 403.

Resolving a path is O(path depth) system calls; sources check each file once when they list or
describe it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence, Union

from curate.auth import PermissionDeniedError
from curate.errors import InvalidInputError

__all__ = ["PathOutsideRootError", "inside", "confine"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]


class PathOutsideRootError(PermissionDeniedError):
    """A path below a root resolves (through a symlink or ``..``) to a place outside it."""


def inside(path: PathLike, root: PathLike, what: str = "file") -> Path:
    """Return ``path`` unchanged when it resolves inside ``root``, else raise.

    Parameters
    ----------
    path : path
        A path below ``root`` (absolute, or relative to the working directory).
    root : path
        The folder the path must stay in (resolved here too).
    what : str
        What the path is, for the error message (``"velodyne scan"``, ``"label file"``).

    Returns
    -------
    pathlib.Path
        ``path`` as given (not resolved), so stored paths keep the user's spelling.

    Raises
    ------
    PathOutsideRootError
        The resolved path is not ``root`` or below it.
    """
    p = Path(path)
    real_root = Path(root).resolve()
    resolved = p.resolve()
    if resolved == real_root or resolved.is_relative_to(real_root):
        return p
    raise PathOutsideRootError(
        f"{what} {p} resolves to {resolved}, outside the folder {real_root} it was read from "
        "(a symlink or '..' leads out); copy the file into the folder or point the source at "
        "the folder it really lives in"
    )


def confine(raw: str, roots: Sequence[Path], what: str) -> Path:
    """Resolve ``raw`` (relative paths against the first root) and require it inside ``roots``.

    Used for the path fields of HTTP requests (``roots``: the server's data roots).

    Returns
    -------
    pathlib.Path
        The resolved path.

    Raises
    ------
    InvalidInputError
        ``raw`` holds a NUL character.
    PermissionDeniedError
        No roots are configured, or the path resolves outside all of them.
    """
    if "\x00" in raw:
        raise InvalidInputError(f"{what} contains a NUL character")
    if not roots:
        raise PermissionDeniedError(
            f"this server reads no {what}s: start it with `curate serve --data-root DIR` to allow "
            "files under DIR"
        )
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = roots[0] / path
    resolved = path.resolve()
    for root in roots:
        if resolved == root or resolved.is_relative_to(root):
            return resolved
    raise PathOutsideRootError(
        f"{what} {raw!r} resolves outside the folders this server allows for it "
        f"({', '.join(str(r) for r in roots)}); give a path below one of them"
    )
