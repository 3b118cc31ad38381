"""Id bookkeeping and write cost at pool scale, measured through the product's API.

Run from the repository root::

    python -m benchmarks.bookkeeping --frames 200000             # ~2-4 min on 2 cores
    python -m benchmarks.bookkeeping --frames 20000 --label smoke

What it does, all through ``curate.connect`` / ``Workspace`` / ``Store`` (no arrays-only shortcuts):

1. ingests ``--frames`` tiny frames (``FrameRecord`` rows, no files) with ``ws.ingest`` in batches of
   ``--batch`` (one ``ws.ingest`` call per batch) and times every batch: the cost of a batch as the
   ``samples`` table grows from 0 to ``--frames`` rows;
2. commits ``--dim``-d vectors for every frame with ``Store.write_vectors`` (the embedding job's
   commit) in batches of ``--batch`` and times every commit;
3. times ``ws.select("random", --budget, embedding=...)`` (``--repeats`` times; the random selector's
   own work is negligible, so this is the id bookkeeping + vector read around it) and a filtered
   select (``where="scene < 'drive-0010'"``, about 10% of the pool).

The peer is the same script run on the code before the change (``--label before``, from a checkout
of that commit); both write ``benchmarks/results/bookkeeping-<label>-<frames>.json``. The
``select`` rows keep ``Selection.info`` timings when the workspace records them.
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


class _Records:
    """A source of ``FrameRecord`` rows without files (ids ``drive-DDDD/FFFFFF``)."""

    def __init__(self, start: int, stop: int, per_drive: int) -> None:
        self.name = "bench"
        self.start, self.stop, self.per_drive = start, stop, per_drive

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self):
        from curate.sources.base import FrameRecord

        for i in range(self.start, self.stop):
            drive, index = divmod(i, self.per_drive)
            yield FrameRecord(
                id=f"drive-{drive:04d}/{index:06d}", dataset="bench", split="train",
                scene=f"drive-{drive:04d}", frame_index=index, timestamp=float(i),
                lidar_path=f"/nonexistent/{i}.bin", num_points=1000,
                metadata={"time_of_day": "day" if i % 3 else "night"},
            )


def _ids(start: int, stop: int, per_drive: int) -> list[str]:
    return [f"drive-{i // per_drive:04d}/{i % per_drive:06d}" for i in range(start, stop)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--per-drive", type=int, default=None,
                        help="frames per drive (default: frames / 100, i.e. 100 drives)")
    parser.add_argument("--label", default="after", help="result name part (before / after / smoke)")
    parser.add_argument("--skip-select", action="store_true")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import curate
    from benchmarks.results_io import write_result
    from curate import _tables as T

    per_drive = args.per_drive or max(1, args.frames // 100)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="curate-bookkeeping-"))
    path = work / "ws"
    shutil.rmtree(path, ignore_errors=True)
    ws = curate.connect(path)
    rows: list[dict] = []
    ingest_times: list[float] = []
    for start in range(0, args.frames, args.batch):
        stop = min(args.frames, start + args.batch)
        t0 = time.perf_counter()
        ws.ingest(_Records(start, stop, per_drive), batch_size=args.batch, progress=False)
        ingest_times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    again = ws.ingest(_Records(0, min(args.frames, args.batch), per_drive), batch_size=args.batch,
                      progress=False)
    reingest = time.perf_counter() - t0
    table = T.embedding_table("bench")
    meta = {"embedder": "bench", "config": "{}", "weights_sha256": "0" * 64}
    rng = np.random.default_rng(0)
    commit_times: list[float] = []
    for start in range(0, args.frames, args.batch):
        stop = min(args.frames, start + args.batch)
        vectors = rng.standard_normal((stop - start, args.dim), dtype=np.float32)
        ids = _ids(start, stop, per_drive)
        t0 = time.perf_counter()
        ws.store.write_vectors(table, ids, vectors, metadata=meta)
        commit_times.append(time.perf_counter() - t0)
    n_batches = len(ingest_times)
    quarter = max(1, n_batches // 4)
    for phase, times in (("ingest batch", ingest_times), ("embedding commit", commit_times)):
        first = float(np.mean(times[:quarter]))
        last = float(np.mean(times[-quarter:]))
        rows.append({"phase": phase, "frames": args.frames, "what": "first quarter mean s",
                     "seconds": first, "ratio": None})
        rows.append({"phase": phase, "frames": args.frames, "what": "last quarter mean s",
                     "seconds": last, "ratio": last / first if first else None})
        rows.append({"phase": phase, "frames": args.frames, "what": "total s",
                     "seconds": float(np.sum(times)), "ratio": None})
    rows.append({"phase": "re-ingest first batch (no change)", "frames": args.frames,
                 "what": f"version unchanged={again.samples_version == ws.store.version(T.SAMPLES)}",
                 "seconds": reingest, "ratio": None})
    select_info: list[dict] = []
    if not args.skip_select:
        for where in (None, "scene < 'drive-0010'"):
            for repeat in range(args.repeats):
                t0 = time.perf_counter()
                result = ws.select("random", args.budget, embedding="bench", where=where,
                                   seed=repeat)
                seconds = time.perf_counter() - t0
                rows.append({"phase": "ws.select random" + (" (where, ~10%)" if where else ""),
                             "frames": args.frames, "what": f"budget {args.budget}, repeat {repeat}",
                             "seconds": seconds, "ratio": None})
                select_info.append({k: v for k, v in result.run.info.items()
                                    if isinstance(v, (int, float, str)) or v is None})
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    for row in rows:
        print(f"{row['phase']:<36} {row['what']:<28} {row['seconds']:10.3f}"
              + (f"  x{row['ratio']:.2f}" if row["ratio"] else ""))
    write_result(
        "bookkeeping", rows, name=f"bookkeeping-{args.label}-{args.frames}", args=args,
        notes="Per-batch ingest / embedding-commit cost as the tables grow, and ws.select "
              "wall time (random selector: the time is the bookkeeping and vector read).",
        extra={"ingest_batch_s": ingest_times, "commit_batch_s": commit_times,
               "select_info": select_info, "peak_rss_gib": peak_gib},
    )
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
