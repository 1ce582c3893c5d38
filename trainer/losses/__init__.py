from .base import Loss, LossInputs, cosine_matrix, duplicate_mask, space_weights
from .cosine import CosineLoss
from .distill_regression import DistillRegressionLoss
from .distill_relational import DistillRelationalLoss
from .infonce import InfoNCELoss
from .mse import MSELoss
from .stack import LossStack, build_loss_stack, scheduled_weight
from .triplet import TripletLoss

__all__ = [
    "Loss",
    "LossInputs",
    "CosineLoss",
    "MSELoss",
    "InfoNCELoss",
    "TripletLoss",
    "DistillRegressionLoss",
    "DistillRelationalLoss",
    "LossStack",
    "build_loss_stack",
    "scheduled_weight",
    "cosine_matrix",
    "duplicate_mask",
    "space_weights",
]
