"""``python -m benchmarks.report``: docs tables generated from result files, and its ``--check``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.results_io import read_result, write_result

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def test_repository_docs_match_their_result_files() -> None:
    """What CI enforces: every marked table in README.md and benchmarks/README.md is current."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.report", "--check"], cwd=ROOT,
                          capture_output=True, text=True, env=_env(CURATE_RESULTS_DIR=""))
    assert done.returncode == 0, done.stderr
    # the docs do quote results (the check is not vacuous)
    names = {b.name for d in report.DOCS
             for b in report.find_blocks(ROOT / d, (ROOT / d).read_text().split("\n"))}
    assert names and all((ROOT / "benchmarks" / "results" / f"{n}.json").is_file() for n in names)


@pytest.fixture
def docs(tmp_path: Path) -> tuple[Path, Path]:
    results = tmp_path / "results"
    write_result("demo", [{"method": "a", "score": 0.12345, "n": 3},
                          {"method": "b", "score": None, "n": 4}],
                 name="demo-table", results_dir=results, notes="test")
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n\ntext before\n\n<!-- result:demo-table digits=2 -->\n"
                   "stale\n<!-- /result -->\n\ntext after\n")
    return doc, results


def test_render_then_check_roundtrip(docs: tuple[Path, Path]) -> None:
    doc, results = docs
    assert report.check([doc], results)  # the stale body is a mismatch
    assert report.write([doc], results) == [doc]
    text = doc.read_text()
    assert "| method | score | n |" in text
    assert "| a | 0.12 | 3 |" in text and "| b | - | 4 |" in text
    assert text.startswith("# Title\n\ntext before\n") and text.endswith("text after\n")
    assert "Result `demo-table`" in text
    assert report.check([doc], results) == []
    assert report.write([doc], results) == []  # idempotent


def test_check_catches_an_edited_figure(docs: tuple[Path, Path]) -> None:
    doc, results = docs
    report.write([doc], results)
    doc.write_text(doc.read_text().replace("| a | 0.12 | 3 |", "| a | 0.13 | 3 |"))
    problems = report.check([doc], results)
    assert len(problems) == 1 and "0.13" in problems[0] and "0.12" in problems[0]


def test_check_catches_a_changed_result(docs: tuple[Path, Path]) -> None:
    doc, results = docs
    report.write([doc], results)
    path = results / "demo-table.json"
    data = read_result(path)
    data["rows"][0]["score"] = 0.5
    path.write_text(json.dumps(data))
    assert report.check([doc], results)


def test_missing_result_and_unclosed_marker_are_errors(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- result:nowhere -->\n| x |\n<!-- /result -->\n")
    problems = report.check([doc], tmp_path)
    assert len(problems) == 1 and "nowhere" in problems[0] and "does not exist" in problems[0]
    doc.write_text("<!-- result:nowhere -->\n| x |\n")
    assert "never closed" in report.check([doc], tmp_path)[0]
    doc.write_text("<!-- result:x bogus=1 -->\n<!-- /result -->\n")
    assert "unknown marker option" in report.check([doc], tmp_path)[0]


def test_columns_and_rows_options(docs: tuple[Path, Path]) -> None:
    doc, results = docs
    doc.write_text('<!-- result:demo-table columns="n|method" rows="b|a" caption=no -->\n'
                   "<!-- /result -->\n")
    report.write([doc], results)
    assert doc.read_text() == ("<!-- result:demo-table columns=\"n|method\" rows=\"b|a\" caption=no -->\n"
                               "| n | method |\n|---|---|\n| 4 | b |\n| 3 | a |\n<!-- /result -->\n")
    doc.write_text('<!-- result:demo-table columns="nope" -->\n<!-- /result -->\n')
    assert "no column" in report.check([doc], results)[0]


def test_cli_check_exit_status(docs: tuple[Path, Path]) -> None:
    doc, results = docs
    args = [sys.executable, "-m", "benchmarks.report", "--docs", str(doc), "--results", str(results)]
    bad = subprocess.run([*args, "--check"], cwd=ROOT, capture_output=True, text=True, env=_env())
    assert bad.returncode == 1 and "differ" in bad.stderr
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True, env=_env())
    good = subprocess.run([*args, "--check"], cwd=ROOT, capture_output=True, text=True, env=_env())
    assert good.returncode == 0, good.stderr
