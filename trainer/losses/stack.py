"""The weighted, scheduled sum of loss terms that the training loop minimises."""

from __future__ import annotations

import torch
from torch import nn

from ..config import Config, LossTerm
from .base import Loss, LossInputs
from .cosine import CosineLoss
from .mse import MSELoss


def scheduled_weight(term: LossTerm, step: int) -> float:
    """The term's weight at ``step``: a linear ramp over ``warmup_steps``, then constant."""
    if term.warmup_steps <= 0:
        return term.weight
    return term.weight * min(1.0, step / term.warmup_steps)


class LossStack(nn.Module):
    def __init__(self, terms: list[tuple[Loss, LossTerm]]):
        super().__init__()
        self.losses = nn.ModuleList([loss for loss, _ in terms])
        self.settings = [setting for _, setting in terms]

    def forward(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns the total and each active term's unweighted value."""
        total = inputs.prediction.new_zeros(())
        parts: dict[str, torch.Tensor] = {}
        for loss, setting in zip(self.losses, self.settings):
            value = loss(inputs)
            parts[loss.name] = value
            total = total + scheduled_weight(setting, inputs.step) * value
        return total, parts


def build_loss_stack(config: Config) -> LossStack:
    terms: list[tuple[Loss, LossTerm]] = []
    if config.loss.cosine.weight > 0:
        terms.append((CosineLoss(), config.loss.cosine))
    if config.loss.mse.weight > 0:
        terms.append((MSELoss(), config.loss.mse))
    if not terms:
        raise ValueError("every loss weight is 0: nothing to minimise")
    return LossStack(terms)
