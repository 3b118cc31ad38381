"""``curate demo``: the whole pipeline on a synthetic KITTI-format set, with a summary table.

Synthesise -> ingest -> embed -> select (random vs k-center) -> export. Every stage that lands in
the product shows up here; it must stay a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

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
    ("constrained", {"inner": "kcenter", "max_per_group": 2}),
)


def _synthesise(root: Path, frames: int, seed: int, small: bool) -> bool:
    """Write the demo dataset unless a complete copy is already there; returns whether it wrote."""
    marker = root / _DONE_MARKER
    if marker.exists():
        return False
    generate(root, frames, seed=seed, small=small, progress=None)
    marker.write_text(f"{frames} {seed} {small}\n")
    return True


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
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo pipeline in workspace ``ws`` and print a summary.

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

    t = time.perf_counter()
    emb = ws.embed(model)
    timings[f"embed {model}"] = time.perf_counter() - t

    results = {}
    for strategy, params in DEMO_STRATEGIES:
        label = strategy if not params else f"{strategy}*"
        t = time.perf_counter()
        sel = ws.select(strategy, budget, embedding=emb.embedding, seed=seed, **params)
        ws.export(sel.run_id, "json", export_dir / f"{sel.run_id}-{strategy}.json")
        if strategy == "kcenter":
            for fmt, suffix in (("csv", "csv"), ("parquet", "parquet"), ("imagesets", "txt"),
                                ("labelstudio", "labelstudio.json")):
                ws.export(sel.run_id, fmt, export_dir / f"{sel.run_id}-{strategy}.{suffix}")
        timings[f"select {label}"] = time.perf_counter() - t
        results[label] = {"run": sel.run, **_selection_stats(ws, sel.ids)}

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
    head = f"{'strategy':<13}{'run':<12}{'picked':>7}{'coverage radius':>17}{'drives':>8}{'night':>7}"
    head += "".join(f"{c[:10]:>11}" for c in cls_cols)
    echo(head)
    for strategy, r in results.items():
        run = r["run"]
        line = (
            f"{strategy:<13}{run.run_id:<12}{len(run.ids):>7}{run.info['coverage_radius']:>17.3f}"
            f"{r['drives']:>8}{r['night']:>7}"
        )
        line += "".join(f"{r['boxes'].get(c, 0):>11}" for c in cls_cols)
        echo(line)
    echo("")
    echo("coverage radius: largest distance from any frame to its nearest selected frame (lower is better)")
    echo("constrained*: k-center with at most 2 frames per drive")
    echo(f"exports: {export_dir}")
    return {"timings": timings, "results": results}
