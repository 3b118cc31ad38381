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
    """Add ``--workspace`` to a command and pass an opened workspace as ``ws``."""

    @click.option(
        "--workspace",
        "workspace",
        envvar="CURATE_WORKSPACE",
        default=DEFAULT_WORKSPACE,
        show_default=True,
        help="Workspace directory (or $CURATE_WORKSPACE).",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, workspace: str, **kwargs: Any) -> Any:
        import curate

        return fn(*args, ws=curate.connect(workspace), **kwargs)

    return wrapper


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
def synth(out: str, frames: int, seed: int, small: bool) -> None:
    """Write a synthetic KITTI-format dataset of ray-cast LiDAR scenes."""
    from curate.sources.synthetic import generate

    summary = generate(out, frames, seed=seed, small=small, progress=None)
    click.echo(f"wrote {summary.frames} frames in {summary.drives} drives to {out}")


@cli.group()
def ingest() -> None:
    """Add frames from a dataset on disk (upsert by id: repeating it changes nothing)."""


@ingest.command("kitti")
@click.argument("root", type=click.Path())
@click.option("--split", default="training", show_default=True)
@click.option("--prefix", default=None, help="Prefix for frame ids (to keep datasets apart).")
@workspace_option
def ingest_kitti(ws: Any, root: str, split: str, prefix: Optional[str]) -> None:
    """Ingest a KITTI-format dataset (velodyne, image_2, calib, label_2, ImageSets)."""
    from curate.sources.kitti import KittiSource

    report = ws.ingest(KittiSource(root, split=split, prefix=prefix))
    click.echo(
        f"ingested {report.frames_seen} frames ({report.boxes_seen} boxes); "
        f"workspace has {report.frames_total} frames"
    )


@ingest.command("folder")
@click.argument("root", type=click.Path())
@click.option("--prefix", default=None, help="Prefix for frame ids.")
@workspace_option
def ingest_folder(ws: Any, root: str, prefix: Optional[str]) -> None:
    """Ingest a folder of point clouds (.bin, .npy, .pcd, .ply)."""
    from curate.sources.folder import FolderSource

    report = ws.ingest(FolderSource(root, prefix=prefix))
    click.echo(f"ingested {report.frames_seen} frames; workspace has {report.frames_total} frames")


@cli.command()
@click.option("--model", required=True, help="Embedder name (see `curate models`).")
@click.option("--name", default=None, help="Embedding name (default: the model name).")
@click.option("--checkpoint", default=None, type=click.Path(dir_okay=False), help="Weights file.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Embedder option.")
@workspace_option
def embed(ws: Any, model: str, name: Optional[str], checkpoint: Optional[str], batch_size: int,
          device: str, params: tuple[str, ...]) -> None:
    """Embed every frame (resumes: only frames without a vector are computed)."""
    config = _parse_params(params)
    if checkpoint:
        config["checkpoint"] = checkpoint
    report = ws.embed(model, name=name, batch_size=batch_size, device=device, progress=None, **config)
    click.echo(
        f"embedding {report.embedding}: {report.computed} computed, {report.skipped} already there, "
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
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Also export (format from suffix).")
@workspace_option
def select(ws: Any, strategy: str, budget: int, embedding: str, where: Optional[str], seed: int,
           params: tuple[str, ...], out: Optional[str]) -> None:
    """Select frames to label; prints the run id."""
    from curate.export import format_from_suffix

    fmt = format_from_suffix(Path(out)) if out else None
    result = ws.select(strategy, budget, embedding=embedding, where=where, seed=seed,
                       **_parse_params(params))
    if out:
        ws.export(result.run_id, fmt, out)
        click.echo(f"wrote {len(result)} ids to {out}", err=True)
    click.echo(result.run_id)


@cli.command()
@click.argument("run_id")
@click.option("--format", "fmt", default=None, type=click.Choice(["csv", "json", "parquet", "imagesets"]),
              help="Default: from the suffix of --out.")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@workspace_option
def export(ws: Any, run_id: str, fmt: Optional[str], out: str) -> None:
    """Export a stored selection."""
    from curate.export import format_from_suffix

    path = ws.export(run_id, fmt or format_from_suffix(Path(out)), out)
    click.echo(f"wrote {path}")


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
@workspace_option
def demo(ws: Any, frames: int, budget: int, seed: int, model: str, small: bool) -> None:
    """Synthesise, ingest, embed, select (random vs k-center), export and summarise."""
    from curate.demo import run_demo

    run_demo(ws, frames=frames, budget=budget, seed=seed, model=model, small=small, echo=click.echo)


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
