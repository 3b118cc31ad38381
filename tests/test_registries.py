"""Embedders, selectors and data sources share one registry style.

Each is a name -> object registry filled by one registration (a call, or a decorator on the
definition); a taken name is refused with an error naming its holder; an unknown name is refused
with an error listing the valid ones; the registered object is then usable by name.
"""

from __future__ import annotations

import numpy as np
import pytest

from curate.errors import InvalidInputError, NotFoundError
from curate.selectors import SELECTORS, Selector, create_selector, list_selectors, register_selector
from curate.sources.registry import SOURCES, list_sources, register_source, source_type
from embedders import EmbedderError, create_embedder, list_embedders, register_embedder
from embedders._registry import _REGISTRY as EMBEDDERS


def test_selector_registered_by_decorator_is_usable_by_name() -> None:
    @register_selector(name="test-first-rows")
    class FirstRows(Selector):
        name = "test-first-rows"

        def select(self, vectors, budget, **kwargs):  # pragma: no cover - not called
            return np.arange(budget)

    try:
        assert "test-first-rows" in list_selectors()
        assert isinstance(create_selector("test-first-rows"), FirstRows)
        with pytest.raises(InvalidInputError, match="taken by FirstRows"):
            register_selector(type("Other", (FirstRows,), {}), name="test-first-rows")
        assert register_selector(FirstRows, name="test-first-rows") is FirstRows  # idempotent
    finally:
        SELECTORS.pop("test-first-rows", None)
    with pytest.raises(NotFoundError, match="valid strategies: .*kcenter"):
        create_selector("test-first-rows")


def test_embedder_registered_by_decorator_is_usable_by_name() -> None:
    base = create_embedder("bev-hist")

    @register_embedder("test-bev-copy")
    def bev_copy(**options):
        return create_embedder("bev-hist", **options)

    try:
        assert "test-bev-copy" in list_embedders()
        assert create_embedder("test-bev-copy").dim == base.dim
        with pytest.raises(EmbedderError, match="already registered"):
            register_embedder("test-bev-copy", lambda **o: base)
        assert register_embedder("test-bev-copy", bev_copy) is bev_copy  # idempotent
    finally:
        EMBEDDERS.pop("test-bev-copy", None)
    with pytest.raises(EmbedderError, match="valid names: .*bev-hist"):
        create_embedder("test-bev-copy")


def test_source_registered_by_decorator_is_known_by_kind() -> None:
    @register_source("test-empty")
    class EmptySource:
        """A source of no frames."""

        def __init__(self, root):
            self.root = root

    try:
        assert "test-empty" in list_sources()
        assert source_type("test-empty").cls is EmptySource
        with pytest.raises(InvalidInputError, match="taken by EmptySource"):
            register_source("test-empty")(type("Other", (), {}))
    finally:
        SOURCES.pop("test-empty", None)
    with pytest.raises(NotFoundError, match="kinds: .*kitti"):
        source_type("test-empty")
