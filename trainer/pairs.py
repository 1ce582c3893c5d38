"""EmbeddedPairs: what the training loop consumes, whatever the data started as.

Vector files give one space ("vectors"); text data give one space per teacher. The cube
reads ``questions[input_space]`` and is scored in ``primary_space`` (the first teacher's
unless the config names another). For the autoencoder task answers are the questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class EmbeddedPairs:
    questions: dict[str, torch.Tensor]  # space -> (N, D_space) float32
    answers: dict[str, torch.Tensor]  # space -> (N, D_space) float32
    input_space: str
    primary_space: str
    sha256: str  # content hash of the source data
    texts: Optional[list[tuple[str, str]]] = None  # (question, answer) per row, for text data
    teacher_weights: Optional[dict[str, float]] = None  # space -> distillation weight

    def __post_init__(self) -> None:
        rows = {t.shape[0] for t in (*self.questions.values(), *self.answers.values())}
        if len(rows) != 1:
            raise ValueError(f"every space must have the same number of rows, got {sorted(rows)}")
        for space, tensor in (*self.questions.items(), *self.answers.items()):
            if tensor.dtype != torch.float32 or tensor.dim() != 2:
                raise ValueError(f"space `{space}` must be a 2-D float32 tensor, got {tensor.dtype} {tuple(tensor.shape)}")
        if self.input_space not in self.questions or self.primary_space not in self.answers:
            raise ValueError(f"unknown space: input `{self.input_space}`, primary `{self.primary_space}`")

    @property
    def rows(self) -> int:
        return next(iter(self.questions.values())).shape[0]

    @property
    def input_dim(self) -> int:
        return self.questions[self.input_space].shape[1]

    def dims(self) -> dict[str, int]:
        return {space: tensor.shape[1] for space, tensor in self.answers.items()}
