import torch
import torch.nn.functional as F

from .base import PerSpaceLoss


class DistillRegressionLoss(PerSpaceLoss):
    """Pull each teacher head's prediction onto that teacher's embedding of the target.

    For one space s (``compute``), with head prediction h_s and teacher target t_s:
    L_s = mean_i (1 − cos(h_si, t_si)) + λ · mean_{i,d} (h_sid − t_sid)²      (λ = ``mse_weight``, default 0)
    and over the spaces it covers (``forward``), with the teacher weights w renormalised
    over those spaces:
    L = Σ_s w_s · L_s

    It covers every space except the primary one: the task terms (``loss.*``) already pull
    the primary prediction onto its target, so each space gets exactly one pointwise pull.
    With a single teacher there is nothing left to cover and the term is not built.
    """

    name = "distill_regression"

    def __init__(self, spaces: list[str], mse_weight: float = 0.0):
        super().__init__(spaces)
        self.mse_weight = mse_weight

    def compute(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = (1.0 - F.cosine_similarity(prediction, target, dim=-1)).mean()
        if self.mse_weight > 0:
            loss = loss + self.mse_weight * F.mse_loss(prediction, target)
        return loss

    def get_config_dict(self) -> dict:
        return {"spaces": self.spaces, "mse_weight": self.mse_weight}

