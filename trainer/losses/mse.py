import torch
import torch.nn.functional as F

from .base import Loss


class MSELoss(Loss):
    """Pointwise squared error in the primary space.

    L = 1/(B·D) Σ_i Σ_d (p_id − t_id)²

    Unlike ``cosine`` it also penalises a wrong norm; for L2-normalised teacher embeddings
    ‖p − t‖² = 2 − 2·cos(p, t) when ‖p‖ = 1, so its scale is about 2/D times the cosine term's.
    """

    name = "mse"

    def compute(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(prediction, target)
