"""``CURATE_REQUIRE_MM3D=1`` (set by ``make test``) turns mmdet3d skips into failures.

Runs pytest in a subprocess on three small test files using the hooks of tests/mm3d_gate.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

FILES = {
    "conftest.py": f"import sys\nsys.path.insert(0, {str(TESTS)!r})\n"
                   "from mm3d_gate import pytest_make_collect_report, pytest_runtest_makereport  # noqa\n",
    "test_a.py": "import pytest\n\n@pytest.mark.skipif(True, reason='the mmdet3d stack is not installed (make mm3d)')\n"
                 "def test_marked():\n    pass\n\n"
                 "def test_other_skip():\n    pytest.skip('fpsample not installed')\n",
    "test_b.py": "import pytest\npytest.importorskip('no_such_mmcv_module_xyz', reason='mmcv ops missing')\n\n"
                 "def test_never():\n    pass\n",
}


def _run(folder: Path, flag: str | None, target: str = ".") -> str:
    env = {k: v for k, v in os.environ.items() if k != "CURATE_REQUIRE_MM3D"}
    if flag is not None:
        env["CURATE_REQUIRE_MM3D"] = flag
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", target],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    return done.stdout + done.stderr


def test_mm3d_skips_fail_under_the_flag_and_skip_without(tmp_path: Path) -> None:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    out = _run(tmp_path, None)
    assert "3 skipped" in out and "failed" not in out and "error" not in out.lower(), out
    out = _run(tmp_path, "1", "test_a.py")  # a marked skip fails, an unrelated skip stays a skip
    assert "1 skipped, 1 error" in out and "ERROR test_a.py::test_marked" in out, out
    assert "CURATE_REQUIRE_MM3D=1 but this test skipped" in out
    out = _run(tmp_path, "1")  # a module-level importorskip is a collection error: the run fails
    assert "1 error" in out and "ERROR test_b.py" in out and "mmcv ops missing" in out, out
