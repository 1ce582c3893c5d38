from .base import Loss, LossInputs
from .cosine import CosineLoss
from .mse import MSELoss
from .stack import LossStack, build_loss_stack, scheduled_weight

__all__ = ["Loss", "LossInputs", "CosineLoss", "MSELoss", "LossStack", "build_loss_stack", "scheduled_weight"]
