import torch
import torch.nn.functional as F

from .base import Loss


class CosineLoss(Loss):
    """Pointwise direction error in the primary space.

    L = mean_i (1 − cos(p_i, t_i)),  cos(p, t) = p·t / (‖p‖ ‖t‖)

    0 when every prediction points along its target, 2 when it points the opposite way;
    blind to the prediction's norm (pair it with ``mse`` to pin the norm down too).
    """

    name = "cosine"

    def compute(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cos = F.cosine_similarity(prediction, target, dim=-1)  # (B,)
        return (1.0 - cos).mean()
