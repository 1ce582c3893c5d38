import torch
import torch.nn.functional as F

from .base import Loss


class CosineLoss(Loss):
    """mean_i (1 − cos(p_i, t_i))."""

    name = "cosine"

    def compute(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (1.0 - F.cosine_similarity(prediction, target, dim=-1)).mean()
