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


# ---------------------------------------------------------------- --round-epochs / --train-repeats
def _sched(**kw) -> argparse.Namespace:
    base = dict(schedule="retrain", round_iters=None, round_epochs=None, train_repeats=1, batch_size=2)
    return argparse.Namespace(**{**base, **kw})


def test_round_epochs_grow_the_iterations_with_the_labels_round_iters_do_not() -> None:
    a = _sched(round_epochs=20)
    loop._check_schedule(a)
    assert a.round_iters is None  # not used, and not stored as if it were
    assert [loop._retrain_epochs(a, n) for n in (16, 80)] == [20, 20]  # 160 then 800 iterations (batch 2)
    b = _sched(round_iters=200)
    loop._check_schedule(b)
    assert [loop._retrain_epochs(b, n) for n in (16, 80)] == [25, 5]  # about 200 iterations each
    c = _sched()
    loop._check_schedule(c)
    assert c.round_iters == 300  # the old default


@pytest.mark.parametrize("kw, message", [
    (dict(round_epochs=0), r"--round-epochs 0: must be at least 1"),
    (dict(round_epochs=-3), r"--round-epochs -3: must be at least 1"),
    (dict(round_epochs=20, schedule="finetune"), r"--round-epochs 20 needs --schedule retrain"),
    (dict(round_epochs=20, round_iters=200), r"--round-iters 200 and --round-epochs 20 both given"),
    (dict(round_iters=0), r"--round-iters 0: must be at least 1"),
    (dict(train_repeats=0), r"--train-repeats 0: must be at least 1"),
])
def test_bad_schedule_options_are_refused_with_the_option_named(kw, message) -> None:
    with pytest.raises(SystemExit, match=message):
        loop._check_schedule(_sched(**kw))


def test_repeat_seeds_are_paired_distinct_and_start_with_the_study_seed() -> None:
    seeds = loop._repeat_seeds(3, 4, 3)
    assert seeds[0] == 304 and len(set(seeds)) == 3
    assert loop._repeat_seeds(3, 4, 3) == seeds  # a function of (seed, round, k) only: every strategy the same
    assert loop._repeat_seeds(3, 4, 1) == [304]
    # never a study seed (seed * 100 + round) nor a noise-mode seed (1_000_000 + 1000 k + 10 seed + round)
    every = {s for seed in range(10) for rnd in range(10) for s in loop._repeat_seeds(seed, rnd, 5)[1:]}
    assert len(every) == 10 * 10 * 4
    assert all(s >= loop.REPEAT_SEED_BASE for s in every)
    assert not every & {1_000_000 + 1000 * k + 10 * seed + rnd for k in range(5) for seed in range(10)
                        for rnd in range(10)}


def test_cells_of_another_schedule_or_repeat_count_are_refused(tmp_path) -> None:
    st = _state()
    carry = tmp_path / "cells.jsonl"
    keys = [(loop.INITIAL, 0, 0), ("random", 0, 1), ("kcenter", 0, 1)]
    _write(carry, [_rec(*key, st["fingerprint"]) for key in keys])  # round_iters 200, one training
    root = tmp_path / "root"
    root.mkdir()
    epochs = _args(carry, seeds=(0,), round_iters=None)
    epochs.round_epochs = 20
    with pytest.raises(SystemExit, match=r"round_epochs': \(None, 20\)"):
        loop._carry_in(root, st, epochs)
    twice = _args(carry, seeds=(0,))
    twice.train_repeats = 2
    with pytest.raises(SystemExit, match=r"train_repeats': \(1, 2\)"):
        loop._carry_in(root, st, twice)
    assert not (root / "results.jsonl").exists()


def test_cells_from_before_the_new_options_read_as_one_training_by_iterations(tmp_path) -> None:
    """The committed study's cells (loop-mgral.cells.jsonl) have no round_epochs / train_repeats in
    their config: a run with the old arguments still carries them."""
    st = _state()
    carry = tmp_path / "cells.jsonl"
    recs = [_rec(*key, st["fingerprint"]) for key in [(loop.INITIAL, 0, 0), ("random", 0, 1), ("kcenter", 0, 1)]]
    for r in recs:
        del r["config"]["round_epochs"], r["config"]["train_repeats"]
    _write(carry, recs)
    root = tmp_path / "root"
    root.mkdir()
    old = _args(carry, seeds=(0,))
    old.train_repeats = 1
    loop._carry_in(root, st, old)
    assert len((root / "results.jsonl").read_text().splitlines()) == 3


def _tune_run(name: str, args: dict, maps: dict, iters) -> dict:
    """A candidate run's result as ``al`` writes it: random rows, two trainings per cell."""
    rows = []
    for (seed, rnd), vals in maps.items():
        rows.append({"strategy": "random", "seed": seed, "round": rnd, "labeled_frames": 16 * (rnd + 1),
                     "map_bev_loose": float(np.mean(vals)), "map_bev_loose_repeats": list(vals),
                     "train_repeats": len(vals), "iters": iters(rnd), "train_s": 0.25 * iters(rnd) * len(vals)})
    return {"name": name, "args": args, "rows": rows}


def test_the_tuning_rule_picks_the_cheapest_rising_quiet_candidate() -> None:
    # flat and noisy (the old schedule's picture)
    flat = _tune_run("flat", {"schedule": "retrain", "round_iters": 200},
                     {(s, r): (50 - r + 10 * s, 30 + r) for s in (0, 1) for r in range(5)}, lambda r: 200)
    # rises with labels; repeats 6 points apart (std 4.24: fit with K = 1 at noise 5)
    rising = _tune_run("rising", {"schedule": "retrain", "round_epochs": 10},
                       {(s, r): (20 + 8 * r + s, 26 + 8 * r + s) for s in (0, 1) for r in range(5)},
                       lambda r: 80 * (r + 1))
    per_round, cands = loop._tune_candidates([flat, rising], 0.8, 5.0)
    by = {c["candidate"]: c for c in cands}
    assert set(by) == {"round-iters 200, 1 training", "round-iters 200, 2 trainings",
                       "round-epochs 10, 1 training", "round-epochs 10, 2 trainings"}
    assert by["round-epochs 10, 1 training"]["rise_spearman"] == pytest.approx(1.0)
    assert by["round-epochs 10, 1 training"]["noise"] == pytest.approx(np.std([20, 26], ddof=1))
    assert by["round-epochs 10, 2 trainings"]["noise"] == pytest.approx(np.std([20, 26], ddof=1) / np.sqrt(2))
    assert not by["round-iters 200, 1 training"]["fit"] and not by["round-iters 200, 2 trainings"]["fit"]
    assert by["round-epochs 10, 1 training"]["fit"] and by["round-epochs 10, 2 trainings"]["fit"]
    # the cheapest fit one: iterations per seed 80 + 160 + ... + 400 = 1200, times K
    assert by["round-epochs 10, 1 training"]["iters_per_seed"] == pytest.approx(1200)
    assert [c["candidate"] for c in cands if c["chosen"]] == ["round-epochs 10, 1 training"]
    # K = 1 reads repeat 0 only, K = 2 the mean
    r0 = {(r["candidate"], r["round"]): r for r in per_round}
    assert r0[("round-epochs 10, 1 training", 0)]["map_bev_loose_mean"] == pytest.approx(20.5)
    assert r0[("round-epochs 10, 2 trainings", 0)]["map_bev_loose_mean"] == pytest.approx(23.5)

    # a stricter noise bound leaves no fit candidate: none chosen, the best rise named
    _, cands = loop._tune_candidates([flat, rising], 0.8, 1.0)
    assert not any(c["chosen"] for c in cands)
    assert [c["candidate"] for c in cands if c["best_available"]] == ["round-epochs 10, 2 trainings"]


def test_the_tuning_rule_needs_two_trainings_per_cell() -> None:
    one = _tune_run("one", {"schedule": "retrain", "round_epochs": 10},
                    {(0, r): (10.0 * r,) for r in range(3)}, lambda r: 80)
    with pytest.raises(SystemExit, match=r"1 training\(s\); the noise measure needs --train-repeats 2"):
        loop._tune_candidates([one], 0.8, 5.0)


def test_report_takes_one_preparation_of_any_fingerprint_and_never_two(tmp_path) -> None:
    """``report --carry`` trains nothing: the carried cells need not match this machine's data,
    but one table never mixes two preparations."""
    keys = [(loop.INITIAL, 0, 0), ("random", 0, 1), ("kcenter", 0, 1)]
    carry = tmp_path / "cells.jsonl"
    _write(carry, [_rec(*key, "0123456789abcdef") for key in keys])
    root = tmp_path / "root"
    root.mkdir()
    loop._carry_in(root, None, _args(carry, seeds=(0,)))
    assert {r["state"] for r in loop._read_results(root).values()} == {"0123456789abcdef"}
    assert len(loop._read_results(root)) == 3

    mixed = tmp_path / "mixed.jsonl"
    _write(mixed, [_rec(*keys[0], "0123456789abcdef"), *[_rec(*k, "fedcba9876543210") for k in keys[1:]]])
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(SystemExit, match="2 data preparations"):
        loop._carry_in(other, None, _args(mixed, seeds=(0,)))
    assert not (other / "results.jsonl").exists()
    # nor a carry file of another preparation than the root's own cells
    _write(mixed, [_rec(*k, "fedcba9876543210") for k in keys])
    with pytest.raises(SystemExit, match="2 data preparations"):
        loop._carry_in(root, None, _args(mixed, seeds=(0,)))


def test_carry_strategies_imports_complete_chains_but_never_round_0_and_ignores_mgral_options(tmp_path) -> None:
    """``--carry-strategies random``: the baseline's rounds >= 1 come from the file (its cells do
    not depend on mgral's options, which this run changed); round 0 and mgral run here."""
    st = _state()
    fp = st["fingerprint"]
    carry = tmp_path / "cells.jsonl"
    recs = [_rec(loop.INITIAL, 0, 0, fp), _rec("random", 0, 1, fp), _rec("random", 0, 2, fp),
            _rec(loop.INITIAL, 1, 0, fp), _rec("random", 1, 1, fp)]  # seed 1's chain stops at round 1
    _write(carry, recs)
    args = _args(carry)
    args.rounds, args.strategies, args.carry_strategies = 3, ["random", "mgral"], "random"
    args.mgral_options = {"probes": 4, "probe_head_only": True}  # the carried cells had {"probes": 6}
    root = tmp_path / "root"
    root.mkdir()
    loop._carry_in(root, st, args)
    assert sorted(loop._read_results(root)) == [("random", 0, 1), ("random", 0, 2)]
    # an mgral cell of other options is still refused
    _write(carry, recs + [_rec("mgral", 0, 1, fp)])
    with pytest.raises(SystemExit, match="mgral_options"):
        loop._carry_in(root, st, args)
    args.carry_strategies = "entropy"
    _write(carry, recs)
    with pytest.raises(SystemExit, match="not in --strategies"):
        loop._carry_in(root, st, args)
