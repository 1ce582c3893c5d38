import torch
import torch.nn.functional as F

from .base import Loss, cosine_matrix, duplicate_mask


class InfoNCELoss(Loss):
    """Contrastive loss with in-batch negatives (InfoNCE / multiple-negatives ranking).

    logits_ij = cos(p_i, t_j) / τ                          (B, B)
    L = 1/B Σ_i −log( exp(logits_ii) / Σ_j exp(logits_ij) )

    Row i is a B-way classification whose right answer is its own target (the diagonal);
    every other target in the batch is a negative. Targets identical to t_i (a repeated
    answer) are masked out of row i: they are not negatives. ``symmetric=True`` averages
    this with the same loss on the transposed logits (each target must also pick its own
    prediction among all predictions), as in CLIP: L = (L_p→t + L_t→p) / 2.

    A perfect prediction at low τ gives L ≈ 0; predictions unrelated to the targets give
    L ≈ log B.
    """

    name = "infonce"

    def __init__(self, temperature: float = 0.05, symmetric: bool = False):
        super().__init__()
        self.temperature = temperature
        self.symmetric = symmetric

    def compute(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = cosine_matrix(prediction, target) / self.temperature  # (B, B)
        # A repeated answer is masked out of both directions (the mask is symmetric).
        logits = logits.masked_fill(duplicate_mask(target), float("-inf"))
        labels = torch.arange(prediction.shape[0], device=prediction.device)  # (B,)
        loss = F.cross_entropy(logits, labels)
        if self.symmetric:
            loss = (loss + F.cross_entropy(logits.T, labels)) / 2
        return loss

    def get_config_dict(self) -> dict:
        return {"temperature": self.temperature, "symmetric": self.symmetric}
