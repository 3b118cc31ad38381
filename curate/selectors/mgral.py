"""``mgral``: batch selection by a trained LSTM policy (MGRAL, mean-AP guided reinforced active
learning), on per-candidate features.

The policy (:mod:`curate.selectors._mgral_policy`) is trained by the detector loop
(:mod:`curate.loop.mgral`) with REINFORCE on look-up-table estimates of the mAP gain; this
selector only applies a stored policy checkpoint: it builds every candidate's feature row
(:func:`candidate_features`) and decodes one batch greedily (deterministic).

Use ``ws.select("mgral", budget, embedding=..., score_run=..., policy="<loop work_dir>/round-<r>/
mgral/policy/last.pt")``; the score run must carry ``emoc`` (a loop round's prediction pass with
an anchor-head detector writes it), ``entropy_mean`` and ``n_boxes``.

Needs torch (imported when ``select`` runs).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from curate.errors import InvalidInputError, NotFoundError
from curate.selectors._distances import min_sq_dist_to_set
from curate.selectors._scores import check_row_array
from curate.selectors.base import ScoresLike, Selection, Selector, validate_inputs

__all__ = ["MGRAL", "candidate_features", "FEATURE_SCORES", "feature_names", "save_policy", "load_policy",
           "POLICY_FORMAT"]

logger = logging.getLogger(__name__)

#: Score columns a candidate's features read (EMOC, box entropy, box count).
FEATURE_SCORES = ("emoc", "entropy_mean", "n_boxes")
#: Rows used to fit the PCA of the embedding (a seeded sample when the pool is larger).
PCA_FIT_ROWS = 20000
#: Marker of a policy checkpoint written by :func:`save_policy`.
POLICY_FORMAT = "curate-mgral-policy/1"


def feature_names(n_pca: int) -> list[str]:
    """Names of the columns of :func:`candidate_features`."""
    return ["log1p_emoc", "entropy_mean", "log1p_n_boxes"] + [f"pca_{k}" for k in range(n_pca)] + ["dist_labeled"]


def _pca_projection(vectors: np.ndarray, n_pca: int) -> np.ndarray:
    n, d = vectors.shape
    k = min(n_pca, d, max(n - 1, 0))
    out = np.zeros((n, n_pca), dtype=np.float64)
    if k == 0:
        return out
    rows = np.arange(n) if n <= PCA_FIT_ROWS else np.sort(np.random.default_rng(0).choice(n, PCA_FIT_ROWS, replace=False))
    sample = vectors[rows].astype(np.float64)
    mean = sample.mean(axis=0)
    centred = sample - mean
    # top-k right singular vectors of the fit sample: O(rows * d * min(rows, d))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[:k]
    # fix each component's sign (largest |loading| positive) so projections are reproducible
    signs = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    out[:, :k] = (vectors.astype(np.float64) - mean) @ comps.T
    return out


def candidate_features(
    vectors: np.ndarray, labeled: np.ndarray, scores: Mapping[str, np.ndarray], *, n_pca: int = 4
) -> np.ndarray:
    """Feature rows of every row of ``vectors`` for the MGRAL policy.

    Columns (:func:`feature_names`): ``log(1 + emoc)``, ``entropy_mean``, ``log(1 + n_boxes)``,
    the first ``n_pca`` principal components of the embedding, and the Euclidean distance to
    the nearest labeled row (0 when nothing is labeled). Each column is standardised over the
    unlabeled rows (mean 0, std 1; a constant column becomes 0), so a policy trained on one
    candidate set reads another on the same scale.

    Parameters
    ----------
    vectors : numpy.ndarray
        ``(N, d)`` embedding of candidates and labeled rows.
    labeled : numpy.ndarray
        ``(N,)`` bool mask.
    scores : mapping
        Per-row score columns holding :data:`FEATURE_SCORES`.
    n_pca : int
        Principal components kept.

    Returns
    -------
    numpy.ndarray
        ``(N, 4 + n_pca)`` float32.

    Notes
    -----
    O(N * d * n_pca) for the projection plus O(min(N, 20000) * d * min(N, d)) for the PCA fit
    (on a seeded sample of at most 20000 rows), and O(N * L * d) chunked for the distance to
    the ``L`` labeled rows; memory O(N * (d + n_pca)).
    """
    if not isinstance(scores, Mapping):
        raise InvalidInputError(
            f"strategy 'mgral' needs named score columns {', '.join(FEATURE_SCORES)} (a score run of the "
            "detector loop); got a plain array"
        )
    missing = [k for k in FEATURE_SCORES if k not in scores]
    if missing:
        raise InvalidInputError(
            f"strategy 'mgral' needs the score columns {', '.join(FEATURE_SCORES)}; the scores lack "
            f"{', '.join(missing)} (emoc is written by the loop's prediction pass with an anchor-head "
            f"detector such as pointpillars-tiny; available: {', '.join(sorted(scores)) or 'none'})"
        )
    n = vectors.shape[0]
    raw = [check_row_array(scores[k], n, f"mgral score {k!r}") for k in FEATURE_SCORES]
    cols = [np.log1p(np.maximum(raw[0], 0.0)), raw[1], np.log1p(np.maximum(raw[2], 0.0))]
    pca = _pca_projection(vectors, int(n_pca))
    cols.extend(pca[:, k] for k in range(pca.shape[1]))
    if labeled.any():
        dist = np.sqrt(np.maximum(min_sq_dist_to_set(vectors, vectors[labeled]), 0.0)).astype(np.float64)
        dist[labeled] = 0.0  # exactly (float32 round-off would leave ~1e-3)
        cols.append(dist)
    else:
        cols.append(np.zeros(n))
    feats = np.stack(cols, axis=1)
    ref = feats[~labeled] if (~labeled).any() else feats
    mean = ref.mean(axis=0)
    std = ref.std(axis=0)
    feats = (feats - mean) / np.where(std > 1e-12, std, 1.0)
    feats[:, std <= 1e-12] = 0.0
    return feats.astype(np.float32)


def save_policy(run_dir: Path, policy: Any, *, step: int, n_pca: int, extra: Optional[dict] = None) -> Path:
    """Write ``policy`` as ``<run_dir>/step-XXXX.pt`` and ``last.pt`` (atomic; returns ``last.pt``).

    Uses the run-folder helpers of :mod:`embedders.run_files` (fsynced temporary file + rename).
    """
    from embedders.run_files import save_checkpoint

    run_dir.mkdir(parents=True, exist_ok=True)
    state = {
        "format": POLICY_FORMAT,
        "model": policy.state_dict(),
        "n_features": policy.n_features,
        "hidden": policy.hidden,
        "n_pca": int(n_pca),
        "feature_names": feature_names(int(n_pca)),
        "extra": dict(extra or {}),
    }
    return save_checkpoint(run_dir, state, int(step))


def load_policy(path: Any) -> tuple[Any, dict]:
    """``(SetLSTMPolicy, state)`` of a checkpoint written by :func:`save_policy`.

    Loaded with ``torch.load(weights_only=True)``: tensors and plain values only, no code runs.

    Raises
    ------
    NotFoundError
        No such file.
    InvalidInputError
        Not a policy checkpoint (or a truncated one).
    """
    import torch

    from curate.selectors._mgral_policy import SetLSTMPolicy

    file = Path(str(path)).expanduser()
    if not file.is_file():
        raise NotFoundError(
            f"mgral policy checkpoint {file} does not exist; a loop round with strategy 'mgral' writes "
            "<work_dir>/round-<r>/mgral/policy/last.pt"
        )
    try:
        state = torch.load(io.BytesIO(file.read_bytes()), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (any unpickling failure: not our file)
        raise InvalidInputError(f"{file} is not a readable mgral policy checkpoint ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != POLICY_FORMAT:
        raise InvalidInputError(f"{file} is not an mgral policy checkpoint (no format {POLICY_FORMAT!r})")
    policy = SetLSTMPolicy(int(state["n_features"]), int(state["hidden"]))
    policy.load_state_dict(state["model"])
    policy.eval()
    return policy, state


class MGRAL(Selector):
    """Greedy decode of a trained MGRAL policy over the unlabeled rows.

    Parameters
    ----------
    policy : str
        Path of a policy checkpoint (``last.pt`` of a loop round's ``mgral/policy`` folder).

    Notes
    -----
    Gains are each pick's probability under the policy given the earlier picks. Deterministic
    (greedy, ties by lowest row). O(budget * N * H) for the decode plus the cost of
    :func:`candidate_features`.
    """

    name = "mgral"
    needs_scores = True

    def __init__(self, policy: Optional[str] = None) -> None:
        self.policy = None if policy is None else str(policy)

    def select(
        self,
        vectors: np.ndarray,
        budget: int,
        *,
        labeled: Any = None,
        scores: ScoresLike = None,
        seed: int = 0,
    ) -> Selection:
        """Pick ``budget`` unlabeled rows with the stored policy; see :class:`Selector`."""
        import torch

        if not self.policy:
            raise InvalidInputError(
                "strategy 'mgral' needs policy=<checkpoint path> (a loop with strategy 'mgral' writes "
                "<work_dir>/round-<r>/mgral/policy/last.pt; CLI: --param policy=PATH)"
            )
        inp = validate_inputs(vectors, budget, labeled)
        if scores is None:
            raise InvalidInputError(
                f"strategy 'mgral' needs per-frame scores ({', '.join(FEATURE_SCORES)}); pass score_run="
            )
        policy, state = load_policy(self.policy)
        feats = candidate_features(inp.vectors, inp.labeled, scores, n_pca=int(state["n_pca"]))
        if feats.shape[1] != policy.n_features:
            raise InvalidInputError(
                f"policy {self.policy} reads {policy.n_features} features; these inputs give {feats.shape[1]}"
            )
        if inp.budget == 0:
            return Selection(indices=np.zeros(0, np.int64), gains=np.zeros(0), info={"policy": self.policy})
        with torch.no_grad():
            picks, _, steps = policy.decode(
                torch.from_numpy(feats), inp.budget, blocked=torch.from_numpy(inp.labeled), greedy=True
            )
        return Selection(
            indices=picks[0].numpy().astype(np.int64),
            gains=steps[0].exp().numpy().astype(np.float64),
            info={"policy": self.policy, "features": feature_names(int(state["n_pca"]))},
        )
