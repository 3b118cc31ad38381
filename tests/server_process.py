"""A real curate server in a subprocess (``python -m curate.server WS DATA_ROOT``), for crash tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional


class ServerProcess:
    """``python -m curate.server WS DATA_ROOT`` on a free loopback port with one write token."""

    def __init__(self, ws_dir: Path, data_root: Path, token: str, extra_env: Optional[dict[str, str]] = None) -> None:
        env = {**os.environ, "CURATE_TOKENS": f"{token}:write", "CURATE_LOG_LEVEL": "warning", **(extra_env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "curate.server", str(ws_dir), str(data_root)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("CURATE_SERVER_URL "):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.url = line.split()[1]

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.proc.kill()
