"""Multi-teacher distillation: one head per teacher space, and how much each teacher counts.

The cube works in the input space (the first teacher's, or the vectors' own). A learned
linear head maps its output into every other teacher's space; the input space's head is
the identity. The loss terms that use the heads live in ``trainer/losses/distill_*.py``.

Teacher weights (one per space, summing to 1) come from ``teachers[].weight``; with
``distill.teacher_weighting: agreement`` the loop replaces them after every evaluation by
``agreement_weights`` of each head's validation agreement with its teacher.
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .config import Config
from .pairs import EmbeddedPairs

# Softmax temperature of agreement weighting. Agreements are mean cosines in [-1, 1]; at
# 0.25 a teacher 0.1 ahead gets e^0.4 ≈ 1.5 times the weight and one 0.4 ahead ≈ 5 times,
# so a teacher far behind keeps enough weight for its head to keep learning and catch up.
AGREEMENT_TEMPERATURE = 0.25


class TeacherHeads(nn.Module):
    """``forward(out (B, D_in)) -> {space: (B, D_space)}``, the identity for the input space.

    Each other head is ``nn.Linear(D_in, D_space)`` with an orthogonal weight and zero bias:
    it starts as a (semi-)orthogonal map, which keeps the cube output's cosine geometry
    (exactly when D_space ≥ D_in). ``init_least_squares`` can then start every head at the
    ridge-regression map between the teachers' own embeddings.
    """

    def __init__(self, dims: dict[str, int], input_space: str, input_dim: int):
        super().__init__()
        if input_space in dims and dims[input_space] != input_dim:
            raise ValueError(f"input space `{input_space}` is {dims[input_space]}-D, but the input is {input_dim}-D")
        self.spaces = list(dims)
        self.input_space = input_space
        self.input_dim = input_dim
        self.head_keys = _module_keys([space for space in self.spaces if space != input_space])  # space -> module key
        self.heads = nn.ModuleDict({key: nn.Linear(input_dim, dims[space]) for space, key in self.head_keys.items()})
        for head in self.heads.values():
            nn.init.orthogonal_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            space: out if space == self.input_space else self.heads[self.head_keys[space]](out)  # (B, D_space)
            for space in self.spaces
        }

    def head(self, space: str) -> Optional[nn.Linear]:
        """The learned head for ``space`` (None for the input space's identity)."""
        return self.heads[self.head_keys[space]] if space in self.head_keys else None

    @torch.no_grad()
    def init_least_squares(
        self, source: torch.Tensor, targets: dict[str, torch.Tensor], ridge: float = 1e-2
    ) -> dict[str, float]:
        """Start each head at the ridge regression from ``source`` to its space's targets.

        ``source``: (N, D_in) embeddings in the input space (e.g. the training answers
        there), ``targets[space]``: (N, D_space) the same rows in each teacher's space.
        Solves min_W,b ‖(X − x̄) W − (Y − ȳ)‖² + ridge · N · ‖W‖², b = ȳ − x̄ W in float64.
        Returns each fitted head's mean cosine with its targets on these rows.
        """
        x = source.double()
        x_mean = x.mean(0, keepdim=True)
        xc = x - x_mean  # (N, D_in)
        gram = xc.T @ xc + ridge * x.shape[0] * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        fitted: dict[str, float] = {}
        for space, head in ((s, self.head(s)) for s in self.spaces):
            if head is None or space not in targets:
                continue
            y = targets[space].to(x)
            y_mean = y.mean(0, keepdim=True)
            w = torch.linalg.solve(gram, xc.T @ (y - y_mean))  # (D_in, D_space)
            head.weight.copy_(w.T.to(head.weight))
            head.bias.copy_((y_mean - x_mean @ w).squeeze(0).to(head.bias))
            prediction = head(source.to(head.weight))  # (N, D_space)
            fitted[space] = F.cosine_similarity(prediction, targets[space].to(prediction)).mean().item()
        return fitted

    def extra_repr(self) -> str:
        return f"input_space={self.input_space!r}, spaces={self.spaces!r}"


def initial_teacher_weights(config: Config, pairs: EmbeddedPairs) -> dict[str, float]:
    """{space: weight} over ``pairs.answers``, normalised to sum 1.

    Raw weights come from ``pairs.teacher_weights`` when the data loader filled them, else
    from ``teachers[].weight`` matched to spaces by teacher name, else by position when there
    are as many teachers as spaces; otherwise (e.g. vector data, no teachers) all equal.
    With ``teacher_weighting: agreement`` these are the weights until the first evaluation.
    Every weight 0 while a distillation term is on is an error; with distillation off the
    weights do not matter and come back equal.
    """
    spaces = list(pairs.answers)
    raw = _raw_teacher_weights(config, pairs, spaces)
    total = sum(raw.values())
    if total > 0:
        return {space: raw[space] / total for space in spaces}
    if config.distill.regression_weight > 0 or config.distill.relational_weight > 0:
        raise ValueError(
            "every teacher weight is 0 (teachers[].weight) while distillation is on: give at least one "
            "teacher a weight > 0, or set distill.regression_weight and distill.relational_weight to 0"
        )
    return {space: 1.0 / len(spaces) for space in spaces}


def _raw_teacher_weights(config: Config, pairs: EmbeddedPairs, spaces: list[str]) -> dict[str, float]:
    if pairs.teacher_weights:
        return {space: _clean(pairs.teacher_weights.get(space, 0.0)) for space in spaces}
    by_name = {teacher.name: teacher.weight for teacher in config.teachers}
    if spaces and all(space in by_name for space in spaces):
        return {space: _clean(by_name[space]) for space in spaces}
    if config.teachers and len(config.teachers) == len(spaces):
        return {space: _clean(teacher.weight) for space, teacher in zip(spaces, config.teachers)}
    return {space: 1.0 for space in spaces}


def agreement_weights(
    agreements: dict[str, float],
    prior: Optional[dict[str, float]] = None,
    temperature: float = AGREEMENT_TEMPERATURE,
) -> dict[str, float]:
    """Teacher weights from each head's validation agreement a_s (mean cosine with its teacher).

    w_s = π_s · exp(a_s / τ) / Σ_r π_r · exp(a_r / τ)

    with a_s clamped to [-1, 1] (NaN or missing counts as -1), τ = ``temperature`` and
    π = ``prior`` (e.g. the configured teacher weights; equal when absent or all 0). The
    result sums to 1, favours the teachers the student already agrees with, and never
    drops a teacher whose prior is > 0: a softmax is positive for negative or zero a_s too.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    spaces = list(agreements)
    if not spaces:
        return {}
    pi = {space: _clean((prior or {}).get(space, 0.0)) for space in spaces}
    if sum(pi.values()) <= 0:
        pi = {space: 1.0 for space in spaces}
    scores = {space: _clamp_agreement(agreements[space]) / temperature for space in spaces}
    top = max(scores[space] for space in spaces if pi[space] > 0)
    raw = {space: pi[space] * math.exp(scores[space] - top) for space in spaces}  # shift: no overflow
    total = sum(raw.values())
    return {space: value / total for space, value in raw.items()}


@torch.no_grad()
def head_agreements(preds: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, float]:
    """{space: mean_i cos(preds[space]_i, targets[space]_i)} for every space in both."""
    return {
        space: F.cosine_similarity(preds[space].float(), targets[space].float(), dim=-1).mean().item()
        for space in preds
        if space in targets
    }


def _clean(value: Any) -> float:
    value = float(value)
    return value if math.isfinite(value) and value > 0 else 0.0


def _clamp_agreement(value: Any) -> float:
    value = float(value) if value is not None else float("nan")
    return -1.0 if math.isnan(value) else min(1.0, max(-1.0, value))


def _module_keys(spaces: list[str]) -> dict[str, str]:
    """A valid, unique ``nn.ModuleDict`` key per space (names like `org/model-v1.5` have dots)."""
    keys: dict[str, str] = {}
    for space in spaces:
        # The prefix keeps keys clear of ModuleDict's own attributes (`keys`, `values`, …).
        key = "to_" + re.sub(r"\W", "_", space)
        while key in keys.values():
            key += "_"
        keys[space] = key
    return keys
