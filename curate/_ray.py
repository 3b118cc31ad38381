"""Ray plumbing shared by the Ray embedding engine and the sharded selector (``curate[ray]``).

:func:`require_ray` imports Ray or says what to install; :func:`ray_session` joins the cluster
at ``address`` or, without one, starts a local cluster sized to this machine (its CPUs and GPUs)
and stops it afterwards. When this process is already connected to a cluster (a notebook or a
test that called ``ray.init``), that connection is used and left running.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Optional
from urllib.parse import urlsplit

from curate.errors import CurateError, InvalidInputError

__all__ = ["INSTALL_HINT", "RayUnavailableError", "require_ray", "ray_session", "usable_cpus",
           "ENGINES", "check_engine"]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'curate[ray]' (ray[data] 2.60)"
#: Engines of the jobs that can run on Ray.
ENGINES = ("local", "ray")
#: Object store of a local cluster when ``CURATE_RAY_OBJECT_STORE_MB`` is not set (MiB).
DEFAULT_OBJECT_STORE_MB = 512
#: Seconds to wait for the TCP connection to a cluster address before reporting it unreachable.
CONNECT_TIMEOUT_S = 5.0


class RayUnavailableError(CurateError, ConnectionError):
    """The Ray cluster at the given address cannot be reached."""


def check_engine(engine: str) -> str:
    """Return ``engine`` if it is ``"local"`` or ``"ray"``, else raise :class:`InvalidInputError`."""
    if engine not in ENGINES:
        raise InvalidInputError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    return engine


def require_ray() -> ModuleType:
    """Import ``ray`` (with Ray Data) or raise an ImportError that says what to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"the Ray engine needs Ray: {INSTALL_HINT} ({exc})") from exc
    return ray


def usable_cpus() -> int:
    """CPUs this process may use (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _gpu_count() -> int:
    """CUDA GPUs torch sees here (0 without NVIDIA devices, without importing torch then)."""
    if not (os.path.exists("/dev/nvidia0") or os.path.exists("/proc/driver/nvidia")):
        return 0
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def _check_reachable(address: str) -> None:
    """Raise :class:`RayUnavailableError` when ``host:port`` of ``address`` takes no connection."""
    if address in ("auto", "local"):
        return
    target = address if "://" in address else f"ray://{address}"
    parts = urlsplit(target)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise InvalidInputError(
            f"Ray address {address!r} is not host:port (e.g. 10.0.0.5:6379 or "
            "ray://10.0.0.5:10001); omit --address to start a local cluster"
        )
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise RayUnavailableError(
            f"cannot reach the Ray cluster at {address!r} ({exc}); start it with "
            f"`ray start --head --port {port}` on {host}, check the address and firewall, or "
            "omit --address to run on a local cluster"
        ) from None


@contextmanager
def ray_session(
    address: Optional[str] = None,
    *,
    num_cpus: Optional[int] = None,
    object_store_mb: Optional[int] = None,
) -> Iterator[ModuleType]:
    """Connect to Ray for the duration of a ``with`` block; yields the ``ray`` module.

    Parameters
    ----------
    address : str, optional
        Cluster to join (``host:port`` of its GCS, ``ray://host:port`` or ``"auto"``). None
        starts a local cluster with this machine's CPUs (``num_cpus`` when given) and GPUs and an
        object store of ``object_store_mb`` MiB (default ``CURATE_RAY_OBJECT_STORE_MB`` or 512),
        stopped when the block ends.

    Raises
    ------
    RayUnavailableError
        ``address`` cannot be reached (checked with a TCP connection first, so the error comes
        in seconds instead of Ray's long retry loop).
    ImportError
        Ray is not installed (the message says what to install).
    """
    ray = require_ray()
    if ray.is_initialized():
        if address is not None:
            logger.info("already connected to a Ray cluster; ignoring address %r", address)
        yield ray
        return
    if address is not None:
        _check_reachable(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, TimeoutError, RuntimeError) as exc:
            raise RayUnavailableError(
                f"cannot join the Ray cluster at {address!r}: {exc}; check that `ray status "
                f"--address {address}` works from this machine"
            ) from None
    else:
        mb = object_store_mb or int(os.environ.get("CURATE_RAY_OBJECT_STORE_MB",
                                                   DEFAULT_OBJECT_STORE_MB))
        cpus = num_cpus or usable_cpus()
        logger.info("starting a local Ray cluster (%d CPUs, %d GPUs, %d MiB object store)",
                    cpus, _gpu_count(), mb)
        ray.init(num_cpus=cpus, num_gpus=_gpu_count(), object_store_memory=mb * 2**20,
                 include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
