"""The scores table and score-driven selection (no detector needed)."""

from __future__ import annotations

import numpy as np
import pytest

from curate.errors import InvalidInputError, NotFoundError
from curate.loop.uncertainty import class_distribution, prediction_scores
from curate.scores_table import FramePrediction, read_predictions


def test_write_read_scores_and_select_topk(ws):
    ids = [str(i) for i in ws.store.ids("samples")]
    ws.label(ids[:5])
    pool = ids[5:]
    values = np.arange(len(pool), dtype=float)[::-1] / len(pool)  # first pool frame most uncertain
    ws.write_scores("pred-a", pool, {"entropy_mean": values, "box_count": np.ones(len(pool))})
    got_ids, cols = ws.scores("pred-a", ids=pool[::-1])
    assert list(got_ids) == pool[::-1]
    np.testing.assert_allclose(cols["entropy_mean"], values[::-1])
    sel = ws.select("topk", 3, embedding="bev-hist", score_run="pred-a", score="entropy_mean")
    assert sel.run.ids == pool[:3]
    assert sel.run.info["score_run"] == "pred-a"
    assert ws.reproduce(sel.run.run_id) == pool[:3]
    hybrid = ws.select("kcenter_weighted", 4, embedding="bev-hist", score_run="pred-a", score="entropy_mean")
    assert not set(hybrid.run.ids) & set(ids[:5])
    # rewriting the same score run later must not change what the stored selection reproduces
    ws.write_scores("pred-a", pool, {"entropy_mean": values[::-1].copy(), "box_count": np.ones(len(pool))})
    assert ws.select("topk", 3, embedding="bev-hist", score_run="pred-a", score="entropy_mean").run.ids == pool[-3:][::-1]
    assert ws.reproduce(sel.run.run_id) == pool[:3]


def test_scores_errors_leave_store_unchanged(ws):
    ids = [str(i) for i in ws.store.ids("samples")]
    with pytest.raises(InvalidInputError, match="needs uncertainty scores"):
        ws.select("topk", 3, embedding="bev-hist")
    with pytest.raises(NotFoundError, match="not frames"):
        ws.write_scores("p", ["nope"], {"x": [1.0]})
    assert ws.score_runs() == []
    ws.write_scores("p", ids[:3], {"x": [1.0, 2.0, 3.0]})
    with pytest.raises(NotFoundError, match="have no scores"):
        ws.select("topk", 2, embedding="bev-hist", score_run="p", score="x")
    with pytest.raises(NotFoundError, match="no scores stored"):
        ws.scores("other")


def test_prediction_scores_and_raw_predictions_roundtrip(ws):
    ids = [str(i) for i in ws.store.ids("samples")][:3]
    classes = ("Pedestrian", "Cyclist", "Car")
    preds = [
        FramePrediction(ids[0], np.zeros((0, 7)), np.zeros(0, int), np.zeros(0), np.zeros((0, 3)), classes),
        FramePrediction(ids[1], np.ones((1, 7)), np.array([2]), np.array([0.95]), np.array([[0.01, 0.01, 0.95]]), classes),
        FramePrediction(ids[2], np.ones((2, 7)), np.array([2, 0]), np.array([0.4, 0.35]),
                        np.array([[0.1, 0.05, 0.4], [0.35, 0.3, 0.1]]), classes),
    ]
    cols = prediction_scores(preds, classes)
    assert cols["entropy_mean"][0] == 0.0 and cols["n_boxes"].tolist() == [0, 1, 2]
    assert cols["entropy_mean"][2] > cols["entropy_mean"][1] > 0  # weak ambiguous boxes rank first
    dist = class_distribution(np.array([[0.1, 0.05, 0.4]]))
    np.testing.assert_allclose(dist.sum(), 1.0)
    np.testing.assert_allclose(dist[0, 3] / dist[0, 2], 0.9 * 0.95 * 0.6 / 0.4)
    ws.write_scores("pr", ids, cols, predictions=preds)
    back = read_predictions(ws.store, "pr", ids)
    np.testing.assert_allclose(back[2].probs, preds[2].probs, atol=1e-6)
    assert back[0].boxes.shape == (0, 7)
    # ensembles: identical members carry no mutual information, disagreeing ones do
    same = [FramePrediction(p.frame_id, p.boxes, p.labels, p.scores, p.probs, classes,
                            member_probs=np.stack([p.probs, p.probs])) for p in preds]
    assert np.allclose(prediction_scores(same, classes)["mutual_information_max"], 0.0)
    apart = [FramePrediction(p.frame_id, p.boxes, p.labels, p.scores, p.probs, classes,
                             member_probs=np.stack([p.probs, p.probs[:, ::-1]])) for p in preds]
    assert prediction_scores(apart, classes)["mutual_information_max"][2] > 0.01
