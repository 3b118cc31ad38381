"""The loop's held-out validation split: whole scenes, seeded, representative of the classes."""

from __future__ import annotations

import numpy as np

from curate.loop.config import load_loop_config
from curate.loop.runner import validation_ids


def _scene_ids(ws, scene: str) -> list[str]:
    return [str(i) for i in ws.store.ids("samples", where=f"scene = '{scene}'")]


def test_split_is_whole_scenes_and_seeded(ws) -> None:
    cfg = load_loop_config(None, embedding="bev-hist", val_fraction=0.1, seed=3)
    val, pool_where = validation_ids(ws, cfg)
    assert validation_ids(ws, cfg) == (val, pool_where)
    scenes = set(ws.frames(ids=val, columns=["scene"])["scene"].to_pylist())
    assert sorted(val) == sorted(i for s in scenes for i in _scene_ids(ws, s))
    pool = set(map(str, ws.store.ids("samples", where=pool_where)))
    assert not pool & set(val) and len(pool) + len(val) == ws.store.count("samples")


def test_a_scene_without_cars_is_not_the_whole_validation_split(ws) -> None:
    cfg = load_loop_config(None, embedding="bev-hist", val_fraction=0.1, seed=0)
    # the scene the seeded shuffle holds out first loses its cars: a split of it alone would
    # make every round's Car AP zero whatever the strategy
    names = np.unique(np.asarray(ws.frames(columns=["scene"])["scene"].to_pylist(), dtype=object))
    first = str(names[np.random.default_rng(cfg.seed).permutation(len(names))[0]])
    ids = _scene_ids(ws, first)
    quoted = ", ".join(f"'{i}'" for i in ids)
    assert ws.store.count("labels", where=f"type = 'Car' AND frame_id IN ({quoted})") > 0
    ws.store.delete("labels", where=f"type = 'Car' AND frame_id IN ({quoted})")
    val, _ = validation_ids(ws, cfg)
    cars_val = ws.boxes(val, labeled_only=False)["type"].to_pylist().count("Car")
    cars_all = ws.store.count("labels", where="type = 'Car'")
    assert first not in set(ws.frames(ids=val, columns=["scene"])["scene"].to_pylist())
    assert cars_val >= 0.5 * cfg.val_fraction * cars_all > 0
