"""curate's CUDA code paths against their CPU references, on whatever GPU torch sees.

Run from the repository root::

    python -m benchmarks.gpu_paths                      # full size (made for one H200 run)
    python -m benchmarks.gpu_paths --n 4000 --budget 40 --frames 2 --small --boxes 200  # smoke

Three paths, each checked against the CPU reference in the same run:

1. **k-center** (:class:`curate.selectors.KCenterGreedy`, naive greedy loop): ``backend="torch",
   device="cuda"`` against the numpy backend (the reference, ``algorithm="naive"``) on a
   drive-like pool (:func:`benchmarks.scale.drive_vectors`) with some labeled rows, float32 and
   float16 (reference: the numpy loop on the float32 upcast, whose picks equal the float16
   pool's by contract; the float16 pool itself on numpy only up to ``FP16_NUMPY_MAX``); the
   numpy pruned path and ``device="auto"`` are timed too. Checked: identical picks (otherwise the
   first differing pick and how near a tie it was, :func:`tie_gap`), the radius.
2. **embedders** (``device="cuda"``) and the embedding job's precision: vectors of synthetic
   KITTI-format frames (:func:`curate.sources.synthetic.generate`) on CUDA in fp32 against CPU
   fp32 (max abs diff, min cosine), and under the job's fp16 autocast (``precision="auto"`` on
   CUDA) against CUDA fp32; frames/s on each.
3. **rotated BEV IoU**: mmdet3d's ``numba.cuda`` kernel ``rotate_iou_gpu_eval`` (the kernel the
   KITTI AP parity test runs under numba's CUDA simulator) on the real GPU against curate's numpy
   :func:`curate.evaluation.rotated_iou.rotated_iou_bev` (float64), max abs diff. curate itself
   has no GPU IoU; the kernel's file is loaded from mmdet3d (``--rotate-iou-file``) by path.

Without CUDA every CUDA row says ``skipped: no CUDA`` and the CPU rows still run (the smoke test).
``curate/__init__.py`` imports LanceDB; where that fails (a GPU machine without it) the submodules
are imported under a bare ``curate`` package object with no behaviour (its ``__path__`` only), and
the embedding job's precision helpers (``_resolve_precision``, ``_autocast``), whose module needs
LanceDB, are executed from the source text of ``curate/jobs/embed.py``; ``notes`` says which.
The result (``--name``, default ``gpu_paths``) is written under ``--out`` or ``$CURATE_RESULTS_DIR``
or ``benchmarks/results/``, after every path, so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import glob
import importlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.results_io import write_result  # noqa: E402

logger = logging.getLogger(__name__)

COLUMNS = [
    "path", "case", "run", "status", "seconds", "frames/s", "identical to reference",
    "first differing pick", "relative gap there", "radius", "max abs diff", "min cosine",
]
SKIP = "skipped: no CUDA"
#: ``N * budget`` up to which the numpy loop also runs on the float16 pool itself (see below).
FP16_NUMPY_MAX = 20_000_000
NOTES: list[str] = []


def _row(path: str, case: str, run: str, status: str = "ok", **values: Any) -> dict[str, Any]:
    row = {c: None for c in COLUMNS}
    row.update(path=path, case=case, run=run, status=status)
    for key, value in values.items():
        column = key.replace("_", " ")
        if column not in COLUMNS and key not in COLUMNS:
            raise KeyError(f"_row: unknown column {key!r}")
        row[column if column in COLUMNS else key] = value
    return row


def _import_curate() -> str:
    """Import ``curate`` normally, or register a bare package object when its ``__init__`` fails.

    Returns
    -------
    str
        ``"package"`` or ``"bare package (<why>)"``.
    """
    try:
        import curate  # noqa: F401

        return "package"
    except ImportError as exc:  # lancedb / pydantic absent on a GPU machine
        for name in [m for m in sys.modules if m == "curate" or m.startswith("curate.")]:
            del sys.modules[name]
        stub = types.ModuleType("curate")
        stub.__path__ = [str(ROOT / "curate")]  # submodules import from the checkout as usual
        sys.modules["curate"] = stub
        return f"bare package ({type(exc).__name__}: {exc})"


def _job_precision_helpers() -> tuple[Callable[[str, str], str], Callable[..., Any], str]:
    """The embedding job's ``_resolve_precision`` and ``_autocast`` and how they were obtained."""
    try:
        from curate.jobs.embed import _autocast, _resolve_precision

        return _resolve_precision, _autocast, "imported from curate.jobs.embed"
    except ImportError as exc:
        source = (ROOT / "curate" / "jobs" / "embed.py").read_text()
        tree = ast.parse(source)
        wanted = {"_resolve_precision", "_autocast"}
        body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
        if {n.name for n in body} != wanted:
            raise RuntimeError("curate/jobs/embed.py no longer defines _resolve_precision/_autocast")
        from curate.errors import InvalidInputError

        namespace: dict[str, Any] = {
            "contextlib": contextlib, "Any": Any, "InvalidInputError": InvalidInputError,
        }
        module = ast.fix_missing_locations(ast.Module(
            body=[ast.ImportFrom("__future__", [ast.alias("annotations")], 0), *body],
            type_ignores=[]))
        exec(compile(module, "curate/jobs/embed.py", "exec"), namespace)  # noqa: S102
        how = (f"executed from the source of curate/jobs/embed.py (import failed: "
               f"{type(exc).__name__}: {exc})")
        return namespace["_resolve_precision"], namespace["_autocast"], how


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _first_difference(a: np.ndarray, b: np.ndarray) -> Optional[int]:
    n = min(a.size, b.size)
    diff = np.flatnonzero(a[:n] != b[:n])
    if diff.size:
        return int(diff[0])
    return None if a.size == b.size else n


def tie_gap(pool: np.ndarray, labeled: np.ndarray, ref: np.ndarray, got: np.ndarray,
            k: Optional[int]) -> Optional[float]:
    """Relative float64 gap between the two rows picked at the first differing step ``k``.

    Both runs hold the same centers before step ``k`` (the labeled rows and ``ref[:k]``); the
    gap is ``|d_ref - d_got| / max(d_ref, d_got)`` of the two candidates' exact distances to
    those centers. A gap near float32 rounding (about 1e-5 for these norms) is a tie that two
    BLAS summation orders may break either way. O(centers * d) time.
    """
    if k is None or k >= min(ref.size, got.size):
        return None
    centers = pool[np.concatenate([np.flatnonzero(labeled), ref[:k]])].astype(np.float64)

    def dist(row: int) -> float:
        diff = centers - pool[row].astype(np.float64)
        return float(np.sqrt(np.einsum("ij,ij->i", diff, diff).min()))

    a, b = dist(int(ref[k])), dist(int(got[k]))
    return abs(a - b) / max(a, b, 1e-300)


# ---------------------------------------------------------------------------------- k-center
def kcenter_rows(args: argparse.Namespace, cuda: bool) -> list[dict[str, Any]]:
    """Greedy k-center on CUDA (torch) against the numpy backend on one drive-like pool."""
    from benchmarks.scale import drive_vectors
    from curate.selectors.kcenter import KCenterGreedy, resolve_backend

    pool32 = drive_vectors(args.n, args.dim, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    labeled = np.zeros(args.n, dtype=bool)
    labeled[rng.choice(args.n, size=min(args.labeled, args.n), replace=False)] = True
    rows: list[dict[str, Any]] = []
    for dtype in ("float32", "float16"):
        pool = pool32 if dtype == "float32" else pool32.astype(np.float16)
        case = f"{args.n}x{args.dim} {dtype}, {args.budget} picks, {int(labeled.sum())} labeled"

        def run(selector: KCenterGreedy) -> tuple[Any, float]:
            _sync()
            start = time.perf_counter()
            sel = selector.select(pool, args.budget, labeled=labeled, seed=args.seed)
            _sync()
            return sel, time.perf_counter() - start

        reference = KCenterGreedy(backend="numpy", device="cpu", algorithm="naive")
        if dtype == "float32":
            ref, ref_s = run(reference)
            rows.append(_row("kcenter", case, "numpy naive (reference)", seconds=ref_s,
                             radius=ref.info["coverage_radius"]))
        else:
            # The numpy loop upcasts a float16 pool block by block on every pick (a single-thread
            # copy per pick, minutes at full size); its picks equal those of the float32 upcast
            # bit for bit (KCenterGreedy's contract, tested on CPU), so the upcast is the
            # reference, and the float16 pool itself runs on numpy only at small sizes.
            upcast = pool.astype(np.float32)
            start = time.perf_counter()
            ref = reference.select(upcast, args.budget, labeled=labeled, seed=args.seed)
            rows.append(_row("kcenter", case, "numpy naive on the float32 upcast (reference)",
                             seconds=time.perf_counter() - start,
                             radius=ref.info["coverage_radius"]))
            del upcast
        others: list[tuple[str, dict[str, Any]]] = []
        if dtype == "float16" and args.n * args.budget <= FP16_NUMPY_MAX:
            others.append(("numpy naive (float16 pool)",
                           dict(backend="numpy", device="cpu", algorithm="naive")))
        if dtype == "float32":
            others.append(("numpy auto (CPU)", dict(backend="numpy", device="cpu")))
        if cuda:
            # CUDA context and kernels warm on a small slice: the timed row is the loop itself.
            KCenterGreedy(backend="torch", device="cuda").select(
                pool[:1000], 5, labeled=labeled[:1000])
            others.append(("torch cuda", dict(backend="torch", device="cuda")))
            if dtype == "float32":
                others.append(("auto device", dict()))
        else:
            others.append(("torch cuda", {}))
            others.append(("torch cpu (CUDA code path on CPU)",
                           dict(backend="torch", device="cpu")))
        for label, options in others:
            if label == "torch cuda" and not cuda:
                rows.append(_row("kcenter", case, label, SKIP))
                continue
            try:
                sel, secs = run(KCenterGreedy(**options))
            except Exception as exc:  # a failure on the GPU is the finding: keep its message
                logger.exception("kcenter %s failed", label)
                rows.append(_row("kcenter", case, label, f"error: {type(exc).__name__}: {exc}"))
                continue
            if label == "auto device":
                label = f"auto device (resolved to {sel.info['backend']}/{sel.info['device']})"
            first = _first_difference(sel.indices, ref.indices)
            rows.append(_row(
                "kcenter", case, label, seconds=secs, radius=sel.info["coverage_radius"],
                identical_to_reference=bool(np.array_equal(sel.indices, ref.indices)),
                first_differing_pick=first,
                relative_gap_there=tie_gap(pool, labeled, ref.indices, sel.indices, first),
                max_abs_diff=abs(sel.info["coverage_radius"] - ref.info["coverage_radius"]),
            ))
            if first is not None:
                common = np.intersect1d(sel.indices, ref.indices).size
                NOTES.append(f"kcenter {dtype} {label}: {common} of {ref.indices.size} picks "
                             f"shared with the reference")
        if dtype == "float32":
            NOTES.append("kcenter: max abs diff is |radius - reference radius|")
            NOTES.append("kcenter auto device resolves to %s/%s" % resolve_backend("auto", "auto"))
    return rows


# ---------------------------------------------------------------------------------- embedders
def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return np.sum(a64 * b64, axis=1) / np.where(den > 0, den, 1.0)


def embed_rows(args: argparse.Namespace, cuda: bool) -> list[dict[str, Any]]:
    """Embedder vectors on CUDA (fp32, and the job's fp16 autocast) against CPU fp32."""
    from curate.sources.pointcloud import read_points
    from curate.sources.synthetic import generate
    from embedders import create_embedder

    resolve_precision, autocast, how = _job_precision_helpers()
    NOTES.append(f"embedding job precision helpers: {how}")
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, args.frames, seed=args.seed, small=args.small, progress=False,
                 frames_per_drive=args.frames)
        files = sorted(glob.glob(os.path.join(tmp, "training", "velodyne", "*.bin")))
        clouds = [read_points(f) for f in files]
    points = int(np.mean([c.shape[0] for c in clouds]))
    rows: list[dict[str, Any]] = []

    def embed(emb: Any, device: str, precision: str) -> tuple[np.ndarray, float]:
        emb.to(device)
        out = []
        _sync()
        start = time.perf_counter()
        for i in range(0, len(clouds), args.batch):
            with autocast(precision, str(emb.device)):
                out.append(np.asarray(emb.embed(clouds[i:i + args.batch]), dtype=np.float32))
        _sync()
        return np.concatenate(out, axis=0), time.perf_counter() - start

    for name in args.embedders.split(","):
        case = f"{name}, {len(clouds)} frames of ~{points} points, batch {args.batch}"
        emb = create_embedder(name)
        emb.to("cpu").embed(clouds[:1])  # warm-up: first-call allocations, lazy modules
        ref, ref_s = embed(emb, "cpu", "fp32")
        rows.append(_row("embed", case, "cpu fp32 (reference)", seconds=ref_s,
                         **{"frames/s": len(clouds) / ref_s}))
        if not cuda:
            rows.append(_row("embed", case, "cuda fp32", SKIP))
            rows.append(_row("embed", case, "cuda fp16 autocast (job precision auto)", SKIP))
            continue
        try:
            emb.to("cuda")
            with autocast("fp32", str(emb.device)):  # warm-up: CUDA context, kernels
                emb.embed(clouds[:1])
            vec32, s32 = embed(emb, "cuda", "fp32")
            if not str(emb.device).startswith("cuda"):
                NOTES.append(f"embedder {name} stays on {emb.device} after to('cuda') (by design), "
                             "so its cuda rows compute on that device")
            rows.append(_row(
                "embed", case, "cuda fp32", seconds=s32, **{"frames/s": len(clouds) / s32},
                max_abs_diff=float(np.abs(vec32 - ref).max()),
                min_cosine=float(_cosines(vec32, ref).min())))
        except Exception as exc:
            logger.exception("embedder %s on cuda failed", name)
            rows.append(_row("embed", case, "cuda fp32", f"error: {type(exc).__name__}: {exc}"))
            continue
        precision = resolve_precision("auto", str(emb.device))
        label = f"cuda {precision} autocast (job precision auto)"
        try:
            with autocast(precision, str(emb.device)):
                emb.embed(clouds[:1])
            vec16, s16 = embed(emb, "cuda", precision)
            rows.append(_row(
                "embed", case, label, seconds=s16, **{"frames/s": len(clouds) / s16},
                max_abs_diff=float(np.abs(vec16 - vec32).max()),
                min_cosine=float(_cosines(vec16, vec32).min())))
        except Exception as exc:
            logger.exception("embedder %s under autocast failed", name)
            rows.append(_row("embed", case, label, f"error: {type(exc).__name__}: {exc}"))
    NOTES.append("embed: cuda fp32 rows compare with cpu fp32; the autocast row compares with "
                 "cuda fp32")
    return rows


# -------------------------------------------------------------------------------- rotated IoU
def random_bev_boxes(n: int, rng: np.random.Generator, extent: float = 20.0) -> np.ndarray:
    """``(n, 5)`` BEV boxes ``(x, z, l, w, ry)``: cars, pedestrians and cyclists in a square of
    side ``extent`` (so many pairs overlap), one box in ten a jittered copy of another."""
    kind = rng.integers(0, 3, n)
    lw = np.array([[3.9, 1.6], [0.8, 0.6], [1.8, 0.6]])[kind] * rng.uniform(0.8, 1.2, (n, 2))
    xz = rng.uniform(0.0, extent, (n, 2))
    ry = rng.uniform(-np.pi, np.pi, n)
    boxes = np.column_stack([xz, lw, ry])
    copies = rng.random(n) < 0.1
    src = rng.integers(0, n, int(copies.sum()))
    boxes[copies] = boxes[src] + rng.normal(0.0, 0.05, (src.size, 5))
    return boxes


def _find_rotate_iou_file(given: Optional[str]) -> Optional[Path]:
    if given:
        return Path(given)
    spec = importlib.util.find_spec("mmdet3d")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "evaluation" / "functional" / \
        "kitti_utils" / "rotate_iou.py"
    return path if path.exists() else None


def iou_rows(args: argparse.Namespace, cuda: bool) -> list[dict[str, Any]]:
    """mmdet3d's numba.cuda rotated-IoU kernel on the GPU against curate's numpy reference."""
    from curate.evaluation.rotated_iou import rotated_iou_bev

    rng = np.random.default_rng(args.seed)
    boxes = random_bev_boxes(args.boxes, rng)
    qboxes = random_bev_boxes(args.boxes, rng)
    case = f"{args.boxes}x{args.boxes} BEV pairs"
    start = time.perf_counter()
    chunk = 256
    ref = np.concatenate([rotated_iou_bev(boxes[i:i + chunk], qboxes)
                          for i in range(0, len(boxes), chunk)])
    ref_s = time.perf_counter() - start
    overlapping = int((ref > 0).sum())
    NOTES.append(f"rotated IoU: {overlapping} of {ref.size} pairs overlap (IoU > 0)")
    rows = [_row("rotated_iou", case, "curate numpy rotated_iou_bev float64 (reference)",
                 seconds=ref_s)]
    label = "mmdet3d rotate_iou_gpu_eval numba.cuda float32"
    if not cuda:
        rows.append(_row("rotated_iou", case, label, SKIP))
        return rows
    path = _find_rotate_iou_file(args.rotate_iou_file)
    if path is None or not path.exists():
        rows.append(_row("rotated_iou", case, label,
                         f"skipped: mmdet3d's rotate_iou.py not found ({path})"))
        return rows
    if not hasattr(np, "row_stack"):
        # numba-cuda's array typing registers np.row_stack at the first kernel compile; numpy
        # 2.4+ removed it (AttributeError there). The alias only lets that registration run.
        np.row_stack = np.vstack  # type: ignore[attr-defined]
        NOTES.append(f"numpy {np.__version__} has no row_stack, which numba-cuda needs at the "
                     "first kernel compile (AttributeError: module 'numpy' has no attribute "
                     "'row_stack'); aliased to np.vstack in this process")
    try:
        spec = importlib.util.spec_from_file_location("_mmdet3d_rotate_iou", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        start = time.perf_counter()
        module.rotate_iou_gpu_eval(boxes[:8], qboxes[:8], -1)  # JIT compile
        compile_s = time.perf_counter() - start
        NOTES.append(f"rotated IoU kernel first call (numba JIT) {compile_s:.2f} s, not in the row")
        for criterion in (-1, 2):
            start = time.perf_counter()
            got = module.rotate_iou_gpu_eval(boxes, qboxes, criterion)
            secs = time.perf_counter() - start
            want = ref if criterion == -1 else np.concatenate(
                [rotated_iou_bev(boxes[i:i + chunk], qboxes, criterion=2)
                 for i in range(0, len(boxes), chunk)])
            diff = np.abs(got.astype(np.float64) - want)
            what = "IoU" if criterion == -1 else "intersection area (criterion 2)"
            rows.append(_row("rotated_iou", case, f"{label}, {what}", seconds=secs,
                             max_abs_diff=float(diff.max())))
            NOTES.append(f"rotated IoU criterion {criterion}: {int((diff > 1e-4).sum())} pairs "
                         f"differ by more than 1e-4, 99.99th percentile diff "
                         f"{float(np.quantile(diff, 0.9999)):.3g}")
    except Exception as exc:
        logger.exception("rotate_iou_gpu_eval failed")
        rows.append(_row("rotated_iou", case, label, f"error: {type(exc).__name__}: {exc}"))
    return rows


# -------------------------------------------------------------------------------------- main
def record_commit(path: Path, commit: str) -> None:
    """Set a result's ``commit`` to ``commit`` (the tree that was sent), ``dirty`` to true.

    A device machine runs a copy of the working tree; its ``.git``, where there is one, can be
    a stale copy from an earlier call, so ``git rev-parse HEAD`` there is not evidence. What git
    reported is kept in ``extra["git_on_machine"]``.
    """
    data = json.loads(path.read_text())
    if data.get("commit") != commit:
        data.setdefault("extra", {})["git_on_machine"] = data.get("commit")
    data["commit"], data["dirty"] = commit, True
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")


def main(argv: Optional[list[str]] = None) -> None:
    """Run the selected paths and write the result after each one."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="k-center pool rows")
    parser.add_argument("--dim", type=int, default=256, help="k-center pool dimension")
    parser.add_argument("--budget", type=int, default=2000, help="k-center picks")
    parser.add_argument("--labeled", type=int, default=500, help="labeled rows (initial centers)")
    parser.add_argument("--frames", type=int, default=16, help="synthetic frames to embed")
    parser.add_argument("--small", action="store_true", help="small synthetic scans (16 beams)")
    parser.add_argument("--batch", type=int, default=8, help="frames per embed call (the job's)")
    parser.add_argument("--embedders", default="recon-tiny,recon-small,bev-hist")
    parser.add_argument("--boxes", type=int, default=3000, help="boxes per side of the IoU matrix")
    parser.add_argument("--rotate-iou-file", default=None,
                        help="mmdet3d's kitti_utils/rotate_iou.py (default: found via mmdet3d)")
    parser.add_argument("--paths", default="kcenter,embed,iou", help="comma list of paths to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--commit", default=None,
                        help="commit of the tree that was sent to a device machine; replaces "
                             "what git reports there (see record_commit)")
    parser.add_argument("--out", default=None, help="result folder (default $CURATE_RESULTS_DIR)")
    parser.add_argument("--name", default="gpu_paths", help="result name (NAME.json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    how = _import_curate()
    NOTES.append(f"curate imported as {how}")
    import torch

    cuda = _cuda()
    extra: dict[str, Any] = {
        "torch": torch.__version__, "cuda": cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "torch_threads": torch.get_num_threads(),
    }
    for module in ("numba", "numba_cuda", "faiss"):
        try:
            extra[module] = getattr(importlib.import_module(module), "__version__", "?")
        except ImportError:
            extra[module] = None
    extra["numpy"] = np.__version__
    runners = {"kcenter": kcenter_rows, "embed": embed_rows, "iou": iou_rows}
    rows: list[dict[str, Any]] = []
    path = None
    for name in args.paths.split(","):
        if name not in runners:
            raise SystemExit(f"--paths: unknown path {name!r}; choose from {sorted(runners)}")
        start = time.perf_counter()
        try:
            rows.extend(runners[name](args, cuda))
        except Exception as exc:
            logger.exception("path %s failed", name)
            rows.append(_row(name, "", "whole path", f"error: {type(exc).__name__}: {exc}"))
        extra[f"{name}_wall_s"] = time.perf_counter() - start
        for row in rows:
            print({k: v for k, v in row.items() if v is not None})
        path = write_result("gpu_paths", rows, name=args.name, args=args, columns=COLUMNS,
                            notes="; ".join(NOTES), extra=extra,
                            results_dir=Path(args.out) if args.out else None)
        if args.commit:
            record_commit(path, args.commit)


if __name__ == "__main__":
    main()
