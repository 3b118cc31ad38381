"""pytest hooks: under ``CURATE_REQUIRE_MM3D=1`` a skip for a missing mmdet3d stack is a failure.

``make test`` installs the mmdet3d stack (mmcv built with its CPU ops) and sets the flag, so a
detector test that would skip because ``mmdet3d`` or ``mmcv.ops`` cannot be imported fails the
run instead of passing silently. Without the flag (a machine without the stack) such tests skip
as before. A skip counts as an mm3d skip when its reason names mmdet3d, mmcv or ``make mm3d``.
Imported by ``tests/conftest.py``; tests/test_mm3d_gate.py runs pytest on small test files to
check both behaviours.
"""

from __future__ import annotations

import os
import re
from typing import Any, Generator

import pytest

#: Environment flag set by ``make test``.
REQUIRE_MM3D_ENV = "CURATE_REQUIRE_MM3D"
_MM3D_REASON = re.compile(r"mmdet3d|mmcv|mm3d", re.IGNORECASE)


def _required() -> bool:
    return os.environ.get(REQUIRE_MM3D_ENV, "").strip() not in ("", "0", "false", "no")


def _skip_reason(longrepr: Any) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr or "")


def _fail_if_mm3d_skip(report: Any) -> None:
    if not (_required() and report.skipped):
        return
    reason = _skip_reason(report.longrepr)
    if _MM3D_REASON.search(reason):
        report.outcome = "failed"
        report.longrepr = (f"{REQUIRE_MM3D_ENV}=1 but this test skipped because the mmdet3d stack "
                           f"does not import ({reason}); run `make mm3d` or fix the install")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Generator[None, Any, None]:
    """Turn a test's mm3d skip into a failure under the flag."""
    outcome = yield
    _fail_if_mm3d_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: Any) -> Generator[None, Any, None]:
    """Turn a module-level mm3d skip (``importorskip("mmdet3d")``) into a collection error."""
    outcome = yield
    _fail_if_mm3d_skip(outcome.get_result())
