"""Selection holds the vectors once: no (N, d) temporaries in the input check, no pool-sized copy
in sharded selection's parent process (measured with tracemalloc, which sees numpy's buffers)."""

from __future__ import annotations


import numpy as np
import pytest
from memtrace import peak_extra  # tests/memtrace.py

from curate.errors import InvalidInputError
from curate.selectors import KCenterGreedy, Sharded
from curate.selectors.base import FINITE_CHECK_ROWS, validate_inputs


def test_finiteness_check_finds_every_bad_row_in_blocks() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2 * FINITE_CHECK_ROWS + 10, 16)).astype(np.float32)
    x[3, 5] = np.nan
    x[FINITE_CHECK_ROWS + 7, 0] = np.inf
    x[2 * FINITE_CHECK_ROWS + 9, 15] = -np.inf
    with pytest.raises(InvalidInputError, match=r"in 3 row\(s\), first at row 3"):
        validate_inputs(x, 1)
    # inf and -inf in one block sum to NaN: still found
    y = rng.standard_normal((100, 4)).astype(np.float32)
    y[10, 0], y[20, 1] = np.inf, -np.inf
    with pytest.raises(InvalidInputError, match=r"in 2 row\(s\), first at row 10"):
        validate_inputs(y, 1)


def test_finiteness_check_makes_no_pool_sized_temporary() -> None:
    x = np.random.default_rng(1).standard_normal((200_000, 64)).astype(np.float32)
    inp, extra = peak_extra(lambda: validate_inputs(x, 10))
    assert inp.vectors is x  # C-contiguous float32: no copy
    # an (N, d) boolean mask alone would be x.nbytes / 4; what remains is O(N) (mask, candidates)
    assert extra < x.nbytes / 8, extra


def test_sharded_worker_processes_do_not_copy_the_pool_in_the_parent() -> None:
    x = np.random.default_rng(2).standard_normal((200_000, 64)).astype(np.float32)
    labeled = np.zeros(x.shape[0], dtype=bool)
    labeled[:5] = True
    sel = Sharded(KCenterGreedy(), shards=16, workers=2, measure_loss=False)
    res, extra = peak_extra(lambda: sel.select(x, 40, labeled=labeled, seed=0))
    # all 16 shards submitted at once would hold a full copy of x (plus pickles) in the
    # parent; shards go to the workers as files written block by block, so no copy is held
    assert extra < 0.5 * x.nbytes, (extra, x.nbytes)
    ref = Sharded(KCenterGreedy(), shards=16, workers=1, measure_loss=False).select(
        x, 40, labeled=labeled, seed=0)
    assert np.array_equal(res.indices, ref.indices)
    assert np.array_equal(res.gains, ref.gains)


def test_sharded_keeps_a_float16_pool_float16_in_the_parent() -> None:
    x16 = np.random.default_rng(3).standard_normal((200_000, 64)).astype(np.float16)
    inp = validate_inputs(x16, 10, keep_float16=True)
    assert inp.vectors is x16  # no upcast copy
    assert validate_inputs(x16[:100], 10).vectors.dtype == np.float32  # the default upcasts
    sel = Sharded(KCenterGreedy(), shards=16, workers=2, measure_loss=False)
    res, extra = peak_extra(lambda: sel.select(x16, 40, seed=0))
    # a float32 copy of the pool alone would be 2 * x16.nbytes; the partition upcasts its
    # training sample and one block of rows at a time, the shards are written block by block
    assert extra < x16.nbytes, (extra, x16.nbytes)
    assert len(res.indices) == 40
