"""Retrieval metrics on a validation split, and the two baselines every number is shown with.

For each validation row the prediction is compared with *all* validation targets:
Q→A cosine is the mean cosine to the row's own target; Recall@k and MRR rank the row's own
target among all of them (ties count against the prediction, so a constant output scores 0
recall, not 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

METRIC_NAMES = ("qa_cosine", "recall@1", "recall@5", "mrr")
RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@torch.no_grad()
def retrieval_metrics(prediction: torch.Tensor, target: torch.Tensor, chunk: int = 1024) -> dict[str, float]:
    """prediction, target: (N, D). Returns qa_cosine, recall@1, recall@5, mrr."""
    prediction = F.normalize(prediction.float(), dim=-1)
    target = F.normalize(target.float(), dim=-1)
    owns, ranks = [], []
    for start in range(0, prediction.shape[0], chunk):  # chunks bound the (N, N) similarity memory
        sims = prediction[start : start + chunk] @ target.T  # (n, N)
        rows = torch.arange(sims.shape[0])
        own = sims[rows, rows + start]  # (n,) read from the same product, so a row never outranks itself
        owns.append(own)
        ranks.append((sims >= own[:, None]).sum(-1))  # (n,) rank from 1; ties count against
    own = torch.cat(owns)
    rank = torch.cat(ranks).float()
    return {
        "qa_cosine": own.mean().item(),
        "recall@1": (rank <= 1).float().mean().item(),
        "recall@5": (rank <= 5).float().mean().item(),
        "mrr": (1.0 / rank).mean().item(),
    }


def prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}{key}": value for key, value in metrics.items()}


class RidgeMap:
    """Closed-form ridge regression Y ≈ (X − μx) W + μy, fitted in float64."""

    def __init__(self, weight: torch.Tensor, x_mean: torch.Tensor, y_mean: torch.Tensor):
        self.weight, self.x_mean, self.y_mean = weight, x_mean, y_mean

    @classmethod
    def fit(cls, x: torch.Tensor, y: torch.Tensor, alpha: float) -> "RidgeMap":
        x, y = x.double(), y.double()
        x_mean, y_mean = x.mean(0), y.mean(0)
        xc, yc = x - x_mean, y - y_mean
        # alpha is relative to the mean feature variance, so one grid fits any embedding scale
        scale = xc.pow(2).sum() / x.shape[1]
        gram = xc.T @ xc + alpha * scale * torch.eye(x.shape[1], dtype=x.dtype)  # (D_in, D_in)
        weight = torch.linalg.solve(gram, xc.T @ yc)  # (D_in, D_out)
        return cls(weight, x_mean, y_mean)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - self.x_mean) @ self.weight + self.y_mean).float()


def fit_linear_baseline(x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> RidgeMap:
    """Ridge with alpha chosen on an inner 20 % hold-out of the training rows only."""
    n = x.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = max(1, n // 5)
    inner_val, inner_train = order[:cut], order[cut:]
    if len(inner_train) < 2:
        return RidgeMap.fit(x, y, alpha=1.0)

    def score(alpha: float) -> float:
        fitted = RidgeMap.fit(x[inner_train], y[inner_train], alpha)
        return F.cosine_similarity(fitted(x[inner_val]), y[inner_val].float(), dim=-1).mean().item()

    best = max(RIDGE_ALPHAS, key=score)
    return RidgeMap.fit(x, y, best)


def baseline_metrics(
    train_inputs: torch.Tensor,
    train_targets: torch.Tensor,
    val_inputs: torch.Tensor,
    val_targets: torch.Tensor,
    val_identity: torch.Tensor | None,
    seed: int = 0,
) -> dict[str, float]:
    """`baseline/identity/val/*` (predict the question itself, in the target space) and
    `baseline/linear/val/*` (ridge map fitted on the training split only)."""
    result: dict[str, float] = {}
    if val_identity is not None and val_identity.shape[1] == val_targets.shape[1]:
        result |= prefixed(retrieval_metrics(val_identity, val_targets), "baseline/identity/val/")
    linear = fit_linear_baseline(train_inputs, train_targets, seed)
    result |= prefixed(retrieval_metrics(linear(val_inputs), val_targets), "baseline/linear/val/")
    return result
