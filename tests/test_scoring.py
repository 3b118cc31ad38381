"""Uncertainty scoring on hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from curate.errors import InvalidInputError
from curate.scoring import (
    aggregate,
    entropy,
    frame_scores,
    least_confidence,
    margin,
    mutual_information,
    scores_table,
)


def test_entropy_hand_values() -> None:
    assert entropy(np.full(4, 0.25)) == pytest.approx(math.log(4))
    assert entropy(np.array([1.0, 0.0, 0.0])) == 0.0  # 0 log 0 = 0, no NaN
    assert entropy(np.array([0.5, 0.5])) == pytest.approx(math.log(2))
    p = np.array([0.7, 0.2, 0.1])
    assert entropy(p) == pytest.approx(-(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)))


def test_margin_and_least_confidence() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]])
    np.testing.assert_allclose(margin(p), [0.5, 0.0])
    np.testing.assert_allclose(least_confidence(p), [0.3, 0.6])
    assert margin(np.array([[0.9]]))[0] == pytest.approx(0.9)


def test_mutual_information() -> None:
    same = np.tile(np.array([[0.6, 0.3, 0.1]]), (5, 1))
    assert mutual_information(same) == pytest.approx(0.0, abs=1e-12)  # identical members
    split = np.array([[1.0, 0.0], [0.0, 1.0]])  # confident, disagreeing members
    assert mutual_information(split) == pytest.approx(math.log(2))
    members = np.array([[0.8, 0.2], [0.4, 0.6]])
    want = entropy(np.array([0.6, 0.4])) - (entropy(members[0]) + entropy(members[1])) / 2
    assert mutual_information(members) == pytest.approx(want)


def test_aggregate_and_empty() -> None:
    assert aggregate(np.array([1.0, 3.0]), "mean") == 2.0
    assert aggregate(np.array([1.0, 3.0]), "max") == 3.0
    assert aggregate(np.array([1.0, 3.0]), "sum") == 4.0
    for how in ("mean", "max", "sum"):
        assert aggregate(np.array([]), how) == 0.0
    with pytest.raises(InvalidInputError, match="aggregate"):
        aggregate(np.array([1.0]), "median")


def test_frame_scores_single_model() -> None:
    frames = [
        np.array([[0.25, 0.25, 0.25, 0.25], [0.97, 0.01, 0.01, 0.01]]),
        np.zeros((0, 4)),
        np.array([[0.1, 0.6, 0.3, 0.0]]),
    ]
    cols = frame_scores(frames, class_names=["Car", "Ped", "Cyc", "bg"], background_index=3)
    h_uniform = math.log(4)
    h_conf = entropy(frames[0][1])
    np.testing.assert_allclose(cols["entropy_mean"], [(h_uniform + h_conf) / 2, 0, entropy(frames[2][0])])
    np.testing.assert_allclose(cols["entropy_max"], [h_uniform, 0, entropy(frames[2][0])])
    np.testing.assert_allclose(cols["entropy_sum"], [h_uniform + h_conf, 0, entropy(frames[2][0])])
    np.testing.assert_array_equal(cols["n_boxes"], [2, 0, 1])
    np.testing.assert_array_equal(cols["box_count"], [1, 0, 1])  # 0.25 < 0.5 threshold
    np.testing.assert_allclose(cols["margin_min"], [0.0, 1.0, 0.3])
    np.testing.assert_allclose(cols["least_confidence_max"], [0.75, 0.0, 0.4])
    # per class: the uniform box is predicted Car (first foreground max), the other Car too
    np.testing.assert_allclose(cols["entropy_max__Car"], [h_uniform, 0, 0])
    np.testing.assert_allclose(cols["entropy_max__Ped"], [0, 0, entropy(frames[2][0])])
    np.testing.assert_array_equal(cols["box_count__Car"], [1, 0, 0])
    assert "entropy_max__bg" not in cols and "mutual_information_mean" not in cols


def test_frame_scores_ensemble_and_table() -> None:
    agree = np.tile(np.array([[[0.9, 0.1]]]), (3, 1, 1))  # (S=3, 1 box, 2 classes)
    disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    per_frame = np.array([[0.8, 0.2], [0.4, 0.6]])  # (S, C) aggregated per frame
    cols = frame_scores([agree, disagree, per_frame], ensemble=True)
    np.testing.assert_allclose(cols["mutual_information_max"], [0.0, math.log(2), mutual_information(per_frame)], atol=1e-12)
    np.testing.assert_allclose(cols["entropy_mean"][1], math.log(2))
    table = frame_scores([agree, disagree, per_frame], ensemble=True, as_table=True)
    assert isinstance(table, pa.Table) and table.num_rows == 3
    with_ids = scores_table(cols, ids=["a", "b", "c"])
    assert with_ids.column_names[0] == "id" and with_ids["id"].to_pylist() == ["a", "b", "c"]


def test_frame_scores_box_scores_and_min_score() -> None:
    p = np.array([[0.6, 0.4], [0.5, 0.5], [0.9, 0.1]])
    cols = frame_scores([p], box_scores=[np.array([0.9, 0.2, 0.05])], min_box_score=0.1)
    assert cols["n_boxes"][0] == 2 and cols["box_count"][0] == 1
    assert cols["entropy_max"][0] == pytest.approx(math.log(2))


def test_frame_scores_errors_name_the_frame() -> None:
    good = np.array([[0.5, 0.5]])
    with pytest.raises(InvalidInputError, match="frame 1: .*sum to"):
        frame_scores([good, np.array([[0.5, 0.9]])])
    sig = frame_scores([good, np.array([[0.5, 0.5]])], renormalize=True)
    assert sig["entropy_max"][1] == pytest.approx(math.log(2))
    with pytest.raises(InvalidInputError, match="frame 1: 3 classes"):
        frame_scores([good, np.array([[0.2, 0.3, 0.5]])])
    with pytest.raises(InvalidInputError, match=r"frame 0: .*\[0, 1\]"):
        frame_scores([np.array([[1.5, -0.5]])])
    with pytest.raises(InvalidInputError, match="ensemble=True"):
        frame_scores([np.ones((2, 1, 2)) / 2])
    with pytest.raises(InvalidInputError, match="NaN"):
        frame_scores([np.array([[np.nan, 1.0]])])
    with pytest.raises(InvalidInputError, match="background_index"):
        frame_scores([good], background_index=5)
    with pytest.raises(InvalidInputError, match="box_scores"):
        frame_scores([good], box_scores=[np.array([0.5, 0.5])])
