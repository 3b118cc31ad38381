"""Result and record types of the curate API.

These pydantic models are what every client returns: the in-process :class:`~curate.workspace.
Workspace` today and the HTTP client later, so that a script works the same against either.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "IngestReport",
    "EmbedReport",
    "Problem",
    "RunRecord",
    "SelectionResult",
    "LabelReport",
    "Neighbors",
    "SearchResult",
    "JobStatus",
    "SourceSpec",
    "EmbeddingEvaluation",
]


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
    frames_bad : int
        Bad frames skipped (``on_error="skip"``) and recorded in ``problems``.
    """

    source: str
    frames_seen: int
    frames_total: int
    boxes_seen: int
    samples_version: int
    seconds: float
    frames_bad: int = 0


class Problem(_Model):
    """One bad (or repaired) frame recorded by an ingest or embedding job (``ws.problems()``).

    Attributes
    ----------
    frame_id : str
        The frame's id (as it would be stored in ``samples``).
    stage : str
        ``"ingest"`` or ``"embed:<embedding name>"``.
    severity : str
        ``"error"``: the frame was skipped (not ingested / no vector); ``"warning"``: kept but
        changed (NaN/inf points dropped).
    kind : str
        Short cause: the exception class (``CorruptDataError``, ``NotFoundError``, ...) or
        ``nonfinite_points``.
    file : str, optional
        The file at fault.
    reason : str
        The full message (what, where, what to do).
    count : int, optional
        A number that goes with the kind (NaN/inf points dropped).
    recorded_at : str, optional
        UTC time of the run that recorded it.
    """

    frame_id: str
    stage: str
    severity: str = "error"
    kind: str
    file: Optional[str] = None
    reason: str
    count: Optional[int] = None
    recorded_at: Optional[str] = None


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
    frames_bad : int
        Frames skipped as bad (``on_error="skip"``) and recorded in ``problems``.
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
    frames_bad: int = 0


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


class EmbeddingEvaluation(_Model):
    """What ``evaluate_embeddings`` returns: several embeddings of one pool judged side by side.

    Attributes
    ----------
    embeddings : list of str
        The embeddings, in the order asked for.
    frames, drives : int
        Frames (present in every embedding) and drives evaluated.
    metrics : list of str
        Metric names in table order (see :mod:`curate.embedding_eval` for their definitions).
    values : dict
        ``values[column][metric]``: one column per embedding plus ``"prior"`` (what a vector
        carrying no information scores: the majority value, chance AUC, the training mean); ``None``
        where a metric does not apply.
    params : dict
        The arguments the evaluation ran with (k, window, columns, split, seed...).
    notes : list of str
        What was skipped and why (no labels, no place metadata...).
    path : str or None
        The JSON file written, if any.
    """

    embeddings: list[str]
    frames: int
    drives: int
    metrics: list[str]
    values: dict[str, dict[str, Optional[float]]]
    params: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    path: Optional[str] = None

    def table(self, digits: int = 3) -> str:
        """The evaluation as a text table: one row per metric, one column per embedding."""
        cols = [*self.embeddings, "prior"]
        width = max([len(m) for m in self.metrics] + [6])
        cw = [max(len(c), digits + 4) for c in cols]
        lines = [f"{'metric':<{width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cols, cw))]
        for metric in self.metrics:
            cells = []
            for c, w in zip(cols, cw):
                v = self.values.get(c, {}).get(metric)
                cells.append(f"{'-':>{w}}" if v is None else f"{v:>{w}.{digits}f}")
            lines.append(f"{metric:<{width}}  " + "  ".join(cells))
        return "\n".join(lines)


# ---------------------------------------------------------------------- search and jobs
class Neighbors(_Model):
    """The nearest frames of one query.

    Attributes
    ----------
    query : str or None
        The query frame id (``None`` for a query vector).
    ids : list of str
        Neighbour frame ids, nearest first (fewer than ``k`` when fewer frames qualify).
    distances : list of float
        Euclidean distances ascending (``l2``, ``cosine``) or inner products descending (``ip``).
    """

    query: Optional[str] = None
    ids: list[str]
    distances: list[float]


class SearchResult(_Model):
    """What ``search`` returns: one :class:`Neighbors` per query, in query order."""

    embedding: str
    embedding_version: int
    samples_version: Optional[int] = None
    metric: str
    k: int
    where: Optional[str] = None
    results: list[Neighbors]
    #: Which index answered: "flat" (exact) or "ivf" (approximate); None when no frame qualified.
    index_kind: Optional[str] = None
    #: How that index keeps the vectors: "float32" or "fp16".
    index_storage: Optional[str] = None
    #: IVF lists and the lists probed per query (None for flat).
    nlist: Optional[int] = None
    nprobe: Optional[int] = None


class JobStatus(_Model):
    """State of a background job of the HTTP service (``GET /v1/jobs/{id}``).

    Attributes
    ----------
    job_id : str
    kind : str
        ``embed``, ``loop`` or ``pretrain``.
    state : str
        ``queued``, ``running``, ``succeeded``, ``failed``, or ``interrupted`` (the server stopped
        while the job was queued or running; ``error`` says how to resume it).
    done, total : int or None
        Progress in frames (``None`` while unknown).
    result : dict or None
        The job's report (an :class:`EmbedReport` as a dict) once it succeeded.
    error : dict or None
        ``{"type", "module", "message"}`` once it failed.
    created_at, finished_at : str or None
        ISO-8601 UTC times.
    """

    job_id: str
    kind: str
    state: Literal["queued", "running", "succeeded", "failed", "interrupted"]
    done: Optional[int] = None
    total: Optional[int] = None
    params: dict[str, Any] = Field(default_factory=dict)
    result: Optional[dict[str, Any]] = None
    error: Optional[dict[str, Any]] = None
    created_at: str
    finished_at: Optional[str] = None


# ---------------------------------------------------------------------- sources (HTTP)
# Request bodies of the HTTP routes are derived from the interface's signatures: curate.requests.


class SourceSpec(_Model):
    """A data source named by kind, a root and the kind's options (``POST /v1/ingest``).

    ``kind`` is a registered source kind (:mod:`curate.sources.registry`: ``kitti``, ``nuscenes``,
    ``folder``, and any kind registered later) and ``options`` its string options (``split``,
    ``version``, ``prefix``, ``pattern``...); options may also be given as top-level fields
    (``{"kind": "kitti", "root": "kitti", "prefix": "a"}``). Over HTTP ``root`` is resolved on the
    server and must lie inside one of its data roots (``curate serve --data-root DIR``).
    """

    kind: str = Field(min_length=1, max_length=64)
    root: str = Field(min_length=1, max_length=4096)
    options: dict[str, Optional[str]] = Field(default_factory=dict, max_length=32)
    batch_size: int = Field(default=2000, ge=1, le=100_000)
    on_error: str = Field(default="skip", min_length=1, max_length=8)

    @model_validator(mode="before")
    @classmethod
    def _top_level_options(cls, data: Any) -> Any:
        if isinstance(data, dict):
            fixed = {"kind", "root", "options", "batch_size", "on_error"}
            extra = {k: v for k, v in data.items() if k not in fixed}
            if extra:
                data = {**{k: v for k, v in data.items() if k in fixed},
                        "options": {**dict(data.get("options") or {}), **extra}}
        return data

    @model_validator(mode="after")
    def _registered(self) -> "SourceSpec":
        from curate.errors import InvalidInputError, NotFoundError
        from curate.sources.registry import check_options

        try:
            check_options(self.kind, self.options)
        except NotFoundError as exc:  # a bad field value: 422 like any other
            raise InvalidInputError(str(exc).strip("'\"")) from None
        return self

    @classmethod
    def of(cls, source: Any, **fields: Any) -> "SourceSpec":
        """The spec of a reader object of a registered class (``KittiSource(...)`` ...)."""
        from curate.sources.registry import spec_of

        kind, root, options = spec_of(source)
        return cls(kind=kind, root=root, options=options, **fields)

    def build(self, root: Any = None) -> Any:
        """The reader this spec names, over ``root`` (default: the spec's own root)."""
        from curate.sources.registry import build_source

        return build_source(self.kind, self.root if root is None else root, self.options)
