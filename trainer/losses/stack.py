"""The weighted, scheduled sum of loss terms that the training loop minimises.

total(step) = Σ_term scheduled_weight(term, step) · L_term

Task terms (``loss.cosine``, ``loss.mse``, ``loss.infonce``, ``loss.triplet``) score the
primary prediction against the primary target; distillation terms (``distill.*``) score
every teacher head against its teacher. A term is built only when its weight is > 0 and it
has something to do; every built term is reported, unweighted, under its own name.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch
from torch import nn

from ..config import Config, LossTerm
from .base import Loss, LossInputs
from .cosine import CosineLoss
from .distill_regression import DistillRegressionLoss
from .distill_relational import DistillRelationalLoss
from .infonce import InfoNCELoss
from .mse import MSELoss
from .triplet import TripletLoss


def scheduled_weight(term: LossTerm, step: int) -> float:
    """The term's weight at ``step``: w · min(1, step / warmup_steps), constant w without warm-up."""
    if term.warmup_steps <= 0:
        return term.weight
    return term.weight * min(1.0, max(step, 0) / term.warmup_steps)


class LossStack(nn.Module):
    def __init__(self, terms: list[tuple[Loss, LossTerm]]):
        super().__init__()
        names = [loss.name for loss, _ in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"loss term names must be unique, got {names}")
        self.losses = nn.ModuleList([loss for loss, _ in terms])
        self.settings = [setting for _, setting in terms]

    @property
    def names(self) -> list[str]:
        return [loss.name for loss in self.losses]

    def weights(self, step: int) -> dict[str, float]:
        """Each term's scheduled weight at ``step``."""
        return {loss.name: scheduled_weight(setting, step) for loss, setting in zip(self.losses, self.settings)}

    def forward(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns the total and each active term's unweighted value (still in the graph)."""
        total = inputs.prediction.new_zeros(())
        parts: dict[str, torch.Tensor] = {}
        for loss, setting in zip(self.losses, self.settings):
            value = loss(inputs)
            parts[loss.name] = value
            total = total + scheduled_weight(setting, inputs.step) * value
        return total, parts

    def get_config_dict(self) -> dict[str, dict]:
        """Every term's weight, warm-up and hyper-parameters, to save with the run."""
        return {
            loss.name: {"weight": setting.weight, "warmup_steps": setting.warmup_steps, **loss.get_config_dict()}
            for loss, setting in zip(self.losses, self.settings)
        }


def build_loss_stack(
    config: Config,
    spaces: Optional[Iterable[str]] = None,
    input_space: Optional[str] = None,
    primary_space: Optional[str] = None,
) -> LossStack:
    """The stack for ``config``; ``spaces`` are the teacher spaces the heads predict.

    Without ``spaces`` (a single space, e.g. vector data) no distillation term is built.
    ``distill_regression`` covers every space but the primary one, ``distill_relational``
    every space. Raises ValueError when no term is left to minimise.
    """
    spaces = list(spaces or [])
    primary = primary_space if primary_space is not None else (spaces[0] if spaces else None)
    if primary is not None and spaces and primary not in spaces:
        raise ValueError(f"primary space `{primary}` is not one of the spaces {spaces}")
    if input_space is not None and spaces and input_space not in spaces:
        raise ValueError(f"input space `{input_space}` is not one of the spaces {spaces}")
    terms = _task_terms(config) + _distill_terms(config, spaces, primary)
    if not terms:
        raise ValueError(
            "nothing to minimise: every loss weight is 0 (loss.cosine/mse/infonce/triplet.weight) and no "
            "distillation term applies (distill.regression_weight needs a teacher besides the primary one, "
            "distill.relational_weight needs a teacher space); set at least one weight > 0"
        )
    return LossStack(terms)


def _task_terms(config: Config) -> list[tuple[Loss, LossTerm]]:
    loss = config.loss
    candidates: list[tuple[Loss, LossTerm]] = [
        (CosineLoss(), loss.cosine),
        (MSELoss(), loss.mse),
        (InfoNCELoss(loss.infonce.temperature, loss.infonce.symmetric), loss.infonce),
        (TripletLoss(loss.triplet.margin, loss.triplet.negatives), loss.triplet),
    ]
    return [(term, setting) for term, setting in candidates if setting.weight > 0]


def _distill_terms(config: Config, spaces: list[str], primary: Optional[str]) -> list[tuple[Loss, LossTerm]]:
    distill = config.distill
    terms: list[tuple[Loss, LossTerm]] = []
    others = [space for space in spaces if space != primary]
    if distill.regression_weight > 0 and others:
        setting = LossTerm(weight=distill.regression_weight, warmup_steps=distill.regression_warmup_steps)
        terms.append((DistillRegressionLoss(others, distill.regression_mse), setting))
    if distill.relational_weight > 0 and spaces:
        setting = LossTerm(weight=distill.relational_weight, warmup_steps=distill.relational_warmup_steps)
        terms.append((DistillRelationalLoss(spaces, distill.temperature), setting))
    return terms
