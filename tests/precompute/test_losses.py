"""HN-NCE and InfoNCE (precompute/_losses.py) against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from precompute._losses import hn_nce, hn_nce_from_logits, info_nce, info_nce_from_logits, make_loss

#: A 3x3 logit matrix S (rows: queries, columns: targets, positives on the diagonal).
S3 = [[2.0, 0.0, 1.0], [0.5, 1.0, -1.0], [1.0, 0.0, 3.0]]


def _hn_nce_by_hand(s: list[list[float]], alpha: float, beta: float) -> float:
    """covr.md §2.4 written out term by term with plain floats (both directions summed)."""
    b = len(s)

    def direction(m: list[list[float]]) -> float:
        total = 0.0
        for i in range(b):
            norm = sum(math.exp(beta * m[i][k]) for k in range(b) if k != i)
            denom = alpha * math.exp(m[i][i])
            for j in range(b):
                if j != i:
                    w = (b - 1) * math.exp(beta * m[i][j]) / norm
                    denom += w * math.exp(m[i][j])
            total += math.log(denom) - m[i][i]
        return total / b

    transposed = [[s[j][i] for j in range(b)] for i in range(b)]
    return direction(s) + direction(transposed)


def test_info_nce_3x3_literal_value() -> None:
    # Row 0 (q->t): log(e^2 + e^0 + e^1) - 2 = log(e^2 + 1 + e) - 2, and so on; computed here term by term.
    rows_qt = [
        math.log(math.exp(2) + 1 + math.exp(1)) - 2,
        math.log(math.exp(0.5) + math.exp(1) + math.exp(-1)) - 1,
        math.log(math.exp(1) + 1 + math.exp(3)) - 3,
    ]
    rows_tq = [
        math.log(math.exp(2) + math.exp(0.5) + math.exp(1)) - 2,
        math.log(1 + math.exp(1) + 1) - 1,
        math.log(math.exp(1) + math.exp(-1) + math.exp(3)) - 3,
    ]
    expected = sum(rows_qt) / 3 + sum(rows_tq) / 3
    assert expected == pytest.approx(0.7637, abs=1e-4)  # the number itself, worked out once by hand
    got = info_nce_from_logits(torch.tensor(S3, dtype=torch.float64)).item()
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.5), (1.0, 2.0), (0.5, 0.5), (1.0, 0.0)])
def test_hn_nce_3x3_matches_formula(alpha: float, beta: float) -> None:
    got = hn_nce_from_logits(torch.tensor(S3, dtype=torch.float64), alpha=alpha, beta=beta).item()
    assert got == pytest.approx(_hn_nce_by_hand(S3, alpha, beta), rel=1e-12)


def test_hn_nce_hard_negatives_weigh_more() -> None:
    # beta > 0 up-weights the high-similarity negatives, so the loss grows with beta on this matrix.
    s = torch.tensor(S3, dtype=torch.float64)
    values = [hn_nce_from_logits(s, beta=b).item() for b in (0.0, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[0] < values[-1]


def test_hn_nce_beta0_equals_info_nce_on_embeddings() -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(16, 8, generator=g, dtype=torch.float64), dim=1)
    t = torch.nn.functional.normalize(torch.randn(16, 8, generator=g, dtype=torch.float64), dim=1)
    a = hn_nce(q, t, temperature=0.07, alpha=1.0, beta=0.0)
    b = info_nce(q, t, temperature=0.07)
    assert a.item() == pytest.approx(b.item(), rel=1e-12)
    assert make_loss("hn-nce", beta=0.0)(q, t).item() == pytest.approx(b.item(), rel=1e-12)
    assert make_loss("info-nce")(q, t).item() == pytest.approx(b.item(), rel=1e-12)


def test_hn_nce_gradients_are_finite_at_low_temperature() -> None:
    g = torch.Generator().manual_seed(1)
    q = torch.nn.functional.normalize(torch.randn(32, 16, generator=g), dim=1).requires_grad_(True)
    t = torch.nn.functional.normalize(torch.randn(32, 16, generator=g), dim=1)
    loss = hn_nce(q, t, temperature=0.01, beta=0.5)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(q.grad).all()


def test_make_loss_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("triplet")
