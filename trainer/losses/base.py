"""The one interface every loss term implements."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
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
    """A loss term: pure tensor math in ``compute``; ``forward`` picks its inputs."""

    name: str = "loss"

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        return self.compute(inputs.prediction, inputs.target)

    def compute(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_config_dict(self) -> dict:
        return {}
