"""One ``mgral`` round of the loop, before its selection: table frames, probes, table, policy.

Steps (all files under ``<work_dir>/round-<r>/mgral/``, each written atomically, so a round
killed at any point resumes where it stopped, with the same frames and no probe run twice):

1. ``plan.json``: the table frames (``lut_frames`` drawn at random from the unlabeled pool),
   the tuning frames (``tuning_fraction`` of the labeled frames: they evaluate the probes and
   are left out of the probes' training; the loop's reported validation split is never used
   for the reward), the probe and held-out batches (:mod:`curate.loop.mgral.lut`);
2. the oracle labels the table frames (they count in the round's budget);
3. ``probes.json``: base, probe and held-out fine-tunes (``probe_epochs`` from the round's
   starting weights, trained as :func:`probe_detector` says), each's tuning measure
   (:func:`reward_value`: a mAP, or the tuning frames' training loss) written as soon as it is
   known;
4. ``lut.json``: the fitted table and its error on the held-out batches;
5. ``policy/``: the LSTM policy trained by REINFORCE on the table's estimates over the table
   frames (warm-started from the previous round's policy), checkpointed every
   ``checkpoint_every`` steps (``step-XXXX.pt`` + ``last.pt``, resumed exactly);
6. ``summary.json``: the stage's record (also stored in the loop run's ``info["mgral"]``).

The selection then applies ``policy/last.pt`` to the whole pool (``budget - lut_frames``
frames). Cost: ``1 + probes + heldout`` short fine-tunes and tuning evaluations, plus
``iterations * samples`` policy decodes over ``lut_frames`` candidates (seconds).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from curate import _tables as T
from curate.errors import InvalidInputError
from curate.local_workspace import LocalWorkspace
from curate.loop.mgral.lut import LookupTable, fit_table, heldout_batches, probe_design, run_probes, table_error
from curate.loop.mgral.options import MGRALOptions, mgral_options
from curate.loop.oracle import Oracle

__all__ = ["mgral_round", "make_plan", "reward_value", "LOSS_METRIC", "probe_runs", "probe_detector", "table_and_policy", "train_budget", "metric_of", "MGRAL_DIR", "policy_path"]

logger = logging.getLogger(__name__)

MGRAL_DIR = "mgral"
EVAL_CLASSES = ("Car", "Pedestrian", "Cyclist")


def policy_path(work_dir: Path, rnd: int) -> Path:
    """The policy checkpoint of round ``rnd`` of a loop whose work dir is ``work_dir``."""
    return Path(work_dir) / f"round-{rnd}" / MGRAL_DIR / "policy" / "last.pt"


def _write_json(path: Path, data: dict) -> None:
    from embedders.run_files import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())


def metric_of(result: Any, name: str) -> float:
    """The loop metric ``name`` of a :class:`~curate.evaluation.kitti.KittiResult`."""
    kind, strict = {"map_bev": ("bev", True), "map_bev_loose": ("bev", False),
                    "map_3d": ("3d", True), "map_3d_loose": ("3d", False)}[name]
    return float(result.mean_ap(kind, strict=strict))


#: The ``metric`` option whose reward is the tuning frames' training loss, not a mAP.
LOSS_METRIC = "tuning_loss"


def reward_value(det: Any, checkpoint: str, tune_pkl: Path, metric: str,
                 evaluate: Callable[[list], Any]) -> float:
    """The tuning measure of one fine-tune whose difference to the base fine-tune's is the reward.

    Parameters
    ----------
    det : Detector
        The probe detector (``predict``; ``loss`` for ``tuning_loss``).
    checkpoint : str
        The fine-tune's weights.
    tune_pkl : pathlib.Path
        The tuning frames' info pkl (with labels for ``tuning_loss``).
    metric : str
        :attr:`MGRALOptions.metric`.
    evaluate : callable
        Predictions -> :class:`~curate.evaluation.kitti.KittiResult` (the caller's evaluation
        filter and classes); not called for ``tuning_loss``.

    Returns
    -------
    float
        The mAP ``metric`` in points, or for ``tuning_loss`` ``-100 * ln(mean per-frame loss)``
        (so a gain is ``100 * ln(base loss / loss)``, about a percent decrease, on the mAP
        points' scale). Cost: one prediction (or loss) pass over the tuning frames.
    """
    if metric == LOSS_METRIC:
        if not hasattr(det, "loss"):
            raise InvalidInputError(f"mgral metric {LOSS_METRIC!r}: detector {det!r} has no loss method")
        losses = np.asarray(det.loss(tune_pkl, checkpoint), dtype=np.float64)
        mean = float(losses.mean())
        if not np.isfinite(mean) or mean <= 0:
            raise InvalidInputError(f"mgral metric {LOSS_METRIC!r}: the tuning loss of {checkpoint} is {mean}")
        return -100.0 * float(np.log(mean))
    return metric_of(evaluate(det.predict(tune_pkl, [checkpoint])), metric)


def make_plan(candidates: list[str], labeled: list[str], opts: MGRALOptions, seed: int, rnd: int) -> dict:
    """The round's table frames, tuning / training split of the labeled frames, probe and
    held-out batches (seeded; pure)."""
    if len(candidates) < opts.lut_frames + 1:
        raise InvalidInputError(f"mgral: the pool has {len(candidates)} unlabeled frames, fewer than lut_frames + 1")
    if len(labeled) < 2:
        raise InvalidInputError("mgral: needs at least 2 labeled frames (a tuning and a training part)")
    rng = np.random.default_rng([seed, rnd, 16])
    lut = sorted(candidates[i] for i in rng.choice(len(candidates), size=opts.lut_frames, replace=False))
    n_tune = min(len(labeled) - 1, max(1, int(round(opts.tuning_fraction * len(labeled)))))
    tuning = sorted(labeled[i] for i in rng.choice(len(labeled), size=n_tune, replace=False))
    tune_set = set(tuning)
    probes = probe_design(opts.lut_frames, opts.probes, opts.probe_size, seed=seed * 1000 + rnd)
    held = heldout_batches(opts.lut_frames, opts.heldout, opts.probe_size, seed=seed * 1000 + rnd, avoid=probes)
    return {"round": rnd, "candidates": list(candidates), "labeled": list(labeled), "lut_frames": lut,
            "tuning": tuning, "train_part": [i for i in labeled if i not in tune_set], "probes": probes, "heldout": held}


def _plan(workspace: LocalWorkspace, cfg: Any, opts: MGRALOptions, rnd: int, pool_where: str, path: Path) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    candidates = sorted(str(i) for i in workspace.store.ids(T.SAMPLES, where=f"({pool_where}) AND labeled = false"))
    labeled = sorted(str(i) for i in workspace.store.ids(T.SAMPLES, where=f"({pool_where}) AND labeled = true"))
    plan = make_plan(candidates, labeled, opts, cfg.seed, rnd)
    _write_json(path, plan)
    return plan


def probe_runs(plan: dict) -> list[tuple[str, list[int]]]:
    """``(name, batch)`` of every fine-tune of a plan: the base (empty batch), probes, held-out."""
    runs: list[tuple[str, list[int]]] = [("base", [])]
    runs += [(f"probe-{k}", list(b)) for k, b in enumerate(plan["probes"])]
    runs += [(f"heldout-{k}", list(b)) for k, b in enumerate(plan["heldout"])]
    return runs


def probe_detector(det: Any, opts: MGRALOptions) -> Any:
    """A shallow copy of ``det`` that trains as the probes do: ``probe_epochs`` epochs and, when
    set, ``probe_lr`` (detectors without an ``epochs`` / ``lr`` attribute keep their own); with
    ``probe_augment=False``, no augmentation and no shuffling; with ``probe_head_only``, the
    dense head alone."""
    probe = copy.copy(det)
    if hasattr(probe, "epochs"):
        probe.epochs = opts.probe_epochs
    else:
        logger.info("mgral: detector %r has no epochs attribute; probes train as long as rounds", det)
    if opts.probe_lr is not None:
        if hasattr(probe, "lr"):
            probe.lr = opts.probe_lr
        else:
            logger.warning("mgral: detector %r has no lr attribute; probe_lr %s is not applied", det, opts.probe_lr)
    if not opts.probe_augment:
        if hasattr(probe, "augment") and hasattr(probe, "shuffle"):
            probe.augment, probe.shuffle = False, False
        else:
            raise InvalidInputError(f"mgral probe_augment=False: detector {det!r} cannot train without "
                                    "augmentation and shuffling (no augment / shuffle attributes)")
    if opts.probe_optimizer == "sgd":
        if hasattr(probe, "optimizer"):
            probe.optimizer = "sgd"
        else:
            raise InvalidInputError(f"mgral probe_optimizer='sgd': detector {det!r} has no optimizer attribute")
    if opts.probe_head_only:
        if hasattr(probe, "train_head_only"):
            probe.train_head_only = True
        else:
            raise InvalidInputError(f"mgral probe_head_only=True: detector {det!r} cannot train its head alone "
                                    "(no train_head_only attribute)")
    return probe


def _features(workspace: LocalWorkspace, cfg: Any, plan: dict, score_run: str, n_pca: int) -> np.ndarray:
    from curate.selectors.mgral import candidate_features

    pool = plan["candidates"] + plan["labeled"]
    _, vecs = workspace.vectors(cfg.embedding, pool)
    _, cand = workspace.scores(score_run, plan["candidates"])
    pad = len(plan["labeled"])
    scores = {k: np.concatenate([np.asarray(v, dtype=np.float64), np.zeros(pad)]) for k, v in cand.items()}
    mask = np.zeros(len(pool), dtype=bool)
    mask[len(plan["candidates"]):] = True
    return candidate_features(np.asarray(vecs, dtype=np.float32), mask, scores, n_pca=n_pca)


def _train_policy(feats: np.ndarray, table: LookupTable, opts: MGRALOptions, seed: int, budget: int,
                  run_dir: Path, warm_start: Optional[Path]) -> dict:
    import torch

    from curate.selectors._mgral_policy import SetLSTMPolicy, expected_reward, reinforce
    from curate.selectors.mgral import load_policy, save_policy

    x = torch.from_numpy(np.ascontiguousarray(feats))
    resume = None
    start_from = None
    last = run_dir / "last.pt"
    if last.is_file():
        policy, state = load_policy(last)
        resume = state["extra"].get("train")
        start_from = str(last)
    else:
        torch.manual_seed(seed)
        policy = SetLSTMPolicy(x.shape[1], hidden=opts.hidden)
        if warm_start is not None and Path(warm_start).is_file():
            old, _ = load_policy(warm_start)
            if old.n_features == policy.n_features and old.hidden == policy.hidden:
                policy.load_state_dict(old.state_dict())
                start_from = str(warm_start)

    def reward(picks: np.ndarray) -> np.ndarray:
        return table.estimate(picks)

    before = expected_reward(policy, x, budget, reward, seed=seed) if resume is None else None

    def checkpoint(step: int, state: dict) -> None:
        save_policy(run_dir, policy, step=step, n_pca=opts.n_pca,
                    extra={"train": state, "done": step >= opts.iterations})

    policy.train()
    reinforce(policy, x, budget, reward, iterations=opts.iterations, samples=opts.samples, lr=opts.lr,
              seed=seed, resume=resume, checkpoint_every=opts.checkpoint_every, on_checkpoint=checkpoint)
    policy.eval()
    after = expected_reward(policy, x, budget, reward, seed=seed)
    best = float(np.sort(table.weights)[-budget:].sum() + table.intercept)
    return {"expected_reward_before": before, "expected_reward_after": after, "best_table_batch": best,
            "train_budget": budget, "warm_start": start_from}


def table_and_policy(
    mdir: Path,
    plan: dict,
    measure: Callable[[str, list[str]], float],
    lut_features: np.ndarray,
    opts: MGRALOptions,
    *,
    seed: int,
    train_budget: int,
    warm_start: Optional[Path] = None,
) -> dict:
    """Probes (resumable), table, its held-out error and the trained policy of one round.

    Parameters
    ----------
    mdir : pathlib.Path
        The round's mgral folder (``probes.json``, ``lut.json``, ``policy/``).
    plan : dict
        :func:`make_plan`'s output.
    measure : callable
        ``(run name, table frame ids of the batch) -> tuning metric`` of a real fine-tune on the
        plan's ``train_part`` plus those frames.
    lut_features : numpy.ndarray
        ``(lut_frames, n_features)`` candidate features of the table frames.
    opts : MGRALOptions
    seed : int
        Seed of the policy's initialisation and REINFORCE sampling.
    train_budget : int
        Batch size the policy is trained to emit over the table frames.
    warm_start : pathlib.Path, optional
        A previous policy checkpoint to start from (same shape).

    Returns
    -------
    dict
        Table error (Spearman, MAE, pairs), base metric, seconds of the probes and of the
        policy training, expected rewards before / after training, the policy path.
    """
    lut_ids = list(plan["lut_frames"])
    runs = probe_runs(plan)
    t0 = time.perf_counter()
    values = run_probes([name for name, _ in runs], lambda k: measure(runs[k][0], [lut_ids[i] for i in runs[k][1]]),
                        mdir / "probes.json")
    probe_s = time.perf_counter() - t0
    base = values["base"]
    batches = [[]] + [list(b) for b in plan["probes"]]
    gains = [0.0] + [values[f"probe-{k}"] - base for k in range(len(plan["probes"]))]
    table = fit_table(lut_ids, batches, gains, ridge=opts.ridge)
    err = table_error(table, plan["heldout"], [values[f"heldout-{k}"] - base for k in range(len(plan["heldout"]))])
    table.extra = {"base": base, "metric": opts.metric, "probe_batches": plan["probes"], "probe_gains": gains[1:],
                   "heldout_batches": plan["heldout"], "heldout": err, "tuning_frames": plan["tuning"]}
    _write_json(mdir / "lut.json", table.to_dict())
    t1 = time.perf_counter()
    policy_info = _train_policy(lut_features, table, opts, seed, train_budget, mdir / "policy", warm_start)
    policy_s = time.perf_counter() - t1
    return {
        "round": plan["round"], "lut_frames": lut_ids, "policy": str(mdir / "policy" / "last.pt"),
        "table_spearman": err["spearman"], "table_mae": err["mae"], "heldout_estimated": err["estimated"],
        "heldout_real": err["real"], "base": base, "metric": opts.metric, "probe_runs": len(runs),
        "probe_seconds": probe_s, "policy_seconds": policy_s, **policy_info,
    }


def mgral_round(
    workspace: LocalWorkspace,
    cfg: Any,
    det: Any,
    oracle: Oracle,
    rnd: int,
    previous: list,
    pool_where: str,
    work_dir: Path,
) -> tuple[list[str], Path, dict]:
    """Run the stage of round ``rnd`` (see the module docstring); resumes from its files.

    Returns
    -------
    lut_frames : list of str
        Table frames, labeled by now (part of the round's selection).
    policy : pathlib.Path
        The trained policy checkpoint (``last.pt``).
    summary : dict
        Table error, probe and policy timings, expected rewards.
    """
    from curate.loop.evaluate import evaluate_predictions
    from curate.loop.infos import write_info_pkl

    opts = mgral_options(cfg.strategy_params, budget=cfg.budget)
    mdir = Path(work_dir) / f"round-{rnd}" / MGRAL_DIR
    mdir.mkdir(parents=True, exist_ok=True)
    summary_path = mdir / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        return list(summary["lut_frames"]), Path(summary["policy"]), summary
    start = time.perf_counter()
    score_run = previous[-1].info.get("score_run")
    if not score_run:
        raise InvalidInputError(f"mgral round {rnd}: round {rnd - 1} stored no pool scores")
    plan = _plan(workspace, cfg, opts, rnd, pool_where, mdir / "plan.json")
    lut_ids = list(plan["lut_frames"])
    oracle.label(workspace, lut_ids)
    probe_det = probe_detector(det, opts)
    load_from = previous[-1].info["checkpoints"][0]
    eval_classes = [c for c in EVAL_CLASSES if c in cfg.classes]
    tune_pkl = write_info_pkl(workspace, plan["tuning"], mdir / "tuning_infos.pkl",
                              with_labels=opts.metric == LOSS_METRIC)

    def measure(name: str, batch: list[str]) -> float:
        run_dir = mdir / name
        pkl = write_info_pkl(workspace, sorted(plan["train_part"] + batch), run_dir / "train_infos.pkl")
        res = probe_det.train(pkl, run_dir / "train", load_from=load_from, seed=cfg.seed * 1000 + rnd * 10 + 7)
        return reward_value(probe_det, res.checkpoint, tune_pkl, opts.metric,
                            lambda preds: evaluate_predictions(workspace, preds, classes=eval_classes))

    position = {fid: r for r, fid in enumerate(plan["candidates"])}
    feats = _features(workspace, cfg, plan, score_run, opts.n_pca)[[position[i] for i in lut_ids]]
    summary = table_and_policy(
        mdir, plan, measure, feats, opts, seed=cfg.seed * 1000 + rnd, train_budget=train_budget(cfg.budget, opts),
        warm_start=policy_path(work_dir, rnd - 1),
    )
    summary["stage_seconds"] = time.perf_counter() - start
    _write_json(summary_path, summary)
    logger.info("mgral round %d: table spearman %s mae %s on %d held-out batches; policy reward %s -> %.3f",
                rnd, summary["table_spearman"], summary["table_mae"], len(plan["heldout"]),
                summary["expected_reward_before"], summary["expected_reward_after"])
    return lut_ids, Path(summary["policy"]), summary


def train_budget(budget: int, opts: MGRALOptions) -> int:
    """Batch size the policy trains on over the table frames: the policy's share of the round's
    budget, at most half the table (so the choice is not forced)."""
    return max(1, min(budget - opts.lut_frames, opts.lut_frames // 2))


def describe(opts: Optional[MGRALOptions] = None) -> str:
    """One line stating the probe design of ``opts`` (for reports)."""
    o = opts or MGRALOptions()
    return (f"{o.lut_frames} table frames, {o.probes} probes of {o.probe_size} (balanced), {o.heldout} held-out batches, "
            f"{o.probe_epochs}-epoch fine-tunes{'' if o.probe_lr is None else f' at lr {o.probe_lr:g}'}"
            f"{'' if o.probe_augment else ' (no augmentation, no shuffling)'}"
            f"{' of the head alone' if o.probe_head_only else ''}{' by plain SGD' if o.probe_optimizer == 'sgd' else ''}, "
            f"ridge {o.ridge}, reward {o.metric} on {o.tuning_fraction:.0%} of the labeled frames")
