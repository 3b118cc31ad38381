"""Reading per-row scores, groups and costs passed to ``select``.

``scores`` is either one 1-D array (used whatever name a selector asks for) or a mapping of named
1-D arrays such as the columns of :func:`curate.scoring.frame_scores`. Every array must have one
finite value per row of ``vectors``.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import numpy as np

from curate.errors import InvalidInputError, NotFoundError

__all__ = ["get_score", "get_uncertainty", "score_names", "per_class_scores", "check_row_array", "CLASS_SEP"]

logger = logging.getLogger(__name__)

#: Separator between a metric and a class name in per-class score columns: ``entropy_max__Car``.
CLASS_SEP = "__"


def score_names(scores: Any) -> list[str]:
    """Names available in ``scores`` (empty for a plain array or None)."""
    if isinstance(scores, Mapping):
        return sorted(str(k) for k in scores)
    return []


def check_row_array(values: Any, n: int, what: str, *, finite: bool = True) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array of length ``n`` or raise a clear error."""
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InvalidInputError(
            f"{what} must be a 1-D array with one value per row of vectors ({n}); got shape "
            f"{arr.shape}"
        )
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{what} must be numeric; got dtype {arr.dtype}") from None
    if finite and not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr))
        raise InvalidInputError(
            f"{what} has {bad.size} NaN or inf value(s), first at row {int(bad[0])}; recompute "
            "the scores or drop those frames"
        )
    return arr


def get_score(scores: Any, name: Optional[str], n: int, *, who: str) -> np.ndarray:
    """Fetch one per-row score as float64 ``(n,)``.

    Parameters
    ----------
    scores : array-like or mapping or None
        What was passed to ``select``.
    name : str, optional
        Column to read when ``scores`` is a mapping. A plain array is used as is.
    n : int
        Number of rows.
    who : str
        Strategy name for messages.

    Raises
    ------
    InvalidInputError
        Missing scores, wrong length or non-finite values.
    NotFoundError
        ``name`` is not in the mapping (the message lists the available names).
    """
    if scores is None:
        raise InvalidInputError(
            f"strategy {who!r} needs per-frame scores (e.g. from curate.scoring.frame_scores); "
            "pass scores=..."
        )
    if isinstance(scores, Mapping):
        if name is None:
            if len(scores) == 1:
                name = next(iter(scores))
            else:
                raise InvalidInputError(
                    f"strategy {who!r} got several score columns ({', '.join(score_names(scores))}); "
                    "set its score=... parameter to choose one"
                )
        if name not in scores:
            raise NotFoundError(
                f"score {name!r} needed by strategy {who!r} is not among the given scores; "
                f"available: {', '.join(score_names(scores)) or '(none)'}"
            )
        return check_row_array(scores[name], n, f"score {name!r}")
    return check_row_array(scores, n, "scores")


def get_uncertainty(
    scores: Any, name: Optional[str], n: int, *, who: str, one_minus: bool = False,
    hint: str = "",
) -> np.ndarray:
    """Fetch a non-negative per-row uncertainty as float64 ``(n,)`` (see :func:`get_score`).

    Parameters
    ----------
    scores, name, n, who :
        As for :func:`get_score`.
    one_minus : bool
        The column holds a confidence-like value such as a margin ``p1 - p2``; use ``1 - value``.
    hint : str
        Appended to the error on a negative value (what the caller's user can do).

    Raises
    ------
    InvalidInputError
        As :func:`get_score`, or a negative value (the message names the first such row).
    """
    u = get_score(scores, name, n, who=who)
    if one_minus:
        u = 1.0 - u
    if (u < 0).any():
        row = int(np.flatnonzero(u < 0)[0])
        raise InvalidInputError(
            f"strategy {who!r} needs non-negative uncertainty; row {row} has {float(u[row])}"
            + hint
        )
    return u


def per_class_scores(
    scores: Any, prefix: str, n: int, *, classes: Optional[list[str]] = None, who: str
) -> tuple[list[str], np.ndarray]:
    """Per-class columns ``{prefix}__{class}`` as class names and a float64 ``(C, n)`` array."""
    if not isinstance(scores, Mapping):
        raise InvalidInputError(
            f"strategy {who!r} needs a mapping of per-class scores named "
            f"'{prefix}{CLASS_SEP}<class>' (see curate.scoring.frame_scores)"
        )
    head = f"{prefix}{CLASS_SEP}"
    if classes is None:
        classes = [k[len(head):] for k in sorted(scores) if str(k).startswith(head)]
    if not classes:
        raise NotFoundError(
            f"strategy {who!r} found no per-class scores named '{head}<class>'; available: "
            f"{', '.join(score_names(scores)) or '(none)'}"
        )
    cols = []
    for c in classes:
        key = f"{head}{c}"
        if key not in scores:
            raise NotFoundError(
                f"per-class score {key!r} needed by strategy {who!r} is missing; available: "
                f"{', '.join(score_names(scores))}"
            )
        cols.append(check_row_array(scores[key], n, f"score {key!r}"))
    return list(classes), np.vstack(cols)
