"""Result and record types of the curate API.

These pydantic models are what every client returns: the in-process :class:`~curate.workspace.
Workspace` today and the HTTP client later, so that a script works the same against either.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["IngestReport", "EmbedReport", "RunRecord", "SelectionResult", "LabelReport"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestReport(_Model):
    """What an ingest did.

    Attributes
    ----------
    source : str
        Description of the source (kind and root).
    frames_seen : int
        Frames the source yielded.
    frames_total : int
        Rows of ``samples`` after the ingest.
    boxes_seen : int
        Ground-truth boxes the source carried.
    samples_version : int
        Version of the ``samples`` table after the ingest.
    seconds : float
        Wall time.
    """

    source: str
    frames_seen: int
    frames_total: int
    boxes_seen: int
    samples_version: int
    seconds: float


class EmbedReport(_Model):
    """What an embedding job did.

    Attributes
    ----------
    embedding : str
        Name of the embedding table (used as ``embedding=`` when selecting).
    embedder : str
        Registry name of the embedder.
    dim : int
        Vector size.
    weights_sha256 : str
        Checksum of the weights that produced the vectors.
    computed : int
        Frames embedded by this call.
    skipped : int
        Frames that already had a vector from the same model.
    total : int
        Rows in the embedding table afterwards.
    version : int
        Version of the embedding table afterwards.
    seconds : float
        Wall time.
    """

    embedding: str
    embedder: str
    dim: int
    weights_sha256: str
    computed: int
    skipped: int
    total: int
    version: int
    seconds: float


class LabelReport(_Model):
    """Result of marking frames as labeled."""

    requested: int
    newly_labeled: int
    labeled_total: int
    samples_version: int


class RunRecord(_Model):
    """One stored selection run: everything needed to repeat it and to audit it.

    Attributes
    ----------
    run_id : str
        Stable identifier (``run-000001``, ...).
    kind : str
        ``selection`` (loop rounds later).
    created_at : str
        ISO-8601 UTC time.
    strategy : str
        Registry name of the selector.
    params : dict
        Constructor parameters of the selector.
    budget : int
        Requested number of frames.
    seed : int
        Seed given to the selector.
    embedding : str
        Embedding table the vectors came from.
    embedding_version : int
        Version of that table that was read.
    samples_version : int
        Version of ``samples`` that was read (candidates and label state).
    where : str or None
        Metadata filter applied to the candidates.
    num_candidates : int
        Unlabeled frames that matched the filter.
    num_labeled : int
        Labeled frames used as context (initial centers, ...).
    ids : list of str
        Selected frame ids in pick order.
    gains : list of float or None
        Per-pick gain (``None`` where not finite, e.g. the first k-center pick).
    info : dict
        Selector diagnostics.
    package_version : str
        Version of curate that made the run.
    seconds : float
        Wall time of the selection.
    """

    run_id: str
    kind: str = "selection"
    created_at: str
    strategy: str
    params: dict[str, Any] = Field(default_factory=dict)
    budget: int
    seed: int
    embedding: str
    embedding_version: int
    samples_version: int
    where: Optional[str] = None
    num_candidates: int
    num_labeled: int
    ids: list[str]
    gains: list[Optional[float]]
    info: dict[str, Any] = Field(default_factory=dict)
    package_version: str
    seconds: float


class SelectionResult(_Model):
    """What ``select`` returns: the stored run and convenient views of it."""

    run: RunRecord

    @property
    def run_id(self) -> str:
        """Identifier of the stored run."""
        return self.run.run_id

    @property
    def ids(self) -> list[str]:
        """Selected frame ids in pick order."""
        return list(self.run.ids)

    @property
    def gains(self) -> list[Optional[float]]:
        """Per-pick gains (``None`` where not finite)."""
        return list(self.run.gains)

    def __len__(self) -> int:
        return len(self.run.ids)


def finite_or_none(value: float) -> Optional[float]:
    """Return ``value`` as float, or ``None`` when it is NaN or infinite (JSON has neither)."""
    v = float(value)
    return v if math.isfinite(v) else None
