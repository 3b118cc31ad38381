"""``curate demo``: the whole pipeline on a synthetic KITTI-format set, with a summary table.

Synthesise -> ingest -> self-supervised pretraining on the pool (ReCon-style, a few steps) ->
embed (pretrained point encoder, ImageNet camera encoder, fused) -> select (random, k-center,
ProbCover, TypiClust, MaxHerding, per-drive cap, sharded; k-center on a float16 table) -> export -> a short active-learning loop around a CPU
PointPillars (mmdet3d) whose predictions drive an uncertainty-weighted selection. Every stage that
lands in the product shows up here; it must stay a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from curate.loop.mm3d import mm3d_available
from curate.sources.kitti import KittiSource
from curate.sources.synthetic import generate

__all__ = ["run_demo"]

logger = logging.getLogger(__name__)

_DONE_MARKER = ".curate-synth-complete"

#: Strategies the demo compares, with their parameters (``constrained``: k-center, at most 2
#: frames per drive).
DEMO_STRATEGIES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("random", {}),
    ("kcenter", {}),
    ("probcover", {}),
    ("typiclust", {}),
    ("maxherding", {}),
    ("constrained", {"inner": "kcenter", "max_per_group": 2}),
    ("kcenter", {"shards": 2}),  # k-center on 2 k-means partitions, merged (Sharded)
)


def _synthesise(root: Path, frames: int, seed: int, small: bool) -> bool:
    """Write the demo dataset unless a complete copy is already there; returns whether it wrote."""
    marker = root / _DONE_MARKER
    if marker.exists():
        return False
    generate(root, frames, seed=seed, small=small, progress=None)
    marker.write_text(f"{frames} {seed} {small}\n")
    return True


def _pretrain_and_embed(ws: Any, steps: int, seed: int, timings: dict[str, float]) -> str:
    """Pretrain recon-tiny on the pool for ``steps`` steps and embed with it; returns the name."""
    t = time.perf_counter()
    report = ws.pretrain(
        {"name": f"demo-ssl-s{seed}", "seed": seed,
         "data": {"teacher_image_size": [96, 320]},
         "train": {"steps": steps, "checkpoint_every": steps, "warmup_steps": max(1, steps // 10)}},
        progress=False,
    )
    timings[f"pretrain {steps} steps"] = time.perf_counter() - t
    t = time.perf_counter()
    name = "recon-tiny-ssl"
    ws.embed(report.model, name=name, checkpoint=report.checkpoint, **report.embed_options)
    timings[f"embed {name}"] = time.perf_counter() - t
    return name


def _run_demo_loop(ws: Any, embedding: str, budget: int, rounds: int, seed: int) -> Any:
    """Round 0: ``budget`` random frames; then k-center weighted by the previous round's box entropy."""
    return ws.loop(
        name="demo-loop", embedding=embedding, strategy="kcenter_weighted",
        strategy_params={"score": "entropy_mean"}, initial=budget, budget=budget, rounds=rounds,
        seed=seed, detector="pointpillars-tiny", val_fraction=0.2,
        # 20 epochs of batch 2 is the smallest schedule that gives non-zero AP here (benchmarks/loop.py)
        detector_options={"epochs": 20, "batch_size": 2, "score_thr": 0.01},
    )


def _selection_stats(ws: Any, ids: list[str]) -> dict[str, Any]:
    rows = ws.frames(columns=["id", "scene", "time_of_day"], ids=ids)
    boxes = ws.boxes(ids, labeled_only=False)
    per_class = Counter(boxes["type"].to_pylist())
    return {
        "drives": len(set(rows["scene"].to_pylist())),
        "night": sum(1 for t in rows["time_of_day"].to_pylist() if t == "night"),
        "boxes": per_class,
    }


def run_demo(
    ws: Any,
    *,
    frames: int = 240,
    budget: int = 24,
    seed: int = 0,
    model: str = "recon-tiny",
    small: bool = False,
    pretrain_steps: int = 40,
    loop_rounds: int = 2,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo pipeline in workspace ``ws`` and print a summary.

    Parameters
    ----------
    pretrain_steps : int
        Self-supervised pretraining steps of ``model`` on the pool (0: use ``model`` with
        random weights, as a baseline).
    loop_rounds : int
        Rounds of the detector loop (0, or mmdet3d not installed: the loop stage is skipped
        with a note saying how to install it).

    Returns
    -------
    dict
        Stage timings, run ids and per-strategy statistics (what the table shows).
    """
    size = "small" if small else "full"
    data_root = ws.path / "demo-data" / f"synthetic-kitti-{size}-n{frames}-s{seed}"
    export_dir = ws.path / "demo-exports"
    export_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    wrote = _synthesise(data_root, frames, seed, small)
    timings["synthesise" if wrote else "synthesise (cached)"] = time.perf_counter() - t

    t = time.perf_counter()
    report = ws.ingest(KittiSource(data_root))
    timings["ingest"] = time.perf_counter() - t

    if pretrain_steps > 0 and model.startswith("recon-"):
        point_name = _pretrain_and_embed(ws, pretrain_steps, seed, timings)
    else:
        t = time.perf_counter()
        point_name = ws.embed(model).embedding
        timings[f"embed {model}"] = time.perf_counter() - t
    t = time.perf_counter()
    ws.embed("effnet-lite0")
    timings["embed effnet-lite0 (camera)"] = time.perf_counter() - t
    t = time.perf_counter()
    emb = ws.fuse([point_name, "effnet-lite0"], name="fused")
    timings["fuse point + camera"] = time.perf_counter() - t

    results = {}
    for strategy, params in DEMO_STRATEGIES:
        tag = f"{strategy}-sharded" if "shards" in params else strategy
        label = tag if not params or "shards" in params else f"{strategy}*"
        t = time.perf_counter()
        sel = ws.select(strategy, budget, embedding=emb.embedding, seed=seed, **params)
        ws.export(sel.run_id, "json", export_dir / f"{sel.run_id}-{tag}.json")
        if tag == "kcenter":
            for fmt, suffix in (("csv", "csv"), ("parquet", "parquet"), ("imagesets", "txt"),
                                ("labelstudio", "labelstudio.json")):
                ws.export(sel.run_id, fmt, export_dir / f"{sel.run_id}-{strategy}.{suffix}")
        timings[f"select {label}"] = time.perf_counter() - t
        results[label] = {"run": sel.run, **_selection_stats(ws, sel.ids)}

    # float16 storage: a bev-hist table kept as float16 (half the bytes), which k-center reads as
    # float16 and upcasts block by block (its picks are those of the float32 upcast)
    t = time.perf_counter()
    ws.embed("bev-hist", name="bev-hist-f16", dtype="float16")
    sel = ws.select("kcenter", budget, embedding="bev-hist-f16", seed=seed)
    ws.export(sel.run_id, "json", export_dir / f"{sel.run_id}-kcenter-f16.json")
    timings["embed + select kcenter-f16"] = time.perf_counter() - t
    results["kcenter-f16"] = {"run": sel.run, **_selection_stats(ws, sel.ids)}

    loop_report = None
    loop_note = ""
    if loop_rounds > 0 and mm3d_available():
        # the loop labels frames (simulated oracle): run it on a copy so the selections above
        # stay reproducible when the demo is run again
        loop_ws_path = ws.path.parent / f"{ws.path.name}-loop"
        if not loop_ws_path.exists():
            shutil.copytree(ws.path, loop_ws_path, ignore=shutil.ignore_patterns("demo-*", "checkpoints", "pretrain_cache"))
        from curate.workspace import Workspace

        loop_ws = Workspace(loop_ws_path)
        t = time.perf_counter()
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # mmdet / mmengine deprecation chatter, checkpoint prints
            loop_report = _run_demo_loop(loop_ws, emb.embedding, budget, loop_rounds, seed)
        timings[f"loop {loop_rounds} rounds"] = time.perf_counter() - t
    elif loop_rounds > 0:
        loop_note = "loop skipped: mmdet3d is not installed (run `make mm3d`)"

    total_boxes = Counter(ws.boxes(ws.frames(columns=["id"])["id"].to_pylist(), labeled_only=False)["type"].to_pylist())
    classes = [c for c, _ in total_boxes.most_common() if c != "DontCare"]
    drives_total = len(set(ws.frames(columns=["scene"])["scene"].to_pylist()))

    echo("")
    echo(f"curate demo — workspace {ws.path}")
    echo(f"frames {report.frames_total}, drives {drives_total}, boxes {sum(total_boxes[c] for c in classes)} "
         f"({', '.join(f'{c} {total_boxes[c]}' for c in classes)})")
    echo(f"embedding {emb.embedding}: dim {emb.dim}, weights sha256 {emb.weights_sha256[:12]}")
    echo("")
    echo(f"{'stage':<28}{'seconds':>10}")
    for stage, secs in timings.items():
        echo(f"{stage:<28}{secs:>10.1f}")
    echo("")
    cls_cols = classes[:5]
    width = max([13, *(len(name) + 1 for name in results)])
    head = f"{'strategy':<{width}}{'run':<12}{'picked':>7}{'coverage radius':>17}{'drives':>8}{'night':>7}"
    head += "".join(f"{c[:10]:>11}" for c in cls_cols)
    echo(head)
    for strategy, r in results.items():
        run = r["run"]
        line = (
            f"{strategy:<{width}}{run.run_id:<12}{len(run.ids):>7}{run.info['coverage_radius']:>17.3f}"
            f"{r['drives']:>8}{r['night']:>7}"
        )
        line += "".join(f"{r['boxes'].get(c, 0):>11}" for c in cls_cols)
        echo(line)
    echo("")
    echo("coverage radius: largest distance from any frame to its nearest selected frame (lower is better)")
    echo("constrained*: k-center with at most 2 frames per drive")
    echo("kcenter-f16: k-center on a float16 bev-hist table (not the fused embedding), read without a float32 copy")
    echo(f"exports: {export_dir}")
    if loop_report is not None:
        echo("")
        echo(f"active-learning loop (pointpillars-tiny on CPU; round 0 random, then k-center weighted by "
             f"box entropy of the previous round's predictions), workspace {loop_ws_path}:")
        echo(loop_report.table())
        echo("mAP: KITTI AP40, moderate, Car/Pedestrian/Cyclist (strict IoU 0.7/0.5/0.5; loose 0.5/0.25/0.25); "
             "a tiny detector on a few dozen frames, so the numbers are small")
    elif loop_note:
        echo("")
        echo(loop_note)
    return {"timings": timings, "results": results, "loop": loop_report}
