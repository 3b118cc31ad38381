"""Budgets are validated by one function (``curate.selectors.base.check_budget``) with one set
of messages, whether the workspace, a selector or the loop config meets them first."""

from __future__ import annotations

import numpy as np
import pytest

import curate
from curate.errors import BudgetError, InvalidInputError
from curate.loop import load_loop_config
from curate.selectors import KCenterGreedy, Random
from curate.selectors.base import check_budget


def _message(call) -> tuple[type, str]:
    with pytest.raises(InvalidInputError) as info:
        call()
    return type(info.value), str(info.value)


def test_check_budget_cases() -> None:
    assert check_budget(3) == 3 and check_budget(np.int64(4), 4) == 4 and check_budget(0, 0) == 0
    assert type(check_budget(np.int64(2))) is int
    for bad in ("5", 2.5, None, True, np.bool_(True)):
        kind, text = _message(lambda: check_budget(bad))
        assert kind is InvalidInputError and text.startswith("budget must be an integer; got")
    assert _message(lambda: check_budget(-1)) == (BudgetError, "budget must be a non-negative integer; got -1")
    assert _message(lambda: check_budget(0, minimum=1, name="initial")) == (
        BudgetError, "initial must be an integer >= 1; got 0")
    assert _message(lambda: check_budget(5, 3, pool="unlabeled frames")) == (
        BudgetError, "budget 5 is larger than the 3 unlabeled frames; lower the budget to at most 3 "
        "or widen the filter")
    assert _message(lambda: check_budget(1, 0, pool="unlabeled frames")) == (
        BudgetError, "there are no unlabeled frames to select from (budget 1)")


def test_workspace_and_selectors_share_the_messages(ws: curate.Workspace) -> None:
    n = ws.count()
    runs = len(ws.runs())
    expected = _message(lambda: check_budget(n + 1, n, pool="unlabeled frames"))
    assert _message(lambda: ws.select("random", n + 1, embedding="bev-hist")) == expected
    assert "--" not in expected[1]  # library messages do not speak CLI
    where = "frame_index < 0"
    assert _message(lambda: ws.select("random", 1, embedding="bev-hist", where=where)) == _message(
        lambda: check_budget(1, 0, pool=f"unlabeled frames matching {where!r}"))
    # type and sign are refused before anything is read, with the selectors' own messages
    for bad in (-1, "3", True):
        assert _message(lambda: ws.select("kcenter", bad, embedding="nope")) == _message(
            lambda: check_budget(bad))
        assert _message(lambda: Random().select(np.zeros((4, 2), np.float32), bad)) == _message(
            lambda: check_budget(bad))
    pool = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    assert _message(lambda: KCenterGreedy().select(pool, 11)) == _message(
        lambda: check_budget(11, 10, pool="unlabeled candidates among the 10 rows"))
    assert len(ws.runs()) == runs


@pytest.mark.parametrize("field", ["budget", "initial"])
def test_loop_config_budgets_use_the_same_check(field: str) -> None:
    with pytest.raises(BudgetError) as info:
        load_loop_config({"embedding": "e", field: 0})
    assert str(info.value) == f"{field} must be an integer >= 1; got 0"
    with pytest.raises(InvalidInputError, match=field):
        load_loop_config({"embedding": "e", field: "many"})
    assert getattr(load_loop_config({"embedding": "e", field: 3}), field) == 3
