"""Evaluate a saved checkpoint on a data file (every row is an evaluation row)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from .checkpoint import load_checkpoint
from .config import parse_config
from .data import load_pairs
from .metrics import fit_linear_baseline, prefixed, retrieval_metrics


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, cache_dir: Optional[str | Path] = None) -> dict[str, float]:
    from .loop import Student

    loaded = load_checkpoint(checkpoint)
    body = loaded.state["config"]
    body["data"] = {**body["data"], "path": str(data), "kind": None}
    config = parse_config(body)
    pairs = load_pairs(config, cache_dir=cache_dir)
    student = Student(config, pairs)
    student.load_state_dict(loaded.model)
    student.eval()
    questions = pairs.questions[pairs.input_space]
    targets = pairs.answers[pairs.primary_space]
    with torch.no_grad():
        predictions = torch.cat([student(questions[i : i + 1024])[pairs.primary_space] for i in range(0, len(questions), 1024)])
    metrics = prefixed(retrieval_metrics(predictions, targets), "val/")
    metrics |= prefixed(retrieval_metrics(pairs.questions[pairs.primary_space], targets), "baseline/identity/val/")
    metrics |= prefixed(_cross_fitted_linear(questions, targets, config.seed), "baseline/linear/val/")
    return metrics


def _cross_fitted_linear(x: torch.Tensor, y: torch.Tensor, seed: int) -> dict[str, float]:
    """Two-fold cross-fitting: each half is predicted by a ridge map fitted on the other half."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    a, b = order[: len(x) // 2], order[len(x) // 2 :]
    predictions = torch.empty_like(y)
    predictions[a] = fit_linear_baseline(x[b], y[b], seed)(x[a])
    predictions[b] = fit_linear_baseline(x[a], y[a], seed)(x[b])
    return retrieval_metrics(predictions, y)
