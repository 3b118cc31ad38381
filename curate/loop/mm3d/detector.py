"""``MMDet3DDetector``: the loop's :class:`curate.loop.Detector` implemented with mmdet3d.

* ``train`` runs mmengine's ``Runner`` on an info pkl written by
  :func:`curate.loop.infos.write_info_pkl`: a fresh ``work_dir`` per call, ``load_from`` the
  given checkpoint (the previous round) or random initialisation, never ``resume=True``; a hook
  records the total loss of every iteration.
* ``predict`` runs the model(s) over an info pkl with mmdet3d's own dataset and test pipeline
  and returns every frame's boxes after NMS with the per-class sigmoid scores of each box
  (:class:`curate.loop.mm3d.heads.ProbAnchor3DHead` for anchor heads: PointPillars, SECOND;
  :class:`curate.loop.mm3d.heads.ProbCenterHead` for CenterPoint, whose model keeps its head in
  ``pts_bbox_head``). Several checkpoints form an ensemble and ``mc_samples > 0`` draws
  MC-dropout passes: the class score maps (anchor scores or CenterPoint heatmaps) are averaged
  over the members before NMS (the boxes are decoded from the mean regression), and each
  member's scores of the kept boxes are returned in ``FramePrediction.member_probs``
  (MagLev-style disagreement). Each frame's EMOC (expected gradient norm of the last
  classification layer on the frame's pseudo-labels, :func:`curate.scoring.emoc`) is computed
  in the same pass from a hook on that layer (anchor heads: ``conv_cls``; CenterPoint: each
  task's last heatmap conv) and returned in
  ``FramePrediction.extra["emoc"]`` (:mod:`curate.loop.mm3d.emoc`). A CenterPoint head with a
  trained velocity branch (``centerpoint-tiny-nus``, ``centerpoint``) also returns each kept
  box's ``(vx, vy)`` (LiDAR frame) in ``FramePrediction.extra["velocity"]``, which the nuScenes
  metric scores (mAVE, part of NDS).

* ``loss`` returns the model's own training loss on every labeled frame of an info pkl (the
  training pipeline without its random transforms, one frame per batch, eval mode, no gradient);
  MGRAL's ``tuning_loss`` reward reads it. ``augment=False, shuffle=False`` make a training run a
  deterministic function of its frames, ``train_head_only`` trains the dense head alone and
  ``optimizer="sgd"`` trains by plain SGD (MGRAL's probe designs).

Needs ``curate[mm3d]``; CPU by default. Cost: training is detector-bound (the tiny config runs
a few iterations per second on 2 cores); prediction is O(frames * members) forward passes,
memory O(batch * members * anchors * C) (CenterPoint: O(batch * members * cells * C)).
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from curate.errors import InvalidInputError, NotFoundError
from curate.loop.detector import TrainResult
from curate.loop.infos import read_info_pkl
from curate.loop.mm3d._imports import require_mm3d
from curate.loop.mm3d.configs import detector_config
from curate.scores_table import FramePrediction

__all__ = ["MMDet3DDetector", "predicts_velocity"]

logger = logging.getLogger(__name__)

#: Anchor z-centre and size (l, w, h) per class in the shipped tiny config (KITTI means).
_TINY_ANCHORS = {
    "Pedestrian": (-0.6, [0.8, 0.6, 1.73], (0.5, 0.35)),
    "Cyclist": (-0.6, [1.76, 0.6, 1.73], (0.5, 0.35)),
    "Car": (-1.78, [3.9, 1.6, 1.56], (0.6, 0.45)),
    "Van": (-1.78, [5.0, 1.9, 2.1], (0.6, 0.45)),
    "Truck": (-1.78, [10.0, 2.5, 3.2], (0.6, 0.45)),
}

#: Transforms :meth:`MMDet3DDetector.loss_pipeline` keeps from a training pipeline (the others
#: are random augmentations).
_DETERMINISTIC_TRANSFORMS = frozenset({
    "LoadPointsFromFile", "LoadPointsFromMultiSweeps", "LoadAnnotations3D", "PointsRangeFilter",
    "ObjectRangeFilter", "ObjectNameFilter", "ZeroBoxVelocity", "Pack3DDetInputs",
})

#: CenterPoint circle-NMS radius (m) per class (mmdet3d's nuScenes values: car 4, bicycle 0.85,
#: pedestrian 0.175); ``centerpoint-tiny`` given other classes gets one task per class.
_CENTER_RADIUS = {"Pedestrian": 0.175, "Cyclist": 0.85, "Car": 4.0, "Van": 4.0, "Truck": 12.0,
                  # nuScenes detection classes (mmdet3d's centerpoint nus config)
                  "car": 4.0, "truck": 12.0, "construction_vehicle": 12.0, "bus": 10.0, "trailer": 10.0,
                  "barrier": 1.0, "motorcycle": 0.85, "bicycle": 0.85, "pedestrian": 0.175, "traffic_cone": 0.175}


def _model_head(model: Any) -> Any:
    """The dense head of an mmdet3d model: ``bbox_head`` (VoxelNet) or ``pts_bbox_head``
    (CenterPoint); ``None`` for a model with neither (two-stage: ``rpn_head`` / ``roi_head``)."""
    if hasattr(model, "bbox_head"):
        return model.bbox_head
    return getattr(model, "pts_bbox_head", None)


def _head_name(head: Any) -> str:
    return "no bbox_head / pts_bbox_head" if head is None else f"a {type(head).__name__}"


def _head_outputs(model: Any, head: Any, inputs: dict, metas: list) -> Any:
    """The raw head outputs of one forward pass (CenterPoint's ``extract_feat`` returns
    ``(img_feats, pts_feats)``; the head reads ``pts_feats``)."""
    if hasattr(model, "pts_bbox_head"):
        _, pts_feats = model.extract_feat(inputs, metas)
        return head(pts_feats)
    return head(model.extract_feat(inputs))


def _register_transforms() -> None:
    """Register ``ZeroBoxVelocity`` in mmdet3d's transform registry (once).

    It pads 7-dim ground-truth boxes (KITTI: no velocity) to 9 dims with a zero velocity, for
    CenterPoint heads, whose mmdet3d 1.4 targets always read a velocity. O(boxes).
    """
    from mmcv.transforms import BaseTransform
    from mmdet3d.registry import TRANSFORMS

    if TRANSFORMS.get("ZeroBoxVelocity") is not None:
        return

    class ZeroBoxVelocity(BaseTransform):
        """Pads ``gt_bboxes_3d`` of 7 dims with a zero velocity (vx, vy) to 9 dims."""

        def transform(self, results: dict) -> dict:
            boxes = results.get("gt_bboxes_3d")
            if boxes is not None and boxes.tensor.shape[1] == 7:
                padded = boxes.tensor.new_zeros((boxes.tensor.shape[0], 9))
                padded[:, :7] = boxes.tensor
                results["gt_bboxes_3d"] = type(boxes)(padded, box_dim=9, with_yaw=boxes.with_yaw)
            return results

    TRANSFORMS.register_module(name="ZeroBoxVelocity", module=ZeroBoxVelocity)


def _head_only_hook() -> Any:
    from mmengine.hooks import Hook

    class HeadOnly(Hook):
        """Trains the dense head alone: every other parameter is frozen and every other module
        kept in eval mode (batch-norm statistics and dropout as loaded)."""

        priority = "VERY_HIGH"

        @staticmethod
        def _split(runner: Any) -> tuple[Any, Any]:
            model = getattr(runner.model, "module", runner.model)
            head = _model_head(model)
            if head is None:
                raise InvalidInputError("train_head_only: the model has no bbox_head / pts_bbox_head")
            return model, head

        def before_train(self, runner: Any) -> None:
            model, head = self._split(runner)
            head_params = {id(p) for p in head.parameters()}
            for p in model.parameters():
                if id(p) not in head_params:
                    p.requires_grad_(False)

        def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
            model, head = self._split(runner)
            head_modules = {id(m) for m in head.modules()}
            for m in model.modules():
                if id(m) not in head_modules and m is not model:
                    m.eval()

    return HeadOnly()


def _loss_recorder() -> Any:
    from mmengine.hooks import Hook

    class LossRecorder(Hook):
        """Collects the total training loss of every iteration."""

        priority = "LOW"

        def __init__(self) -> None:
            self.losses: list[float] = []

        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            if outputs and "loss" in outputs:
                loss = outputs["loss"]
                self.losses.append(float(loss.detach() if hasattr(loss, "detach") else loss))

    return LossRecorder()


class MMDet3DDetector:
    """mmdet3d detector trained and run through mmengine (see the module docstring).

    Parameters
    ----------
    config : str
        A name of :func:`curate.loop.mm3d.configs.list_detector_configs` or an mmengine config
        file path.
    classes : sequence of str
        Detector classes, in label order (the KITTI names of the info pkls).
    epochs : int, optional
        Training epochs per round (default: the config's ``epochs``, 2 for the tiny config).
    batch_size : int, optional
    lr : float, optional
        AdamW learning rate (default: the config's).
    augment : bool
        Train with the config's random augmentations (flips, rotations, scaling, point
        shuffles); False trains on :meth:`loss_pipeline` (the same transforms without the random
        ones).
    shuffle : bool
        Shuffle the training frames each epoch; False keeps the info pkl's order. With
        ``augment=False`` a training run is then a deterministic function of its frames and
        starting weights (MGRAL's ``probe_augment=False`` probes).
    optimizer : str, optional
        None: the config's optimizer (AdamW); ``"sgd"``: plain SGD (no momentum, no weight
        decay) at ``lr``, which must then be given. An SGD step is linear in the batch's
        gradient, so small steps add up frame by frame (MGRAL's ``probe_optimizer="sgd"``).
    train_head_only : bool
        Train the dense head alone (``bbox_head`` / ``pts_bbox_head``); the voxel encoder,
        backbone and neck stay as loaded, batch-norm statistics included. From trained weights
        this is a small, nearly convex problem (the head's last layers are linear in fixed
        features), so a fine-tune's outcome changes smoothly with its frames (MGRAL's
        ``probe_head_only`` probes).
    num_workers : int
        Data loader workers (0: load in the main process).
    feat_dropout : float
        Dropout on the head's input features (``ProbAnchor3DHead`` or ``ProbCenterHead``);
        needed for ``mc_samples > 0``.
    device : str
        ``"cpu"`` or ``"cuda"``.
    predict_batch_size : int
        Frames per forward pass at prediction time.
    score_thr : float, optional
        Boxes scoring below this are dropped before NMS at prediction time (default: the
        config's ``test_cfg.score_thr``, 0.05 for the tiny config). A lower threshold keeps the
        weak boxes of a briefly trained model (KITTI AP ranks them; uncertainty scores see them).
    """

    def __init__(
        self,
        config: str = "pointpillars-tiny",
        *,
        classes: Sequence[str] = ("Pedestrian", "Cyclist", "Car"),
        epochs: Optional[int] = None,
        batch_size: Optional[int] = None,
        lr: Optional[float] = None,
        augment: bool = True,
        shuffle: bool = True,
        train_head_only: bool = False,
        optimizer: Optional[str] = None,
        num_workers: int = 0,
        feat_dropout: float = 0.0,
        device: str = "cpu",
        predict_batch_size: int = 4,
        score_thr: Optional[float] = None,
    ) -> None:
        require_mm3d()
        import curate.loop.mm3d.heads  # noqa: F401  (registers ProbAnchor3DHead, ProbCenterHead)

        _register_transforms()

        self.config_name = str(config)
        self.classes = tuple(str(c) for c in classes)
        if not self.classes:
            raise InvalidInputError("MMDet3DDetector: classes is empty")
        self.base = detector_config(self.config_name)
        self.epochs = int(epochs if epochs is not None else self.base.get("epochs", 2))
        self.batch_size = int(batch_size if batch_size is not None else self.base.get("batch_size", 2))
        if self.epochs < 1 or self.batch_size < 1:
            raise InvalidInputError(f"epochs and batch_size must be >= 1 (got {self.epochs}, {self.batch_size})")
        self.lr = lr
        self.augment = bool(augment)
        self.shuffle = bool(shuffle)
        self.train_head_only = bool(train_head_only)
        if optimizer not in (None, "sgd"):
            raise InvalidInputError(f"optimizer must be None (the config's) or 'sgd'; got {optimizer!r}")
        self.optimizer = optimizer
        self.num_workers = int(num_workers)
        self.feat_dropout = float(feat_dropout)
        self.device = device
        self.predict_batch_size = max(1, int(predict_batch_size))
        if score_thr is not None and not 0.0 <= float(score_thr) < 1.0:
            raise InvalidInputError(f"score_thr must be in [0, 1); got {score_thr!r}")
        self.score_thr = None if score_thr is None else float(score_thr)
        self.model_cfg = self._model_config()
        #: whether predictions carry a trained velocity (``FramePrediction.extra["velocity"]``)
        self.predicts_velocity = predicts_velocity(self.model_cfg)

    # ------------------------------------------------------------------ config
    def _model_config(self) -> dict:
        model = copy.deepcopy(self.base.model)
        model = model.to_dict() if hasattr(model, "to_dict") else dict(model)
        head = model.get("bbox_head") or model.get("pts_bbox_head") or {}
        if head.get("type") == "ProbAnchor3DHead":
            if self.feat_dropout > 0:
                head["feat_dropout"] = self.feat_dropout
            if self.config_name == "pointpillars-tiny" and tuple(self.base.class_names) != self.classes:
                self._adapt_tiny_classes(model)
            head["num_classes"] = len(self.classes)
        elif head.get("type") == "ProbCenterHead":
            if self.feat_dropout > 0:
                head["feat_dropout"] = self.feat_dropout
            self._check_center_tasks(model)
        elif self.feat_dropout > 0:
            raise InvalidInputError(
                f"feat_dropout needs a ProbAnchor3DHead or ProbCenterHead; {self.config_name!r} has {head.get('type')}"
            )
        if self.score_thr is not None:
            test_cfg = model.get("test_cfg")
            if isinstance(test_cfg, dict) and "pts" in test_cfg:
                test_cfg = test_cfg["pts"]
            if head.get("type") == "ProbCenterHead" and isinstance(test_cfg, dict):
                # CenterPoint filters twice: in the coder's decode and (rotate NMS) before NMS
                test_cfg["score_threshold"] = self.score_thr
                head["bbox_coder"]["score_threshold"] = self.score_thr
            elif not isinstance(test_cfg, dict) or "score_thr" not in test_cfg:
                raise InvalidInputError(f"score_thr: {self.config_name!r} has no test_cfg.score_thr to set")
            else:
                test_cfg["score_thr"] = self.score_thr
        return model

    def _check_center_tasks(self, model: dict) -> None:
        """CenterPoint numbers labels task by task: the tasks' classes, concatenated, must be
        ``self.classes`` (the dataset's label order). ``centerpoint-tiny`` given other classes
        gets one task per class; other configs keep their tasks (their checkpoints need them)."""
        head = model["pts_bbox_head"]
        order = tuple(c for t in head["tasks"] for c in t["class_names"])
        if order == self.classes:
            return
        if not self.config_name.startswith("centerpoint-tiny"):
            raise InvalidInputError(
                f"{self.config_name!r}: its CenterPoint tasks label the classes {', '.join(order)} in this "
                f"order; pass classes=({', '.join(repr(c) for c in order)}) (got {', '.join(self.classes)})"
            )
        head["tasks"] = [dict(num_class=1, class_names=[c]) for c in self.classes]
        model["test_cfg"]["pts"]["min_radius"] = [_CENTER_RADIUS.get(c, 1.0) for c in self.classes]

    def _adapt_tiny_classes(self, model: dict) -> None:
        unknown = [c for c in self.classes if c not in _TINY_ANCHORS]
        if unknown:
            raise InvalidInputError(
                f"pointpillars-tiny has anchors for {', '.join(_TINY_ANCHORS)}; not for {', '.join(unknown)}"
            )
        head = model["bbox_head"]
        x0, y0, _, x1, y1, _ = self.base.point_cloud_range
        head["anchor_generator"]["ranges"] = [[x0, y0, _TINY_ANCHORS[c][0], x1, y1, _TINY_ANCHORS[c][0]] for c in self.classes]
        head["anchor_generator"]["sizes"] = [_TINY_ANCHORS[c][1] for c in self.classes]
        template = model["train_cfg"]["assigner"][0]
        model["train_cfg"]["assigner"] = [
            dict(template, pos_iou_thr=_TINY_ANCHORS[c][2][0], neg_iou_thr=_TINY_ANCHORS[c][2][1],
                 min_pos_iou=_TINY_ANCHORS[c][2][1])
            for c in self.classes
        ]

    def _dataset(self, ann_file: Path, pipeline: list, *, test_mode: bool) -> dict:
        meta = read_info_pkl(ann_file)["metainfo"]
        if meta.get("dataset") == "nuscenes":  # curate.loop.infos_nuscenes: mmdet3d's NuScenesDataset
            kwargs = meta.get("curate_dataset_kwargs") or {"data_root": "", "data_prefix": dict(pts="", sweeps="", img="")}
            ds = dict(
                type="NuScenesDataset", ann_file=str(Path(ann_file).resolve()), pipeline=copy.deepcopy(pipeline),
                modality=dict(use_lidar=True, use_camera=False), metainfo=dict(classes=list(self.classes)),
                box_type_3d="LiDAR", test_mode=test_mode, with_velocity=True, **copy.deepcopy(kwargs),
            )
            if test_mode:
                ds["load_eval_anns"] = False
            return ds
        ds = dict(
            type="KittiDataset", data_root="", ann_file=str(ann_file), data_prefix=dict(pts="", img=""),
            pipeline=copy.deepcopy(pipeline), modality=dict(use_lidar=True, use_camera=False),
            metainfo=dict(classes=list(self.classes)), box_type_3d="LiDAR", test_mode=test_mode,
        )
        if test_mode:
            ds["load_eval_anns"] = False
        return ds

    def train_config(self, train_pkl: Path, work_dir: Path, *, load_from: Optional[str], seed: int) -> Any:
        """The full mmengine config of one training run (datasets, schedule, hooks)."""
        from mmengine.config import Config

        cfg = Config(dict(model=copy.deepcopy(self.model_cfg)))
        cfg.default_scope = "mmdet3d"
        cfg.work_dir = str(work_dir)
        cfg.train_dataloader = dict(
            batch_size=self.batch_size, num_workers=self.num_workers, persistent_workers=False,
            sampler=dict(type="DefaultSampler", shuffle=self.shuffle),
            dataset=self._dataset(train_pkl, self.base.train_pipeline if self.augment else self.loss_pipeline(),
                                  test_mode=False),
        )
        cfg.train_cfg = dict(by_epoch=True, max_epochs=self.epochs, val_interval=self.epochs + 1)
        optim = copy.deepcopy(self.base.optim_wrapper)
        optim = optim.to_dict() if hasattr(optim, "to_dict") else dict(optim)
        if self.optimizer == "sgd":
            if self.lr is None:
                raise InvalidInputError("optimizer 'sgd' needs lr (the config's rate is AdamW's)")
            optim["optimizer"] = dict(type="SGD", lr=float(self.lr), momentum=0.0, weight_decay=0.0)
        elif self.lr is not None:
            optim["optimizer"]["lr"] = float(self.lr)
        cfg.optim_wrapper = optim
        cfg.default_hooks = dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=10),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=dict(type="CheckpointHook", interval=self.epochs, by_epoch=True, max_keep_ckpts=1),
            sampler_seed=dict(type="DistSamplerSeedHook"),
        )
        cfg.env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
                           dist_cfg=dict(backend="gloo"))
        cfg.log_processor = dict(type="LogProcessor", window_size=1, by_epoch=True)
        cfg.log_level = "WARNING"
        cfg.randomness = dict(seed=int(seed), deterministic=False)
        cfg.launcher = "none"
        # mmengine keys its global logger / visualizer instances by experiment name: one per run
        cfg.experiment_name = f"curate-{work_dir.name}-{time.time_ns()}"
        cfg.load_from = load_from
        cfg.resume = False
        return cfg

    # ------------------------------------------------------------------ Detector protocol
    def train(self, train_pkl: Path, work_dir: Path, *, load_from: Optional[str] = None, seed: int = 0) -> TrainResult:
        """Train on ``train_pkl`` in the fresh ``work_dir`` (see the module docstring)."""
        from mmengine.runner import Runner

        train_pkl, work_dir = Path(train_pkl), Path(work_dir)
        infos = read_info_pkl(train_pkl)
        n_boxes = sum(
            1 for f in infos["data_list"] for inst in f.get("instances", [])
            if _label_name(infos, inst.get("bbox_label_3d", -1)) in self.classes
        )
        if n_boxes == 0:
            raise InvalidInputError(
                f"{train_pkl}: no labeled box of the classes {', '.join(self.classes)} in "
                f"{len(infos['data_list'])} frames; label more frames before training"
            )
        if load_from is not None and not Path(load_from).is_file():
            raise NotFoundError(f"checkpoint {load_from} to fine-tune does not exist")
        if work_dir.exists() and any(work_dir.iterdir()):
            # an interrupted attempt of this round: start it over, never resume its state
            import shutil

            shutil.rmtree(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.train_config(train_pkl, work_dir, load_from=load_from, seed=seed)
        start = time.perf_counter()
        runner = Runner.from_cfg(cfg)
        recorder = _loss_recorder()
        runner.register_hook(recorder)
        if self.train_head_only:
            runner.register_hook(_head_only_hook())
        runner.train()
        checkpoint = work_dir / f"epoch_{self.epochs}.pth"
        if not checkpoint.is_file():
            raise NotFoundError(f"training finished but wrote no checkpoint {checkpoint}")
        seconds = time.perf_counter() - start
        logger.info("trained %s on %d frames in %.1f s (loss %.3f -> %.3f)", self.config_name,
                    len(infos["data_list"]), seconds, recorder.losses[0], recorder.losses[-1])
        return TrainResult(checkpoint=str(checkpoint), losses=recorder.losses, seconds=seconds, work_dir=str(work_dir))

    def load_model(self, checkpoint: Optional[str]) -> Any:
        """The model of this config with ``checkpoint``'s weights (random ones for ``None``), eval mode."""
        import torch
        from mmengine.registry import init_default_scope
        from mmengine.runner import load_checkpoint
        from mmdet3d.registry import MODELS

        from mmengine.config import ConfigDict

        init_default_scope("mmdet3d")
        model = MODELS.build(ConfigDict(copy.deepcopy(self.model_cfg)))
        if checkpoint is not None:
            if not Path(checkpoint).is_file():
                raise NotFoundError(f"checkpoint {checkpoint} does not exist")
            load_checkpoint(model, str(checkpoint), map_location="cpu", logger="silent")
        model.to(torch.device(self.device))
        model.eval()
        return model

    def predict(
        self, infos_pkl: Path, checkpoints: Sequence[Optional[str]], *, mc_samples: int = 0, seed: int = 0,
    ) -> list[FramePrediction]:
        """Boxes after NMS with per-class scores for every frame of ``infos_pkl``, in order."""
        import torch
        from mmengine.dataset import pseudo_collate
        from mmdet3d.registry import DATASETS

        from curate.loop.mm3d.emoc import AnchorEmocProbe, CenterEmocProbe
        from curate.loop.mm3d.heads import ProbAnchor3DHead, ProbCenterHead

        if not checkpoints:
            raise InvalidInputError("predict needs at least one checkpoint")
        models = [self.load_model(c) for c in checkpoints]
        heads = [_model_head(m) for m in models]
        if not all(isinstance(h, (ProbAnchor3DHead, ProbCenterHead)) for h in heads):
            raise InvalidInputError(
                f"{self.config_name!r} has {_head_name(heads[0])}, neither ProbAnchor3DHead nor "
                "ProbCenterHead: per-class score distributions are kept for anchor-head configs "
                "(pointpillars-tiny, pointpillars, second) and CenterPoint configs (centerpoint-tiny, centerpoint)"
            )
        center = isinstance(heads[0], ProbCenterHead)
        # EMOC features (curate.scoring.emoc) ride on the forward pass
        probe = CenterEmocProbe(heads[0]) if center else AnchorEmocProbe(heads[0])
        if mc_samples > 0 and any(h.feat_dropout is None for h in heads):
            raise InvalidInputError(
                f"MC-dropout ({mc_samples} passes) needs a head with dropout: set "
                "detector_options feat_dropout > 0 (e.g. 0.2) when training"
            )
        passes = max(1, int(mc_samples))
        for h in heads:
            h.set_mc_dropout(mc_samples > 0)
        members = len(models) * passes
        infos = read_info_pkl(infos_pkl)
        ids = [str(f.get("curate_id", f.get("sample_idx"))) for f in infos["data_list"]]
        dataset = DATASETS.build(self._dataset(Path(infos_pkl), self.base.test_pipeline, test_mode=True))
        if len(dataset) != len(ids):
            raise InvalidInputError(f"{infos_pkl}: mmdet3d read {len(dataset)} of {len(ids)} frames")
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(int(seed))
        out: list[FramePrediction] = []
        try:
            with torch.no_grad():
                for start in range(0, len(ids), self.predict_batch_size):
                    batch = pseudo_collate([dataset[i] for i in range(start, min(len(ids), start + self.predict_batch_size))])
                    data = models[0].data_preprocessor(batch, training=False)
                    metas = [s.metainfo for s in data["data_samples"]]
                    outs = []
                    for m, h in zip(models, heads):
                        for _ in range(passes):
                            if probe is not None and not outs:
                                probe.start_batch()  # member 0's first pass
                            elif probe is not None:
                                probe.stop_recording()
                            outs.append(_head_outputs(m, h, data["inputs"], metas))
                    if center:
                        results = _center_predict(heads[0], outs, metas)
                    elif members == 1:
                        results = heads[0].predict_by_feat(*outs[0], batch_input_metas=metas)
                    else:
                        levels = range(len(outs[0][0]))
                        member_probs = [torch.stack([o[0][lv].sigmoid() for o in outs]) for lv in levels]
                        bbox = [torch.stack([o[1][lv] for o in outs]).mean(0) for lv in levels]
                        direction = [torch.stack([o[2][lv] for o in outs]).mean(0) for lv in levels]
                        results = heads[0].predict_by_feat(outs[0][0], bbox, direction, batch_input_metas=metas,
                                                           member_probs=member_probs)
                    for k, res in enumerate(results):
                        pred = self._frame_prediction(ids[start + k], res, members)
                        if probe is not None:
                            pred.extra["emoc"] = probe.frame_emoc(k, res)
                        out.append(pred)
        finally:
            if probe is not None:
                probe.close()
            for h in heads:
                h.set_mc_dropout(False)
            torch.random.set_rng_state(generator_state)
        return out

    def loss_pipeline(self) -> list:
        """The training pipeline without its random transforms (flips, rotations, scaling,
        shuffles, sampling): the same points and boxes the model trains on, deterministic."""
        kept, dropped = [], []
        for t in self.base.train_pipeline:
            (kept if t["type"] in _DETERMINISTIC_TRANSFORMS else dropped).append(t)
        if dropped:
            logger.debug("loss pipeline of %s leaves out %s", self.config_name, ", ".join(t["type"] for t in dropped))
        if not kept or kept[-1]["type"] != "Pack3DDetInputs":
            raise InvalidInputError(f"{self.config_name!r}: its train_pipeline does not end in Pack3DDetInputs")
        return copy.deepcopy(kept)

    def loss(self, infos_pkl: Path, checkpoint: Optional[str]) -> list[float]:
        """The training loss of ``checkpoint`` on every labeled frame of ``infos_pkl``, in order.

        Each frame is one batch through :meth:`loss_pipeline` (no augmentation) and the model's
        own ``loss`` (the sum of every ``loss*`` term, as mmengine sums them for training), with
        the model in eval mode (no dropout, no batch-norm update) and no gradient. Unlike mAP
        on a few frames, it changes smoothly with the weights, so small differences between
        fine-tunes stay measurable (MGRAL's ``tuning_loss`` reward).

        Parameters
        ----------
        infos_pkl : pathlib.Path
            An info pkl written with labels (:func:`curate.loop.infos.write_info_pkl`).
        checkpoint : str or None
            Weights to score (None: random initialisation).

        Returns
        -------
        list of float
            One total loss per frame. Cost: one forward pass and one loss per frame.

        Raises
        ------
        InvalidInputError
            ``infos_pkl`` has no frame, or no frame carries a box of the detector's classes
            (written without labels?).
        """
        import torch
        from mmengine.dataset import pseudo_collate
        from mmdet3d.registry import DATASETS

        infos = read_info_pkl(infos_pkl)
        frames = infos["data_list"]
        if not frames:
            raise InvalidInputError(f"{infos_pkl}: no frame to compute a loss on")
        if not any(_label_name(infos, inst.get("bbox_label_3d", -1)) in self.classes
                   for f in frames for inst in f.get("instances", [])):
            raise InvalidInputError(
                f"{infos_pkl}: no labeled box of the classes {', '.join(self.classes)} in {len(frames)} frames; "
                "write it with labels (write_info_pkl(..., with_labels=True)) to compute a loss"
            )
        model = self.load_model(checkpoint)
        spec = self._dataset(Path(infos_pkl), self.loss_pipeline(), test_mode=False)
        spec["filter_empty_gt"] = False  # every frame scores, boxes or not
        dataset = DATASETS.build(spec)
        if len(dataset) != len(frames):
            raise InvalidInputError(f"{infos_pkl}: mmdet3d read {len(dataset)} of {len(frames)} frames")
        out: list[float] = []
        with torch.no_grad():
            for i in range(len(dataset)):
                # prepare_data, not dataset[i]: a training-mode dataset replaces a frame its
                # pipeline drops by a random other one
                sample = dataset.prepare_data(i)
                if sample is None:
                    raise InvalidInputError(f"{infos_pkl}: frame {i} ({frames[i].get('curate_id')}) left the pipeline empty")
                data = model.data_preprocessor(pseudo_collate([sample]), training=False)
                losses = model(**data, mode="loss")
                total = 0.0
                for name, value in losses.items():
                    if "loss" not in name:
                        continue
                    parts = value if isinstance(value, (list, tuple)) else [value]
                    total += float(sum(v.sum() for v in parts))
                out.append(total)
        return out

    def _frame_prediction(self, frame_id: str, res: Any, members: int) -> FramePrediction:
        full = res.bboxes_3d.tensor.detach().cpu().numpy().astype(np.float64)
        boxes = full[:, :7]
        member = None
        if members > 1:
            member = res.member_cls_scores.detach().cpu().numpy().astype(np.float64).transpose(1, 0, 2)
        extra = {}
        if self.predicts_velocity and full.ndim == 2 and full.shape[1] >= 9:
            extra["velocity"] = full[:, 7:9].copy()  # (vx, vy) in the LiDAR frame, m/s
        return FramePrediction(
            frame_id=frame_id,
            extra=extra,
            boxes=boxes.reshape(-1, 7),
            labels=res.labels_3d.detach().cpu().numpy().astype(np.int64),
            scores=res.scores_3d.detach().cpu().numpy().astype(np.float64),
            probs=res.cls_scores.detach().cpu().numpy().astype(np.float64).reshape(-1, len(self.classes)),
            classes=self.classes,
            member_probs=member,
        )


def predicts_velocity(model: dict) -> bool:
    """Whether a model config's head predicts a trained velocity: a CenterPoint head with a
    ``vel`` branch whose code weights (``train_cfg.pts.code_weights[8:10]``) are not zero.
    ``centerpoint-tiny`` (KITTI: no velocities) keeps the branch at weight 0, so it does not."""
    head = model.get("pts_bbox_head") or {}
    if "vel" not in (head.get("common_heads") or {}):
        return False
    weights = ((model.get("train_cfg") or {}).get("pts") or {}).get("code_weights")
    return weights is None or len(weights) < 10 or any(float(w) > 0 for w in weights[8:10])


def _center_predict(head: Any, outs: list, metas: list) -> list:
    """``ProbCenterHead`` decoding of one or several members' outputs: per task the members'
    sigmoid heatmaps (their mean is decoded) and the mean of their regression maps."""
    import torch

    if len(outs) == 1:
        return head.predict_by_feat(outs[0], metas)
    tasks = range(len(outs[0]))
    member_heatmaps = [torch.stack([o[t][0]["heatmap"].sigmoid() for o in outs]) for t in tasks]
    preds = []
    for t in tasks:
        mean = {key: torch.stack([o[t][0][key] for o in outs]).mean(0) for key in outs[0][t][0] if key != "heatmap"}
        mean["heatmap"] = outs[0][t][0]["heatmap"]  # replaced by the members' mean inside the head
        preds.append([mean])
    return head.predict_by_feat(preds, metas, member_heatmaps=member_heatmaps)


def _label_name(infos: dict, label: int) -> Optional[str]:
    for name, idx in infos["metainfo"].get("categories", {}).items():
        if idx == label:
            return name
    return None
