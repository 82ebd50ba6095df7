"""Training the project's demo model on synthetic microscopy (torch + numpy)."""

from .evaluate import Quality, evaluate
from .loop import TrainConfig, train

__all__ = ["Quality", "TrainConfig", "evaluate", "train"]
