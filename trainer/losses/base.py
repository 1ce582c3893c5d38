"""The one interface every loss term implements, and the small helpers they share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class LossInputs:
    prediction: torch.Tensor  # (B, D) student output in the primary space
    target: torch.Tensor  # (B, D) primary-space target
    predictions: dict[str, torch.Tensor] = field(default_factory=dict)  # space -> (B, D_s) head outputs
    targets: dict[str, torch.Tensor] = field(default_factory=dict)  # space -> (B, D_s) teacher targets
    teacher_weights: dict[str, float] = field(default_factory=dict)  # space -> weight (sums to 1)
    step: int = 0


class Loss(nn.Module):
    """A loss term: pure tensor math in ``compute``; ``forward`` picks its inputs.

    ``compute(prediction, target)`` takes plain ``(B, D)`` tensors, so a term is testable
    without a cube or a data set. ``get_config_dict()`` returns the term's hyper-parameters,
    saved with the run.
    """

    name: str = "loss"

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        return self.compute(inputs.prediction, inputs.target)

    def compute(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_config_dict(self) -> dict:
        return {}


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos(a_i, b_j) for every pair: (B, D), (M, D) -> (B, M)."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def duplicate_mask(target: torch.Tensor, tolerance: float = 1e-6) -> torch.Tensor:
    """(B, B) bool: True where row j's target equals row i's (j ≠ i).

    Dialogue data repeat answers (many questions, one FAQ answer). A copy of the positive is
    not a negative, so the contrastive terms leave such pairs out.
    """
    same = cosine_matrix(target, target) > 1.0 - tolerance  # (B, B)
    return same & ~torch.eye(target.shape[0], dtype=torch.bool, device=target.device)


def zero_like_graph(tensor: torch.Tensor) -> torch.Tensor:
    """A scalar 0 that keeps ``tensor`` in the autograd graph (for terms with nothing to do)."""
    return tensor.sum() * 0.0


def space_weights(spaces: Iterable[str], teacher_weights: dict[str, float]) -> dict[str, float]:
    """Teacher weights restricted to ``spaces`` and renormalised to sum 1.

    With no weights given every space counts equally; spaces whose weights are all 0 give
    all-zero weights (the term then contributes nothing).
    """
    spaces = list(spaces)
    if not teacher_weights:
        return {space: 1.0 / len(spaces) for space in spaces} if spaces else {}
    raw = {space: float(teacher_weights.get(space, 0.0)) for space in spaces}
    total = sum(value for value in raw.values() if math.isfinite(value) and value > 0)
    if total <= 0:
        return {space: 0.0 for space in spaces}
    return {space: (value / total if math.isfinite(value) and value > 0 else 0.0) for space, value in raw.items()}


class PerSpaceLoss(Loss):
    """A distillation term: ``compute`` in each teacher space, combined by the teacher weights."""

    def __init__(self, spaces: list[str]):
        super().__init__()
        if not spaces:
            raise ValueError(f"{self.name} needs at least one teacher space")
        self.spaces = list(spaces)

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        weights = space_weights(self.spaces, inputs.teacher_weights)
        total = zero_like_graph(inputs.prediction)
        for space in self.spaces:
            prediction, target = self._pair(inputs, space)
            if weights[space] > 0:
                total = total + weights[space] * self.compute(prediction, target)
        return total

    def _pair(self, inputs: LossInputs, space: str) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            return inputs.predictions[space], inputs.targets[space]
        except KeyError:
            raise KeyError(
                f"{self.name}: space `{space}` is missing from the loss inputs "
                f"(predictions: {sorted(inputs.predictions)}, targets: {sorted(inputs.targets)})"
            ) from None
