"""Render the docs' benchmark tables from result files, and check that the docs match them.

Usage (from the repository root)::

    python -m benchmarks.report            # rewrite every marked table in the docs
    python -m benchmarks.report --check    # exit 1 when a table differs from its result file
    python -m benchmarks.report --list     # the result files and where the docs use them

A table in a Markdown file is marked like this::

    <!-- result:embedders-protocol columns="embedder|drive|near-dup R@10" digits=3 -->
    ...generated: a one-line provenance caption and a Markdown table...
    <!-- /result -->

``NAME`` is a result written by :func:`benchmarks.results_io.write_result` (the file
``benchmarks/results/NAME.json``). Options, all optional: ``columns`` (``|``-separated, default
every column of the result, in its order), ``rows`` (``|``-separated values of the first column to
keep, in that order), ``digits`` (decimals of floats, default 3) and ``caption=no`` (table only).
Everything between the two markers is generated: edit the result (re-run the benchmark), never the
table. ``--check`` fails when a marked table differs from what its result renders to, when a
marker names a result file that does not exist, or when a marker is not closed.

Cost: linear in the size of the docs and of the result files read.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from benchmarks.results_io import RESULTS_DIR, ROOT, default_results_dir, read_result

logger = logging.getLogger(__name__)

#: Markdown files whose marked tables are generated (relative to the repository root).
DOCS: tuple[str, ...] = ("README.md", "benchmarks/README.md")

OPEN = re.compile(r"^<!-- result:(?P<name>[A-Za-z0-9_.\-]+)(?P<options>[^>]*?)\s*-->\s*$")
CLOSE = "<!-- /result -->"


class ReportError(Exception):
    """A marker the report cannot render (unknown option, missing result, unclosed block)."""


@dataclass(frozen=True)
class Block:
    """One marked table: its result name, options, and the line span of its generated body."""

    doc: Path
    name: str
    options: dict[str, str]
    start: int  # index of the opening marker line
    stop: int  # index of the closing marker line


def parse_options(text: str, where: str) -> dict[str, str]:
    """``columns="a|b" digits=2`` -> ``{"columns": "a|b", "digits": "2"}``."""
    out: dict[str, str] = {}
    for item in shlex.split(text):
        key, sep, value = item.partition("=")
        if not sep or key not in ("columns", "rows", "digits", "caption"):
            raise ReportError(f"{where}: unknown marker option {item!r} "
                              "(valid: columns=, rows=, digits=, caption=)")
        out[key] = value
    return out


def find_blocks(doc: Path, lines: Sequence[str]) -> list[Block]:
    """Every marked block of ``lines`` (the lines of ``doc``)."""
    blocks: list[Block] = []
    open_at: Optional[int] = None
    name, options = "", {}
    for number, line in enumerate(lines):
        match = OPEN.match(line.strip())
        if match:
            if open_at is not None:
                raise ReportError(f"{doc}:{open_at + 1}: result block {name!r} is not closed "
                                  f"before the next one at line {number + 1}")
            open_at, name = number, match.group("name")
            options = parse_options(match.group("options"), f"{doc}:{number + 1}")
        elif line.strip() == CLOSE:
            if open_at is None:
                raise ReportError(f"{doc}:{number + 1}: '{CLOSE}' without an opening marker")
            blocks.append(Block(doc, name, options, open_at, number))
            open_at = None
    if open_at is not None:
        raise ReportError(f"{doc}:{open_at + 1}: result block {name!r} is never closed "
                          f"(add a line '{CLOSE}')")
    return blocks


def format_value(value: Any, digits: int) -> str:
    """One table cell: floats rounded to ``digits``, ``None`` as ``-``, pipes escaped."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v, digits) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def caption(result: dict[str, Any]) -> str:
    """Provenance line: result name, commit, date, machine, load, command."""
    commit = (result.get("commit") or "unknown")[:10] + (" (dirty)" if result.get("dirty") else "")
    machine = result.get("machine") or {}
    load = result.get("load_avg") or []
    parts = [f"Result `{result['name']}`", f"commit {commit}", f"{(result.get('date') or '')[:10]}",
             f"{machine.get('cpus', '?')} CPUs"]
    if load:
        parts.append(f"load {load[0]:.1f}")
    text = ", ".join(parts)
    command = result.get("command")
    if command:
        text += f": `{command}`"
    return text


def render_table(result: dict[str, Any], options: dict[str, str], where: str) -> list[str]:
    """The generated lines of one block (caption, blank line, Markdown table)."""
    columns = list(result.get("columns") or [])
    if "columns" in options:
        wanted = [c for c in options["columns"].split("|") if c]
        unknown = [c for c in wanted if c not in columns]
        if unknown:
            raise ReportError(f"{where}: result {result['name']!r} has no column(s) {unknown}; "
                              f"it has {columns}")
        columns = wanted
    rows = list(result.get("rows") or [])
    if "rows" in options and columns:
        key = (result.get("columns") or columns)[0]
        by_key = {str(r.get(key)): r for r in rows}
        wanted_rows = [v for v in options["rows"].split("|") if v]
        missing = [v for v in wanted_rows if v not in by_key]
        if missing:
            raise ReportError(f"{where}: result {result['name']!r} has no row(s) {missing} in "
                              f"column {key!r}")
        rows = [by_key[v] for v in wanted_rows]
    try:
        digits = int(options.get("digits", "3"))
    except ValueError as exc:
        raise ReportError(f"{where}: digits must be an integer, got {options['digits']!r}") from exc
    out: list[str] = []
    if options.get("caption", "yes") not in ("no", "false", "0"):
        out += [caption(result), ""]
    out.append("| " + " | ".join(format_value(c, digits) for c in columns) + " |")
    out.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        out.append("| " + " | ".join(format_value(row.get(c), digits) for c in columns) + " |")
    return out


def load(name: str, folder: Path, where: str) -> dict[str, Any]:
    path = folder / f"{name}.json"
    if not path.is_file():
        raise ReportError(f"{where}: the docs quote result {name!r} but {path} does not exist "
                          f"(run the benchmark that writes it, or remove the table)")
    return read_result(path)


def render_doc(doc: Path, folder: Path) -> tuple[str, str, list[Block]]:
    """``(current text, rendered text, blocks)`` of one Markdown file."""
    text = doc.read_text()
    lines = text.split("\n")
    blocks = find_blocks(doc, lines)
    out: list[str] = []
    cursor = 0
    for block in blocks:
        where = f"{doc}:{block.start + 1}"
        body = render_table(load(block.name, folder, where), block.options, where)
        out += lines[cursor : block.start + 1]
        out += body
        cursor = block.stop
    out += lines[cursor:]
    return text, "\n".join(out), blocks


def check(docs: Sequence[Path], folder: Path) -> list[str]:
    """Problems found (empty when every marked table matches its result file)."""
    problems: list[str] = []
    for doc in docs:
        try:
            current, rendered, _ = render_doc(doc, folder)
        except ReportError as exc:
            problems.append(str(exc))
            continue
        if current != rendered:
            diff = "\n".join(difflib.unified_diff(
                current.split("\n"), rendered.split("\n"), f"{doc} (docs)", f"{doc} (results)",
                lineterm="", n=1))
            problems.append(f"{doc}: tables differ from their result files "
                            f"(run `python -m benchmarks.report`):\n{diff}")
    return problems


def write(docs: Sequence[Path], folder: Path) -> list[Path]:
    """Rewrite every marked table; returns the files that changed."""
    changed = []
    for doc in docs:
        current, rendered, _ = render_doc(doc, folder)
        if current != rendered:
            doc.write_text(rendered)
            changed.append(doc)
    return changed


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 when a marked table differs from its result")
    parser.add_argument("--list", action="store_true", help="result files and the docs using them")
    parser.add_argument("--docs", nargs="*", default=None,
                        help=f"Markdown files (default: {', '.join(DOCS)} under the repository)")
    parser.add_argument("--results", default=None,
                        help=f"results folder (default {RESULTS_DIR.relative_to(ROOT)} or "
                        "$CURATE_RESULTS_DIR)")
    args = parser.parse_args(argv)
    docs = [Path(d) for d in args.docs] if args.docs is not None else [ROOT / d for d in DOCS]
    folder = Path(args.results) if args.results else default_results_dir()
    if args.list:
        used: dict[str, list[str]] = {}
        for doc in docs:
            for block in find_blocks(doc, doc.read_text().split("\n")):
                shown = doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc
                used.setdefault(block.name, []).append(f"{shown}:{block.start + 1}")
        for path in sorted(folder.glob("*.json")):
            print(f"{path.stem:40s} {', '.join(used.pop(path.stem, [])) or '(not quoted)'}")
        for name, places in used.items():
            print(f"{name:40s} MISSING, quoted at {', '.join(places)}")
        return 0
    if args.check:
        problems = check(docs, folder)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            return 1
        print(f"ok: every marked table in {len(docs)} file(s) matches its result")
        return 0
    try:
        changed = write(docs, folder)
    except ReportError as exc:
        print(f"report: error: {exc}", file=sys.stderr)
        return 2
    for doc in changed:
        print(f"updated {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
