"""The data-source registry: source kind -> reader class and the options it takes.

A source is added by one module and one registration: decorate the reader class with
:func:`register_source`, naming its kind and its string options (constructor keywords besides
``root``). Everything else comes from the registry:

* the HTTP body :class:`~curate.api.SourceSpec` accepts any registered kind and its options;
* the server builds the reader with :func:`build_source` (after confining ``root`` to its data
  roots);
* the HTTP client turns a reader object into a spec with :func:`spec_of`;
* the CLI has one ``curate ingest KIND ROOT`` command per kind, with one flag per option.

The registry holds classes, not dotted paths; it imports no source module (the built-in ones
register themselves when :mod:`curate.sources` is imported, which Python does before it imports
this module, see :func:`sources`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, TypeVar

from curate.errors import InvalidInputError, NotFoundError

__all__ = ["SourceOption", "SourceType", "SOURCES", "register_source", "sources", "list_sources",
           "source_type", "build_source", "spec_of"]

logger = logging.getLogger(__name__)

_C = TypeVar("_C", bound=type)

#: Longest option value accepted (options are names, versions, prefixes and glob patterns).
MAX_OPTION_LENGTH = 256


@dataclass(frozen=True)
class SourceOption:
    """One string option of a source (a constructor keyword).

    Attributes
    ----------
    default : str or None
    help : str
        One line for ``--help``.
    """

    default: Optional[str] = None
    help: str = ""


@dataclass(frozen=True)
class SourceType:
    """A registered source kind.

    Attributes
    ----------
    kind : str
        Name used at the edges (``curate ingest KIND``, ``SourceSpec.kind``).
    cls : type
        The reader class, called as ``cls(root, **options)``.
    options : mapping of str -> SourceOption
        Its string options; each is also an attribute of a reader object (read by :func:`spec_of`).
    summary : str
        First line of the class docstring (``curate ingest --help``).
    """

    kind: str
    cls: type
    options: Mapping[str, SourceOption] = field(default_factory=dict)
    summary: str = ""


#: Registry: kind -> source type (filled by :func:`register_source`).
SOURCES: dict[str, SourceType] = {}


def register_source(kind: str, **options: SourceOption) -> Callable[[_C], _C]:
    """Class decorator registering a reader class as the source ``kind``.

    Raises
    ------
    InvalidInputError
        Another class already holds ``kind``.
    """

    def register(cls: _C) -> _C:
        held = SOURCES.get(kind)
        if held is not None and held.cls is not cls:
            raise InvalidInputError(f"source kind {kind!r} is taken by {held.cls.__name__}; choose another")
        summary = (cls.__doc__ or "").strip().split("\n")[0]
        SOURCES[kind] = SourceType(kind, cls, dict(options), summary)
        return cls

    return register


def sources() -> dict[str, SourceType]:
    """Every registered source kind.

    The built-in readers are registered before anyone can call this: importing this module runs
    ``curate/sources/__init__.py`` first (Python imports a package before its submodules), which
    imports the reader modules, whose decorators register them. So the registry imports no source
    module, and the import graph has no cycle.
    """
    return SOURCES


def list_sources() -> list[str]:
    """Registered source kinds, sorted."""
    return sorted(sources())


def source_type(kind: str) -> SourceType:
    """The source ``kind`` (NotFoundError listing the registered kinds)."""
    try:
        return sources()[kind]
    except KeyError:
        raise NotFoundError(f"unknown source kind {kind!r}; kinds: {', '.join(list_sources())}") from None


def check_options(kind: str, options: Mapping[str, Any]) -> dict[str, Optional[str]]:
    """The options of ``kind``: known names only, string values of at most 256 characters."""
    known = source_type(kind).options
    out: dict[str, Optional[str]] = {}
    for name, value in options.items():
        if name not in known:
            valid = ", ".join(sorted(known)) or "none"
            raise InvalidInputError(f"source kind {kind!r} takes no option {name!r}; its options: {valid}")
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= MAX_OPTION_LENGTH):
            raise InvalidInputError(
                f"source option {name!r} must be a string of 1 to {MAX_OPTION_LENGTH} characters, got {value!r}"
            )
        out[name] = value
    return out


def build_source(kind: str, root: Path | str, options: Mapping[str, Any]) -> Any:
    """The reader of ``kind`` over ``root`` (options not given take the reader's defaults)."""
    entry = source_type(kind)
    given = {k: v for k, v in check_options(kind, options).items() if v is not None}
    return entry.cls(root, **given)


def spec_of(source: Any) -> tuple[str, str, dict[str, Optional[str]]]:
    """``(kind, root, options)`` of a reader object of a registered class."""
    entries = sorted(sources().values(), key=lambda e: type(source) is not e.cls)  # exact class first
    for entry in entries:
        if isinstance(source, entry.cls):
            options = {name: getattr(source, name, None) for name in entry.options}
            return entry.kind, str(source.root), options
    raise InvalidInputError(
        f"{type(source).__name__} is not a registered source ({', '.join(list_sources())}); "
        "register its class with curate.sources.registry.register_source"
    )
