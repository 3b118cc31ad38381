"""Smoke run of benchmarks/bookkeeping.py (results to a tmp dir, never the committed files)."""

from __future__ import annotations

import json
from pathlib import Path


def test_bookkeeping_smoke(tmp_path: Path, monkeypatch) -> None:
    from benchmarks import bookkeeping

    monkeypatch.setenv("CURATE_RESULTS_DIR", str(tmp_path))
    bookkeeping.main(["--frames", "2000", "--batch", "500", "--repeats", "1", "--label", "smoke",
                      "--workdir", str(tmp_path / "work")])
    result = json.loads((tmp_path / "bookkeeping-smoke-2000.json").read_text())
    phases = {row["phase"] for row in result["rows"]}
    assert {"ingest batch", "embedding commit", "ws.select random"} <= phases
    assert any(row["what"] == "version unchanged=True" for row in result["rows"])
    assert len(result["extra"]["ingest_batch_s"]) == len(result["extra"]["commit_batch_s"]) == 4
