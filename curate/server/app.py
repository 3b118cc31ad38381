"""Assembly of the FastAPI app: state, middleware, error answers and the routes of the table."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Mapping, Sequence, Union

from curate._version import __version__
from curate.auth import TokenSet, load_tokens
from curate.errors import InvalidInputError
from curate.server.security import DEFAULT_MAX_BODY_BYTES

__all__ = ["create_app", "import_fastapi"]

logger = logging.getLogger(__name__)


def import_fastapi() -> Any:
    """Import FastAPI or raise an ImportError that says what to install."""
    try:
        import fastapi
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("curate serve needs FastAPI and uvicorn, dependencies of curate: reinstall it "
                          "(pip install -e . in a checkout, or pip install curate)") from exc
    return fastapi


def create_app(
    workspace_path: Union[str, Path],
    tokens: Union[None, TokenSet, Mapping[str, str]] = None,
    *,
    data_roots: Sequence[Union[str, Path]] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    write_wait_s: float = 300.0,
    use_env_tokens: bool = True,
) -> Any:
    """Build the FastAPI application that serves the workspace at ``workspace_path``.

    Parameters
    ----------
    workspace_path : str or pathlib.Path
        Workspace directory (created when missing).
    tokens : TokenSet or mapping of secret -> scope, optional
        Accepted tokens in addition to ``<workspace>/tokens.json`` and ``$CURATE_TOKENS``.
    data_roots : sequence of paths
        Directories whose files ingest and embedder checkpoints may read.
    max_body_bytes : int
        Largest accepted request body (413 above).
    write_wait_s : float
        How long a write waits for the single writer before answering 503.
    use_env_tokens : bool
        Whether to read ``$CURATE_TOKENS``.

    Returns
    -------
    fastapi.FastAPI

    Raises
    ------
    InvalidInputError
        No token configured at all (the server would refuse every request).
    """
    if isinstance(max_body_bytes, bool) or int(max_body_bytes) < 1:
        raise InvalidInputError(f"max_body_bytes must be a positive integer, got {max_body_bytes!r}")
    token_set = load_tokens(workspace_path, tokens, use_env=use_env_tokens)
    if not len(token_set):
        raise InvalidInputError(
            "no tokens configured: give tokens (curate serve --token-write T / --token-read T, "
            "$CURATE_TOKENS='T:write', or curate.auth.add_token(workspace)) so that clients can "
            "authenticate"
        )
    fastapi = import_fastapi()
    from curate.server.errors import install_error_handlers
    from curate.server.routes import register_routes
    from curate.server.security import BodyLimit
    from curate.server.state import ServerState

    state = ServerState(workspace_path, token_set, data_roots, write_wait_s)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        state.jobs.stop()

    app = fastapi.FastAPI(
        title="curate",
        version=__version__,
        description="Embedding-first data curation for LiDAR perception: the workspace API.",
        lifespan=lifespan,
    )
    app.state.curate = state
    app.add_middleware(BodyLimit, max_bytes=int(max_body_bytes))
    install_error_handlers(app)

    @app.get("/health", tags=["service"])
    def health() -> dict[str, str]:
        """Liveness probe (no token needed)."""
        return {"status": "ok", "version": __version__}

    register_routes(app)
    logger.info("serving workspace %s (%d tokens, data roots: %s)", state.workspace.path,
                len(token_set), ", ".join(str(r) for r in state.data_roots) or "none")
    return app
