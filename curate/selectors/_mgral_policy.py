"""The MGRAL agent: an LSTM that reads a candidate set and emits a batch, trained by REINFORCE.

Architecture (a pointer-network decoder over a set):

* every candidate's feature row ``x_i`` (see :func:`curate.selectors.mgral.candidate_features`)
  is encoded once, ``e_i = tanh(W_x x_i + b)``;
* an ``LSTMCell`` reads the batch being built, one chosen candidate per step: its first input is
  the set's mean encoding (what the set looks like), then the encoding of the candidate chosen
  at the previous step; its state ``h_t`` summarises the set and the picks so far;
* step ``t`` scores every candidate ``u_i = v . tanh(W_e e_i + W_h h_t)``, masks labeled and
  already chosen rows (``-inf``) and samples (or, greedy, takes the arg max) from
  ``softmax(u)``: sampling without replacement, ``budget`` steps.

``log pi(batch)`` is the sum of the steps' log-probabilities, so REINFORCE's gradient is
``(R(batch) - b) grad log pi(batch)``; the baseline ``b`` of each of the ``K`` batches sampled
per iteration is the mean reward of the other ``K - 1`` (leave-one-out), which keeps the
estimate unbiased and lowers its variance; the advantages are divided by the rewards' spread.

Cost: O(budget * M * H) per decoded batch for ``M`` candidates and hidden size ``H`` (no M x M
term); training is ``iterations * K`` decodes. Memory O(K * M * H) for one step's scores.
"""

from __future__ import annotations

import copy
import logging
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

__all__ = ["SetLSTMPolicy", "reinforce", "expected_reward"]

logger = logging.getLogger(__name__)


class SetLSTMPolicy(nn.Module):
    """LSTM pointer policy over a candidate set (see the module docstring).

    Parameters
    ----------
    n_features : int
        Columns of a candidate's feature row.
    hidden : int
        Width of the encodings and of the LSTM state.
    """

    def __init__(self, n_features: int, hidden: int = 32) -> None:
        super().__init__()
        self.n_features = int(n_features)
        self.hidden = int(hidden)
        self.encode = nn.Linear(self.n_features, self.hidden)
        self.cell = nn.LSTMCell(self.hidden, self.hidden)
        self.key = nn.Linear(self.hidden, self.hidden, bias=False)
        self.query = nn.Linear(self.hidden, self.hidden)
        self.score = nn.Linear(self.hidden, 1, bias=False)

    def decode(
        self,
        features: torch.Tensor,
        budget: int,
        *,
        blocked: Optional[torch.Tensor] = None,
        samples: int = 1,
        greedy: bool = False,
        generator: Optional[torch.Generator] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Emit ``samples`` batches of ``budget`` distinct, unblocked rows.

        Parameters
        ----------
        features : torch.Tensor
            ``(M, n_features)`` candidate rows.
        budget : int
            Picks per batch; at most the number of unblocked rows.
        blocked : torch.Tensor, optional
            ``(M,)`` bool, rows never picked (labeled frames).
        samples : int
            Batches drawn independently (``K``).
        greedy : bool
            Take the most probable row at each step instead of sampling.
        generator : torch.Generator, optional
            Random source of the sampling (reproducible decodes).

        Returns
        -------
        picks : torch.Tensor
            ``(samples, budget)`` int64 row positions in pick order.
        log_prob : torch.Tensor
            ``(samples,)`` log-probability of each batch (differentiable).
        step_log_prob : torch.Tensor
            ``(samples, budget)`` log-probability of each pick given the earlier ones.
        """
        m = features.shape[0]
        mask = torch.zeros(m, dtype=torch.bool) if blocked is None else blocked.clone().bool()
        free = int((~mask).sum())
        if budget > free:
            raise ValueError(f"budget {budget} is larger than the {free} rows that may be picked")
        enc = torch.tanh(self.encode(features))  # (M, H)
        keys = self.key(enc)  # (M, H)
        mask = mask.unsqueeze(0).repeat(samples, 1)  # (K, M)
        inp = enc.mean(dim=0, keepdim=True).expand(samples, -1)
        h = torch.zeros(samples, self.hidden)
        c = torch.zeros(samples, self.hidden)
        picks, steps = [], []
        rows = torch.arange(samples)
        for _ in range(int(budget)):
            h, c = self.cell(inp, (h, c))
            logits = self.score(torch.tanh(keys.unsqueeze(0) + self.query(h).unsqueeze(1))).squeeze(-1)
            logits = logits.masked_fill(mask, float("-inf"))
            logp = torch.log_softmax(logits, dim=1)
            if greedy:
                # ties by lowest row: argmax returns the first maximum
                pick = torch.argmax(logp, dim=1)
            else:
                pick = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
            steps.append(logp[rows, pick])
            mask = mask.clone()
            mask[rows, pick] = True
            picks.append(pick)
            inp = enc[pick]
        step_log_prob = torch.stack(steps, dim=1)
        return torch.stack(picks, dim=1), step_log_prob.sum(dim=1), step_log_prob


def expected_reward(
    policy: SetLSTMPolicy,
    features: torch.Tensor,
    budget: int,
    reward: Callable[[np.ndarray], np.ndarray],
    *,
    samples: int = 256,
    seed: int = 0,
    blocked: Optional[torch.Tensor] = None,
) -> float:
    """Monte-Carlo estimate of ``E_{batch ~ pi}[R(batch)]`` (``samples`` seeded draws)."""
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        picks, _, _ = policy.decode(features, budget, blocked=blocked, samples=samples, generator=gen)
    return float(np.mean(reward(picks.numpy())))


def reinforce(
    policy: SetLSTMPolicy,
    features: torch.Tensor,
    budget: int,
    reward: Callable[[np.ndarray], np.ndarray],
    *,
    iterations: int = 200,
    samples: int = 16,
    lr: float = 0.01,
    seed: int = 0,
    blocked: Optional[torch.Tensor] = None,
    resume: Optional[dict] = None,
    checkpoint_every: int = 0,
    on_checkpoint: Optional[Callable[[int, dict], None]] = None,
) -> list[float]:
    """Train ``policy`` in place by REINFORCE with a leave-one-out baseline.

    Parameters
    ----------
    policy : SetLSTMPolicy
    features : torch.Tensor
        ``(M, n_features)`` rows of the training candidate set.
    budget : int
        Batch size the policy emits.
    reward : callable
        ``(K, budget)`` int row positions -> ``(K,)`` rewards (the look-up table's estimates).
    iterations, samples, lr : int, int, float
        Adam steps, batches sampled per step (``K >= 2``), learning rate.
    seed : int
        Seed of the sampling (same seed + same inputs = same trained weights).
    blocked : torch.Tensor, optional
        Rows never picked.
    resume : dict, optional
        A training state given to ``on_checkpoint`` earlier (``step``, ``optimizer``,
        ``generator``, ``history``; the policy's weights already loaded): training continues
        from there and ends as an uninterrupted run would.
    checkpoint_every : int
        Call ``on_checkpoint(step, state)`` every this many iterations and at the end (0: only
        at the end, when ``on_checkpoint`` is given).
    on_checkpoint : callable, optional
        Receives the iteration count done and the training state (tensors and plain values).

    Returns
    -------
    list of float
        Mean sampled reward per iteration (the resumed ones included).
    """
    if samples < 2:
        raise ValueError("REINFORCE with a leave-one-out baseline needs samples >= 2")
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(policy.parameters(), lr=float(lr))
    history: list[float] = []
    start = 0
    if resume is not None:
        start = int(resume["step"])
        opt.load_state_dict(resume["optimizer"])
        gen.set_state(resume["generator"])
        history = [float(v) for v in resume["history"]]

    def state(step: int) -> dict:
        # a copy: the optimiser keeps updating its live tensors after the checkpoint
        return {"step": step, "optimizer": copy.deepcopy(opt.state_dict()), "generator": gen.get_state(),
                "history": list(history)}

    for it in range(start, int(iterations)):
        picks, log_prob, _ = policy.decode(features, budget, blocked=blocked, samples=samples, generator=gen)
        r = torch.as_tensor(np.asarray(reward(picks.numpy()), dtype=np.float64), dtype=torch.float32)
        baseline = (r.sum() - r) / (samples - 1)
        # advantages in units of the batch's reward spread: the step size does not depend on
        # the reward's scale (mAP points or fractions)
        advantage = (r - baseline) / (r.std() + 1e-8)
        loss = -(advantage * log_prob).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(r.mean()))
        done = it + 1
        if on_checkpoint is not None and (done == int(iterations) or (checkpoint_every and done % checkpoint_every == 0)):
            on_checkpoint(done, state(done))
    return history
