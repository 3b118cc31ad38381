"""Judge embeddings on a user's own pool: retrieval, metadata agreement, duplicates, linear probes.

``evaluate_embeddings(ws, names)`` (also ``Workspace.evaluate_embeddings`` and
``curate eval-embeddings``) reads the vectors of several embeddings, the frames' drive / frame
index / metadata and, when present, their boxes, and returns one
:class:`curate.api.EmbeddingEvaluation`: a table with one column per embedding plus a ``prior``
column (what a vector that carries no information scores). Only public workspace methods are used
(``vectors``, ``frames``, ``boxes``), so the same code runs on a local or a remote workspace.

Metrics (``k`` neighbours by cosine of centred vectors, FAISS exact inner product):

Without labels

* ``near-dup R@k``: temporal near-duplicate recall. For a frame, its positives are the other frames
  of the same drive within ``window`` frame indices; recall = hits in the ``k`` nearest / min(
  positives, k), averaged over frames with a positive. NOTE: an encoder pretrained with temporal
  positives (``curate pretrain``'s contrast term uses +-5 frames) is trained on this very signal.
* ``other-drive share@k``: share of the ``k`` nearest frames that come from another drive (low =
  the embedding mostly recognises its drive).
* ``cos nearest same drive`` / ``cos nearest other drive``: medians over frames of the cosine to
  the nearest frame of the same drive and of any other drive.
* ``revisit R@k`` (only when every frame has a place and a position, e.g. the synthetic generator's
  ``shared_maps`` metadata ``map`` / ``map_position_m``): for a frame, positives are frames of
  OTHER drives at the same place within ``revisit_radius`` metres; neighbours are searched among
  other drives only. This is retrieval that no temporal training positive covers.
* ``agree <column>``: kNN agreement with a metadata column: the majority value of the ``k``
  nearest frames **from other drives** (neighbours of the same drive share every drive-level
  attribute, so allowing them measures drive recognition) equals the frame's own value.
  Prior: the share of the most frequent value.
* ``dup clusters`` / ``dup frames`` / ``dup cross-drive clusters``: connected components of the
  graph joining each frame to those of its ``k`` nearest with cosine >= ``duplicate_threshold``
  (components of size >= 2, the frames in them, those spanning several drives).

With labels (boxes of frames marked labeled, or every box with ``labels="all"``)

* Linear probes, closed-form ridge regression on the centred, L2-normalised vectors, trained on the
  frames of a seeded ``1 - test_fraction`` share of the drives and scored on the held-out drives
  (never a drive on both sides). The ridge strength is chosen from a grid by a 2-fold split of the
  training drives (by drive again), never on the held-out drives. ``presence acc`` / ``presence
  AUC``: per class, does the frame hold at least one box of it (score >= 0.5; ROC AUC of the score),
  averaged over classes; ``count MAE`` / ``count R2``: boxes per class. Prior: the training
  majority / chance AUC 0.5 / the training mean.

Cost: time O(N^2 d) for the exact kNN (FAISS, chunked), memory O(N (d + k)); no N x N matrix.
Positives are counted with sorted searches (O(N log N)); probes O(N d^2 + d^3).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from curate.api import EmbeddingEvaluation
from curate.errors import InvalidInputError
from curate.interface import WorkspaceAPI

logger = logging.getLogger(__name__)

#: Metadata columns judged by default (those of the samples table that are set).
DEFAULT_COLUMNS: tuple[str, ...] = ("time_of_day", "weather", "location")
#: Ridge strengths tried by the probes (chosen on the training drives only).
RIDGE_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
_CHUNK = 4096


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss is a core dependency
        raise ImportError("embedding evaluation needs faiss: pip install faiss-cpu") from exc
    return faiss


# ------------------------------------------------------------------------------------ vectors
def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Centred, L2-normalised float32 copy of ``vectors`` (cosine = inner product). O(N d)."""
    x = np.asarray(vectors, dtype=np.float32)
    x = np.ascontiguousarray(x - x.mean(axis=0, dtype=np.float64).astype(np.float32))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, np.maximum(norms, 1e-12), out=x)
    return x


def _drop_self(found: np.ndarray, sims: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own row from ``k + 1`` results (the last column when it is absent)."""
    is_self = found == rows[:, None]
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True  # self not found (exact ties): drop the farthest instead
    keep = ~is_self
    return found[keep].reshape(len(found), k), sims[keep].reshape(len(found), k)


def knn_all(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, sims)`` of the ``k`` nearest other rows of unit rows ``x``; ``-1`` pads.

    FAISS ``IndexFlatIP`` searched in chunks of queries: memory O(N k), no N x N matrix.
    """
    faiss = _faiss()
    n = len(x)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    k1 = min(k + 1, n)
    idx = np.full((n, k), -1, dtype=np.int64)
    sim = np.full((n, k), -np.inf, dtype=np.float32)
    for s in range(0, n, _CHUNK):
        q = x[s : s + _CHUNK]
        d, f = index.search(q, k1)
        if k1 < k + 1:  # fewer rows than k + 1: pad
            f = np.pad(f, ((0, 0), (0, k + 1 - k1)), constant_values=-1)
            d = np.pad(d, ((0, 0), (0, k + 1 - k1)), constant_values=-np.inf)
        f, d = _drop_self(f, d, np.arange(s, s + len(q)), k)
        idx[s : s + len(q)], sim[s : s + len(q)] = f, d
    return idx, sim


def knn_by_drive(x: np.ndarray, bounds: np.ndarray, k: int, *, same: bool) -> tuple[np.ndarray, np.ndarray]:
    """Nearest rows restricted to the query's own drive (``same``) or to the other drives.

    ``x`` is sorted by drive and ``bounds`` holds the drive boundaries (``bounds[i]:bounds[i+1]``
    are the rows of drive ``i``). Searches use a FAISS ID selector (a row range, or its
    complement), so memory stays O(N k). Same-drive results exclude the query itself.
    """
    faiss = _faiss()
    n = len(x)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    idx = np.full((n, k), -1, dtype=np.int64)
    sim = np.full((n, k), -np.inf, dtype=np.float32)
    for a, b in zip(bounds[:-1], bounds[1:]):
        a, b = int(a), int(b)
        inside = faiss.IDSelectorRange(a, b)
        selector = inside if same else faiss.IDSelectorNot(inside)
        kk = k + 1 if same else k
        params = faiss.SearchParameters(sel=selector)
        for s in range(a, b, _CHUNK):
            q = x[s : min(b, s + _CHUNK)]
            d, f = index.search(q, kk, params=params)
            if same:
                f, d = _drop_self(f, d, np.arange(s, s + len(q)), k)
            idx[s : s + len(q)], sim[s : s + len(q)] = f, d
    sim[idx < 0] = -np.inf
    return idx, sim


# ------------------------------------------------------------------------------------ metrics
def _count_within(group: np.ndarray, value: np.ndarray, radius: float) -> np.ndarray:
    """For each row, rows with the same ``group`` code and ``|value - value_row| <= radius``.

    Sort once by ``(group, value)``, then two binary searches per row: O(N log N).
    """
    order = np.lexsort((value, group))
    g, v = group[order], value[order].astype(np.float64)
    out_sorted = np.empty(len(g), dtype=np.int64)
    # within each group, values are sorted: search the group's slice
    bounds = np.flatnonzero(np.r_[True, g[1:] != g[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        seg = v[a:b]
        out_sorted[a:b] = (np.searchsorted(seg, seg + radius, side="right")
                           - np.searchsorted(seg, seg - radius, side="left"))
    out = np.empty_like(out_sorted)
    out[order] = out_sorted
    return out


def temporal_recall(idx: np.ndarray, drive: np.ndarray, frame: np.ndarray, window: int) -> float:
    """Recall@k of same-drive frames within ``window`` frame indices (see module docstring)."""
    k = idx.shape[1]
    valid_n = idx >= 0
    safe = np.where(valid_n, idx, 0)
    hits = (valid_n & (drive[safe] == drive[:, None])
            & (np.abs(frame[safe] - frame[:, None]) <= window)).sum(axis=1)
    positives = _count_within(drive, frame, window) - 1
    has = positives > 0
    if not has.any():
        return float("nan")
    return float((hits[has] / np.minimum(positives[has], k)).mean())


def revisit_recall(idx_other: np.ndarray, drive: np.ndarray, place: np.ndarray,
                   position: np.ndarray, radius: float) -> tuple[float, int]:
    """Recall@k of frames of other drives at the same place within ``radius``; and the query count.

    ``idx_other`` are neighbours searched among other drives only.
    """
    k = idx_other.shape[1]
    valid_n = idx_other >= 0
    safe = np.where(valid_n, idx_other, 0)
    hits = (valid_n & (place[safe] == place[:, None])
            & (np.abs(position[safe] - position[:, None]) <= radius)).sum(axis=1)
    # same place (any drive) minus same place and same drive
    n_place = _count_within(place, position, radius)
    pair = np.unique(np.stack([place, drive], axis=1), axis=0, return_inverse=True)[1].ravel()
    n_same = _count_within(pair, position, radius)
    positives = n_place - n_same
    has = positives > 0
    if not has.any():
        return float("nan"), 0
    return float((hits[has] / np.minimum(positives[has], k)).mean()), int(has.sum())


def row_mode(codes: np.ndarray) -> np.ndarray:
    """Most frequent non-negative code per row (ties: the smallest); ``-1`` entries are ignored.

    Vectorised over rows: sort each row, then run lengths column by column. O(N k log k).
    """
    n, k = codes.shape
    big = int(codes.max(initial=0)) + 1
    c = np.where(codes >= 0, codes, big + np.arange(k)[None, :])  # missing: distinct, sort last
    s = np.sort(c, axis=1)
    run = np.ones((n, k), dtype=np.int64)
    for j in range(1, k):
        run[:, j] = np.where(s[:, j] == s[:, j - 1], run[:, j - 1] + 1, 1)
    run[s >= big] = 0
    best = np.argmax(run, axis=1)
    mode = s[np.arange(n), best]
    mode[run[np.arange(n), best] == 0] = -1
    return mode


def agreement(idx_other: np.ndarray, codes: np.ndarray) -> float:
    """Share of frames whose other-drive kNN majority equals their own value (``codes >= 0``)."""
    valid_n = idx_other >= 0
    neigh = np.where(valid_n, codes[np.where(valid_n, idx_other, 0)], -1)
    vote = row_mode(neigh)
    known = codes >= 0
    return float((vote[known] == codes[known]).mean()) if known.any() else float("nan")


def duplicate_clusters(idx: np.ndarray, sim: np.ndarray, drive: np.ndarray,
                       threshold: float) -> dict[str, float]:
    """Components of the graph of kNN pairs with cosine >= ``threshold`` (sizes >= 2)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(idx)
    rows, cols = np.nonzero((sim >= threshold) & (idx >= 0))
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, idx[rows, cols])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    sizes = np.bincount(label)
    multi = sizes >= 2
    members = multi[label]
    # clusters spanning several drives: distinct (label, drive) pairs per label
    pairs = np.unique(np.stack([label[members], drive[members]], axis=1), axis=0)
    spans = np.bincount(pairs[:, 0], minlength=len(sizes)) if len(pairs) else np.zeros(len(sizes))
    return {
        "dup clusters": float(multi.sum()),
        "dup frames": float(members.sum()),
        "dup largest": float(sizes.max()) if multi.any() else 0.0,
        "dup cross-drive clusters": float((spans >= 2).sum()),
    }


# ------------------------------------------------------------------------------------ probes
@dataclass
class ProbeResult:
    """Held-out scores of the presence and count probes, and the ridge strengths chosen."""

    presence_acc: float
    presence_auc: float
    count_mae: float
    count_r2: float
    lam_presence: float
    lam_count: float


def _ridge_path(x: np.ndarray, y: np.ndarray, lams: Sequence[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ridge ``(W, b)`` for every ``lam``: one eigendecomposition of the centred Gram matrix.

    O(N d min(N, d) + min(N, d)^3) time: the ``d x d`` covariance when ``N >= d``, else the
    ``N x N`` kernel (``W = X^T (X X^T + lam N I)^-1 Y``, the same solution). ``lam`` is scaled by
    the number of rows.
    """
    mx, my = x.mean(axis=0), y.mean(axis=0)
    xc = (x - mx).astype(np.float64)
    if len(x) < x.shape[1]:
        evals, evecs = np.linalg.eigh(xc @ xc.T)
        proj = evecs.T @ (y - my)
        out = []
        for lam in lams:
            alpha = evecs @ (proj / (np.maximum(evals, 0.0) + lam * len(x))[:, None])
            w = xc.T @ alpha
            out.append((w, my - mx @ w))
        return out
    gram = xc.T @ xc
    evals, evecs = np.linalg.eigh(gram)
    proj = evecs.T @ (xc.T @ (y - my))
    out = []
    for lam in lams:
        w = evecs @ (proj / (np.maximum(evals, 0.0) + lam * len(x))[:, None])
        out.append((w, my - mx @ w))
    return out


def _choose_lambda(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int) -> float:
    """Ridge strength with the lowest mean squared error over a 2-fold split of ``groups``."""
    uniq = np.unique(groups)
    if len(uniq) < 2:
        return 1.0
    perm = np.random.default_rng(seed).permutation(uniq)
    fold_of = {g: i % 2 for i, g in enumerate(perm)}
    fold = np.array([fold_of[g] for g in groups])
    errors = np.zeros(len(RIDGE_GRID))
    for f in (0, 1):
        tr, va = fold != f, fold == f
        for j, (w, b) in enumerate(_ridge_path(x[tr], y[tr], RIDGE_GRID)):
            errors[j] += float(((x[va] @ w + b - y[va]) ** 2).mean())
    return float(RIDGE_GRID[int(np.argmin(errors))])


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by ranks (ties averaged); NaN when ``y`` holds one class. O(n log n)."""
    y = np.asarray(y, dtype=bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(score)
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def probes(x: np.ndarray, counts: np.ndarray, drive: np.ndarray, train: np.ndarray,
           seed: int = 0) -> tuple[ProbeResult, ProbeResult]:
    """Presence and count probes on ``x``, trained on rows ``train``, scored on the others.

    Returns ``(embedding result, prior result)``. ``counts`` is ``(N, classes)`` boxes per class.
    """
    test = ~train
    presence = (counts > 0).astype(np.float64)
    out = []
    lam_p = _choose_lambda(x[train], presence[train], drive[train], seed)
    lam_c = _choose_lambda(x[train], counts[train], drive[train], seed)
    (wp, bp), = _ridge_path(x[train], presence[train], [lam_p])
    (wc, bc), = _ridge_path(x[train], counts[train], [lam_c])
    score_p = x[test] @ wp + bp
    pred_c = x[test] @ wc + bc
    prior_p = np.broadcast_to(presence[train].mean(axis=0), score_p.shape)
    prior_c = np.broadcast_to(counts[train].mean(axis=0), pred_c.shape)
    truth_p, truth_c = presence[test] > 0.5, counts[test]
    for sp, pc, lp, lc in ((score_p, pred_c, lam_p, lam_c), (prior_p, prior_c, float("nan"), float("nan"))):
        acc = float(((sp >= 0.5) == truth_p).mean())
        aucs = [roc_auc(truth_p[:, c], sp[:, c]) for c in range(truth_p.shape[1])]
        aucs = [a for a in aucs if a == a]
        mae = float(np.abs(pc - truth_c).mean())
        sst = ((truth_c - truth_c.mean(axis=0)) ** 2).sum(axis=0)
        sse = ((truth_c - pc) ** 2).sum(axis=0)
        ok = sst > 0
        r2 = float((1 - sse[ok] / sst[ok]).mean()) if ok.any() else float("nan")
        out.append(ProbeResult(acc, float(np.mean(aucs)) if aucs else float("nan"), mae, r2, lp, lc))
    return out[0], out[1]


def class_probe(x: np.ndarray, labels: np.ndarray, drive: np.ndarray, train: np.ndarray,
                seed: int = 0) -> tuple[float, float, float]:
    """Linear probe of a categorical label: one-hot ridge, arg-max; trained on ``train`` rows.

    Returns ``(held-out accuracy, prior accuracy, ridge strength)``; the prior answers the most
    frequent training value. The strength is chosen by a 2-fold drive split of the training rows.
    """
    uniq, code = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    code = code.ravel()
    onehot = np.eye(len(uniq))[code]
    lam = _choose_lambda(x[train], onehot[train], drive[train], seed)
    (w, b), = _ridge_path(x[train], onehot[train], [lam])
    test = ~train
    pred = np.argmax(x[test] @ w + b, axis=1)
    prior = np.bincount(code[train], minlength=len(uniq)).argmax()
    return float((pred == code[test]).mean()), float((code[test] == prior).mean()), lam


def split_drives(drives: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of training rows: a seeded ``1 - test_fraction`` share of the drives."""
    if not 0.0 < test_fraction < 1.0:
        raise InvalidInputError(f"test_fraction must be in (0, 1), got {test_fraction}")
    uniq, code = np.unique(np.asarray(drives), return_inverse=True)  # O(N log N)
    if len(uniq) < 2:
        raise InvalidInputError(
            f"linear probes hold out whole drives, but the frames come from {len(uniq)} drive; "
            "pass labels='none' or evaluate a pool with several drives")
    perm = np.random.default_rng(seed).permutation(len(uniq))
    n_test = min(len(uniq) - 1, max(1, int(round(test_fraction * len(uniq)))))
    is_test = np.zeros(len(uniq), dtype=bool)
    is_test[perm[:n_test]] = True
    return ~is_test[code.ravel()]


# ------------------------------------------------------------------------------------ entry
def _codes(values: Sequence[Any]) -> tuple[np.ndarray, int]:
    """Integer codes of ``values`` (``None`` / empty -> -1) and the number of distinct values."""
    arr = np.array(["" if v is None else str(v) for v in values], dtype=object)
    uniq, inv = np.unique(arr, return_inverse=True)
    codes = inv.astype(np.int64)
    if len(uniq) and uniq[0] == "":
        codes -= 1
        return codes, len(uniq) - 1
    return codes, len(uniq)


def evaluate_vectors(
    vectors: dict[str, np.ndarray],
    drive: np.ndarray,
    frame: np.ndarray,
    *,
    columns: Optional[dict[str, Sequence[Any]]] = None,
    counts: Optional[np.ndarray] = None,
    place: Optional[np.ndarray] = None,
    position: Optional[np.ndarray] = None,
    k: int = 10,
    window: int = 5,
    revisit_radius: float = 5.0,
    duplicate_threshold: float = 0.98,
    test_fraction: float = 0.3,
    train_mask: Optional[np.ndarray] = None,
    seed: int = 0,
) -> tuple[list[str], dict[str, dict[str, Optional[float]]], list[str]]:
    """Every metric for several embeddings of the same frames (arrays in, table out).

    Parameters
    ----------
    vectors : dict of str to ndarray
        Name -> ``(N, d)`` vectors, rows aligned with ``drive`` and ``frame``.
    drive, frame : ndarray
        Drive name and frame index per row.
    columns : dict, optional
        Metadata column name -> per-row values for ``agree <column>``.
    counts : ndarray, optional
        ``(N, classes)`` boxes per class of labeled rows (enables the probes).
    place, position : ndarray, optional
        Place id and position (metres along the place) per row (enables ``revisit R@k``).
    train_mask : ndarray, optional
        Rows the probes train on; default a seeded drive split (``test_fraction``).

    Returns
    -------
    (metrics, values, notes)
        Metric names in order, ``values[embedding or "prior"][metric]`` and notes.
    """
    if k < 1:
        raise InvalidInputError(f"k must be >= 1, got {k}")
    n = len(drive)
    if n < 2:
        raise InvalidInputError(f"evaluating embeddings needs at least 2 frames, got {n}")
    order = np.lexsort((frame, drive))  # rows sorted by drive, then frame
    drive_s = np.asarray(drive, dtype=object)[order]
    dcode, n_drives = _codes(drive_s)
    frame_s = np.asarray(frame, dtype=np.int64)[order]
    bounds = np.flatnonzero(np.r_[True, dcode[1:] != dcode[:-1], True])
    notes: list[str] = []
    col_codes = {name: _codes(np.asarray(list(vals), dtype=object)[order])[0]
                 for name, vals in (columns or {}).items()}
    have_places = place is not None and position is not None
    if have_places:
        pcode = _codes(np.asarray(place, dtype=object)[order])[0]
        pos_s = np.asarray(position, dtype=np.float64)[order]
        have_places = bool((pcode >= 0).all())
    if not have_places:
        notes.append("revisit R@k skipped: frames carry no place/position metadata "
                     "(the synthetic generator writes it with shared_maps=K)")
    if n_drives < 2:
        notes.append("cross-drive metrics skipped: one drive")
    metrics = [f"near-dup R@{k}", f"other-drive share@{k}", "cos nearest same drive",
               "cos nearest other drive"]
    if have_places:
        metrics.append(f"revisit R@{k}")
    metrics += [f"agree {c}" for c in col_codes]
    metrics += ["dup clusters", "dup frames", "dup cross-drive clusters"]
    probing = counts is not None and len(counts) and counts.shape[1] > 0
    if probing:
        counts_s = np.asarray(counts, dtype=np.float64)[order]
        labeled = ~np.isnan(counts_s).any(axis=1)
        if train_mask is not None:
            train = np.asarray(train_mask, dtype=bool)[order][labeled]
        elif len(set(dcode[labeled].tolist())) >= 2:
            train = split_drives(drive_s[labeled], test_fraction, seed)
        else:
            train = np.ones(int(labeled.sum()), dtype=bool)
        if train.all() or not train.any():
            probing = False
            notes.append("probes skipped: the labeled frames come from fewer than 2 drives or fall "
                         "on one side of the drive split (probes train and test on disjoint drives)")
        else:
            metrics += ["presence acc", "presence AUC", "count MAE", "count R2",
                        "ridge lambda presence", "ridge lambda count"]
    elif counts is None:
        notes.append("probes skipped: no labeled frames (label frames, or pass labels='all' "
                     "to use every box the source shipped)")
    values: dict[str, dict[str, Optional[float]]] = {}
    prior: dict[str, Optional[float]] = {m: None for m in metrics}
    for name, vec in vectors.items():
        if len(vec) != n:
            raise InvalidInputError(f"embedding {name!r}: {len(vec)} vectors for {n} frames")
        x = unit_rows(np.asarray(vec)[order])
        row: dict[str, Optional[float]] = {m: None for m in metrics}
        idx, sim = knn_all(x, k)
        row[f"near-dup R@{k}"] = temporal_recall(idx, dcode, frame_s, window)
        valid = idx >= 0
        row[f"other-drive share@{k}"] = float(((dcode[np.where(valid, idx, 0)] != dcode[:, None])
                                               & valid).sum() / max(valid.sum(), 1))
        _, same_sim = knn_by_drive(x, bounds, 1, same=True)
        finite = np.isfinite(same_sim[:, 0])
        row["cos nearest same drive"] = float(np.median(same_sim[finite, 0])) if finite.any() else None
        if n_drives >= 2:
            idx_o, sim_o = knn_by_drive(x, bounds, k, same=False)
            row["cos nearest other drive"] = float(np.median(sim_o[:, 0]))
            if have_places:
                row[f"revisit R@{k}"], queries = revisit_recall(idx_o, dcode, pcode, pos_s, revisit_radius)
                if not queries:
                    notes.append("revisit R@k: no frame has another drive within the radius")
            for c, codes in col_codes.items():
                row[f"agree {c}"] = agreement(idx_o, codes)
        row.update(duplicate_clusters(idx, sim, dcode, duplicate_threshold))
        row.pop("dup largest", None)
        if probing:
            mine, base = probes(x[labeled], counts_s[labeled], dcode[labeled], train, seed)
            row.update({"presence acc": mine.presence_acc, "presence AUC": mine.presence_auc,
                        "count MAE": mine.count_mae, "count R2": mine.count_r2,
                        "ridge lambda presence": mine.lam_presence,
                        "ridge lambda count": mine.lam_count})
            prior.update({"presence acc": base.presence_acc, "presence AUC": 0.5,
                          "count MAE": base.count_mae, "count R2": base.count_r2})
        values[name] = {m: (None if v is None or v != v else float(v)) for m, v in row.items()}
    for c, codes in col_codes.items():
        known = codes[codes >= 0]
        prior[f"agree {c}"] = float(np.bincount(known).max() / len(known)) if len(known) else None
    values["prior"] = {m: (None if v is None or v != v else float(v)) for m, v in prior.items()}
    return metrics, values, notes


def _frame_table(ws: WorkspaceAPI, where: Optional[str]) -> dict[str, list]:
    table = ws.frames(where=where, columns=["id", "scene", "frame_index", *DEFAULT_COLUMNS, "extra"])
    return table.to_pydict()


def evaluate_embeddings(
    ws: WorkspaceAPI,
    names: Sequence[str],
    *,
    k: int = 10,
    window: int = 5,
    columns: Optional[Sequence[str]] = None,
    labels: str = "labeled",
    where: Optional[str] = None,
    revisit: Sequence[str] = ("map", "map_position_m"),
    revisit_radius: float = 5.0,
    duplicate_threshold: float = 0.98,
    test_fraction: float = 0.3,
    seed: int = 0,
    out: Optional[str | Path] = None,
) -> EmbeddingEvaluation:
    """Evaluate several embeddings of a workspace side by side (see the module docstring).

    Parameters
    ----------
    ws : Workspace or RemoteWorkspace
        Only its public ``vectors``, ``frames`` and ``boxes`` methods are used.
    names : sequence of str
        Embedding names; frames present in all of them are evaluated.
    k, window : int
        Neighbours per frame; near-duplicate window in frame indices.
    columns : sequence of str, optional
        Metadata columns for ``agree <column>`` (sample columns or keys of the ``extra`` metadata);
        default ``time_of_day``, ``weather``, ``location`` where set.
    labels : {"labeled", "all", "none"}
        Probe targets: boxes of frames marked labeled, every box stored (e.g. ground truth shipped
        with the source), or no probes.
    where : str, optional
        Filter on ``samples`` restricting the frames.
    revisit : (str, str)
        Metadata keys of the place id and the position along it (metres) for ``revisit R@k``.
    out : path, optional
        Write the result as JSON there.

    Returns
    -------
    EmbeddingEvaluation
    """
    names = list(names)
    if not names:
        raise InvalidInputError("evaluate_embeddings: give at least one embedding name")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"evaluate_embeddings: embedding names repeat: {names}")
    if labels not in ("labeled", "all", "none"):
        raise InvalidInputError(f"labels must be 'labeled', 'all' or 'none', got {labels!r}")
    frames = _frame_table(ws, where)
    if not frames["id"]:
        raise InvalidInputError(f"no frames to evaluate (where={where!r})")
    loaded: dict[str, tuple[np.ndarray, np.ndarray]] = {n: ws.vectors(n) for n in names}
    ids = np.asarray(frames["id"], dtype=object)
    keep = np.sort(ids)
    for n, (vid, _) in loaded.items():
        keep = np.intersect1d(keep, np.asarray(vid, dtype=object), assume_unique=True)
    if len(keep) < 2:
        raise InvalidInputError(f"fewer than 2 frames have vectors in every one of {names}")
    notes: list[str] = []
    if len(keep) < len(ids):
        notes.append(f"{len(ids) - len(keep)} frames lack a vector in some embedding; evaluated "
                     f"the {len(keep)} frames present in all")
    # align frames and vectors on the sorted ids (sorted joins, O(N log N))
    frame_order = np.argsort(ids, kind="stable")
    pos = frame_order[np.searchsorted(ids[frame_order], keep)]
    vectors = {}
    for n, (vid, vec) in loaded.items():
        vid = np.asarray(vid, dtype=object)
        vo = np.argsort(vid, kind="stable")
        vectors[n] = np.asarray(vec)[vo[np.searchsorted(vid[vo], keep)]]
    extra = [json.loads(frames["extra"][i]) if frames["extra"][i] else {} for i in pos]
    drive = np.asarray([frames["scene"][i] for i in pos], dtype=object)
    frame = np.asarray([frames["frame_index"][i] for i in pos], dtype=np.int64)
    wanted = list(columns) if columns is not None else [
        c for c in DEFAULT_COLUMNS if any(frames[c][i] is not None for i in pos)]
    meta: dict[str, list] = {}
    for c in wanted:
        if c in frames:
            meta[c] = [frames[c][i] for i in pos]
        elif any(c in e for e in extra):
            meta[c] = [e.get(c) for e in extra]
        else:
            raise InvalidInputError(f"metadata column {c!r} is neither a samples column nor a key "
                                    f"of the frames' extra metadata")
    place = position = None
    if revisit and all(revisit[0] in e and revisit[1] in e for e in extra):
        place = np.asarray([str(e[revisit[0]]) for e in extra], dtype=object)
        position = np.asarray([float(e[revisit[1]]) for e in extra], dtype=np.float64)
    counts = None
    if labels != "none":
        boxes = ws.boxes(list(keep), labeled_only=(labels == "labeled")).to_pydict()
        classes = sorted({t for t in boxes["type"] if t != "DontCare"})
        if classes:
            state = (ws.frames(ids=list(keep), columns=["id", "labeled"]).to_pydict()
                     if labels == "labeled" else None)
            row_of = {i: r for r, i in enumerate(keep)}
            col_of = {c: j for j, c in enumerate(classes)}
            counts = np.full((len(keep), len(classes)), np.nan)
            if state is None:
                counts[:] = 0.0
            else:
                for i, lab in zip(state["id"], state["labeled"]):
                    if lab:
                        counts[row_of[i]] = 0.0
            for f, t in zip(boxes["frame_id"], boxes["type"]):
                if t != "DontCare" and f in row_of:
                    counts[row_of[f], col_of[t]] += 1
    metrics, values, more = evaluate_vectors(
        vectors, drive, frame, columns=meta, counts=counts, place=place, position=position, k=k,
        window=window, revisit_radius=revisit_radius, duplicate_threshold=duplicate_threshold,
        test_fraction=test_fraction, seed=seed)
    params = {"k": k, "window": window, "columns": wanted, "labels": labels, "where": where,
              "revisit": list(revisit), "revisit_radius": revisit_radius,
              "duplicate_threshold": duplicate_threshold, "test_fraction": test_fraction,
              "seed": seed}
    result = EmbeddingEvaluation(
        embeddings=names, frames=len(keep), drives=len(set(drive.tolist())), metrics=metrics,
        values=values, params=params, notes=notes + more,
        path=str(out) if out is not None else None)
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(result.model_dump_json(indent=1) + "\n")
        tmp.replace(path)
    return result
