"""Export formats round-trip the run record and ids exactly."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.api import RunRecord
from curate.errors import InvalidInputError
from curate.export import export_run, format_from_suffix


@pytest.fixture
def run() -> RunRecord:
    return RunRecord(
        run_id="run-000007", created_at="2026-11-21T00:00:00+00:00", strategy="kcenter",
        params={"min_distance": None}, budget=3, seed=5, embedding="recon-tiny",
        embedding_version=4, samples_version=9, where="weather = 'rain'", num_candidates=10,
        num_labeled=2, ids=["kitti/000003", "kitti/000010", "kitti/000001"],
        gains=[None, 2.5, 1.25], info={"coverage_radius": 1.0}, package_version="0.1.0",
        seconds=0.01,
    )


def test_csv(run: RunRecord, tmp_path: Path) -> None:
    out = export_run(run, "csv", tmp_path / "sel.csv")
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == run.ids
    assert [r["rank"] for r in rows] == ["0", "1", "2"]
    assert rows[0]["gain"] == "" and float(rows[1]["gain"]) == 2.5


def test_json_has_manifest(run: RunRecord, tmp_path: Path) -> None:
    doc = json.loads(export_run(run, "json", tmp_path / "sel.json").read_text())
    assert [it["id"] for it in doc["items"]] == run.ids
    assert doc["items"][0]["gain"] is None
    for key in ("strategy", "params", "seed", "embedding_version", "samples_version", "package_version", "where"):
        assert doc["run"][key] == getattr(run, key)


def test_parquet_has_manifest(run: RunRecord, tmp_path: Path) -> None:
    table = pq.read_table(export_run(run, "parquet", tmp_path / "sel.parquet"))
    assert table["id"].to_pylist() == run.ids
    manifest = json.loads(table.schema.metadata[b"curate.run"])
    assert manifest["run_id"] == run.run_id and manifest["seed"] == 5


def test_imagesets_strip_prefix(run: RunRecord, tmp_path: Path) -> None:
    out = export_run(run, "imagesets", tmp_path / "train.txt")
    assert out.read_text().split() == ["000003", "000010", "000001"]


def test_errors(run: RunRecord, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unknown export format 'xml'"):
        export_run(run, "xml", tmp_path / "a.xml")
    with pytest.raises(InvalidInputError, match="does not exist"):
        export_run(run, "csv", tmp_path / "missing" / "a.csv")
    with pytest.raises(InvalidInputError, match="suffix"):
        format_from_suffix(Path("sel.xlsx"))
    assert format_from_suffix(Path("x.TXT")) == "imagesets"
