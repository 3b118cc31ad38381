"""The wire format shared by ``curate serve`` and its HTTP client: media types, codecs, errors.

Both :mod:`curate.server` and :mod:`curate.client` import this module; neither imports the other.

* Media types: JSON bodies, Arrow IPC streams (:data:`ARROW_STREAM`) for tables and vectors,
  export files (:data:`EXPORT_MEDIA`).
* Codecs: :func:`table_to_ipc` / :func:`table_from_ipc` (Arrow), :func:`encode_floats` /
  :func:`decode_floats` (non-finite floats inside JSON job results).
* Errors: :func:`status_for` (exception -> HTTP status), :func:`error_payload` (exception -> the
  JSON body ``{"detail", "error": {"type", "module", "message", "attrs"}}``) and
  :func:`error_from_response` (that body -> the same exception class with the same message).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
from typing import Any, Optional

import pyarrow as pa

from curate.auth import AuthenticationError, PermissionDeniedError
from curate.errors import CurateError, InvalidInputError, NotFoundError

__all__ = [
    "ARROW_STREAM",
    "EXPORT_MEDIA",
    "ServiceError",
    "ServiceBusyError",
    "RemoteNotSupportedError",
    "JobInterruptedError",
    "encode_floats",
    "decode_floats",
    "table_to_ipc",
    "table_from_ipc",
    "status_for",
    "error_payload",
    "error_from_response",
]

logger = logging.getLogger(__name__)

#: Media type of Arrow IPC stream bodies.
ARROW_STREAM = "application/vnd.apache.arrow.stream"
#: Packages whose exception classes the client re-raises by name (anything else: by status).
_ERROR_PACKAGES = ("curate", "index", "embedders")


class ServiceError(CurateError):
    """The server could not be reached, or failed on its side (HTTP 5xx)."""


class ServiceBusyError(ServiceError):
    """The server's single writer stayed busy longer than it waits for a write (HTTP 503)."""


class RemoteNotSupportedError(InvalidInputError, AttributeError):
    """A workspace method that has no HTTP route yet (also an AttributeError, for ``hasattr``)."""


class JobInterruptedError(ServiceError):
    """A server job stopped with the server (killed or crashed) before it finished.

    The message says how to resume it (resubmitting resumes: embedding jobs compute only the
    missing frames, loops skip stored rounds, pretraining continues from its last checkpoint).
    """


#: Key of the JSON object standing for a non-finite float in job results (JSON has none).
_FLOAT_KEY = "$float"


def encode_floats(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``{"$float": "nan" | "inf" | "-inf"}``.

    Job results travel as JSON, which has no NaN or infinity; :func:`decode_floats` restores
    them, so a remote result equals the local one. O(size of value).
    """
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT_KEY: "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, dict):
        return {k: encode_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_floats(v) for v in value]
    return value


def decode_floats(value: Any) -> Any:
    """Inverse of :func:`encode_floats`."""
    if isinstance(value, dict):
        if len(value) == 1 and _FLOAT_KEY in value and value[_FLOAT_KEY] in ("nan", "inf", "-inf"):
            return float(value[_FLOAT_KEY])
        return {k: decode_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_floats(v) for v in value]
    return value


#: Media types of the export formats a server renders for download.
EXPORT_MEDIA = {
    "csv": "text/csv",
    "json": "application/json",
    "parquet": "application/vnd.apache.parquet",
    "imagesets": "text/plain",
    "tokens": "text/plain",
}


def table_to_ipc(table: pa.Table) -> bytes:
    """An Arrow table as the bytes of one IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def table_from_ipc(data: bytes) -> pa.Table:
    """Inverse of :func:`table_to_ipc`."""
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return reader.read_all()


def status_for(exc: BaseException) -> int:
    """HTTP status of an exception raised while serving a request."""
    from index import errors as ie

    if isinstance(exc, AuthenticationError):
        return 401
    if isinstance(exc, PermissionDeniedError):
        return 403
    if isinstance(exc, ServiceBusyError):
        return 503
    if isinstance(exc, (NotFoundError, ie.NotFoundError, ie.TableNotFoundError, ie.VersionError)):
        return 404
    if isinstance(exc, (CurateError, ie.StoreError, ValueError)):
        return 422  # includes EmbedderError (a ValueError) and plain ValueErrors of validation
    return 500


def error_payload(exc: BaseException) -> dict[str, Any]:
    """The JSON body of an error response (and of a failed job's ``error``)."""
    status = status_for(exc)
    if status == 500:
        return {"detail": "internal server error (see the server log)",
                "error": {"type": "ServiceError", "module": "curate.wire",
                          "message": f"internal server error: {type(exc).__name__} (see the server log)",
                          "attrs": {}}}
    from embedders.errors import EmbedderError
    from index.errors import StoreError

    cls = type(exc)
    module, name = cls.__module__, cls.__name__
    if not isinstance(exc, (CurateError, StoreError, EmbedderError)):
        module, name = "curate.errors", "InvalidInputError"  # e.g. a plain ValueError
    attrs = {k: v for k, v in vars(exc).items()
             if not k.startswith("_") and isinstance(v, (str, int, float, bool, type(None), list))}
    try:
        json.dumps(attrs)
    except (TypeError, ValueError):
        attrs = {}
    message = str(exc)
    return {"detail": message, "error": {"type": name, "module": module, "message": message,
                                         "attrs": attrs}}


def _error_class(module: str, name: str) -> Optional[type]:
    """The project's exception class ``module.name`` (None for anything else)."""
    if module.split(".", 1)[0] not in _ERROR_PACKAGES or not name.isidentifier():
        return None
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None
    if not isinstance(cls, type):
        return None
    from embedders.errors import EmbedderError
    from index.errors import StoreError

    return cls if issubclass(cls, (CurateError, StoreError, EmbedderError)) else None


def _fallback_class(status: int) -> type:
    from curate.auth import AuthenticationError, PermissionDeniedError

    if status == 401:
        return AuthenticationError
    if status == 403:
        return PermissionDeniedError
    if status == 404:
        return NotFoundError
    if status == 503:
        return ServiceBusyError
    if 400 <= status < 500:
        return InvalidInputError
    return ServiceError


def error_from_response(status: int, body: Any) -> Exception:
    """Rebuild the server's exception: same class (when known) and same message."""
    info = body.get("error") if isinstance(body, dict) else None
    message = None
    cls = None
    attrs: dict[str, Any] = {}
    if isinstance(info, dict):
        message = info.get("message")
        cls = _error_class(str(info.get("module", "")), str(info.get("type", "")))
        attrs = info.get("attrs") or {}
    if message is None:
        detail = body.get("detail") if isinstance(body, dict) else body
        message = detail if isinstance(detail, str) else f"HTTP {status}: {detail!r}"
    cls = cls or _fallback_class(status)
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    for key, value in attrs.items():
        try:
            setattr(exc, key, value)
        except AttributeError:  # pragma: no cover - read-only attribute
            pass
    return exc
