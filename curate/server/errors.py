"""How the app answers errors: curate / index / embedder errors as JSON with their status.

Errors become ``{"detail", "error": {"type", "module", "message", "attrs"}}``
(:func:`curate.wire.error_payload`) with 404 (not found), 422 (bad input), 401/403 (auth),
413 (size), 503 (busy); unexpected failures are logged and answered 500 without internals.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from curate.errors import CurateError
from curate.wire import error_payload, status_for

__all__ = ["install_error_handlers"]

logger = logging.getLogger(__name__)


def _error_response(exc: BaseException) -> JSONResponse:
    status = status_for(exc)
    if status == 500:
        logger.error("error serving a request", exc_info=exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_payload(exc), status_code=status, headers=headers)


async def _on_error(request: Request, exc: Exception) -> JSONResponse:
    return _error_response(exc)


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    message = "invalid request: " + "; ".join(parts) if parts else "invalid request"
    return JSONResponse(
        {"detail": message, "error": {"type": "InvalidInputError", "module": "curate.errors",
                                      "message": message, "attrs": {}}},
        status_code=422,
    )


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}; see /docs for the API"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}; see /docs"
    name = "NotFoundError" if exc.status_code == 404 else "InvalidInputError"
    return JSONResponse({"detail": message, "error": {"type": name, "module": "curate.errors",
                                                       "message": message, "attrs": {}}},
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error answers on ``app``."""
    app.add_exception_handler(Exception, _on_error)
    for cls in (CurateError, ValueError, KeyError, LookupError):
        app.add_exception_handler(cls, _on_error)
    try:
        from index.errors import StoreError

        app.add_exception_handler(StoreError, _on_error)
    except ImportError:  # pragma: no cover
        pass
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
