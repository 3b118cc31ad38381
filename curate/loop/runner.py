"""The active-learning loop: SELECT -> label (oracle) -> TRAIN -> evaluate -> predict the pool
-> score, round after round, every round stored in ``runs``.

Round 0 selects a random seed set; round ``r > 0`` runs the configured selector with the scores
of round ``r - 1``'s predictions (``score_run = <name>-r<r-1>``). Each round:

1. selection (a stored ``select`` run; its id is written to ``<work_dir>/round-<r>.json`` at once
   so an interruption after it reuses the same frames),
2. the oracle labels them,
3. the detector trains on the labeled frames (or the new ones plus a replay sample) in a fresh
   ``<work_dir>/round-<r>/member-<k>`` directory, from the previous round's weights or the
   initial ones (never ``resume=True``),
4. prediction over the validation split (KITTI AP) and the unlabeled pool (per-box class
   distributions -> ``scores`` table),
5. a ``loop`` run row with the selected ids, config, checkpoints, metrics, losses and seconds;
   its ``info`` also says what the round trained on and from: ``train_ids`` (the frames of the
   training pkl), ``init_checkpoints`` (the ``load_from`` of each ensemble member, ``None`` for
   random initialisation), ``start``, ``train_on``, ``ensemble`` and ``mc_dropout``.

The ``runs`` table is the truth: a loop started again with the same name skips the rounds it
finds there and resumes at the next one.

Strategy ``mgral`` (:mod:`curate.loop.mgral`) runs its stage before selecting: table frames
labeled and probed with short fine-tunes, the look-up table, the policy trained and
checkpointed under ``<work_dir>/round-<r>/mgral/``; the round's selection is the table frames
plus the policy's picks (``budget`` in all), and ``info["mgral"]`` records the stage.

Cost per round: training (detector-bound) + prediction over the pool, O(pool) memory for scores.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from curate import _tables as T
from curate._version import __version__
from curate.api import RunRecord
from curate.errors import InvalidInputError
from curate.evaluation.cost import annotation_cost
from curate.local_workspace import LocalWorkspace
from curate.loop.config import LoopConfig, load_loop_config
from curate.loop.detector import Detector
from curate.loop.evaluate import evaluate_predictions
from curate.loop.infos import write_info_pkl
from curate.loop.oracle import Oracle, create_oracle
from curate.loop.uncertainty import prediction_scores
from curate.reports import LoopReport, RoundReport
from curate.store_queries import next_run_id, require_embedding
from index.ids import isin as ids_isin

__all__ = ["LoopReport", "RoundReport", "run_loop", "loop_rounds", "validation_ids"]

logger = logging.getLogger(__name__)

LOOP_KIND = "loop"


def _config_hash(cfg: LoopConfig) -> str:
    keep = cfg.model_dump(exclude={"rounds", "work_dir", "label_dir"})
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def loop_rounds(workspace: LocalWorkspace, name: str) -> list[RunRecord]:
    """Stored rounds of the loop ``name``, in round order."""
    runs = [r for r in workspace.runs() if r.kind == LOOP_KIND and r.info.get("loop") == name]
    return sorted(runs, key=lambda r: int(r.info.get("round", 0)))


def _sql_list(values: Sequence[str]) -> str:
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


#: Seeded scene permutations tried for a representative validation split.
_VAL_SPLIT_TRIES = 64


def _take_scenes(order: np.ndarray, counts: np.ndarray, target: float) -> list[int]:
    chosen: list[int] = []
    total = 0
    for k in order:
        if total >= target or len(chosen) == len(counts) - 1:
            break
        chosen.append(int(k))
        total += int(counts[k])
    return chosen


def validation_ids(workspace: LocalWorkspace, cfg: LoopConfig) -> tuple[list[str], str]:
    """Validation frame ids and the SQL filter of the selectable pool (its complement).

    Without ``val_where``, whole scenes are held out (frames of a scene are near-duplicates):
    scenes are shuffled with ``seed`` and taken until ``val_fraction`` of the frames is reached.
    A split must also be representative: for every evaluation class with ground truth in the
    workspace, the held-out scenes must hold at least half of ``val_fraction`` of its boxes (a
    night drive without cars would make every round's mAP zero whatever the strategy). Up to
    ``_VAL_SPLIT_TRIES`` seeded permutations are tried in order and the first representative
    one is used; if none is, the one where the most evaluation boxes belong to well-represented
    classes is used and a warning says so. Deterministic for a seed; O(frames + boxes).
    """
    if cfg.val_where:
        val = [str(i) for i in workspace.store.ids(T.SAMPLES, where=cfg.val_where)]
        if not val:
            raise InvalidInputError(f"val_where {cfg.val_where!r} matches no frame")
        return val, f"NOT ({cfg.val_where})"
    table = workspace.frames(columns=["id", "scene"])
    scenes = np.asarray([s or "" for s in table.column("scene").to_pylist()], dtype=object)
    ids = np.asarray(table.column("id").to_pylist(), dtype=object)
    names, scene_of_frame, counts = np.unique(scenes, return_inverse=True, return_counts=True)
    if len(names) < 2:
        raise InvalidInputError(
            "cannot hold out a validation split: the workspace has a single scene; pass val_where"
        )
    target = cfg.val_fraction * len(ids)
    # boxes of each evaluation class per scene
    eval_classes = [c for c in ("Car", "Pedestrian", "Cyclist") if c in cfg.classes]
    boxes = workspace.boxes([str(i) for i in ids], labeled_only=False)
    frame_scene = dict(zip(ids.tolist(), scene_of_frame.tolist()))
    per_scene = np.zeros((len(names), len(eval_classes)), dtype=np.int64)
    col = {c: j for j, c in enumerate(eval_classes)}
    for fid, kind in zip(boxes.column("frame_id").to_pylist(), boxes.column("type").to_pylist()):
        if kind in col:
            per_scene[frame_scene[fid], col[kind]] += 1
    totals = per_scene.sum(axis=0)
    present = totals > 0
    # a split's score: the fraction of evaluation boxes whose class has at least half its
    # expected share held out (partial credit below that), so frequent classes weigh more
    weights = totals[present] / max(int(totals.sum()), 1)
    rng = np.random.default_rng(cfg.seed)
    best, best_share = None, -1.0
    for attempt in range(_VAL_SPLIT_TRIES):
        chosen = _take_scenes(rng.permutation(len(names)), counts, target)
        if not present.any():
            best = chosen
            break
        share = per_scene[chosen].sum(axis=0)[present] / totals[present]
        met = np.minimum(share / (0.5 * max(cfg.val_fraction, 1e-9)), 1.0)
        score = float((weights * met).sum())
        if score > best_share + 1e-12:
            best, best_share = chosen, score
        if score >= 1.0 - 1e-12:
            break
    else:
        logger.warning(
            "no representative validation split in %d tries (best: %.0f%% of the evaluation boxes "
            "are of classes with their share held out); pass val_where to choose one",
            _VAL_SPLIT_TRIES, 100 * best_share,
        )
    chosen_names = [str(names[k]) for k in best]
    val = sorted(str(i) for i in ids[ids_isin(scenes, chosen_names)])
    return val, f"scene NOT IN {_sql_list(chosen_names)}"


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _count_boxes(workspace: LocalWorkspace, ids: Sequence[str]) -> int:
    if not ids:
        return 0
    boxes = workspace.boxes(list(ids), labeled_only=True)
    return sum(1 for t in boxes.column("type").to_pylist() if t != "DontCare")


def _default_detector(cfg: LoopConfig) -> Detector:
    from curate.loop.mm3d import INSTALL_HINT

    try:
        from curate.loop.mm3d.detector import MMDet3DDetector

        return MMDet3DDetector(cfg.detector, classes=tuple(cfg.classes), **cfg.detector_options)
    except ImportError as exc:
        raise InvalidInputError(
            f"no detector given and the mmdet3d detector {cfg.detector!r} needs the mmdet3d stack "
            f"({exc}); install it: {INSTALL_HINT}, or pass detector= (an object implementing "
            "curate.loop.Detector)"
        ) from None
    except TypeError as exc:
        raise InvalidInputError(f"bad detector_options {cfg.detector_options}: {exc}") from None


def run_loop(
    workspace: LocalWorkspace,
    config: Any = None,
    *,
    detector: Optional[Detector] = None,
    stop_after: Optional[int] = None,
    on_round: Optional[Callable[[RoundReport], None]] = None,
    **overrides: Any,
) -> LoopReport:
    """Run the loop ``config`` describes on ``workspace``, resuming stored rounds.

    Parameters
    ----------
    workspace : curate.Workspace
    config : LoopConfig, dict, str or Path
        The configuration (or a JSON / YAML file of it); ``overrides`` replace fields.
    detector : Detector or str, optional
        Default: the mmdet3d detector named by ``config.detector``; a string is taken as that
        config name.
    stop_after : int, optional
        Stop after this many rounds in total (an interruption between rounds, for tests and
        for running a loop a round at a time).
    on_round : callable, optional
        Called with each finished :class:`RoundReport`.

    Returns
    -------
    LoopReport

    Raises
    ------
    InvalidInputError
        A stored loop of the same name has a different configuration (use a new name).
    """
    if isinstance(detector, str):  # a detector config name: the config field, not an object
        overrides["detector"] = detector
        detector = None
    cfg = load_loop_config(config, **overrides)
    require_embedding(workspace.store, cfg.embedding)
    config_hash = _config_hash(cfg)
    done = loop_rounds(workspace, cfg.name)
    for r in done:
        if r.info.get("config_hash") != config_hash:
            raise InvalidInputError(
                f"loop {cfg.name!r} already has rounds stored with another configuration; "
                "resume it with the same configuration or choose a new name"
            )
    work_dir = Path(cfg.work_dir) if cfg.work_dir else workspace.path / "loops" / cfg.name
    work_dir.mkdir(parents=True, exist_ok=True)
    oracle = create_oracle(cfg.oracle, cfg.label_dir)
    det = detector if detector is not None else _default_detector(cfg)
    val_ids, pool_where = validation_ids(workspace, cfg)
    rounds = [_report_from_run(r) for r in done]
    last = stop_after if stop_after is not None else cfg.rounds
    last = min(last, cfg.rounds)
    for rnd in range(len(done), last):
        previous = loop_rounds(workspace, cfg.name)
        rep = _run_round(workspace, cfg, det, oracle, rnd, previous, val_ids, pool_where, work_dir, config_hash)
        rounds.append(rep)
        logger.info("loop %s round %d: mAP3d %.2f with %d frames", cfg.name, rnd, rep.metrics.get("map_3d", 0.0), rep.labeled_frames)
        if on_round is not None:
            on_round(rep)
    return LoopReport(name=cfg.name, rounds=rounds, resumed_from=len(done))


def _report_from_run(run: RunRecord) -> RoundReport:
    info = run.info
    return RoundReport(
        round=int(info["round"]), run_id=run.run_id, selected=list(run.ids),
        labeled_frames=int(info["labeled_frames"]), labeled_boxes=int(info["labeled_boxes"]),
        metrics=dict(info["metrics"]), checkpoints=list(info["checkpoints"]),
        losses=list(info.get("losses", [])), seconds=float(run.seconds), score_run=info.get("score_run"),
    )


def _select(workspace: LocalWorkspace, cfg: LoopConfig, rnd: int, previous: list[RunRecord], pool_where: str, state_path: Path,
            det: Optional[Detector] = None, oracle: Optional[Oracle] = None) -> tuple[list[str], str]:
    if state_path.is_file():
        state = json.loads(state_path.read_text())
        sel = workspace.run(state["selection_run"])
        logger.info("round %d: reusing selection %s from an interrupted attempt", rnd, sel.run_id)
        return list(state.get("extra_ids", [])) + list(sel.ids), sel.run_id
    if rnd == 0:
        result = workspace.select("random", cfg.initial, embedding=cfg.embedding, where=pool_where, seed=cfg.seed)
    elif cfg.strategy == "mgral":
        # probes on table frames (labeled, part of the budget), table, policy; then the policy picks
        from curate.loop.mgral.stage import mgral_round

        lut_ids, policy, _ = mgral_round(workspace, cfg, det, oracle, rnd, previous, pool_where, state_path.parent)
        result = workspace.select(
            "mgral", cfg.budget - len(lut_ids), embedding=cfg.embedding, where=pool_where,
            seed=cfg.seed + rnd, score_run=previous[-1].info.get("score_run"), policy=str(policy),
        )
        _atomic_json(state_path, {"round": rnd, "selection_run": result.run.run_id, "extra_ids": lut_ids})
        return lut_ids + list(result.run.ids), result.run.run_id
    else:
        score_run = previous[-1].info.get("score_run")
        result = workspace.select(
            cfg.strategy, cfg.budget, embedding=cfg.embedding, where=pool_where,
            seed=cfg.seed + rnd, score_run=score_run, **cfg.strategy_params,
        )
    _atomic_json(state_path, {"round": rnd, "selection_run": result.run.run_id})
    return list(result.run.ids), result.run.run_id


def _training_ids(workspace: LocalWorkspace, cfg: LoopConfig, rnd: int, selected: list[str], pool_where: str) -> list[str]:
    labeled = [str(i) for i in workspace.store.ids(T.SAMPLES, where=f"({pool_where}) AND labeled = true")]
    if cfg.train_on == "all" or rnd == 0:
        return sorted(labeled)
    new = set(selected)
    old = sorted(i for i in labeled if i not in new)
    n_replay = min(len(old), int(round(cfg.replay * len(selected))))
    rng = np.random.default_rng(cfg.seed * 7919 + rnd)
    replay = [old[k] for k in sorted(rng.choice(len(old), size=n_replay, replace=False))] if n_replay else []
    return sorted(new) + replay


def _run_round(
    workspace: LocalWorkspace, cfg: LoopConfig, det: Detector, oracle: Oracle, rnd: int, previous: list[RunRecord],
    val_ids: list[str], pool_where: str, work_dir: Path, config_hash: str,
) -> RoundReport:
    start = time.perf_counter()
    round_dir = work_dir / f"round-{rnd}"
    round_dir.mkdir(parents=True, exist_ok=True)
    selected, selection_run = _select(workspace, cfg, rnd, previous, pool_where, work_dir / f"round-{rnd}.json", det, oracle)
    oracle.label(workspace, selected)
    train_ids = _training_ids(workspace, cfg, rnd, selected, pool_where)
    train_pkl = write_info_pkl(workspace, train_ids, round_dir / "train_infos.pkl")
    if cfg.start == "latest" and previous:
        init = list(previous[-1].info["checkpoints"])
    else:
        init = [cfg.pretrained] * cfg.ensemble if cfg.pretrained else [None] * cfg.ensemble
    checkpoints, losses, train_seconds, init_used = [], [], 0.0, []
    for k in range(cfg.ensemble):
        load_from = init[k % len(init)] if init else None
        init_used.append(load_from)
        res = det.train(train_pkl, round_dir / f"member-{k}", load_from=load_from, seed=cfg.seed * 1000 + rnd * 10 + k)
        checkpoints.append(res.checkpoint)
        if k == 0:
            losses = list(res.losses)
        train_seconds += res.seconds
    # evaluate on the held-out split
    val_pkl = write_info_pkl(workspace, val_ids, round_dir / "val_infos.pkl", with_labels=False)
    val_preds = det.predict(val_pkl, checkpoints, mc_samples=cfg.mc_dropout, seed=cfg.seed)
    result = evaluate_predictions(workspace, val_preds, classes=[c for c in ("Car", "Pedestrian", "Cyclist") if c in cfg.classes])
    # predict and score the unlabeled pool
    pool = [str(i) for i in workspace.store.ids(T.SAMPLES, where=f"({pool_where}) AND labeled = false")]
    score_run = None
    if pool:
        pool_pkl = write_info_pkl(workspace, pool, round_dir / "pool_infos.pkl", with_labels=False)
        preds = det.predict(pool_pkl, checkpoints, mc_samples=cfg.mc_dropout, seed=cfg.seed)
        columns = prediction_scores(preds, cfg.classes)
        score_run = f"{cfg.name}-r{rnd}"
        workspace.write_scores(score_run, pool, columns, predictions=preds)
    labeled = [str(i) for i in workspace.store.ids(T.SAMPLES, where=f"({pool_where}) AND labeled = true")]
    n_boxes = _count_boxes(workspace, labeled)
    map_3d = result.mean_ap("3d")
    cost = annotation_cost(len(labeled), n_boxes, map_3d)
    metrics = {
        "map_3d": map_3d,
        "map_bev": result.mean_ap("bev"),
        "map_2d": result.mean_ap("bbox"),
        # KITTI's second IoU set (Car 0.5, Ped/Cyc 0.25): informative for small, young models
        "map_bev_loose": result.mean_ap("bev", strict=False),
        "map_3d_loose": result.mean_ap("3d", strict=False),
        "ap": result.to_dict(),
        "boxes_per_map_point": cost.boxes_per_map_point,
        "frames_per_map_point": cost.frames_per_map_point,
        "val_frames": len(val_ids),
        "train_seconds": train_seconds,
    }
    seconds = time.perf_counter() - start
    info = {
        "loop": cfg.name, "round": rnd, "config_hash": config_hash, "selection_run": selection_run,
        "checkpoints": checkpoints, "metrics": metrics, "losses": losses, "score_run": score_run,
        "labeled_frames": len(labeled), "labeled_boxes": n_boxes, "train_frames": len(train_ids),
        "pool_size": len(pool),
        # what this round trained on and from: the continuous-training mode made concrete
        "train_ids": list(train_ids), "init_checkpoints": init_used,
        "start": cfg.start, "train_on": cfg.train_on, "ensemble": cfg.ensemble, "mc_dropout": cfg.mc_dropout,
    }
    mgral_summary = round_dir / "mgral" / "summary.json"
    if cfg.strategy == "mgral" and mgral_summary.is_file():
        info["mgral"] = json.loads(mgral_summary.read_text())  # table error, probe and policy seconds
    run = RunRecord(
        run_id=next_run_id(workspace.store), kind=LOOP_KIND, created_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        strategy="random" if rnd == 0 else cfg.strategy, params=cfg.model_dump(), budget=len(selected),
        seed=cfg.seed, embedding=cfg.embedding, embedding_version=workspace.store.version(T.embedding_table(cfg.embedding)),
        samples_version=workspace.store.version(T.SAMPLES), where=pool_where, num_candidates=len(pool) + len(selected),
        num_labeled=len(labeled), ids=selected, gains=[None] * len(selected), info=info,
        package_version=__version__, seconds=seconds,
    )
    workspace.store.append(T.RUNS, T.run_row(run))
    return _report_from_run(run)
