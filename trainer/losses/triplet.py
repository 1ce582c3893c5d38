import torch

from .base import Loss, cosine_matrix, duplicate_mask, zero_like_graph


class TripletLoss(Loss):
    """Triplet loss with the k hardest in-batch negatives per anchor.

    For anchor prediction p_i the positive is its own target t_i and the negatives N_i are
    the k targets t_j (j ≠ i) most similar to p_i, i.e. the ones most easily confused:
    L = 1/(B·k) Σ_i Σ_{j∈N_i} max(0, m − cos(p_i, t_i) + cos(p_i, t_j))

    k = min(negatives, B − 1), so small batches (and the last, short batch of an epoch) use
    every other row; a batch of one has no negative and gives 0. Targets identical to t_i
    (a repeated answer) are never mined as negatives; a row left with fewer than k real
    negatives adds nothing for the missing ones.
    """

    name = "triplet"

    def __init__(self, margin: float = 0.2, negatives: int = 4):
        super().__init__()
        self.margin = margin
        self.negatives = negatives

    def compute(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        batch = prediction.shape[0]
        k = min(self.negatives, batch - 1)
        if k < 1:
            return zero_like_graph(prediction)
        sim = cosine_matrix(prediction, target)  # (B, B): cos(p_i, t_j)
        positive = sim.diagonal()  # (B,)
        not_negative = duplicate_mask(target) | torch.eye(batch, dtype=torch.bool, device=sim.device)
        hardest, _ = sim.masked_fill(not_negative, float("-inf")).topk(k, dim=1)  # (B, k)
        hinge = (self.margin - positive[:, None] + hardest).clamp(min=0)  # (B, k); -inf -> 0
        return hinge.mean()

    def get_config_dict(self) -> dict:
        return {"margin": self.margin, "negatives": self.negatives}
