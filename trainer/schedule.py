"""Learning-rate schedules as plain state, so a checkpoint's JSON can hold them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class LRSchedule:
    base_lr: float
    kind: str  # cosine | plateau | constant
    total_steps: int
    warmup_steps: int = 0
    plateau_factor: float = 0.5  # plateau: multiply by this after `plateau_patience` flat evaluations
    plateau_patience: int = 2
    min_factor: float = 0.01
    factor: float = 1.0  # current plateau factor
    best: float = -math.inf
    flat_evals: int = 0

    def lr_at(self, step: int) -> float:
        """Learning rate for the optimizer step that follows `step` completed steps."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.kind == "cosine":
            progress = min(1.0, max(0, step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
            shape = self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
        elif self.kind == "plateau":
            shape = self.factor
        else:
            shape = 1.0
        return self.base_lr * warm * shape

    def observe(self, metric: float) -> None:
        """Plateau schedule: called after each evaluation with the monitored metric (higher is better)."""
        if self.kind != "plateau":
            return
        if metric > self.best + 1e-6:
            self.best, self.flat_evals = metric, 0
            return
        self.flat_evals += 1
        if self.flat_evals >= self.plateau_patience:
            self.factor = max(self.min_factor, self.factor * self.plateau_factor)
            self.flat_evals = 0

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
