"""index.ids: hashed id joins equal a brute-force reference (ties, duplicates, empty, unicode)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from index import ids as I

_ALPHABET = ["a", "b", "é", "日本", "a b", "'q'", "", "ß", "e\u0301", "🚗"]


def _brute_isin(values, members):
    return np.array([any(v == m for m in members) for v in values], dtype=bool)


def _brute_positions(values, members):
    out = []
    for v in values:
        pos = -1
        for k, m in enumerate(members):
            if m == v:
                pos = k
                break
        out.append(pos)
    return np.array(out, dtype=np.int64)


def _random_ids(rng, n):
    return ["".join(rng.choice(_ALPHABET, size=int(rng.integers(1, 3)))) for _ in range(n)]


@pytest.mark.parametrize("seed", range(25))
def test_joins_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    values = _random_ids(rng, int(rng.integers(0, 40)))
    members = _random_ids(rng, int(rng.integers(0, 40)))
    for form in (list, lambda x: np.asarray(x, dtype=object), lambda x: pa.array(x, pa.string()),
                 lambda x: pa.chunked_array([pa.array(x, pa.string())])):
        v, m = form(values), form(members)
        np.testing.assert_array_equal(I.isin(v, m), _brute_isin(values, members))
        np.testing.assert_array_equal(I.positions(v, m), _brute_positions(values, members))
        assert I.difference(v, m) == [x for x in values if x not in members]
        assert I.intersection(v, m) == [x for x in values if x in members]


def test_empty_sides_and_duplicates():
    assert I.isin([], ["a"]).shape == (0,)
    assert I.isin(["a", "a"], []).tolist() == [False, False]
    assert I.positions(["a", "b", "a"], ["b", "a", "a"]).tolist() == [1, 0, 1]
    assert I.difference(["x", "y", "x"], ["y", "y"]) == ["x", "x"]
    assert I.first_duplicate(["c", "a", "b", "a", "c"]) == "a"
    assert I.first_duplicate(["a", "b"]) is None
    assert I.first_duplicate([]) is None
    # unicode: composed and decomposed forms are different ids (no normalisation)
    assert I.isin(["é"], ["e\u0301"]).tolist() == [False]
    assert I.isin(np.array(["日本", "x"]), ["日本"]).tolist() == [True, False]
    with pytest.raises(TypeError):
        I.isin("abc", ["a"])


def test_large_join_is_linear_shape():
    n = 200_000
    values = np.array([f"frame-{i:07d}" for i in range(n)], dtype=object)
    members = values[::-3]
    mask = I.isin(values, members)
    assert mask.sum() == members.size
    pos = I.positions(values[:10], members)
    assert all((p == -1) == (not mask[i]) for i, p in enumerate(pos))
