"""Running the app: ``curate serve`` (uvicorn in the foreground), a background server for tests,
benchmarks and notebooks, and ``python -m curate.server WORKSPACE [DATA_ROOT ...]``."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from curate.auth import TokenSet
from curate.server.app import create_app
from curate.server.security import DEFAULT_MAX_BODY_BYTES

__all__ = ["serve", "BackgroundServer", "main"]

logger = logging.getLogger(__name__)


def serve(
    workspace_path: Union[str, Path],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    tokens: Union[None, TokenSet, Mapping[str, str]] = None,
    data_roots: Sequence[Union[str, Path]] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_level: str = "info",
) -> None:
    """Run the app with uvicorn until interrupted (what ``curate serve`` calls)."""
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("curate serve needs uvicorn, a dependency of curate: reinstall it "
                          "(pip install -e . in a checkout, or pip install curate)") from exc
    app = create_app(workspace_path, tokens, data_roots=data_roots, max_body_bytes=max_body_bytes)
    uvicorn.run(app, host=host, port=int(port), log_level=log_level)


class BackgroundServer:
    """A uvicorn server for ``app`` on a background thread (loopback by default).

    Used by tests, benchmarks and notebooks; ``curate serve`` runs uvicorn in the foreground.

    Parameters
    ----------
    app : ASGI application
    host : str
    port : int
        0 picks a free port; :attr:`url` tells which.

    Examples
    --------
    >>> with BackgroundServer(create_app(path, {"t": "write"})) as server:   # doctest: +SKIP
    ...     ws = curate.connect(server.url, token="t")
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        import uvicorn

        self._config = uvicorn.Config(app, host=host, port=int(port), log_level=log_level,
                                      lifespan="on")
        self._server = uvicorn.Server(self._config)
        self._thread: Optional[threading.Thread] = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> "BackgroundServer":
        """Start serving; returns when the socket listens (RuntimeError after ``timeout``)."""
        import time

        self._thread = threading.Thread(target=self._server.run, name="curate-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the curate server did not start (see the log above)")
            time.sleep(0.02)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: Sequence[str]) -> int:
    """``python -m curate.server WORKSPACE [DATA_ROOT ...]``: serve on a free loopback port.

    Tokens come from ``$CURATE_TOKENS`` / the tokens file; prints ``CURATE_SERVER_URL <url>`` once
    listening (tests and benchmarks start servers this way and read the line).
    """
    import signal
    import sys

    if not argv:
        print("usage: python -m curate.server WORKSPACE [DATA_ROOT ...]", file=sys.stderr)
        return 2
    logging.basicConfig(level=os.environ.get("CURATE_LOG_LEVEL", "WARNING").upper())
    port = int(os.environ.get("CURATE_PORT", "0"))
    server = BackgroundServer(create_app(argv[0], data_roots=argv[1:]), port=port,
                              log_level=os.environ.get("CURATE_LOG_LEVEL", "warning").lower())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(f"CURATE_SERVER_URL {server.url}", flush=True)
    stop.wait()
    server.stop()
    return 0
