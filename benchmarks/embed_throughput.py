"""Embedding-job throughput: reader threads (the job's loader) vs forked DataLoader workers.

Run: ``python -m benchmarks.embed_throughput [--frames 240 --repeats 3]`` (repository root).

The embedding job used to read frames with a torch ``DataLoader`` whose worker processes were
forked after LanceDB was loaded (LanceDB warns that this may deadlock). It now reads with a
thread pool (:func:`curate.jobs.embed._loader`). This script measures frames/s of
:func:`curate.jobs.embed.run_embed_job` on a synthetic KITTI-format set with

* ``threads``: the job as shipped, ``workers`` reader threads;
* ``fork-dataloader`` (the named peer): the same job with the previous loader, a forked
  ``DataLoader`` with ``workers`` processes (``workers=0`` is the same in-thread read for both);

for the embedders given (a cheap one, where reading dominates, and a transformer). Each row is
the median of ``repeats`` runs into fresh embedding tables of one workspace; vectors of both
loaders are checked to be identical. Results: ``benchmarks/results/embed_throughput.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

logger = logging.getLogger(__name__)


def _fork_dataloader(dataset: Any, batch_size: int, num_workers: int) -> Any:
    """The loader the job used before: a torch DataLoader with forked worker processes."""
    from torch.utils.data import DataLoader

    workers = min(num_workers, max(1, len(dataset) // batch_size)) if num_workers else 0
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      collate_fn=lambda batch: batch, prefetch_factor=2 if workers else None)


@contextlib.contextmanager
def _loader(kind: str) -> Iterator[None]:
    """Run the job with the loader ``kind`` (``threads``: unchanged; the peer: swapped in)."""
    import curate.jobs.embed as job_module

    shipped = job_module._loader
    if kind == "fork-dataloader":
        job_module._loader = _fork_dataloader
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # LanceDB's fork warning (peer only)
            yield
    finally:
        job_module._loader = shipped


def main(argv: Any = None) -> None:
    """Print the table and write the result file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--models", nargs="+", default=["bev-hist", "recon-tiny"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--name", default="embed_throughput")
    args = parser.parse_args(argv)

    import curate
    from benchmarks.results_io import write_result
    from curate.embedding import build_embedder
    from curate.jobs.embed import EmbedJob, run_embed_job
    from curate.sources.kitti import KittiSource
    from curate.sources.synthetic import generate

    rows = []
    with tempfile.TemporaryDirectory(prefix="curate-embed-bench-") as tmp:
        data = Path(tmp) / "kitti"
        generate(data, args.frames, seed=0, small=True, progress=False)
        ws = curate.connect(Path(tmp) / "ws")
        ws.ingest(KittiSource(data), progress=False)
        for model in args.models:
            emb = build_embedder(model)
            reference = None
            for workers in args.workers:
                for kind in ("fork-dataloader", "threads"):
                    if workers == 0 and kind == "fork-dataloader":
                        continue  # identical to threads with 0 workers: read in the calling thread
                    times = []
                    for rep in range(args.repeats):
                        name = f"{model}-{kind}-{workers}-{rep}"
                        job = EmbedJob(name=name, batch_size=args.batch_size, num_workers=workers,
                                       device="cpu", progress=False)
                        with _loader(kind):
                            start = time.perf_counter()
                            run_embed_job(ws.store, emb, job)
                            times.append(time.perf_counter() - start)
                        ids, vectors = ws.vectors(name)
                        if reference is None:
                            reference = (list(ids), vectors)
                        same = list(ids) == reference[0] and np.array_equal(vectors, reference[1])
                        if not same:
                            raise SystemExit(f"{name}: vectors differ from the first run")
                    seconds = statistics.median(times)
                    rows.append({"model": model, "loader": kind if workers else "in-thread",
                                 "workers": workers, "frames": args.frames,
                                 "seconds": round(seconds, 3),
                                 "frames_per_s": round(args.frames / seconds, 1),
                                 "identical_vectors": True})
                    print(rows[-1], flush=True)
    for model in args.models:
        peer = {r["workers"]: r["frames_per_s"] for r in rows if r["model"] == model
                and r["loader"] == "fork-dataloader"}
        for r in rows:
            if r["model"] == model:
                r["x_fork_dataloader"] = (round(r["frames_per_s"] / peer[r["workers"]], 2)
                                          if r["workers"] in peer else None)
    print(f"{'model':>11} | {'loader':>15} | {'workers':>7} | {'frames/s':>8} | x fork-dataloader")
    for r in rows:
        print(f"{r['model']:>11} | {r['loader']:>15} | {r['workers']:>7} | {r['frames_per_s']:8.1f} | "
              f"{r['x_fork_dataloader']}")
    path = write_result("embed_throughput", rows, name=args.name, args=args,
                        notes="median of repeats; 2 shared CPU cores, other jobs running (noisy)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
