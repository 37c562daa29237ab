"""Contrastive losses for training the MLP combiner: HN-NCE (CoVR's default) and InfoNCE.

Both take a batch of composed queries ``q`` [B, d] and their targets ``t`` [B, d] (row i is the positive
of row i, every other row a negative) and return the **sum** of the query->target and target->query
mean losses, as CoVR's ``HardNegativeNCE`` does (covr.md §2.4). CoVR's ``model/loss=cross_entropy``
averages the two directions instead: that is ``info_nce(...) / 2``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "hn_nce", "hn_nce_from_logits", "info_nce", "info_nce_from_logits", "make_loss"]


def _hn_nce_rows(logits: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Per-row HN-NCE of a [B, B] logit matrix whose positives are on the diagonal.

    Row i: ``log(alpha*exp(S_ii) + sum_{j!=i} w_ij*exp(S_ij)) - S_ii`` with
    ``w_ij = (B-1) * exp(beta*S_ij) / sum_{k!=i} exp(beta*S_ik)``; computed in log space.
    """
    b = logits.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=logits.device)
    if b < 2:
        return torch.zeros(b, dtype=logits.dtype, device=logits.device)
    beta_s = (beta * logits).masked_fill(eye, float("-inf"))
    log_norm = torch.logsumexp(beta_s, dim=1, keepdim=True)  # log sum_{k!=i} exp(beta S_ik)
    log_w = math.log(b - 1) + beta_s - log_norm
    log_w = torch.where(eye, torch.full_like(log_w, math.log(alpha)), log_w)
    return torch.logsumexp(logits + log_w, dim=1) - logits.diagonal()


def hn_nce_from_logits(logits: torch.Tensor, alpha: float = 1.0, beta: float = 0.5) -> torch.Tensor:
    """HN-NCE (Radenovic et al. 2023) on scaled similarities ``S = q t^T / tau``, both directions summed.

    ``alpha`` weighs the positive, ``beta`` concentrates the negative weights on hard negatives;
    ``beta=0`` (with ``alpha=1``) is InfoNCE.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    return _hn_nce_rows(logits, alpha, beta).mean() + _hn_nce_rows(logits.T, alpha, beta).mean()


def info_nce_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE (cross-entropy with the diagonal as labels), both directions summed."""
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)


def hn_nce(
    q: torch.Tensor, t: torch.Tensor, temperature: float = 0.07, alpha: float = 1.0, beta: float = 0.5
) -> torch.Tensor:
    """HN-NCE between L2-normalised queries ``q`` [B, d] and targets ``t`` [B, d]."""
    return hn_nce_from_logits(q @ t.T / temperature, alpha=alpha, beta=beta)


def info_nce(q: torch.Tensor, t: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised queries ``q`` [B, d] and targets ``t`` [B, d]."""
    return info_nce_from_logits(q @ t.T / temperature)


#: Loss names accepted by ``precompute.train_combiner --loss``.
LOSSES: tuple[str, ...] = ("hn-nce", "info-nce")


def make_loss(name: str, temperature: float = 0.07, alpha: float = 1.0, beta: float = 0.5):
    """Return ``loss(q, t) -> scalar`` for a name in :data:`LOSSES`."""
    if name == "hn-nce":
        return lambda q, t: hn_nce(q, t, temperature=temperature, alpha=alpha, beta=beta)
    if name == "info-nce":
        return lambda q, t: info_nce(q, t, temperature=temperature)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
