"""The pretraining loop: AdamW + cosine schedule, seeded, atomic checkpoints, resume, loss log.

:func:`train` runs a :class:`~embedders.pretrain.config.PretrainConfig` on arrays of
preprocessed clouds (and optional teacher features) and writes into ``run_dir``::

    run_dir/step-0100.pt, step-0200.pt, ...   every ``checkpoint_every`` steps and at the end
    run_dir/last.pt                           the latest of them (same content)
    run_dir/losses.jsonl                      one line per step: step, lr, total and each term

A checkpoint is ``{'base_model': state_dict, 'optimizer', 'epoch', 'step', 'config',
'rng_states'}`` with the official ReCon key names (``MAE_encoder.*`` for the encoder,
``mask_token``, ``MAE_decoder.*``...), so
``create_embedder("recon-tiny", checkpoint=".../last.pt")`` loads the encoder. Files are written
to a temporary name and renamed, so a kill never leaves a truncated checkpoint.

Stop: SIGTERM (and SIGINT) during :func:`train` in the main thread finish the current step,
write ``step-XXXX.pt`` + ``last.pt`` at that step and return with ``interrupted="SIGTERM"``; the
previous handlers are restored on return. DataLoader workers ignore both signals (the main
process shuts them down), so a signal sent to the whole process group stops cleanly too.

Resume: when ``run_dir/last.pt`` exists, training continues from it (model, optimizer, step).
Every random choice of step ``t`` (batch, augmentation, masks) derives from ``(seed, t)`` and the
learning rate from ``t``, so an interrupted and resumed run reaches the same weights as an
uninterrupted one (on the same device and thread count). Loss lines written after the last
checkpoint are dropped on resume (they are recomputed), so the log has one line per step.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from embedders.base import resolve_device
from embedders.errors import EmbedderError
from embedders.models.recon import ReconConfig
from embedders.pretrain.config import PretrainConfig
from embedders.pretrain.data import (
    Augmentation,
    CloudDataset,
    StepBatchSampler,
    TemporalNeighbours,
)
from embedders.pretrain.model import ReconPretrainModel, build_pretrain_model
from embedders.run_files import (
    LAST_CHECKPOINT,
    LOSS_LOG,
    check_resumable,
    checkpoint_name,
    read_loss_log,
    rewrite_loss_log,
    save_checkpoint,
)

__all__ = [
    "TrainResult",
    "train",
    "build_model_for",
    "learning_rate",
    "step_generator",
    "checkpoint_name",
    "LAST_CHECKPOINT",
    "LOSS_LOG",
    "STOP_SIGNALS",
]

logger = logging.getLogger(__name__)

#: Keys of the config that may differ when resuming (they do not change the result).
RESUMABLE_CHANGES = ("train.num_workers", "train.device")
#: Signals that make :func:`train` checkpoint the current step and return.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    run_dir : pathlib.Path
    checkpoint : pathlib.Path
        ``run_dir/last.pt``.
    steps : int
        Completed steps (== config ``train.steps`` unless stopped early).
    start_step : int
        Step the run resumed from (0 = fresh).
    final_losses : dict of str to float
        Mean of each logged term over the last ``min(20, steps)`` steps.
    seconds : float
        Wall time of this call.
    interrupted : str or None
        Name of the signal that stopped the run early (``"SIGTERM"``), None when it ran to the end.
    """

    run_dir: Path
    checkpoint: Path
    steps: int
    start_step: int
    final_losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: str | None = None


def learning_rate(step: int, config: PretrainConfig) -> float:
    """Learning rate of 0-based ``step``: linear warm-up, then cosine from ``lr`` to ``min_lr``."""
    train = config.train
    if step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    span = max(1, train.steps - train.warmup_steps)
    progress = min(1.0, (step - train.warmup_steps) / span)
    return train.min_lr + 0.5 * (train.lr - train.min_lr) * (1.0 + math.cos(math.pi * progress))


def step_generator(seed: int, step: int) -> torch.Generator:
    """CPU generator of the masks of ``step``, seeded from ``(seed, step)``."""
    state = np.random.SeedSequence([int(seed), int(step), 0x6D61736B]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0]) & ((1 << 63) - 1))


def build_model_for(config: PretrainConfig, teacher_dim: int | None) -> ReconPretrainModel:
    """The initial :class:`ReconPretrainModel` of ``config`` (deterministic for its seed)."""
    model = config.model
    return build_pretrain_model(
        ReconConfig.for_size(model.size, num_group=model.num_group, group_size=model.group_size),
        seed=config.seed,
        decoder_depth=model.decoder_depth,
        decoder_num_heads=model.decoder_heads,
        mask_ratio=model.mask_ratio,
        mask_type=model.mask_type,
        teacher_dim=teacher_dim if config.loss.image > 0 else None,
        contrast=config.loss.contrast > 0,
        contrast_on=config.loss.contrast_on,
    )


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases, norm weights, tokens and positions (official add_weight_decay)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if parameter.ndim <= 1 or name.endswith(("_token", "_pos")) or name == "mask_token":
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]


def _check_resumable(saved: dict[str, Any], config: PretrainConfig, path: Path) -> None:
    check_resumable(saved, config.to_dict(), PretrainConfig().to_dict(), path, RESUMABLE_CHANGES)


def _final_losses(rows: list[dict[str, Any]]) -> dict[str, float]:
    tail = rows[-20:]
    if not tail:
        return {}
    keys = [key for key in tail[-1] if key not in ("step", "lr", "epoch")]
    return {key: float(np.mean([row[key] for row in tail if key in row])) for key in keys}


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)
    for number in STOP_SIGNALS:
        # The main process decides when to stop and shuts the workers down itself.
        signal.signal(number, signal.SIG_IGN)


class _StopRequest:
    """Turns :data:`STOP_SIGNALS` into a flag while active (main thread only; else a no-op).

    Use as a context manager; the previous handlers are restored on exit.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, number: int, _frame: Any) -> None:
        if self.signal_name is None:
            logger.warning(
                "%s received: stopping after the current step and writing a checkpoint",
                signal.Signals(number).name,
            )
        self.signal_name = signal.Signals(number).name

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *_: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()


def train(
    config: PretrainConfig,
    clouds: np.ndarray,
    run_dir: str | os.PathLike[str],
    *,
    teacher: np.ndarray | None = None,
    progress: bool | None | Callable[[int, int | None, str], None] = None,
    extra: dict[str, Any] | None = None,
    scenes: list[str | None] | None = None,
    frame_indices: list[int] | None = None,
) -> TrainResult:
    """Pretrain (or resume pretraining) a ReCon encoder on preprocessed clouds.

    Parameters
    ----------
    config : PretrainConfig
    clouds : numpy.ndarray
        ``(F, P, 3)`` float32 unit-sphere clouds, ``P >= config.data.num_points``, points in
        random order.
    run_dir : path
        Output folder (created); resumed from when it holds ``last.pt``.
    teacher : numpy.ndarray, optional
        ``(F, D)`` frozen image features; required when ``config.loss.image > 0``.
    progress : bool or callable, optional
        Show a tqdm bar (default: when stderr is a terminal); a callable is called as
        ``progress(step, steps, "step")`` after every step instead.
    extra : dict, optional
        Plain values stored under ``'curate'`` in every checkpoint (e.g. the embed options).
    scenes, frame_indices : list, optional
        Scene and frame index of each cloud; required by the temporal contrastive term
        (``[loss] contrast_pairs = "temporal"``), whose positives are frames of the same scene
        within ``contrast_window`` frame indices (:class:`~embedders.pretrain.data.TemporalNeighbours`).

    Returns
    -------
    TrainResult
        ``interrupted`` names the signal when SIGTERM / SIGINT stopped the run early; the
        checkpoint of the step reached is written either way, and calling again resumes.

    Raises
    ------
    EmbedderError
        Missing teacher features, batch larger than the data, or a resume with another config.

    Notes
    -----
    Memory O(batch * num_points + parameters); time O(steps * batch * per-cloud cost) (see
    :class:`~embedders.pretrain.model.ReconPretrainModel`).
    """
    started = time.perf_counter()
    if config.loss.image > 0 and teacher is None:
        raise EmbedderError(
            "loss.image > 0 needs teacher features; pass teacher=... or set [loss] image = 0"
        )
    use_teacher = teacher if config.loss.image > 0 else None
    run_path = Path(run_dir)
    run_path.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.train.device)
    teacher_dim = None if use_teacher is None else int(use_teacher.shape[1])
    model = build_model_for(config, teacher_dim)
    model.to(device)
    optimizer = torch.optim.AdamW(
        _param_groups(model, config.train.weight_decay), lr=config.train.lr, betas=(0.9, 0.999)
    )
    start_step = 0
    last = run_path / LAST_CHECKPOINT
    if last.exists():
        state = torch.load(last, map_location=device, weights_only=True)
        _check_resumable(state.get("config", {}), config, last)
        model.load_state_dict(state["base_model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        start_step = int(state["step"])
        torch_state = state.get("rng_states", {}).get("torch")
        if isinstance(torch_state, torch.Tensor):
            torch.set_rng_state(torch_state.cpu())
        logger.info("resuming %s from step %d", run_path, start_step)
    log_path = run_path / LOSS_LOG
    rows = read_loss_log(log_path, start_step)
    rewrite_loss_log(log_path, rows)

    views = 2 if config.loss.contrast > 0 else 1
    neighbours = None
    if views > 1 and config.loss.contrast_pairs == "temporal":
        if scenes is None or frame_indices is None:
            raise EmbedderError(
                'contrast_pairs = "temporal" needs the scene and frame index of every cloud '
                "(scenes=..., frame_indices=...)"
            )
        if len(scenes) != len(clouds) or len(frame_indices) != len(clouds):
            raise EmbedderError(
                f"scenes ({len(scenes)}) and frame_indices ({len(frame_indices)}) must have one "
                f"entry per cloud ({len(clouds)})"
            )
        neighbours = TemporalNeighbours(scenes, frame_indices, config.loss.contrast_window)
    dataset = CloudDataset(
        clouds,
        config.data.num_points,
        teacher=use_teacher,
        augment=Augmentation() if config.data.augment else None,
        views=views,
        neighbours=neighbours,
    )
    sampler = StepBatchSampler(
        len(dataset), config.train.batch_size, config.seed, start_step, config.train.steps
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=config.train.num_workers,
        worker_init_fn=_worker_init if config.train.num_workers else None,
    )
    weights = {
        "reconstruction": config.loss.reconstruction,
        "image": config.loss.image,
        "contrast": config.loss.contrast,
    }
    step = start_step
    checkpoint = last
    model.train()
    report = progress if callable(progress) else None
    show = False if report is not None else (None if progress is None else bool(progress))
    bar = tqdm(
        total=config.train.steps,
        initial=start_step,
        desc=f"pretrain {config.name}",
        unit="step",
        disable=not (sys.stderr.isatty() if show is None else show),
        dynamic_ncols=True,
    )
    stop = _StopRequest()
    try:
        with stop, log_path.open("a") as log:
            for batch in loader:
                lr = learning_rate(step, config)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                points = batch["points"].to(device)
                terms = model.losses(
                    points[:, 0],
                    step_generator(config.seed, step),
                    teacher=batch["teacher"].to(device) if use_teacher is not None else None,
                    second_view=points[:, 1] if views > 1 else None,
                    temperature=config.loss.temperature,
                )
                total = sum(weights[name] * value for name, value in terms.items())
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                if config.train.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
                optimizer.step()
                step += 1
                row = {"step": step, "epoch": sampler.epoch_of(step - 1), "lr": lr,
                       "total": float(total.detach())}
                row.update({name: float(value.detach()) for name, value in terms.items()})
                if not all(math.isfinite(value) for value in row.values()):
                    raise EmbedderError(
                        f"non-finite loss at step {step}: {row}; lower [train] lr or check the data"
                    )
                log.write(json.dumps(row) + "\n")
                log.flush()
                rows.append(row)
                bar.update(1)
                if report is not None:
                    report(step, config.train.steps, "step")
                bar.set_postfix(loss=f"{row['total']:.4f}")
                if (
                    step % config.train.checkpoint_every == 0
                    or step == config.train.steps
                    or stop.signal_name is not None
                ):
                    checkpoint = save_checkpoint(
                        run_path,
                        {
                            "base_model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                            "optimizer": optimizer.state_dict(),
                            "epoch": sampler.epoch_of(step - 1),
                            "step": step,
                            "config": config.to_dict(),
                            "rng_states": {"torch": torch.get_rng_state()},
                            "curate": dict(extra or {}),
                        },
                        step,
                    )
                if stop.signal_name is not None and step < config.train.steps:
                    logger.warning(
                        "pretraining stopped by %s at step %d of %d; checkpoint %s "
                        "(run again to resume)",
                        stop.signal_name, step, config.train.steps, checkpoint,
                    )
                    break
    finally:
        bar.close()
    return TrainResult(
        run_dir=run_path,
        checkpoint=checkpoint,
        steps=step,
        start_step=start_step,
        final_losses=_final_losses(rows),
        seconds=time.perf_counter() - started,
        interrupted=stop.signal_name if step < config.train.steps else None,
    )
