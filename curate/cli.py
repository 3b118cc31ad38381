"""The ``curate`` command line: batch ingest, embed, select, export, label, demo.

Every command takes ``--workspace DIR`` (default ``./curate-workspace`` or ``$CURATE_WORKSPACE``).
User errors print one ``curate: error: ...`` line and exit with status 2; no traceback.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import click

from curate.errors import CurateError, InvalidInputError
from curate.export import EXPORT_FORMATS

__all__ = ["main", "cli"]

logger = logging.getLogger(__name__)

DEFAULT_WORKSPACE = "./curate-workspace"


def _user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [CurateError]
    try:
        from index.errors import StoreError

        errors.append(StoreError)
    except ImportError:  # pragma: no cover
        pass
    try:
        from embedders import EmbedderError

        errors.append(EmbedderError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def workspace_option(fn: Callable) -> Callable:
    """Add ``--workspace`` (a directory or a ``curate serve`` URL) and ``--token``; pass ``ws``.

    With a URL the command runs against the server through :class:`curate.client.RemoteWorkspace`
    (token from ``--token`` or ``$CURATE_TOKEN``): dataset roots and checkpoints are paths on the
    server (below its ``--data-root``), id files are read here and uploaded, exports are written
    here.
    """

    @click.option(
        "--workspace",
        "workspace",
        envvar="CURATE_WORKSPACE",
        default=DEFAULT_WORKSPACE,
        show_default=True,
        help="Workspace directory or server URL http://HOST:PORT (or $CURATE_WORKSPACE).",
    )
    @click.option(
        "--token",
        "token",
        envvar="CURATE_TOKEN",
        default=None,
        help="Bearer token when --workspace is a URL (or $CURATE_TOKEN).",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, workspace: str, token: Optional[str], **kwargs: Any) -> Any:
        import curate

        return fn(*args, ws=curate.connect(workspace, token=token), **kwargs)

    return wrapper


def _is_remote(ws: Any) -> bool:
    from curate.client import RemoteWorkspace

    return isinstance(ws, RemoteWorkspace)


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InvalidInputError(f"--param expects KEY=VALUE; got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        params[key.strip()] = value
    return params


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="curate")
def cli(verbose: int) -> None:
    """curate: choose the LiDAR frames worth labeling."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@cli.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Output dataset root.")
@click.option("--frames", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--small", is_flag=True, help="Few points per frame (fast; for tests).")
@click.option("--shared-maps", type=click.IntRange(min=1), default=None,
              help="Put the drives on this many shared maps (drives revisit the same places; KITTI format).")
@click.option("--format", "fmt", type=click.Choice(["kitti", "nuscenes"]), default="kitti", show_default=True,
              help="Dataset layout to write.")
@click.option("--version", "nusc_version", default="v1.0-mini", show_default=True,
              help="nuScenes table folder name (--format nuscenes).")
@click.option("--frames-per-drive", type=click.IntRange(min=1), default=None,
              help="Frames per drive / scene (default: 20 to 60).")
def synth(out: str, frames: int, seed: int, small: bool, shared_maps: Optional[int], fmt: str,
          nusc_version: str, frames_per_drive: Optional[int]) -> None:
    """Write a synthetic KITTI- or nuScenes-format dataset of ray-cast LiDAR scenes."""
    if fmt == "nuscenes":
        if shared_maps is not None:
            raise click.UsageError("--shared-maps is available with --format kitti only")
        from curate.sources.synthetic_nuscenes import generate_nuscenes

        info = generate_nuscenes(out, frames, seed=seed, small=small, frames_per_drive=frames_per_drive,
                                 version=nusc_version, progress=None)
        click.echo(f"wrote {info['samples']} samples ({info['sweeps']} sweeps) in {info['scenes']} scenes "
                   f"to {out}/{nusc_version}")
        return
    from curate.sources.synthetic import generate

    summary = generate(out, frames, seed=seed, small=small, frames_per_drive=frames_per_drive, progress=None,
                       shared_maps=shared_maps)
    click.echo(f"wrote {summary.frames} frames in {summary.drives} drives to {out}")


class _SourceCommands(click.Group):
    """``curate ingest``: one subcommand per registered source kind, made when asked for (so a
    source registered by a plugin module gets its command too)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from curate.sources.registry import list_sources

        return sorted(set(super().list_commands(ctx)) | set(list_sources()))

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        from curate.sources.registry import sources

        command = super().get_command(ctx, name)
        if command is None and name in sources():
            command = _ingest_command(name)
            self.add_command(command)
        return command


@cli.group(cls=_SourceCommands)
def ingest() -> None:
    """Add frames from a dataset on disk (upsert by id: repeating it changes nothing)."""


def _ingest_command(kind: str) -> click.Command:
    """Add ``curate ingest KIND ROOT`` for the registered source ``kind``: one flag per option
    of the source (:mod:`curate.sources.registry`), the same against a directory or a server."""
    from curate.sources.registry import source_type

    entry = source_type(kind)

    def run(ws: Any, root: str, on_error: str, **options: Optional[str]) -> None:
        from curate.api import SourceSpec

        spec = SourceSpec(kind=kind, root=root, options=options, on_error=on_error)
        # against a server, the server reads ROOT (a path on the server, below its --data-root)
        report = ws.ingest(spec if _is_remote(ws) else spec.build(), on_error=on_error)
        boxes = f" ({report.boxes_seen} boxes)" if report.boxes_seen else ""
        click.echo(f"ingested {report.frames_seen} frames{boxes}; workspace has {report.frames_total} frames")
        _echo_bad(report.frames_bad, "ingest")

    run.__doc__ = f"Ingest a source of kind {kind!r}: {entry.summary}"
    command = workspace_option(run)
    command = click.option("--on-error", "on_error", default="skip", show_default=True,
                           type=click.Choice(["skip", "fail"]),
                           help="skip: record bad frames (see `curate problems`) and go on; "
                                "fail: stop at the first.")(command)
    for name, option in reversed(list(entry.options.items())):
        command = click.option(f"--{name.replace('_', '-')}", name, default=option.default,
                               show_default=option.default is not None, help=option.help)(command)
    command = click.argument("root", type=click.Path())(command)
    return click.command(kind)(command)


def _echo_bad(count: int, stage: str) -> None:
    if count:
        click.echo(f"{count} bad frame(s) skipped by {stage} and recorded; `curate problems` lists "
                   "them (fix the files and run again to retry them)", err=True)


@cli.command()
@click.option("--model", required=True, help="Embedder name (see `curate models`).")
@click.option("--name", default=None, help="Embedding name (default: the model name).")
@click.option("--checkpoint", default=None, type=click.Path(dir_okay=False), help="Weights file.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Embedder option.")
@click.option("--num-workers", type=click.IntRange(min=0), default=None,
              help="Threads reading frame files [default: min(2, CPUs)].")
@click.option("--write-every", type=click.IntRange(min=1), default=256, show_default=True,
              help="Vectors per write (the most an interruption can lose).")
@click.option("--precision", default="auto", show_default=True,
              type=click.Choice(["auto", "fp32", "fp16"]), help="auto = fp16 autocast on CUDA.")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float16"]),
              help="Storage type of the vectors (float16 halves the table).")
@click.option("--on-error", "on_error", default="skip", show_default=True,
              type=click.Choice(["skip", "fail"]),
              help="skip: record bad frames (see `curate problems`) and go on; fail: stop at the first.")
@click.option("--engine", default="local", show_default=True, type=click.Choice(["local", "ray"]),
              help="ray = an actor pool with one model per worker (needs curate[ray]).")
@click.option("--address", default=None,
              help="Ray cluster to join (host:port); default: a local cluster for the job.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Ray actors [default: one per GPU, else one per CPU].")
@workspace_option
def embed(ws: Any, model: str, name: Optional[str], checkpoint: Optional[str], batch_size: int,
          device: str, params: tuple[str, ...], num_workers: Optional[int], write_every: int,
          precision: str, dtype: str, on_error: str, engine: str = "local",
          address: Optional[str] = None, workers: Optional[int] = None) -> None:
    """Embed every frame (resumes: only frames without a vector are computed)."""
    config = _parse_params(params)
    if checkpoint:
        config["checkpoint"] = checkpoint
    job: dict[str, Any] = {}
    if num_workers is not None:
        job["num_workers"] = num_workers
    if write_every != 256:
        job["write_every"] = write_every
    if precision != "auto":
        job["precision"] = precision
    if dtype != "float32":
        job["dtype"] = dtype
    if engine != "local" or address is not None or workers is not None:
        job.update(engine=engine, address=address, workers=workers)
    report = ws.embed(model, name=name, batch_size=batch_size, device=device, progress=None,
                      on_error=on_error, **job, **config)
    click.echo(
        f"embedding {report.embedding}: {report.computed} computed, {report.skipped} already there, "
        f"{report.total} vectors of dim {report.dim} ({report.seconds:.1f} s)"
    )
    _echo_bad(report.frames_bad, f"embed {report.embedding}")


@cli.command()
@click.option("--stage", default=None, help="Only this stage: ingest or embed:<embedding>.")
@click.option("--severity", default=None, type=click.Choice(["error", "warning"]),
              help="error: skipped frames; warning: kept with NaN/inf points dropped.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@workspace_option
def problems(ws: Any, stage: Optional[str], severity: Optional[str], as_json: bool) -> None:
    """List the bad frames that ingest and embedding jobs skipped (and why)."""
    rows = ws.problems(stage=stage, severity=severity)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.model_dump(), sort_keys=True))
        return
    if not rows:
        click.echo("no problems recorded")
        return
    for row in rows:
        click.echo(f"{row.stage:<16} {row.severity:<8} {row.frame_id:<24} {row.kind:<18} "
                   f"{row.file or '-'}: {row.reason}")
    bad = sum(r.severity == "error" for r in rows)
    click.echo(f"{bad} bad frame(s), {len(rows) - bad} warning(s)")


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--name", default="fused", show_default=True, help="Name of the fused embedding.")
@click.option("--weight", "weights", type=float, multiple=True,
              help="Weight per source, in order (repeat; default all 1).")
@click.option("--method", default="concat", show_default=True, type=click.Choice(["concat", "mean"]))
@workspace_option
def fuse(ws: Any, sources: tuple[str, ...], name: str, weights: tuple[float, ...],
         method: str) -> None:
    """Fuse embeddings (L2-normalised, weighted, concatenated or averaged) into a new one."""
    report = ws.fuse(list(sources), name=name, weights=list(weights) or None, method=method)
    click.echo(
        f"embedding {report.embedding}: {method} of {', '.join(sources)}, "
        f"{report.total} vectors of dim {report.dim} ({report.seconds:.1f} s)"
    )


@cli.command()
def models() -> None:
    """List the available embedders."""
    from curate.embedding import list_models

    for name in list_models():
        click.echo(name)


@cli.command()
def strategies() -> None:
    """List the available selection strategies."""
    from curate.selectors import list_selectors

    for name in list_selectors():
        click.echo(name)


@cli.command()
@click.option("--strategy", required=True, help="Strategy name (see `curate strategies`).")
@click.option("--budget", required=True, type=int, help="Frames to select.")
@click.option("--embedding", required=True, help="Embedding to select on.")
@click.option("--where", default=None, help="SQL filter on frame metadata, e.g. \"weather = 'rain'\".")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Strategy parameter.")
@click.option("--score-run", default=None,
              help="Stored prediction run whose scores uncertainty strategies use (see `curate loop`).")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Also export (format from suffix).")
@click.option("--out-format", "out_fmt", default=None, type=click.Choice(list(EXPORT_FORMATS)),
              help="Format of --out (default: from its suffix).")
@click.option("--url-prefix", "base_url", default=None,
              help="labelstudio: URL prefix standing for --path-root in file paths.")
@click.option("--path-root", "path_root", default=None, type=click.Path(file_okay=False),
              help="labelstudio: folder that --url-prefix stands for (default: common folder).")
@click.option("--shards", type=click.IntRange(min=1), default=None,
              help="Run the strategy sharded over this many partitions, then merge.")
@click.option("--engine", default="local", show_default=True, type=click.Choice(["local", "ray"]),
              help="Where the shards run (ray needs curate[ray]).")
@workspace_option
def select(ws: Any, strategy: str, budget: int, embedding: str, where: Optional[str], seed: int,
           params: tuple[str, ...], score_run: Optional[str], out: Optional[str], out_fmt: Optional[str],
           base_url: Optional[str], path_root: Optional[str], shards: Optional[int] = None,
           engine: str = "local") -> None:
    """Select frames to label; prints the run id."""
    from curate.export import format_from_suffix

    fmt = (out_fmt or format_from_suffix(Path(out))) if out else None
    extra: dict[str, Any] = {"score_run": score_run} if score_run else {}
    if shards is not None or engine != "local":
        extra.update(shards=shards, engine=engine)
    result = ws.select(strategy, budget, embedding=embedding, where=where, seed=seed,
                       **extra, **_parse_params(params))
    if out:
        ws.export(result.run_id, fmt, out, **_url_options(base_url, path_root))
        click.echo(f"wrote {len(result)} ids to {out}", err=True)
    click.echo(result.run_id)


@cli.command()
@click.argument("run_id")
@click.option("--format", "fmt", default=None, type=click.Choice(list(EXPORT_FORMATS)),
              help="Default: from the suffix of --out.")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--url-prefix", "base_url", default=None,
              help="labelstudio: URL prefix standing for --path-root in file paths.")
@click.option("--path-root", "path_root", default=None, type=click.Path(file_okay=False),
              help="labelstudio: folder that --url-prefix stands for (default: common folder).")
@workspace_option
def export(ws: Any, run_id: str, fmt: Optional[str], out: str, base_url: Optional[str],
           path_root: Optional[str]) -> None:
    """Export a stored selection (non-embedding formats get a sidecar OUT.manifest.json)."""
    from curate.export import format_from_suffix

    path = ws.export(run_id, fmt or format_from_suffix(Path(out)), out,
                     **_url_options(base_url, path_root))
    click.echo(f"wrote {path}")


def _url_options(base_url: Optional[str], path_root: Optional[str]) -> dict[str, str]:
    """Only the URL options that were given (a remote workspace may not take them)."""
    options = {"base_url": base_url, "path_root": path_root}
    return {k: v for k, v in options.items() if v is not None}


@cli.command("import-labels")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", default="kitti", show_default=True, type=click.Choice(["kitti"]),
              help="Annotation format of the files.")
@click.option("--prefix", default=None, help="Id prefix of the frames (e.g. kitti for kitti/000123).")
@workspace_option
def import_labels(ws: Any, paths: tuple[str, ...], fmt: str, prefix: Optional[str]) -> None:
    """Import KITTI label_2 files (<frame id>.txt, or folders of them) and mark the frames labeled."""
    if not hasattr(ws, "import_labels"):
        raise InvalidInputError("this workspace cannot import labels (run it against a local workspace)")
    report = ws.import_labels(list(paths), format=fmt, prefix=prefix)
    click.echo(
        f"imported {report.boxes} boxes for {report.frames} frames from {report.files} files "
        f"({report.replaced} earlier imported boxes replaced); "
        f"{report.labeled_total} frames labeled in total"
    )


@cli.command()
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False),
              help="Loop config (JSON or YAML fields of curate.loop.LoopConfig).")
@click.option("--rounds", type=click.IntRange(min=1), default=None, help="Override the number of rounds.")
@click.option("--stop-after", type=click.IntRange(min=1), default=None,
              help="Stop after this many rounds in total (run again to resume).")
@workspace_option
def loop(ws: Any, config: str, rounds: Optional[int], stop_after: Optional[int]) -> None:
    """Run or resume an active-learning detector loop (mmdet3d: pip install curate[mm3d])."""
    from curate.loop import load_loop_config, run_loop

    def on_round(r: Any) -> None:
        click.echo(f"round {r.round}: {r.labeled_frames} frames labeled, "
                   f"mAP3d {r.metrics.get('map_3d', 0.0):.2f}, {r.seconds:.1f} s")

    if _is_remote(ws):  # the config file is read here; paths inside it are server paths
        report = ws.loop(load_loop_config(config).model_dump(), rounds=rounds, stop_after=stop_after,
                         on_round=on_round)
    else:
        report = run_loop(ws, config, rounds=rounds, stop_after=stop_after, on_round=on_round)
    click.echo(report.table())


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the full records as JSON lines.")
@workspace_option
def runs(ws: Any, as_json: bool) -> None:
    """List stored selection runs."""
    records = ws.runs()
    if as_json:
        for r in records:
            click.echo(r.model_dump_json())
        return
    if not records:
        click.echo("no runs yet")
        return
    header = f"{'run':<12} {'created':<26} {'strategy':<10} {'budget':>6} {'picked':>6} {'embedding':<14} {'radius':>8}"
    click.echo(header)
    for r in records:
        radius = r.info.get("coverage_radius")
        radius_s = f"{radius:8.3f}" if isinstance(radius, (int, float)) else f"{'-':>8}"
        click.echo(
            f"{r.run_id:<12} {r.created_at:<26} {r.strategy:<10} {r.budget:>6} {len(r.ids):>6} "
            f"{r.embedding:<14} {radius_s}"
        )


@cli.command("eval-embeddings")
@click.argument("names", nargs=-1, required=True)
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True, help="Neighbours per frame.")
@click.option("--window", type=click.IntRange(min=0), default=5, show_default=True,
              help="Near-duplicate window in frame indices.")
@click.option("--column", "columns", multiple=True,
              help="Metadata column for kNN agreement (repeat; default time_of_day, weather, location).")
@click.option("--labels", type=click.Choice(["labeled", "all", "none"]), default="labeled",
              show_default=True, help="Probe targets: labeled frames, every stored box, or no probes.")
@click.option("--where", default=None, help="Filter on samples restricting the frames.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the drive split.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Also write the result as JSON.")
@workspace_option
def eval_embeddings(ws: Any, names: tuple[str, ...], k: int, window: int, columns: tuple[str, ...],
                    labels: str, where: Optional[str], seed: int, out: Optional[str]) -> None:
    """Judge embeddings side by side on this pool (retrieval, metadata agreement, probes)."""
    result = ws.evaluate_embeddings(list(names), k=k, window=window, columns=list(columns) or None,
                                    labels=labels, where=where, seed=seed, out=out)
    click.echo(f"{result.frames} frames, {result.drives} drives")
    click.echo(result.table())
    for note in result.notes:
        click.echo(f"note: {note}")
    if out:
        click.echo(f"written {out}")


@cli.command()
@click.argument("frame_ids", nargs=-1, required=True)
@click.option("--embedding", required=True, help="Embedding to search (see `curate runs`, ws.embeddings()).")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(min=1), help="Neighbours per frame.")
@click.option("--where", default=None, help="SQL filter on samples: only matching frames are neighbours.")
@click.option("--metric", default="l2", show_default=True, type=click.Choice(["l2", "cosine", "ip"]))
@click.option("--nprobe", type=click.IntRange(min=1), default=None,
              help="Lists the approximate index probes (above curate.search.SEARCH_FLAT_MAX frames).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@workspace_option
def search(ws: Any, frame_ids: tuple[str, ...], embedding: str, k: int, where: Optional[str],
           metric: str, nprobe: Optional[int], as_json: bool) -> None:
    """Nearest frames of FRAME_IDS in an embedding (the frame itself left out)."""
    result = ws.search(embedding, ids=list(frame_ids), k=k, where=where, metric=metric, nprobe=nprobe)
    if as_json:
        click.echo(result.model_dump_json())
        return
    if result.index_kind == "ivf":
        click.echo(f"(approximate: IVF {result.index_storage}, nlist={result.nlist}, "
                   f"nprobe={result.nprobe})")
    for hit in result.results:
        click.echo(f"{hit.query}:")
        for rank, (fid, dist) in enumerate(zip(hit.ids, hit.distances), 1):
            click.echo(f"  {rank:>3} {fid:<24} {dist:.4f}")


def read_id_file(path: Path) -> list[str]:
    """Frame ids from a file: one per line (.txt), a CSV with an ``id`` column, or a curate JSON export."""
    if not path.is_file():
        raise InvalidInputError(f"id file {str(path)!r} does not exist")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
            items = doc["items"] if isinstance(doc, dict) else doc
            return [str(it["id"]) if isinstance(it, dict) else str(it) for it in items]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"{path}: not a curate JSON export or a JSON list of ids ({exc})") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if rows and "id" not in rows[0]:
            raise InvalidInputError(f"{path}: CSV has no 'id' column (columns: {', '.join(rows[0])})")
        return [r["id"] for r in rows]
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@cli.command()
@click.option("--ids", "ids_file", default=None, type=click.Path(dir_okay=False),
              help="File of frame ids (.txt lines, .csv with an id column, or a JSON export).")
@click.option("--run", "run_id", default=None, help="Label the frames a stored run selected.")
@workspace_option
def label(ws: Any, ids_file: Optional[str], run_id: Optional[str]) -> None:
    """Mark frames as labeled (their ground-truth boxes then count as labels)."""
    if bool(ids_file) == bool(run_id):
        raise InvalidInputError("give exactly one of --ids FILE or --run RUN_ID")
    ids = read_id_file(Path(ids_file)) if ids_file else ws.run(run_id).ids
    report = ws.label(ids)
    click.echo(f"labeled {report.newly_labeled} new frames; {report.labeled_total} labeled in total")


@cli.command()
@click.option("--frames", type=click.IntRange(min=20), default=240, show_default=True)
@click.option("--budget", type=click.IntRange(min=1), default=24, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--model", default="recon-tiny", show_default=True, help="Embedder to use.")
@click.option("--small", is_flag=True, help="Few points per frame (a quick smoke run).")
@click.option("--pretrain-steps", type=click.IntRange(min=0), default=40, show_default=True,
              help="Self-supervised pretraining steps on the pool (0: random weights).")
@click.option("--loop-rounds", type=click.IntRange(min=0), default=2, show_default=True,
              help="Rounds of the detector loop (0: skip; needs `make mm3d`).")
@workspace_option
def demo(ws: Any, frames: int, budget: int, seed: int, model: str, small: bool,
         pretrain_steps: int, loop_rounds: int) -> None:
    """Synthesise, ingest, pretrain, embed, select with every strategy, export, run a loop, summarise."""
    from curate.demo import run_demo

    if _is_remote(ws):
        raise InvalidInputError(
            "the demo synthesises data next to the workspace and needs a workspace directory; "
            "run `curate demo` on the server host (or without a URL)"
        )
    run_demo(ws, frames=frames, budget=budget, seed=seed, model=model, small=small,
             pretrain_steps=pretrain_steps, loop_rounds=loop_rounds, echo=click.echo)


@cli.command()
@click.option("--config", "config_file", required=True, type=click.Path(dir_okay=False),
              help="TOML pretraining config (keys: see embedders.pretrain.config).")
@workspace_option
def pretrain(ws: Any, config_file: str) -> None:
    """Self-supervised ReCon pretraining on the workspace's frames; prints the checkpoint path.

    Resumes from the run's last.pt when interrupted.
    """
    if _is_remote(ws):  # the TOML file is read here and sent; training runs on the server
        from curate.pretraining import read_config

        report = ws.pretrain(read_config(config_file).to_dict())
    else:
        report = ws.pretrain(config_file)
    losses = ", ".join(f"{k} {v:.4f}" for k, v in report.final_losses.items())
    click.echo(f"pretrained {report.steps} steps on {report.frames} frames in "
               f"{report.seconds:.0f} s ({losses})", err=True)
    click.echo(report.checkpoint)
    if getattr(report, "interrupted", None):
        click.echo(f"stopped by {report.interrupted} at step {report.steps}; run the same command "
                   "again to resume", err=True)
        sys.exit(143)


@cli.command("pretrain-image")
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
              help="TOML config (keys: see embedders.pretrain_image.config); default settings "
                   "when omitted.")
@workspace_option
def pretrain_image(ws: Any, config_file: Optional[str]) -> None:
    """Self-supervised (SimCLR) training of the image-ssl embedder on the pool's camera images.

    Prints the checkpoint path; embed with `curate embed --model image-ssl
    --checkpoint PATH`. Resumes from the run's last.pt when interrupted.
    """
    if _is_remote(ws):  # the TOML file is read here and sent; training runs on the server
        from embedders import EmbedderError
        from embedders.pretrain_image import load_image_config

        try:
            config = None if config_file is None else load_image_config(config_file).to_dict()
        except EmbedderError as exc:
            raise InvalidInputError(str(exc)) from exc
        report = ws.pretrain_image(config)
    else:
        report = ws.pretrain_image(config_file)
    losses = ", ".join(f"{k} {v:.4f}" for k, v in report.final_losses.items())
    click.echo(f"pretrained image-ssl {report.steps} steps on {report.frames} frames in "
               f"{report.seconds:.0f} s ({losses})", err=True)
    click.echo(report.checkpoint)


@cli.command()
@click.option("--workspace", "workspace", envvar="CURATE_WORKSPACE", default=DEFAULT_WORKSPACE,
              show_default=True, help="Workspace directory to serve (or $CURATE_WORKSPACE).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True)
@click.option("--token-read", "read_tokens", multiple=True, metavar="TOKEN",
              help="Accept TOKEN for reads (repeatable; also $CURATE_TOKENS='T:read,T2:write').")
@click.option("--token-write", "write_tokens", multiple=True, metavar="TOKEN",
              help="Accept TOKEN for reads and writes (repeatable).")
@click.option("--data-root", "data_roots", multiple=True, type=click.Path(file_okay=False),
              help="Directory whose datasets/checkpoints clients may ingest (repeatable).")
@click.option("--max-body-mb", type=click.FloatRange(min=0.001), default=16.0, show_default=True,
              help="Largest request body accepted (413 above).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(workspace: str, host: str, port: int, read_tokens: tuple[str, ...],
          write_tokens: tuple[str, ...], data_roots: tuple[str, ...], max_body_mb: float,
          log_level: str) -> None:
    """Serve the workspace over HTTP (FastAPI): the same API as the Python client.

    Tokens come from --token-read/--token-write, $CURATE_TOKENS and WORKSPACE/tokens.json. With
    none configured, a write token is generated and printed once.
    """
    import secrets

    from curate.auth import load_tokens
    from curate.server import serve as run_server

    tokens = {t: "read" for t in read_tokens}
    tokens.update({t: "write" for t in write_tokens})
    if not len(load_tokens(workspace, tokens)):
        generated = secrets.token_urlsafe(32)
        tokens[generated] = "write"
        click.echo(f"no tokens configured; generated a write token for this run:\n  {generated}", err=True)
    click.echo(f"serving {workspace} on http://{host}:{port} (docs at /docs)", err=True)
    run_server(workspace, host=host, port=port, tokens=tokens, data_roots=data_roots,
               max_body_bytes=int(max_body_mb * 1024 * 1024), log_level=log_level)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of the ``curate`` console script."""
    try:
        cli.main(args=argv, prog_name="curate", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except _user_errors() as exc:
        click.echo(f"curate: error: {exc}", err=True)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
