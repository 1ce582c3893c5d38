import torch
import torch.nn.functional as F

from .base import PerSpaceLoss, cosine_matrix, zero_like_graph


class DistillRelationalLoss(PerSpaceLoss):
    """Match the student's in-batch similarity structure to each teacher's.

    For one space s (``compute``), with head predictions h and teacher targets t, both
    (B, D_s), and temperature τ, each row i becomes a distribution over the other rows j ≠ i:
    P_ij = softmax_j( cos(t_i, t_j) / τ )      (teacher)
    Q_ij = softmax_j( cos(h_i, h_j) / τ )      (student)
    L_s = 1/B Σ_i KL(P_i ‖ Q_i) = 1/B Σ_i Σ_j P_ij (log P_ij − log Q_ij)
    and over every teacher space (``forward``): L = Σ_s w_s · L_s.

    The diagonal (every item's similarity with itself, always 1) is left out: at a low τ
    it would take almost all the mass of both rows and hide the structure.

    The student matrix is taken from each head's prediction, not from the cube output. The
    cube output lives in the input teacher's space, where the task terms already fix it;
    asking that one matrix to equal several teachers' (different) matrices at once would
    pull it several ways. The heads are linear, so the structure still has to be present
    in the cube output, but each teacher's geometry is matched in its own space. For the
    input space the head is the identity, so there it is the cube output's own matrix.
    A batch of fewer than 3 rows has at most one candidate per row and gives 0.
    """

    name = "distill_relational"

    def __init__(self, spaces: list[str], temperature: float = 0.1):
        super().__init__(spaces)
        self.temperature = temperature

    def compute(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        batch = prediction.shape[0]
        if batch < 2:
            return zero_like_graph(prediction)
        log_q = F.log_softmax(_off_diagonal(cosine_matrix(prediction, prediction)) / self.temperature, dim=1)
        log_p = F.log_softmax(_off_diagonal(cosine_matrix(target, target)) / self.temperature, dim=1)
        # (B, B−1) each; batchmean divides the summed KL by B.
        return F.kl_div(log_q, log_p.detach(), log_target=True, reduction="batchmean")

    def get_config_dict(self) -> dict:
        return {"spaces": self.spaces, "temperature": self.temperature}


def _off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    """(B, B) -> (B, B−1): each row without its diagonal entry."""
    batch = matrix.shape[0]
    keep = ~torch.eye(batch, dtype=torch.bool, device=matrix.device)
    return matrix[keep].view(batch, batch - 1)
