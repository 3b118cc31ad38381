"""``ws.evaluate_embeddings`` on a workspace, written as a result (the README's demo table).

Usage (from the repository root)::

    curate demo --loop-rounds 0 --workspace /tmp/demo-ws
    python -m benchmarks.eval_embeddings --workspace /tmp/demo-ws --embed bev-hist \\
        --labels all --name eval_embeddings-demo

Runs :func:`curate.embedding_eval.evaluate_embeddings` on every embedding of the workspace (or
``--names``) after embedding the models of ``--embed`` that are missing, prints the table and
writes it with :func:`benchmarks.results_io.write_result`: one row per metric, one column per
embedding plus ``prior``. The peer is in the same table: the ``prior`` column and any
hand-crafted embedding (``bev-hist``) next to the learned ones.
"""

from __future__ import annotations

import argparse
import logging

import curate
from benchmarks.results_io import write_result

logger = logging.getLogger(__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--names", default="", help="comma list of embeddings (default: all)")
    parser.add_argument("--embed", default="", help="comma list of models to embed first if missing")
    parser.add_argument("--labels", default="labeled", choices=["labeled", "all", "none"])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="eval_embeddings", help="result name")
    args = parser.parse_args()
    ws = curate.connect(args.workspace)
    for model in filter(None, args.embed.split(",")):
        if model not in ws.embeddings():
            ws.embed(model, progress=False)
    names = [n for n in args.names.split(",") if n] or sorted(
        n for n in ws.embeddings() if not n.startswith("pretrain-"))
    result = ws.evaluate_embeddings(names, k=args.k, window=args.window, labels=args.labels,
                                    seed=args.seed)
    print(f"{result.frames} frames, {result.drives} drives")
    print(result.table())
    for note in result.notes:
        print(f"note: {note}")
    columns = [*result.embeddings, "prior"]
    rows = [{"metric": m, **{c: result.values[c].get(m) for c in columns}} for m in result.metrics]
    write_result("eval_embeddings", rows, name=args.name, args=args, columns=["metric", *columns],
                 notes="; ".join(result.notes),
                 extra={"frames": result.frames, "drives": result.drives, "params": result.params})


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
