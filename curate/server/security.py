"""What the server lets a request do: token scopes, path confinement, body limits, caps.

* Tokens and scopes: :func:`authorise` is the FastAPI dependency of every operation route; it
  checks ``Authorization: Bearer TOKEN`` against the server's :class:`~curate.auth.TokenSet`
  (401 without a valid token, 403 for a read token on a write route). :func:`route_scope` reads
  the scope back from a route (the scope tests enumerate the app's own routes with it).
* Paths: every path a request names is resolved (symlinks followed) and must lie inside the
  server's data roots (:func:`confine_path`, built on :func:`curate.confine.confine`, which also
  refuses files that link out of a root); names that become folders must be plain
  (:func:`plain_name`); a loop's detector must be a registered name (a config file would be
  executed by mmengine) and its worker counts are capped (:func:`check_loop_detector`).
* Body limits: :class:`BodyLimit` refuses request bodies over the limit with 413 before they are
  parsed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from curate.auth import PermissionDeniedError
from curate.confine import confine
from curate.errors import InvalidInputError

__all__ = ["DEFAULT_MAX_BODY_BYTES", "MAX_WORKERS", "BodyLimit", "authorise", "route_scope",
           "confine_path", "plain_name", "plain_file_name", "export_target", "confine_loop_config",
           "check_loop_detector", "check_workers"]

logger = logging.getLogger(__name__)

#: Default request body limit (bytes).
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Most reader processes / workers a request may ask for.
MAX_WORKERS = 16


# ---------------------------------------------------------------------- tokens and scopes
def authorise(needed: str) -> Callable[..., None]:
    """The FastAPI dependency that requires a token of scope ``needed`` (``read`` / ``write``)."""
    bearer = HTTPBearer(auto_error=False, description="a read or write token")

    def check(request: Request,
              credentials: Optional[HTTPAuthorizationCredentials] = Depends(bearer)) -> None:
        request.app.state.curate.tokens.check(request.headers.get("authorization"), needed)

    check.scope = needed  # type: ignore[attr-defined]  # read by route_scope() and the tests
    return check


def route_scope(route: Any) -> Optional[str]:
    """The token scope (``read`` / ``write``) a route of the app requires; None: public."""
    for dep in getattr(route, "dependencies", None) or []:
        scope = getattr(dep.dependency, "scope", None)
        if scope is not None:
            return scope
    return None


# ---------------------------------------------------------------------- paths
def confine_path(raw: str, roots: Sequence[Path], what: str) -> Path:
    """Resolve ``raw`` (relative paths against the first root) and require it inside ``roots``
    (PermissionDeniedError naming ``what`` otherwise; a symlink out of a root is refused)."""
    return confine(raw, roots, what)


def plain_name(name: str, what: str) -> str:
    """Require a name usable as one path component (no separators, not ``.``/``..``)."""
    if (not name or "/" in name or "\\" in name or "\x00" in name or name in (".", "..")
            or name.startswith("~")):
        raise InvalidInputError(
            f"{what} {name!r} must be a plain name (it names a folder on the server); "
            "use letters, digits, '-', '_' or '.'"
        )
    return name


def plain_file_name(name: str) -> str:
    """Require a plain file name (an export's ``filename``)."""
    if "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise InvalidInputError(f"filename {name!r} must be a plain file name")
    return name


def export_target(raw: str, exports_root: Path) -> Path:
    """The file a server-side export writes: ``raw`` relative to and inside ``exports_root``."""
    if "\x00" in raw or Path(raw).is_absolute():
        raise PermissionDeniedError(
            f"export path {raw!r} must be relative to the workspace exports/ folder"
        )
    exports_root.mkdir(parents=True, exist_ok=True)
    target = confine_path(raw, [exports_root], "export path")
    if target == exports_root:
        raise InvalidInputError("export path names the exports/ folder itself; add a file name")
    return target


def check_workers(value: Any, what: str) -> None:
    """Refuse a worker count over :data:`MAX_WORKERS` (no oversubscription of the server)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WORKERS:
        raise InvalidInputError(
            f"{what} must be an integer from 0 to {MAX_WORKERS} on this server, got {value!r}"
        )


def confine_loop_config(cfg: Any, roots: Sequence[Path], workspace: Path) -> Any:
    """The loop config with its paths resolved and confined (read paths: data roots; work_dir:
    data roots or the workspace)."""
    plain_name(cfg.name, "loop name")
    changes: dict[str, Any] = {}
    for field in ("label_dir", "pretrained"):
        value = getattr(cfg, field)
        if value is not None:
            changes[field] = str(confine_path(str(value), roots, f"loop {field}"))
    if cfg.work_dir is not None:
        changes["work_dir"] = str(confine_path(str(cfg.work_dir), [workspace.resolve(), *roots],
                                               "loop work_dir"))
    return cfg.model_copy(update=changes) if changes else cfg


def check_loop_detector(cfg: Any) -> None:
    """Refuse a loop config whose detector could run code or oversubscribe the server.

    Over HTTP ``detector`` must be a registered name (:data:`DETECTOR_CONFIGS`): a path would
    reach ``mmengine.Config.fromfile``, which *executes* the file (and its ``_base_`` files).
    Worker counts in ``detector_options`` are capped like the embed route's ``num_workers``.
    """
    from curate.loop.mm3d.configs import DETECTOR_CONFIGS, list_detector_configs

    if cfg.detector not in DETECTOR_CONFIGS:
        raise InvalidInputError(
            f"loop detector {cfg.detector!r} is not a registered detector name; over HTTP the "
            f"field 'detector' must be one of: {', '.join(list_detector_configs())} (config files "
            "are executed by mmengine, so the server accepts none)"
        )
    for key in ("num_workers", "workers"):
        if key in cfg.detector_options:
            check_workers(cfg.detector_options[key], f"loop detector_options.{key}")


# ---------------------------------------------------------------------- body limits
class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413 before the app sees them."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def _reject(self, send: Any, size: str) -> None:
        body = json.dumps({
            "detail": f"request body {size} is larger than the server limit of {self.max_bytes} bytes",
            "error": {"type": "InvalidInputError", "module": "curate.errors", "attrs": {},
                      "message": f"request body {size} is larger than the server limit of "
                                 f"{self.max_bytes} bytes; send fewer ids or vectors per request"},
        }).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size > self.max_bytes:
                await self._reject(send, f"of {size} bytes")
                return
        chunks: list[bytes] = []
        total = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message), send)
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await self._reject(send, f"of more than {total} bytes")
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        await self.app(scope, _replay(chunks, None, receive), send)


def _replay(chunks: list[bytes], final: Optional[dict], receive: Any = None) -> Any:
    """A ``receive`` that hands out the buffered body once, then defers to the real one."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            if final is not None:
                return final
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        if receive is not None:
            return await receive()
        return {"type": "http.disconnect"}

    return replay
