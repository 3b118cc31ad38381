"""``benchmarks/loop.py --carry``: a study longer than one machine's session continues on the next
machine from a committed cell log, whole seeds at a time, and never mixes cells of other data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import loop


def _args(carry: Path, seeds=(0, 1), round_iters=200) -> argparse.Namespace:
    return argparse.Namespace(seeds=list(seeds), rounds=2, strategies=["random", "kcenter"], carry=str(carry),
                              schedule="retrain", round_iters=round_iters, classes=["Car"],
                              mgral_options={"probes": 6})


def _state(scale: float = 1.0) -> dict:
    rng = np.random.default_rng(0)
    st = {"pool": [f"f{i}" for i in range(6)], "val": ["v0", "v1"],
          "vectors_by": {"bev-hist": rng.normal(size=(6, 3)).astype(np.float32) * scale}}
    st["fingerprint"] = loop._fingerprint(st)
    return st


def _rec(label: str, seed: int, rnd: int, fp: str) -> dict:
    return {"strategy": label, "seed": seed, "round": rnd, "rows": [seed, rnd], "map_bev_loose": 1.0 + rnd,
            "checkpoint": f"/tmp/elsewhere/{label}-{seed}-{rnd}.pth", "scores_file": "/tmp/elsewhere/s.npz",
            "state": fp, "config": loop._cell_config(_args(Path("x")))}


def _write(path: Path, recs: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_fingerprint_changes_with_ids_order_and_vectors() -> None:
    a = _state()
    assert a["fingerprint"] == _state()["fingerprint"]
    assert a["fingerprint"] != _state(scale=1.0001)["fingerprint"]
    b = dict(a, pool=list(reversed(a["pool"])))
    assert loop._fingerprint(b) != a["fingerprint"]


def test_only_whole_seeds_are_carried_in_and_out(tmp_path) -> None:
    st = _state()
    fp = st["fingerprint"]
    carry = tmp_path / "cells.jsonl"
    whole = [_rec(loop.INITIAL, 0, 0, fp), _rec("random", 0, 1, fp), _rec("kcenter", 0, 1, fp)]
    partial = [_rec(loop.INITIAL, 1, 0, fp), _rec("random", 1, 1, fp)]  # seed 1 lacks kcenter round 1
    _write(carry, whole + partial)
    root = tmp_path / "root"
    root.mkdir()
    loop._carry_in(root, st, _args(carry))
    got = loop._read_results(root)
    assert sorted(got) == sorted((r["strategy"], r["seed"], r["round"]) for r in whole)
    # a second start does not duplicate them
    loop._carry_in(root, st, _args(carry))
    assert len((root / "results.jsonl").read_text().splitlines()) == 3

    # this machine finishes seed 1; the carry file then holds both seeds, without machine paths
    for rec in partial + [_rec("kcenter", 1, 1, fp)]:
        loop._append_result(root, rec)
    loop._carry_out(root, _args(carry))
    out = [json.loads(line) for line in carry.read_text().splitlines()]
    assert [(r["seed"], r["round"], r["strategy"]) for r in out] == [
        (0, 0, loop.INITIAL), (0, 1, "kcenter"), (0, 1, "random"),
        (1, 0, loop.INITIAL), (1, 1, "kcenter"), (1, 1, "random")]
    assert all(r["checkpoint"] is None and r["scores_file"] is None for r in out)


def test_an_unfinished_seed_is_not_written_out(tmp_path) -> None:
    st = _state()
    root = tmp_path / "root"
    root.mkdir()
    loop._append_result(root, _rec(loop.INITIAL, 3, 0, st["fingerprint"]))
    carry = tmp_path / "cells.jsonl"
    loop._carry_out(root, _args(carry, seeds=(3,)))
    assert carry.read_text().strip() == ""


def test_cells_of_other_data_are_refused(tmp_path) -> None:
    carry = tmp_path / "cells.jsonl"
    _write(carry, [_rec(loop.INITIAL, 0, 0, "0123456789abcdef")])
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(SystemExit, match="fingerprint '0123456789abcdef'.*--frames"):
        loop._carry_in(root, _state(), _args(carry))
    assert not (root / "results.jsonl").exists()


def test_a_missing_carry_file_is_a_fresh_start(tmp_path, capsys) -> None:
    root = tmp_path / "root"
    root.mkdir()
    loop._carry_in(root, _state(), _args(tmp_path / "none.jsonl"))
    assert "nothing carried" in capsys.readouterr().out


def test_cells_of_other_training_arguments_are_refused(tmp_path) -> None:
    st = _state()
    carry = tmp_path / "cells.jsonl"
    _write(carry, [_rec(*key, st["fingerprint"]) for key in [(loop.INITIAL, 0, 0), ("random", 0, 1),
                                                             ("kcenter", 0, 1)]])
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(SystemExit, match=r"round_iters': \(200, 300\)"):
        loop._carry_in(root, st, _args(carry, round_iters=300))
    assert not (root / "results.jsonl").exists()
    loop._carry_in(root, st, _args(carry, seeds=(0,)))  # the same arguments: accepted
    assert len((root / "results.jsonl").read_text().splitlines()) == 3


def test_cells_written_before_the_config_stamp_get_this_runs_config(tmp_path) -> None:
    st = _state()
    fp = st["fingerprint"]
    root = tmp_path / "root"
    root.mkdir()
    for key in [(loop.INITIAL, 0, 0), ("random", 0, 1), ("kcenter", 0, 1)]:
        rec = _rec(*key, fp)
        del rec["config"]
        loop._append_result(root, rec)
    carry = tmp_path / "cells.jsonl"
    loop._carry_out(root, _args(carry, seeds=(0,), round_iters=250))
    out = [json.loads(line) for line in carry.read_text().splitlines()]
    assert [r["config"]["round_iters"] for r in out] == [250, 250, 250]
    with pytest.raises(SystemExit, match="round_iters"):
        loop._carry_in(tmp_path, st, _args(carry, seeds=(0,)))


def test_a_root_pretrained_with_other_settings_is_refused(tmp_path) -> None:
    """``recon-tiny-ssl``'s table holds the vectors of the encoder the root was pretrained with: a
    run asking for other steps or image weight must not reuse them (runs from before the image
    option had the image term off)."""
    (tmp_path / "pretrain.json").write_text(json.dumps({"checkpoint": "x.pt", "embed_options": {},
                                                        "steps": 60, "configured_steps": 60}))
    args = argparse.Namespace(pretrain_steps=2000, pretrain_image=1.0)
    with pytest.raises(SystemExit, match="pretrained with --pretrain-steps 60 --pretrain-image 0.*2000 and 1"):
        loop._embed_pool(None, tmp_path, "recon-tiny-ssl", args)
