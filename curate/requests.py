"""Request bodies of the HTTP routes, derived from the declared signatures of the interface.

A body model is not written out by hand: :func:`request_model` builds it with pydantic's
``create_model`` from ``inspect.signature`` of the :class:`~curate.interface.WorkspaceAPI` method
the route serves, so its fields, types and defaults are those of the method. A derivation names
only what differs on the wire:

* ``exclude``: arguments that do not travel (path parameters, ``progress``, local-only engines);
* ``types``: a wire type for an argument whose Python type cannot travel as it is (a selector
  object is sent as its registry name, a numpy matrix as nested lists);
* ``limits``: field constraints (lengths, ranges) that keep a request small and well-formed.

Sequences travel as lists, ``**kwargs`` as one mapping field named like them, and every string
field is at most ``MAX_STRING`` characters unless ``limits`` says otherwise. Values are checked by
the workspace (the same messages as in process), not by the schema.

Bodies that are no method's arguments (a source spec, a server-side export, a loop config with
``stop_after``) are written by hand below and registered like the derived ones in
:data:`REQUESTS`, the model of each operation that takes a body.
"""

from __future__ import annotations

import collections.abc
import inspect
import logging
import typing
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from curate.api import SourceSpec
from curate.interface import WorkspaceAPI

__all__ = ["request_model", "REQUESTS", "MAX_STRING", "annotation_of", "wire_type", "is_str_type", "FramesRequest", "BoxesRequest", "LabelRequest",
           "VectorsRequest", "EmbedRequest", "SelectRequest", "SearchRequest", "LabelImportRequest",
           "FuseRequest", "ScoresWriteRequest", "ScoresReadRequest", "PretrainRequest", "LoopRequest",
           "ExportRequest"]

logger = logging.getLogger(__name__)

#: Longest string a request field takes unless its limits say otherwise.
MAX_STRING = 8192


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def annotation_of(method: Any, name: str) -> Any:
    """The evaluated annotation of parameter ``name`` of ``method`` (Any when it names a type
    that exists only for type checkers)."""
    raw = inspect.signature(method).parameters[name].annotation
    if raw is inspect.Parameter.empty:
        return Any
    if not isinstance(raw, str):
        return raw
    namespace = {**vars(typing), **vars(__import__("curate.interface", fromlist=["x"]))}
    try:
        return eval(raw, namespace)  # noqa: S307 - our own source text, not input
    except NameError:
        return Any


def wire_type(tp: Any) -> Any:
    """The JSON form of a type: sequences and iterables as lists, paths as strings."""
    if tp is Path:
        return str
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union:
        members = tuple(dict.fromkeys(wire_type(a) for a in args))
        return members[0] if len(members) == 1 else Union[members]  # type: ignore[return-value]
    if origin in (collections.abc.Sequence, collections.abc.Iterable, list, tuple, set, frozenset) \
            and args and origin is not tuple:
        return list[wire_type(args[0])]  # type: ignore[misc]
    if origin is dict and args:
        return dict[wire_type(args[0]), wire_type(args[1])]  # type: ignore[misc]
    return tp


def is_str_type(tp: Any) -> bool:
    return tp is str or (typing.get_origin(tp) is Union and str in typing.get_args(tp)
                         and all(a in (str, type(None)) for a in typing.get_args(tp)))


def request_model(
    api: str,
    name: str,
    *,
    exclude: tuple[str, ...] = (),
    types: Optional[dict[str, Any]] = None,
    limits: Optional[dict[str, dict[str, Any]]] = None,
    doc: Optional[str] = None,
) -> type[BaseModel]:
    """The request body of the interface method ``api``, derived from its signature.

    Parameters
    ----------
    api : str
        Method of :class:`~curate.interface.WorkspaceAPI`.
    name : str
        Class name of the model.
    exclude : tuple of str
        Arguments that are not body fields.
    types : dict, optional
        Wire types replacing the declared ones.
    limits : dict, optional
        Extra ``Field`` constraints per argument.
    doc : str, optional
        The model's docstring (default: names the method).

    Returns
    -------
    type of pydantic.BaseModel
    """
    method = getattr(WorkspaceAPI, api)
    types, limits = dict(types or {}), dict(limits or {})
    fields: dict[str, Any] = {}
    for param in list(inspect.signature(method).parameters.values())[1:]:
        if param.name in exclude:
            continue
        extra = dict(limits.pop(param.name, {}))
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            tp = types.pop(param.name, dict[str, Any])
            fields[param.name] = (tp, Field(default_factory=dict, **extra))
            continue
        tp = types.pop(param.name) if param.name in types else wire_type(annotation_of(method, param.name))
        if is_str_type(tp):
            extra.setdefault("max_length", MAX_STRING)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (tp, Field(default=default, **extra))
    unknown = sorted(set(types) | set(limits))
    if unknown:
        raise TypeError(f"{name}: {', '.join(unknown)} are not arguments of WorkspaceAPI.{api}")
    model = create_model(name, __base__=_Model, __module__=__name__, **fields)
    model.__doc__ = doc or f"Body of the route serving ``{api}`` (fields: its arguments)."
    return model


_NAME = {"min_length": 1, "max_length": 256}
_VERSION = {"ge": 1, "le": 2**63 - 1}

FramesRequest = request_model("frames", "FramesRequest", limits={"version": _VERSION})
BoxesRequest = request_model("boxes", "BoxesRequest")
LabelRequest = request_model("label", "LabelRequest")
VectorsRequest = request_model("vectors", "VectorsRequest", exclude=("embedding",),
                               limits={"version": _VERSION})
EmbedRequest = request_model(
    "embed", "EmbedRequest", exclude=("progress", "engine", "address", "workers"),
    types={"model": str},
    limits={"model": _NAME, "name": _NAME, "device": {"min_length": 1, "max_length": 32},
            "precision": {"min_length": 1, "max_length": 16}, "dtype": {"min_length": 1, "max_length": 16},
            "on_error": {"min_length": 1, "max_length": 8}},
    doc="Body of ``POST /v1/jobs/embed``: ``embed``'s arguments (a registry name as ``model``, the "
        "embedder configuration as ``config``); the server runs the local engine.",
)
SelectRequest = request_model("select", "SelectRequest", types={"strategy": str},
                              limits={"strategy": _NAME, "embedding": _NAME, "score_run": _NAME,
                                      "shards": {"ge": 1}})
SearchRequest = request_model("search", "SearchRequest", types={"vectors": Optional[list[list[float]]]},
                              limits={"embedding": _NAME, "version": _VERSION})
LabelImportRequest = request_model("import_labels", "LabelImportRequest", types={"paths": list[str]},
                                   limits={"paths": {"min_length": 1, "max_length": 100_000},
                                           "format": {"min_length": 1, "max_length": 64},
                                           "prefix": _NAME})
FuseRequest = request_model("fuse", "FuseRequest", exclude=("progress",),
                            limits={"sources": {"min_length": 1, "max_length": 64}, "name": _NAME,
                                    "method": {"min_length": 1, "max_length": 32}})
ScoresWriteRequest = request_model("write_scores", "ScoresWriteRequest", exclude=("run", "predictions"),
                                   types={"columns": dict[str, list[float]]})
ScoresReadRequest = request_model("scores", "ScoresReadRequest", exclude=("run",))
PretrainRequest = request_model("pretrain", "PretrainRequest", exclude=("progress",),
                                types={"config": Union[dict[str, Any], str, None]},
                                limits={"config": {"union_mode": "left_to_right"}})


# ---------------------------------------------------------------------- hand-written bodies
class LoopRequest(_Model):
    """``POST /v1/jobs/loop``: ``loop``'s arguments, with ``stop_after`` taken out of the options.

    ``config`` is a mapping of :class:`curate.loop.LoopConfig` fields, or the path of a JSON /
    YAML config file on the server (below one of its data roots); ``options`` override fields.
    Paths inside the config (``label_dir``, ``pretrained``, ``work_dir``) must lie below a data
    root (``work_dir`` may also lie inside the workspace).
    """

    config: Union[dict[str, Any], str, None] = Field(default=None, union_mode="left_to_right")
    options: dict[str, Any] = Field(default_factory=dict)
    stop_after: Optional[int] = Field(default=None, ge=1, le=10_000)


class ExportRequest(_Model):
    """``POST /v1/runs/{run_id}/export``: write an export file inside the workspace."""

    format: str = Field(min_length=1, max_length=64)
    path: str = Field(min_length=1, max_length=1024, description="relative to the workspace exports/ folder")
    base_url: Optional[str] = Field(default=None, min_length=1, max_length=2048)
    path_root: Optional[str] = Field(default=None, min_length=1, max_length=4096)


#: The body model of every operation that takes one (operation name -> model).
REQUESTS: dict[str, type[BaseModel]] = {
    "ingest": SourceSpec,
    "frames": FramesRequest,
    "boxes": BoxesRequest,
    "label": LabelRequest,
    "vectors": VectorsRequest,
    "submit_embed": EmbedRequest,
    "submit_loop": LoopRequest,
    "submit_pretrain": PretrainRequest,
    "submit_pretrain_image": PretrainRequest,
    "select": SelectRequest,
    "write_scores": ScoresWriteRequest,
    "read_scores": ScoresReadRequest,
    "export_on_server": ExportRequest,
    "import_labels": LabelImportRequest,
    "fuse": FuseRequest,
    "search": SearchRequest,
}
