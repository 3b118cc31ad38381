"""Loop-level tests of the continuous-training modes, ensembles and MC-dropout (tiny PointPillars,
CPU, real mmdet3d training), each through a loop config and ``Workspace.loop``.

The four modes of ActiveAnno3D are ``start`` (latest / initial weights) x ``train_on`` (all
labeled frames / the new ones plus a replay sample). ``latest x all`` is covered by
``test_loop_mm3d.py::test_two_round_loop_trains_scores_and_resumes``; the other three are
combined here with the ensemble and MC-dropout paths so that each real 2-round loop checks
several things: the frames each round trained on (the run record and the info pkl mmdet3d read),
the weights it started from (the run record and mmengine's dumped config), and the
disagreement scores a hybrid selector used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from test_loop_mm3d import needs_mm3d

pytestmark = needs_mm3d


def _config(**over) -> dict:
    cfg = dict(
        name="m", embedding="bev-hist", initial=6, budget=4, rounds=2, seed=0,
        detector="pointpillars-tiny", detector_options={"epochs": 2, "batch_size": 2},
        val_fraction=0.1,
    )
    cfg.update(over)
    return cfg


def _trained_frames(round_dir: Path) -> list[str]:
    from curate.loop.infos import read_info_pkl

    return sorted(f["curate_id"] for f in read_info_pkl(round_dir / "train_infos.pkl")["data_list"])


def _dumped_load_from(checkpoint: str) -> str:
    text = "".join(p.read_text() for p in Path(checkpoint).parent.glob("*.py"))
    line = [ln for ln in text.splitlines() if ln.startswith("load_from = ")]
    assert len(line) == 1, text[-2000:]
    return line[0][len("load_from = "):]


def _pool_ids(ws, cfg: dict, version: int) -> tuple[list[str], list[str]]:
    """Candidates and labeled frames of a selection, as the workspace read them."""
    from curate.loop.config import load_loop_config
    from curate.loop.runner import validation_ids

    _, pool_where = validation_ids(ws, load_loop_config(cfg))
    cand = [str(i) for i in ws.store.ids("samples", where=f"({pool_where}) AND labeled = false", version=version)]
    labeled = [str(i) for i in ws.store.ids("samples", where="labeled = true", version=version)]
    return cand, labeled


def _check_replay(r0, r1, replay: float) -> list[str]:
    """Round 1 trained on its new frames plus ``replay * budget`` frames of round 0."""
    train = r1.info["train_ids"]
    new = set(r1.ids)
    old = [i for i in train if i not in new]
    assert new <= set(train)
    assert len(old) == int(round(replay * len(r1.ids)))
    assert set(old) <= set(r0.ids) and len(set(train)) == len(train)
    assert r1.info["train_frames"] == len(train) < r1.info["labeled_frames"]
    return train


def test_ensemble_from_initial_weights_on_new_frames_feeds_a_hybrid(ws):
    """start=initial x train_on=new, ensemble of 2: mutual information is stored per pool frame
    and round 1's uncertainty-weighted k-center used exactly those scores."""
    from curate.loop import loop_rounds
    from curate.selectors import create_selector

    cfg = _config(name="ens", ensemble=2, start="initial", train_on="new", replay=0.5,
                  strategy="kcenter_weighted", strategy_params={"score": "mutual_information_max"})
    report = ws.loop(cfg)
    r0, r1 = loop_rounds(ws, "ens")
    assert [r.round for r in report.rounds] == [0, 1]
    for r in (r0, r1):
        assert len(r.info["checkpoints"]) == 2 and len(set(r.info["checkpoints"])) == 2
        assert r.info["init_checkpoints"] == [None, None]  # every round from scratch
        for ckpt in r.info["checkpoints"]:
            assert _dumped_load_from(ckpt) == "None"
        assert (r.info["start"], r.info["train_on"], r.info["ensemble"]) == ("initial", "new", 2)
    work = ws.path / "loops" / "ens"
    assert r0.info["train_ids"] == sorted(r0.ids) == _trained_frames(work / "round-0")
    train1 = _check_replay(r0, r1, 0.5)
    assert sorted(train1) == _trained_frames(work / "round-1")

    # the members disagree: mutual information is stored, finite, >= 0 and not all zero
    ids, cols = ws.scores("ens-r0")
    mi = cols["mutual_information_max"]
    assert np.isfinite(mi).all() and (mi >= -1e-12).all() and mi.max() > 0
    assert cols["mutual_information_mean"].max() <= mi.max() + 1e-12

    # round 1's selection used those scores: the same selector on the stored arrays picks the same
    sel = ws.run(r1.info["selection_run"])
    assert sel.strategy == "kcenter_weighted" and sel.info["score_run"] == "ens-r0"
    cand, labeled = _pool_ids(ws, cfg, sel.samples_version)
    _, vecs = ws.vectors("bev-hist", cand + labeled)
    _, cand_scores = ws.scores("ens-r0", ids=cand)
    scores = {k: np.concatenate([v, np.zeros(len(labeled))]) for k, v in cand_scores.items()}
    mask = np.arange(len(cand) + len(labeled)) >= len(cand)
    ref = create_selector("kcenter_weighted", score="mutual_information_max").select(
        vecs, 4, labeled=mask, scores=scores, seed=sel.seed)
    assert [cand[i] for i in ref.indices] == list(r1.ids)


def test_mc_dropout_from_latest_weights_on_new_frames(ws):
    """start=latest x train_on=new with MC-dropout: round 1 fine-tunes round 0's weights on the
    new frames plus a replay sample; the MC-dropout disagreement drives top-k selection."""
    from curate.loop import loop_rounds

    cfg = _config(name="mc", mc_dropout=3, start="latest", train_on="new", replay=1.0,
                  strategy="topk", strategy_params={"score": "mutual_information_mean"},
                  detector_options={"epochs": 2, "batch_size": 2, "feat_dropout": 0.2})
    ws.loop(cfg)
    r0, r1 = loop_rounds(ws, "mc")
    assert r0.info["init_checkpoints"] == [None]
    assert r1.info["init_checkpoints"] == r0.info["checkpoints"]
    assert _dumped_load_from(r1.info["checkpoints"][0]) == repr(r0.info["checkpoints"][0])
    assert r1.info["mc_dropout"] == 3
    train1 = _check_replay(r0, r1, 1.0)
    assert sorted(train1) == _trained_frames(ws.path / "loops" / "mc" / "round-1")

    ids, cols = ws.scores("mc-r0")
    mi = cols["mutual_information_mean"]
    assert np.isfinite(mi).all() and mi.max() > 0
    # top-k on the MC-dropout scores: round 1 picked the 4 most uncertain pool frames
    sel = ws.run(r1.info["selection_run"])
    order = np.lexsort((np.arange(len(ids)), -mi))  # ties: lowest row first
    assert set(r1.ids) == {str(ids[k]) for k in order[:4]}
    assert sel.info["score_run"] == "mc-r0"


def test_initial_pretrained_weights_on_all_frames(ws, tmp_path):
    """start=initial x train_on=all with ``pretrained``: every round starts from that file and
    trains on every labeled frame."""
    import torch

    from curate.loop import loop_rounds
    from curate.loop.mm3d import MMDet3DDetector

    torch.manual_seed(3)
    pretrained = tmp_path / "pretrained.pth"
    torch.save({"state_dict": MMDet3DDetector("pointpillars-tiny").load_model(None).state_dict(), "meta": {}},
               pretrained)
    cfg = _config(name="ia", start="initial", train_on="all", strategy="kcenter", pretrained=str(pretrained))
    ws.loop(cfg)
    r0, r1 = loop_rounds(ws, "ia")
    for r in (r0, r1):
        assert r.info["init_checkpoints"] == [str(pretrained)]
        assert _dumped_load_from(r.info["checkpoints"][0]) == repr(str(pretrained))
    assert r1.info["train_ids"] == sorted(set(r0.ids) | set(r1.ids))
    assert r1.info["train_frames"] == r1.info["labeled_frames"] == 10
    assert r1.info["train_ids"] == _trained_frames(ws.path / "loops" / "ia" / "round-1")


def test_score_threshold_option_reaches_the_head_and_is_validated():
    from curate.errors import InvalidInputError
    from curate.loop.mm3d import MMDet3DDetector

    default = MMDet3DDetector("pointpillars-tiny")
    low = MMDet3DDetector("pointpillars-tiny", score_thr=0.01)
    assert default.model_cfg["test_cfg"]["score_thr"] == 0.05
    assert low.load_model(None).bbox_head.test_cfg["score_thr"] == 0.01
    for bad in (-0.1, 1.0):
        with pytest.raises(InvalidInputError, match="score_thr"):
            MMDet3DDetector("pointpillars-tiny", score_thr=bad)
